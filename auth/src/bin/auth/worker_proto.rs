//! The auth ↔ auth-worker protocol. Dovecot's is internal to Dovecot, so
//! this one is ours: tab-separated lines with Dovecot's tab escaping, one
//! request in flight per connection (each `auth -w` process serves one
//! connection, `client_limit = 1`), the auth process connecting to the
//! `auth-worker` socket as many times as it needs parallel lookups (at most
//! `auth_worker_max_count`).
//!
//! ```text
//! auth → worker   HELLO  <version=1> <db hash>
//!                 PASSV  <id> <passdb#> <password> <vars…>   verify a password
//!                 PASSL  <id> <passdb#> <vars…>              look up, no password check
//!                 USER   <id> <userdb#> <vars…>              userdb lookup
//!                 LIST   <id> <userdb#>                      iterate users
//! worker → auth   PASS   <id> <result> <user> <fields…>      result of PASSV/PASSL
//!                 USER   <id> ok|notfound|passdbcheck|fail <fields…>
//!                 LIST   <id> <user>                         one per user, then
//!                 DONE   <id> ok|fail
//!                 LOG    <id> info|error <text>              a log line for the request
//! ```
//!
//! `<vars…>` are `key=value` fields describing the request (`user`,
//! `service`, `lip`, `rip`, `lport`, `rport`, `mech`, `secured`, `session`,
//! `master_user`, `login_user`, `pid`); `<result>` is one of `ok`,
//! `unknown`, `mismatch`, `disabled`, `expired`, `nocreds`, `internal`;
//! PASS fields are the passdb's extra fields (`password=` carries the stored
//! password for PASSL, `userdb_*` the prefetched userdb fields). A worker
//! whose `db hash` differs from its own (started from another configuration
//! generation) answers every request with an internal failure. A worker that
//! must restart (PAM `max_requests`) answers, then closes the connection and
//! exits; the auth process opens a new connection for the next request.

use dovecote_auth::db::{ExtraFields, PassdbEntry, RequestVars};
use dovecote_auth::mech::PassdbResult;
use dovecote_auth::protocol::escape::{tab_escape, tab_unescape};

/// Protocol version in `HELLO`.
pub const VERSION: &str = "1";

/// A request from the auth process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerRequest {
    /// `HELLO`.
    Hello {
        /// The auth process's db hash.
        db_hash: String,
    },
    /// `PASSV`: verify.
    Verify {
        /// Request id.
        id: u64,
        /// passdb index.
        passdb: usize,
        /// The plaintext password.
        password: String,
        /// The request.
        vars: RequestVars,
    },
    /// `PASSL`: lookup only.
    Lookup {
        /// Request id.
        id: u64,
        /// passdb index.
        passdb: usize,
        /// The request.
        vars: RequestVars,
    },
    /// `USER`.
    User {
        /// Request id.
        id: u64,
        /// userdb index.
        userdb: usize,
        /// The request.
        vars: RequestVars,
    },
    /// `LIST`.
    List {
        /// Request id.
        id: u64,
        /// userdb index.
        userdb: usize,
    },
}

/// A reply from a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerReply {
    /// `PASS`.
    Pass {
        /// Request id.
        id: u64,
        /// Result.
        result: PassdbResult,
        /// What the passdb found (`None` when nothing).
        entry: Option<PassdbEntry>,
    },
    /// `USER`.
    User {
        /// Request id.
        id: u64,
        /// `ok`, `notfound`, `passdbcheck` or `fail`.
        status: String,
        /// Fields.
        fields: ExtraFields,
    },
    /// `LIST`.
    List {
        /// Request id.
        id: u64,
        /// One user.
        user: String,
    },
    /// `DONE`.
    Done {
        /// Request id.
        id: u64,
        /// Iteration failed.
        failed: bool,
    },
    /// `LOG`.
    Log {
        /// Request id.
        id: u64,
        /// Error level (else info, shown with `auth_verbose`).
        error: bool,
        /// Text, with Dovecot's `driver(user,rip): ` prefix.
        text: String,
    },
}

fn push(out: &mut String, value: &str) {
    out.push('\t');
    out.push_str(&tab_escape(value));
}

fn push_vars(out: &mut String, vars: &RequestVars) {
    push(out, &format!("user={}", vars.user));
    push(out, &format!("service={}", vars.service));
    let opt = [
        ("lip", &vars.local_ip),
        ("rip", &vars.remote_ip),
        ("lport", &vars.local_port),
        ("rport", &vars.remote_port),
        ("mech", &vars.mech),
        ("session", &vars.session),
        ("master_user", &vars.master_user),
        ("login_user", &vars.login_user),
        ("pid", &vars.pid),
    ];
    for (key, value) in opt {
        if let Some(v) = value {
            push(out, &format!("{key}={v}"));
        }
    }
    if vars.secured {
        push(out, "secured");
    }
}

fn parse_vars(fields: &[String]) -> RequestVars {
    let mut vars = RequestVars::default();
    for f in fields {
        let (key, value) = f.split_once('=').unwrap_or((f, ""));
        let v = Some(value.to_string());
        match key {
            "user" => vars.user = value.to_string(),
            "service" => vars.service = value.to_string(),
            "lip" => vars.local_ip = v,
            "rip" => vars.remote_ip = v,
            "lport" => vars.local_port = v,
            "rport" => vars.remote_port = v,
            "mech" => vars.mech = v,
            "session" => vars.session = v,
            "master_user" => vars.master_user = v,
            "login_user" => vars.login_user = v,
            "pid" => vars.pid = v,
            "secured" => vars.secured = true,
            _ => {}
        }
    }
    vars
}

fn split(line: &[u8]) -> Option<Vec<String>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.split(|b| *b == b'\t').map(|f| String::from_utf8(tab_unescape(f)).ok()).collect()
}

/// `PassdbResult` ↔ wire word.
pub fn result_word(result: PassdbResult) -> &'static str {
    match result {
        PassdbResult::Ok => "ok",
        PassdbResult::UserUnknown => "unknown",
        PassdbResult::PasswordMismatch => "mismatch",
        PassdbResult::UserDisabled => "disabled",
        PassdbResult::PassExpired => "expired",
        PassdbResult::SchemeNotAvailable => "nocreds",
        PassdbResult::InternalFailure | PassdbResult::Next => "internal",
    }
}

fn parse_result(word: &str) -> PassdbResult {
    match word {
        "ok" => PassdbResult::Ok,
        "unknown" => PassdbResult::UserUnknown,
        "mismatch" => PassdbResult::PasswordMismatch,
        "disabled" => PassdbResult::UserDisabled,
        "expired" => PassdbResult::PassExpired,
        "nocreds" => PassdbResult::SchemeNotAvailable,
        _ => PassdbResult::InternalFailure,
    }
}

impl WorkerRequest {
    /// The line with its newline.
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        match self {
            WorkerRequest::Hello { db_hash } => {
                out.push_str("HELLO");
                push(&mut out, VERSION);
                push(&mut out, db_hash);
            }
            WorkerRequest::Verify { id, passdb, password, vars } => {
                out.push_str(&format!("PASSV\t{id}\t{passdb}"));
                push(&mut out, password);
                push_vars(&mut out, vars);
            }
            WorkerRequest::Lookup { id, passdb, vars } => {
                out.push_str(&format!("PASSL\t{id}\t{passdb}"));
                push_vars(&mut out, vars);
            }
            WorkerRequest::User { id, userdb, vars } => {
                out.push_str(&format!("USER\t{id}\t{userdb}"));
                push_vars(&mut out, vars);
            }
            WorkerRequest::List { id, userdb } => out.push_str(&format!("LIST\t{id}\t{userdb}")),
        }
        out.push('\n');
        out
    }

    /// Parses a line (with or without its newline).
    pub fn parse(line: &[u8]) -> Option<Self> {
        let f = split(line)?;
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let idx = |i: usize| f.get(i).and_then(|v| v.parse::<usize>().ok());
        Some(match f.first()?.as_str() {
            "HELLO" if f.get(1).map(String::as_str) == Some(VERSION) => {
                WorkerRequest::Hello { db_hash: f.get(2)?.clone() }
            }
            "PASSV" => WorkerRequest::Verify {
                id: num(1)?,
                passdb: idx(2)?,
                password: f.get(3)?.clone(),
                vars: parse_vars(f.get(4..).unwrap_or(&[])),
            },
            "PASSL" => WorkerRequest::Lookup {
                id: num(1)?,
                passdb: idx(2)?,
                vars: parse_vars(f.get(3..).unwrap_or(&[])),
            },
            "USER" => WorkerRequest::User {
                id: num(1)?,
                userdb: idx(2)?,
                vars: parse_vars(f.get(3..).unwrap_or(&[])),
            },
            "LIST" => WorkerRequest::List { id: num(1)?, userdb: idx(2)? },
            _ => return None,
        })
    }
}

impl WorkerReply {
    /// The line with its newline.
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        match self {
            WorkerReply::Pass { id, result, entry } => {
                out.push_str(&format!("PASS\t{id}\t{}", result_word(*result)));
                match entry {
                    Some(e) => {
                        push(&mut out, &e.user);
                        if let Some(p) = &e.password {
                            push(&mut out, &format!("password={p}"));
                        }
                        push(&mut out, &format!("dovecote_scheme={}", e.default_scheme));
                        for (k, v) in &e.fields.0 {
                            push(&mut out, &format!("{k}={v}"));
                        }
                        for (k, v) in &e.userdb_fields.0 {
                            push(&mut out, &format!("userdb_{k}={v}"));
                        }
                    }
                    None => out.push('\t'),
                }
            }
            WorkerReply::User { id, status, fields } => {
                out.push_str(&format!("USER\t{id}\t{status}"));
                for (k, v) in &fields.0 {
                    push(&mut out, &format!("{k}={v}"));
                }
            }
            WorkerReply::List { id, user } => {
                out.push_str(&format!("LIST\t{id}"));
                push(&mut out, user);
            }
            WorkerReply::Done { id, failed } => {
                out.push_str(&format!("DONE\t{id}\t{}", if *failed { "fail" } else { "ok" }))
            }
            WorkerReply::Log { id, error, text } => {
                out.push_str(&format!("LOG\t{id}\t{}", if *error { "error" } else { "info" }));
                push(&mut out, text);
            }
        }
        out.push('\n');
        out
    }

    /// Parses a line (with or without its newline).
    pub fn parse(line: &[u8]) -> Option<Self> {
        let f = split(line)?;
        let id = f.get(1)?.parse::<u64>().ok()?;
        Some(match f.first()?.as_str() {
            "PASS" => {
                let result = parse_result(f.get(2)?);
                let user = f.get(3)?.clone();
                let entry = if user.is_empty() {
                    None
                } else {
                    let mut e = PassdbEntry { user, ..Default::default() };
                    for field in f.get(4..).unwrap_or(&[]) {
                        let (k, v) = field.split_once('=').unwrap_or((field, ""));
                        if k == "dovecote_scheme" {
                            e.default_scheme = v.to_string();
                        } else {
                            // `user` inside fields never appears: the
                            // fixed field carries the name.
                            e.set_field(k, v);
                        }
                    }
                    Some(e)
                };
                WorkerReply::Pass { id, result, entry }
            }
            "USER" => {
                let mut fields = ExtraFields::default();
                for field in f.get(3..).unwrap_or(&[]) {
                    let (k, v) = field.split_once('=').unwrap_or((field, ""));
                    fields.0.push((k.to_string(), v.to_string()));
                }
                WorkerReply::User { id, status: f.get(2)?.clone(), fields }
            }
            "LIST" => WorkerReply::List { id, user: f.get(2)?.clone() },
            "DONE" => WorkerReply::Done { id, failed: f.get(2).map(String::as_str) != Some("ok") },
            "LOG" => WorkerReply::Log { id, error: f.get(2)? == "error", text: f.get(3)?.clone() },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut vars = RequestVars::new("tim", "imap");
        vars.remote_ip = Some("1.2.3.4".into());
        vars.secured = true;
        let reqs = [
            WorkerRequest::Hello { db_hash: "abc".into() },
            WorkerRequest::Verify { id: 7, passdb: 1, password: "p\tw".into(), vars: vars.clone() },
            WorkerRequest::Lookup { id: 8, passdb: 0, vars: vars.clone() },
            WorkerRequest::User { id: 9, userdb: 2, vars },
            WorkerRequest::List { id: 10, userdb: 0 },
        ];
        for r in reqs {
            assert_eq!(WorkerRequest::parse(r.to_line().as_bytes()), Some(r));
        }
        let mut entry =
            PassdbEntry { user: "tim".into(), default_scheme: "CRYPT".into(), ..Default::default() };
        entry.password = Some("$6$x".into());
        entry.fields.set("nologin", "");
        entry.userdb_fields.set("mail", "maildir:~/M");
        let replies = [
            WorkerReply::Pass { id: 1, result: PassdbResult::Ok, entry: Some(entry) },
            WorkerReply::Pass { id: 2, result: PassdbResult::UserUnknown, entry: None },
            WorkerReply::User {
                id: 3,
                status: "ok".into(),
                fields: ExtraFields(vec![("uid".into(), "5".into())]),
            },
            WorkerReply::List { id: 4, user: "a b".into() },
            WorkerReply::Done { id: 4, failed: false },
            WorkerReply::Log { id: 4, error: true, text: "x".into() },
        ];
        for r in replies {
            assert_eq!(WorkerReply::parse(r.to_line().as_bytes()), Some(r));
        }
        assert_eq!(WorkerRequest::parse(b"PASSV\tx"), None);
    }
}
