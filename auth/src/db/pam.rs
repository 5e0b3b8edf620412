//! The pam passdb: `args = [session=yes] [setcred=yes] [failure_show_msg=yes]
//! [max_requests=<n>] [cache_key=<key>] [blocking=yes] [*] [<service>]`
//! (service `dovecot` by default, `*` = the request's service). PAM can only
//! verify a plaintext password, never hand out credentials, and it blocks,
//! so it always runs in an auth-worker; a worker exits after
//! `max_requests` (default 100) PAM transactions, as Dovecot's does, because
//! PAM modules leak.
//!
//! Results as Dovecot maps them: success → OK, `PAM_USER_UNKNOWN` → unknown
//! user, `PAM_NEW_AUTHTOK_REQD`/`PAM_ACCT_EXPIRED` → password expired,
//! anything else → password mismatch; pam_start/pam_end failures → internal
//! failure.

use super::sys::{self, PamOptions};
use super::{words, DbError, PassdbEntry, RequestVars};
use crate::mech::PassdbResult;

/// Dovecot's default `max_requests`.
pub const DEFAULT_MAX_REQUESTS: u32 = 100;

/// Parsed `args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamArgs {
    /// PAM service; `None` = the request's service (`*`).
    pub service: Option<String>,
    /// `session=yes`.
    pub session: bool,
    /// `setcred=yes`.
    pub setcred: bool,
    /// `failure_show_msg=yes`: PAM's message becomes the failure reason.
    pub failure_show_msg: bool,
    /// PAM transactions per worker process.
    pub max_requests: u32,
    /// `cache_key=` (enables the auth cache for this passdb).
    pub cache_key: Option<String>,
}

impl PamArgs {
    /// Parses the args string.
    pub fn parse(args: &str) -> Result<Self, DbError> {
        let mut out = PamArgs {
            service: Some("dovecot".into()),
            session: false,
            setcred: false,
            failure_show_msg: false,
            max_requests: DEFAULT_MAX_REQUESTS,
            cache_key: None,
        };
        let list: Vec<&str> = words(args).collect();
        for (i, word) in list.iter().enumerate() {
            match *word {
                "-session" | "session=yes" => out.session = true,
                "setcred=yes" => out.setcred = true,
                "failure_show_msg=yes" => out.failure_show_msg = true,
                "blocking=yes" => {}
                "*" => out.service = None,
                w if w.starts_with("cache_key=") => out.cache_key = Some(w["cache_key=".len()..].to_string()),
                w if w.starts_with("max_requests=") => {
                    out.max_requests = w["max_requests=".len()..].parse().map_err(|_| DbError::Args {
                        driver: "pam",
                        reason: format!("Invalid value for max_requests: {w}"),
                    })?
                }
                w if i + 1 == list.len() => out.service = Some(w.to_string()),
                w => {
                    return Err(DbError::Args {
                        driver: "pam",
                        reason: format!("Unexpected PAM parameter: {w}"),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// What a PAM verification produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamVerify {
    /// The passdb result.
    pub result: PassdbResult,
    /// The entry (user name possibly changed by PAM; `reason` with
    /// failure_show_msg).
    pub entry: PassdbEntry,
    /// Log text for failures (`pam_authenticate() failed: ...`).
    pub error: Option<String>,
}

/// The pam passdb driver.
#[derive(Debug, Clone)]
pub struct PamDb {
    args: PamArgs,
    requests: u32,
}

impl PamDb {
    /// A driver for parsed args.
    pub fn new(args: PamArgs) -> Self {
        PamDb { args, requests: 0 }
    }

    /// The args.
    pub fn args(&self) -> &PamArgs {
        &self.args
    }

    /// True once this process has run `max_requests` transactions.
    pub fn exhausted(&self) -> bool {
        self.args.max_requests != 0 && self.requests >= self.args.max_requests
    }

    /// Runs the PAM transaction (blocking).
    pub fn verify(&mut self, vars: &RequestVars, password: &[u8]) -> PamVerify {
        self.requests += 1;
        let service = self.args.service.clone().unwrap_or_else(|| vars.service.to_ascii_lowercase());
        let opts = PamOptions {
            service: &service,
            remote_ip: vars.remote_ip.as_deref(),
            setcred: self.args.setcred,
            session: self.args.session,
        };
        let outcome = sys::pam_authenticate_user(&vars.user, password, &opts);
        let mut entry = PassdbEntry {
            user: outcome.user.clone().unwrap_or_else(|| vars.user.clone()),
            default_scheme: "PLAIN".into(),
            ..Default::default()
        };
        let result = match outcome.status {
            None => PassdbResult::InternalFailure,
            Some(sys::PAM_SUCCESS) => PassdbResult::Ok,
            Some(sys::PAM_USER_UNKNOWN) => PassdbResult::UserUnknown,
            Some(sys::PAM_NEW_AUTHTOK_REQD) | Some(sys::PAM_ACCT_EXPIRED) => PassdbResult::PassExpired,
            Some(_) => PassdbResult::PasswordMismatch,
        };
        if result != PassdbResult::Ok && self.args.failure_show_msg {
            if let Some(msg) = outcome.messages.last() {
                entry.fields.set("reason", msg);
            }
        }
        PamVerify { result, entry, error: outcome.error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let a = PamArgs::parse("").unwrap();
        assert_eq!(a.service.as_deref(), Some("dovecot"));
        assert_eq!(a.max_requests, 100);
        let a = PamArgs::parse("session=yes setcred=yes max_requests=5 failure_show_msg=yes imap2").unwrap();
        assert!(a.session && a.setcred && a.failure_show_msg);
        assert_eq!((a.max_requests, a.service.as_deref()), (5, Some("imap2")));
        assert_eq!(PamArgs::parse("*").unwrap().service, None);
        assert!(PamArgs::parse("bogus other").is_err());
    }
}
