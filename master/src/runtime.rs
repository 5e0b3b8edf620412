//! The service runtime: what every service binary's `main` hands control
//! to. It owns the process side of the contract in [`crate::contract`]:
//!
//! 1. finish the privilege drop for chrooted services (`DOVECOTE_RESTRICT`),
//! 2. read the configuration from fd 3 until EOF,
//! 3. apply `vsz_limit` (RLIMIT_AS) and the core limit (after exec, because
//!    an SELinux domain transition resets rlimits),
//! 4. adopt the listener fds from fd 6 on and run one single-threaded mio
//!    loop that accepts clients and hands their I/O to a [`Service`],
//! 5. keep the master told how many clients it can still take (fd 4),
//! 6. honour `client_limit`, `service_count`, idle kills (SIGINT),
//!    shutdown (SIGTERM / `SHUTDOWN`), SIGQUIT (close listeners now) and the
//!    master's death (EOF on fd 5: close listeners at once, exit when the
//!    clients are done — or at once if there are none),
//! 7. set the process title (`dovecot/<service>`, plus `[user ip state]`
//!    with `verbose_proctitle = yes`) and log through slog to fd 2.
//!
//! Protocol code never sees fds, signals or the master: it gets
//! [`Client`]s with a non-blocking stream and buffered output.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use dovecote_config::{wire, Config};
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use thiserror::Error;

use crate::contract::{
    decode_listeners, ControlCommand, Level, ListenerKind, ListenerName, LogLine, Restrict, ServiceLimits,
    StatusRecord, ENV_CORE_LIMIT, ENV_GENERATION, ENV_LISTENERS, ENV_RESTRICT, ENV_SERVICE, EXIT_FATAL,
    FD_CONFIG, FD_CONTROL, FD_FIRST_LISTENER, FD_STATUS,
};
use crate::logging::PipeDrain;
use crate::sys;

/// How long a process whose master is gone (or that was retired by a
/// reload) keeps serving clients when `shutdown_clients = yes`, as
/// Dovecot's `die_with_master` does.
const DIE_WITH_MASTER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{var} not set: this binary is started by the dovecot master")]
    MissingEnv { var: &'static str },
    #[error(transparent)]
    Contract(#[from] crate::contract::ContractError),
    #[error("fd {fd} ({what}) is not open")]
    MissingFd { fd: i32, what: &'static str },
    #[error("reading the configuration from fd {FD_CONFIG}: {source}")]
    ReadConfig { source: io::Error },
    #[error("configuration from the master: {0}")]
    Config(#[from] dovecote_config::ConfigError),
    #[error("service {service} is not in the configuration")]
    UnknownService { service: String },
    #[error("chroot({dir}) failed: {source}")]
    Chroot { dir: String, source: nix::Error },
    #[error("dropping privileges to uid {uid} gid {gid}: {step} failed: {source}")]
    DropPrivileges { uid: u32, gid: u32, step: &'static str, source: nix::Error },
    #[error("We couldn't drop root privileges")]
    StillRoot,
    #[error("clearing capabilities: {0}")]
    Capabilities(String),
    #[error("setrlimit({what}) failed: {source}")]
    Rlimit { what: &'static str, source: nix::Error },
    #[error("event loop: {0}")]
    Io(#[from] io::Error),
    #[error("signals: {0}")]
    Signals(nix::Error),
}

/// What the protocol code of a service implements. All calls come from the
/// one event loop thread; none may block.
pub trait Service {
    /// Per-client protocol state.
    type Session;

    /// A client connected. `None` closes it at once.
    fn connected(&mut self, client: &mut Client) -> Option<Self::Session>;

    /// The client's stream is readable (read until `WouldBlock`).
    fn readable(&mut self, client: &mut Client, session: &mut Self::Session) -> Progress;

    /// The process is ending while this client is still connected (master
    /// shutdown, reload with `shutdown_clients = yes`, kick): say goodbye
    /// with [`Client::send`]; the runtime flushes what it can and closes.
    fn shutting_down(&mut self, _client: &mut Client, _session: &mut Self::Session) {}

    /// Data arrived on a fifo listener.
    fn fifo_input(&mut self, _listener: &ListenerName, _data: &[u8]) {}

    /// One more fd for the loop to watch (readable, edge-triggered), e.g.
    /// the epoll fd of the service's own `mio::Poll` with its outgoing
    /// connections (auth → auth-worker). Asked once, at start.
    fn wakeup_fd(&self) -> Option<RawFd> {
        None
    }

    /// The latest time [`Service::tick`] must run next (timers).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Runs after every loop iteration, with access to every client: work
    /// that is not the reaction to one client's input (timers, replies
    /// from backends that go to some other client).
    fn tick(&mut self, _clients: &mut Clients<'_, Self::Session>) {}
}

/// Every client of the process, as [`Service::tick`] sees them.
pub struct Clients<'a, Session> {
    entries: &'a mut HashMap<usize, ClientEntry<Session>>,
    closed: Vec<usize>,
}

impl<Session> Clients<'_, Session> {
    /// The client with this [`Client::id`], unless it is gone or closing.
    pub fn get_mut(&mut self, id: usize) -> Option<(&mut Client, &mut Session)> {
        self.entries.get_mut(&id).filter(|e| !e.closing).map(|e| (&mut e.client, &mut e.session))
    }

    /// Whether the client is still connected (and not closing).
    pub fn contains(&self, id: usize) -> bool {
        self.entries.get(&id).is_some_and(|e| !e.closing)
    }

    /// Flushes the client's pending output, then closes it.
    pub fn close(&mut self, id: usize) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.closing = true;
            self.closed.push(id);
        }
    }
}

/// What a callback wants done with its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Continue,
    /// Flush pending output, then close.
    Close,
}

/// A client's non-blocking stream.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connected client as protocol code sees it.
pub struct Client {
    id: usize,
    pub stream: Stream,
    /// The listener it connected to.
    pub listener: ListenerName,
    /// The peer, for inet listeners.
    pub remote: Option<SocketAddr>,
    /// Shown in the verbose process title once known.
    pub user: Option<String>,
    /// Protocol state for the verbose process title (`idling`, `authenticating`).
    pub state: String,
    output: Vec<u8>,
}

impl Client {
    /// Unique within the process for its lifetime; the key for
    /// [`Clients::get_mut`].
    pub fn id(&self) -> usize {
        self.id
    }

    /// Bytes queued for the client that its socket has not taken yet
    /// (a relaying service stops reading its other side while this is
    /// large).
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Queues `data` and writes as much as the socket takes now; the rest
    /// goes out when it becomes writable.
    pub fn send(&mut self, data: &[u8]) {
        self.output.extend_from_slice(data);
        self.flush_output();
    }

    fn flush_output(&mut self) -> bool {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return false,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.output.clear();
                    return false;
                }
            }
        }
        true
    }
}

/// What a service is told at start: its settings and its logger.
pub struct Context {
    pub service: String,
    pub config: Config,
    pub limits: ServiceLimits,
    pub listeners: Vec<ListenerName>,
    pub log: slog::Logger,
}

/// Runs a service: sets the process up per the contract, builds the
/// service with `build`, and runs the accept loop until the process should
/// end. Never returns; a setup failure is logged as fatal and exits 89.
pub fn run<S: Service>(build: impl FnOnce(&Context) -> S) -> ! {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv_area = sys::ArgvArea::locate(&args);
    let title = args.first().map(|a| a.to_string_lossy().trim_end().to_owned()).unwrap_or_default();
    sys::limit_malloc_arenas();
    install_panic_hook();
    match setup() {
        Ok(ctx) => {
            let service = build(&ctx);
            let code = match EventLoop::new(ctx, service, argv_area, title) {
                Ok(mut event_loop) => match event_loop.run() {
                    Ok(()) => 0,
                    Err(e) => {
                        fatal_line(&e.to_string());
                        EXIT_FATAL
                    }
                },
                Err(e) => {
                    fatal_line(&e.to_string());
                    EXIT_FATAL
                }
            };
            std::process::exit(code)
        }
        Err(e) => {
            fatal_line(&e.to_string());
            std::process::exit(EXIT_FATAL)
        }
    }
}

fn fatal_line(text: &str) {
    let line = LogLine { level: Level::Fatal, user: None, session: None, text: text.to_owned() };
    let _ = write_log_fd(&line.to_line());
}

fn write_log_fd(line: &str) -> io::Result<()> {
    // fd 2 stays open for the life of the process (contract); write
    // through a borrowed handle so it is never closed here.
    let fd = io::stderr();
    let mut lock = fd.lock();
    lock.write_all(line.as_bytes())
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let line = LogLine { level: Level::Panic, user: None, session: None, text: info.to_string() };
        let _ = write_log_fd(&line.to_line());
    }));
}

fn env(var: &'static str) -> Result<String, RuntimeError> {
    std::env::var(var).map_err(|_| RuntimeError::MissingEnv { var })
}

fn setup() -> Result<Context, RuntimeError> {
    let service = env(ENV_SERVICE)?;
    let listeners = decode_listeners(&env(ENV_LISTENERS)?)?;
    if let Ok(value) = std::env::var(ENV_RESTRICT) {
        restrict(&Restrict::decode(&value)?)?;
    }
    if let Some(core) = std::env::var(ENV_CORE_LIMIT).ok().and_then(|v| v.parse::<u64>().ok()) {
        // A failure only means the hard limit is lower; keep going.
        let (_, hard) = nix::sys::resource::getrlimit(Resource::RLIMIT_CORE).unwrap_or((0, 0));
        let _ = setrlimit(Resource::RLIMIT_CORE, core.min(hard), hard);
    }
    let config = read_config()?;
    let section =
        config.service(&service).ok_or_else(|| RuntimeError::UnknownService { service: service.clone() })?;
    let limits = ServiceLimits::of(&config, section);
    if let Some(bytes) = limits.vsz_limit {
        setrlimit(Resource::RLIMIT_AS, bytes, bytes)
            .map_err(|source| RuntimeError::Rlimit { what: "RLIMIT_AS", source })?;
    }
    // Debug lines only when the admin asked for them, as in Dovecot.
    let min_level = if config.root.bool("mail_debug") || config.root.bool("auth_debug") {
        slog::Level::Trace
    } else {
        slog::Level::Info
    };
    let log =
        slog::Logger::root(slog::Fuse(slog::LevelFilter::new(PipeDrain::stderr(), min_level)), slog::o!());
    Ok(Context { service, config, limits, listeners, log })
}

/// Chroot, groups, gid, uid, capabilities, no_new_privs — in that order,
/// for services the master could not restrict before exec (chrooted ones).
fn restrict(r: &Restrict) -> Result<(), RuntimeError> {
    use nix::unistd::{Gid, Uid};
    let fail = |step, source| RuntimeError::DropPrivileges { uid: r.uid, gid: r.gid, step, source };
    if !r.chroot.is_empty() {
        nix::unistd::chroot(r.chroot.as_str())
            .map_err(|source| RuntimeError::Chroot { dir: r.chroot.clone(), source })?;
        nix::unistd::chdir("/").map_err(|source| RuntimeError::Chroot { dir: r.chroot.clone(), source })?;
    }
    let groups: Vec<Gid> = r.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    nix::unistd::setgid(Gid::from_raw(r.gid)).map_err(|e| fail("setgid", e))?;
    nix::unistd::setuid(Uid::from_raw(r.uid)).map_err(|e| fail("setuid", e))?;
    if r.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(RuntimeError::StillRoot);
    }
    crate::privileges::clear_capabilities().map_err(RuntimeError::Capabilities)?;
    if r.no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(|e| fail("PR_SET_NO_NEW_PRIVS", e))?;
    }
    Ok(())
}

fn read_config() -> Result<Config, RuntimeError> {
    let fd = sys::adopt_inherited_fd(FD_CONFIG)
        .ok_or(RuntimeError::MissingFd { fd: FD_CONFIG, what: "config pipe" })?;
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text).map_err(|source| RuntimeError::ReadConfig { source })?;
    Ok(wire::decode("master config pipe", &text)?)
}

enum ListenerSource {
    Tcp(TcpListener),
    Unix(UnixListener),
    Fifo(File),
}

struct ClientEntry<Session> {
    client: Client,
    session: Session,
    closing: bool,
}

const TOKEN_SIGNALS: Token = Token(usize::MAX - 1);
const TOKEN_CONTROL: Token = Token(usize::MAX - 2);
const TOKEN_SERVICE_WAKEUP: Token = Token(usize::MAX - 3);
const FIRST_CLIENT_TOKEN: usize = 1 << 20;

struct EventLoop<S: Service> {
    ctx: Context,
    service: S,
    poll: Poll,
    signals: SignalFd,
    status: Option<OwnedFd>,
    status_pending: bool,
    control: Option<UnixStream>,
    control_input: Vec<u8>,
    listeners: Vec<Option<ListenerSource>>,
    listening: bool,
    accepting: bool,
    clients: HashMap<usize, ClientEntry<S::Session>>,
    next_client: usize,
    served: u32,
    last_reported: Option<u32>,
    die_deadline: Option<Instant>,
    generation: u32,
    verbose_proctitle: bool,
    argv_area: Option<sys::ArgvArea>,
    /// argv[0] as the master set it (`dovecot/imap-login`), padding removed.
    title: String,
    last_title: String,
    shutdown_clients: bool,
}

impl<S: Service> EventLoop<S> {
    fn new(
        ctx: Context,
        service: S,
        argv_area: Option<sys::ArgvArea>,
        title: String,
    ) -> Result<Self, RuntimeError> {
        let poll = Poll::new()?;
        let mut mask = SigSet::empty();
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGQUIT, Signal::SIGHUP, Signal::SIGUSR1] {
            mask.add(sig);
        }
        mask.thread_block().map_err(RuntimeError::Signals)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(RuntimeError::Signals)?;
        poll.registry().register(
            &mut SourceFd(&signals.as_fd().as_raw_fd()),
            TOKEN_SIGNALS,
            Interest::READABLE,
        )?;

        let status = sys::adopt_inherited_fd(FD_STATUS);
        let mut control = sys::adopt_inherited_fd(FD_CONTROL).map(|fd| {
            let std_stream = std::os::unix::net::UnixStream::from(fd);
            let _ = std_stream.set_nonblocking(true);
            UnixStream::from_std(std_stream)
        });
        if let Some(c) = control.as_mut() {
            poll.registry().register(c, TOKEN_CONTROL, Interest::READABLE)?;
        }
        let mut listeners = Vec::new();
        for (i, name) in ctx.listeners.iter().enumerate() {
            let fd_number = FD_FIRST_LISTENER + i as i32;
            let fd = sys::adopt_inherited_fd(fd_number)
                .ok_or(RuntimeError::MissingFd { fd: fd_number, what: "listener" })?;
            let source = match name.kind {
                ListenerKind::Inet => {
                    let l = std::net::TcpListener::from(fd);
                    l.set_nonblocking(true)?;
                    ListenerSource::Tcp(TcpListener::from_std(l))
                }
                ListenerKind::Unix => {
                    let l = std::os::unix::net::UnixListener::from(fd);
                    l.set_nonblocking(true)?;
                    ListenerSource::Unix(UnixListener::from_std(l))
                }
                ListenerKind::Fifo => ListenerSource::Fifo(File::from(fd)),
            };
            listeners.push(Some(source));
        }
        let generation = std::env::var(ENV_GENERATION).ok().and_then(|g| g.parse().ok()).unwrap_or(0);
        let verbose_proctitle = ctx.config.root.bool("verbose_proctitle");
        let shutdown_clients = ctx.config.root.bool("shutdown_clients");
        let mut event_loop = EventLoop {
            ctx,
            service,
            poll,
            signals,
            status,
            status_pending: false,
            control,
            control_input: Vec::new(),
            listeners,
            listening: false,
            accepting: true,
            clients: HashMap::new(),
            next_client: FIRST_CLIENT_TOKEN,
            served: 0,
            last_reported: None,
            die_deadline: None,
            generation,
            verbose_proctitle,
            argv_area,
            title,
            last_title: String::new(),
            shutdown_clients,
        };
        event_loop.register_fifos()?;
        if let Some(fd) = event_loop.service.wakeup_fd() {
            event_loop.poll.registry().register(
                &mut SourceFd(&fd),
                TOKEN_SERVICE_WAKEUP,
                Interest::READABLE,
            )?;
        }
        event_loop.set_listening(true)?;
        Ok(event_loop)
    }

    fn available(&self) -> u32 {
        if !self.accepting {
            return 0;
        }
        self.ctx.limits.client_limit.saturating_sub(self.clients.len() as u32)
    }

    fn run(&mut self) -> Result<(), RuntimeError> {
        let mut events = Events::with_capacity(256);
        self.report_status();
        self.update_title();
        loop {
            if !self.accepting && self.clients.is_empty() {
                return Ok(());
            }
            let mut timeout = match (self.die_deadline, self.status_pending) {
                (_, true) => Some(Duration::from_millis(100)),
                (Some(deadline), false) => Some(deadline.saturating_duration_since(Instant::now())),
                (None, false) => None,
            };
            if let Some(deadline) = self.service.next_deadline() {
                let wait = deadline.saturating_duration_since(Instant::now());
                timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
            }
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            for event in events.iter() {
                match event.token() {
                    TOKEN_SIGNALS => self.handle_signals(),
                    TOKEN_CONTROL => self.handle_control(),
                    TOKEN_SERVICE_WAKEUP => {}
                    Token(i) if i < self.listeners.len() => self.handle_listener(i)?,
                    Token(id) => self.handle_client(id, event.is_readable(), event.is_writable()),
                }
            }
            if self.die_deadline.is_some_and(|d| Instant::now() >= d) {
                self.end_all_clients();
            }
            self.tick_service();
            self.reconcile_listening()?;
            self.report_status();
            self.update_title();
        }
    }

    fn tick_service(&mut self) {
        let mut clients = Clients { entries: &mut self.clients, closed: Vec::new() };
        self.service.tick(&mut clients);
        for id in clients.closed {
            let done = match self.clients.get_mut(&id) {
                Some(entry) => !entry.client.flush_output() || entry.client.output.is_empty(),
                None => false,
            };
            if done {
                self.remove_client(id);
            }
        }
    }

    fn register_fifos(&mut self) -> Result<(), RuntimeError> {
        for (i, source) in self.listeners.iter().enumerate() {
            if let Some(ListenerSource::Fifo(f)) = source {
                self.poll.registry().register(&mut SourceFd(&f.as_raw_fd()), Token(i), Interest::READABLE)?;
            }
        }
        Ok(())
    }

    /// Watches the socket listeners only while a client slot is free, so
    /// that a full process leaves new connections to its siblings (and to
    /// the master, which spawns more). Registering again re-arms the edge
    /// for connections already waiting in the backlog.
    fn set_listening(&mut self, on: bool) -> Result<(), RuntimeError> {
        if on == self.listening {
            return Ok(());
        }
        let registry = self.poll.registry();
        for (i, source) in self.listeners.iter_mut().enumerate() {
            let result = match (source, on) {
                (Some(ListenerSource::Tcp(l)), true) => registry.register(l, Token(i), Interest::READABLE),
                (Some(ListenerSource::Unix(l)), true) => registry.register(l, Token(i), Interest::READABLE),
                (Some(ListenerSource::Tcp(l)), false) => registry.deregister(l),
                (Some(ListenerSource::Unix(l)), false) => registry.deregister(l),
                _ => Ok(()),
            };
            result?;
        }
        self.listening = on;
        Ok(())
    }

    fn reconcile_listening(&mut self) -> Result<(), RuntimeError> {
        let want = self.accepting && self.available() > 0;
        if want && !self.listening {
            self.set_listening(true)?;
            // Connections that queued while we weren't watching.
            for i in 0..self.listeners.len() {
                self.handle_listener(i)?;
            }
        } else if !want && self.listening {
            self.set_listening(false)?;
        }
        Ok(())
    }

    fn handle_listener(&mut self, index: usize) -> Result<(), RuntimeError> {
        if let Some(Some(ListenerSource::Fifo(_))) = self.listeners.get(index) {
            self.read_fifo(index);
            return Ok(());
        }
        while self.available() > 0 {
            let accepted = match self.listeners.get(index) {
                Some(Some(ListenerSource::Tcp(l))) => {
                    l.accept().map(|(s, addr)| (Stream::Tcp(s), Some(addr)))
                }
                Some(Some(ListenerSource::Unix(l))) => l.accept().map(|(s, _)| (Stream::Unix(s), None)),
                _ => return Ok(()),
            };
            match accepted {
                Ok((stream, remote)) => self.add_client(index, stream, remote)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNABORTED and friends: the next one may work.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    slog::error!(self.ctx.log, "accept() failed: {}", e);
                    break;
                }
            }
        }
        Ok(())
    }

    fn read_fifo(&mut self, index: usize) {
        let Some(Some(ListenerSource::Fifo(f))) = self.listeners.get_mut(index) else { return };
        let mut buf = [0u8; 4096];
        let mut data = Vec::new();
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if !data.is_empty() {
            let name = self.ctx.listeners[index].clone();
            self.service.fifo_input(&name, &data);
        }
    }

    fn add_client(
        &mut self,
        index: usize,
        mut stream: Stream,
        remote: Option<SocketAddr>,
    ) -> Result<(), RuntimeError> {
        let id = self.next_client;
        self.next_client += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        match &mut stream {
            Stream::Tcp(s) => self.poll.registry().register(s, Token(id), interest)?,
            Stream::Unix(s) => self.poll.registry().register(s, Token(id), interest)?,
        }
        self.served += 1;
        let mut client = Client {
            id,
            stream,
            listener: self.ctx.listeners[index].clone(),
            remote,
            user: None,
            state: String::new(),
            output: Vec::new(),
        };
        let service_count = self.ctx.limits.service_count;
        if service_count > 0 && self.served >= service_count {
            // The last client this process will take: let the listeners go
            // now so the master and the siblings get the next connection.
            self.stop_accepting();
        }
        match self.service.connected(&mut client) {
            Some(session) => {
                self.clients.insert(id, ClientEntry { client, session, closing: false });
            }
            None => {
                client.flush_output();
                self.deregister(&mut client);
            }
        }
        Ok(())
    }

    fn deregister(&self, client: &mut Client) {
        let _ = match &mut client.stream {
            Stream::Tcp(s) => self.poll.registry().deregister(s),
            Stream::Unix(s) => self.poll.registry().deregister(s),
        };
    }

    fn handle_client(&mut self, id: usize, readable: bool, writable: bool) {
        let Some(entry) = self.clients.get_mut(&id) else { return };
        let mut close = false;
        if writable && !entry.client.flush_output() {
            close = true;
        }
        if readable
            && !close
            && !entry.closing
            && self.service.readable(&mut entry.client, &mut entry.session) == Progress::Close
        {
            entry.closing = true;
        }
        if entry.closing && !entry.client.flush_output() {
            close = true;
        }
        if entry.closing && entry.client.output.is_empty() {
            close = true;
        }
        if close {
            self.remove_client(id);
        }
    }

    fn remove_client(&mut self, id: usize) {
        if let Some(mut entry) = self.clients.remove(&id) {
            self.deregister(&mut entry.client);
        }
    }

    /// Closes the listener fds right away (the master may be restarting and
    /// needs the ports) and takes no more clients.
    fn stop_accepting(&mut self) {
        if !self.accepting {
            return;
        }
        let _ = self.set_listening(false);
        for source in self.listeners.iter_mut() {
            if let Some(ListenerSource::Fifo(f)) = source {
                let _ = self.poll.registry().deregister(&mut SourceFd(&f.as_raw_fd()));
            }
            *source = None;
        }
        self.accepting = false;
    }

    /// Ends every client with the service's goodbye and lets the loop exit.
    fn end_all_clients(&mut self) {
        self.stop_accepting();
        let ids: Vec<usize> = self.clients.keys().copied().collect();
        for id in ids {
            if let Some(entry) = self.clients.get_mut(&id) {
                self.service.shutting_down(&mut entry.client, &mut entry.session);
                entry.client.flush_output();
            }
            self.remove_client(id);
        }
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                // The master's idle kill: only an idle process obeys.
                Ok(Signal::SIGINT) if self.clients.is_empty() => self.stop_accepting(),
                Ok(Signal::SIGTERM) => self.end_all_clients(),
                Ok(Signal::SIGQUIT) => self.stop_accepting(),
                _ => {}
            }
        }
    }

    fn handle_control(&mut self) {
        let mut buf = [0u8; 1024];
        let mut eof = false;
        if let Some(control) = self.control.as_mut() {
            loop {
                match control.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => self.control_input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
        }
        while let Some(pos) = self.control_input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.control_input.drain(..=pos).collect();
            match ControlCommand::parse(&String::from_utf8_lossy(&line)) {
                Some(ControlCommand::StopAccepting) => self.master_gone(),
                Some(ControlCommand::Shutdown) => self.end_all_clients(),
                Some(ControlCommand::Kick(user)) => self.kick(&user),
                None => {}
            }
        }
        if eof {
            if let Some(mut control) = self.control.take() {
                let _ = self.poll.registry().deregister(&mut control);
            }
            self.master_gone();
        }
    }

    /// The master died or retired this process (reload): no new clients;
    /// the current ones finish, bounded by 30 s with `shutdown_clients`.
    fn master_gone(&mut self) {
        self.stop_accepting();
        if self.shutdown_clients && self.die_deadline.is_none() {
            self.die_deadline = Some(Instant::now() + DIE_WITH_MASTER_TIMEOUT);
        }
    }

    fn kick(&mut self, user: &str) {
        let ids: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, e)| e.client.user.as_deref() == Some(user))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(entry) = self.clients.get_mut(&id) {
                self.service.shutting_down(&mut entry.client, &mut entry.session);
                entry.client.flush_output();
            }
            self.remove_client(id);
        }
    }

    fn report_status(&mut self) {
        let available = self.available();
        if self.last_reported == Some(available) && !self.status_pending {
            return;
        }
        let Some(fd) = self.status.as_ref() else { return };
        let record = StatusRecord {
            pid: std::process::id(),
            available_client_slots: available,
            generation: self.generation,
        };
        match nix::unistd::write(fd, &record.to_bytes()) {
            Ok(_) => {
                self.last_reported = Some(available);
                self.status_pending = false;
            }
            // The pipe is full; retry shortly rather than block the loop.
            Err(nix::errno::Errno::EAGAIN) => self.status_pending = true,
            Err(_) => {
                self.status = None;
                self.status_pending = false;
            }
        }
    }

    fn update_title(&mut self) {
        if !self.verbose_proctitle {
            return;
        }
        let Some(area) = self.argv_area.as_mut() else { return };
        let base = self.title.clone();
        let title = match self.clients.len() {
            0 => base,
            1 => {
                let Some(entry) = self.clients.values().next() else { return };
                let c = &entry.client;
                let ip = c.remote.map(|a| a.ip().to_string()).unwrap_or_default();
                let fields: Vec<&str> = [c.user.as_deref().unwrap_or(""), ip.as_str(), c.state.as_str()]
                    .into_iter()
                    .filter(|f| !f.is_empty())
                    .collect();
                format!("{base} [{}]", fields.join(" "))
            }
            n => format!("{base} [{n} connections]"),
        };
        if title != self.last_title {
            area.set(&title);
            self.last_title = title;
        }
    }
}

/// Where log lines go before the runtime's logger exists (or outside a
/// service): straight to fd 2 in the contract's line format.
pub fn log_line(level: Level, text: &str) {
    let line = LogLine { level, user: None, session: None, text: text.to_owned() };
    let _ = write_log_fd(&line.to_line());
}
