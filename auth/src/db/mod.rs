//! passdb/userdb drivers that need no worker (passwd-file, static), and the
//! 2.3 result-chain model (`result_success`/`result_failure`/
//! `result_internalfail`, `skip`, `deny`, `master`, `pass`, `default_fields`,
//! `override_fields`) as pure logic in [`chain`].
//!
//! A lookup is described by [`RequestVars`] (what `%` variables expand to)
//! and answers with [`ExtraFields`]. Password verification against what a
//! passdb returned is [`verify_password`] / [`lookup_credentials`].
//!
//! [`sql`] and [`ldap`] talk to servers and block: only the `auth` binary
//! calls them, from auth-worker processes. Binaries that link this library
//! without calling them lose that code (and the client crates) at link time.

mod args_file;
pub mod chain;
pub mod driver;
pub mod ldap;
pub mod pam;
pub mod passwd;
pub mod passwd_file;
pub mod sql;
pub mod static_db;
pub mod sys;

use std::borrow::Cow;

use dovecote_config::var_expand::{self, ExpandError, Variable};

use crate::mech::PassdbResult;
use crate::scheme::{self, SchemeError};

/// Errors from driver setup or lookups.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Bad `args`.
    #[error("{driver}: invalid args: {reason}")]
    Args {
        /// Driver name.
        driver: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("passwd-file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// `%` expansion failed.
    #[error("{what}: {source}")]
    Expand {
        /// Which template.
        what: String,
        /// Cause.
        source: ExpandError,
    },
    /// An NSS lookup failed (not "no such user": a backend error).
    #[error("{driver}: getpwnam({user}) failed: {source}")]
    Nss {
        /// Driver name.
        driver: &'static str,
        /// The user looked up.
        user: String,
        /// Cause.
        source: nix::Error,
    },
    /// The driver cannot do this (e.g. a userdb lookup on a passdb-only
    /// driver, or a lookup a worker process must do).
    #[error("{driver}: {what} is not supported")]
    Unsupported {
        /// Driver name.
        driver: &'static str,
        /// The operation.
        what: &'static str,
    },
    /// A uid/gid name that does not resolve.
    #[error("{driver}: unknown {kind} {name}")]
    UnknownId {
        /// Driver name.
        driver: &'static str,
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// The backend cannot be reached right now (connect failure, lost
    /// connection, timeout). The driver has dropped its connection and
    /// reconnects on the next request; the client gets `FAIL ... temp`.
    #[error("{driver}: {reason}")]
    Unavailable {
        /// Driver name.
        driver: &'static str,
        /// What happened.
        reason: String,
    },
    /// The backend answered but the lookup failed (query error, a search
    /// matching several entries, a reply without a password field...): an
    /// internal failure, not a wrong password.
    #[error("{driver}: {reason}")]
    Lookup {
        /// Driver name.
        driver: &'static str,
        /// What happened.
        reason: String,
    },
}

impl DbError {
    /// True for failures that go away by themselves ([`DbError::Unavailable`]).
    /// Every `DbError` during a lookup is an internal failure (`FAIL temp`)
    /// for the client; this only tells logs and worker throttling apart.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DbError::Unavailable { .. })
    }
}

/// Facts about an auth request that `%` variables expand to (the auth
/// process's table: `%u %n %d %s %l %r %a %b %m %c %w %p` and long names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestVars {
    /// `%u` user.
    pub user: String,
    /// `%s` service.
    pub service: String,
    /// `%l` local IP.
    pub local_ip: Option<String>,
    /// `%r` remote IP.
    pub remote_ip: Option<String>,
    /// `%a` local port.
    pub local_port: Option<String>,
    /// `%b` remote port.
    pub remote_port: Option<String>,
    /// `%m` mechanism.
    pub mech: Option<String>,
    /// `%c` "secured" when the connection is.
    pub secured: bool,
    /// `%w` the plaintext password, when the mechanism has one.
    pub password: Option<String>,
    /// `%{session}`.
    pub session: Option<String>,
    /// `%{master_user}`.
    pub master_user: Option<String>,
    /// `%{login_user}` (requested login user for master logins).
    pub login_user: Option<String>,
    /// `%p` client pid.
    pub pid: Option<String>,
}

impl RequestVars {
    /// A request for `user` via `service`.
    pub fn new(user: &str, service: &str) -> Self {
        RequestVars { user: user.into(), service: service.into(), ..Default::default() }
    }

    /// The variable table. When `path_safe`, `/` and what follows it is cut
    /// from user-controlled values (Dovecot's `path_fix` for file paths).
    pub fn variables(&self, path_safe: bool) -> Vec<Variable<'_>> {
        let fix = |v: &str| -> String {
            if path_safe {
                v.split('/').next().unwrap_or("").to_string()
            } else {
                v.to_string()
            }
        };
        let (name, domain) = match self.user.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (self.user.as_str(), None),
        };
        let opt = |v: &Option<String>| v.as_deref().map(|s| Cow::Owned(fix(s)));
        let var = |key: Option<char>, long: &'static str, value: Option<Cow<'static, str>>| Variable {
            key,
            long: Some(long),
            value,
        };
        vec![
            var(Some('u'), "user", Some(Cow::Owned(fix(&self.user)))),
            var(Some('n'), "username", Some(Cow::Owned(fix(name)))),
            var(Some('d'), "domain", domain.map(|d| Cow::Owned(fix(d)))),
            var(Some('s'), "service", Some(Cow::Owned(self.service.clone()))),
            var(Some('l'), "lip", opt(&self.local_ip)),
            var(Some('r'), "rip", opt(&self.remote_ip)),
            var(Some('a'), "lport", opt(&self.local_port)),
            var(Some('b'), "rport", opt(&self.remote_port)),
            var(Some('m'), "mech", opt(&self.mech)),
            var(Some('c'), "secured", self.secured.then_some(Cow::Borrowed("secured"))),
            var(Some('w'), "password", opt(&self.password)),
            var(Some('p'), "pid", opt(&self.pid)),
            var(None, "session", opt(&self.session)),
            var(None, "master_user", opt(&self.master_user)),
            var(None, "login_user", opt(&self.login_user)),
            var(None, "local_ip", opt(&self.local_ip)),
            var(None, "remote_ip", opt(&self.remote_ip)),
        ]
    }

    /// Expands `template` with these variables.
    pub fn expand(&self, template: &str, what: &str) -> Result<String, DbError> {
        var_expand::expand(template, &self.variables(false))
            .map_err(|source| DbError::Expand { what: what.to_string(), source })
    }

    /// Expands `template` with every variable value passed through `escape`
    /// first (Dovecot escapes the table, so modifiers see escaped values):
    /// SQL string escaping, LDAP filter/DN escaping.
    pub fn expand_escaped(
        &self,
        template: &str,
        what: &str,
        escape: fn(&str) -> String,
    ) -> Result<String, DbError> {
        let mut vars = self.variables(false);
        for var in &mut vars {
            if let Some(value) = var.value.take() {
                var.value = Some(Cow::Owned(escape(&value)));
            }
        }
        var_expand::expand(template, &vars)
            .map_err(|source| DbError::Expand { what: what.to_string(), source })
    }
}

/// An ordered `key=value` list where setting a key replaces its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraFields(pub Vec<(String, String)>);

impl ExtraFields {
    /// Sets `key` (replacing an earlier value).
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    /// Value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(pos).1)
    }

    /// True when `key` is set.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// What a passdb lookup found, before password verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassdbEntry {
    /// The user name after the lookup (a `user=` field can change it).
    pub user: String,
    /// Stored password, possibly with `{SCHEME}`; `None` when there is none.
    pub password: Option<String>,
    /// Scheme for passwords without a prefix (`default_pass_scheme`).
    pub default_scheme: String,
    /// passdb extra fields (`nologin`, `proxy`, `host`, `nopassword`...).
    pub fields: ExtraFields,
    /// `userdb_*` fields with the prefix removed (prefetch userdb).
    pub userdb_fields: ExtraFields,
}

impl PassdbEntry {
    /// Applies one passdb field the way Dovecot's `auth_request_set_field`
    /// does: `user`/`username`/`domain` change the user name, `password`
    /// sets the stored password, `userdb_*` goes to the userdb reply, the
    /// rest are extra fields.
    pub fn set_field(&mut self, key: &str, value: &str) {
        match key {
            "user" => self.user = value.to_string(),
            "username" => {
                self.user = match self.user.split_once('@') {
                    Some((_, d)) if !value.contains('@') => format!("{value}@{d}"),
                    _ => value.to_string(),
                }
            }
            "domain" => {
                let name = self.user.split('@').next().unwrap_or("").to_string();
                self.user = if value.is_empty() { name } else { format!("{name}@{value}") };
            }
            "password" => self.password = Some(value.to_string()),
            "password_noscheme" => self.password = Some(format!("{{{}}}{value}", self.default_scheme)),
            _ => match key.strip_prefix("userdb_") {
                Some(ukey) => self.userdb_fields.set(ukey, value),
                None => self.fields.set(key, value),
            },
        }
    }
}

/// The answer of a driver's own plaintext check ([`sql::SqlDb::verify_plain`],
/// [`ldap::LdapDb::verify_plain`]): the passdb result and, when the user
/// was found, what the passdb returned. Internal failures are `Err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainVerify {
    /// `Ok`, `UserUnknown` or `PasswordMismatch` (or what
    /// [`verify_password`] says about an unusable stored password).
    pub result: PassdbResult,
    /// The entry found, with its extra fields.
    pub entry: Option<PassdbEntry>,
}

/// Verifies `plain` against what a passdb found: `nopassword` accepts any
/// password, a missing password or an unknown scheme is an internal
/// failure, a wrong one a mismatch.
pub fn verify_password(entry: &PassdbEntry, plain: &[u8]) -> PassdbResult {
    if entry.fields.has("nopassword") {
        return PassdbResult::Ok;
    }
    let Some(stored) = entry.password.as_deref() else {
        return PassdbResult::InternalFailure;
    };
    match scheme::verify(plain, stored, &entry.default_scheme, &entry.user) {
        Ok(true) => PassdbResult::Ok,
        Ok(false) => PassdbResult::PasswordMismatch,
        Err(_) => PassdbResult::InternalFailure,
    }
}

/// Credentials in `wanted` scheme for a mechanism (empty `wanted` = only
/// "may log in").
pub fn lookup_credentials(entry: &PassdbEntry, wanted: &str) -> Result<Vec<u8>, PassdbResult> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let Some(stored) = entry.password.as_deref() else {
        return Err(PassdbResult::SchemeNotAvailable);
    };
    scheme::credentials(stored, &entry.default_scheme, wanted, &entry.user).map_err(|e| match e {
        SchemeError::SchemeNotAvailable { .. } => PassdbResult::SchemeNotAvailable,
        _ => PassdbResult::InternalFailure,
    })
}

/// Splits driver `args` into space-separated words (no quoting, as 2.3's
/// `t_strsplit_spaces`).
pub(crate) fn words(args: &str) -> impl Iterator<Item = &str> {
    args.split([' ', '\t']).filter(|w| !w.is_empty())
}
