//! The anvil wire protocol, sans-IO: one tab-separated command per line,
//! after a `VERSION\tanvil\t1\t0` handshake line from the client. The
//! command names and reply formats are Dovecot's (`anvil-connection.c`);
//! only `LOOKUP`, `PENALTY-GET` and the two dumps are answered.
//!
//! | command | reply |
//! | --- | --- |
//! | `CONNECT\t<pid>\t<ident>` | — |
//! | `DISCONNECT\t<pid>\t<ident>` | — |
//! | `KILL\t<pid>` | — (forget every session of that pid) |
//! | `LOOKUP\t<ident>` | `<count>` |
//! | `CONNECT-DUMP` | `<ident>\t<pid>\t<count>` lines, then an empty line |
//! | `PENALTY-GET\t<ident>` | `<penalty> <last_penalty unix time>` |
//! | `PENALTY-INC\t<ident>\t<checksum>\t<value>` | — |
//! | `PENALTY-SET-EXPIRE-SECS\t<secs>` | — |
//! | `PENALTY-DUMP` | `<ident>\t<penalty>\t<last_penalty>\t<last_update>` lines, then an empty line |
//!
//! Idents are tab-escaped as Dovecot's `str_tabescape` does (a user name
//! may contain anything).

use thiserror::Error;

/// The handshake line (without the newline) a client sends first.
pub const HANDSHAKE: &str = "VERSION\tanvil\t1\t0";
/// Longest accepted line; idents are `service/ip/user`.
pub const MAX_LINE: usize = 16 * 1024;
/// Largest penalty value (`penalty.h`).
pub const PENALTY_MAX_VALUE: u32 = 65535;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Connect { pid: u32, ident: String },
    Disconnect { pid: u32, ident: String },
    Kill { pid: u32 },
    Lookup { ident: String },
    ConnectDump,
    PenaltyGet { ident: String },
    PenaltyInc { ident: String, checksum: u32, value: u32 },
    PenaltySetExpireSecs { secs: u32 },
    PenaltyDump,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("Anvil client not compatible with this server (mixed old and new binaries?)")]
    Handshake,
    #[error("Unknown command: {0}")]
    Unknown(String),
    #[error("{command}: Invalid parameters")]
    Parameters { command: &'static str },
    #[error("PENALTY-INC: Invalid value")]
    PenaltyValue,
}

/// Whether `line` is the handshake a client must send first.
pub fn is_handshake(line: &str) -> bool {
    let mut f = line.split('\t');
    f.next() == Some("VERSION") && f.next() == Some("anvil") && f.next() == Some("1")
}

impl Command {
    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<Command, ProtocolError> {
        let fields: Vec<&str> = line.split('\t').collect();
        let name = fields[0];
        let bad = |command: &'static str| ProtocolError::Parameters { command };
        let number = |s: &str, command: &'static str| s.parse::<u32>().map_err(|_| bad(command));
        match (name, fields.len()) {
            ("CONNECT", 3) => {
                Ok(Command::Connect { pid: number(fields[1], "CONNECT")?, ident: tab_unescape(fields[2]) })
            }
            ("DISCONNECT", 3) => Ok(Command::Disconnect {
                pid: number(fields[1], "DISCONNECT")?,
                ident: tab_unescape(fields[2]),
            }),
            ("KILL", 2) => Ok(Command::Kill { pid: number(fields[1], "KILL")? }),
            ("LOOKUP", 2) => Ok(Command::Lookup { ident: tab_unescape(fields[1]) }),
            ("CONNECT-DUMP", 1) => Ok(Command::ConnectDump),
            ("PENALTY-GET", 2) => Ok(Command::PenaltyGet { ident: tab_unescape(fields[1]) }),
            ("PENALTY-INC", 4) => {
                let checksum = number(fields[2], "PENALTY-INC")?;
                let value = number(fields[3], "PENALTY-INC")?;
                // Dovecot asserts these; from the network they are errors.
                if value > PENALTY_MAX_VALUE || (value == 0 && checksum != 0) {
                    return Err(ProtocolError::PenaltyValue);
                }
                Ok(Command::PenaltyInc { ident: tab_unescape(fields[1]), checksum, value })
            }
            ("PENALTY-SET-EXPIRE-SECS", 2) => {
                Ok(Command::PenaltySetExpireSecs { secs: number(fields[1], "PENALTY-SET-EXPIRE-SECS")? })
            }
            ("PENALTY-DUMP", 1) => Ok(Command::PenaltyDump),
            ("CONNECT", _) => Err(bad("CONNECT")),
            ("DISCONNECT", _) => Err(bad("DISCONNECT")),
            ("KILL", _) => Err(bad("KILL")),
            ("LOOKUP", _) => Err(bad("LOOKUP")),
            ("PENALTY-GET", _) => Err(bad("PENALTY-GET")),
            ("PENALTY-INC", _) => Err(bad("PENALTY-INC")),
            ("PENALTY-SET-EXPIRE-SECS", _) => Err(bad("PENALTY-SET-EXPIRE-SECS")),
            _ => Err(ProtocolError::Unknown(name.to_owned())),
        }
    }

    /// The line for this command, with its newline.
    pub fn to_line(&self) -> String {
        match self {
            Command::Connect { pid, ident } => format!("CONNECT\t{pid}\t{}\n", tab_escape(ident)),
            Command::Disconnect { pid, ident } => format!("DISCONNECT\t{pid}\t{}\n", tab_escape(ident)),
            Command::Kill { pid } => format!("KILL\t{pid}\n"),
            Command::Lookup { ident } => format!("LOOKUP\t{}\n", tab_escape(ident)),
            Command::ConnectDump => "CONNECT-DUMP\n".to_owned(),
            Command::PenaltyGet { ident } => format!("PENALTY-GET\t{}\n", tab_escape(ident)),
            Command::PenaltyInc { ident, checksum, value } => {
                format!("PENALTY-INC\t{}\t{checksum}\t{value}\n", tab_escape(ident))
            }
            Command::PenaltySetExpireSecs { secs } => format!("PENALTY-SET-EXPIRE-SECS\t{secs}\n"),
            Command::PenaltyDump => "PENALTY-DUMP\n".to_owned(),
        }
    }
}

/// The ident `mail_max_userip_connections` counts: `imap/<ip>/<user>`.
pub fn userip_ident(service: &str, ip: &str, user: &str) -> String {
    format!("{service}/{ip}/{user}")
}

/// Dovecot's `str_tabescape`: `\x01` → `\x011`, TAB → `\x01t`, CR → `\x01r`, LF → `\x01n`.
pub fn tab_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`tab_escape`]; an unknown escape keeps the character.
pub fn tab_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\x01' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('\x01'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let all = [
            Command::Connect { pid: 12, ident: "imap/127.0.0.1/a\tb".into() },
            Command::Disconnect { pid: 12, ident: "imap/::1/x\x01y\nz".into() },
            Command::Kill { pid: 7 },
            Command::Lookup { ident: "pop3/10.0.0.1/bob".into() },
            Command::ConnectDump,
            Command::PenaltyGet { ident: "10.1.2.3".into() },
            Command::PenaltyInc { ident: "10.1.2.3".into(), checksum: 99, value: 3 },
            Command::PenaltySetExpireSecs { secs: 29 },
            Command::PenaltyDump,
        ];
        for c in all {
            let line = c.to_line();
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert_eq!(Command::parse(line.trim_end_matches('\n')).unwrap(), c);
        }
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(Command::parse("FOO"), Err(ProtocolError::Unknown("FOO".into())));
        assert_eq!(Command::parse("CONNECT\tx\ty"), Err(ProtocolError::Parameters { command: "CONNECT" }));
        assert_eq!(Command::parse("LOOKUP"), Err(ProtocolError::Parameters { command: "LOOKUP" }));
        assert_eq!(Command::parse("PENALTY-INC\ti\t0\t70000"), Err(ProtocolError::PenaltyValue));
        assert_eq!(Command::parse("PENALTY-INC\ti\t5\t0"), Err(ProtocolError::PenaltyValue));
        assert!(Command::parse("").is_err());
    }

    #[test]
    fn handshake() {
        assert!(is_handshake(HANDSHAKE));
        assert!(!is_handshake("VERSION\tauth\t1\t0"));
        assert!(!is_handshake("LOOKUP\tx"));
    }
}
