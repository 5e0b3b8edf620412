//! The protocol-neutral half of authentication in a login process
//! (Dovecot's `sasl-server.c` + `client-common-auth.c`): checking whether
//! a mechanism may start, and turning the auth service's replies into
//! [`AuthResult`]s that IMAP and POP3 each word in their own way.

use base64::Engine;

use crate::policy::{plaintext_allowed, Security};
use crate::settings::{LoginSettings, SslMode};

/// A SASL mechanism the auth service offers (its `MECH` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub name: String,
    /// Sends the password in the clear (PLAIN, LOGIN).
    pub plaintext: bool,
    /// Never advertised; usable only internally (e.g. APOP via its command).
    pub private: bool,
}

impl Mechanism {
    pub fn new(name: &str, plaintext: bool, private: bool) -> Mechanism {
        Mechanism { name: name.to_ascii_uppercase(), plaintext, private }
    }

    /// What Dovecot's mechanisms are, for the names in `auth_mechanisms`
    /// (used until the auth service announces its own list).
    pub fn from_setting(name: &str) -> Mechanism {
        let upper = name.to_ascii_uppercase();
        let plaintext = matches!(upper.as_str(), "PLAIN" | "LOGIN");
        let private = upper == "APOP";
        Mechanism { name: upper, plaintext, private }
    }
}

/// What the auth service answered to an AUTH or CONT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// `CONT`: a challenge, base64.
    Continue(String),
    /// `OK`: authenticated; `fields` are the extra `key=value`s (proxy,
    /// nologin, resp, …).
    Success { user: String, fields: Vec<(String, String)> },
    /// `FAIL`.
    Failure { code: Option<String>, reason: Option<String>, temporary: bool },
    /// The auth service could not be reached or the connection broke.
    Unavailable,
}

/// Dovecot's `client_auth_result` categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    AuthFailed,
    AuthFailedReason,
    AuthzFailed,
    TempFail,
    PassExpired,
    SslRequired,
    MechSslRequired,
    MechInvalid,
    InvalidBase64,
    Aborted,
    LoginDisabled,
}

/// `AUTH_FAILED_MSG`.
pub const AUTH_FAILED_MSG: &str = "Authentication failed.";
/// Said when the auth service cannot be reached.
pub const AUTH_SERVER_WAITING_MSG: &str = "Waiting for authentication process to respond..";
/// `AUTH_PLAINTEXT_DISABLED_MSG`.
pub const PLAINTEXT_DISABLED_MSG: &str =
    "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
/// The untagged IMAP alert sent before refusing a plaintext LOGIN.
pub const PLAINTEXT_EXPOSED_ALERT: &str = "Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.";

/// Checks whether `mech_name` may start on this connection
/// (`sasl_server_auth_begin`). `private_ok` is set for the internal uses
/// (IMAP LOGIN, POP3 USER/PASS and APOP).
pub fn check_begin<'a>(
    settings: &LoginSettings,
    sec: &Security,
    mechs: &'a [Mechanism],
    mech_name: &str,
    private_ok: bool,
) -> Result<&'a Mechanism, (AuthResult, &'static str)> {
    if settings.ssl == SslMode::Required && !sec.secured {
        return Err((AuthResult::SslRequired, "Authentication not allowed until SSL/TLS is enabled."));
    }
    let mech = mechs
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(mech_name) && (private_ok || !m.private))
        .ok_or((AuthResult::MechInvalid, "Unsupported authentication mechanism."))?;
    if mech.plaintext && !plaintext_allowed(settings, sec) {
        return Err((AuthResult::MechSslRequired, "Plaintext authentication disabled."));
    }
    Ok(mech)
}

/// Maps a FAIL from auth to a result and the text shown to the client.
pub fn failure_result(code: Option<&str>, reason: Option<&str>, temporary: bool) -> (AuthResult, String) {
    let reason_or = |default: &str| reason.filter(|r| !r.is_empty()).unwrap_or(default).to_owned();
    match code {
        Some("temp_fail") => (AuthResult::TempFail, reason_or("Temporary authentication failure.")),
        _ if temporary => (AuthResult::TempFail, reason_or("Temporary authentication failure.")),
        Some("authz_fail") => (AuthResult::AuthzFailed, reason_or("Authorization failed")),
        Some("user_disabled") => (AuthResult::LoginDisabled, reason_or("Login disabled for this user")),
        Some("pass_expired") => (AuthResult::PassExpired, reason_or("Password expired")),
        Some("invalid_base64") => (AuthResult::InvalidBase64, reason_or("Invalid base64 in response")),
        _ => match reason.filter(|r| !r.is_empty()) {
            Some(r) => (AuthResult::AuthFailedReason, r.to_owned()),
            None => (AuthResult::AuthFailed, AUTH_FAILED_MSG.to_owned()),
        },
    }
}

/// Whether `text` is valid base64 as a SASL response (an empty line is an
/// empty response).
pub fn is_base64(text: &[u8]) -> bool {
    text.is_empty() || base64::engine::general_purpose::STANDARD.decode(text).is_ok()
}

/// Base64 of `\0user\0password` (what IMAP LOGIN and POP3 PASS send as
/// PLAIN's initial response).
pub fn plain_response(user: &[u8], password: &[u8]) -> String {
    let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
    raw.push(0);
    raw.extend_from_slice(user);
    raw.push(0);
    raw.extend_from_slice(password);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// `nologin` in an OK (Dovecot's `client_auth_handle_reply`): the
/// password was right but the user may not log in here. The result and
/// text the client gets: the passdb's `reason=`, else by `temp`/`authz`,
/// else the generic failure.
pub fn nologin_result(fields: &[(String, String)]) -> Option<(AuthResult, String)> {
    let has = |k: &str| fields.iter().any(|(key, _)| key == k);
    if !has("nologin") {
        return None;
    }
    let reason = fields.iter().find(|(k, _)| k == "reason").map(|(_, v)| v.clone());
    Some(match reason {
        Some(r) => (AuthResult::AuthFailedReason, r),
        None if has("temp") => (AuthResult::TempFail, AUTH_TEMP_FAILED_MSG.to_owned()),
        None if has("authz") => (AuthResult::AuthzFailed, "Authorization failed".to_owned()),
        None => (AuthResult::AuthFailed, AUTH_FAILED_MSG.to_owned()),
    })
}

/// `AUTH_TEMP_FAILED_MSG`.
pub const AUTH_TEMP_FAILED_MSG: &str = "Temporary authentication failure.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        assert_eq!(plain_response(b"alice", b"secret"), "AGFsaWNlAHNlY3JldA==");
        assert!(is_base64(b"AGFsaWNlAHNlY3JldA=="));
        assert!(!is_base64(b"!!!"));
    }

    #[test]
    fn failures() {
        assert_eq!(failure_result(None, None, false), (AuthResult::AuthFailed, AUTH_FAILED_MSG.into()));
        assert_eq!(failure_result(Some("temp_fail"), Some("x"), false).0, AuthResult::TempFail);
        assert_eq!(
            failure_result(None, Some("Go away"), false),
            (AuthResult::AuthFailedReason, "Go away".into())
        );
    }

    #[test]
    fn nologin() {
        let f = |list: &[&str]| -> Vec<(String, String)> {
            list.iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        };
        assert_eq!(nologin_result(&f(&["proxy", "host=1.2.3.4"])), None);
        assert_eq!(
            nologin_result(&f(&["nologin", "reason=Moved away"])),
            Some((AuthResult::AuthFailedReason, "Moved away".into()))
        );
        assert_eq!(nologin_result(&f(&["nologin"])), Some((AuthResult::AuthFailed, AUTH_FAILED_MSG.into())));
    }
}
