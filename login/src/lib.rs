//! dovecote's login processes (`imap-login`, `pop3-login`): the
//! pre-authentication half of each protocol, facing the open internet.
//!
//! What this crate owns (shared/DESIGN.md §2, §4.2):
//! * [`imap`] and [`pop3`]: sans-IO pre-auth state machines — bytes in,
//!   [`Action`]s out — with Dovecot 2.3's exact replies. They never touch a
//!   socket, so they are unit-tested against transcripts of the real
//!   Dovecot and fuzzed.
//! * [`policy`]: which connections count as secured (TLS, same-IP,
//!   `login_trusted_networks`) and what `disable_plaintext_auth` and
//!   `ssl = no|yes|required` allow on them.
//! * [`tls`]: rustls server configuration built from the `ssl_*` settings.
//! * [`haproxy`]: the HAProxy PROXY v1/v2 header parser.
//! * [`handoff`]: the record sent with the client fd to the post-login
//!   service over `login/imap` / `login/pop3`.
//! * [`auth`]: the [`auth::AuthClient`] trait the login processes use to
//!   talk SASL to the auth service over `login/login`.
//! * [`backend`]: login proxying to another IMAP/POP3 server (passdb
//!   `proxy=y host=…`), sans-IO backend logins plus the backend socket.
//! * [`service`]: the glue onto `dovecote_master::runtime` used by the
//!   binaries, and [`proxy`]: the TLS proxy loop that stays after handoff.
//!
//! Nothing here links SQL, LDAP or PAM code: those live in auth workers.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backend;
pub mod cert_name;
/// Shared by the fuzz targets; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod handoff;
pub mod haproxy;
pub mod imap;
pub mod log_format;
pub mod policy;
pub mod pop3;
pub mod proxy;
pub mod sasl;
pub mod service;
pub mod settings;
#[cfg(test)]
mod testing;
pub mod tls;

/// What a pre-auth state machine wants the I/O layer to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client (in the clear or through TLS,
    /// whichever is active).
    Send(Vec<u8>),
    /// Start the TLS handshake now (after the `Send` before it is flushed).
    /// Input the client sent after the STARTTLS line is discarded, as a
    /// defence against STARTTLS command injection.
    StartTls,
    /// Begin a SASL exchange with the auth service. `initial_response` is
    /// base64 as the client sent it (`""` for an empty one).
    AuthBegin { mechanism: String, initial_response: Option<String> },
    /// The client's next SASL response, base64.
    AuthContinue(String),
    /// The client gave up (or disconnected); tell auth to forget the request.
    AuthCancel,
    /// Auth said OK: pass the connection to the post-login service with
    /// this protocol prefix (IMAP: `0`/`1` + tag) and the input the client
    /// already sent after its last command.
    Handoff { user: String, prefix: Vec<u8>, client_input: Vec<u8> },
    /// Auth said OK with `proxy`: log in to the backend the passdb
    /// `fields` name ([`backend`]). `tag` is the IMAP command's tag (empty
    /// for POP3). The machine waits for `proxy_failed` or the relay.
    Proxy { user: String, fields: Vec<(String, String)>, tag: String },
    /// A trusted proxy in front of us (`login_trusted_networks`) said who
    /// the real client is (IMAP ID `x-originating-ip`…): use these
    /// addresses and session id from now on.
    Forwarded(Forwarded),
    /// Close the connection after flushing output; `reason` is for the log
    /// (`Disconnected: …`).
    Close { reason: String },
}

/// The client details a trusted proxy forwards (Dovecot's
/// `client_update_info`); unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub remote_ip: Option<std::net::IpAddr>,
    pub remote_port: Option<u16>,
    pub local_ip: Option<std::net::IpAddr>,
    pub local_port: Option<u16>,
    pub session_id: Option<String>,
}

/// Dovecot's `LOGIN_MAX_INBUF_SIZE`: input kept for one unparsed token or
/// line. A longer line gets `Input buffer full, aborting` and a disconnect.
pub const LOGIN_MAX_INBUF_SIZE: usize = 1026;
/// Bad commands before a login process disconnects the client.
pub const CLIENT_MAX_BAD_COMMANDS: u32 = 3;
