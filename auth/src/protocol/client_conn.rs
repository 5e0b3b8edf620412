//! Blocking auth-client: connects to an auth-client or login socket, does the
//! handshake and runs SASL exchanges one at a time. For login processes,
//! tests and tools; an event-loop user drives [`super::client`] itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::client::{AuthRequest, ClientLine, ServerLine};
use super::{Fields, ProtocolError, CLIENT_MAX_LINE, CLIENT_VERSION};
use crate::scheme::{base64_decode, base64_encode};

/// Errors from a blocking auth connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket error (connect, read, write, timeout).
    #[error("auth socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("auth server {0} disconnected")]
    Disconnected(String),
    /// A line could not be parsed.
    #[error("auth server {path} sent an invalid line: {source}")]
    Protocol {
        /// Socket path.
        path: String,
        /// Cause.
        source: ProtocolError,
    },
    /// A valid line that makes no sense here.
    #[error("auth server {path}: unexpected {what}")]
    Unexpected {
        /// Socket path.
        path: String,
        /// What arrived.
        what: String,
    },
    /// Incompatible major version.
    #[error("auth server {path} speaks major version {major}, we need 1")]
    Version {
        /// Socket path.
        path: String,
        /// Its major version.
        major: u32,
    },
}

/// A line-oriented connection with Dovecot's line length limit.
pub(crate) struct LineConn {
    pub(crate) path: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    max_line: usize,
}

impl LineConn {
    pub(crate) fn connect(path: &Path, max_line: usize) -> Result<Self, ConnError> {
        let display = path.display().to_string();
        let io = |source| ConnError::Io { path: display.clone(), source };
        let stream = UnixStream::connect(path).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(LineConn { path: display.clone(), reader: BufReader::new(stream), writer, max_line })
    }

    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ConnError> {
        self.writer
            .set_read_timeout(timeout)
            .map_err(|source| ConnError::Io { path: self.path.clone(), source })
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.writer.write_all(bytes).map_err(|source| ConnError::Io { path: self.path.clone(), source })
    }

    /// Next line without its newline.
    pub(crate) fn read_line(&mut self) -> Result<Vec<u8>, ConnError> {
        let mut line = Vec::new();
        let limit = u64::try_from(self.max_line + 1).unwrap_or(u64::MAX);
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|source| ConnError::Io { path: self.path.clone(), source })?;
        if n == 0 {
            return Err(ConnError::Disconnected(self.path.clone()));
        }
        if line.pop() != Some(b'\n') {
            return Err(if line.len() >= self.max_line {
                ConnError::Protocol {
                    path: self.path.clone(),
                    source: ProtocolError::LineTooLong(line.len()),
                }
            } else {
                ConnError::Disconnected(self.path.clone())
            });
        }
        Ok(line)
    }

    pub(crate) fn protocol(&self, source: ProtocolError) -> ConnError {
        ConnError::Protocol { path: self.path.clone(), source }
    }

    pub(crate) fn unexpected(&self, what: impl std::fmt::Debug) -> ConnError {
        ConnError::Unexpected { path: self.path.clone(), what: format!("{what:?}") }
    }
}

/// What the server announced in its handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handshake {
    /// Server version.
    pub version: (u32, u32),
    /// Mechanisms with their flags.
    pub mechs: Vec<(String, Vec<String>)>,
    /// Auth process pid.
    pub spid: u32,
    /// Connection id.
    pub cuid: u32,
    /// Connection cookie (hex), used by the post-login REQUEST.
    pub cookie: String,
}

/// Final result of an authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// `OK`: fields include `user=`.
    Ok {
        /// Request id (the post-login REQUEST needs it).
        id: u32,
        /// Fields as sent.
        fields: Fields,
    },
    /// `FAIL`.
    Fail {
        /// Request id.
        id: u32,
        /// Fields (`user=`, `code=`, `reason=`, `temp`).
        fields: Fields,
    },
}

/// A blocking auth-client connection.
pub struct AuthClientConnection {
    conn: LineConn,
    handshake: Handshake,
    next_id: u32,
}

impl AuthClientConnection {
    /// Connects, sends `VERSION` and `CPID <client_pid>` and reads the
    /// server handshake up to `DONE`.
    pub fn connect(path: &Path, client_pid: u32) -> Result<Self, ConnError> {
        let mut conn = LineConn::connect(path, CLIENT_MAX_LINE)?;
        let mut hello = ClientLine::Version { major: CLIENT_VERSION.0, minor: CLIENT_VERSION.1 }.to_bytes();
        ClientLine::Cpid(client_pid).write(&mut hello);
        conn.send(&hello)?;
        let mut handshake = Handshake::default();
        loop {
            let line = conn.read_line()?;
            match ServerLine::parse(&line).map_err(|e| conn.protocol(e))? {
                ServerLine::Version { major, minor } => {
                    if major != 1 {
                        return Err(ConnError::Version { path: conn.path.clone(), major });
                    }
                    handshake.version = (major, minor);
                }
                ServerLine::Mech { name, flags } => handshake.mechs.push((name, flags)),
                ServerLine::Spid(pid) => handshake.spid = pid,
                ServerLine::Cuid(id) => handshake.cuid = id,
                ServerLine::Cookie(c) => handshake.cookie = c,
                ServerLine::Done => break,
                other => return Err(conn.unexpected(other)),
            }
        }
        Ok(AuthClientConnection { conn, handshake, next_id: 1 })
    }

    /// The server's handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// Read timeout for replies (`None` = wait forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ConnError> {
        self.conn.set_timeout(timeout)
    }

    /// Sends `AUTH` and returns its id. `params` should start with
    /// `service=`; `initial` becomes `resp=`.
    pub fn begin(&mut self, mech: &str, params: Fields, initial: Option<&[u8]>) -> Result<u32, ConnError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let req = AuthRequest { id, mech: mech.into(), params, resp: initial.map(base64_encode) };
        self.conn.send(&ClientLine::Auth(req).to_bytes())?;
        Ok(id)
    }

    /// Sends `CONT` with raw (not yet encoded) data.
    pub fn send_cont(&mut self, id: u32, data: &[u8]) -> Result<(), ConnError> {
        self.conn.send(&ClientLine::Cont { id, data: base64_encode(data) }.to_bytes())
    }

    /// Sends `CANCEL`.
    pub fn cancel(&mut self, id: u32) -> Result<(), ConnError> {
        self.conn.send(&ClientLine::Cancel(id).to_bytes())
    }

    /// Reads the next server line.
    pub fn read_reply(&mut self) -> Result<ServerLine, ConnError> {
        let line = self.conn.read_line()?;
        ServerLine::parse(&line).map_err(|e| self.conn.protocol(e))
    }

    /// Runs a whole exchange: `respond` turns each decoded server challenge
    /// into the next response (`None` cancels and reports a failure).
    pub fn authenticate(
        &mut self,
        mech: &str,
        params: Fields,
        initial: Option<&[u8]>,
        mut respond: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<AuthOutcome, ConnError> {
        let id = self.begin(mech, params, initial)?;
        loop {
            match self.read_reply()? {
                ServerLine::Cont { id: rid, data } if rid == id => {
                    let challenge =
                        base64_decode(&data).ok_or_else(|| self.conn.unexpected("invalid base64 in CONT"))?;
                    match respond(&challenge) {
                        Some(resp) => self.send_cont(id, &resp)?,
                        None => {
                            self.cancel(id)?;
                            return Ok(AuthOutcome::Fail {
                                id,
                                fields: Fields::new().with("reason", "cancelled"),
                            });
                        }
                    }
                }
                ServerLine::Ok { id: rid, fields } if rid == id => return Ok(AuthOutcome::Ok { id, fields }),
                ServerLine::Fail { id: rid, fields } if rid == id => {
                    return Ok(AuthOutcome::Fail { id, fields })
                }
                // Replies to requests we no longer wait for are dropped.
                other if other.request_id().is_some() => continue,
                other => return Err(self.conn.unexpected(other)),
            }
        }
    }

    /// PLAIN with an initial response.
    pub fn plain(&mut self, user: &str, password: &str, params: Fields) -> Result<AuthOutcome, ConnError> {
        let resp = crate::mech::client::plain_response("", user, password);
        self.authenticate("PLAIN", params, Some(&resp), |_| Some(Vec::new()))
    }
}
