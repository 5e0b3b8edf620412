//! One auth request's data and the pure parts of its handling: user name
//! normalisation (`auth_default_realm`, `auth_username_chars`,
//! `auth_username_translation`, `auth_username_format`,
//! `auth_master_user_separator`), passdb/userdb field handling, and the
//! exact `OK`/`FAIL`/`USER` reply lines of Dovecot 2.3.

use std::net::IpAddr;
use std::time::Instant;

use dovecote_auth::db::chain::{PassdbChain, UserdbChain};
use dovecote_auth::db::passwd::LOCKED_FIELD;
use dovecote_auth::db::{ExtraFields, RequestVars};
use dovecote_auth::mech::{Mechanism, PassdbResult};
use dovecote_auth::protocol::escape::tab_escape;
use dovecote_config::Net;

use crate::settings::AuthSettings;

/// What started the request and where its answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `AUTH` on an auth-client connection.
    Auth,
    /// `USER` on a master/userdb connection.
    MasterUser,
    /// `PASS` on a master/userdb connection.
    MasterPass,
    /// `REQUEST` (userdb step of a finished login).
    MasterRequest,
}

/// What the passdb chain is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Verify this plaintext password.
    Verify(Vec<u8>),
    /// Fetch credentials in this scheme for the mechanism.
    Credentials(&'static str),
    /// Only find the user (PASS, static userdb existence check).
    Lookup,
}

/// Where the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the client's `CONT`.
    MechContinue,
    /// SCRAM's final message sent as `CONT`; waiting for the empty answer.
    FinalAck,
    /// A passdb lookup is running (maybe in a worker).
    Passdb,
    /// A userdb lookup is running.
    Userdb,
    /// Authenticated on a login connection; waiting for the master's
    /// `REQUEST` (one-shot).
    Finished,
}

/// One request.
pub struct Request {
    /// Where it came from.
    pub origin: Origin,
    /// The connection (client id in the runtime) that gets the reply.
    pub conn: usize,
    /// The id on that connection.
    pub id: u32,
    /// State.
    pub state: State,
    /// Creation / last activity.
    pub last_access: Instant,
    /// Request variables; `vars.user` is the current user name.
    pub vars: RequestVars,
    /// The name the client sent, before normalisation.
    pub original_user: Option<String>,
    /// Whether a user name is set yet.
    pub user_known: bool,
    /// The user a master user logs in as (normalised).
    pub login_user: Option<String>,
    /// The authenticated master user.
    pub master_user: Option<String>,
    /// Mechanism name (upper case).
    pub mech_name: String,
    /// The mechanism.
    pub mech: Option<Box<dyn Mechanism>>,
    /// `final-resp-ok`.
    pub final_resp_ok: bool,
    /// The plaintext password the mechanism got (for `pass=` with proxy).
    pub mech_password: Option<String>,
    /// passdb extra fields collected so far.
    pub extra: ExtraFields,
    /// Fields of the last failing passdb (its `reason=` etc.).
    pub fail_fields: ExtraFields,
    /// `userdb_*` fields from passdbs (prefetch).
    pub prefetch: ExtraFields,
    /// userdb reply fields.
    pub userdb_reply: ExtraFields,
    /// Running passdb chain.
    pub passdb_chain: Option<PassdbChain<'static>>,
    /// Running userdb chain.
    pub userdb_chain: Option<UserdbChain<'static>>,
    /// What the passdb chain is for.
    pub purpose: Purpose,
    /// Credentials found for `Purpose::Credentials`.
    pub credentials: Option<Vec<u8>>,
    /// Last passdb result.
    pub passdb_result: PassdbResult,
    /// The failure is temporary.
    pub internal_failure: bool,
    /// Authentication succeeded.
    pub successful: bool,
    /// Passdb stored password found by a lookup (PASS replies).
    pub passdb_user: Option<String>,
    /// userdb lookups after a login: static userdbs need no existence check.
    pub authenticated: bool,
    /// `cert_username=` of a verified client certificate.
    pub cert_username: Option<String>,
    /// The client IP's auth penalty when the request began.
    pub last_penalty: u32,
    /// The anvil ident penalties are counted on (`None`: no remote IP, or
    /// the client asked for `no-penalty`).
    pub penalty_ident: Option<String>,
}

impl Request {
    /// A new request.
    pub fn new(origin: Origin, conn: usize, id: u32, vars: RequestVars) -> Self {
        Request {
            origin,
            conn,
            id,
            state: State::Passdb,
            last_access: Instant::now(),
            vars,
            original_user: None,
            user_known: false,
            login_user: None,
            master_user: None,
            mech_name: String::new(),
            mech: None,
            final_resp_ok: false,
            mech_password: None,
            extra: ExtraFields::default(),
            fail_fields: ExtraFields::default(),
            prefetch: ExtraFields::default(),
            userdb_reply: ExtraFields::default(),
            passdb_chain: None,
            userdb_chain: None,
            purpose: Purpose::Lookup,
            credentials: None,
            passdb_result: PassdbResult::InternalFailure,
            internal_failure: false,
            successful: false,
            cert_username: None,
            last_penalty: 0,
            penalty_ident: None,
            passdb_user: None,
            authenticated: false,
        }
    }

    /// `driver(user,rip)` as Dovecot prefixes auth log lines.
    pub fn log_prefix(&self, subsystem: &str) -> String {
        let user = if self.user_known { self.vars.user.as_str() } else { "?" };
        match &self.vars.remote_ip {
            Some(rip) => format!("{subsystem}({user},{rip})"),
            None => format!("{subsystem}({user})"),
        }
    }
}

/// `auth_request_fix_username`: realm, allowed characters, translation,
/// format. `Err` is the log message.
pub fn fix_username(set: &AuthSettings, raw: &str, service: &str) -> Result<String, String> {
    let mut user = raw.to_string();
    if !user.contains('@') && !set.default_realm.is_empty() {
        user = format!("{user}@{}", set.default_realm);
    }
    if let Some(c) = set.username_chars_ok(&user) {
        return Err(format!(
            "Username character disallowed by auth_username_chars: 0x{:02x} (username: {raw})",
            u32::from(c)
        ));
    }
    if !set.username_translation.is_empty() {
        user = user
            .chars()
            .map(|c| set.username_translation.iter().find(|(from, _)| *from == c).map_or(c, |(_, to)| *to))
            .collect();
    }
    if !set.username_format.is_empty() {
        user = RequestVars::new(&user, service)
            .expand(&set.username_format, "auth_username_format")
            .map_err(|e| e.to_string())?;
    }
    if user.is_empty() {
        return Err("Empty username".into());
    }
    Ok(user)
}

/// Splits `login*master` at `auth_master_user_separator`.
pub fn split_master(set: &AuthSettings, name: &str) -> Option<(String, String)> {
    let sep = set.master_user_separator?;
    let (login, master) = name.split_once(sep)?;
    Some((login.to_string(), master.to_string()))
}

/// Fields the auth process consumes and never sends to clients.
pub fn is_hidden(key: &str) -> bool {
    matches!(key, "nopassword" | "noauthenticate" | "nodelay" | "allow_nets" | "allow_real_nets" | "password")
        || key == LOCKED_FIELD
}

/// `auth_fields_booleanize`: `yes`/`y`/empty → bare flag, `no` → removed.
pub fn booleanize(fields: &mut ExtraFields, key: &str) {
    if let Some(v) = fields.get(key).map(str::to_ascii_lowercase) {
        match v.as_str() {
            "" | "y" | "yes" => fields.set(key, ""),
            "n" | "no" => {
                fields.remove(key);
            }
            _ => {}
        }
    }
}

fn push_field(out: &mut String, key: &str, value: &str) {
    out.push('\t');
    if value.is_empty() {
        out.push_str(&tab_escape(key));
    } else {
        out.push_str(&tab_escape(&format!("{key}={value}")));
    }
}

fn push_kv(out: &mut String, key: &str, value: &str) {
    out.push('\t');
    out.push_str(key);
    out.push('=');
    out.push_str(&tab_escape(value));
}

/// Dovecot's `auth_str_append_extra_fields`.
fn append_extra_fields(req: &Request, fields: &ExtraFields, auth_only: bool, out: &mut String) {
    if !fields.0.is_empty() || !req.prefetch.0.is_empty() {
        let visible: Vec<&(String, String)> = fields.0.iter().filter(|(k, _)| !is_hidden(k)).collect();
        if visible.is_empty() {
            out.push('\t');
        }
        for (k, v) in visible {
            push_field(out, k, v);
        }
    }
    let user = req.user_known.then_some(req.vars.user.as_str());
    if let Some(orig) = &req.original_user {
        if Some(orig.as_str()) != user && !fields.has("original_user") {
            push_kv(out, "original_user", orig);
        }
    }
    if let Some(master) = &req.master_user {
        if !fields.has("auth_user") {
            push_kv(out, "auth_user", master);
        }
    }
    if !auth_only && fields.has("proxy") {
        if let (false, Some(pass)) = (fields.has("pass"), &req.mech_password) {
            push_kv(out, "pass", pass);
        }
        if let (false, Some(master)) = (fields.has("master"), &req.master_user) {
            push_kv(out, "master", master);
        }
    }
}

/// The `OK` line for a successful authentication (without newline).
pub fn ok_line(req: &mut Request, auth_only: bool, final_resp: Option<String>) -> String {
    booleanize(&mut req.extra, "nologin");
    booleanize(&mut req.extra, "proxy");
    let mut fields = req.extra.clone();
    if let Some(resp) = final_resp {
        fields.set("resp", &resp);
    }
    let mut out = format!("OK\t{}\tuser={}", req.id, tab_escape(&req.vars.user));
    append_extra_fields(req, &fields, auth_only, &mut out);
    out
}

/// The `FAIL` line for a failed authentication (without newline).
pub fn fail_line(req: &Request, auth_only: bool) -> String {
    let mut out = format!("FAIL\t{}", req.id);
    if req.user_known {
        push_kv(&mut out, "user", &req.vars.user);
    } else if let Some(orig) = &req.original_user {
        push_kv(&mut out, "user", orig);
    }
    let code = if req.internal_failure {
        Some("temp_fail")
    } else if req.master_user.is_some() && req.passdb_result == PassdbResult::Ok {
        Some("authz_fail")
    } else {
        match req.passdb_result {
            PassdbResult::UserDisabled => Some("user_disabled"),
            PassdbResult::PassExpired => Some("pass_expired"),
            _ => None,
        }
    };
    if let Some(code) = code {
        out.push_str("\tcode=");
        out.push_str(code);
    }
    let mut fields = req.fail_fields.clone();
    fields.remove("nologin");
    if fields.has("nodelay") || req.extra.has("nodelay") {
        out.push_str("\tnodelay");
    }
    append_extra_fields(req, &fields, auth_only, &mut out);
    out
}

/// The `USER` reply of a userdb lookup (without newline).
pub fn user_line(req: &Request, id: u32, set: &AuthSettings) -> String {
    let mut out = format!("USER\t{id}\t{}", tab_escape(&req.vars.user));
    for (k, v) in &req.userdb_reply.0 {
        push_field(&mut out, k, v);
    }
    if let Some(master) = &req.master_user {
        if !req.userdb_reply.has("master_user") {
            push_kv(&mut out, "master_user", master);
        }
    }
    if !set.anonymous_username.is_empty() && req.vars.user == set.anonymous_username {
        out.push_str("\tanonymous");
    }
    if let Some(master) = &req.master_user {
        push_kv(&mut out, "auth_user", master);
    } else if let Some(orig) = &req.original_user {
        if *orig != req.vars.user {
            push_kv(&mut out, "auth_user", orig);
        }
    }
    if req.origin == Origin::MasterRequest && !req.mech_name.is_empty() {
        push_kv(&mut out, "auth_mech", &req.mech_name);
    }
    out
}

/// The `PASS` reply (without newline).
pub fn pass_line(req: &Request, id: u32) -> String {
    let mut out = format!("PASS\t{id}\tuser={}", tab_escape(&req.vars.user));
    let mut fields = req.extra.clone();
    booleanize(&mut fields, "nologin");
    booleanize(&mut fields, "proxy");
    if !fields.0.is_empty() || !req.prefetch.0.is_empty() {
        let visible: Vec<&(String, String)> = fields.0.iter().filter(|(k, _)| !is_hidden(k)).collect();
        if visible.is_empty() {
            out.push('\t');
        }
        for (k, v) in visible {
            push_field(&mut out, k, v);
        }
    }
    out
}

/// `allow_nets`: `Ok(())` when the remote IP is allowed, else the log text.
pub fn check_allow_nets(list: &str, remote_ip: Option<&str>) -> Result<(), String> {
    let ip: Option<IpAddr> = remote_ip.and_then(|r| r.parse().ok());
    for word in list.split([',', ' ']).filter(|w| !w.is_empty()) {
        if word == "local" {
            if ip.is_none() {
                return Ok(());
            }
            continue;
        }
        let (addr, bits) = match word.split_once('/') {
            Some((a, b)) => (a, b.parse::<u8>().ok()),
            None => (word, None),
        };
        let Ok(addr) = addr.parse::<IpAddr>() else { continue };
        let bits = bits.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        if ip.is_some_and(|ip| Net { addr, bits }.contains(&ip)) {
            return Ok(());
        }
    }
    Err(match ip {
        Some(ip) => format!("allow_nets check failed: IP {ip} not in allowed networks"),
        None => "allow_nets check failed: Remote IP not known and 'local' missing".into(),
    })
}

/// Converts userdb `uid`/`gid` names to numbers as Dovecot does.
pub fn numeric_id(key: &str, value: &str) -> Result<String, String> {
    if value.parse::<u32>().is_ok() {
        return Ok(value.to_string());
    }
    let found = if key == "uid" {
        nix::unistd::User::from_name(value).ok().flatten().map(|u| u.uid.as_raw())
    } else {
        nix::unistd::Group::from_name(value).ok().flatten().map(|g| g.gid.as_raw())
    };
    found.map(|n| n.to_string()).ok_or_else(|| format!("Invalid {key} value '{value}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_nets() {
        assert!(check_allow_nets("127.0.0.0/8, ::1", Some("127.1.2.3")).is_ok());
        assert!(check_allow_nets("10.0.0.0/8", Some("127.1.2.3")).is_err());
        assert!(check_allow_nets("local", None).is_ok());
        assert!(check_allow_nets("10.0.0.1", None).is_err());
    }
}
