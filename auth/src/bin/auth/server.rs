//! The auth service: Dovecot 2.3's auth-client protocol on `login/login`,
//! `auth-login`, `auth-client` (and any extra listener such as Postfix's
//! `private/auth`) and the auth-master/userdb protocol on `auth-master` and
//! `auth-userdb`, over one event loop that never blocks. passdb/userdb
//! lookups of blocking drivers go to auth-worker processes
//! ([`crate::workers`]); the rest run inline.
//!
//! Socket kinds follow the listener's name (`src/auth/main.c`): a name
//! ending in `login` (after its last `-`) is a login socket whose
//! successful requests wait for the master's one-shot `REQUEST`; `master`
//! allows `REQUEST`; `userdb` only lookups (on a 0666 socket, full access
//! only for peers with the socket's owner uid or gid; others may look up
//! only users with their own uid and may not `LIST`); `token`/`tokenlogin`
//! only DOVECOT-TOKEN; anything else is an auth-only client socket.
//!
//! Failed authentications are answered after `auth_failure_delay`,
//! flushed every 500 ms as Dovecot does, unless the passdb set `nodelay`.
//! AUTH requests from an IP with an auth penalty start only after the
//! penalty's delay ([`crate::penalty`]).

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use dovecote_auth::db::chain::{PassdbChain, PassdbStep, UserdbChain, UserdbResult, UserdbStep};
use dovecote_auth::db::driver::UserdbOutcome;
use dovecote_auth::db::{lookup_credentials, ExtraFields, PassdbEntry, RequestVars};
use dovecote_auth::mech::{self, Failure, MechContext, PassdbResult, Step};
use dovecote_auth::protocol::escape::{tab_escape, tab_unescape};
use dovecote_auth::scheme::{base64_decode, base64_encode, constant_time_eq, hex_encode};
use dovecote_config::{Config, SectionKind};
use dovecote_master::{Client, Clients, Progress, Service};

use crate::cache::{AuthCache, Cached};
use crate::penalty::{self, Penalty};
use crate::request::{
    check_allow_nets, fail_line, fix_username, numeric_id, ok_line, pass_line, split_master, user_line,
    Origin, Purpose, Request, State,
};
use crate::settings::{AuthSettings, PassdbSettings, UserdbSettings};
use crate::worker_proto::{WorkerReply, WorkerRequest};
use crate::workers::{WorkerEvent, WorkerPool};

/// `AUTH_CLIENT_MAX_LINE_LENGTH`.
const CLIENT_MAX_LINE: usize = 16384;
/// auth-master server input buffer.
const MASTER_MAX_LINE: usize = 1024;
/// `AUTH_FAILURE_DELAY_CHECK_MSECS`.
const FAILURE_CHECK: Duration = Duration::from_millis(500);
/// `MASTER_AUTH_SERVER_TIMEOUT_SECS`: unfinished and unclaimed requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(150);
/// Dovecot's `MAX_MECH_NAME_LEN` for log sanitising.
const MAX_MECH_NAME_LEN: usize = 64;

/// What kind of socket a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// auth-client protocol; `login` keeps successes for REQUEST.
    Client {
        /// A login socket.
        login: bool,
        /// DOVECOT-TOKEN only.
        token: bool,
    },
    /// auth-master with REQUEST.
    Master,
    /// auth-userdb: lookups; `restricted_uid` for peers that are not the
    /// socket owner.
    Userdb {
        /// Only users with this uid may be looked up.
        restricted_uid: Option<u32>,
    },
}

impl ConnKind {
    /// The kind for a listener name (basename of its path).
    pub fn for_listener(name: &str) -> ConnKind {
        let suffix = name.rsplit('-').next().unwrap_or(name);
        match suffix {
            "login" => ConnKind::Client { login: true, token: false },
            "master" => ConnKind::Master,
            "userdb" => ConnKind::Userdb { restricted_uid: None },
            "token" | "tokenlogin" => ConnKind::Client { login: true, token: true },
            _ => ConnKind::Client { login: false, token: false },
        }
    }
}

/// Per-connection state the server keeps.
struct Conn {
    kind: ConnKind,
    version_received: bool,
    minor_version: u32,
    cpid: Option<u32>,
    cookie: String,
    /// SO_PEERCRED pid (master sockets: `session_pid` check).
    peer_pid: Option<i32>,
    /// Client request id → request key.
    requests: HashMap<u32, u64>,
}

/// The runtime session: only the input buffer.
#[derive(Default)]
pub struct Session {
    input: Vec<u8>,
}

/// A delayed FAIL.
struct DelayedFailure {
    at: Instant,
    conn: usize,
    line: String,
}

/// An AUTH held back by its IP's penalty.
struct Penalized {
    at: Instant,
    key: u64,
    initial: Option<Vec<u8>>,
}

/// A running LIST.
struct ListJob {
    conn: usize,
    id: u32,
    mask: Option<String>,
    next_userdb: usize,
    failed: bool,
}

/// The auth service.
pub struct AuthServer {
    set: &'static AuthSettings,
    passdbs: Vec<PassdbSettings>,
    userdbs: Vec<UserdbSettings>,
    log: slog::Logger,
    pid: u32,
    next_cuid: u32,
    conns: HashMap<usize, Conn>,
    cpids: HashMap<u32, usize>,
    requests: HashMap<u64, Request>,
    lists: HashMap<u64, ListJob>,
    next_key: u64,
    outbox: Vec<(usize, String)>,
    to_close: Vec<usize>,
    failures: VecDeque<DelayedFailure>,
    next_failure_check: Option<Instant>,
    workers: WorkerPool,
    cache: AuthCache,
    /// userdb socket owner (uid, gid) per listener name with mode 0666.
    userdb_owners: HashMap<String, (u32, u32)>,
    /// Requests in a static userdb's passdb existence check → the userdb.
    pending_static_check: HashMap<u64, usize>,
    last_sweep: Instant,
    penalty: Penalty,
    penalized: Vec<Penalized>,
}

fn new_cookie() -> String {
    let mut raw = [0u8; 16];
    // A failure leaves zeros: still unique per connection through CUID in
    // the REQUEST path? No — treat it as fatal for this connection instead.
    if getrandom::getrandom(&mut raw).is_err() {
        return String::new();
    }
    hex_encode(&raw)
}

impl AuthServer {
    /// Builds the service from its settings (drivers already built).
    pub fn new(mut settings: AuthSettings, config: &Config, log: slog::Logger) -> std::io::Result<Self> {
        let passdbs = std::mem::take(&mut settings.passdbs);
        let userdbs = std::mem::take(&mut settings.userdbs);
        let workers = WorkerPool::new(&settings.base_dir, settings.worker_max_count, &settings.db_hash)?;
        let cache = AuthCache::new(settings.cache_size, settings.cache_ttl, settings.cache_negative_ttl);
        let userdb_owners = userdb_socket_owners(config, &settings.base_dir);
        // The settings live as long as the process (a reload starts a new
        // auth process); the passdb/userdb chains borrow their rules.
        let set: &'static AuthSettings = Box::leak(Box::new(settings));
        let penalty_log = log.clone();
        Ok(AuthServer {
            set,
            passdbs,
            userdbs,
            log,
            pid: std::process::id(),
            next_cuid: 1,
            conns: HashMap::new(),
            cpids: HashMap::new(),
            requests: HashMap::new(),
            lists: HashMap::new(),
            next_key: 1,
            outbox: Vec::new(),
            to_close: Vec::new(),
            failures: VecDeque::new(),
            next_failure_check: None,
            workers,
            cache,
            userdb_owners,
            pending_static_check: HashMap::new(),
            last_sweep: Instant::now(),
            penalty: Penalty::from_master(&penalty_log),
            penalized: Vec::new(),
        })
    }

    fn send(&mut self, conn: usize, line: String) {
        self.outbox.push((conn, line));
    }

    fn info(&self, text: &str) {
        if self.set.verbose {
            slog::info!(self.log, "{}", text);
        }
    }

    fn debug(&self, text: &str) {
        if self.set.debug {
            slog::debug!(self.log, "{}", text);
        }
    }

    fn handshake(&mut self, client: &mut Client, kind: ConnKind) -> Option<Conn> {
        let mut conn = Conn {
            kind,
            version_received: false,
            minor_version: 0,
            cpid: None,
            cookie: String::new(),
            peer_pid: None,
            requests: HashMap::new(),
        };
        let mut out = String::new();
        match kind {
            ConnKind::Client { .. } => {
                conn.cookie = new_cookie();
                if conn.cookie.is_empty() {
                    slog::error!(self.log, "getrandom() failed: can't create a connection cookie");
                    return None;
                }
                out.push_str("VERSION\t1\t2\n");
                for name in &self.set.mechanisms {
                    out.push_str("MECH\t");
                    out.push_str(name);
                    if let Some((_, flags)) = mech::MECHANISMS.iter().find(|(n, _)| n == name) {
                        for f in flags.names() {
                            out.push('\t');
                            out.push_str(f);
                        }
                    }
                    out.push('\n');
                }
                let cuid = self.next_cuid;
                self.next_cuid = self.next_cuid.wrapping_add(1).max(1);
                out.push_str(&format!("SPID\t{}\nCUID\t{cuid}\nCOOKIE\t{}\nDONE\n", self.pid, conn.cookie));
            }
            ConnKind::Master | ConnKind::Userdb { .. } => {
                out.push_str(&format!("VERSION\t1\t1\nSPID\t{}\n", self.pid));
            }
        }
        client.send(out.as_bytes());
        Some(conn)
    }

    // ---------------------------------------------------------------- input

    /// Handles one line; `false` disconnects.
    fn client_line(&mut self, cid: usize, line: &[u8]) -> bool {
        let Some(conn) = self.conns.get(&cid) else { return false };
        let fields: Vec<Vec<u8>> = line.split(|b| *b == b'\t').map(|f| f.to_vec()).collect();
        let word = String::from_utf8_lossy(&fields[0]).into_owned();
        if !conn.version_received {
            if word != "VERSION" {
                slog::error!(self.log, "BUG: Authentication client sent {word} before VERSION");
                return false;
            }
            let major = fields.get(1).map(|f| String::from_utf8_lossy(f).into_owned());
            if major.as_deref() != Some("1") {
                slog::error!(
                    self.log,
                    "Authentication client not compatible with this server (mixed old and new binaries?)"
                );
                return false;
            }
            let minor = fields.get(2).and_then(|f| std::str::from_utf8(f).ok()?.parse().ok()).unwrap_or(0);
            if let Some(conn) = self.conns.get_mut(&cid) {
                conn.version_received = true;
                conn.minor_version = minor;
            }
            return true;
        }
        let text: Vec<String> =
            fields.iter().map(|f| String::from_utf8_lossy(&tab_unescape(f)).into_owned()).collect();
        match word.as_str() {
            "CPID" => {
                let Some(pid) = text.get(1).and_then(|p| p.parse::<u32>().ok()).filter(|p| *p != 0) else {
                    slog::error!(self.log, "BUG: Authentication client sent broken CPID line");
                    return false;
                };
                if conn.cpid.is_some() {
                    slog::error!(self.log, "BUG: Authentication client re-handshaking");
                    return false;
                }
                if let ConnKind::Client { login: true, .. } = conn.kind {
                    if self.cpids.get(&pid).is_some_and(|c| self.conns.contains_key(c)) {
                        slog::error!(
                            self.log,
                            "Authentication client gave a PID {pid} of existing connection"
                        );
                        return false;
                    }
                    self.cpids.insert(pid, cid);
                }
                if let Some(conn) = self.conns.get_mut(&cid) {
                    conn.cpid = Some(pid);
                }
                true
            }
            "AUTH" => self.auth_begin(cid, &text),
            "CONT" => self.auth_continue(cid, &text),
            "CANCEL" => {
                if let Some(id) = text.get(1).and_then(|i| i.parse::<u32>().ok()) {
                    if let Some(key) = self.conns.get_mut(&cid).and_then(|c| c.requests.remove(&id)) {
                        self.remove_request(key);
                    }
                }
                true
            }
            _ => {
                slog::error!(
                    self.log,
                    "BUG: Authentication client sent unknown command: {}",
                    sanitize(&word)
                );
                false
            }
        }
    }

    fn client_pid(&self, cid: usize) -> u32 {
        self.conns.get(&cid).and_then(|c| c.cpid).unwrap_or(0)
    }

    fn auth_begin(&mut self, cid: usize, f: &[String]) -> bool {
        let cpid = self.client_pid(cid);
        let (Some(id), Some(mech_name)) = (f.get(1).and_then(|i| i.parse::<u32>().ok()), f.get(2)) else {
            slog::error!(self.log, "BUG: Authentication client {cpid} sent broken AUTH request");
            return false;
        };
        let Some(conn) = self.conns.get(&cid) else { return false };
        let (kind, minor) = (conn.kind, conn.minor_version);
        let upper = mech_name.to_ascii_uppercase();
        let token = matches!(kind, ConnKind::Client { token: true, .. });
        if token || !self.set.mechanisms.contains(&upper) {
            slog::error!(
                self.log,
                "BUG: Authentication client {cpid} requested unsupported authentication mechanism {}",
                sanitize(&mech_name.chars().take(MAX_MECH_NAME_LEN).collect::<String>())
            );
            return false;
        }
        let mut vars =
            RequestVars { mech: Some(upper.clone()), pid: Some(cpid.to_string()), ..Default::default() };
        let mut service = None;
        let mut initial: Option<String> = None;
        let mut final_resp_ok = false;
        let mut cert_username = None;
        let mut valid_client_cert = false;
        let mut no_penalty = false;
        let mut rest = f[3..].iter();
        for param in rest.by_ref() {
            let (name, value) = param.split_once('=').unwrap_or((param.as_str(), ""));
            let v = Some(value.to_string());
            match name {
                "service" => service = Some(value.to_string()),
                "lip" => vars.local_ip = v,
                "rip" => vars.remote_ip = v,
                "lport" => vars.local_port = v,
                "rport" => vars.remote_port = v,
                "session" => vars.session = v,
                "secured" => vars.secured = true,
                "final-resp-ok" => final_resp_ok = true,
                "valid-client-cert" => valid_client_cert = true,
                "no-penalty" => no_penalty = true,
                "cert_username" => cert_username = v,
                "resp" => {
                    initial = Some(value.to_string());
                    break;
                }
                _ => {}
            }
        }
        if rest.next().is_some() {
            slog::error!(self.log, "BUG: Authentication client {cpid} sent AUTH parameters after 'resp'");
            return false;
        }
        let Some(service) = service else {
            slog::error!(self.log, "BUG: Authentication client {cpid} didn't specify service in request");
            return false;
        };
        vars.service = service;
        if self.conns.get(&cid).is_some_and(|c| c.requests.contains_key(&id)) {
            slog::error!(self.log, "BUG: Authentication client {cpid} sent a duplicate ID {id}");
            return false;
        }
        let cert_username = if valid_client_cert { cert_username } else { None };
        if self.set.ssl_require_client_cert && !valid_client_cert {
            // Dovecot's wording; the request never reaches a mechanism.
            let reason = "Client didn't present valid SSL certificate";
            self.info(&format!(
                "{}({},{}): {reason}",
                upper.to_lowercase(),
                vars.user,
                vars.remote_ip.as_deref().unwrap_or("")
            ));
            self.send(cid, format!("FAIL\t{id}\treason={reason}"));
            return true;
        }
        let ctx = MechContext {
            hostname: self.set.hostname.clone(),
            anonymous_username: self.set.anonymous_username.clone(),
            cert_username: cert_username.clone(),
        };
        let Some(mechanism) = mech::server(&upper, &ctx) else {
            slog::error!(
                self.log,
                "BUG: Authentication client {cpid} requested unsupported authentication mechanism {upper}"
            );
            return false;
        };
        let key = self.next_key;
        self.next_key += 1;
        let mut req = Request::new(Origin::Auth, cid, id, vars);
        req.mech_name = upper;
        req.final_resp_ok = final_resp_ok;
        req.cert_username = cert_username;
        req.state = State::MechContinue;
        if let Some(conn) = self.conns.get_mut(&cid) {
            conn.requests.insert(id, key);
        }
        // An empty `resp=` is an empty response for 1.2 clients, "no
        // initial response" for older ones (Exim).
        let initial = match initial {
            Some(r) if r.is_empty() && minor < 2 => None,
            other => other,
        };
        let initial_data = match &initial {
            Some(r) if !r.is_empty() => {
                match base64_decode(r) {
                    Some(d) => Some(d),
                    None => {
                        self.info(&format!(
                            "{}: Invalid base64 data in initial response",
                            req.log_prefix(&req.mech_name.to_lowercase())
                        ));
                        self.send(cid, format!("FAIL\t{id}\tcode=invalid_base64\treason=Invalid base64 data in initial response"));
                        if let Some(conn) = self.conns.get_mut(&cid) {
                            conn.requests.remove(&id);
                        }
                        return true;
                    }
                }
            }
            Some(_) => Some(Vec::new()),
            None => None,
        };
        req.penalty_ident = if no_penalty { None } else { penalty::ident(req.vars.remote_ip.as_deref()) };
        let delay = match &req.penalty_ident {
            Some(ident) => {
                let (current, delay) = self.penalty.lookup(&self.log, ident);
                req.last_penalty = current;
                delay
            }
            None => None,
        };
        req.mech = Some(mechanism);
        if let Some(delay) = delay {
            // Not waiting for a CONT while held: one would be unexpected.
            req.state = State::Passdb;
            self.requests.insert(key, req);
            self.penalized.push(Penalized { at: Instant::now() + delay, key, initial: initial_data });
            return true;
        }
        self.requests.insert(key, req);
        self.start_mech(key, initial_data);
        true
    }

    /// Runs the mechanism's first step (now, or after the penalty delay).
    fn start_mech(&mut self, key: u64, initial: Option<Vec<u8>>) {
        let Some(req) = self.requests.get_mut(&key) else { return };
        let Some(mut mechanism) = req.mech.take() else { return };
        req.state = State::MechContinue;
        let step = mechanism.start(initial.as_deref());
        req.mech = Some(mechanism);
        self.mech_step(key, step);
    }

    /// Starts the held AUTHs whose penalty delay is over.
    fn release_penalized(&mut self) {
        let now = Instant::now();
        let (due, held): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.penalized).into_iter().partition(|p| p.at <= now);
        self.penalized = held;
        for p in due {
            self.start_mech(p.key, p.initial);
        }
    }

    fn auth_continue(&mut self, cid: usize, f: &[String]) -> bool {
        let (Some(id), Some(data)) = (f.get(1).and_then(|i| i.parse::<u32>().ok()), f.get(2)) else {
            slog::error!(self.log, "BUG: Authentication client sent broken CONT request");
            return false;
        };
        let key = self.conns.get(&cid).and_then(|c| c.requests.get(&id).copied());
        let Some(key) = key.filter(|k| self.requests.contains_key(k)) else {
            self.send(cid, format!("FAIL\t{id}\treason=Authentication request timed out"));
            return true;
        };
        let state = self.requests.get(&key).map(|r| r.state);
        if !matches!(state, Some(State::MechContinue) | Some(State::FinalAck)) {
            self.auth_fail_now(key, "Unexpected continuation");
            return true;
        }
        let Some(decoded) = base64_decode(data) else {
            self.send(
                cid,
                format!("FAIL\t{id}\tcode=invalid_base64\treason=Invalid base64 data in continued response"),
            );
            if let Some(conn) = self.conns.get_mut(&cid) {
                conn.requests.remove(&id);
            }
            self.requests.remove(&key);
            return true;
        };
        if state == Some(State::FinalAck) {
            self.finish_success(key, None);
            return true;
        }
        let step = match self.requests.get_mut(&key) {
            Some(req) => {
                req.last_access = Instant::now();
                match req.mech.as_mut() {
                    Some(m) => m.input(&decoded),
                    None => return true,
                }
            }
            None => return true,
        };
        self.mech_step(key, step);
        true
    }

    /// `auth_request_handler_auth_fail`: immediate FAIL with a reason.
    fn auth_fail_now(&mut self, key: u64, reason: &str) {
        if let Some(req) = self.requests.remove(&key) {
            self.info(&format!("{}: {reason}", req.log_prefix(&req.mech_name.to_lowercase())));
            self.send(req.conn, format!("FAIL\t{}\treason={}", req.id, tab_escape(reason)));
            if let Some(conn) = self.conns.get_mut(&req.conn) {
                conn.requests.remove(&req.id);
            }
        }
    }

    fn remove_request(&mut self, key: u64) {
        if self.requests.remove(&key).is_some() {
            self.workers.cancel(key);
        }
    }

    // ------------------------------------------------------------ mechanism

    fn mech_step(&mut self, key: u64, step: Step) {
        let Some(req) = self.requests.get_mut(&key) else { return };
        match step {
            Step::Continue(data) => {
                req.state = State::MechContinue;
                let line = format!("CONT\t{}\t{}", req.id, base64_encode(&data));
                let conn = req.conn;
                self.send(conn, line);
            }
            Step::VerifyPlain { password } => {
                req.mech_password = String::from_utf8(password.clone()).ok();
                self.start_passdb(key, Purpose::Verify(password));
            }
            Step::LookupCredentials { scheme } => self.start_passdb(key, Purpose::Credentials(scheme)),
            Step::Success { final_data } => match final_data {
                Some(data) if !req.final_resp_ok => {
                    req.state = State::FinalAck;
                    let line = format!("CONT\t{}\t{}", req.id, base64_encode(&data));
                    let conn = req.conn;
                    self.send(conn, line);
                }
                Some(data) => self.finish_success(key, Some(base64_encode(&data))),
                None => self.finish_success(key, None),
            },
            Step::Fail(failure) => {
                match failure {
                    Failure::Protocol(reason) => {
                        let prefix = req.log_prefix(&req.mech_name.to_lowercase());
                        self.info(&format!("{prefix}: {reason}"));
                    }
                    Failure::Mismatch => {
                        req.passdb_result = PassdbResult::PasswordMismatch;
                        let prefix = req.log_prefix(&req.mech_name.to_lowercase());
                        self.info(&format!("{prefix}: Password mismatch"));
                    }
                    Failure::Passdb(r) => {
                        req.passdb_result = r;
                        req.internal_failure = r == PassdbResult::InternalFailure;
                    }
                }
                self.finish_failure(key);
            }
        }
    }

    /// Sets the request's user from the mechanism's identity; `false` when
    /// the name is refused (the request has failed).
    fn set_identity(&mut self, key: u64) -> bool {
        let set = self.set;
        let Some(req) = self.requests.get_mut(&key) else { return false };
        if req.user_known {
            return true;
        }
        let identity = match req.mech.as_ref() {
            Some(m) => m.identity().clone(),
            None => return false,
        };
        let raw = match (&req.cert_username, set.ssl_username_from_cert) {
            // The certificate's name wins over what the mechanism said.
            (Some(cert), true) if !cert.is_empty() => cert.clone(),
            _ => identity.user.clone().unwrap_or_default(),
        };
        let (authcid, login) = match (identity.login_user.clone(), split_master(set, &raw)) {
            (Some(login), _) => (raw.clone(), Some(login)),
            (None, Some((login, master))) => (master, Some(login)),
            (None, None) => (raw.clone(), None),
        };
        req.original_user = Some(raw.clone());
        let fixed = fix_username(set, &authcid, &req.vars.service)
            .and_then(|u| Ok((u, login.map(|l| fix_username(set, &l, &req.vars.service)).transpose()?)));
        match fixed {
            Ok((user, login)) => {
                req.vars.user = user;
                req.user_known = true;
                req.login_user = login;
                true
            }
            Err(reason) => {
                let prefix = req.log_prefix(&req.mech_name.to_lowercase());
                self.info(&format!("{prefix}: {reason}"));
                self.finish_failure(key);
                false
            }
        }
    }

    // --------------------------------------------------------------- passdb

    fn start_passdb(&mut self, key: u64, purpose: Purpose) {
        if !self.set_identity(key) {
            return;
        }
        let set = self.set;
        let Some(req) = self.requests.get_mut(&key) else { return };
        req.state = State::Passdb;
        req.purpose = purpose;
        let master_login = req.login_user.is_some();
        let mech = (!req.mech_name.is_empty()).then_some(req.mech_name.as_str());
        let mut chain = PassdbChain::new(&set.passdb_rules, mech, &req.vars.user, master_login);
        let step = chain.start();
        req.passdb_chain = Some(chain);
        self.passdb_step(key, step);
    }

    fn passdb_step(&mut self, key: u64, mut step: PassdbStep) {
        loop {
            match step {
                PassdbStep::Done(result) => return self.passdb_done(key, result),
                PassdbStep::Lookup { index, verify_password, master } => {
                    let Some(req) = self.requests.get_mut(&key) else { return };
                    if !master {
                        if let Some(login) = req.login_user.take() {
                            // The master user is verified: continue as the
                            // login user (`pass = yes`).
                            req.master_user = Some(std::mem::replace(&mut req.vars.user, login.clone()));
                            if let Some(chain) = req.passdb_chain.as_mut() {
                                chain.set_user(&login);
                            }
                        }
                    }
                    let deny = self.set.passdb_rules.get(index).is_some_and(|r| r.deny);
                    let verify = match &req.purpose {
                        Purpose::Verify(pw) if verify_password && !deny => Some(pw.clone()),
                        _ => None,
                    };
                    let vars = req.vars.clone();
                    let Some(db) = self.passdbs.get_mut(index) else { return };
                    if db.driver.blocking() {
                        let cache_key = db.driver.cache_key().and_then(|k| vars.expand(k, "cache_key").ok());
                        if let Some(ck) = &cache_key {
                            let ck = match &verify {
                                Some(pw) => self.cache.verify_key(index, ck, pw),
                                None => AuthCache::lookup_key(index, ck),
                            };
                            if let Some(Cached::Passdb(result, entry)) = self.cache.get(&ck) {
                                if self.set.debug {
                                    slog::debug!(self.log, "{}: cache hit", db.driver.name());
                                }
                                step = self.passdb_result(key, index, result, entry, verify.is_some());
                                continue;
                            }
                        }
                        let request = match verify {
                            Some(pw) => WorkerRequest::Verify {
                                id: key,
                                passdb: index,
                                password: String::from_utf8_lossy(&pw).into_owned(),
                                vars,
                            },
                            None => WorkerRequest::Lookup { id: key, passdb: index, vars },
                        };
                        self.workers.submit(&request, key, false);
                        return;
                    }
                    let outcome = match &verify {
                        Some(pw) => db.driver.verify(&vars, pw),
                        None => db.driver.lookup(&vars),
                    };
                    if let Some(text) = &outcome.log {
                        let name = db.driver.name();
                        self.log_passdb(key, name, outcome.result, text);
                    }
                    step = self.passdb_result(key, index, outcome.result, outcome.entry, verify.is_some());
                }
            }
        }
    }

    fn log_passdb(&self, key: u64, driver: &str, result: PassdbResult, text: &str) {
        let Some(req) = self.requests.get(&key) else { return };
        let mut line = format!("{}: {text}", req.log_prefix(driver));
        if result == PassdbResult::PasswordMismatch && self.set.debug_passwords {
            if let Some(pw) = &req.mech_password {
                line.push_str(&format!(" (given password: {pw})"));
            }
        }
        if result == PassdbResult::InternalFailure {
            slog::error!(self.log, "{}", line);
        } else {
            self.info(&line);
        }
    }

    /// Applies one passdb's result to the request and advances the chain.
    fn passdb_result(
        &mut self,
        key: u64,
        index: usize,
        mut result: PassdbResult,
        entry: Option<PassdbEntry>,
        verified: bool,
    ) -> PassdbStep {
        let Some(db) = self.passdbs.get(index) else {
            return PassdbStep::Done(PassdbResult::InternalFailure);
        };
        let Some(req) = self.requests.get_mut(&key) else {
            return PassdbStep::Done(PassdbResult::InternalFailure);
        };
        let mut fields = ExtraFields::default();
        let mut prefetch = ExtraFields::default();
        if let Some(entry) = &entry {
            let mut full = PassdbEntry { user: entry.user.clone(), ..Default::default() };
            if result == PassdbResult::Ok {
                if let Ok(defaults) = db.default_fields.expand(&req.vars) {
                    for (k, v) in defaults {
                        full.set_field(&k, &v);
                    }
                }
            }
            full.password = entry.password.clone();
            full.default_scheme = entry.default_scheme.clone();
            for (k, v) in &entry.fields.0 {
                full.fields.set(k, v);
            }
            for (k, v) in &entry.userdb_fields.0 {
                full.userdb_fields.set(k, v);
            }
            if result == PassdbResult::Ok {
                if let Ok(overrides) = db.override_fields.expand(&req.vars) {
                    for (k, v) in overrides {
                        full.set_field(&k, &v);
                    }
                }
            }
            if result == PassdbResult::Ok {
                if let Some(nets) = full.fields.get("allow_nets") {
                    if let Err(text) = check_allow_nets(nets, req.vars.remote_ip.as_deref()) {
                        let line = format!("{}: {text}", req.log_prefix(db.driver.name()));
                        if self.set.verbose {
                            slog::info!(self.log, "{}", line);
                        }
                        result = PassdbResult::PasswordMismatch;
                    }
                }
            }
            if result == PassdbResult::Ok {
                if let Purpose::Credentials(scheme) = req.purpose {
                    match lookup_credentials(&full, scheme) {
                        Ok(creds) => req.credentials = Some(creds),
                        Err(r) => result = r,
                    }
                }
            }
            if result == PassdbResult::Ok && !verified && matches!(req.purpose, Purpose::Verify(_)) {
                // Found in a passdb after the password was already checked.
            }
            if result == PassdbResult::Ok && full.user != req.vars.user && !full.user.is_empty() {
                req.vars.user = full.user.clone();
                if let Some(chain) = req.passdb_chain.as_mut() {
                    chain.set_user(&full.user);
                }
            }
            if req.origin == Origin::MasterPass {
                req.passdb_user = full.password.clone();
            }
            fields = full.fields;
            prefetch = full.userdb_fields;
        }
        req.passdb_result = result;
        if result == PassdbResult::Ok {
            for (k, v) in fields.0 {
                req.extra.set(&k, &v);
            }
            for (k, v) in prefetch.0 {
                req.prefetch.set(&k, &v);
            }
        } else {
            req.fail_fields = fields;
        }
        match req.passdb_chain.as_mut() {
            Some(chain) => chain.result(result),
            None => PassdbStep::Done(result),
        }
    }

    fn passdb_done(&mut self, key: u64, result: PassdbResult) {
        let Some(req) = self.requests.get_mut(&key) else { return };
        req.passdb_chain = None;
        req.passdb_result = result;
        if result == PassdbResult::Ok {
            if let Some(login) = req.login_user.take() {
                // Master login without `pass = yes`: the login user it is.
                req.master_user = Some(std::mem::replace(&mut req.vars.user, login));
            }
        }
        match req.origin {
            Origin::Auth => {
                let step = match (&req.purpose, req.mech.as_mut()) {
                    (Purpose::Verify(_), Some(m)) => m.verify_result(result),
                    (Purpose::Credentials(_), Some(m)) => {
                        let creds = match (result, req.credentials.take()) {
                            (PassdbResult::Ok, Some(c)) => Ok(c),
                            (PassdbResult::Ok, None) => Ok(Vec::new()),
                            (r, _) => Err(r),
                        };
                        m.credentials(creds)
                    }
                    _ => Step::Fail(Failure::Passdb(result)),
                };
                self.mech_step(key, step);
            }
            Origin::MasterPass => {
                let (conn, id) = (req.conn, req.id);
                let line = match result {
                    PassdbResult::Ok => pass_line(req, id),
                    PassdbResult::UserUnknown => format!("NOTFOUND\t{id}"),
                    _ => format!("FAIL\t{id}"),
                };
                self.requests.remove(&key);
                self.send(conn, line);
            }
            Origin::MasterUser | Origin::MasterRequest => {
                // Static userdb existence check.
                let found = result == PassdbResult::Ok;
                self.userdb_after_check(key, found);
            }
        }
    }

    fn finish_success(&mut self, key: u64, final_resp: Option<String>) {
        let Some(req) = self.requests.get_mut(&key) else { return };
        let kind = self.conns.get(&req.conn).map(|c| c.kind);
        let login = matches!(kind, Some(ConnKind::Client { login: true, .. }));
        req.successful = true;
        let reset = req.penalty_ident.clone().filter(|_| req.last_penalty != 0);
        if let Some(ident) = reset {
            // A success from a penalised IP clears its penalty.
            self.penalty.update(&self.log, &ident, 0, 0);
        }
        let Some(req) = self.requests.get_mut(&key) else { return };
        let line = ok_line(req, !login, final_resp);
        let (conn, id) = (req.conn, req.id);
        let keep = login && !req.extra.has("nologin") && !req.extra.has("proxy");
        if self.set.debug {
            slog::debug!(self.log, "client passdb out: {}", redact_line(&line));
        }
        if keep {
            req.state = State::Finished;
            req.last_access = Instant::now();
            req.mech = None;
            req.purpose = Purpose::Lookup;
            req.mech_password = None;
        } else {
            self.requests.remove(&key);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.requests.remove(&id);
            }
        }
        self.send(conn, line);
    }

    fn finish_failure(&mut self, key: u64) {
        let Some(req) = self.requests.remove(&key) else { return };
        if let Some(c) = self.conns.get_mut(&req.conn) {
            c.requests.remove(&req.id);
        }
        let login =
            matches!(self.conns.get(&req.conn).map(|c| c.kind), Some(ConnKind::Client { login: true, .. }));
        let line = fail_line(&req, !login);
        self.debug(&format!("client passdb out: {line}"));
        if let (Some(ident), false) = (&req.penalty_ident, req.internal_failure) {
            let checksum = penalty::userpass_checksum(req.mech_password.as_deref(), &req.vars.user);
            self.penalty.update(&self.log, ident, checksum, req.last_penalty + 1);
        }
        if req.fail_fields.has("nodelay") || req.extra.has("nodelay") || self.set.failure_delay.is_zero() {
            self.send(req.conn, line);
            return;
        }
        self.failures.push_back(DelayedFailure { at: Instant::now(), conn: req.conn, line });
        if self.next_failure_check.is_none() {
            self.next_failure_check = Some(Instant::now() + FAILURE_CHECK);
        }
    }

    fn flush_failures(&mut self, all: bool) {
        let now = Instant::now();
        while let Some(f) = self.failures.front() {
            if !all && now.duration_since(f.at) < self.set.failure_delay {
                break;
            }
            if let Some(f) = self.failures.pop_front() {
                self.outbox.push((f.conn, f.line));
            }
        }
        self.next_failure_check = (!self.failures.is_empty()).then(|| now + FAILURE_CHECK);
    }

    // --------------------------------------------------------------- master

    fn master_line(&mut self, cid: usize, line: &[u8]) -> bool {
        let Some(conn) = self.conns.get(&cid) else { return false };
        let kind = conn.kind;
        let f: Vec<String> = line
            .split(|b| *b == b'\t')
            .map(|x| String::from_utf8_lossy(&tab_unescape(x)).into_owned())
            .collect();
        let word = f[0].as_str();
        if !conn.version_received {
            if word != "VERSION" || f.get(1).map(String::as_str) != Some("1") {
                slog::error!(self.log, "Auth master version mismatch");
                return false;
            }
            if let Some(conn) = self.conns.get_mut(&cid) {
                conn.version_received = true;
            }
            return true;
        }
        let id = f.get(1).and_then(|i| i.parse::<u32>().ok());
        match (word, id) {
            ("CPID", _) => {
                slog::error!(self.log, "Authentication client trying to connect to master socket");
                false
            }
            ("REQUEST", Some(id)) if kind == ConnKind::Master => self.master_request(cid, id, &f),
            ("USER", Some(id)) => self.master_user(cid, id, &f, Origin::MasterUser),
            ("PASS", Some(id)) => self.master_user(cid, id, &f, Origin::MasterPass),
            ("LIST", Some(id)) => self.master_list(cid, id, &f),
            ("CACHE-FLUSH", Some(id)) => {
                let count = self.cache.flush(&f[2..]);
                self.send(cid, format!("OK\t{id}\t{count}"));
                true
            }
            _ => {
                slog::error!(
                    self.log,
                    "BUG: Unknown command in {} socket: {}",
                    kind_name(kind),
                    sanitize(word)
                );
                false
            }
        }
    }

    fn master_request(&mut self, cid: usize, id: u32, f: &[String]) -> bool {
        let (Some(client_pid), Some(auth_id), Some(cookie)) = (
            f.get(2).and_then(|p| p.parse::<u32>().ok()),
            f.get(3).and_then(|p| p.parse::<u32>().ok()),
            f.get(4),
        ) else {
            slog::error!(self.log, "BUG: Master sent broken REQUEST");
            return false;
        };
        let Some(&login_conn) = self.cpids.get(&client_pid).filter(|c| self.conns.contains_key(c)) else {
            slog::error!(self.log, "Master requested auth for nonexistent client {client_pid}");
            self.send(cid, format!("FAIL\t{id}"));
            return true;
        };
        let Some(conn) = self.conns.get_mut(&login_conn) else { return true };
        if !constant_time_eq(conn.cookie.as_bytes(), cookie.as_bytes()) {
            slog::error!(self.log, "Master requested auth for client {client_pid} with invalid cookie");
            self.send(cid, format!("FAIL\t{id}"));
            return true;
        }
        let Some(key) = conn.requests.remove(&auth_id) else {
            slog::error!(self.log, "Master request {client_pid}.{auth_id} not found");
            self.send(cid, format!("FAIL\t{id}"));
            return true;
        };
        let Some(req) = self.requests.get_mut(&key) else {
            self.send(cid, format!("FAIL\t{id}"));
            return true;
        };
        if req.state != State::Finished || !req.successful {
            slog::error!(
                self.log,
                "Master requested unfinished authentication request {client_pid}.{auth_id}"
            );
            self.requests.remove(&key);
            self.send(cid, format!("FAIL\t{id}"));
            return true;
        }
        for param in &f[5..] {
            if let Some(pid) = param.strip_prefix("session_pid=") {
                let peer = self.peer_pid(cid);
                if let (Ok(pid), Some(peer)) = (pid.parse::<i32>(), peer) {
                    if pid != peer {
                        slog::error!(
                            self.log,
                            "Session pid {pid} provided by master for request {client_pid}.{auth_id} did not match peer credentials (pid={peer})"
                        );
                        self.requests.remove(&key);
                        self.send(cid, format!("FAIL\t{id}"));
                        return true;
                    }
                }
            }
        }
        let Some(req) = self.requests.get_mut(&key) else { return true };
        req.origin = Origin::MasterRequest;
        req.conn = cid;
        req.id = id;
        req.authenticated = true;
        self.start_userdb(key);
        true
    }

    fn peer_pid(&self, cid: usize) -> Option<i32> {
        self.conns.get(&cid).and_then(|c| c.peer_pid)
    }

    fn master_user(&mut self, cid: usize, id: u32, f: &[String], origin: Origin) -> bool {
        let Some(user) = f.get(2) else {
            slog::error!(
                self.log,
                "BUG: Master sent broken {} request",
                if origin == Origin::MasterPass { "PASS" } else { "USER" }
            );
            return false;
        };
        let mut vars = RequestVars::default();
        let mut service = None;
        for param in &f[3..] {
            let (name, value) = param.split_once('=').unwrap_or((param.as_str(), ""));
            let v = Some(value.to_string());
            match name {
                "service" => service = Some(value.to_string()),
                "lip" => vars.local_ip = v,
                "rip" => vars.remote_ip = v,
                "lport" => vars.local_port = v,
                "rport" => vars.remote_port = v,
                "session" => vars.session = v,
                _ => {}
            }
        }
        let cmd = if origin == Origin::MasterPass { "PASS" } else { "USER" };
        let Some(service) = service else {
            slog::error!(self.log, "BUG: Master sent {cmd} request without service");
            return false;
        };
        vars.service = service;
        if origin == Origin::MasterPass {
            if let Some(ConnKind::Userdb { restricted_uid: Some(_) }) = self.conns.get(&cid).map(|c| c.kind) {
                slog::error!(self.log, "Auth client doesn't have permissions to do a PASS lookup");
                self.send(cid, format!("FAIL\t{id}"));
                return true;
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        let mut req = Request::new(origin, cid, id, vars);
        req.original_user = Some(user.clone());
        match fix_username(self.set, user, &req.vars.service) {
            Ok(fixed) => {
                req.vars.user = fixed;
                req.user_known = true;
            }
            Err(reason) => {
                self.info(&format!("userdb({user}): {reason}"));
                self.send(cid, format!("FAIL\t{id}\treason={}", tab_escape(&reason)));
                return true;
            }
        }
        self.requests.insert(key, req);
        if origin == Origin::MasterPass {
            self.start_passdb(key, Purpose::Lookup);
        } else {
            self.start_userdb(key);
        }
        true
    }

    // --------------------------------------------------------------- userdb

    fn start_userdb(&mut self, key: u64) {
        let set = self.set;
        let Some(req) = self.requests.get_mut(&key) else { return };
        req.state = State::Userdb;
        req.userdb_reply = req.prefetch.clone();
        let mut chain = UserdbChain::new(&set.userdb_rules);
        let step = chain.start();
        req.userdb_chain = Some(chain);
        self.userdb_step(key, step);
    }

    fn userdb_step(&mut self, key: u64, mut step: UserdbStep) {
        loop {
            match step {
                UserdbStep::Done(result) => return self.userdb_done(key, result),
                UserdbStep::Lookup(index) => {
                    let Some(req) = self.requests.get(&key) else { return };
                    let vars = req.vars.clone();
                    let authenticated = req.authenticated;
                    let Some(db) = self.userdbs.get_mut(index) else { return };
                    if db.driver.blocking() {
                        let cache_key = db
                            .driver
                            .cache_key()
                            .and_then(|k| vars.expand(k, "cache_key").ok())
                            .map(|k| AuthCache::userdb_key(index, &k));
                        if let Some(Cached::Userdb(found)) =
                            cache_key.as_ref().and_then(|k| self.cache.get(k))
                        {
                            let outcome = match found {
                                Some(f) => UserdbOutcome::Found(f),
                                None => UserdbOutcome::NotFound,
                            };
                            step = self.userdb_result(key, index, outcome);
                            continue;
                        }
                        self.workers.submit(
                            &WorkerRequest::User { id: key, userdb: index, vars },
                            key,
                            false,
                        );
                        return;
                    }
                    let outcome = db.driver.lookup(&vars, authenticated);
                    if let UserdbOutcome::NeedPassdbCheck(fields) = outcome {
                        if let Some(req) = self.requests.get_mut(&key) {
                            req.userdb_reply = merge_userdb(&req.userdb_reply, &fields);
                            req.state = State::Passdb;
                            req.purpose = Purpose::Lookup;
                            let mut chain =
                                PassdbChain::new(&self.set.passdb_rules, None, &req.vars.user, false);
                            let step = chain.start();
                            req.passdb_chain = Some(chain);
                            self.pending_static_check.insert(key, index);
                            return self.passdb_step(key, step);
                        }
                        return;
                    }
                    step = self.userdb_result(key, index, outcome);
                }
            }
        }
    }

    fn userdb_after_check(&mut self, key: u64, found: bool) {
        let Some(index) = self.pending_static_check.remove(&key) else {
            return self.userdb_done(key, UserdbResult::InternalFailure);
        };
        let Some(req) = self.requests.get_mut(&key) else { return };
        req.state = State::Userdb;
        let fields = req.userdb_reply.clone();
        let outcome = if found { UserdbOutcome::Found(fields) } else { UserdbOutcome::NotFound };
        let step = self.userdb_result(key, index, outcome);
        self.userdb_step(key, step);
    }

    fn userdb_result(&mut self, key: u64, index: usize, outcome: UserdbOutcome) -> UserdbStep {
        let Some(db) = self.userdbs.get(index) else {
            return UserdbStep::Done(UserdbResult::InternalFailure);
        };
        let name = db.driver.name();
        let Some(req) = self.requests.get_mut(&key) else {
            return UserdbStep::Done(UserdbResult::InternalFailure);
        };
        let result = match outcome {
            UserdbOutcome::Found(fields) | UserdbOutcome::NeedPassdbCheck(fields) => {
                let mut reply = req.userdb_reply.clone();
                let mut error = None;
                let mut apply = |reply: &mut ExtraFields, k: &str, v: &str| {
                    if k == "uid" || k == "gid" {
                        match numeric_id(k, v) {
                            Ok(n) => reply.set(k, &n),
                            Err(e) => error = Some(e),
                        }
                    } else {
                        reply.set(k, v);
                    }
                };
                if let Ok(defaults) = db.default_fields.expand(&req.vars) {
                    for (k, v) in defaults {
                        if !reply.has(&k) {
                            apply(&mut reply, &k, &v);
                        }
                    }
                }
                for (k, v) in &fields.0 {
                    apply(&mut reply, k, v);
                }
                if let Ok(overrides) = db.override_fields.expand(&req.vars) {
                    for (k, v) in overrides {
                        apply(&mut reply, &k, &v);
                    }
                }
                match error {
                    Some(e) => {
                        let line = format!("{}: {e}", req.log_prefix(name));
                        slog::error!(self.log, "{}", line);
                        UserdbResult::InternalFailure
                    }
                    None => {
                        if let Some(user) = reply.remove("user") {
                            req.vars.user = user;
                        }
                        req.userdb_reply = reply;
                        UserdbResult::Ok
                    }
                }
            }
            UserdbOutcome::NotFound => {
                let line = format!("{}: unknown user", req.log_prefix(name));
                if self.set.verbose {
                    slog::info!(self.log, "{}", line);
                }
                UserdbResult::UserUnknown
            }
            UserdbOutcome::Failed(e) => {
                let line = format!("{}: {e}", req.log_prefix(name));
                slog::error!(self.log, "{}", line);
                UserdbResult::InternalFailure
            }
        };
        match req.userdb_chain.as_mut() {
            Some(chain) => chain.result(result),
            None => UserdbStep::Done(result),
        }
    }

    fn userdb_done(&mut self, key: u64, result: UserdbResult) {
        let Some(req) = self.requests.remove(&key) else { return };
        let (conn, id) = (req.conn, req.id);
        let restricted = match self.conns.get(&conn).map(|c| c.kind) {
            Some(ConnKind::Userdb { restricted_uid }) => restricted_uid,
            _ => None,
        };
        let line = match result {
            UserdbResult::Ok => {
                let uid = req.userdb_reply.get("uid").and_then(|u| u.parse::<u32>().ok());
                match restricted {
                    Some(peer) if uid != Some(peer) => {
                        slog::error!(
                            self.log,
                            "userdb lookup: connection has uid={peer} but user {} has uid={}",
                            req.vars.user,
                            uid.map(|u| u.to_string()).unwrap_or_else(|| "(none)".into())
                        );
                        format!("FAIL\t{id}")
                    }
                    _ => user_line(&req, id, self.set),
                }
            }
            UserdbResult::UserUnknown => format!("NOTFOUND\t{id}"),
            UserdbResult::InternalFailure => format!("FAIL\t{id}"),
        };
        self.debug(&format!("master userdb out: {line}"));
        self.send(conn, line);
    }

    // ----------------------------------------------------------------- LIST

    fn master_list(&mut self, cid: usize, id: u32, f: &[String]) -> bool {
        if let Some(ConnKind::Userdb { restricted_uid: Some(_) }) = self.conns.get(&cid).map(|c| c.kind) {
            slog::error!(self.log, "Auth client doesn't have permissions to do a LIST");
            self.send(cid, format!("DONE\t{id}\tfail"));
            return true;
        }
        let mask = f[2..].iter().find_map(|p| p.strip_prefix("user=")).map(str::to_string);
        let key = self.next_key;
        self.next_key += 1;
        self.lists.insert(key, ListJob { conn: cid, id, mask, next_userdb: 0, failed: false });
        self.list_continue(key);
        true
    }

    fn list_continue(&mut self, key: u64) {
        loop {
            let Some(job) = self.lists.get_mut(&key) else { return };
            let index = job.next_userdb;
            job.next_userdb += 1;
            let Some(db) = self.userdbs.get_mut(index) else {
                let (conn, id, failed) = (job.conn, job.id, job.failed);
                self.lists.remove(&key);
                self.send(conn, format!("DONE\t{id}\t{}", if failed { "fail" } else { "" }));
                return;
            };
            if !db.driver.can_iterate() {
                continue;
            }
            if db.driver.blocking() {
                self.workers.submit(&WorkerRequest::List { id: key, userdb: index }, key, true);
                return;
            }
            let (first, last) = (self.set.first_valid_uid, self.set.last_valid_uid);
            match db.driver.iterate(first, last) {
                Some(Ok(users)) => {
                    for user in users {
                        self.list_user(key, &user);
                    }
                }
                Some(Err(e)) => {
                    slog::error!(self.log, "{}: iteration failed: {e}", db.driver.name());
                    if let Some(job) = self.lists.get_mut(&key) {
                        job.failed = true;
                    }
                }
                None => {}
            }
        }
    }

    fn list_user(&mut self, key: u64, user: &str) {
        let Some(job) = self.lists.get(&key) else { return };
        if job.mask.as_deref().is_some_and(|m| !wildcard_match_icase(m, user)) {
            return;
        }
        let line = format!("LIST\t{}\t{}", job.id, tab_escape(user));
        let conn = job.conn;
        self.send(conn, line);
    }

    // -------------------------------------------------------------- workers

    fn worker_event(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Failed { id, reason } => {
                slog::error!(self.log, "{reason}");
                if self.lists.contains_key(&id) {
                    if let Some(job) = self.lists.get_mut(&id) {
                        job.failed = true;
                    }
                    return self.list_continue(id);
                }
                let Some(req) = self.requests.get(&id) else { return };
                match req.state {
                    State::Passdb => {
                        let index = self.current_passdb(id);
                        let step = self.passdb_result(id, index, PassdbResult::InternalFailure, None, false);
                        self.passdb_step(id, step);
                    }
                    State::Userdb => {
                        let step = match self.requests.get_mut(&id).and_then(|r| r.userdb_chain.as_mut()) {
                            Some(chain) => chain.result(UserdbResult::InternalFailure),
                            None => UserdbStep::Done(UserdbResult::InternalFailure),
                        };
                        self.userdb_step(id, step);
                    }
                    _ => {}
                }
            }
            WorkerEvent::Reply(reply) => match reply {
                WorkerReply::Log { error, text, .. } => {
                    if error {
                        slog::error!(self.log, "{}", text);
                    } else {
                        self.info(&text);
                    }
                }
                WorkerReply::Pass { id, result, entry } => {
                    let Some(req) = self.requests.get(&id) else { return };
                    if req.state != State::Passdb {
                        return;
                    }
                    let index = self.current_passdb(id);
                    let verified = matches!(req.purpose, Purpose::Verify(_));
                    let vars = req.vars.clone();
                    if let Some(db) = self.passdbs.get(index) {
                        if let Some(ck) = db.driver.cache_key().and_then(|k| vars.expand(k, "cache_key").ok())
                        {
                            let ck = match &req.purpose {
                                Purpose::Verify(pw) => self.cache.verify_key(index, &ck, pw),
                                _ => AuthCache::lookup_key(index, &ck),
                            };
                            self.cache.put(ck, &vars.user, Cached::Passdb(result, entry.clone()));
                        }
                    }
                    let step = self.passdb_result(id, index, result, entry, verified);
                    self.passdb_step(id, step);
                }
                WorkerReply::User { id, status, fields } => {
                    let Some(req) = self.requests.get(&id) else { return };
                    let index = req.userdb_chain.as_ref().and_then(|c| c.current()).unwrap_or(0);
                    let vars = req.vars.clone();
                    let outcome = match status.as_str() {
                        "ok" => UserdbOutcome::Found(fields),
                        "passdbcheck" => UserdbOutcome::Found(fields),
                        "notfound" => UserdbOutcome::NotFound,
                        _ => UserdbOutcome::Failed("userdb lookup failed in auth-worker".into()),
                    };
                    if let Some(db) = self.userdbs.get(index) {
                        if let Some(ck) = db.driver.cache_key().and_then(|k| vars.expand(k, "cache_key").ok())
                        {
                            let value = match &outcome {
                                UserdbOutcome::Found(f) => Some(Cached::Userdb(Some(f.clone()))),
                                UserdbOutcome::NotFound => Some(Cached::Userdb(None)),
                                _ => None,
                            };
                            if let Some(v) = value {
                                self.cache.put(AuthCache::userdb_key(index, &ck), &vars.user, v);
                            }
                        }
                    }
                    let step = self.userdb_result(id, index, outcome);
                    self.userdb_step(id, step);
                }
                WorkerReply::List { id, user } => self.list_user(id, &user),
                WorkerReply::Done { id, failed } => {
                    if let Some(job) = self.lists.get_mut(&id) {
                        job.failed |= failed;
                    }
                    self.list_continue(id);
                }
            },
        }
    }

    fn current_passdb(&self, key: u64) -> usize {
        self.requests.get(&key).and_then(|r| r.passdb_chain.as_ref()).and_then(|c| c.current()).unwrap_or(0)
    }

    /// Drops state of connections that are gone and requests that expired.
    fn sweep(&mut self, clients: &Clients<'_, Session>) {
        let gone: Vec<usize> = self.conns.keys().copied().filter(|c| !clients.contains(*c)).collect();
        for cid in gone {
            self.connection_gone(cid);
        }
        let now = Instant::now();
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| {
                matches!(r.state, State::MechContinue | State::FinalAck | State::Finished)
                    && now.duration_since(r.last_access) >= REQUEST_TIMEOUT
            })
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(req) = self.requests.remove(&key) {
                if let Some(c) = self.conns.get_mut(&req.conn) {
                    c.requests.remove(&req.id);
                }
                if req.state == State::Finished {
                    slog::error!(
                        self.log,
                        "Request {}.{} timed out waiting for the master's REQUEST",
                        self.client_pid(req.conn),
                        req.id
                    );
                } else if self.set.verbose {
                    slog::info!(
                        self.log,
                        "{}: Request timed out waiting for client to continue authentication (150 secs)",
                        req.log_prefix(&req.mech_name.to_lowercase())
                    );
                }
            }
        }
    }

    fn connection_gone(&mut self, cid: usize) {
        let Some(conn) = self.conns.remove(&cid) else { return };
        if let Some(pid) = conn.cpid {
            if self.cpids.get(&pid) == Some(&cid) {
                self.cpids.remove(&pid);
            }
        }
        for key in conn.requests.values() {
            // Lookups in flight finish and their replies are dropped.
            if let Some(req) = self.requests.get(key) {
                if !matches!(req.state, State::Passdb | State::Userdb) {
                    self.requests.remove(key);
                }
            }
        }
        let orphans: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.conn == cid && r.origin != Origin::Auth)
            .map(|(k, _)| *k)
            .collect();
        for key in orphans {
            self.remove_request(key);
        }
        self.lists.retain(|_, j| j.conn != cid);
    }
}

/// Userdb fields merged over earlier ones.
fn merge_userdb(base: &ExtraFields, more: &ExtraFields) -> ExtraFields {
    let mut out = base.clone();
    for (k, v) in &more.0 {
        out.set(k, v);
    }
    out
}

fn kind_name(kind: ConnKind) -> &'static str {
    match kind {
        ConnKind::Master => "auth-master",
        ConnKind::Userdb { .. } => "auth-userdb",
        ConnKind::Client { .. } => "auth-client",
    }
}

/// `str_sanitize`: printable, at most 64 characters.
fn sanitize(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_control() { '?' } else { c }).take(64).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// Lines for the debug log never carry a `pass=` value.
fn redact_line(line: &str) -> String {
    line.split('\t')
        .map(|f| if f.starts_with("pass=") { "pass=<hidden>" } else { f })
        .collect::<Vec<_>>()
        .join("\t")
}

/// Dovecot's `wildcard_match_icase`: the glob match without regard to case.
fn wildcard_match_icase(pattern: &str, text: &str) -> bool {
    dovecote_config::var_expand::wildcard_match(&text.to_lowercase(), &pattern.to_lowercase())
}

/// For every auth unix listener named `*-userdb` with mode exactly 0666:
/// the socket file's owner uid and gid.
fn userdb_socket_owners(config: &Config, base_dir: &str) -> HashMap<String, (u32, u32)> {
    let mut out = HashMap::new();
    let Some(service) = config.service("auth") else { return out };
    for listener in service.children_of(SectionKind::UnixListener) {
        let path = listener.name.clone();
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        if !matches!(ConnKind::for_listener(&name), ConnKind::Userdb { .. }) {
            continue;
        }
        let full = if path.starts_with('/') { path.clone() } else { format!("{base_dir}/{path}") };
        if let Ok(meta) = std::fs::metadata(&full) {
            if meta.mode() & 0o777 == 0o666 {
                out.insert(name, (meta.uid(), meta.gid()));
            }
        }
    }
    out
}

impl Service for AuthServer {
    type Session = Session;

    fn connected(&mut self, client: &mut Client) -> Option<Session> {
        let mut kind = ConnKind::for_listener(&client.listener.name);
        let cred = match &client.stream {
            dovecote_master::Stream::Unix(s) => {
                nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials).ok()
            }
            dovecote_master::Stream::Tcp(_) => None,
        };
        if let ConnKind::Userdb { .. } = kind {
            if let Some((uid, gid)) = self.userdb_owners.get(&client.listener.name) {
                let full = cred.is_some_and(|c| c.uid() == *uid || c.gid() == *gid || c.uid() == 0);
                if !full {
                    kind =
                        ConnKind::Userdb { restricted_uid: Some(cred.map(|c| c.uid()).unwrap_or(u32::MAX)) };
                }
            }
        }
        let mut conn = self.handshake(client, kind)?;
        conn.peer_pid = cred.map(|c| c.pid());
        self.conns.insert(client.id(), conn);
        client.state = "idle".into();
        Some(Session::default())
    }

    fn readable(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let cid = client.id();
        let Some(kind) = self.conns.get(&cid).map(|c| c.kind) else { return Progress::Close };
        let max_line = match kind {
            ConnKind::Client { .. } => CLIENT_MAX_LINE,
            _ => MASTER_MAX_LINE,
        };
        let mut buf = [0u8; 16384];
        let mut eof = false;
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    session.input.extend_from_slice(&buf[..n]);
                    if session.input.len() > max_line + 1 && !session.input.contains(&b'\n') {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let mut keep = true;
        while keep {
            let Some(pos) = session.input.iter().position(|b| *b == b'\n') else { break };
            let mut line: Vec<u8> = session.input.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max_line {
                keep = false;
                break;
            }
            if line.is_empty() {
                continue;
            }
            keep = match kind {
                ConnKind::Client { .. } => self.client_line(cid, &line),
                _ => self.master_line(cid, &line),
            };
        }
        if keep && session.input.len() > max_line {
            keep = false;
        }
        if !keep && session.input.len() > max_line {
            slog::error!(
                self.log,
                "BUG: Auth client {} sent us more than {max_line} bytes",
                self.client_pid(cid)
            );
        }
        // Replies produced for this client go out now; others in `tick`.
        let mut rest = Vec::new();
        for (conn, line) in std::mem::take(&mut self.outbox) {
            if conn == cid {
                client.send(format!("{line}\n").as_bytes());
            } else {
                rest.push((conn, line));
            }
        }
        self.outbox = rest;
        if eof || !keep {
            if eof {
                let pending = self.conns.get(&cid).map(|c| c.requests.len()).unwrap_or(0);
                if pending > 0 && matches!(kind, ConnKind::Client { .. }) {
                    slog::error!(
                        self.log,
                        "auth client {} disconnected with {pending} pending requests: EOF",
                        self.client_pid(cid)
                    );
                }
            }
            self.connection_gone(cid);
            return Progress::Close;
        }
        Progress::Continue
    }

    fn wakeup_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.workers.fd())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sweep = self.last_sweep + Duration::from_secs(1);
        let penalized = self.penalized.iter().map(|p| p.at).min();
        [self.next_failure_check, self.workers.next_deadline(), Some(sweep), penalized]
            .into_iter()
            .flatten()
            .min()
    }

    fn tick(&mut self, clients: &mut Clients<'_, Session>) {
        for event in self.workers.poll() {
            self.worker_event(event);
        }
        if self.next_failure_check.is_some_and(|t| Instant::now() >= t) {
            self.flush_failures(false);
        }
        if self.penalized.iter().any(|p| p.at <= Instant::now()) {
            self.release_penalized();
        }
        if self.last_sweep.elapsed() >= Duration::from_secs(1) {
            self.last_sweep = Instant::now();
            self.sweep(clients);
        }
        for (conn, line) in std::mem::take(&mut self.outbox) {
            if let Some((client, _)) = clients.get_mut(conn) {
                client.send(format!("{line}\n").as_bytes());
            }
        }
        for conn in std::mem::take(&mut self.to_close) {
            clients.close(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_kinds() {
        assert_eq!(ConnKind::for_listener("login"), ConnKind::Client { login: true, token: false });
        assert_eq!(ConnKind::for_listener("auth-login"), ConnKind::Client { login: true, token: false });
        assert_eq!(ConnKind::for_listener("auth-client"), ConnKind::Client { login: false, token: false });
        assert_eq!(ConnKind::for_listener("auth"), ConnKind::Client { login: false, token: false });
        assert_eq!(ConnKind::for_listener("auth-master"), ConnKind::Master);
        assert_eq!(ConnKind::for_listener("auth-userdb"), ConnKind::Userdb { restricted_uid: None });
        assert_eq!(ConnKind::for_listener("tokenlogin"), ConnKind::Client { login: true, token: true });
        assert!(wildcard_match_icase("T*", "tim"));
        assert!(!wildcard_match_icase("b*", "tim"));
        assert_eq!(redact_line("OK\t1\tuser=a\tpass=secret"), "OK\t1\tuser=a\tpass=<hidden>");
    }
}
