//! SASL mechanisms, server side, as sans-IO state machines; plus the client
//! side of PLAIN and LOGIN in [`client`].
//!
//! A [`Mechanism`] consumes decoded client responses and returns a [`Step`]:
//! a challenge for the client, a request to the passdb (verify a plaintext
//! password, or look up credentials in a given scheme), or the outcome. The
//! caller performs passdb requests however it likes — inline, or in an
//! auth-worker — and feeds the answer back with
//! [`Mechanism::verify_result`] / [`Mechanism::credentials`]. [`drive`] does
//! that synchronously against a [`Passdb`] implementation.
//!
//! Mechanisms never see base64 or the wire: [`crate::protocol`] does that.

pub mod anonymous;
pub mod client;
pub mod cram_md5;
pub mod external;
pub mod login;
pub mod plain;
pub mod scram;

/// Outcome of a passdb lookup, as Dovecot's `enum passdb_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassdbResult {
    /// Verified / found.
    Ok,
    /// No such user.
    UserUnknown,
    /// The user exists but may not log in (deny passdb, `nologin`...).
    UserDisabled,
    /// Wrong password.
    PasswordMismatch,
    /// The password has expired.
    PassExpired,
    /// The passdb cannot give credentials in the requested scheme.
    SchemeNotAvailable,
    /// Backend failure (temporary).
    InternalFailure,
    /// The passdb wants the next one to decide (`result_* = continue`).
    Next,
}

/// Why a mechanism failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The client sent something the mechanism cannot parse; the text is
    /// Dovecot's log reason (never sent to the client).
    Protocol(String),
    /// The passdb said no (or failed).
    Passdb(PassdbResult),
    /// The client's proof did not match the stored credentials.
    Mismatch,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge to the client (`CONT`) and wait for its answer.
    Continue(Vec<u8>),
    /// Verify this plaintext password for [`Mechanism::identity`] and call
    /// [`Mechanism::verify_result`].
    VerifyPlain {
        /// The password the client sent.
        password: Vec<u8>,
    },
    /// Look up credentials of [`Mechanism::identity`] in `scheme` (an empty
    /// scheme only asks whether the user may log in) and call
    /// [`Mechanism::credentials`].
    LookupCredentials {
        /// Wanted scheme, e.g. `CRAM-MD5`.
        scheme: &'static str,
    },
    /// Authenticated. `final_data` is the mechanism's last server message
    /// (SCRAM's `v=`), sent with OK when the client said `final-resp-ok`,
    /// otherwise as a CONT whose (empty) answer completes the login.
    Success {
        /// Final server data, if the mechanism has any.
        final_data: Option<Vec<u8>>,
    },
    /// Authentication failed.
    Fail(Failure),
}

/// Who is authenticating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The authentication identity (whose password is checked).
    pub user: Option<String>,
    /// The requested authorization identity when it differs (the user a
    /// master user logs in as).
    pub login_user: Option<String>,
}

/// Security properties advertised in the `MECH` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MechFlags {
    /// Only for trusted clients.
    pub private: bool,
    /// Anonymous login.
    pub anonymous: bool,
    /// Sends the password in plain text.
    pub plaintext: bool,
    /// Vulnerable to passive dictionary attacks.
    pub dictionary: bool,
    /// Vulnerable to active (non-dictionary) attacks.
    pub active: bool,
    /// Forward secrecy between sessions.
    pub forward_secrecy: bool,
    /// The server proves it knows the secret too.
    pub mutual_auth: bool,
}

impl MechFlags {
    /// Flag names in Dovecot's `MECH` line order.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.private, "private"),
            (self.anonymous, "anonymous"),
            (self.plaintext, "plaintext"),
            (self.dictionary, "dictionary"),
            (self.active, "active"),
            (self.forward_secrecy, "forward-secrecy"),
            (self.mutual_auth, "mutual-auth"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect()
    }
}

/// Mechanism names we implement, and their flags.
pub const MECHANISMS: &[(&str, MechFlags)] = &[
    ("PLAIN", MechFlags { plaintext: true, ..NO_FLAGS }),
    ("LOGIN", MechFlags { plaintext: true, ..NO_FLAGS }),
    ("CRAM-MD5", MechFlags { dictionary: true, active: true, ..NO_FLAGS }),
    ("SCRAM-SHA-1", MechFlags { mutual_auth: true, ..NO_FLAGS }),
    ("SCRAM-SHA-256", MechFlags { mutual_auth: true, ..NO_FLAGS }),
    ("ANONYMOUS", MechFlags { anonymous: true, ..NO_FLAGS }),
    ("EXTERNAL", NO_FLAGS),
];

const NO_FLAGS: MechFlags = MechFlags {
    private: false,
    anonymous: false,
    plaintext: false,
    dictionary: false,
    active: false,
    forward_secrecy: false,
    mutual_auth: false,
};

/// Per-request facts a mechanism may need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MechContext {
    /// Host name for the CRAM-MD5 challenge.
    pub hostname: String,
    /// `auth_anonymous_username` (Dovecot default `anonymous`).
    pub anonymous_username: String,
    /// User name from a valid client certificate (`cert_username=` with
    /// `valid-client-cert`), for EXTERNAL.
    pub cert_username: Option<String>,
}

/// A server-side SASL mechanism instance (one per authentication).
pub trait Mechanism: Send {
    /// Canonical mechanism name.
    fn name(&self) -> &'static str;

    /// Starts with the optional initial response (`resp=`). An empty one
    /// (`resp=` from a version 1.2 client) is an empty response, not none:
    /// Dovecot 2.3 fails `AUTH PLAIN ... resp=` instead of continuing. The
    /// protocol layer maps `resp=` from pre-1.2 clients (Exim) to `None`.
    fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            Some(data) => self.input(data),
            None => Step::Continue(Vec::new()),
        }
    }

    /// Consumes one client response.
    fn input(&mut self, data: &[u8]) -> Step;

    /// The passdb's answer to [`Step::VerifyPlain`].
    fn verify_result(&mut self, result: PassdbResult) -> Step {
        match result {
            PassdbResult::Ok => Step::Success { final_data: None },
            other => Step::Fail(Failure::Passdb(other)),
        }
    }

    /// The passdb's answer to [`Step::LookupCredentials`].
    fn credentials(&mut self, result: Result<Vec<u8>, PassdbResult>) -> Step {
        match result {
            Ok(_) => Step::Fail(Failure::Protocol("unexpected credentials".into())),
            Err(r) => Step::Fail(Failure::Passdb(r)),
        }
    }

    /// The identity parsed so far.
    fn identity(&self) -> &Identity;
}

/// Creates a server mechanism by (case-insensitive) name.
pub fn server(name: &str, ctx: &MechContext) -> Option<Box<dyn Mechanism>> {
    let name = name.to_ascii_uppercase();
    Some(match name.as_str() {
        "PLAIN" => Box::new(plain::Plain::default()),
        "LOGIN" => Box::new(login::Login::default()),
        "CRAM-MD5" => Box::new(cram_md5::CramMd5::new(&ctx.hostname).ok()?),
        "SCRAM-SHA-1" => Box::new(scram::Scram::new(crate::scheme::scram::Hash::Sha1).ok()?),
        "SCRAM-SHA-256" => Box::new(scram::Scram::new(crate::scheme::scram::Hash::Sha256).ok()?),
        "ANONYMOUS" => Box::new(anonymous::Anonymous::new(&ctx.anonymous_username)),
        "EXTERNAL" => Box::new(external::External::new(ctx.cert_username.clone())),
        _ => return None,
    })
}

/// Synchronous passdb access for [`drive`].
pub trait Passdb {
    /// Verifies a plaintext password.
    fn verify_plain(&mut self, identity: &Identity, password: &[u8]) -> PassdbResult;
    /// Returns credentials in `scheme` (raw, as [`crate::scheme::credentials`]).
    fn lookup_credentials(&mut self, identity: &Identity, scheme: &str) -> Result<Vec<u8>, PassdbResult>;
}

/// Resolves passdb steps against `passdb` until the mechanism needs the
/// client again or finishes.
pub fn drive(mech: &mut dyn Mechanism, mut step: Step, passdb: &mut dyn Passdb) -> Step {
    loop {
        step = match step {
            Step::VerifyPlain { password } => {
                let result = passdb.verify_plain(mech.identity(), &password);
                mech.verify_result(result)
            }
            Step::LookupCredentials { scheme } => {
                let result = passdb.lookup_credentials(mech.identity(), scheme);
                mech.credentials(result)
            }
            done => return done,
        };
    }
}

/// Validates a user name received from a client: UTF-8 without NUL.
pub(crate) fn user_name(bytes: &[u8]) -> Result<String, Failure> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => Ok(s.to_string()),
        _ => Err(Failure::Protocol("Invalid username".into())),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A passdb over a fixed table of stored passwords.
    use super::*;

    pub struct TablePassdb(pub Vec<(&'static str, &'static str)>);

    impl TablePassdb {
        fn stored(&self, identity: &Identity) -> Option<&'static str> {
            let user = identity.user.as_deref()?;
            self.0.iter().find(|(u, _)| *u == user).map(|(_, p)| *p)
        }
    }

    impl Passdb for TablePassdb {
        fn verify_plain(&mut self, identity: &Identity, password: &[u8]) -> PassdbResult {
            match self.stored(identity) {
                None => PassdbResult::UserUnknown,
                Some(stored) => match crate::scheme::verify(password, stored, "PLAIN", "") {
                    Ok(true) => PassdbResult::Ok,
                    Ok(false) => PassdbResult::PasswordMismatch,
                    Err(_) => PassdbResult::InternalFailure,
                },
            }
        }

        fn lookup_credentials(&mut self, identity: &Identity, scheme: &str) -> Result<Vec<u8>, PassdbResult> {
            let stored = self.stored(identity).ok_or(PassdbResult::UserUnknown)?;
            let user = identity.user.as_deref().unwrap_or("");
            crate::scheme::credentials(stored, "PLAIN", scheme, user).map_err(|e| match e {
                crate::scheme::SchemeError::SchemeNotAvailable { .. } => PassdbResult::SchemeNotAvailable,
                _ => PassdbResult::InternalFailure,
            })
        }
    }
}
