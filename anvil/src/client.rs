//! The blocking anvil client other processes link: one connection, one
//! query at a time, each bounded by a timeout so a stuck anvil costs a
//! caller at most [`QUERY_TIMEOUT`] (Dovecot's anvil-client uses 5 s;
//! anvil only does in-memory lookups, so a short bound is enough). Callers
//! treat every error as "anvil unavailable" and carry on as Dovecot does:
//! a failed LOOKUP lets the login in, a failed PENALTY-GET means no delay.

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

use crate::protocol::{Command, HANDSHAKE, MAX_LINE};

/// Longest wait for one reply (or one write).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Names the fd number of the anvil connection the master passed
/// (same text as `dovecote_master::contract::ENV_ANVIL_FD`).
pub const ENV_ANVIL_FD: &str = "DOVECOTE_ANVIL_FD";

#[derive(Debug, Error)]
pub enum AnvilError {
    #[error("connect({path}) failed: {source}")]
    Connect { path: String, source: io::Error },
    #[error("anvil connection: {0}")]
    Io(#[from] io::Error),
    #[error("anvil closed the connection")]
    Closed,
    #[error("invalid reply from anvil: {0:?}")]
    Reply(String),
}

pub struct AnvilClient {
    stream: UnixStream,
    /// Bytes read past the last reply line.
    pending: Vec<u8>,
}

impl AnvilClient {
    /// Connects to an anvil socket by path (processes that can open it
    /// themselves: the post-login services, tests).
    pub fn connect(path: &Path) -> Result<AnvilClient, AnvilError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| AnvilError::Connect { path: path.display().to_string(), source })?;
        AnvilClient::from_stream(stream)
    }

    /// Adopts the connection the master passed (see the crate docs), if
    /// this process was given one. Takes the variable out of the
    /// environment so the fd is adopted at most once.
    pub fn from_master() -> Option<Result<AnvilClient, AnvilError>> {
        let fd: i32 = std::env::var(ENV_ANVIL_FD).ok()?.parse().ok()?;
        std::env::remove_var(ENV_ANVIL_FD);
        // The fd must be one the master placed for us: at or above
        // listener fd 6, and an open socket.
        if fd < 6 || nix_is_socket(fd).is_err() {
            return None;
        }
        // SAFETY: the master's spawn contract placed an open, connected
        // socket at this fd number, nothing else in the process owns it
        // (the variable was removed above, so this runs once for it), and
        // it is checked to be an open socket just before.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Some(AnvilClient::from_stream(UnixStream::from(owned)))
    }

    /// Sends the handshake on a connected stream.
    pub fn from_stream(stream: UnixStream) -> Result<AnvilClient, AnvilError> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(QUERY_TIMEOUT))?;
        stream.set_write_timeout(Some(QUERY_TIMEOUT))?;
        let mut client = AnvilClient { stream, pending: Vec::new() };
        client.write_line(&format!("{HANDSHAKE}\n"))?;
        Ok(client)
    }

    /// `LOOKUP`: sessions `ident` has open now.
    pub fn lookup(&mut self, ident: &str) -> Result<u32, AnvilError> {
        let reply = self.query(&Command::Lookup { ident: ident.to_owned() })?;
        reply.parse().map_err(|_| AnvilError::Reply(reply))
    }

    /// `CONNECT`: one more session for `ident`, owned by this connection.
    pub fn connect_session(&mut self, pid: u32, ident: &str) -> Result<(), AnvilError> {
        self.send(&Command::Connect { pid, ident: ident.to_owned() })
    }

    /// `DISCONNECT`: that session ended.
    pub fn disconnect_session(&mut self, pid: u32, ident: &str) -> Result<(), AnvilError> {
        self.send(&Command::Disconnect { pid, ident: ident.to_owned() })
    }

    /// `PENALTY-GET`: `(penalty, last_penalty unix time)`.
    pub fn penalty_get(&mut self, ident: &str) -> Result<(u32, u64), AnvilError> {
        let reply = self.query(&Command::PenaltyGet { ident: ident.to_owned() })?;
        let mut words = reply.split(' ');
        match (words.next().map(str::parse), words.next().map(str::parse), words.next()) {
            (Some(Ok(p)), Some(Ok(t)), None) => Ok((p, t)),
            _ => Err(AnvilError::Reply(reply)),
        }
    }

    /// `PENALTY-INC`.
    pub fn penalty_inc(&mut self, ident: &str, checksum: u32, value: u32) -> Result<(), AnvilError> {
        self.send(&Command::PenaltyInc { ident: ident.to_owned(), checksum, value })
    }

    /// `PENALTY-SET-EXPIRE-SECS`.
    pub fn penalty_set_expire_secs(&mut self, secs: u32) -> Result<(), AnvilError> {
        self.send(&Command::PenaltySetExpireSecs { secs })
    }

    /// Sends a command that has no reply.
    pub fn send(&mut self, command: &Command) -> Result<(), AnvilError> {
        self.write_line(&command.to_line())
    }

    /// Sends a command and reads its one-line reply.
    pub fn query(&mut self, command: &Command) -> Result<String, AnvilError> {
        self.write_line(&command.to_line())?;
        self.read_line()
    }

    fn write_line(&mut self, line: &str) -> Result<(), AnvilError> {
        self.stream.write_all(line.as_bytes())?;
        Ok(())
    }

    /// Reads one reply line (without its newline).
    pub fn read_line(&mut self) -> Result<String, AnvilError> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line[..pos]).into_owned();
                return Ok(text);
            }
            if self.pending.len() > MAX_LINE {
                return Err(AnvilError::Reply("over-long line".into()));
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(AnvilError::Closed),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn nix_is_socket(fd: i32) -> io::Result<()> {
    // fstat, not /proc: login processes run chrooted without /proc.
    let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    if st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFSOCK {
        Ok(())
    } else {
        Err(io::Error::other("not a socket"))
    }
}
