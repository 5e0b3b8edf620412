//! Dovecot 2.3's auth protocols, byte for byte: the auth-client protocol
//! ([`client`]: login processes, Postfix and Exim ↔ auth) and the
//! auth-master/userdb protocol ([`master`]: mail processes, lmtp, doveadm ↔
//! auth). Both are tab-separated lines; values are tab-escaped
//! ([`escape`]). The parsers and serialisers are sans-IO; [`client_conn`]
//! and [`master_conn`] are small blocking clients over a Unix socket.

pub mod client;
pub mod client_conn;
pub mod escape;
pub mod fields;
pub mod master;
pub mod master_conn;

pub use fields::{Field, Fields};

/// `AUTH_CLIENT_MAX_LINE_LENGTH`: longest auth-client line.
pub const CLIENT_MAX_LINE: usize = 16384;
/// Protocol version the auth-client side speaks (1.2).
pub const CLIENT_VERSION: (u32, u32) = (1, 2);
/// Version an auth-master client sends (1.0); the server answers 1.1.
pub const MASTER_CLIENT_VERSION: (u32, u32) = (1, 0);
/// Version the auth server announces on master sockets.
pub const MASTER_SERVER_VERSION: (u32, u32) = (1, 1);

/// A line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Empty line.
    #[error("empty line")]
    Empty,
    /// Unknown command word.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A required field is missing.
    #[error("{command}: missing {field}")]
    MissingField {
        /// Command word.
        command: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A numeric field is not a number.
    #[error("{command}: invalid {field} {value:?}")]
    InvalidNumber {
        /// Command word.
        command: &'static str,
        /// Field name.
        field: &'static str,
        /// What was there.
        value: String,
    },
    /// A field is not valid UTF-8 after unescaping.
    #[error("invalid UTF-8 in line")]
    InvalidUtf8,
    /// The line is longer than the protocol allows.
    #[error("line too long ({0} bytes)")]
    LineTooLong(usize),
}

/// Splits a line (without its `\n`) into unescaped UTF-8 fields.
pub(crate) fn split_line(line: &[u8]) -> Result<Vec<String>, ProtocolError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(ProtocolError::Empty);
    }
    line.split(|b| *b == b'\t')
        .map(|f| String::from_utf8(escape::tab_unescape(f)).map_err(|_| ProtocolError::InvalidUtf8))
        .collect()
}

/// Parses a decimal `unsigned int` field.
pub(crate) fn number(
    command: &'static str,
    field: &'static str,
    value: Option<&String>,
) -> Result<u32, ProtocolError> {
    let value = value.ok_or(ProtocolError::MissingField { command, field })?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::InvalidNumber { command, field, value: value.clone() });
    }
    value.parse().map_err(|_| ProtocolError::InvalidNumber { command, field, value: value.clone() })
}

/// Returns a required text field.
pub(crate) fn text(
    command: &'static str,
    field: &'static str,
    value: Option<&String>,
) -> Result<String, ProtocolError> {
    value.cloned().ok_or(ProtocolError::MissingField { command, field })
}

/// Appends `\t` + escaped `value`.
pub(crate) fn push_field(out: &mut Vec<u8>, value: &str) {
    out.push(b'\t');
    escape::tab_escape_into(value.as_bytes(), out);
}
