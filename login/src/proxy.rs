//! TLS on a client connection, and the proxy that stays after handoff.
//!
//! [`TlsLayer`] wraps a rustls `ServerConnection` sans-IO: ciphertext from
//! the client in, plaintext out, and the reverse. Before the handoff the
//! plaintext goes to the pre-auth state machine; after it, to one end of a
//! socketpair whose other end the post-login process got (DESIGN §4.2):
//! the login process keeps running the event loop (mio, through the
//! master runtime's wakeup fd) moving bytes between the client and the
//! pair until either side closes — as Dovecot's imap-login does.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// Most plaintext buffered towards a slow reader before we stop reading.
pub const MAX_PENDING: usize = 256 * 1024;

/// A client's TLS session.
pub struct TlsLayer {
    conn: ServerConnection,
    handshake_reported: bool,
}

/// What feeding ciphertext produced.
#[derive(Debug, Default)]
pub struct TlsInput {
    pub plaintext: Vec<u8>,
    /// The handshake completed during this call.
    pub handshake_done: bool,
    /// The client sent close_notify or the stream ended.
    pub closed: bool,
    /// A fatal TLS error, for the log (the alert is in the output).
    pub error: Option<String>,
}

impl TlsLayer {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsLayer, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        // rustls would take only 64 KiB of plaintext at a time and drop
        // the rest of a larger write; our own reads bound what goes in.
        conn.set_buffer_limit(None);
        Ok(TlsLayer { conn, handshake_reported: false })
    }

    /// Feeds ciphertext from the client.
    pub fn input(&mut self, mut data: &[u8]) -> TlsInput {
        let mut result = TlsInput::default();
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    result.error = Some(e.to_string());
                    return result;
                }
            }
            if let Err(e) = self.conn.process_new_packets() {
                result.error = Some(e.to_string());
                return result;
            }
            let mut buf = [0u8; 16384];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => {
                        result.closed = true;
                        break;
                    }
                    Ok(n) => result.plaintext.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        result.closed = true;
                        break;
                    }
                }
            }
        }
        if !self.handshake_reported && !self.conn.is_handshaking() {
            self.handshake_reported = true;
            result.handshake_done = true;
        }
        result
    }

    /// Encrypts `plaintext` for the client.
    pub fn write_plaintext(&mut self, plaintext: &[u8]) {
        let _ = self.conn.writer().write_all(plaintext);
    }

    /// Ciphertext (handshake records, alerts, application data) to send.
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        out
    }

    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384` style, for the log.
    pub fn description(&self) -> String {
        let version = self.conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
        let suite =
            self.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        format!("{} with cipher {suite}", version.replace("TLSv1_", "TLSv1."))
    }

    /// SNI the client sent.
    pub fn server_name(&self) -> Option<String> {
        self.conn.server_name().map(str::to_owned)
    }

    /// Whether the client presented a certificate that verified.
    pub fn has_valid_client_cert(&self) -> bool {
        self.conn.peer_certificates().is_some_and(|c| !c.is_empty())
    }

    /// `field` (`ssl_cert_username_field`) of the verified client
    /// certificate's subject.
    pub fn peer_name(&self, field: &str) -> Option<String> {
        let cert = self.conn.peer_certificates()?.first()?;
        crate::cert_name::peer_name(cert.as_ref(), field)
    }
}
