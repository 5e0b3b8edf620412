//! The login service's half of login proxying ([`crate::backend`]): the
//! backend connection in the service's `mio::Poll`, connect retries
//! (`login_proxy_max_reconnects`, one second apart, within
//! `proxy_timeout`/`login_proxy_timeout`), feeding backend lines to the
//! protocol's backend login, and then the relay that moves bytes both
//! ways until one side closes. Nothing here blocks: every socket is
//! non-blocking and timers go through [`Service::next_deadline`].
//!
//! Log lines are Dovecot 2.3's, with the `login_log_format` suffix:
//! `proxy(alice): started proxying to 127.0.0.1:1430`,
//! `proxy(alice): disconnecting 10.0.0.9 (Disconnected by client (0s idle,
//! in=40, out=1200))`, `proxy(alice): connect(127.0.0.1, 1430) failed:
//! Connection refused (after 3 secs, 3 reconnects, local=…)`,
//! `proxy(alice): Proxying loops to itself`.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dovecote_config::Config;
use dovecote_master::runtime::{Client, Progress, Service};
use mio::Registry;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::{flush_tls, send, session_key, LoginService, Machine, Phase, Protocol, Session};
use crate::backend::conn::BackendConn;
use crate::backend::imap::{ClientInfo, ImapBackend};
use crate::backend::pop3::Pop3Backend;
use crate::backend::{
    is_ourself, FailureKind, ProxyRequest, Step, CONNECT_RETRY, MAX_BACKEND_LINE, PROXY_FAILURE_MSG,
};
use crate::Action;

/// Client input kept while the backend login runs.
pub(super) const MAX_CLIENT_PENDING: usize = 64 * 1024;
/// Unwritten bytes towards the backend before we stop reading the client.
const MAX_BACKEND_PENDING: usize = 256 * 1024;
/// Unwritten bytes towards the client before we stop reading the backend.
const MAX_CLIENT_OUTPUT: usize = 256 * 1024;
/// How soon a paused side is looked at again (the runtime tells us
/// nothing when a socket drains, and readiness is edge-triggered).
pub(super) const RESUME_POLL: Duration = Duration::from_millis(20);

enum BackendLogin {
    Imap(ImapBackend),
    Pop3(Pop3Backend),
}

impl BackendLogin {
    fn line(&mut self, line: &str) -> Vec<Step> {
        match self {
            BackendLogin::Imap(b) => b.line(line),
            BackendLogin::Pop3(b) => b.line(line),
        }
    }
    fn tls_started(&mut self) -> Vec<Step> {
        match self {
            BackendLogin::Imap(b) => b.tls_started(),
            BackendLogin::Pop3(b) => b.tls_started(),
        }
    }
    fn state(&self) -> &'static str {
        match self {
            BackendLogin::Imap(b) => b.state(),
            BackendLogin::Pop3(b) => b.state(),
        }
    }
}

/// A backend login in progress.
pub(super) struct ProxyLogin {
    login: BackendLogin,
    request: ProxyRequest,
    tag: String,
    conn: Option<BackendConn>,
    connected: bool,
    started: Instant,
    deadline: Instant,
    retry_at: Option<Instant>,
    reconnects: u32,
    /// Backend bytes not yet split into lines.
    input: Vec<u8>,
}

impl ProxyLogin {
    pub(super) fn close(&mut self, registry: &Registry) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close();
            conn.deregister(registry);
        }
        self.conn = None;
    }

    /// `(after N secs[, M reconnects][, local=ip:port])`.
    fn after(&self) -> String {
        let mut s = format!("(after {} secs", self.started.elapsed().as_secs());
        if self.reconnects > 0 {
            s.push_str(&format!(", {} reconnects", self.reconnects));
        }
        if let Some(local) = self.conn.as_ref().and_then(BackendConn::local_addr) {
            s.push_str(&format!(", local={local}"));
        }
        s.push(')');
        s
    }
}

/// A logged-in proxied session.
pub(super) struct Relay {
    conn: BackendConn,
    remote_ip: String,
    last_io: Instant,
    /// Bytes client → backend and backend → client since the login.
    from_client: u64,
    to_client: u64,
    /// Client reading stopped while the backend is slow.
    pub(super) client_paused: bool,
}

impl LoginService {
    /// Looks at a paused relay again soon.
    pub(super) fn relay_poll_soon(&mut self, id: usize, delay: Duration) {
        let at = Instant::now() + delay;
        let entry = self.proxy_timers.entry(id).or_insert(at);
        *entry = (*entry).min(at);
    }
}

impl Relay {
    pub(super) fn client_to_backend(&mut self, data: &[u8]) {
        self.from_client += data.len() as u64;
        self.last_io = Instant::now();
        self.conn.send(data);
    }

    pub(super) fn backend_full(&self) -> bool {
        self.conn.pending() > MAX_BACKEND_PENDING
    }

    /// `disconnecting <ip> (Disconnected by <who>[: error] (Ns idle, in=…, out=…))`.
    pub(super) fn disconnect_reason(&self, who: &str) -> String {
        self.disconnect_text(who, None)
    }

    fn disconnect_text(&self, who: &str, error: Option<&str>) -> String {
        let error = error.map(|e| format!(": {e}")).unwrap_or_default();
        format!(
            "disconnecting {} (Disconnected by {who}{error} ({}s idle, in={}, out={}))",
            self.remote_ip,
            self.last_io.elapsed().as_secs(),
            self.from_client,
            self.to_client
        )
    }

    pub(super) fn close(&mut self, registry: &Registry) {
        self.conn.close();
        self.conn.deregister(registry);
    }
}

/// rustls client configurations for `ssl=yes` (verifying against
/// `ssl_client_ca_file`) and `ssl=any-cert`, built on first use.
pub(super) struct ClientTls {
    ca_pem: Result<Vec<u8>, String>,
    verified: Option<Result<Arc<ClientConfig>, String>>,
    any: Option<Arc<ClientConfig>>,
}

impl ClientTls {
    /// Reads `ssl_client_ca_file` now: the file must be readable where
    /// the login process runs (inside its chroot, or inlined with `<`).
    pub(super) fn new(config: &Config) -> ClientTls {
        let path = config.root.text("ssl_client_ca_file");
        let ca_pem = if path.is_empty() {
            Err("ssl_client_ca_file not set".to_owned())
        } else if path.contains("-----BEGIN") {
            Ok(path.into_bytes())
        } else {
            std::fs::read(&path).map_err(|e| format!("ssl_client_ca_file {path}: {e}"))
        };
        ClientTls { ca_pem, verified: None, any: None }
    }

    fn get(&mut self, any_cert: bool) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        if any_cert {
            if let Some(c) = &self.any {
                return Ok(c.clone());
            }
            let verifier = Arc::new(AnyCert(provider.clone()));
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            let config = Arc::new(config);
            self.any = Some(config.clone());
            return Ok(config);
        }
        if let Some(c) = &self.verified {
            return c.clone();
        }
        let built = self.ca_pem.clone().and_then(|pem| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("ssl_client_ca_file: {e}"))?;
                roots.add(cert).map_err(|e| format!("ssl_client_ca_file: {e}"))?;
            }
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        });
        self.verified = Some(built.clone());
        built
    }
}

/// `ssl=any-cert`: the backend's certificate is not checked (the
/// handshake signatures still are).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How a batch of backend steps ended.
enum Outcome {
    Continue,
    LoggedIn,
    /// Proxying failed; the machine's follow-up actions.
    Failed(Vec<Action>),
}

impl LoginService {
    fn proxy_log_error(&self, session: &Session, message: &str) {
        let user = session.user.clone().unwrap_or_default();
        slog::error!(self.log, "{}", self.log_line(session, &format!("proxy({user}): {message}"), None));
    }

    pub(super) fn proxy_log_info(&self, session: &Session, message: &str) {
        let user = session.user.clone().unwrap_or_default();
        slog::info!(self.log, "{}", self.log_line(session, &format!("proxy({user}): {message}"), None));
    }

    /// Auth said `proxy`: checks the request and starts connecting.
    /// Returns the machine's actions when proxying can't even start.
    pub(super) fn start_proxy(
        &mut self,
        client: &mut Client,
        session: &mut Session,
        fields: &[(String, String)],
        tag: &str,
    ) -> Vec<Action> {
        let login_user = session.user.clone().unwrap_or_default();
        let (port, ssl_port) = match self.protocol {
            Protocol::Imap => (143, 993),
            Protocol::Pop3 => (110, 995),
        };
        let request = match ProxyRequest::from_fields(fields, &login_user, port, ssl_port) {
            Ok(r) => r,
            Err(e) => return self.proxy_refuse(client, session, tag, &e.to_string()),
        };
        if is_ourself(&request, session.local, &login_user) {
            let maybe =
                fields.iter().any(|(k, _)| k == "proxy_maybe") && !fields.iter().any(|(k, _)| k == "proxy");
            if maybe {
                // proxy_maybe pointing at us: log in here.
                let prefix = match self.protocol {
                    Protocol::Imap => format!("0{tag}").into_bytes(),
                    Protocol::Pop3 => Vec::new(),
                };
                let client_input = session.machine.take_input();
                return vec![Action::Handoff { user: login_user, prefix, client_input }];
            }
            return self.proxy_refuse(client, session, tag, "Proxying loops to itself");
        }
        let info = ClientInfo {
            session_id: session.session_id.clone(),
            remote_ip: super::ip_text(session.remote),
            remote_port: session.remote.map_or(0, |a| a.port()),
            local_ip: super::ip_text(session.local),
            local_port: session.local.map_or(0, |a| a.port()),
        };
        let login = match &session.machine {
            Machine::Imap(m) => {
                BackendLogin::Imap(ImapBackend::new(request.clone(), info, tag, m.capability_requested()))
            }
            Machine::Pop3(_) => BackendLogin::Pop3(Pop3Backend::new(request.clone(), info)),
        };
        let now = Instant::now();
        let timeout = request.timeout.unwrap_or(self.proxy_timeout);
        session.phase = Phase::ProxyLogin(Box::new(ProxyLogin {
            login,
            request,
            tag: tag.to_owned(),
            conn: None,
            connected: false,
            started: now,
            deadline: now + timeout,
            retry_at: None,
            reconnects: 0,
            input: Vec::new(),
        }));
        client.state = "proxy".into();
        self.proxy_connect(client, session).unwrap_or_default()
    }

    /// Refuses before connecting: logged as an error, the client told
    /// the account is unavailable, back to commands.
    fn proxy_refuse(
        &mut self,
        client: &mut Client,
        session: &mut Session,
        tag: &str,
        log: &str,
    ) -> Vec<Action> {
        self.proxy_log_error(session, log);
        let reply = session.machine.proxy_error(tag, PROXY_FAILURE_MSG);
        send(client, session, &reply);
        session.machine.proxy_failed()
    }

    /// Opens a connection attempt; `Some(actions)` when proxying ended.
    fn proxy_connect(&mut self, client: &mut Client, session: &mut Session) -> Option<Vec<Action>> {
        let id = session_key(session);
        let token = self.new_token(id);
        let Phase::ProxyLogin(pl) = &mut session.phase else { return None };
        pl.connected = false;
        pl.input.clear();
        match BackendConn::connect(pl.request.addr(), self.poll.registry(), token) {
            Ok(conn) => {
                pl.conn = Some(conn);
                let at = pl.deadline;
                self.proxy_timers.insert(id, at);
                None
            }
            Err(e) => self.connect_failed(client, session, e),
        }
    }

    /// A connect attempt failed: retry a second later while reconnects
    /// and time are left, else give up.
    fn connect_failed(
        &mut self,
        client: &mut Client,
        session: &mut Session,
        error: io::Error,
    ) -> Option<Vec<Action>> {
        let id = session_key(session);
        let max = self.proxy_max_reconnects;
        let Phase::ProxyLogin(pl) = &mut session.phase else { return None };
        let now = Instant::now();
        let left = pl.deadline.saturating_duration_since(now);
        if pl.reconnects < max && !left.is_zero() {
            let message = format!(
                "connect({}, {}) failed: {} {} - reconnecting (attempt #{})",
                pl.request.ip,
                pl.request.port,
                io_text(&error),
                pl.after(),
                pl.reconnects + 1
            );
            pl.close(self.poll.registry());
            pl.reconnects += 1;
            let at = now + CONNECT_RETRY.min(left);
            pl.retry_at = Some(at);
            self.proxy_timers.insert(id, at);
            let user = session.user.clone().unwrap_or_default();
            slog::debug!(self.log, "{}", self.log_line(session, &format!("proxy({user}): {message}"), None));
            return None;
        }
        let message = format!(
            "connect({}, {}) failed: {} {}",
            pl.request.ip,
            pl.request.port,
            io_text(&error),
            pl.after()
        );
        Some(self.proxy_fail(client, session, FailureKind::Connect, Some(message)))
    }

    /// Ends the backend login: logs, tells the client, and hands the
    /// session back to the pre-auth machine (whose actions are returned).
    fn proxy_fail(
        &mut self,
        client: &mut Client,
        session: &mut Session,
        kind: FailureKind,
        log: Option<String>,
    ) -> Vec<Action> {
        let id = session_key(session);
        self.proxy_timers.remove(&id);
        let Phase::ProxyLogin(mut pl) = std::mem::replace(&mut session.phase, Phase::PreAuth) else {
            return Vec::new();
        };
        pl.close(self.poll.registry());
        client.state = "pre-login".into();
        if kind == FailureKind::Auth {
            if session.settings.verbose_auth {
                let mut target = format!("{}:{}", pl.request.host, pl.request.port);
                if Some(&pl.request.user) != session.user.as_ref() {
                    target.push('/');
                    target.push_str(&pl.request.user);
                }
                let reason = log.unwrap_or_default();
                self.proxy_log_info(session, &format!("Login failed to {target}: {reason}"));
            }
        } else {
            if let Some(message) = log {
                self.proxy_log_error(session, &message);
            }
            let reply = session.machine.proxy_error(&pl.tag, PROXY_FAILURE_MSG);
            send(client, session, &reply);
        }
        session.machine.proxy_failed()
    }

    /// The client sent too much while the backend login ran.
    pub(super) fn proxy_client_overflow(&mut self, session: &mut Session) -> Progress {
        self.log_disconnect(session, "Disconnected: Input buffer full");
        Progress::Close
    }

    /// Applies a backend login's steps (and those they lead to).
    fn apply_steps(&mut self, client: &mut Client, session: &mut Session, steps: Vec<Step>) -> Outcome {
        let mut queue: VecDeque<Step> = steps.into();
        while let Some(step) = queue.pop_front() {
            match step {
                Step::ToClient(bytes) => send(client, session, &bytes),
                Step::ToBackend(bytes) => {
                    if let Phase::ProxyLogin(pl) = &mut session.phase {
                        if let Some(conn) = pl.conn.as_mut() {
                            conn.send(&bytes);
                        }
                    }
                }
                Step::StartTls => {
                    let Phase::ProxyLogin(pl) = &mut session.phase else { continue };
                    let started = self.proxy_tls.get(pl.request.ssl.any_cert).and_then(|config| {
                        let host = pl.request.host.clone();
                        pl.conn.as_mut().ok_or_else(|| "not connected".to_owned())?.start_tls(config, &host)
                    });
                    match started {
                        // rustls holds the login until the handshake is done.
                        Ok(()) => queue.extend(pl.login.tls_started()),
                        Err(e) => {
                            let message = format!("Failed to start TLS: {e}");
                            return Outcome::Failed(self.proxy_fail(
                                client,
                                session,
                                FailureKind::Internal,
                                Some(message),
                            ));
                        }
                    }
                }
                Step::LoggedIn => return Outcome::LoggedIn,
                Step::Failed { kind, log } => {
                    return Outcome::Failed(self.proxy_fail(client, session, kind, log))
                }
            }
        }
        Outcome::Continue
    }

    /// Readiness on the backend socket during the login.
    pub(super) fn proxy_login_event(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let Phase::ProxyLogin(pl) = &mut session.phase else { return Progress::Continue };
        let Some(conn) = pl.conn.as_mut() else { return Progress::Continue };
        if !pl.connected {
            match conn.connect_result() {
                Ok(false) => return Progress::Continue,
                Err(e) => {
                    let actions = self.connect_failed(client, session, e).unwrap_or_default();
                    return self.execute(client, session, actions);
                }
                Ok(true) => {
                    pl.connected = true;
                    if pl.request.ssl.yes && !pl.request.ssl.starttls {
                        let host = pl.request.host.clone();
                        let started = self
                            .proxy_tls
                            .get(pl.request.ssl.any_cert)
                            .and_then(|config| conn.start_tls(config, &host));
                        if let Err(e) = started {
                            let message = format!("Failed to start TLS: {e}");
                            let actions =
                                self.proxy_fail(client, session, FailureKind::Internal, Some(message));
                            return self.execute(client, session, actions);
                        }
                    }
                }
            }
        }
        let input = conn.read();
        let alive = conn.flush();
        pl.input.extend_from_slice(&input.data);
        while let Phase::ProxyLogin(pl) = &mut session.phase {
            let Some(lf) = pl.input.iter().position(|b| *b == b'\n') else { break };
            let raw: Vec<u8> = pl.input.drain(..=lf).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\r', '\n']);
            let steps = pl.login.line(line);
            match self.apply_steps(client, session, steps) {
                Outcome::Continue => {}
                Outcome::LoggedIn => return self.start_relay(client, session),
                Outcome::Failed(actions) => return self.execute(client, session, actions),
            }
        }
        let Phase::ProxyLogin(pl) = &mut session.phase else { return Progress::Continue };
        if pl.input.len() > MAX_BACKEND_LINE {
            let actions = self.proxy_fail(
                client,
                session,
                FailureKind::Protocol,
                Some("Remote input buffer full".into()),
            );
            return self.execute(client, session, actions);
        }
        if input.eof || !alive {
            let reason = input.error.unwrap_or_else(|| "Connection closed".into());
            let message = format!(
                "Remote {}:{} disconnected: {reason} (state={}, duration={}s)",
                pl.request.ip,
                pl.request.port,
                pl.login.state(),
                pl.started.elapsed().as_secs()
            );
            let actions = self.proxy_fail(client, session, FailureKind::Connect, Some(message));
            return self.execute(client, session, actions);
        }
        flush_tls(client, session);
        Progress::Continue
    }

    /// A connect retry is due, or the login ran out of time.
    pub(super) fn proxy_timer(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let id = session_key(session);
        match &session.phase {
            Phase::Relay(_) => return self.relay_event(client, session),
            Phase::Proxying { token, .. } => {
                // A paused TLS proxy after handoff: same path as the
                // pair's readiness.
                let token = *token;
                return self.own_socket(token, client, session);
            }
            _ => {}
        }
        let Phase::ProxyLogin(pl) = &mut session.phase else { return Progress::Continue };
        let now = Instant::now();
        if now >= pl.deadline {
            let message = if pl.connected {
                format!(
                    "Login for {}:{} timed out in state={} {}",
                    pl.request.ip,
                    pl.request.port,
                    pl.login.state(),
                    pl.after()
                )
            } else {
                format!(
                    "connect({}, {}) failed: Connection timed out {}",
                    pl.request.ip,
                    pl.request.port,
                    pl.after()
                )
            };
            let actions = self.proxy_fail(client, session, FailureKind::Connect, Some(message));
            return self.execute(client, session, actions);
        }
        match pl.retry_at {
            Some(at) if at <= now => {
                pl.retry_at = None;
                match self.proxy_connect(client, session) {
                    Some(actions) => self.execute(client, session, actions),
                    None => Progress::Continue,
                }
            }
            Some(at) => {
                self.proxy_timers.insert(id, at.min(pl.deadline));
                Progress::Continue
            }
            None => {
                self.proxy_timers.insert(id, pl.deadline);
                Progress::Continue
            }
        }
    }

    /// The backend accepted the login: relay from now on.
    fn start_relay(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let id = session_key(session);
        self.proxy_timers.remove(&id);
        self.deadlines.remove(&id);
        let Phase::ProxyLogin(pl) = std::mem::replace(&mut session.phase, Phase::PreAuth) else {
            return Progress::Close;
        };
        let ProxyLogin { request, conn, input: backend_rest, .. } = *pl;
        let Some(conn) = conn else { return Progress::Close };
        // Whatever the backend sent after its OK is the client's.
        if !backend_rest.is_empty() {
            send(client, session, &backend_rest);
        }
        let mut relay = Relay {
            conn,
            remote_ip: super::ip_text(session.remote),
            last_io: Instant::now(),
            from_client: 0,
            to_client: backend_rest.len() as u64,
            client_paused: false,
        };
        let pipelined = session.machine.take_input();
        if !pipelined.is_empty() {
            relay.client_to_backend(&pipelined);
        }
        let mut message = format!("started proxying to {}:{}", request.host, request.port);
        if Some(&request.user) != session.user.as_ref() {
            message.push('/');
            message.push_str(&request.user);
        }
        if let Some(master) = &request.master_user {
            message.push_str(&format!(" (master {master})"));
        }
        self.proxy_log_info(session, &message);
        client.user = session.user.clone();
        client.state = "proxy".into();
        session.phase = Phase::Relay(Box::new(relay));
        flush_tls(client, session);
        Progress::Continue
    }

    /// Readiness on the backend socket of a relayed session (or a poll
    /// of a paused one).
    pub(super) fn relay_event(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let id = session_key(session);
        let client_full = client.pending_output() > MAX_CLIENT_OUTPUT;
        let Phase::Relay(relay) = &mut session.phase else { return Progress::Continue };
        let alive = relay.conn.flush();
        let input = if client_full { Default::default() } else { relay.conn.read() };
        if !input.data.is_empty() {
            relay.to_client += input.data.len() as u64;
            relay.last_io = Instant::now();
        }
        let resume = relay.client_paused && !relay.backend_full();
        if resume {
            relay.client_paused = false;
        }
        let ended = (input.eof || !alive).then(|| relay.disconnect_text("server", input.error.as_deref()));
        if !input.data.is_empty() {
            send(client, session, &input.data);
        }
        if let Some(reason) = ended {
            self.proxy_log_info(session, &reason);
            if let Some(tls) = session.tls.as_mut() {
                tls.send_close_notify();
            }
            flush_tls(client, session);
            return Progress::Close;
        }
        flush_tls(client, session);
        if client_full || input.more {
            // Backend bytes are waiting unread; come back for them.
            self.relay_poll_soon(id, if client_full { RESUME_POLL } else { Duration::ZERO });
        }
        if resume {
            // Take up the client input we left unread.
            return Service::readable(self, client, session);
        }
        Progress::Continue
    }
}

fn io_text(e: &io::Error) -> String {
    // Dovecot prints strerror(): "Connection refused", not Rust's suffix.
    let text = e.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_strerror() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_text(&e), "Connection refused");
        assert_eq!(Duration::from_secs(1), CONNECT_RETRY);
    }
}
