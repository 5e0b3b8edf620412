//! The auth process's side of the auth-worker protocol: a pool of
//! non-blocking connections to the `auth-worker` socket, each carrying one
//! request at a time (the master starts an `auth -w` process per
//! connection, on demand). Up to `auth_worker_max_count` connections; more
//! requests wait in a queue. A request that gets no answer within
//! [`LOOKUP_TIMEOUT`], or whose worker disconnects, fails as an internal
//! (temporary) failure — a hung backend never turns into "wrong password",
//! and never holds up requests on other connections.
//!
//! The connections live in their own `mio::Poll`, whose fd the service
//! runtime watches ([`dovecote_master::Service::wakeup_fd`]).

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};

use crate::worker_proto::{WorkerReply, WorkerRequest};

/// Dovecot's `AUTH_WORKER_LOOKUP_TIMEOUT_SECS`.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections are closed after this (`AUTH_WORKER_MAX_IDLE_SECS`).
const MAX_IDLE: Duration = Duration::from_secs(300);
/// Longest reply line accepted from a worker.
const MAX_LINE: usize = 1 << 20;

/// What the pool reports to the auth process.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A reply line for request `id` (`LIST` lines come before `DONE`).
    Reply(WorkerReply),
    /// Request `id` failed: timeout, worker gone, cannot connect.
    Failed {
        /// Request id.
        id: u64,
        /// For the log.
        reason: String,
    },
}

struct Conn {
    stream: UnixStream,
    output: Vec<u8>,
    input: Vec<u8>,
    /// The request in flight and when it was sent.
    busy: Option<(u64, Instant, bool)>,
    idle_since: Instant,
}

/// The pool.
pub struct WorkerPool {
    poll: Poll,
    path: PathBuf,
    max: usize,
    hello: String,
    conns: HashMap<usize, Conn>,
    next_token: usize,
    queue: VecDeque<(u64, String, bool)>,
    events: Vec<WorkerEvent>,
}

impl WorkerPool {
    /// A pool for `<base_dir>/auth-worker`.
    pub fn new(base_dir: &str, max: usize, db_hash: &str) -> std::io::Result<Self> {
        Ok(WorkerPool {
            poll: Poll::new()?,
            path: PathBuf::from(base_dir).join("auth-worker"),
            max: max.max(1),
            hello: WorkerRequest::Hello { db_hash: db_hash.to_string() }.to_line(),
            conns: HashMap::new(),
            next_token: 1,
            queue: VecDeque::new(),
            events: Vec::new(),
        })
    }

    /// The fd for the runtime to watch.
    pub fn fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    /// Sends (or queues) a request. `list` marks an iteration, which
    /// finishes with `DONE` rather than with its first reply.
    pub fn submit(&mut self, request: &WorkerRequest, id: u64, list: bool) {
        self.queue.push_back((id, request.to_line(), list));
        self.dispatch();
    }

    /// Forgets a request (its client went away); its worker connection is
    /// closed if it is still busy with it, since the reply can't be matched.
    pub fn cancel(&mut self, id: u64) {
        self.queue.retain(|(q, _, _)| *q != id);
        let tokens: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.busy.is_some_and(|(b, _, _)| b == id))
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            self.drop_conn(t);
        }
    }

    fn dispatch(&mut self) {
        while let Some((id, line, list)) = self.queue.front().cloned() {
            let token = match self.conns.iter().find(|(_, c)| c.busy.is_none()).map(|(t, _)| *t) {
                Some(t) => t,
                None if self.conns.len() < self.max => match self.connect() {
                    Ok(t) => t,
                    Err(e) => {
                        self.queue.pop_front();
                        self.events.push(WorkerEvent::Failed {
                            id,
                            reason: format!("connect({}) failed: {e}", self.path.display()),
                        });
                        continue;
                    }
                },
                None => return,
            };
            self.queue.pop_front();
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.busy = Some((id, Instant::now(), list));
                conn.output.extend_from_slice(line.as_bytes());
            }
            self.flush(token);
        }
    }

    fn connect(&mut self) -> std::io::Result<usize> {
        let mut stream = UnixStream::connect(&self.path)?;
        let token = self.next_token;
        self.next_token += 1;
        self.poll.registry().register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)?;
        let conn = Conn {
            stream,
            output: self.hello.clone().into_bytes(),
            input: Vec::new(),
            busy: None,
            idle_since: Instant::now(),
        };
        self.conns.insert(token, conn);
        Ok(token)
    }

    fn flush(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        while !conn.output.is_empty() {
            match conn.stream.write(&conn.output) {
                Ok(0) => break,
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Not connected yet, or the buffer is full: the writable
                // event brings us back.
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => return,
                Err(e) => {
                    let reason = format!("write to auth-worker failed: {e}");
                    self.fail_conn(token, reason);
                    return;
                }
            }
        }
    }

    fn drop_conn(&mut self, token: usize) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    fn fail_conn(&mut self, token: usize, reason: String) {
        if let Some(conn) = self.conns.get(&token) {
            if let Some((id, _, _)) = conn.busy {
                self.events.push(WorkerEvent::Failed { id, reason });
            }
        }
        self.drop_conn(token);
    }

    fn read(&mut self, token: usize) {
        let mut buf = [0u8; 16384];
        let mut closed = None;
        {
            let Some(conn) = self.conns.get_mut(&token) else { return };
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = Some("auth-worker disconnected".to_string());
                        break;
                    }
                    Ok(n) => conn.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        closed = Some(format!("read from auth-worker failed: {e}"));
                        break;
                    }
                }
            }
            while let Some(pos) = conn.input.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = conn.input.drain(..=pos).collect();
                let Some(reply) = WorkerReply::parse(&line) else {
                    closed = Some("auth-worker sent an invalid line".into());
                    break;
                };
                let finished = match (&reply, conn.busy) {
                    (WorkerReply::Log { .. } | WorkerReply::List { .. }, _) => false,
                    (WorkerReply::Done { .. }, _) => true,
                    (_, Some((_, _, list))) => !list,
                    (_, None) => false,
                };
                self.events.push(WorkerEvent::Reply(reply));
                if finished {
                    conn.busy = None;
                    conn.idle_since = Instant::now();
                }
            }
            if conn.input.len() > MAX_LINE {
                closed = Some("auth-worker sent a too long line".into());
            }
        }
        if let Some(reason) = closed {
            self.fail_conn(token, reason);
        }
    }

    /// Handles socket events and timeouts; returns what happened.
    pub fn poll(&mut self) -> Vec<WorkerEvent> {
        let mut events = Events::with_capacity(64);
        loop {
            if self.poll.poll(&mut events, Some(Duration::ZERO)).is_err() {
                break;
            }
            if events.is_empty() {
                break;
            }
            for event in events.iter() {
                let token = event.token().0;
                if event.is_writable() {
                    self.flush(token);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(token);
                }
            }
        }
        let now = Instant::now();
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| match c.busy {
                Some((_, since, _)) => now.duration_since(since) >= LOOKUP_TIMEOUT,
                None => now.duration_since(c.idle_since) >= MAX_IDLE,
            })
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            let secs = LOOKUP_TIMEOUT.as_secs();
            self.fail_conn(token, format!("auth-worker lookup timed out after {secs} secs"));
        }
        self.dispatch();
        std::mem::take(&mut self.events)
    }

    /// When [`WorkerPool::poll`] must run next for timeouts.
    pub fn next_deadline(&self) -> Option<Instant> {
        let busy =
            self.conns.values().filter_map(|c| c.busy.map(|(_, since, _)| since + LOOKUP_TIMEOUT)).min();
        if !self.events.is_empty() {
            return Some(Instant::now());
        }
        busy
    }
}
