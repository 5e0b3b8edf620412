//! One LMTP connection as a sans-IO state machine: bytes from the client
//! go into [`Session::input`], which answers with the bytes to send and
//! what the driver must do next (close, start TLS) plus log events. The
//! session never touches a socket; recipients are looked up and messages
//! delivered through the [`Backend`] the driver passes in, so the whole
//! protocol is unit-testable and fuzzable with a fake backend.
//!
//! Replies are Dovecot 2.3's, byte for byte (RFC 2033 with ENHANCEDSTATUSCODES,
//! PIPELINING, CHUNKING, 8BITMIME). After DATA (or `BDAT … LAST`) there is
//! one reply per accepted recipient, in RCPT order, and each `250` is sent
//! only after [`Backend::deliver`] returned — which promises the copy is
//! durable.

use std::net::IpAddr;

use crate::address::{split_detail, PathAndParams, PathError};
use crate::command::{self, Command};
use crate::data::{to_lf, DotDecoder};
use crate::headers::{trace_headers, Trace};
use crate::settings::{HdrDeliveryAddress, LmtpSettings};

/// Longest command line accepted.
pub const MAX_LINE: usize = 8192;

/// Dovecot's `MAIL_ERRSTR_CRITICAL_MSG`.
const CRITICAL_MSG: &str = "Internal error occurred. Refer to server log for more information.";

/// A recipient's userdb entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientUser {
    /// The user name userdb returned (it may differ from the one asked).
    pub name: String,
    /// The userdb fields as `key=value` (or bare `key`) texts, as on the
    /// auth-master wire.
    pub fields: Vec<String>,
}

/// The answer to a recipient lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(RecipientUser),
    NotFound,
    /// The userdb (or the uid checks) failed; the text goes to the log.
    TempFail(String),
}

/// What one delivery is asked to do.
#[derive(Debug)]
pub struct DeliveryRequest<'a> {
    pub user: &'a RecipientUser,
    /// Where to save (`INBOX`, or the detail mailbox).
    pub mailbox: &'a str,
    /// The whole message with the trace headers, LF line endings.
    pub message: &'a [u8],
    pub session_id: &'a str,
    /// `message` is byte for byte the previous request's of the same
    /// transaction (several recipients get one copy of the trace headers),
    /// so the backend may link to the copy it saved then.
    pub same_as_previous: bool,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverError {
    /// Internal/temporary failure (text for the log).
    Temporary(String),
}

/// Recipient lookups and delivery.
pub trait Backend {
    /// userdb lookup for a recipient's user name.
    fn lookup(&mut self, user: &str, session_id: &str) -> Lookup;
    /// Saves one copy; returns the mailbox it went to. Must not return
    /// `Ok` before the copy is durable.
    fn deliver(&mut self, request: &DeliveryRequest<'_>) -> Result<String, DeliverError>;
}

/// Severity of a [`LogEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Error,
}

/// A line for the service log, with the user and session it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub level: LogLevel,
    pub user: Option<String>,
    pub session: Option<String>,
    pub text: String,
}

/// What the driver must do after [`Session::input`].
#[derive(Debug, Default)]
pub struct SessionOutput {
    pub reply: Vec<u8>,
    /// Close after sending `reply` (QUIT, fatal input).
    pub close: bool,
    /// Send `reply` in plaintext, then start the TLS handshake and call
    /// [`Session::tls_started`]; input pipelined after STARTTLS was dropped.
    pub start_tls: bool,
    pub logs: Vec<LogEvent>,
}

#[derive(Debug, Clone)]
struct Recipient {
    address: String,
    orcpt: Option<String>,
    user: RecipientUser,
    detail: Option<String>,
    session_id: String,
}

#[derive(Debug)]
struct Transaction {
    id: String,
    from: String,
    rcpts: Vec<Recipient>,
    /// RCPT commands seen, accepted or not (numbers the `:R<n>` ids).
    rcpt_seq: u32,
    body: Vec<u8>,
    too_large: bool,
    /// BDAT was used: DATA is out of sequence now.
    chunking: bool,
}

#[derive(Debug)]
enum Mode {
    Command,
    Data(DotDecoder),
    /// Reading a BDAT chunk; `error` is replied (instead of taking the
    /// chunk) once it is read.
    Chunk {
        remaining: u64,
        size: u64,
        last: bool,
        error: Option<&'static str>,
    },
}

/// One LMTP connection.
pub struct Session {
    settings: LmtpSettings,
    session_id: String,
    remote_ip: Option<IpAddr>,
    secured: bool,
    buf: Vec<u8>,
    mode: Mode,
    lhlo: Option<String>,
    tx: Option<Transaction>,
    transactions: u32,
    closed: bool,
    /// Start TLS was requested; input is ignored until `tls_started`.
    tls_pending: bool,
}

impl Session {
    /// A new session; `remote_ip` is `None` on unix sockets.
    pub fn new(
        settings: LmtpSettings,
        session_id: String,
        remote_ip: Option<IpAddr>,
        secured: bool,
    ) -> Session {
        Session {
            settings,
            session_id,
            remote_ip,
            secured,
            buf: Vec::new(),
            mode: Mode::Command,
            lhlo: None,
            tx: None,
            transactions: 0,
            closed: false,
            tls_pending: false,
        }
    }

    /// `220 <hostname> Dovecot ready.`
    pub fn greeting(&self) -> Vec<u8> {
        format!("220 {} Dovecot ready.\r\n", self.settings.hostname).into_bytes()
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Dovecot's `state=` word for the disconnect log line.
    pub fn state_name(&self) -> &'static str {
        match (&self.mode, &self.tx) {
            (Mode::Data(_) | Mode::Chunk { .. }, _) => "DATA",
            (_, Some(tx)) if !tx.rcpts.is_empty() => "RCPT TO",
            (_, Some(_)) => "MAIL FROM",
            _ => "READY",
        }
    }

    /// TLS is up: the client must start over with LHLO (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.secured = true;
        self.tls_pending = false;
        self.lhlo = None;
        self.tx = None;
        self.buf.clear();
        self.mode = Mode::Command;
    }

    /// Feeds client bytes; runs every complete command (and delivers
    /// complete messages through `backend`).
    pub fn input(&mut self, data: &[u8], backend: &mut dyn Backend) -> SessionOutput {
        let mut out = SessionOutput::default();
        if self.closed || self.tls_pending {
            return out;
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        while pos < self.buf.len() && !self.closed && !self.tls_pending {
            match &mut self.mode {
                Mode::Command => {
                    let Some(nl) = self.buf[pos..].iter().position(|&b| b == b'\n') else {
                        if self.buf.len() - pos > MAX_LINE {
                            out.reply.extend_from_slice(b"500 5.5.2 Line too long\r\n");
                            out.close = true;
                            self.closed = true;
                        }
                        break;
                    };
                    let mut line = self.buf[pos..pos + nl].to_vec();
                    pos += nl + 1;
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > MAX_LINE {
                        out.reply.extend_from_slice(b"500 5.5.2 Line too long\r\n");
                        continue;
                    }
                    self.command(&line, backend, &mut out);
                }
                Mode::Data(decoder) => {
                    let Some(tx) = self.tx.as_mut() else {
                        self.mode = Mode::Command;
                        continue;
                    };
                    let start = tx.body.len();
                    let fed = decoder.feed(&self.buf[pos..], &mut tx.body);
                    pos += fed.consumed;
                    if let Some(max) = self.settings.max_mail_size {
                        if tx.body.len() as u64 > max {
                            // Keep reading to the dot, but not storing.
                            tx.too_large = true;
                            tx.body.truncate(start.min(max as usize));
                        }
                    }
                    if fed.done {
                        self.mode = Mode::Command;
                        self.finish_message(backend, &mut out);
                    }
                }
                Mode::Chunk { remaining, size, last, error } => {
                    let take = (*remaining).min((self.buf.len() - pos) as u64) as usize;
                    let chunk = &self.buf[pos..pos + take];
                    pos += take;
                    *remaining -= take as u64;
                    let (size, last, error) = (*size, *last, *error);
                    if error.is_none() {
                        if let Some(tx) = self.tx.as_mut() {
                            let fits = self
                                .settings
                                .max_mail_size
                                .is_none_or(|m| (tx.body.len() + take) as u64 <= m);
                            if fits && !tx.too_large {
                                tx.body.extend_from_slice(chunk);
                            } else {
                                tx.too_large = true;
                            }
                        }
                    }
                    if let Mode::Chunk { remaining: 0, .. } = self.mode {
                        self.mode = Mode::Command;
                        match error {
                            Some(e) => out.reply.extend_from_slice(e.as_bytes()),
                            None if last => self.finish_message(backend, &mut out),
                            None => out
                                .reply
                                .extend_from_slice(format!("250 2.0.0 Added {size} octets\r\n").as_bytes()),
                        }
                    }
                }
            }
        }
        self.buf.drain(..pos.min(self.buf.len()));
        if self.tls_pending || self.closed {
            // Nothing pipelined after STARTTLS/QUIT may be acted on.
            self.buf.clear();
        }
        // A zero-length chunk (`BDAT 0 LAST`) completes without more input.
        out
    }

    fn reply(out: &mut SessionOutput, text: &str) {
        out.reply.extend_from_slice(text.as_bytes());
        out.reply.extend_from_slice(b"\r\n");
    }

    fn command(&mut self, line: &[u8], backend: &mut dyn Backend, out: &mut SessionOutput) {
        match command::parse(line) {
            Command::Lhlo(None) => Self::reply(out, "501 Missing hostname"),
            Command::Lhlo(Some(domain)) => {
                self.lhlo = Some(domain);
                self.tx = None;
                let mut caps = vec![self.settings.hostname.clone(), "8BITMIME".into(), "CHUNKING".into()];
                caps.push("ENHANCEDSTATUSCODES".into());
                caps.push("PIPELINING".into());
                if let Some(max) = self.settings.max_mail_size {
                    caps.push(format!("SIZE {max}"));
                }
                if self.settings.starttls && !self.secured {
                    caps.push("STARTTLS".into());
                }
                let n = caps.len();
                for (i, cap) in caps.iter().enumerate() {
                    let sep = if i + 1 == n { ' ' } else { '-' };
                    Self::reply(out, &format!("250{sep}{cap}"));
                }
            }
            Command::Mail(path) => self.mail(path, out),
            Command::Rcpt(path) => self.rcpt(path, backend, out),
            Command::Data => match &self.tx {
                None => Self::reply(out, "503 5.5.0 MAIL needed first"),
                Some(tx) if tx.chunking => Self::reply(out, "503 5.5.0 Bad sequence of commands"),
                Some(tx) if tx.rcpts.is_empty() => Self::reply(out, "503 5.5.0 No valid recipients"),
                Some(_) => {
                    self.mode = Mode::Data(DotDecoder::default());
                    Self::reply(out, "354 OK");
                }
            },
            Command::Bdat(None) => Self::reply(out, "501 5.5.4 Invalid chunk size parameter"),
            Command::Bdat(Some((size, last))) => {
                let error = match &mut self.tx {
                    None => Some("503 5.5.0 MAIL needed first\r\n"),
                    Some(tx) if tx.rcpts.is_empty() => Some("503 5.5.0 No valid recipients\r\n"),
                    Some(tx) => {
                        tx.chunking = true;
                        None
                    }
                };
                self.mode = Mode::Chunk { remaining: size, size, last, error };
                if size == 0 {
                    // No chunk bytes to wait for.
                    self.mode = Mode::Command;
                    match error {
                        Some(e) => out.reply.extend_from_slice(e.as_bytes()),
                        None if last => self.finish_message(backend, out),
                        None => Self::reply(out, "250 2.0.0 Added 0 octets"),
                    }
                }
            }
            Command::Rset => {
                self.tx = None;
                Self::reply(out, "250 2.0.0 OK");
            }
            Command::Noop => Self::reply(out, "250 2.0.0 OK"),
            Command::Quit => {
                Self::reply(out, "221 2.0.0 Bye");
                out.close = true;
                self.closed = true;
            }
            Command::Vrfy => Self::reply(out, "252 2.3.3 Try RCPT instead"),
            Command::StartTls => {
                if self.secured {
                    Self::reply(out, "502 5.5.1 TLS is already active.");
                } else if !self.settings.starttls {
                    Self::reply(out, "502 5.5.1 TLS support is not enabled.");
                } else {
                    Self::reply(out, "220 2.0.0 Begin TLS negotiation now.");
                    out.start_tls = true;
                    self.tls_pending = true;
                }
            }
            Command::Unsupported => Self::reply(out, "502 5.5.1 Unsupported command"),
            Command::BadSyntax => Self::reply(out, "500 5.5.2 Invalid command syntax"),
            Command::Unknown => Self::reply(out, "500 5.5.1 Unknown command"),
        }
    }

    fn mail(&mut self, path: Result<PathAndParams, PathError>, out: &mut SessionOutput) {
        if self.tx.is_some() {
            return Self::reply(out, "503 5.5.0 MAIL already given");
        }
        let path = match path {
            Ok(p) => p,
            Err(e) => return Self::reply(out, &format!("501 5.5.4 Invalid FROM: {e}")),
        };
        for param in &path.params {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "BODY" => match value.to_ascii_uppercase().as_str() {
                    "7BIT" | "8BITMIME" => {}
                    _ => return Self::reply(out, "555 5.5.4 Unsupported mail BODY type"),
                },
                "SIZE" if self.settings.max_mail_size.is_some() => {
                    let Ok(size) = value.parse::<u64>() else {
                        return Self::reply(out, "501 5.5.4 Invalid SIZE parameter");
                    };
                    if self.settings.max_mail_size.is_some_and(|max| size > max) {
                        return Self::reply(out, "552 5.3.4 Message size exceeds administrative limit");
                    }
                }
                _ => return Self::reply(out, "555 5.5.4 Unsupported parameters"),
            }
        }
        self.transactions += 1;
        let id = if self.transactions == 1 {
            self.session_id.clone()
        } else {
            format!("{}:T{}", self.session_id, self.transactions)
        };
        self.tx = Some(Transaction {
            id,
            from: path.address,
            rcpts: Vec::new(),
            rcpt_seq: 0,
            body: Vec::new(),
            too_large: false,
            chunking: false,
        });
        Self::reply(out, "250 2.1.0 OK");
    }

    fn rcpt(
        &mut self,
        path: Result<PathAndParams, PathError>,
        backend: &mut dyn Backend,
        out: &mut SessionOutput,
    ) {
        let Some(tx) = self.tx.as_mut() else {
            return Self::reply(out, "503 5.5.0 MAIL needed first");
        };
        let path = match path {
            Ok(p) => p,
            Err(e) => return Self::reply(out, &format!("501 5.5.4 Invalid TO: {e}")),
        };
        let mut orcpt = None;
        for param in &path.params {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key.eq_ignore_ascii_case("ORCPT") && !value.is_empty() {
                orcpt = Some(value.split_once(';').map_or(value, |(_, a)| a).to_string());
            } else {
                return Self::reply(out, "555 5.5.4 Unsupported parameters");
            }
        }
        tx.rcpt_seq += 1;
        let session_id = if tx.rcpt_seq == 1 { tx.id.clone() } else { format!("{}:R{}", tx.id, tx.rcpt_seq) };
        let address = path.address;
        let (user, detail) = split_detail(&address, &self.settings.recipient_delimiter);
        match backend.lookup(&user, &session_id) {
            Lookup::Found(found) => {
                tx.rcpts.push(Recipient { address, orcpt, user: found, detail, session_id });
                Self::reply(out, "250 2.1.5 OK");
            }
            Lookup::NotFound => {
                Self::reply(out, &format!("550 5.1.1 <{address}> User doesn't exist: {user}"));
            }
            Lookup::TempFail(reason) => {
                out.logs.push(LogEvent {
                    level: LogLevel::Error,
                    user: Some(user),
                    session: Some(session_id),
                    text: format!("Failed to lookup user {address}: {reason}"),
                });
                Self::reply(out, &format!("451 4.3.0 <{address}> Temporary internal error"));
            }
        }
    }

    /// The body is complete: one reply per recipient.
    fn finish_message(&mut self, backend: &mut dyn Backend, out: &mut SessionOutput) {
        let Some(mut tx) = self.tx.take() else { return };
        if tx.too_large {
            for r in &tx.rcpts {
                Self::reply(
                    out,
                    &format!("552 5.2.3 <{}> Message size exceeds administrative limit", r.address),
                );
            }
            return;
        }
        to_lf(&mut tx.body);
        let msgid = message_id(&tx.body);
        let now = crate::date::now();
        let single = tx.rcpts.len() == 1;
        for (i, r) in tx.rcpts.iter().enumerate() {
            let delivered_to = match self.settings.hdr_delivery_address {
                _ if !single => None,
                HdrDeliveryAddress::None => None,
                HdrDeliveryAddress::Final => Some(r.address.as_str()),
                HdrDeliveryAddress::Original => Some(r.orcpt.as_deref().unwrap_or(&r.address)),
            };
            let trace = Trace {
                from: &tx.from,
                lhlo: self.lhlo.as_deref(),
                remote_ip: self.remote_ip,
                secured: self.secured,
                hostname: &self.settings.hostname,
                id: &tx.id,
                delivered_to,
                for_rcpt: if single { Some(r.address.as_str()) } else { None },
                received: self.settings.add_received_header,
                time: now,
            };
            let mut message = trace_headers(&trace);
            message.extend_from_slice(&tx.body);
            let mailbox = match &r.detail {
                Some(d) if self.settings.save_to_detail_mailbox && !d.is_empty() => d.as_str(),
                _ => "INBOX",
            };
            let request = DeliveryRequest {
                user: &r.user,
                mailbox,
                message: &message,
                session_id: &r.session_id,
                // Without per-recipient headers every copy is the same.
                same_as_previous: !single && i > 0,
            };
            match backend.deliver(&request) {
                Ok(saved_to) => {
                    out.logs.push(LogEvent {
                        level: LogLevel::Info,
                        user: Some(r.user.name.clone()),
                        session: Some(r.session_id.clone()),
                        text: format!("msgid={msgid}: saved mail to {saved_to}"),
                    });
                    Self::reply(out, &format!("250 2.0.0 <{}> {} Saved", r.address, r.session_id));
                }
                Err(DeliverError::Temporary(reason)) => {
                    out.logs.push(LogEvent {
                        level: LogLevel::Error,
                        user: Some(r.user.name.clone()),
                        session: Some(r.session_id.clone()),
                        text: format!("msgid={msgid}: save failed to {mailbox}: {reason}"),
                    });
                    Self::reply(
                        out,
                        &format!("451 4.2.0 <{}> {CRITICAL_MSG} [{}]", r.address, crate::date::stamp(now)),
                    );
                }
            }
        }
    }
}

/// The Message-ID header's value, or `unspecified` (for the log line).
fn message_id(message: &[u8]) -> String {
    let header_end = message.windows(2).position(|w| w == b"\n\n").map_or(message.len(), |p| p + 1);
    let headers = &message[..header_end];
    let mut lines = headers.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            let mut value = String::from_utf8_lossy(&line[11..]).trim().to_string();
            while let Some(next) =
                lines.peek().filter(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
            {
                value.push_str(String::from_utf8_lossy(next).trim());
                lines.next();
            }
            if !value.is_empty() {
                return value;
            }
        }
    }
    "unspecified".to_string()
}

/// A new session id as Dovecot's lmtp makes them: 128 random bits, base64
/// without padding (22 characters).
pub fn new_session_id() -> String {
    use base64::Engine;
    let mut raw = [0u8; 16];
    if getrandom::getrandom(&mut raw).is_err() {
        // No entropy source: time and pid still make ids unique per host.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        raw[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        raw[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests;
