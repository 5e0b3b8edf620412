//! The post-login bootstrap shared by the `imap` and `pop3` binaries
//! (shared/DESIGN.md §4.2): accept the login process' connection on
//! `login/imap` / `login/pop3`, receive the [`HandoffRecord`] and the
//! client fd (SCM_RIGHTS), ask auth-master `REQUEST` whether the login is
//! real, check the userdb uid/gid against `first_valid_uid` & co., drop to
//! that uid/gid for good (the default `service_count = 1` makes this a
//! per-connection process), chdir home, open the user's storage, answer
//! the login process `OK\t<pid>` and then speak the mail protocol to the
//! client — the already-read client input first.
//!
//! A protocol may switch the byte stream to COMPRESS=DEFLATE
//! ([`Flow::StartCompression`], [`deflate`]): output is deflated as it is
//! written (a sync flush each time), input inflated only as far as the
//! input limit, so back-pressure and IDLE work as before.
//!
//! The client fd lives in this module's own `mio::Poll`, which the runtime
//! watches through [`Service::wakeup_fd`]; the login connection stays a
//! runtime client until the mail session ends, so the runtime keeps the
//! process alive exactly as long as the session.

mod anvil_session;
pub mod deflate;
pub mod privileges;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dovecote_auth::protocol::master_conn::{AuthMasterConnection, Lookup};
use dovecote_auth::protocol::Fields;
use dovecote_config::var_expand::MailVars;
use dovecote_config::Config;
use dovecote_login::handoff::{HandoffRecord, MAX_RECORD};
use dovecote_master::runtime::{Client, Clients, Context, Progress, Service, Stream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use thiserror::Error;

use crate::storage::{MailLocation, User};
use deflate::Deflate;
use privileges::{PrivilegeError, Privileges};

/// Dovecot's `MAIL_ERRSTR_CRITICAL_MSG`.
pub const CRITICAL_MSG: &str = "Internal error occurred. Refer to server log for more information.";
/// Longest command line we buffer before giving up on the client (the
/// default line-based [`MailProtocol::input`]).
pub const MAX_LINE: usize = 64 * 1024;
/// Back-pressure: while this much output waits for a client that doesn't
/// read, no more input is read or processed, so a client that never reads
/// cannot make the process grow without bound. Protocols producing output
/// in bulk (IMAP FETCH) stop taking new commands past it too.
pub const OUTPUT_LIMIT: usize = 256 * 1024;
/// Back-pressure on input: unconsumed client bytes past this are left in
/// the socket. Protocols must consume what they buffer themselves (the
/// default `input` gives up at [`MAX_LINE`]).
pub const INPUT_LIMIT: usize = 128 * 1024;
/// Auth-master REQUEST timeout here (the login process waits 90 s).
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// A logged-in user as the protocol sees it.
pub struct LoggedIn {
    pub user: User,
    pub name: String,
    pub record: HandoffRecord,
    pub started: Instant,
}

/// What a command produced.
#[derive(Debug, Default)]
pub struct Reply {
    pub output: Vec<u8>,
    /// Close the session after the output (LOGOUT/QUIT).
    pub close: bool,
}

/// What the session does after [`MailProtocol::input`] or
/// [`MailProtocol::on_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// The client logged out: flush the output, then close.
    LoggedOut,
    /// Flush the output, then close (the protocol logs or tells why in
    /// its disconnect text).
    Close,
    /// The output so far (ending with the protocol's `OK`) goes out as it
    /// is; everything after it, both ways, is raw deflate at this level
    /// (RFC 4978). Client bytes already read past the command are
    /// compressed ones.
    StartCompression(u32),
}

/// The protocol half: IMAP or POP3 after login.
///
/// Line-based protocols implement [`MailProtocol::command`] only; protocols
/// with literals and asynchronous output (IMAP) override
/// [`MailProtocol::input`], [`MailProtocol::deadline`] and
/// [`MailProtocol::on_timer`].
pub trait MailProtocol {
    type Session;
    /// `imap` / `pop3`: the `%s` of mail_location and the log.
    const SERVICE: &'static str;
    /// Builds the session and its first words (`OK … Logged in`).
    fn start(&self, login: &LoggedIn) -> Result<(Self::Session, Vec<u8>), String>;
    /// One command line (without CRLF).
    fn command(&self, login: &LoggedIn, session: &mut Self::Session, line: &[u8]) -> Reply;
    /// Consumes buffered client bytes from the front of `input` (leaving
    /// an incomplete command there) and appends replies to `output`, in
    /// order. The default splits lines and calls [`MailProtocol::command`].
    fn input(
        &self,
        login: &LoggedIn,
        session: &mut Self::Session,
        input: &mut Vec<u8>,
        output: &mut Vec<u8>,
    ) -> Flow {
        loop {
            let Some(pos) = memchr::memchr(b'\n', input) else {
                if input.len() > MAX_LINE {
                    output.extend_from_slice(b"* BYE Input buffer full, aborting\r\n");
                    return Flow::Close;
                }
                return Flow::Continue;
            };
            let mut line: Vec<u8> = input.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let reply = self.command(login, session, &line);
            output.extend_from_slice(&reply.output);
            if reply.close {
                return Flow::LoggedOut;
            }
        }
    }
    /// When [`MailProtocol::on_timer`] wants to run next (IDLE checks,
    /// new-mail polling, timeouts); `None`: no timer.
    fn deadline(&self, _session: &Self::Session) -> Option<Instant> {
        None
    }
    /// The deadline passed: asynchronous work (untagged updates from other
    /// processes' changes), appended to `output`.
    fn on_timer(&self, _login: &LoggedIn, _session: &mut Self::Session, _output: &mut Vec<u8>) -> Flow {
        Flow::Continue
    }
    /// The log text when the client disconnects (`Logged out …`,
    /// `Connection closed …`).
    fn disconnect_text(
        &self,
        login: &LoggedIn,
        session: &Self::Session,
        logged_out: bool,
        input: u64,
        output: u64,
    ) -> String;
    /// Said to the client when the server shuts down.
    fn shutdown_text(&self) -> &'static [u8];
}

#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Handoff(#[from] dovecote_login::handoff::HandoffError),
    #[error("Login process sent no client fd")]
    NoFd,
    #[error("auth-master: {0}")]
    AuthConnect(String),
    #[error("Auth server restarted (pid {login} -> {current}), aborting auth")]
    AuthRestarted { login: u32, current: u32 },
    #[error("Authenticated user not found from userdb, auth lookup id={0}")]
    NotFound(u32),
    #[error("Internal auth failure")]
    AuthFailed,
    #[error("Internal auth failure: {0}")]
    AuthFailedReason(String),
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error("mail_location: {0}")]
    Location(String),
    #[error("Namespace '': {0}")]
    Storage(String),
    #[error("{0}")]
    Protocol(String),
}

/// State of one login-process connection.
pub enum LoginConn {
    /// Reading the record (and the fd).
    Reading { buf: Vec<u8>, fds: Vec<OwnedFd> },
    /// The mail session this login connection carried is running.
    Serving,
}

struct MailConn<S> {
    login_client: usize,
    file: File,
    login: LoggedIn,
    session: S,
    /// Plaintext client input for the protocol.
    input: Vec<u8>,
    /// Plaintext output of the protocol.
    output: Vec<u8>,
    /// Bytes ready for the socket: with compression, `output` deflated
    /// (refilled only once empty, so back-pressure still bounds it);
    /// without, `output` moved here whole.
    wire: Vec<u8>,
    /// COMPRESS=DEFLATE, once started.
    deflate: Option<Deflate>,
    closing: bool,
    logged_out: bool,
    /// Reading stopped for back-pressure before the socket was drained.
    paused: bool,
    /// Plaintext bytes (inflated ones once compressed), as Dovecot counts.
    bytes_in: u64,
    bytes_out: u64,
}

impl<S> MailConn<S> {
    /// Output not yet written to the socket, plaintext or compressed.
    fn pending_out(&self) -> usize {
        self.output.len() + self.wire.len()
    }

    /// Whether compressed input waits to be inflated.
    fn inflate_pending(&self) -> bool {
        self.deflate.as_ref().is_some_and(Deflate::has_pending)
    }

    /// Writes `wire` (refilled from `output`) until the socket would
    /// block; `false` when the connection is gone.
    fn flush(&mut self) -> bool {
        loop {
            if self.wire.is_empty() {
                if self.output.is_empty() {
                    return true;
                }
                self.bytes_out += self.output.len() as u64;
                match &mut self.deflate {
                    Some(z) => {
                        if z.compress(&self.output, &mut self.wire).is_err() {
                            return false;
                        }
                        self.output.clear();
                    }
                    None => std::mem::swap(&mut self.wire, &mut self.output),
                }
            }
            match self.file.write(&self.wire) {
                Ok(0) => return false,
                Ok(n) => {
                    self.wire.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.wire.clear();
                    self.output.clear();
                    return false;
                }
            }
        }
    }
}

/// The post-login service: one per mail binary.
pub struct PostLogin<P: MailProtocol> {
    proto: P,
    config: Config,
    log: slog::Logger,
    base_dir: PathBuf,
    auth: Option<AuthMasterConnection>,
    poll: Poll,
    conns: HashMap<usize, MailConn<P::Session>>,
    next_token: usize,
    /// uid/gid this process dropped to (it can never go back).
    dropped: Option<(u32, u32)>,
    /// Login connections whose mail session ended (closed in `tick`).
    finished: Vec<usize>,
}

impl<P: MailProtocol> PostLogin<P> {
    /// Built while still root: connects to auth-master now (the socket is
    /// root-only), so that the connection survives the privilege drop.
    pub fn new(ctx: &Context, proto: P) -> io::Result<Self> {
        let base_dir = PathBuf::from(ctx.config.text("base_dir"));
        let mut me = PostLogin {
            proto,
            config: ctx.config.clone(),
            log: ctx.log.clone(),
            base_dir,
            auth: None,
            poll: Poll::new()?,
            conns: HashMap::new(),
            next_token: 1,
            dropped: None,
            finished: Vec::new(),
        };
        if let Err(e) = me.auth_conn() {
            // auth may not be up yet; try again per request.
            slog::debug!(me.log, "{}", e);
        }
        Ok(me)
    }

    fn auth_conn(&mut self) -> Result<&mut AuthMasterConnection, BootstrapError> {
        if self.auth.is_none() {
            let path = self.base_dir.join("auth-master");
            let conn = AuthMasterConnection::connect(&path)
                .map_err(|e| BootstrapError::AuthConnect(e.to_string()))?;
            let _ = conn.set_timeout(Some(AUTH_TIMEOUT));
            self.auth = Some(conn);
        }
        self.auth.as_mut().ok_or(BootstrapError::AuthFailed)
    }

    /// Everything between a complete record and speaking to the client.
    fn bootstrap(&mut self, record: HandoffRecord) -> Result<LoggedIn, (BootstrapError, Option<String>)> {
        let params = {
            let mut p = Fields::new();
            p.add("service", P::SERVICE);
            p
        };
        let lookup = {
            let spid_and_lookup = (|| {
                let auth = self.auth_conn()?;
                let spid = auth.spid();
                if record.auth_pid != spid {
                    return Err(BootstrapError::AuthRestarted { login: record.auth_pid, current: spid });
                }
                auth.request(record.login_pid, record.auth_id, &record.cookie_hex(), params)
                    .map_err(|e| BootstrapError::AuthConnect(e.to_string()))
            })();
            match spid_and_lookup {
                Ok(l) => l,
                Err(e) => {
                    // A broken connection is not reused.
                    if matches!(e, BootstrapError::AuthConnect(_)) {
                        self.auth = None;
                    }
                    return Err((e, None));
                }
            }
        };
        let (name, fields) = match lookup {
            Lookup::Found { user, fields } => (user, fields),
            Lookup::NotFound => return Err((BootstrapError::NotFound(record.auth_id), None)),
            Lookup::Failed(None) => return Err((BootstrapError::AuthFailed, None)),
            Lookup::Failed(Some(r)) => return Err((BootstrapError::AuthFailedReason(r), None)),
        };
        let user_name = Some(name.clone());
        let fail = |e: BootstrapError| (e, user_name.clone());
        let privs = Privileges::resolve(&self.config, &fields).map_err(|e| fail(e.into()))?;
        if let Some(prev) = self.dropped {
            if prev != (privs.uid, privs.gid) {
                return Err(fail(PrivilegeError::AlreadyDropped { uid: prev.0, gid: prev.1 }.into()));
            }
        } else {
            privs.drop_to().map_err(|e| fail(e.into()))?;
            self.dropped = Some((privs.uid, privs.gid));
        }
        let home = fields.get("home").filter(|h| !h.is_empty()).map(str::to_string);
        if let Some(home) = &home {
            // Dovecot goes on without a home directory that isn't there yet.
            if let Err(e) = std::env::set_current_dir(home) {
                if e.kind() != io::ErrorKind::NotFound {
                    slog::error!(self.log, "chdir({}) failed: {}", home, e; "user" => &name, "session" => &record.session_id);
                }
            }
        }
        let vars = MailVars {
            user: Some(name.clone()),
            service: Some(P::SERVICE.to_string()),
            home: home.clone(),
            local_ip: record.local.map(|a| a.ip().to_string()),
            remote_ip: record.remote.map(|a| a.ip().to_string()),
            pid: None,
            uid: Some(privs.uid.to_string()),
            gid: Some(privs.gid.to_string()),
            session: Some(record.session_id.clone()),
            auth_user: None,
            hostname: None,
            userdb_fields: fields
                .0
                .iter()
                .map(|f| (f.key.clone(), f.value.clone().unwrap_or_default()))
                .collect(),
        };
        let user = match fields.get("mail").filter(|m| !m.is_empty()) {
            Some(mail) => {
                let location = MailLocation::parse(mail, &vars, home.as_deref())
                    .map_err(|e| fail(BootstrapError::Location(e.to_string())))?;
                User::with_location(&name, location)
            }
            None => User::from_config(&self.config, &vars)
                .map_err(|e| fail(BootstrapError::Storage(e.to_string())))?,
        };
        user.open("INBOX").map_err(|e| fail(BootstrapError::Storage(e.to_string())))?;
        Ok(LoggedIn { user, name, record, started: Instant::now() })
    }

    fn start_session(&mut self, client: &mut Client, record: HandoffRecord, fd: OwnedFd) -> Progress {
        let session_id = record.session_id.clone();
        let login_user = record.user.clone();
        let login = match self.bootstrap(record) {
            Ok(l) => l,
            Err((e, user)) => {
                let user = user.unwrap_or(login_user);
                slog::error!(self.log, "{}", e; "user" => &user, "session" => &session_id);
                client.send(format!("FAIL\t{}\n", e.to_string().replace(['\t', '\n'], " ")).as_bytes());
                return Progress::Close;
            }
        };
        let (session, greeting) = match self.proto.start(&login) {
            Ok(x) => x,
            Err(e) => {
                slog::error!(self.log, "{}", e; "user" => &login.name, "session" => &session_id);
                client.send(format!("FAIL\t{}\n", e.replace(['\t', '\n'], " ")).as_bytes());
                return Progress::Close;
            }
        };
        let file = File::from(fd);
        if let Err(e) = set_nonblocking(file.as_raw_fd()) {
            slog::error!(self.log, "fcntl(client fd) failed: {}", e);
            client.send(b"FAIL\tinternal error\n");
            return Progress::Close;
        }
        let token = self.next_token;
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&file.as_raw_fd()),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            slog::error!(self.log, "registering the client fd failed: {}", e);
            client.send(b"FAIL\tinternal error\n");
            return Progress::Close;
        }
        client.user = Some(login.name.clone());
        client.state = String::new();
        client.send(format!("OK\t{}\n", std::process::id()).as_bytes());
        anvil_session::session_started(&self.log, P::SERVICE, &login);
        let input = login.record.client_input.clone();
        let mut conn = MailConn {
            login_client: client.id(),
            file,
            login,
            session,
            input,
            output: greeting,
            wire: Vec::new(),
            deflate: None,
            closing: false,
            logged_out: false,
            paused: false,
            bytes_in: 0,
            bytes_out: 0,
        };
        // Pipelined commands the login process already read come first.
        self.process_input(&mut conn);
        self.conns.insert(token, conn);
        // Write the greeting (and replies) now; the fd's first writable
        // event may already have been consumed by nothing.
        self.pump(token, true);
        Progress::Continue
    }

    fn process_input(&self, conn: &mut MailConn<P::Session>) {
        loop {
            if conn.closing || conn.pending_out() > OUTPUT_LIMIT {
                return;
            }
            if let Some(z) = &mut conn.deflate {
                match z.inflate(&mut conn.input, INPUT_LIMIT) {
                    Ok(n) => conn.bytes_in += n as u64,
                    Err(e) => {
                        // A broken stream leaves nothing to answer.
                        slog::debug!(self.log, "{}", e; "user" => &conn.login.name);
                        conn.closing = true;
                        conn.output.clear();
                        return;
                    }
                }
            }
            let before = conn.input.len();
            let flow = self.proto.input(&conn.login, &mut conn.session, &mut conn.input, &mut conn.output);
            let started = matches!(flow, Flow::StartCompression(_));
            apply_flow(conn, flow);
            // More compressed input may wait for the room just made.
            if !conn.inflate_pending() || (conn.input.len() == before && !started) {
                return;
            }
        }
    }

    /// Reads the client until it would block, or until back-pressure
    /// (a full output or input buffer) says stop: then `paused` makes a
    /// later pump read again (the fd is edge-triggered, so no new readable
    /// event may come for bytes already waiting).
    fn read_more(&self, conn: &mut MailConn<P::Session>, alive: &mut bool) {
        let mut buf = [0u8; 8192];
        conn.paused = false;
        while !conn.closing {
            let raw_in = conn.deflate.as_ref().map_or(0, |z| z.raw_in.len());
            if conn.pending_out() > OUTPUT_LIMIT || conn.input.len() > INPUT_LIMIT || raw_in > INPUT_LIMIT {
                conn.paused = true;
                break;
            }
            match conn.file.read(&mut buf) {
                Ok(0) => {
                    *alive = false;
                    break;
                }
                Ok(n) => {
                    match &mut conn.deflate {
                        Some(z) => z.raw_in.extend_from_slice(&buf[..n]),
                        None => {
                            conn.bytes_in += n as u64;
                            conn.input.extend_from_slice(&buf[..n]);
                        }
                    }
                    self.process_input(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    *alive = false;
                    break;
                }
            }
        }
    }

    /// Reads and writes the client until it would block; `false` when the
    /// session is over.
    fn pump(&mut self, token: usize, readable: bool) -> bool {
        let Some(mut conn) = self.conns.remove(&token) else { return false };
        let mut alive = true;
        // Input read earlier but held back by a full output buffer.
        self.process_input(&mut conn);
        if readable || conn.paused {
            self.read_more(&mut conn, &mut alive);
        }
        loop {
            if !conn.flush() {
                alive = false;
            }
            // The output drained: resume what back-pressure held back.
            if !alive || conn.closing || !conn.paused || conn.pending_out() > OUTPUT_LIMIT {
                break;
            }
            let before = conn.pending_out();
            self.process_input(&mut conn);
            self.read_more(&mut conn, &mut alive);
            if conn.pending_out() == 0 || conn.pending_out() == before {
                break;
            }
        }
        if conn.closing && conn.pending_out() == 0 {
            alive = false;
        }
        if alive {
            self.conns.insert(token, conn);
            return true;
        }
        self.finish(conn);
        false
    }

    fn finish(&mut self, conn: MailConn<P::Session>) {
        let text = self.proto.disconnect_text(
            &conn.login,
            &conn.session,
            conn.logged_out,
            conn.bytes_in,
            conn.bytes_out,
        );
        slog::info!(self.log, "{}", text; "user" => &conn.login.name, "session" => &conn.login.record.session_id);
        anvil_session::session_finished(&self.log, P::SERVICE, &conn.login);
        let _ = self.poll.registry().deregister(&mut SourceFd(&conn.file.as_raw_fd()));
        self.finished.push(conn.login_client);
    }
}

fn apply_flow<S>(conn: &mut MailConn<S>, flow: Flow) {
    match flow {
        Flow::Continue => {}
        Flow::LoggedOut => {
            conn.closing = true;
            conn.logged_out = true;
        }
        Flow::Close => conn.closing = true,
        Flow::StartCompression(level) => {
            // The reply so far goes out uncompressed, ahead of anything
            // compressed (`wire` is drained before it is refilled).
            conn.bytes_out += conn.output.len() as u64;
            conn.wire.append(&mut conn.output);
            let mut z = Deflate::new(level);
            z.raw_in = std::mem::take(&mut conn.input);
            conn.deflate = Some(z);
        }
    }
}

fn set_nonblocking(fd: RawFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

impl<P: MailProtocol> Service for PostLogin<P> {
    type Session = LoginConn;

    fn connected(&mut self, _client: &mut Client) -> Option<LoginConn> {
        Some(LoginConn::Reading { buf: Vec::new(), fds: Vec::new() })
    }

    fn readable(&mut self, client: &mut Client, session: &mut LoginConn) -> Progress {
        let LoginConn::Reading { buf, fds } = session else {
            // The login process closes its side after our OK (or keeps it
            // until it exits); the mail session does not depend on it.
            let mut sink = [0u8; 256];
            while matches!(client.stream.read(&mut sink), Ok(n) if n > 0) {}
            return Progress::Continue;
        };
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let fd = match &client.stream {
                Stream::Unix(s) => s.as_fd(),
                Stream::Tcp(s) => s.as_fd(),
            };
            match dovecote_master::sys::recv_with_fds(fd, &mut chunk, 1) {
                Ok((0, _)) => {
                    slog::error!(self.log, "Login client disconnected before sending its request");
                    return Progress::Close;
                }
                Ok((n, got)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    fds.extend(got);
                    if buf.len() > MAX_RECORD + 10 {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => {
                    slog::error!(self.log, "recvmsg() from the login process failed: {}", e);
                    return Progress::Close;
                }
            }
        }
        match HandoffRecord::decode(buf) {
            Ok(None) => Progress::Continue,
            Ok(Some((record, _))) => {
                let Some(fd) = fds.pop() else {
                    slog::error!(self.log, "{}", BootstrapError::NoFd);
                    client.send(b"FAIL\tno client fd\n");
                    return Progress::Close;
                };
                *session = LoginConn::Serving;
                self.start_session(client, record, fd)
            }
            Err(e) => {
                slog::error!(self.log, "Login process sent a bad request: {}", e);
                client.send(format!("FAIL\t{e}\n").as_bytes());
                Progress::Close
            }
        }
    }

    fn shutting_down(&mut self, _client: &mut Client, _session: &mut LoginConn) {
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        for token in tokens {
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.output.extend_from_slice(self.proto.shutdown_text());
                conn.closing = true;
            }
            self.pump(token, false);
        }
    }

    fn wakeup_fd(&self) -> Option<RawFd> {
        Some(self.poll.as_raw_fd())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().filter_map(|c| self.proto.deadline(&c.session)).min()
    }

    fn tick(&mut self, clients: &mut Clients<'_, LoginConn>) {
        let now = Instant::now();
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closing && self.proto.deadline(&c.session).is_some_and(|d| d <= now))
            .map(|(t, _)| *t)
            .collect();
        for token in due {
            if let Some(conn) = self.conns.get_mut(&token) {
                let flow = self.proto.on_timer(&conn.login, &mut conn.session, &mut conn.output);
                apply_flow(conn, flow);
            }
            self.pump(token, false);
        }
        let mut events = Events::with_capacity(16);
        if self.poll.poll(&mut events, Some(Duration::ZERO)).is_ok() {
            let ready: Vec<(usize, bool)> =
                events.iter().map(|e| (e.token().0, e.is_readable() || e.is_read_closed())).collect();
            for (token, readable) in ready {
                self.pump(token, readable);
            }
        }
        for id in std::mem::take(&mut self.finished) {
            clients.close(id);
        }
    }
}
