//! The master's event loop: supervises every service process after
//! startup. It owns the process table, the listeners, the status and log
//! pipes, the admin socket, and the reload and shutdown sequences (see
//! master/LIFECYCLE.md for the timeline with line references).
//!
//! Rules, as Dovecot's master applies them (reference §2.7–§2.13):
//! * a new process counts as available until its first status says
//!   otherwise; `process_min_avail` processes with free slots are kept, at
//!   most 10 started per round;
//! * the master watches a service's listeners only while none of its
//!   processes has a free slot; a waiting connection then starts one
//!   process, up to `process_limit`; at the limit it logs
//!   "process_limit (N) reached, client connections are being dropped"
//!   (at most once a second) and, after 10 s still full, accepts and closes
//!   what waits, as Dovecot does;
//! * a process that dies before its first status, or more than 10 failures
//!   in one second before any clean exit, throttles the service for 2 s,
//!   doubling up to 60 s;
//! * idle processes above `process_min_avail` get SIGINT after `idle_kill`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dovecote_config::{load, LoadOptions};
use dovecote_master::admin::{CLIENT_HANDSHAKE, MAX_REQUEST, SERVER_HANDSHAKE};
use dovecote_master::contract::{
    exit_code_meaning, Level, ListenerKind, LogLine, StatusRecord, MAX_LOG_LINE,
};
use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::listeners::{self, Activated, Listener};
use crate::logger::MasterLog;
use crate::notify;
use crate::settings::{self, MasterSettings, ServiceSettings};
use crate::spawn::{spawn, SpawnRequest};

const THROTTLE_MIN: Duration = Duration::from_secs(2);
const THROTTLE_MAX: Duration = Duration::from_secs(60);
const MAX_EXIT_FAILURES_IN_SEC: u32 = 10;
const PREFORK_MAX_AT_ONCE: usize = 10;
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(1);
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_STATUS_TIMEOUT: Duration = Duration::from_secs(30);
/// After a reload with shutdown_clients=yes: SIGTERM to leftovers of the
/// old configuration after this, SIGKILL after twice this.
const RELOAD_KILL_INTERVAL: Duration = Duration::from_secs(6);
/// How long `dovecot stop` waits for children before SIGKILL; short so the
/// whole stop fits in 2 s.
const STOP_GRACE: Duration = Duration::from_millis(1200);

const TOKEN_SIGNALS: Token = Token(0);
const TOKEN_ADMIN: Token = Token(1);
const FIRST_DYNAMIC_TOKEN: usize = 16;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What a dynamic token refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Status { service: String, generation: u32 },
    Log { pid: u32 },
    Config { pid: u32 },
    Listener { index: usize },
    Admin { id: usize },
}

struct Process {
    pid: u32,
    service: String,
    generation: u32,
    started: Instant,
    client_limit: u32,
    available: u32,
    got_status: bool,
    total_count: u32,
    idle_start: Option<(Instant, u64)>,
    last_status_update: u64,
    last_kill_sent: u64,
    log: Option<(File, Token, Vec<u8>)>,
    config: Option<(File, Token, Vec<u8>)>,
    control: Option<StdUnixStream>,
    retired: bool,
    /// Signal the master sent, so its effect is not logged as a crash.
    sent_signal: Option<Signal>,
}

struct ServiceState {
    settings: ServiceSettings,
    generation: u32,
    /// Indices into `Supervisor::listeners`.
    listeners: Vec<usize>,
    status_read: File,
    status_write: OwnedFd,
    status_token: Token,
    status_partial: Vec<u8>,
    watching: bool,
    throttle_until: Option<Instant>,
    throttle_next: Duration,
    have_successful_exits: bool,
    exit_failure_last: u64,
    exit_failures_in_sec: u32,
    exit_failure_window: Option<Instant>,
    full_since: Option<Instant>,
    last_drop_warning: Option<(Instant, u64)>,
    stopped_by_admin: bool,
    spawned: u64,
    died: u64,
    throttled: u64,
}

/// A status pipe of a configuration generation that a reload replaced,
/// read until its last process is gone.
struct RetiredStatus {
    read: File,
    token: Token,
    partial: Vec<u8>,
    service: String,
    generation: u32,
}

struct AdminClient {
    stream: UnixStream,
    token: Token,
    input: Vec<u8>,
    output: Vec<u8>,
    handshaken: bool,
}

pub struct Startup {
    pub settings: MasterSettings,
    pub listeners: Vec<Listener>,
    pub admin: std::os::unix::net::UnixListener,
    pub log: MasterLog,
    pub config_path: String,
    pub pid_file: PathBuf,
    pub imported_env: Vec<(String, String)>,
    pub core_limit: Option<u64>,
    pub key_password: Option<String>,
}

pub struct Supervisor {
    poll: Poll,
    signals: SignalFd,
    settings: MasterSettings,
    config_path: String,
    pid_file: PathBuf,
    log: MasterLog,
    listeners: Vec<Option<Listener>>,
    services: BTreeMap<String, ServiceState>,
    retired_status: Vec<RetiredStatus>,
    processes: HashMap<u32, Process>,
    sources: HashMap<Token, Source>,
    next_token: usize,
    admin: UnixListener,
    admin_clients: HashMap<usize, AdminClient>,
    next_admin: usize,
    generation: u32,
    ready_sent: bool,
    reload_kills: Vec<(Instant, Signal, u32)>,
    stopping: Option<Instant>,
    imported_env: Vec<(String, String)>,
    core_limit: Option<u64>,
    key_password: Option<String>,
}

impl Supervisor {
    pub fn new(startup: Startup) -> io::Result<Supervisor> {
        let poll = Poll::new()?;
        let mut mask = SigSet::empty();
        for sig in [
            Signal::SIGCHLD,
            Signal::SIGHUP,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
        ] {
            mask.add(sig);
        }
        mask.thread_block().map_err(io::Error::from)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        poll.registry().register(
            &mut SourceFd(&signals.as_fd().as_raw_fd()),
            TOKEN_SIGNALS,
            Interest::READABLE,
        )?;
        startup.admin.set_nonblocking(true)?;
        let mut admin = UnixListener::from_std(startup.admin);
        poll.registry().register(&mut admin, TOKEN_ADMIN, Interest::READABLE)?;
        let mut supervisor = Supervisor {
            poll,
            signals,
            settings: startup.settings,
            config_path: startup.config_path,
            pid_file: startup.pid_file,
            log: startup.log,
            listeners: startup.listeners.into_iter().map(Some).collect(),
            services: BTreeMap::new(),
            retired_status: Vec::new(),
            processes: HashMap::new(),
            sources: HashMap::new(),
            next_token: FIRST_DYNAMIC_TOKEN,
            admin,
            admin_clients: HashMap::new(),
            next_admin: 0,
            generation: 1,
            ready_sent: false,
            reload_kills: Vec::new(),
            stopping: None,
            imported_env: startup.imported_env,
            core_limit: startup.core_limit,
            key_password: startup.key_password,
        };
        supervisor.install_services()?;
        Ok(supervisor)
    }

    fn token(&mut self, source: Source) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.sources.insert(token, source);
        token
    }

    /// Creates the service table for the current settings and generation,
    /// pointing each service at its listeners in `self.listeners`.
    fn install_services(&mut self) -> io::Result<()> {
        let generation = self.generation;
        let services = self.settings.services.clone();
        for settings in services {
            let mut indices = Vec::new();
            for spec in &settings.listeners {
                if let Some(i) =
                    self.listeners.iter().position(|l| l.as_ref().is_some_and(|l| l.spec == *spec))
                {
                    indices.push(i);
                }
            }
            // A listener that could not be created (reload) is left out;
            // the names passed to the children must match the fds.
            let mut settings = settings;
            let kept: Vec<_> =
                indices.iter().filter_map(|i| self.listeners[*i].as_ref().map(|l| l.spec.clone())).collect();
            settings.listeners = kept;
            let (read, write) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(io::Error::from)?;
            let name = settings.name.clone();
            let token = self.token(Source::Status { service: name.clone(), generation });
            let read = File::from(read);
            self.poll.registry().register(&mut SourceFd(&read.as_raw_fd()), token, Interest::READABLE)?;
            self.services.insert(
                name,
                ServiceState {
                    settings,
                    generation,
                    listeners: indices,
                    status_read: read,
                    status_write: write,
                    status_token: token,
                    status_partial: Vec::new(),
                    watching: false,
                    throttle_until: None,
                    throttle_next: THROTTLE_MIN,
                    have_successful_exits: false,
                    exit_failure_last: 0,
                    exit_failures_in_sec: 0,
                    exit_failure_window: None,
                    full_since: None,
                    last_drop_warning: None,
                    stopped_by_admin: false,
                    spawned: 0,
                    died: 0,
                    throttled: 0,
                },
            );
        }
        Ok(())
    }

    fn listener_token(index: usize) -> Token {
        Token((1 << 24) + index)
    }

    /// Runs until the master is stopped. Returns the exit code.
    pub fn run(&mut self) -> i32 {
        let mut events = Events::with_capacity(256);
        self.maintain();
        loop {
            if let Some(deadline) = self.stopping {
                if self.finish_stop(deadline) {
                    return 0;
                }
            }
            let timeout = Some(self.poll_timeout());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.log.master(Level::Fatal, &format!("epoll_wait() failed: {e}"));
                    return 89;
                }
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    TOKEN_SIGNALS => self.handle_signals(),
                    TOKEN_ADMIN => self.accept_admin(),
                    token => self.handle_source(token, event.is_writable()),
                }
            }
            self.maintain();
        }
    }

    fn poll_timeout(&self) -> Duration {
        let busy = self.stopping.is_some()
            || !self.reload_kills.is_empty()
            || self.services.values().any(|s| s.throttle_until.is_some() || s.full_since.is_some())
            || self.processes.values().any(|p| !p.got_status);
        if busy {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(500)
        }
    }

    fn handle_source(&mut self, token: Token, writable: bool) {
        let Some(source) = self.sources.get(&token).cloned() else { return };
        match source {
            Source::Status { service, generation } => self.read_status(&service, generation),
            Source::Log { pid } => self.read_log(pid, false),
            Source::Config { pid } => {
                if writable {
                    self.write_config(pid)
                }
            }
            Source::Listener { index } => self.listener_ready(index),
            Source::Admin { id } => self.handle_admin(id),
        }
    }

    // ----- spawning -------------------------------------------------------

    fn spawn_process(&mut self, name: &str) -> bool {
        let Some(state) = self.services.get(name) else { return false };
        let listeners: Vec<_> = state
            .listeners
            .iter()
            .filter_map(|i| self.listeners.get(*i).and_then(|l| l.as_ref()))
            .map(|l| l.fd.as_fd())
            .collect();
        let request = SpawnRequest {
            service: &state.settings,
            listeners,
            status: state.status_write.as_fd(),
            generation: state.generation,
            imported_env: &self.imported_env,
            core_limit: self.core_limit,
            key_password: self.key_password.as_deref(),
        };
        let spawned = spawn(&request);
        let client_limit = state.settings.limits.client_limit;
        let generation = state.generation;
        let config_text = state.settings.config_text.clone().into_bytes();
        match spawned {
            Err(e) => {
                self.log.master(Level::Error, &e.to_string());
                self.throttle(name);
                false
            }
            Ok(child) => {
                let pid = child.pid;
                let log_token = self.token(Source::Log { pid });
                let config_token = self.token(Source::Config { pid });
                let registry = self.poll.registry();
                let _ =
                    registry.register(&mut SourceFd(&child.log.as_raw_fd()), log_token, Interest::READABLE);
                let _ = registry.register(
                    &mut SourceFd(&child.config.as_raw_fd()),
                    config_token,
                    Interest::WRITABLE,
                );
                self.processes.insert(
                    pid,
                    Process {
                        pid,
                        service: name.to_owned(),
                        generation,
                        started: Instant::now(),
                        client_limit,
                        available: client_limit,
                        got_status: false,
                        total_count: 0,
                        idle_start: Some((Instant::now(), unix_now())),
                        last_status_update: unix_now(),
                        last_kill_sent: 0,
                        log: Some((child.log, log_token, Vec::new())),
                        config: Some((child.config, config_token, config_text)),
                        control: Some(child.control),
                        retired: false,
                        sent_signal: None,
                    },
                );
                if let Some(state) = self.services.get_mut(name) {
                    state.spawned += 1;
                }
                self.write_config(pid);
                true
            }
        }
    }

    fn write_config(&mut self, pid: u32) {
        let Some(process) = self.processes.get_mut(&pid) else { return };
        let Some((file, token, pending)) = process.config.as_mut() else { return };
        let mut done = false;
        loop {
            if pending.is_empty() {
                done = true;
                break;
            }
            match file.write(pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The child is gone; the reaper reports why.
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        if done {
            let token = *token;
            if let Some((file, _, _)) = process.config.take() {
                let _ = self.poll.registry().deregister(&mut SourceFd(&file.as_raw_fd()));
            }
            self.sources.remove(&token);
        }
    }

    // ----- status ---------------------------------------------------------

    fn read_status(&mut self, service: &str, generation: u32) {
        let mut buf = [0u8; StatusRecord::SIZE * 85];
        let mut data = Vec::new();
        let partial =
            if let Some(state) = self.services.get_mut(service).filter(|s| s.generation == generation) {
                read_available(&mut state.status_read, &mut buf, &mut data);
                std::mem::take(&mut state.status_partial)
            } else if let Some(r) =
                self.retired_status.iter_mut().find(|r| r.service == service && r.generation == generation)
            {
                read_available(&mut r.read, &mut buf, &mut data);
                std::mem::take(&mut r.partial)
            } else {
                return;
            };
        let mut all = partial;
        all.extend_from_slice(&data);
        let whole = all.len() / StatusRecord::SIZE * StatusRecord::SIZE;
        for chunk in all[..whole].chunks_exact(StatusRecord::SIZE) {
            let mut bytes = [0u8; StatusRecord::SIZE];
            bytes.copy_from_slice(chunk);
            self.apply_status(StatusRecord::from_bytes(bytes));
        }
        let rest = all[whole..].to_vec();
        if let Some(state) = self.services.get_mut(service).filter(|s| s.generation == generation) {
            state.status_partial = rest;
        } else if let Some(r) =
            self.retired_status.iter_mut().find(|r| r.service == service && r.generation == generation)
        {
            r.partial = rest;
        }
    }

    fn apply_status(&mut self, record: StatusRecord) {
        let Some(process) = self.processes.get_mut(&record.pid) else { return };
        if process.generation != record.generation {
            let text =
                format!("Ignoring invalid update from child {} (UID={})", record.pid, record.generation);
            self.log.master(Level::Error, &text);
            return;
        }
        if record.available_client_slots < process.available {
            process.total_count += process.available - record.available_client_slots;
        }
        process.available = record.available_client_slots.min(process.client_limit);
        process.got_status = true;
        process.last_status_update = unix_now();
        if process.sent_signal == Some(Signal::SIGINT) {
            // It answered instead of exiting: it has clients after all.
            process.sent_signal = None;
        }
        if process.available == process.client_limit {
            if process.idle_start.is_none() {
                process.idle_start = Some((Instant::now(), unix_now()));
            }
        } else {
            process.idle_start = None;
        }
    }

    // ----- logging --------------------------------------------------------

    fn read_log(&mut self, pid: u32, final_read: bool) {
        let Some(process) = self.processes.get_mut(&pid) else { return };
        let service = process.service.clone();
        let Some((file, token, partial)) = process.log.as_mut() else { return };
        let mut buf = [0u8; 8192];
        let mut eof = false;
        loop {
            match file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let mut lines = Vec::new();
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if partial.len() > MAX_LOG_LINE || ((eof || final_read) && !partial.is_empty()) {
            lines.push(String::from_utf8_lossy(partial).into_owned());
            partial.clear();
        }
        let token = *token;
        if eof {
            if let Some((file, _, _)) = process.log.take() {
                let _ = self.poll.registry().deregister(&mut SourceFd(&file.as_raw_fd()));
            }
            self.sources.remove(&token);
        }
        for line in lines {
            self.log.child(&service, pid, &LogLine::parse(&line));
        }
    }

    // ----- signals and reaping ---------------------------------------------

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(Signal::SIGHUP) => {
                    self.log.master(Level::Warning, "SIGHUP received - reloading configuration");
                    self.reload();
                }
                Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)) => {
                    let text = format!(
                        "Killed with signal {} (by pid={} uid={} code={})",
                        sig as i32,
                        info.ssi_pid,
                        info.ssi_uid,
                        if info.ssi_code == 0 { "kill" } else { "signal" }
                    );
                    self.log.master(Level::Warning, &text);
                    self.begin_stop();
                }
                Ok(Signal::SIGUSR1) => {
                    // Log reopen (logrotate): reopen our own files.
                    if let Ok(log) = MasterLog::open(&self.settings.config) {
                        self.log = log;
                    }
                }
                _ => {}
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let pid = pid.as_raw() as u32;
            if !self.processes.contains_key(&pid) {
                self.log.master(Level::Error, &format!("waitpid() returned unknown PID {pid}"));
                continue;
            }
            self.read_log(pid, true);
            let Some(process) = self.processes.remove(&pid) else { continue };
            for token in [process.log.as_ref().map(|l| l.1), process.config.as_ref().map(|c| c.1)]
                .into_iter()
                .flatten()
            {
                self.sources.remove(&token);
            }
            if let Some((file, _, _)) = &process.log {
                let _ = self.poll.registry().deregister(&mut SourceFd(&file.as_raw_fd()));
            }
            if let Some((file, _, _)) = &process.config {
                let _ = self.poll.registry().deregister(&mut SourceFd(&file.as_raw_fd()));
            }
            self.process_exited(process, status);
        }
    }

    fn process_exited(&mut self, process: Process, status: WaitStatus) {
        let name = process.service.clone();
        let pid = process.pid;
        let failure = match status {
            WaitStatus::Exited(_, 0) => None,
            WaitStatus::Exited(_, code) => {
                let meaning = exit_code_meaning(code).map(|m| format!(" ({m})")).unwrap_or_default();
                Some(format!("master: service({name}): child {pid} returned error {code}{meaning}"))
            }
            WaitStatus::Signaled(_, sig, core) => {
                if process.sent_signal == Some(sig) {
                    None
                } else {
                    let core = if core { " (core dumped)" } else { "" };
                    Some(format!(
                        "master: service({name}): child {pid} killed with signal {}{core}",
                        sig as i32
                    ))
                }
            }
            _ => None,
        };
        let current =
            !process.retired && self.services.get(&name).is_some_and(|s| s.generation == process.generation);
        if let Some(text) = &failure {
            self.log.write(&format!("{name}: "), Level::Fatal, text);
        }
        if !current {
            self.drop_retired_status_if_done(&name, process.generation);
            return;
        }
        let Some(state) = self.services.get_mut(&name) else { return };
        match failure {
            None => {
                if matches!(status, WaitStatus::Exited(_, 0)) {
                    state.have_successful_exits = true;
                    state.exit_failures_in_sec = 0;
                    state.throttle_next = THROTTLE_MIN;
                }
            }
            Some(_) => {
                state.died += 1;
                state.exit_failure_last = unix_now();
                let now = Instant::now();
                match state.exit_failure_window {
                    Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                        state.exit_failures_in_sec += 1
                    }
                    _ => {
                        state.exit_failure_window = Some(now);
                        state.exit_failures_in_sec = 1;
                    }
                }
                let storm =
                    state.exit_failures_in_sec > MAX_EXIT_FAILURES_IN_SEC && !state.have_successful_exits;
                if !process.got_status || storm {
                    self.throttle(&name);
                }
            }
        }
    }

    fn throttle(&mut self, name: &str) {
        let Some(state) = self.services.get_mut(name) else { return };
        if state.throttle_until.is_some() {
            return;
        }
        let secs = state.throttle_next;
        state.throttle_until = Some(Instant::now() + secs);
        state.throttle_next = (secs * 2).min(THROTTLE_MAX);
        state.throttled += 1;
        let text = format!(
            "service({name}): command startup failed, throttling for {}.{:03} secs",
            secs.as_secs(),
            secs.subsec_millis()
        );
        self.log.master(Level::Error, &text);
    }

    fn drop_retired_status_if_done(&mut self, service: &str, generation: u32) {
        let alive = self.processes.values().any(|p| p.service == service && p.generation == generation);
        if alive {
            return;
        }
        if let Some(pos) =
            self.retired_status.iter().position(|r| r.service == service && r.generation == generation)
        {
            let r = self.retired_status.remove(pos);
            let _ = self.poll.registry().deregister(&mut SourceFd(&r.read.as_raw_fd()));
            self.sources.remove(&r.token);
        }
    }

    // ----- the spawn rule ---------------------------------------------------

    /// Brings every service in line with its rules; called after every
    /// batch of events.
    fn maintain(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let now = Instant::now();
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in &names {
            self.maintain_service(name, now);
        }
        self.kill_idle(now);
        self.first_status_timeouts(now);
        self.reload_timeline(now);
        if !self.ready_sent && self.min_avail_satisfied() {
            self.ready_sent = true;
            notify::ready(&self.status_text());
        }
    }

    fn counts(&self, name: &str, generation: u32) -> (u32, u32) {
        let mut count = 0;
        let mut avail = 0;
        for p in self.processes.values() {
            if p.service == name && p.generation == generation && !p.retired {
                count += 1;
                if p.available > 0 {
                    avail += 1;
                }
            }
        }
        (count, avail)
    }

    fn maintain_service(&mut self, name: &str, now: Instant) {
        let Some(state) = self.services.get_mut(name) else { return };
        if state.throttle_until.is_some_and(|t| now >= t) {
            state.throttle_until = None;
        }
        if state.stopped_by_admin {
            return;
        }
        let throttled = state.throttle_until.is_some();
        let generation = state.generation;
        let limits = state.settings.limits;
        let has_listeners = !state.listeners.is_empty();
        let (mut count, mut avail) = self.counts(name, generation);
        if !throttled {
            let mut started = 0;
            while avail < limits.process_min_avail
                && count < limits.process_limit
                && started < PREFORK_MAX_AT_ONCE
            {
                if !self.spawn_process(name) {
                    break;
                }
                started += 1;
                count += 1;
                avail += 1;
                if self.services.get(name).is_some_and(|s| s.throttle_until.is_some()) {
                    break;
                }
            }
        }
        let Some(state) = self.services.get_mut(name) else { return };
        let throttled = state.throttle_until.is_some();
        let full = avail == 0 && count >= limits.process_limit;
        if !full {
            state.full_since = None;
        }
        // Watch while nobody can accept and we may start someone, or while
        // dropping connections (throttled with nobody left, or full > 10 s).
        let drop_mode = (throttled && count == 0)
            || state.full_since.is_some_and(|t| now.duration_since(t) >= DROP_TIMEOUT);
        let want_watch = has_listeners && avail == 0 && ((!throttled && !full) || drop_mode);
        if full && has_listeners {
            if state.full_since.is_none() {
                state.full_since = Some(now);
            }
            let warn =
                state.last_drop_warning.is_none_or(|(t, _)| now.duration_since(t) >= DROP_WARNING_INTERVAL);
            if warn && self.listener_pending(name) {
                if let Some(state) = self.services.get_mut(name) {
                    state.last_drop_warning = Some((now, unix_now()));
                }
                let what = if limits.process_limit > 1 {
                    format!("process_limit ({})", limits.process_limit)
                } else if limits.service_count == 1 {
                    "client_limit/service_count (1)".to_owned()
                } else {
                    format!("client_limit ({})", limits.client_limit)
                };
                self.log.master(
                    Level::Warning,
                    &format!("service({name}): {what} reached, client connections are being dropped"),
                );
            }
        }
        self.set_watching(name, want_watch);
    }

    /// Whether a connection waits on any of the service's listeners.
    fn listener_pending(&self, name: &str) -> bool {
        let Some(state) = self.services.get(name) else { return false };
        state.listeners.iter().filter_map(|i| self.listeners.get(*i).and_then(|l| l.as_ref())).any(|l| {
            let mut fds = [nix::poll::PollFd::new(l.fd.as_fd(), nix::poll::PollFlags::POLLIN)];
            matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
        })
    }

    fn set_watching(&mut self, name: &str, on: bool) {
        let Some(state) = self.services.get_mut(name) else { return };
        if state.watching == on {
            return;
        }
        state.watching = on;
        let indices = state.listeners.clone();
        for i in indices {
            let Some(Some(l)) = self.listeners.get(i) else { continue };
            if l.spec.kind == ListenerKind::Fifo {
                continue;
            }
            let raw = l.fd.as_raw_fd();
            let token = Self::listener_token(i);
            if on {
                let _ = self.poll.registry().register(&mut SourceFd(&raw), token, Interest::READABLE);
                self.sources.insert(token, Source::Listener { index: i });
            } else {
                let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            }
        }
    }

    fn listener_ready(&mut self, index: usize) {
        let Some(Some(listener)) = self.listeners.get(index) else { return };
        let name = listener.spec.service.clone();
        let Some(state) = self.services.get(&name) else { return };
        if !state.watching {
            return;
        }
        let generation = state.generation;
        let limits = state.settings.limits;
        let throttled = state.throttle_until.is_some();
        let dropping = state.full_since.is_some_and(|t| t.elapsed() >= DROP_TIMEOUT);
        let (count, avail) = self.counts(&name, generation);
        if avail > 0 {
            return;
        }
        if (throttled && count == 0) || dropping {
            // As Dovecot: nobody will serve these; close them rather than
            // let clients hang.
            self.drop_pending(index);
            return;
        }
        if !throttled && count < limits.process_limit {
            // Stop watching until the new process reports (it counts as
            // available meanwhile).
            self.spawn_process(&name);
            self.set_watching(&name, false);
        }
    }

    fn drop_pending(&mut self, index: usize) {
        let Some(Some(listener)) = self.listeners.get(index) else { return };
        let raw = listener.fd.as_raw_fd();
        while let Ok(fd) = nix::sys::socket::accept4(raw, nix::sys::socket::SockFlag::SOCK_CLOEXEC) {
            let _ = nix::unistd::close(fd);
        }
    }

    /// SIGINT to processes idle longer than `idle_kill`, oldest first,
    /// keeping `process_min_avail` of them. The child exits only if it
    /// really has no clients.
    fn kill_idle(&mut self, now: Instant) {
        let mut victims = Vec::new();
        for state in self.services.values() {
            let Some(idle_kill) = state.settings.limits.idle_kill else { continue };
            let min = state.settings.limits.process_min_avail as usize;
            let mut idle: Vec<(Instant, u32)> = self
                .processes
                .values()
                .filter(|p| {
                    p.service == state.settings.name
                        && p.generation == state.generation
                        && !p.retired
                        && p.got_status
                        && p.sent_signal.is_none()
                })
                .filter_map(|p| p.idle_start.map(|(t, _)| (t, p.pid)))
                .collect();
            if idle.len() <= min {
                continue;
            }
            idle.sort();
            let excess = idle.len() - min;
            victims.extend(
                idle.into_iter()
                    .take(excess)
                    .filter(|(since, _)| now.duration_since(*since) >= Duration::from_secs(idle_kill))
                    .map(|(_, pid)| pid),
            );
        }
        for pid in victims {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
            if let Some(p) = self.processes.get_mut(&pid) {
                p.sent_signal = Some(Signal::SIGINT);
                p.last_kill_sent = unix_now();
            }
        }
    }

    fn first_status_timeouts(&mut self, now: Instant) {
        let late: Vec<u32> = self
            .processes
            .values()
            .filter(|p| {
                !p.got_status
                    && p.sent_signal.is_none()
                    && now.duration_since(p.started) >= FIRST_STATUS_TIMEOUT
            })
            .map(|p| p.pid)
            .collect();
        for pid in late {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            if let Some(p) = self.processes.get_mut(&pid) {
                p.sent_signal = Some(Signal::SIGKILL);
            }
            self.log.master(Level::Error, &format!("service: Initial status notification not received in 30 seconds, killing the process {pid}"));
        }
    }

    fn min_avail_satisfied(&self) -> bool {
        self.services.values().all(|s| {
            if s.throttle_until.is_some() || s.stopped_by_admin {
                return true;
            }
            let up = self
                .processes
                .values()
                .filter(|p| {
                    p.service == s.settings.name
                        && p.generation == s.generation
                        && p.got_status
                        && p.available > 0
                })
                .count() as u32;
            up >= s.settings.limits.process_min_avail
        })
    }

    fn status_text(&self) -> String {
        let processes = self.processes.values().filter(|p| !p.retired).count();
        format!("v{} running, {} services, {} processes", crate::VERSION_TEXT, self.services.len(), processes)
    }

    // ----- reload -----------------------------------------------------------

    fn reload(&mut self) {
        notify::reloading();
        let outcome = load(&self.config_path, LoadOptions { expand_values: true })
            .map_err(|e| e.to_string())
            .and_then(|config| {
                settings::build(config)
                    .map_err(|e| format!("Error in configuration file {}: {e}", self.config_path))
            });
        match outcome {
            Err(e) => {
                self.log.master(Level::Error, &format!("Config reload failed: {e}"));
            }
            Ok(new_settings) => self.apply_reload(new_settings),
        }
        notify::ready(&self.status_text());
    }

    fn apply_reload(&mut self, new_settings: MasterSettings) {
        if let Ok(log) = MasterLog::open(&new_settings.config) {
            self.log = log;
        }
        // 1. Listeners: keep what is unchanged, close what went away, then
        //    create the new ones (a removed unix path is unlinked first so a
        //    changed owner or mode can be recreated at the same path).
        let mut old: Vec<Option<Listener>> = std::mem::take(&mut self.listeners);
        for state in self.services.values_mut() {
            state.watching = false;
        }
        for l in old.iter().flatten() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&l.fd.as_raw_fd()));
        }
        let wanted: Vec<_> = new_settings.services.iter().flat_map(|s| s.listeners.iter().cloned()).collect();
        let mut new_listeners: Vec<Option<Listener>> = Vec::new();
        let mut to_create = Vec::new();
        for spec in &wanted {
            let key = spec.reuse_key();
            if let Some(pos) = old.iter().position(|l| l.as_ref().is_some_and(|l| l.spec.reuse_key() == key))
            {
                if let Some(mut l) = old[pos].take() {
                    l.spec = spec.clone();
                    new_listeners.push(Some(l));
                }
            } else {
                to_create.push(spec.clone());
            }
        }
        for l in old.into_iter().flatten() {
            if l.spec.kind != ListenerKind::Inet {
                let _ = std::fs::remove_file(&l.spec.path);
            }
        }
        let mut activated = Activated::default();
        for spec in to_create {
            match listeners::create(&spec, &mut activated) {
                Ok(l) => new_listeners.push(Some(l)),
                Err(e) => self.log.master(Level::Error, &e.to_string()),
            }
        }
        self.listeners = new_listeners;
        self.sources.retain(|_, s| !matches!(s, Source::Listener { .. }));
        // 2. Retire the old services' processes: they stop accepting on EOF
        //    of their control socket and finish their clients.
        let old_services = std::mem::take(&mut self.services);
        for (name, state) in old_services {
            self.retired_status.push(RetiredStatus {
                read: state.status_read,
                token: state.status_token,
                partial: state.status_partial,
                service: name.clone(),
                generation: state.generation,
            });
        }
        let mut retired_pids = Vec::new();
        for p in self.processes.values_mut() {
            if !p.retired {
                p.retired = true;
                p.control = None;
                retired_pids.push(p.pid);
            }
        }
        let retired: Vec<(String, u32)> =
            self.retired_status.iter().map(|r| (r.service.clone(), r.generation)).collect();
        for (service, generation) in retired {
            self.drop_retired_status_if_done(&service, generation);
        }
        // 3. New generation.
        self.generation += 1;
        self.settings = new_settings;
        if let Err(e) = self.install_services() {
            self.log.master(Level::Error, &format!("Config reload: {e}"));
        }
        if self.settings.shutdown_clients && !retired_pids.is_empty() {
            let now = Instant::now();
            let generation = self.generation - 1;
            self.reload_kills.push((now + RELOAD_KILL_INTERVAL, Signal::SIGTERM, generation));
            self.reload_kills.push((now + RELOAD_KILL_INTERVAL * 2, Signal::SIGKILL, generation));
        }
    }

    fn reload_timeline(&mut self, now: Instant) {
        let due: Vec<(Instant, Signal, u32)> =
            self.reload_kills.iter().filter(|(t, _, _)| now >= *t).cloned().collect();
        self.reload_kills.retain(|(t, _, _)| now < *t);
        for (_, signal, generation) in due {
            let mut count = 0;
            for p in self.processes.values_mut() {
                if p.retired && p.generation <= generation {
                    let _ = kill(Pid::from_raw(p.pid as i32), signal);
                    p.sent_signal = Some(signal);
                    count += 1;
                }
            }
            if count > 0 {
                let text =
                    format!("Processes aren't dying after reload, sent {signal:?} to {count} processes.");
                self.log.master(Level::Warning, &text);
            }
        }
    }

    // ----- stop -------------------------------------------------------------

    fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        notify::stopping();
        self.stopping = Some(Instant::now() + STOP_GRACE);
        // Listeners first: from here on nothing new is accepted anywhere
        // once the children have closed their copies (they do on EOF).
        for l in self.listeners.iter().flatten() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&l.fd.as_raw_fd()));
        }
        self.listeners.clear();
        let shutdown_clients = self.settings.shutdown_clients;
        for p in self.processes.values_mut() {
            p.control = None;
            if shutdown_clients {
                let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGTERM);
                p.sent_signal = Some(Signal::SIGTERM);
            }
        }
    }

    /// Returns true when the master may exit.
    fn finish_stop(&mut self, deadline: Instant) -> bool {
        self.reap();
        let shutdown_clients = self.settings.shutdown_clients;
        // With shutdown_clients=no, processes with clients are left to
        // finish on their own, as Dovecot leaves them.
        let waiting = self
            .processes
            .values()
            .any(|p| shutdown_clients || p.available == p.client_limit || !p.got_status);
        if waiting && Instant::now() < deadline {
            return false;
        }
        if shutdown_clients {
            for p in self.processes.values_mut() {
                let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
                p.sent_signal = Some(Signal::SIGKILL);
            }
            // Wait for the SIGCHLDs on the signalfd rather than sleeping.
            let until = Instant::now() + Duration::from_millis(500);
            let mut events = Events::with_capacity(8);
            while !self.processes.is_empty() && Instant::now() < until {
                let _ = self.poll.poll(&mut events, Some(Duration::from_millis(20)));
                self.reap();
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
        true
    }

    // ----- admin socket -------------------------------------------------------

    fn accept_admin(&mut self) {
        loop {
            match self.admin.accept() {
                Ok((mut stream, _)) => {
                    let id = self.next_admin;
                    self.next_admin += 1;
                    let token = self.token(Source::Admin { id });
                    let _ = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    let mut client = AdminClient {
                        stream,
                        token,
                        input: Vec::new(),
                        output: Vec::new(),
                        handshaken: false,
                    };
                    client.output.extend_from_slice(format!("{SERVER_HANDSHAKE}\n").as_bytes());
                    self.admin_clients.insert(id, client);
                    self.flush_admin(id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn handle_admin(&mut self, id: usize) {
        let mut close = false;
        let mut requests = Vec::new();
        if let Some(client) = self.admin_clients.get_mut(&id) {
            let mut buf = [0u8; 1024];
            loop {
                match client.stream.read(&mut buf) {
                    Ok(0) => {
                        close = true;
                        break;
                    }
                    Ok(n) => client.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
            while let Some(pos) = client.input.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = client.input.drain(..=pos).collect();
                requests
                    .push(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_owned());
            }
            if client.input.len() > MAX_REQUEST {
                close = true;
            }
        }
        for request in requests {
            let Some(client) = self.admin_clients.get_mut(&id) else { break };
            if !client.handshaken {
                let expected: Vec<&str> = CLIENT_HANDSHAKE.split('\t').take(3).collect();
                if request.split('\t').take(3).collect::<Vec<_>>() != expected {
                    close = true;
                    break;
                }
                client.handshaken = true;
                continue;
            }
            let reply = self.admin_request(&request);
            if let Some(client) = self.admin_clients.get_mut(&id) {
                client.output.extend_from_slice(reply.as_bytes());
            }
        }
        if close {
            self.close_admin(id);
        } else {
            self.flush_admin(id);
        }
    }

    fn flush_admin(&mut self, id: usize) {
        let Some(client) = self.admin_clients.get_mut(&id) else { return };
        while !client.output.is_empty() {
            match client.stream.write(&client.output) {
                Ok(n) => {
                    client.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close_admin(id);
                    return;
                }
            }
        }
    }

    fn close_admin(&mut self, id: usize) {
        if let Some(mut client) = self.admin_clients.remove(&id) {
            let _ = self.poll.registry().deregister(&mut client.stream);
            self.sources.remove(&client.token);
        }
    }

    fn admin_request(&mut self, request: &str) -> String {
        let mut fields = request.split('\t');
        let command = fields.next().unwrap_or("");
        let args: Vec<&str> = fields.collect();
        match command {
            "SERVICE-STATUS" => self.service_status(),
            "PROCESS-STATUS" => self.process_status(&args),
            "LISTENER-STATUS" => self.listener_status(&args),
            "STOP" => {
                if let Some(unknown) = args.iter().find(|a| !self.services.contains_key(**a)) {
                    return format!("-Unknown service: {unknown}\n");
                }
                for name in args {
                    self.set_watching(name, false);
                    if let Some(state) = self.services.get_mut(name) {
                        state.stopped_by_admin = true;
                        let generation = state.generation;
                        for p in self.processes.values_mut() {
                            if p.service == name && p.generation == generation {
                                p.control = None;
                            }
                        }
                    }
                }
                "+\n".to_owned()
            }
            _ => format!("-Unknown command: {command}\n"),
        }
    }

    fn service_status(&self) -> String {
        let mut out = String::new();
        for state in self.services.values() {
            let (count, avail) = self.counts(&state.settings.name, state.generation);
            let throttle_secs = state
                .throttle_until
                .map(|t| t.saturating_duration_since(Instant::now()).as_secs())
                .unwrap_or(0);
            let listen_pending = self.listener_pending(&state.settings.name);
            let fields = [
                state.settings.name.clone(),
                count.to_string(),
                avail.to_string(),
                state.settings.limits.process_limit.to_string(),
                state.settings.limits.client_limit.to_string(),
                throttle_secs.to_string(),
                state.exit_failure_last.to_string(),
                state.exit_failures_in_sec.to_string(),
                state.last_drop_warning.map(|(_, t)| t).unwrap_or(0).to_string(),
                yn(listen_pending),
                yn(state.watching),
                yn(state.stopped_by_admin),
                state.spawned.to_string(),
                state.spawned.to_string(),
                state.died.to_string(),
                state.throttled.to_string(),
            ];
            out.push_str(&fields.join("\t"));
            out.push('\n');
        }
        out.push('\n');
        out
    }

    fn process_status(&self, only: &[&str]) -> String {
        let mut rows: Vec<&Process> = self
            .processes
            .values()
            .filter(|p| only.is_empty() || only.contains(&p.service.as_str()))
            .collect();
        // Busy ones first, then idle, as Dovecot lists them.
        rows.sort_by_key(|p| (p.service.clone(), p.idle_start.is_some(), p.pid));
        let mut out = String::new();
        for p in rows {
            let idle = p.idle_start.map(|(_, t)| t).unwrap_or(0);
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                p.service, p.pid, p.available, p.total_count, idle, p.last_status_update, p.last_kill_sent
            ));
        }
        out.push('\n');
        out
    }

    fn listener_status(&self, only: &[&str]) -> String {
        let mut out = String::new();
        for l in self.listeners.iter().flatten() {
            if !only.is_empty() && !only.contains(&l.spec.service.as_str()) {
                continue;
            }
            let (user, group, mode) = match l.spec.kind {
                ListenerKind::Inet => ("root".to_owned(), "root".to_owned(), "-".to_owned()),
                _ => {
                    use std::os::unix::fs::MetadataExt;
                    match std::fs::symlink_metadata(&l.spec.path) {
                        Ok(m) => {
                            (user_name(m.uid()), group_name(m.gid()), format!("{:04o}", m.mode() & 0o7777))
                        }
                        Err(_) => ("?".to_owned(), "?".to_owned(), "?".to_owned()),
                    }
                }
            };
            let fields = [
                l.spec.service.clone(),
                l.spec.kind.as_str().to_owned(),
                l.spec.name.name.clone(),
                l.spec.address_text(),
                user,
                group,
                mode,
                yn(l.spec.name.ssl),
                yn(l.spec.name.haproxy),
            ];
            out.push_str(&fields.join("\t"));
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

fn yn(b: bool) -> String {
    if b { "y" } else { "n" }.to_owned()
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

fn read_available(file: &mut File, buf: &mut [u8], out: &mut Vec<u8>) {
    loop {
        match file.read(buf) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
