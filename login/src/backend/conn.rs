//! The login process's socket to a proxy backend: a non-blocking TCP
//! connection registered in the login service's own `mio::Poll`, with an
//! optional rustls client session on top (`ssl=yes` at connect,
//! `starttls=yes` after the backend's OK). Reads and writes never block;
//! unwritten bytes wait in `output` until the socket is writable again.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Moves decrypted bytes into `input`; true when the stream ended.
fn drain_plaintext(tls: &mut ClientConnection, input: &mut Input) -> bool {
    let mut buf = [0u8; 16384];
    loop {
        match tls.reader().read(&mut buf) {
            Ok(0) => {
                input.eof = true;
                return true;
            }
            Ok(n) => input.data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                // A TCP close without close_notify: what came before counts.
                input.eof = true;
                if input.error.is_none() && e.kind() != io::ErrorKind::UnexpectedEof {
                    input.error = Some(e.to_string());
                }
                return true;
            }
        }
    }
}

/// Most bytes read from the backend per readiness event.
const MAX_READ: usize = 256 * 1024;

/// What a read produced.
#[derive(Debug, Default)]
pub struct Input {
    /// Plaintext from the backend.
    pub data: Vec<u8>,
    /// The backend closed (or the connection failed).
    pub eof: bool,
    /// A read or TLS error, for the log.
    pub error: Option<String>,
    /// Reading stopped at the per-call limit: more is waiting, and the
    /// socket (edge-triggered) won't say so again.
    pub more: bool,
}

pub struct BackendConn {
    stream: TcpStream,
    pub token: Token,
    tls: Option<ClientConnection>,
    /// Ciphertext (or plaintext without TLS) not yet taken by the socket.
    output: Vec<u8>,
    /// Plaintext bytes written to / read from the backend (`in=`/`out=` of
    /// the disconnect log line count them from the client's side).
    pub sent: u64,
    pub received: u64,
}

impl BackendConn {
    /// Starts a non-blocking connect; completion shows as writability,
    /// then [`BackendConn::connect_result`] tells whether it worked.
    pub fn connect(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<BackendConn> {
        let mut stream = TcpStream::connect(addr)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(BackendConn { stream, token, tls: None, output: Vec::new(), sent: 0, received: 0 })
    }

    /// `Ok(true)` once connected, `Ok(false)` while still connecting, the
    /// error when the connect failed (`SO_ERROR`).
    pub fn connect_result(&self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Our end's address (`local=` of the connect error).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }

    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }

    /// Starts TLS towards the backend (`server_name` = `host`).
    pub fn start_tls(&mut self, config: Arc<ClientConfig>, host: &str) -> Result<(), String> {
        let name =
            ServerName::try_from(host.to_owned()).map_err(|e| format!("invalid host name {host}: {e}"))?;
        let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        // Unlimited: rustls would otherwise drop what exceeds 64 KiB of
        // one write; the relay bounds what it reads instead.
        conn.set_buffer_limit(None);
        self.tls = Some(conn);
        self.flush();
        Ok(())
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Queues plaintext for the backend and writes what the socket takes.
    pub fn send(&mut self, data: &[u8]) {
        self.sent += data.len() as u64;
        match self.tls.as_mut() {
            Some(tls) => {
                let _ = tls.writer().write_all(data);
            }
            None => self.output.extend_from_slice(data),
        }
        self.flush();
    }

    /// Bytes still waiting for the socket.
    pub fn pending(&self) -> usize {
        self.output.len()
    }

    /// Writes pending output; false when the socket failed.
    pub fn flush(&mut self) -> bool {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                if tls.write_tls(&mut self.output).is_err() {
                    break;
                }
            }
        }
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return false,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(_) => return false,
            }
        }
        true
    }

    /// Reads what the backend sent (decrypted under TLS).
    pub fn read(&mut self) -> Input {
        let mut input = Input::default();
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    input.eof = true;
                    break;
                }
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_READ {
                        input.more = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) => {
                    input.eof = true;
                    input.error = Some(e.to_string());
                    break;
                }
            }
        }
        match self.tls.as_mut() {
            None => input.data = raw,
            Some(tls) => {
                // Feed the records in pieces and take the plaintext out
                // after each: rustls refuses to buffer much of it.
                let mut slice = raw.as_slice();
                loop {
                    if !slice.is_empty() {
                        if let Err(e) = tls.read_tls(&mut slice) {
                            input.error = Some(e.to_string());
                            input.eof = true;
                            break;
                        }
                        if let Err(e) = tls.process_new_packets() {
                            input.error = Some(e.to_string());
                            input.eof = true;
                            break;
                        }
                    }
                    if drain_plaintext(tls, &mut input) || slice.is_empty() {
                        break;
                    }
                }
                // Handshake replies and alerts.
                self.flush();
            }
        }
        self.received += input.data.len() as u64;
        input
    }

    /// Says goodbye under TLS; the socket closes when dropped.
    pub fn close(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
        }
        self.flush();
    }
}
