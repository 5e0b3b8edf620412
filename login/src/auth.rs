//! Talking SASL to the auth service over `login/login` (Dovecot's
//! auth-client protocol 1.2, shared/reference §5.1).
//!
//! [`AuthClient`] is what the login service needs; [`AuthConnection`] is
//! a non-blocking implementation over the protocol. It is written here,
//! not taken from `dovecote_auth`, so that `imap-login` links no passdb
//! driver code (no SQL, LDAP or PAM) — see the crate report.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use crate::sasl::{AuthReply, Mechanism};

/// Longest auth-client line (`AUTH_CLIENT_MAX_LINE_LENGTH`).
pub const MAX_LINE: usize = 16384;

/// What the login process tells auth about a connection.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// `imap`, `pop3`.
    pub service: String,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub secured: bool,
    pub tls: bool,
    pub session: String,
    /// The client presented a certificate that verified.
    pub valid_client_cert: bool,
    /// Its `ssl_cert_username_field` value.
    pub cert_username: Option<String>,
}

/// What auth said OK with, needed for the handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub auth_pid: u32,
    pub auth_id: u32,
    pub cookie: [u8; 16],
}

/// An auth reply for one of our clients.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The login-side client id given to [`AuthClient::begin`].
    pub client: usize,
    pub reply: AuthReply,
    /// Set with [`AuthReply::Success`].
    pub grant: Option<Grant>,
    /// `user=` of an OK or FAIL: the name the log lines show.
    pub user: Option<String>,
}

/// The auth service as a login process uses it. Non-blocking: replies come
/// out of [`AuthClient::readable`].
pub trait AuthClient {
    /// The mechanisms auth announced, once its handshake is done.
    fn mechanisms(&self) -> Option<Vec<Mechanism>>;
    /// Starts a request for login client `client`.
    fn begin(
        &mut self,
        client: usize,
        mechanism: &str,
        initial_response: Option<&str>,
        info: &RequestInfo,
    ) -> io::Result<()>;
    /// Sends the client's next response.
    fn cont(&mut self, client: usize, data: &str) -> io::Result<()>;
    /// Forgets the client's request.
    fn cancel(&mut self, client: usize);
    /// Reads what arrived (call when the connection is readable or writable).
    fn readable(&mut self) -> Vec<Reply>;
}

/// A non-blocking auth-client connection.
pub struct AuthConnection {
    path: PathBuf,
    stream: Option<UnixStream>,
    token: Token,
    input: Vec<u8>,
    output: Vec<u8>,
    mechanisms: Vec<Mechanism>,
    handshake_done: bool,
    spid: u32,
    cookie: [u8; 16],
    next_id: u32,
    /// auth request id → login client id.
    requests: HashMap<u32, usize>,
}

impl AuthConnection {
    /// Connects to `path` and sends `VERSION` + `CPID`; the handshake
    /// completes as replies arrive.
    pub fn connect(path: PathBuf, registry: &Registry, token: Token) -> io::Result<AuthConnection> {
        let mut stream = UnixStream::connect(&path)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let mut conn = AuthConnection {
            path,
            stream: Some(stream),
            token,
            input: Vec::new(),
            output: Vec::new(),
            mechanisms: Vec::new(),
            handshake_done: false,
            spid: 0,
            cookie: [0; 16],
            next_id: 1,
            requests: HashMap::new(),
        };
        conn.output.extend(format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id()).as_bytes());
        conn.flush();
        Ok(conn)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    fn flush(&mut self) {
        let Some(stream) = self.stream.as_mut() else { return };
        while !self.output.is_empty() {
            match stream.write(&self.output) {
                Ok(0) => break,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn send_line(&mut self, fields: &[String]) -> io::Result<()> {
        if self.stream.is_none() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "auth connection lost"));
        }
        self.output.extend(fields.join("\t").as_bytes());
        self.output.push(b'\n');
        self.flush();
        Ok(())
    }

    fn id_of(&self, client: usize) -> Option<u32> {
        self.requests.iter().find(|(_, c)| **c == client).map(|(id, _)| *id)
    }

    fn fail_all(&mut self) -> Vec<Reply> {
        self.stream = None;
        self.handshake_done = false;
        self.requests
            .drain()
            .map(|(_, client)| Reply { client, reply: AuthReply::Unavailable, grant: None, user: None })
            .collect()
    }

    fn handle_line(&mut self, line: &[u8], out: &mut Vec<Reply>) {
        let fields: Vec<String> = line.split(|b| *b == b'\t').map(unescape).collect();
        let word = fields.first().map(String::as_str).unwrap_or("");
        let id = || fields.get(1).and_then(|i| i.parse::<u32>().ok());
        match word {
            "MECH" => {
                let Some(name) = fields.get(1) else { return };
                let flags = &fields[2..];
                let plaintext = flags.iter().any(|f| f == "plaintext");
                let private = flags.iter().any(|f| f == "private");
                self.mechanisms.push(Mechanism::new(name, plaintext, private));
            }
            "SPID" => self.spid = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
            "COOKIE" => {
                if let Some(hex) = fields.get(1) {
                    decode_hex_into(hex, &mut self.cookie);
                }
            }
            "DONE" => self.handshake_done = true,
            "CONT" => {
                let (Some(id), Some(data)) = (id(), fields.get(2)) else { return };
                if let Some(client) = self.requests.get(&id) {
                    out.push(Reply {
                        client: *client,
                        reply: AuthReply::Continue(data.clone()),
                        grant: None,
                        user: None,
                    });
                }
            }
            "OK" => {
                let Some(id) = id() else { return };
                let Some(client) = self.requests.remove(&id) else { return };
                let mut user = String::new();
                let mut extra = Vec::new();
                for f in &fields[2..] {
                    let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
                    if k == "user" {
                        user = v.to_owned();
                    } else {
                        extra.push((k.to_owned(), v.to_owned()));
                    }
                }
                let grant = Grant { auth_pid: self.spid, auth_id: id, cookie: self.cookie };
                out.push(Reply {
                    client,
                    reply: AuthReply::Success { user: user.clone(), fields: extra },
                    grant: Some(grant),
                    user: Some(user),
                });
            }
            "FAIL" => {
                let Some(id) = id() else { return };
                let Some(client) = self.requests.remove(&id) else { return };
                let get = |key: &str| {
                    fields[2..]
                        .iter()
                        .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                        .map(str::to_owned)
                };
                let temporary = fields[2..].iter().any(|f| f == "temp");
                out.push(Reply {
                    client,
                    reply: AuthReply::Failure { code: get("code"), reason: get("reason"), temporary },
                    grant: None,
                    user: get("user"),
                });
            }
            _ => {}
        }
    }
}

impl AuthClient for AuthConnection {
    fn mechanisms(&self) -> Option<Vec<Mechanism>> {
        self.handshake_done.then(|| self.mechanisms.clone())
    }

    fn begin(
        &mut self,
        client: usize,
        mechanism: &str,
        initial_response: Option<&str>,
        info: &RequestInfo,
    ) -> io::Result<()> {
        // The request may go out before auth's handshake has arrived: auth
        // reads our VERSION/CPID first and answers lines in order, and its
        // SPID/COOKIE precede any OK, so a client that logs in right after
        // the greeting is served instead of refused.
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut f = vec![
            "AUTH".to_owned(),
            id.to_string(),
            mechanism.to_owned(),
            format!("service={}", info.service),
        ];
        if info.secured {
            f.push(if info.tls { "secured=tls".into() } else { "secured".into() });
        }
        if let Some(l) = info.local {
            f.push(format!("lip={}", l.ip()));
            f.push(format!("lport={}", l.port()));
        }
        if let Some(r) = info.remote {
            f.push(format!("rip={}", r.ip()));
            f.push(format!("rport={}", r.port()));
        }
        if !info.session.is_empty() {
            f.push(format!("session={}", escape(&info.session)));
        }
        if info.valid_client_cert {
            f.push("valid-client-cert".to_owned());
        }
        if let Some(name) = &info.cert_username {
            f.push(format!("cert_username={}", escape(name)));
        }
        if let Some(ir) = initial_response {
            f.push(if ir.is_empty() { "resp=".to_owned() } else { format!("resp={}", escape(ir)) });
        }
        self.requests.insert(id, client);
        self.send_line(&f)
    }

    fn cont(&mut self, client: usize, data: &str) -> io::Result<()> {
        let Some(id) = self.id_of(client) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no auth request"));
        };
        self.send_line(&["CONT".to_owned(), id.to_string(), escape(data)])
    }

    fn cancel(&mut self, client: usize) {
        if let Some(id) = self.id_of(client) {
            self.requests.remove(&id);
            let _ = self.send_line(&["CANCEL".to_owned(), id.to_string()]);
        }
    }

    fn readable(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        self.flush();
        let Some(stream) = self.stream.as_mut() else { return out };
        let mut buf = [0u8; 8192];
        let mut eof = false;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        while let Some(lf) = self.input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=lf).collect();
            self.handle_line(&line[..line.len() - 1], &mut out);
        }
        if self.input.len() > MAX_LINE || eof {
            out.extend(self.fail_all());
        }
        out
    }
}

/// Dovecot's tab escaping: `\001` → `\0011`, TAB → `\001t`, LF → `\001n`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\n' => out.push_str("\x01n"),
            '\r' => out.push_str("\x01r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(field: &[u8]) -> String {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == 1 && i + 1 < field.len() {
            out.push(match field[i + 1] {
                b'1' => 1,
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                other => other,
            });
            i += 2;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_hex_into(hex: &str, out: &mut [u8; 16]) {
    if hex.len() != 32 {
        return;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex.get(i * 2..i * 2 + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_with_a_fake_auth_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("login");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tAPOP\tprivate\nSPID\t77\nCUID\t1\nCOOKIE\t000102030405060708090a0b0c0d0e0f\nDONE\n").unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut lines = Vec::new();
            for _ in 0..3 {
                let mut l = String::new();
                std::io::BufRead::read_line(&mut r, &mut l).unwrap();
                lines.push(l);
            }
            s.write_all(b"OK\t1\tuser=alice\n").unwrap();
            lines
        });
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(8);
        let mut conn = AuthConnection::connect(path, poll.registry(), Token(0)).unwrap();
        while conn.mechanisms().is_none() {
            poll.poll(&mut events, Some(std::time::Duration::from_secs(5))).unwrap();
            conn.readable();
        }
        let mechs = conn.mechanisms().unwrap();
        assert_eq!(mechs, vec![Mechanism::new("PLAIN", true, false), Mechanism::new("APOP", false, true)]);
        let info = RequestInfo { service: "imap".into(), secured: true, tls: true, ..RequestInfo::default() };
        conn.begin(5, "PLAIN", Some("AGFsaWNlAHNlY3JldA=="), &info).unwrap();
        let replies = loop {
            poll.poll(&mut events, Some(std::time::Duration::from_secs(5))).unwrap();
            let r = conn.readable();
            if !r.is_empty() {
                break r;
            }
        };
        assert_eq!(replies[0].client, 5);
        assert_eq!(replies[0].reply, AuthReply::Success { user: "alice".into(), fields: vec![] });
        let grant = replies[0].grant.clone().unwrap();
        assert_eq!(grant.auth_pid, 77);
        assert_eq!(grant.cookie[15], 15);
        let lines = server.join().unwrap();
        assert_eq!(lines[0], "VERSION\t1\t2\n");
        assert!(lines[1].starts_with("CPID\t"));
        assert_eq!(lines[2], "AUTH\t1\tPLAIN\tservice=imap\tsecured=tls\tresp=AGFsaWNlAHNlY3JldA==\n");
    }
}
