//! The login → post-login handoff record (ours; shared/DESIGN.md §4.2).
//!
//! After auth says OK, the login process connects to the post-login
//! service's socket (`login/imap`, `login/pop3`, relative to its chroot)
//! and sends one record, length-prefixed, in the same `sendmsg` as the
//! client fd (SCM_RIGHTS). Under TLS the fd is one end of a socketpair the
//! login process keeps proxying ([`crate::proxy`]). The post-login process
//! trusts nothing in it but what auth-master confirms: it sends
//! `REQUEST <auth_id> <login pid> … <cookie>` to auth-master and gets the
//! user from there. The `user` here is for log lines only.
//!
//! Wire layout (all integers big-endian):
//! `"DCLH"` magic, u16 version (1), u32 length of what follows, then
//! u32 auth_pid, u32 auth_id, 16-byte cookie, u32 login_pid,
//! remote address, local address (each: u8 family 4|6|0, 4/16/0 address
//! bytes, u16 port), u8 flags, then u16-prefixed `user`, `session_id`,
//! `prefix` (IMAP: `0`|`1` + tag; POP3 empty) and a u32-prefixed
//! `client_input` (already-read client bytes, at most [`MAX_CLIENT_INPUT`]).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

pub const MAGIC: &[u8; 4] = b"DCLH";
pub const VERSION: u16 = 1;
/// Most already-read client input a record carries (Dovecot's limit is
/// 1218 bytes; a pipelining client after SASL-IR can send more).
pub const MAX_CLIENT_INPUT: usize = 16 * 1024;
/// Most bytes a whole record may take.
pub const MAX_RECORD: usize = MAX_CLIENT_INPUT + 4096;
/// How long the login process waits for the post-login reply (Dovecot: 90 s).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// Flag bits.
pub const FLAG_SECURED: u8 = 1 << 0;
pub const FLAG_TLS: u8 = 1 << 1;
pub const FLAG_IMPLICIT_TLS: u8 = 1 << 2;
/// The fd is a socketpair end; the login process proxies TLS behind it.
pub const FLAG_TLS_PROXIED: u8 = 1 << 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRecord {
    pub auth_pid: u32,
    pub auth_id: u32,
    pub cookie: [u8; 16],
    pub login_pid: u32,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub flags: u8,
    pub user: String,
    pub session_id: String,
    pub prefix: Vec<u8>,
    pub client_input: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandoffError {
    #[error("handoff record: bad magic")]
    BadMagic,
    #[error("handoff record: unsupported version {0}")]
    Version(u16),
    #[error("handoff record: truncated at {what}")]
    Truncated { what: &'static str },
    #[error("handoff record: {what} too long ({len} bytes)")]
    TooLong { what: &'static str, len: usize },
    #[error("handoff record: bad address family {0}")]
    Family(u8),
    #[error("handoff record: {0} is not UTF-8")]
    Utf8(&'static str),
    #[error("handoff record: {0} trailing bytes")]
    Trailing(usize),
}

impl HandoffRecord {
    pub fn encode(&self) -> Result<Vec<u8>, HandoffError> {
        if self.client_input.len() > MAX_CLIENT_INPUT {
            return Err(HandoffError::TooLong { what: "client input", len: self.client_input.len() });
        }
        let mut body = Vec::with_capacity(128 + self.client_input.len());
        body.extend(self.auth_pid.to_be_bytes());
        body.extend(self.auth_id.to_be_bytes());
        body.extend(self.cookie);
        body.extend(self.login_pid.to_be_bytes());
        put_addr(&mut body, self.remote);
        put_addr(&mut body, self.local);
        body.push(self.flags);
        for (what, field) in [
            ("user", self.user.as_bytes()),
            ("session id", self.session_id.as_bytes()),
            ("prefix", self.prefix.as_slice()),
        ] {
            let len =
                u16::try_from(field.len()).map_err(|_| HandoffError::TooLong { what, len: field.len() })?;
            body.extend(len.to_be_bytes());
            body.extend(field);
        }
        body.extend((self.client_input.len() as u32).to_be_bytes());
        body.extend(&self.client_input);
        let mut out = Vec::with_capacity(10 + body.len());
        out.extend(MAGIC);
        out.extend(VERSION.to_be_bytes());
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        Ok(out)
    }

    /// Decodes a whole record (`Ok(None)`: need more bytes).
    pub fn decode(buf: &[u8]) -> Result<Option<(HandoffRecord, usize)>, HandoffError> {
        if buf.len() < 10 {
            if !MAGIC.starts_with(&buf[..buf.len().min(4)]) {
                return Err(HandoffError::BadMagic);
            }
            return Ok(None);
        }
        if &buf[..4] != MAGIC {
            return Err(HandoffError::BadMagic);
        }
        let version = u16::from_be_bytes([buf[4], buf[5]]);
        if version != VERSION {
            return Err(HandoffError::Version(version));
        }
        let len = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]) as usize;
        if len > MAX_RECORD {
            return Err(HandoffError::TooLong { what: "record", len });
        }
        if buf.len() < 10 + len {
            return Ok(None);
        }
        let mut r = Reader { buf: &buf[10..10 + len] };
        let auth_pid = r.u32("auth pid")?;
        let auth_id = r.u32("auth id")?;
        let mut cookie = [0u8; 16];
        cookie.copy_from_slice(r.take(16, "cookie")?);
        let login_pid = r.u32("login pid")?;
        let remote = r.addr()?;
        let local = r.addr()?;
        let flags = r.take(1, "flags")?[0];
        let user = String::from_utf8(r.short("user")?.to_vec()).map_err(|_| HandoffError::Utf8("user"))?;
        let session_id = String::from_utf8(r.short("session id")?.to_vec())
            .map_err(|_| HandoffError::Utf8("session id"))?;
        let prefix = r.short("prefix")?.to_vec();
        let input_len = r.u32("client input length")? as usize;
        if input_len > MAX_CLIENT_INPUT {
            return Err(HandoffError::TooLong { what: "client input", len: input_len });
        }
        let client_input = r.take(input_len, "client input")?.to_vec();
        if !r.buf.is_empty() {
            return Err(HandoffError::Trailing(r.buf.len()));
        }
        let record = HandoffRecord {
            auth_pid,
            auth_id,
            cookie,
            login_pid,
            remote,
            local,
            flags,
            user,
            session_id,
            prefix,
            client_input,
        };
        Ok(Some((record, 10 + len)))
    }

    /// The cookie as auth-master's REQUEST wants it (32 hex digits).
    pub fn cookie_hex(&self) -> String {
        self.cookie.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Connects to the post-login socket and sends `record` with `client_fd`.
/// Blocking, bounded by `timeout`; the post-login side closes the
/// connection once it has taken over (or answers with an error line).
pub fn send(
    socket_path: &Path,
    record: &HandoffRecord,
    client_fd: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<UnixStream, SendError> {
    let bytes = record.encode()?;
    let stream = UnixStream::connect(socket_path)
        .map_err(|source| SendError::Connect { path: socket_path.display().to_string(), source })?;
    stream.set_write_timeout(Some(timeout)).map_err(SendError::Io)?;
    stream.set_read_timeout(Some(timeout)).map_err(SendError::Io)?;
    let sent = dovecote_master::sys::send_with_fds(stream.as_fd(), &bytes, &[client_fd])
        .map_err(|e| SendError::Io(e.into()))?;
    // The fd went with the first byte; the rest is plain data.
    (&stream).write_all(&bytes[sent..]).map_err(SendError::Io)?;
    Ok(stream)
}

#[derive(Debug, Error)]
pub enum SendError {
    #[error(transparent)]
    Record(#[from] HandoffError),
    #[error("connect({path}) failed: {source}")]
    Connect { path: String, source: std::io::Error },
    #[error("sending the handoff: {0}")]
    Io(std::io::Error),
}

fn put_addr(out: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        None => out.push(0),
        Some(SocketAddr::V4(a)) => {
            out.push(4);
            out.extend(a.ip().octets());
            out.extend(a.port().to_be_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            out.push(6);
            out.extend(a.ip().octets());
            out.extend(a.port().to_be_bytes());
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HandoffError> {
        if self.buf.len() < n {
            return Err(HandoffError::Truncated { what });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, HandoffError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn short(&mut self, what: &'static str) -> Result<&'a [u8], HandoffError> {
        let b = self.take(2, what)?;
        let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        self.take(len, what)
    }

    fn addr(&mut self) -> Result<Option<SocketAddr>, HandoffError> {
        let family = self.take(1, "address family")?[0];
        let ip: IpAddr = match family {
            0 => return Ok(None),
            4 => {
                let b = self.take(4, "address")?;
                Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16, "address")?);
                Ipv6Addr::from(a).into()
            }
            other => return Err(HandoffError::Family(other)),
        };
        let p = self.take(2, "port")?;
        Ok(Some(SocketAddr::new(ip, u16::from_be_bytes([p[0], p[1]]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HandoffRecord {
        HandoffRecord {
            auth_pid: 4242,
            auth_id: 7,
            cookie: *b"0123456789abcdef",
            login_pid: 99,
            remote: Some("192.0.2.7:51234".parse().unwrap()),
            local: Some("[2001:db8::1]:993".parse().unwrap()),
            flags: FLAG_SECURED | FLAG_TLS | FLAG_TLS_PROXIED,
            user: "alice".into(),
            session_id: "oB42MhBheOJ/AAAB".into(),
            prefix: b"0a1".to_vec(),
            client_input: b"a2 SELECT INBOX\r\n".to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample().encode().unwrap();
        assert_eq!(&bytes[..6], b"DCLH\0\x01");
        let (decoded, used) = HandoffRecord::decode(&bytes).unwrap().unwrap();
        assert_eq!(decoded, sample());
        assert_eq!(used, bytes.len());
        assert_eq!(decoded.cookie_hex(), "30313233343536373839616263646566");
        for cut in 0..bytes.len() {
            assert_eq!(HandoffRecord::decode(&bytes[..cut]), Ok(None));
        }
        let none = HandoffRecord { remote: None, local: None, ..sample() };
        assert_eq!(HandoffRecord::decode(&none.encode().unwrap()).unwrap().unwrap().0, none);
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(HandoffRecord::decode(b"XXXX"), Err(HandoffError::BadMagic));
        let mut bytes = sample().encode().unwrap();
        bytes[5] = 9;
        assert_eq!(HandoffRecord::decode(&bytes), Err(HandoffError::Version(9)));
        let mut bytes = sample().encode().unwrap();
        bytes[6..10].copy_from_slice(&(MAX_RECORD as u32 + 1).to_be_bytes());
        assert!(matches!(HandoffRecord::decode(&bytes), Err(HandoffError::TooLong { .. })));
        let mut bytes = sample().encode().unwrap();
        // Claim a longer body than the fields use: trailing bytes.
        bytes.push(0);
        let len = (bytes.len() - 10) as u32;
        bytes[6..10].copy_from_slice(&len.to_be_bytes());
        assert_eq!(HandoffRecord::decode(&bytes), Err(HandoffError::Trailing(1)));
        let big = HandoffRecord { client_input: vec![0; MAX_CLIENT_INPUT + 1], ..sample() };
        assert!(big.encode().is_err());
    }

    #[test]
    fn passes_an_fd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imap");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (mine, theirs) = UnixStream::pair().unwrap();
        let sender = std::thread::spawn(move || {
            let _conn = send(&path, &sample(), theirs.as_fd(), Duration::from_secs(5)).unwrap();
        });
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; MAX_RECORD];
        let mut got = Vec::new();
        let mut fds = Vec::new();
        loop {
            let (n, f) = dovecote_master::sys::recv_with_fds(conn.as_fd(), &mut buf, 1).unwrap();
            got.extend_from_slice(&buf[..n]);
            fds.extend(f);
            if let Some((record, _)) = HandoffRecord::decode(&got).unwrap() {
                assert_eq!(record, sample());
                break;
            }
            assert!(n > 0);
        }
        sender.join().unwrap();
        assert_eq!(fds.len(), 1);
        let passed = UnixStream::from(fds.pop().unwrap());
        (&passed).write_all(b"hello").unwrap();
        let mut read = [0u8; 5];
        std::io::Read::read_exact(&mut &mine, &mut read).unwrap();
        assert_eq!(&read, b"hello");
    }
}
