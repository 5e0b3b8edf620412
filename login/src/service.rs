//! The login service on the master runtime: accepts clients, runs TLS and
//! the HAProxy header, drives the pre-auth state machine, talks to auth
//! through [`AuthClient`], hands the connection to the post-login service
//! ([`crate::handoff`]) and, under TLS, keeps proxying ([`crate::proxy`]).
//!
//! Everything runs in the runtime's one event loop. The service's own
//! sockets (auth, post-login, TLS socketpairs) live in a second
//! `mio::Poll` whose epoll fd the runtime watches ([`Service::wakeup_fd`]);
//! [`Service::tick`] drains it and fires the pre-login timeouts.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use dovecote_config::model::ConnectionInfo;
use dovecote_config::Config;
use dovecote_master::runtime::{Client, Clients, Context, Progress, Service, Stream};
use mio::{Events, Interest, Poll, Token};
use rustls::ServerConfig;

use dovecote_anvil::protocol::userip_ident;
use dovecote_anvil::AnvilClient;

use crate::auth::{AuthClient, AuthConnection, Grant, RequestInfo};
use crate::handoff::{self, HandoffRecord};
use crate::haproxy;
use crate::imap::ImapLogin;
use crate::log_format::{self, LogVars};
use crate::policy::Security;
use crate::pop3::Pop3Login;
use crate::proxy::{TlsLayer, MAX_PENDING};
use crate::sasl::{AuthReply, Mechanism};
use crate::settings::{in_networks, LoginSettings, SslMode};
use crate::tls::build_server_config;
use crate::Action;

mod proxying;

/// How long a client may stay unauthenticated, counted from its
/// connection (Dovecot's `CLIENT_LOGIN_TIMEOUT_MSECS`, 3 minutes).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(180);
/// How often a lost auth connection is retried.
pub const AUTH_RECONNECT: Duration = Duration::from_secs(5);
const AUTH_TOKEN: Token = Token(0);
/// Most bytes read from a client in one go before it is cut off.
const MAX_READ: usize = 1024 * 1024;

/// Which protocol a login binary serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

enum Machine {
    Imap(ImapLogin),
    Pop3(Pop3Login),
}

impl Machine {
    fn greeting(&mut self) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.greeting(),
            Machine::Pop3(m) => m.greeting(),
        }
    }
    fn input(&mut self, data: &[u8]) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.input(data),
            Machine::Pop3(m) => m.input(data),
        }
    }
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.auth_reply(reply),
            Machine::Pop3(m) => m.auth_reply(reply),
        }
    }
    fn tls_started(&mut self) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.tls_started(),
            Machine::Pop3(m) => m.tls_started(),
        }
    }
    fn disconnected(&mut self) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.disconnected(),
            Machine::Pop3(m) => m.disconnected(),
        }
    }
    fn shutdown(&mut self) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.shutdown(),
            Machine::Pop3(m) => m.shutdown(),
        }
    }
    fn security(&self) -> Security {
        match self {
            Machine::Imap(m) => m.security(),
            Machine::Pop3(m) => m.security(),
        }
    }
    fn internal_failure(&self, prefix: &[u8]) -> Vec<u8> {
        self.temporary_failure(prefix, "Internal login failure. Refer to server log for more information.")
    }
    /// Dovecot's CLIENT_AUTH_RESULT_TEMPFAIL reply: authentication
    /// succeeded but the session can't start.
    fn temporary_failure(&self, prefix: &[u8], text: &str) -> Vec<u8> {
        match self {
            Machine::Imap(_) => {
                let tag = String::from_utf8_lossy(prefix.get(1..).unwrap_or_default()).into_owned();
                format!("{tag} NO [UNAVAILABLE] {text}\r\n").into_bytes()
            }
            Machine::Pop3(_) => format!("-ERR [SYS/TEMP] {text}\r\n").into_bytes(),
        }
    }
    fn proxy_failed(&mut self) -> Vec<Action> {
        match self {
            Machine::Imap(m) => m.proxy_failed(),
            Machine::Pop3(m) => m.proxy_failed(),
        }
    }
    fn take_input(&mut self) -> Vec<u8> {
        match self {
            Machine::Imap(m) => m.take_input(),
            Machine::Pop3(m) => m.take_input(),
        }
    }
    fn pending_input(&self) -> usize {
        match self {
            Machine::Imap(m) => m.pending_input(),
            Machine::Pop3(m) => m.pending_input(),
        }
    }
    /// The reply when proxying can't go on (`client_proxy_error`): IMAP
    /// `NO [UNAVAILABLE]`, POP3 a plain `-ERR`, as Dovecot's.
    fn proxy_error(&self, tag: &str, text: &str) -> Vec<u8> {
        match self {
            Machine::Imap(_) => format!("{tag} NO [UNAVAILABLE] {text}\r\n").into_bytes(),
            Machine::Pop3(_) => format!("-ERR {text}\r\n").into_bytes(),
        }
    }
    fn inactivity(&self) -> &'static [u8] {
        match self {
            Machine::Imap(_) => b"* BYE Disconnected for inactivity.\r\n",
            Machine::Pop3(_) => b"-ERR Disconnected for inactivity.\r\n",
        }
    }
}

enum Phase {
    /// Waiting for the PROXY header (haproxy listeners).
    Haproxy(Vec<u8>),
    /// Implicit TLS: handshake first, greeting after.
    TlsHandshake,
    PreAuth,
    /// Plain connection: the fd went to the post-login service; waiting
    /// for its answer on `conn`.
    HandingOff {
        conn: mio::net::UnixStream,
    },
    /// Logging in to a proxy backend ([`proxying`]).
    ProxyLogin(Box<proxying::ProxyLogin>),
    /// Logged in at the backend: bytes flow between client and backend.
    Relay(Box<proxying::Relay>),
    /// TLS connection after handoff: plaintext flows through `pair`.
    Proxying {
        pair: mio::net::UnixStream,
        token: Token,
        to_pair: Vec<u8>,
        answered: bool,
        answer: Option<mio::net::UnixStream>,
        /// Client reading stopped until the post-login process catches up.
        client_paused: bool,
    },
}

/// Per-client state.
pub struct Session {
    /// The runtime's client id.
    id: usize,
    machine: Machine,
    tls: Option<TlsLayer>,
    phase: Phase,
    settings: LoginSettings,
    remote: Option<SocketAddr>,
    local: Option<SocketAddr>,
    implicit_tls: bool,
    session_id: String,
    started: Instant,
    auth_attempts: u32,
    grant: Option<Grant>,
    user: Option<String>,
    /// The SASL mechanism of the latest AUTH (`%m` in log lines).
    mech: Option<String>,
    prefix: Vec<u8>,
}

/// The login service of `imap-login` / `pop3-login`.
pub struct LoginService {
    protocol: Protocol,
    config: Config,
    tls: Option<Arc<ServerConfig>>,
    log: slog::Logger,
    poll: Poll,
    auth: Option<AuthConnection>,
    auth_path: PathBuf,
    auth_retry: Instant,
    fallback_mechanisms: Vec<Mechanism>,
    postlogin_path: PathBuf,
    tokens: HashMap<Token, usize>,
    next_token: usize,
    deadlines: HashMap<usize, Instant>,
    /// The anvil connection the master passed; `None` = no limit checks.
    anvil: Option<AnvilClient>,
    /// Proxy connect retries and login timeouts, per client.
    proxy_timers: HashMap<usize, Instant>,
    /// `login_proxy_timeout` and `login_proxy_max_reconnects`.
    proxy_timeout: Duration,
    proxy_max_reconnects: u32,
    /// TLS towards backends: verifying (`ssl=yes`) and not (`any-cert`),
    /// built on first use.
    proxy_tls: proxying::ClientTls,
}

impl LoginService {
    /// Builds the service from the runtime context: TLS configuration
    /// (fatal if `ssl != no` and it cannot be built, as in Dovecot), the
    /// auth connection (`login` in the chroot) and the post-login socket
    /// name (`imap` / `pop3`).
    pub fn new(ctx: &Context, protocol: Protocol) -> Result<LoginService, String> {
        let proto_view = ctx.config.for_connection(&ConnectionInfo {
            protocol: Some(protocol.name().into()),
            ..ConnectionInfo::default()
        });
        let tls = if proto_view.text("ssl") == "no" {
            None
        } else {
            let built = build_server_config(&ctx.config, protocol.name()).map_err(|e| e.to_string())?;
            for notice in &built.notices {
                slog::warn!(ctx.log, "{}", notice);
            }
            Some(built.config)
        };
        let poll = Poll::new().map_err(|e| e.to_string())?;
        let fallback_mechanisms = LoginSettings::from_config(&proto_view)
            .auth_mechanisms
            .iter()
            .map(|m| Mechanism::from_setting(m))
            .collect();
        let mut service = LoginService {
            protocol,
            config: ctx.config.clone(),
            tls,
            log: ctx.log.clone(),
            poll,
            auth: None,
            auth_path: PathBuf::from("login"),
            auth_retry: Instant::now(),
            fallback_mechanisms,
            postlogin_path: PathBuf::from(protocol.name()),
            tokens: HashMap::new(),
            next_token: 1,
            deadlines: HashMap::new(),
            anvil: match AnvilClient::from_master() {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    slog::error!(ctx.log, "anvil: {}", e);
                    None
                }
                None => None,
            },
            proxy_timers: HashMap::new(),
            proxy_timeout: Duration::from_millis(proto_view.root.number("login_proxy_timeout").max(1)),
            proxy_max_reconnects: u32::try_from(proto_view.root.number("login_proxy_max_reconnects"))
                .unwrap_or(u32::MAX),
            proxy_tls: proxying::ClientTls::new(&proto_view),
        };
        service.connect_auth();
        Ok(service)
    }

    fn connect_auth(&mut self) {
        self.auth_retry = Instant::now() + AUTH_RECONNECT;
        match AuthConnection::connect(self.auth_path.clone(), self.poll.registry(), AUTH_TOKEN) {
            Ok(conn) => self.auth = Some(conn),
            Err(e) => {
                slog::debug!(self.log, "connect({}) failed: {}", self.auth_path.display(), e);
                self.auth = None;
            }
        }
    }

    fn mechanisms(&self) -> Vec<Mechanism> {
        self.auth.as_ref().and_then(|a| a.mechanisms()).unwrap_or_else(|| self.fallback_mechanisms.clone())
    }

    fn new_token(&mut self, client: usize) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.tokens.insert(token, client);
        token
    }

    fn log_disconnect(&self, session: &Session, reason: &str) {
        let secs = session.started.elapsed().as_secs();
        let attempts = if session.auth_attempts == 0 {
            format!("no auth attempts in {secs} secs")
        } else {
            format!("auth failed, {} attempts in {secs} secs", session.auth_attempts)
        };
        slog::info!(self.log, "{}", self.log_line(session, &format!("{reason} ({attempts})"), None));
    }

    /// `message` with the client's details, per `login_log_format`.
    fn log_line(&self, session: &Session, message: &str, mail_pid: Option<u32>) -> String {
        let ip = |a: Option<SocketAddr>| a.map(|a| a.ip().to_string()).unwrap_or_default();
        let port = |a: Option<SocketAddr>| a.map(|a| a.port().to_string()).unwrap_or_default();
        let sec = session.machine.security();
        let secured = if matches!(session.phase, Phase::TlsHandshake) {
            Some("TLS handshaking".to_owned())
        } else if sec.tls {
            Some("TLS".to_owned())
        } else {
            sec.secured.then(|| "secured".to_owned())
        };
        let vars = LogVars {
            user: session.user.clone(),
            service: self.protocol.name().to_owned(),
            lip: ip(session.local),
            rip: ip(session.remote),
            lport: port(session.local),
            rport: port(session.remote),
            real_lip: ip(session.local),
            real_rip: ip(session.remote),
            real_lport: port(session.local),
            real_rport: port(session.remote),
            pid: std::process::id().to_string(),
            mech: session.mech.clone(),
            secured,
            ssl_security: String::new(),
            mail_pid,
            session: session.session_id.clone(),
            listener: String::new(),
            local_name: String::new(),
        };
        log_format::line(
            &session.settings.login_log_format,
            &session.settings.login_log_format_elements,
            &vars,
            message,
        )
    }

    /// Starts the protocol once the real addresses are known.
    fn start(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        if session.implicit_tls {
            match self.tls.clone().map(TlsLayer::new) {
                Some(Ok(layer)) => {
                    session.tls = Some(layer);
                    session.phase = Phase::TlsHandshake;
                    Progress::Continue
                }
                _ => {
                    slog::error!(self.log, "TLS initialization failed.");
                    Progress::Close
                }
            }
        } else {
            session.phase = Phase::PreAuth;
            let greeting = session.machine.greeting();
            self.execute(client, session, greeting)
        }
    }

    /// Moves client bytes (ciphertext or plain) through TLS and the state machine.
    fn client_bytes(&mut self, client: &mut Client, session: &mut Session, data: &[u8]) -> Progress {
        if let Phase::Haproxy(buf) = &mut session.phase {
            buf.extend_from_slice(data);
            match haproxy::parse(buf) {
                Ok(None) if buf.len() <= haproxy::V2_MAX => return Progress::Continue,
                Ok(None) => {
                    slog::info!(
                        self.log,
                        "haproxy: Client disconnected: Too long header (rip={})",
                        ip_text(session.remote)
                    );
                    return Progress::Close;
                }
                Err(e) => {
                    slog::info!(
                        self.log,
                        "haproxy: Client disconnected: {} (rip={})",
                        e,
                        ip_text(session.remote)
                    );
                    return Progress::Close;
                }
                Ok(Some(header)) => {
                    let rest = buf[header.consumed..].to_vec();
                    if let Some((remote, local)) = header.addresses {
                        session.remote = Some(remote);
                        session.local = Some(local);
                        session.settings = self.settings_for(Some(remote), Some(local));
                    }
                    let mut sec = Security::classify(
                        &session.settings,
                        session.remote.map(|a| a.ip()),
                        session.local.map(|a| a.ip()),
                        false,
                    );
                    sec.secured |= header.ssl;
                    session.machine = self.machine_for(session.settings.clone(), sec);
                    if self.start(client, session) == Progress::Close {
                        return Progress::Close;
                    }
                    return self.client_bytes(client, session, &rest);
                }
            }
        }
        let plaintext = if let Some(tls) = session.tls.as_mut() {
            let result = tls.input(data);
            let output = tls.take_output();
            if !output.is_empty() {
                client.send(&output);
            }
            if let Some(error) = result.error {
                self.log_disconnect(session, &format!("Disconnected: TLS handshaking: {error}"));
                return Progress::Close;
            }
            if result.handshake_done {
                let p = match session.phase {
                    Phase::TlsHandshake => {
                        session.phase = Phase::PreAuth;
                        let mut greeting = session.machine.tls_started();
                        greeting.extend(session.machine.greeting());
                        self.execute(client, session, greeting)
                    }
                    _ => {
                        let actions = session.machine.tls_started();
                        self.execute(client, session, actions)
                    }
                };
                if p == Progress::Close {
                    return p;
                }
            }
            if result.closed && result.plaintext.is_empty() {
                return self.client_gone(session);
            }
            result.plaintext
        } else {
            data.to_vec()
        };
        if plaintext.is_empty() {
            return Progress::Continue;
        }
        match &mut session.phase {
            Phase::Proxying { pair, to_pair, .. } => {
                // Bounded by readable(), which stops reading the client
                // while this is over MAX_PENDING.
                to_pair.extend_from_slice(&plaintext);
                flush_to(pair, to_pair);
                Progress::Continue
            }
            Phase::PreAuth => {
                let actions = session.machine.input(&plaintext);
                self.execute(client, session, actions)
            }
            Phase::ProxyLogin(_) => {
                // Kept until the backend login ends, within limits.
                let _ = session.machine.input(&plaintext);
                if session.machine.pending_input() > proxying::MAX_CLIENT_PENDING {
                    return self.proxy_client_overflow(session);
                }
                Progress::Continue
            }
            Phase::Relay(relay) => {
                relay.client_to_backend(&plaintext);
                Progress::Continue
            }
            _ => Progress::Continue,
        }
    }

    fn client_gone(&mut self, session: &mut Session) -> Progress {
        let actions = session.machine.disconnected();
        for a in actions {
            if a == Action::AuthCancel {
                if let Some(auth) = self.auth.as_mut() {
                    auth.cancel(session_key(session));
                }
            }
        }
        if matches!(session.phase, Phase::PreAuth | Phase::TlsHandshake | Phase::Haproxy(_)) {
            self.log_disconnect(session, "Disconnected: Connection closed");
        }
        if let Phase::ProxyLogin(_) = session.phase {
            self.log_disconnect(session, "Disconnected: Connection closed");
        }
        if let Phase::Relay(relay) = &session.phase {
            let reason = relay.disconnect_reason("client");
            self.proxy_log_info(session, &reason);
        }
        Progress::Close
    }

    /// Carries out what the state machine asked for.
    fn execute(&mut self, client: &mut Client, session: &mut Session, actions: Vec<Action>) -> Progress {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let mut progress = Progress::Continue;
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(bytes) => send(client, session, &bytes),
                Action::StartTls => match self.tls.clone().map(TlsLayer::new) {
                    Some(Ok(layer)) => session.tls = Some(layer),
                    _ => {
                        slog::error!(self.log, "TLS initialization failed.");
                        progress = Progress::Close;
                    }
                },
                Action::AuthBegin { mechanism, initial_response } => {
                    session.auth_attempts += 1;
                    session.mech = Some(mechanism.to_ascii_uppercase());
                    let sec = session.machine.security();
                    let info = RequestInfo {
                        service: self.protocol.name().into(),
                        remote: session.remote,
                        local: session.local,
                        secured: sec.secured,
                        tls: sec.tls,
                        session: session.session_id.clone(),
                        valid_client_cert: session.tls.as_ref().is_some_and(|t| t.has_valid_client_cert()),
                        cert_username: session
                            .tls
                            .as_ref()
                            .and_then(|t| t.peer_name(&session.settings.ssl_cert_username_field)),
                    };
                    let key = session_key(session);
                    let started = match self.auth.as_mut() {
                        Some(auth) => auth.begin(key, &mechanism, initial_response.as_deref(), &info),
                        None => Err(io::Error::new(io::ErrorKind::NotConnected, "not connected")),
                    };
                    if let Err(e) = started {
                        slog::error!(
                            self.log,
                            "Authentication server isn't connected ({}): {}",
                            self.auth_path.display(),
                            e
                        );
                        queue.extend(session.machine.auth_reply(AuthReply::Unavailable));
                    }
                }
                Action::AuthContinue(data) => {
                    let key = session_key(session);
                    let sent = self.auth.as_mut().map(|a| a.cont(key, &data));
                    if !matches!(sent, Some(Ok(()))) {
                        queue.extend(session.machine.auth_reply(AuthReply::Unavailable));
                    }
                }
                Action::AuthCancel => {
                    let key = session_key(session);
                    if let Some(auth) = self.auth.as_mut() {
                        auth.cancel(key);
                    }
                }
                Action::Handoff { user, prefix, client_input } => {
                    session.user = Some(user);
                    session.prefix = prefix.clone();
                    if self.handoff(client, session, prefix, client_input) == Progress::Close {
                        progress = Progress::Close;
                    }
                }
                Action::Forwarded(f) => {
                    let remote = session.remote.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                    let local = session.local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                    if f.remote_ip.is_some() || f.remote_port.is_some() {
                        session.remote = Some(SocketAddr::new(
                            f.remote_ip.unwrap_or(remote.ip()),
                            f.remote_port.unwrap_or(remote.port()),
                        ));
                    }
                    if f.local_ip.is_some() || f.local_port.is_some() {
                        session.local = Some(SocketAddr::new(
                            f.local_ip.unwrap_or(local.ip()),
                            f.local_port.unwrap_or(local.port()),
                        ));
                    }
                    if let Some(id) = f.session_id {
                        session.session_id = id;
                    }
                }
                Action::Proxy { user, fields, tag } => {
                    session.user = Some(user);
                    queue.extend(self.start_proxy(client, session, &fields, &tag));
                }
                Action::Close { reason } => {
                    if let Some(tls) = session.tls.as_mut() {
                        tls.send_close_notify();
                    }
                    self.log_disconnect(session, &reason);
                    progress = Progress::Close;
                }
            }
        }
        flush_tls(client, session);
        progress
    }

    /// `mail_max_userip_connections`: the refusal text when the user
    /// already has that many sessions from this IP. A failed lookup lets
    /// the login through, as in Dovecot.
    fn userip_limit_reached(&mut self, session: &Session) -> Option<String> {
        let limit = session.settings.mail_max_userip_connections;
        let user = session.user.as_deref()?;
        if limit == 0 {
            return None;
        }
        let anvil = self.anvil.as_mut()?;
        let ident = userip_ident(self.protocol.name(), &ip_text(session.remote), user);
        match anvil.lookup(&ident) {
            Ok(count) if count >= limit => Some(format!(
                "Maximum number of connections from user+IP exceeded (mail_max_userip_connections={limit})"
            )),
            Ok(_) => None,
            Err(e) => {
                slog::error!(self.log, "anvil lookup failed: {}", e);
                // A dead connection stays dead (anvil restarted): stop
                // asking instead of failing on every login.
                self.anvil = None;
                None
            }
        }
    }

    fn handoff(
        &mut self,
        client: &mut Client,
        session: &mut Session,
        prefix: Vec<u8>,
        client_input: Vec<u8>,
    ) -> Progress {
        let Some(grant) = session.grant.clone() else {
            slog::error!(self.log, "BUG: handoff without an auth grant");
            return Progress::Close;
        };
        if let Some(reason) = self.userip_limit_reached(session) {
            let reply = session.machine.temporary_failure(&session.prefix, &reason);
            send(client, session, &reply);
            flush_tls(client, session);
            slog::info!(self.log, "{}", self.log_line(session, &reason, None));
            return Progress::Close;
        }
        let sec = session.machine.security();
        let mut flags = 0;
        if sec.secured {
            flags |= handoff::FLAG_SECURED;
        }
        if sec.tls {
            flags |= handoff::FLAG_TLS;
        }
        if session.implicit_tls {
            flags |= handoff::FLAG_IMPLICIT_TLS;
        }
        let proxied = session.tls.is_some();
        if proxied {
            flags |= handoff::FLAG_TLS_PROXIED;
        }
        let record = HandoffRecord {
            auth_pid: grant.auth_pid,
            auth_id: grant.auth_id,
            cookie: grant.cookie,
            login_pid: std::process::id(),
            remote: session.remote,
            local: session.local,
            flags,
            user: session.user.clone().unwrap_or_default(),
            session_id: session.session_id.clone(),
            prefix,
            client_input,
        };
        let result = if proxied {
            std::os::unix::net::UnixStream::pair().and_then(|(ours, theirs)| {
                ours.set_nonblocking(true)?;
                let conn =
                    handoff::send(&self.postlogin_path, &record, theirs.as_fd(), handoff::REPLY_TIMEOUT)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                Ok((Some(ours), conn))
            })
        } else {
            let fd = match &client.stream {
                Stream::Tcp(s) => s.as_fd(),
                Stream::Unix(s) => s.as_fd(),
            };
            handoff::send(&self.postlogin_path, &record, fd, handoff::REPLY_TIMEOUT)
                .map(|conn| (None, conn))
                .map_err(|e| io::Error::other(e.to_string()))
        };
        let (pair, conn) = match result {
            Ok(x) => x,
            Err(e) => {
                slog::error!(
                    self.log,
                    "{}",
                    self.log_line(session, &format!("Internal login failure: {e}"), None)
                );
                let reply = session.machine.internal_failure(&session.prefix);
                send(client, session, &reply);
                flush_tls(client, session);
                return Progress::Close;
            }
        };
        let _ = conn.set_nonblocking(true);
        let mut conn = mio::net::UnixStream::from_std(conn);
        let id = session_key(session);
        let answer_token = self.new_token(id);
        let _ = self.poll.registry().register(&mut conn, answer_token, Interest::READABLE);
        self.deadlines.remove(&id);
        match pair {
            Some(ours) => {
                let mut pair = mio::net::UnixStream::from_std(ours);
                let token = self.new_token(id);
                let _ =
                    self.poll.registry().register(&mut pair, token, Interest::READABLE | Interest::WRITABLE);
                session.phase = Phase::Proxying {
                    pair,
                    token,
                    to_pair: Vec::new(),
                    answered: false,
                    answer: Some(conn),
                    client_paused: false,
                };
            }
            None => session.phase = Phase::HandingOff { conn },
        }
        Progress::Continue
    }

    fn settings_for(&self, remote: Option<SocketAddr>, local: Option<SocketAddr>) -> LoginSettings {
        let view = self.config.for_connection(&ConnectionInfo {
            protocol: Some(self.protocol.name().into()),
            local_ip: local.map(|a| a.ip()),
            local_name: None,
            remote_ip: remote.map(|a| a.ip()),
        });
        let mut settings = LoginSettings::from_config(&view);
        if self.tls.is_none() {
            settings.ssl = SslMode::No;
        }
        settings
    }

    fn machine_for(&self, settings: LoginSettings, security: Security) -> Machine {
        let mechs = self.mechanisms();
        match self.protocol {
            Protocol::Imap => Machine::Imap(ImapLogin::new(settings, security, mechs)),
            Protocol::Pop3 => Machine::Pop3(Pop3Login::new(settings, security, mechs)),
        }
    }

    /// Something happened on one of our own sockets for client `id`.
    fn own_socket(&mut self, token: Token, client: &mut Client, session: &mut Session) -> Progress {
        match &mut session.phase {
            Phase::ProxyLogin(_) => return self.proxy_login_event(client, session),
            Phase::Relay(_) => return self.relay_event(client, session),
            _ => {}
        }
        match &mut session.phase {
            Phase::HandingOff { conn, .. } => match read_answer(conn) {
                None => Progress::Continue,
                Some(Ok(mail_pid)) => {
                    slog::info!(self.log, "{}", self.log_line(session, "Login", mail_pid.parse().ok()));
                    Progress::Close
                }
                Some(Err(reason)) => {
                    let message = format!("Internal login failure: {reason}");
                    slog::error!(self.log, "{}", self.log_line(session, &message, None));
                    let reply = session.machine.internal_failure(&session.prefix);
                    send(client, session, &reply);
                    Progress::Close
                }
            },
            Phase::Proxying { pair, token: pair_token, to_pair, answered, answer, client_paused } => {
                if token != *pair_token {
                    if let Some(conn) = answer.as_mut() {
                        match read_answer(conn) {
                            None => {}
                            Some(Ok(mail_pid)) => {
                                *answered = true;
                                *answer = None;
                                let line = self.log_line(session, "Login", mail_pid.parse().ok());
                                slog::info!(self.log, "{}", line);
                            }
                            Some(Err(reason)) if !*answered => {
                                let message = format!("Internal login failure: {reason}");
                                slog::error!(self.log, "{}", self.log_line(session, &message, None));
                                let reply = session.machine.internal_failure(&session.prefix);
                                send(client, session, &reply);
                                flush_tls(client, session);
                                return Progress::Close;
                            }
                            Some(Err(_)) => *answer = None,
                        }
                    }
                    return Progress::Continue;
                }
                flush_to(pair, to_pair);
                let resume = *client_paused && to_pair.len() <= MAX_PENDING;
                if resume {
                    *client_paused = false;
                }
                let mut buf = [0u8; 16384];
                let mut eof = false;
                let mut data = Vec::new();
                loop {
                    match pair.read(&mut buf) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            data.extend_from_slice(&buf[..n]);
                            if data.len() > MAX_PENDING {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            eof = true;
                            break;
                        }
                    }
                }
                if let Some(tls) = session.tls.as_mut() {
                    if !data.is_empty() {
                        tls.write_plaintext(&data);
                    }
                    if eof {
                        tls.send_close_notify();
                    }
                }
                flush_tls(client, session);
                if eof {
                    Progress::Close
                } else if resume {
                    // Take up the client input left unread.
                    Service::readable(self, client, session)
                } else {
                    Progress::Continue
                }
            }
            _ => Progress::Continue,
        }
    }
}

impl Service for LoginService {
    type Session = Session;

    fn connected(&mut self, client: &mut Client) -> Option<Session> {
        let remote = client.remote;
        if let Stream::Tcp(s) = &client.stream {
            // TCP_NODELAY, as Dovecot's socket ostreams set it: a reply
            // leaving in two writes (TLS session tickets, then the
            // greeting) would otherwise wait for the client's delayed ACK
            // (40 ms). Best effort: the connection works without it.
            let _ = s.set_nodelay(true);
        }
        let local = match &client.stream {
            Stream::Tcp(s) => s.local_addr().ok(),
            Stream::Unix(_) => None,
        };
        let settings = self.settings_for(remote, local);
        let haproxy = client.listener.haproxy;
        if haproxy && !remote.is_some_and(|ip| in_networks(&settings.haproxy_trusted_networks, &ip.ip())) {
            slog::info!(
                self.log,
                "haproxy: Client not trusted (rip={}, lip={})",
                ip_text(remote),
                ip_text(local)
            );
            return None;
        }
        let security = Security::classify(&settings, remote.map(|a| a.ip()), local.map(|a| a.ip()), false);
        let machine = self.machine_for(settings.clone(), security);
        let mut session = Session {
            id: client.id(),
            machine,
            tls: None,
            phase: if haproxy { Phase::Haproxy(Vec::new()) } else { Phase::PreAuth },
            settings,
            remote,
            local,
            implicit_tls: client.listener.ssl && self.tls.is_some(),
            session_id: new_session_id(),
            started: Instant::now(),
            auth_attempts: 0,
            grant: None,
            mech: None,
            user: None,
            prefix: Vec::new(),
        };
        let id = client.id();
        let timeout = if haproxy {
            let secs = self.config.root.number("haproxy_timeout").max(1);
            Duration::from_secs(secs)
        } else {
            LOGIN_TIMEOUT
        };
        self.deadlines.insert(id, Instant::now() + timeout);
        if client.listener.ssl && self.tls.is_none() {
            slog::error!(
                self.log,
                "SSL is disabled (ssl=no), but listener {} has ssl=yes",
                client.listener.name
            );
            return None;
        }
        if !haproxy && self.start(client, &mut session) == Progress::Close {
            self.deadlines.remove(&id);
            return None;
        }
        client.state = "pre-login".into();
        Some(session)
    }

    fn readable(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        if matches!(session.phase, Phase::HandingOff { .. }) {
            // The post-login process owns the client's input now.
            return Progress::Continue;
        }
        if let Phase::Proxying { to_pair, client_paused, .. } = &mut session.phase {
            if to_pair.len() > MAX_PENDING {
                // The pair's writability (or the poll) resumes reading.
                *client_paused = true;
                self.relay_poll_soon(client.id(), proxying::RESUME_POLL);
                return Progress::Continue;
            }
        }
        if let Phase::Relay(relay) = &mut session.phase {
            if relay.backend_full() {
                // Read again once the backend has taken what it has.
                relay.client_paused = true;
                self.relay_poll_soon(client.id(), proxying::RESUME_POLL);
                return Progress::Continue;
            }
        }
        let mut data = Vec::new();
        let mut buf = [0u8; 16384];
        let mut eof = false;
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    if data.len() > MAX_READ {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let id = client.id();
        if data.len() > MAX_READ {
            // More is waiting unread (readiness is edge-triggered): the
            // poll picks it up.
            match &mut session.phase {
                Phase::Relay(relay) => relay.client_paused = true,
                Phase::Proxying { client_paused, .. } => *client_paused = true,
                _ => {}
            }
            self.relay_poll_soon(id, Duration::ZERO);
        }
        if !data.is_empty() && matches!(session.phase, Phase::PreAuth | Phase::TlsHandshake) {
            // The login timeout counts from the connection, not from the
            // last input (as Dovecot's): a client trickling a byte now and
            // then can't hold a login slot forever. This also replaces a
            // shorter haproxy_timeout once the PROXY header is in.
            self.deadlines.insert(id, session.started + LOGIN_TIMEOUT);
        }
        let mut progress =
            if data.is_empty() { Progress::Continue } else { self.client_bytes(client, session, &data) };
        if eof && progress == Progress::Continue {
            progress = self.client_gone(session);
        }
        if progress == Progress::Close {
            self.forget(id, session);
        }
        progress
    }

    fn shutting_down(&mut self, client: &mut Client, session: &mut Session) {
        if matches!(session.phase, Phase::PreAuth) {
            let actions = session.machine.shutdown();
            for a in actions {
                if let Action::Send(b) = a {
                    send(client, session, &b);
                }
            }
            flush_tls(client, session);
        }
    }

    fn wakeup_fd(&self) -> Option<RawFd> {
        Some(self.poll.as_raw_fd())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.deadlines.values().chain(self.proxy_timers.values()).min().copied();
        if self.auth.is_none() {
            next = Some(next.map_or(self.auth_retry, |n| n.min(self.auth_retry)));
        }
        next
    }

    fn tick(&mut self, clients: &mut Clients<'_, Session>) {
        let mut events = Events::with_capacity(64);
        if self.poll.poll(&mut events, Some(Duration::ZERO)).is_ok() {
            let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
            for token in tokens {
                if token == AUTH_TOKEN {
                    let Some(auth) = self.auth.as_mut() else { continue };
                    let replies = auth.readable();
                    if !auth.is_connected() {
                        slog::error!(
                            self.log,
                            "Authentication server disconnected ({})",
                            self.auth_path.display()
                        );
                        self.auth = None;
                        self.auth_retry = Instant::now() + AUTH_RECONNECT;
                    }
                    for reply in replies {
                        let Some((client, session)) = clients.get_mut(reply.client) else { continue };
                        if reply.grant.is_some() {
                            session.grant = reply.grant;
                        }
                        if let Some(user) = reply.user.filter(|u| !u.is_empty()) {
                            session.user = Some(user);
                        }
                        let actions = session.machine.auth_reply(reply.reply);
                        if self.execute(client, session, actions) == Progress::Close {
                            self.forget(reply.client, session);
                            clients.close(reply.client);
                        }
                    }
                    continue;
                }
                let Some(&id) = self.tokens.get(&token) else { continue };
                let Some((client, session)) = clients.get_mut(id) else {
                    self.tokens.remove(&token);
                    continue;
                };
                if self.own_socket(token, client, session) == Progress::Close {
                    self.forget(id, session);
                    clients.close(id);
                }
            }
        }
        let now = Instant::now();
        let due: Vec<usize> =
            self.proxy_timers.iter().filter(|(_, d)| **d <= now).map(|(id, _)| *id).collect();
        for id in due {
            self.proxy_timers.remove(&id);
            let Some((client, session)) = clients.get_mut(id) else { continue };
            if self.proxy_timer(client, session) == Progress::Close {
                self.forget(id, session);
                clients.close(id);
            }
        }
        let expired: Vec<usize> =
            self.deadlines.iter().filter(|(_, d)| **d <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.deadlines.remove(&id);
            let Some((client, session)) = clients.get_mut(id) else { continue };
            if matches!(session.phase, Phase::PreAuth) {
                let bye = session.machine.inactivity();
                send(client, session, bye);
                flush_tls(client, session);
            }
            self.log_disconnect(session, "Disconnected: Inactivity");
            self.forget(id, session);
            clients.close(id);
        }
        if self.auth.is_none() && now >= self.auth_retry {
            self.connect_auth();
        }
    }
}

impl LoginService {
    /// Drops our bookkeeping for a client that is closing.
    fn forget(&mut self, id: usize, session: &mut Session) {
        self.deadlines.remove(&id);
        self.proxy_timers.remove(&id);
        self.tokens.retain(|_, c| *c != id);
        match &mut session.phase {
            Phase::ProxyLogin(login) => login.close(self.poll.registry()),
            Phase::Relay(relay) => relay.close(self.poll.registry()),
            Phase::HandingOff { conn, .. } => {
                let _ = self.poll.registry().deregister(conn);
            }
            Phase::Proxying { pair, answer, .. } => {
                let _ = self.poll.registry().deregister(pair);
                if let Some(a) = answer.as_mut() {
                    let _ = self.poll.registry().deregister(a);
                }
            }
            _ => {}
        }
        if let Some(auth) = self.auth.as_mut() {
            auth.cancel(id);
        }
    }
}

/// The key the service and auth use for a session: the runtime's client id,
/// captured when the session was created.
fn session_key(session: &Session) -> usize {
    session.id
}

fn send(client: &mut Client, session: &mut Session, bytes: &[u8]) {
    match session.tls.as_mut() {
        Some(tls) if !matches!(session.phase, Phase::TlsHandshake) || !tls.is_handshaking() => {
            tls.write_plaintext(bytes)
        }
        Some(_) => {}
        None => client.send(bytes),
    }
}

fn flush_tls(client: &mut Client, session: &mut Session) {
    if let Some(tls) = session.tls.as_mut() {
        let out = tls.take_output();
        if !out.is_empty() {
            client.send(&out);
        }
    }
}

fn flush_to(stream: &mut mio::net::UnixStream, pending: &mut Vec<u8>) {
    while !pending.is_empty() {
        match stream.write(pending) {
            Ok(0) => break,
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// Reads the post-login service's one-line answer: `OK\t<mail pid>` or
/// `FAIL\t<reason>`. `None` while incomplete.
fn read_answer(conn: &mut mio::net::UnixStream) -> Option<Result<String, String>> {
    let mut buf = [0u8; 512];
    match conn.read(&mut buf) {
        Ok(0) => Some(Err("post-login service closed the connection without answering".into())),
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            let line = text.lines().next().unwrap_or("");
            match line.split_once('\t').unwrap_or((line, "")) {
                ("OK", pid) => Some(Ok(pid.to_owned())),
                (_, reason) => Some(Err(reason.to_owned())),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

fn ip_text(addr: Option<SocketAddr>) -> String {
    addr.map(|a| a.ip().to_string()).unwrap_or_default()
}

/// Dovecot-style session id: 12 random bytes, base64 (16 characters).
fn new_session_id() -> String {
    let mut raw = [0u8; 12];
    let _ = getrandom::getrandom(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}
