//! auth-client protocol lines (version 1.2), both directions.
//!
//! Client → server: `VERSION`, `CPID`, `AUTH`, `CONT`, `CANCEL`.
//! Server → client: `VERSION`, `MECH`, `SPID`, `CUID`, `COOKIE`, `DONE`,
//! `CONT`, `OK`, `FAIL`. SASL data travels base64-encoded in `resp=` and in
//! `CONT`; this module keeps it as text and leaves decoding to the caller.

use super::{number, push_field, split_line, text, Fields, ProtocolError};

/// `AUTH` parameters that Dovecot defines (others are passed through as
/// extra fields): `service`, `lip`, `rip`, `lport`, `rport`, `real_lip`,
/// `real_rip`, `real_lport`, `real_rport`, `local_name`, `session`,
/// `client_id`, `cert_username`, `forward_fields`, flags `secured`,
/// `final-resp-ok`, `no-penalty`, `valid-client-cert`, `debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Request id (non-zero, unique per connection).
    pub id: u32,
    /// SASL mechanism name.
    pub mech: String,
    /// Parameters in order, without `resp`.
    pub params: Fields,
    /// Base64 initial response (`resp=`), `Some("")` for an empty one.
    pub resp: Option<String>,
}

impl AuthRequest {
    /// A request for `service` (imap, pop3, smtp...).
    pub fn new(id: u32, mech: &str, service: &str) -> Self {
        AuthRequest { id, mech: mech.into(), params: Fields::new().with("service", service), resp: None }
    }

    /// The `service` parameter.
    pub fn service(&self) -> Option<&str> {
        self.params.get("service")
    }
}

/// A line from an auth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLine {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Major version (1).
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// `CPID\t<pid>`: the client's process id.
    Cpid(u32),
    /// `AUTH\t<id>\t<mech>\t<params...>[\tresp=<base64>]`.
    Auth(AuthRequest),
    /// `CONT\t<id>\t<base64>`.
    Cont {
        /// Request id.
        id: u32,
        /// Base64 response.
        data: String,
    },
    /// `CANCEL\t<id>`.
    Cancel(u32),
}

impl ClientLine {
    /// Parses one line (without the newline).
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let f = split_line(line)?;
        Ok(match f[0].as_str() {
            "VERSION" => ClientLine::Version {
                major: number("VERSION", "major", f.get(1))?,
                minor: number("VERSION", "minor", f.get(2))?,
            },
            "CPID" => ClientLine::Cpid(number("CPID", "pid", f.get(1))?),
            "AUTH" => {
                let id = number("AUTH", "id", f.get(1))?;
                let mech = text("AUTH", "mechanism", f.get(2))?;
                let mut params = Fields::parse(f.iter().skip(3));
                // `resp` is last by protocol; take the last one.
                let resp = match params.0.iter().rposition(|p| p.key == "resp") {
                    Some(pos) => params.0.remove(pos).value.or_else(|| Some(String::new())),
                    None => None,
                };
                ClientLine::Auth(AuthRequest { id, mech, params, resp })
            }
            "CONT" => ClientLine::Cont {
                id: number("CONT", "id", f.get(1))?,
                data: text("CONT", "data", f.get(2))?,
            },
            "CANCEL" => ClientLine::Cancel(number("CANCEL", "id", f.get(1))?),
            other => return Err(ProtocolError::UnknownCommand(other.into())),
        })
    }

    /// Appends the line with its newline.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            ClientLine::Version { major, minor } => {
                out.extend_from_slice(format!("VERSION\t{major}\t{minor}").as_bytes())
            }
            ClientLine::Cpid(pid) => out.extend_from_slice(format!("CPID\t{pid}").as_bytes()),
            ClientLine::Auth(req) => {
                out.extend_from_slice(format!("AUTH\t{}", req.id).as_bytes());
                push_field(out, &req.mech);
                req.params.write(out);
                if let Some(resp) = &req.resp {
                    push_field(out, &format!("resp={resp}"));
                }
            }
            ClientLine::Cont { id, data } => {
                out.extend_from_slice(format!("CONT\t{id}").as_bytes());
                push_field(out, data);
            }
            ClientLine::Cancel(id) => out.extend_from_slice(format!("CANCEL\t{id}").as_bytes()),
        }
        out.push(b'\n');
    }

    /// The line as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

/// A line from the auth server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// `MECH\t<name>[\t<flag>...]`.
    Mech {
        /// Mechanism name.
        name: String,
        /// Flags (`plaintext`, `dictionary`, ...).
        flags: Vec<String>,
    },
    /// `SPID\t<auth process pid>`.
    Spid(u32),
    /// `CUID\t<connection id>`.
    Cuid(u32),
    /// `COOKIE\t<32 hex>`.
    Cookie(String),
    /// `DONE`: end of the handshake.
    Done,
    /// `CONT\t<id>\t<base64 challenge>`.
    Cont {
        /// Request id.
        id: u32,
        /// Base64 challenge.
        data: String,
    },
    /// `OK\t<id>[\t<fields>]` (`user=` first).
    Ok {
        /// Request id.
        id: u32,
        /// Fields as sent.
        fields: Fields,
    },
    /// `FAIL\t<id>[\t<fields>]` (`user=`, `code=`, `reason=`, `temp`...).
    Fail {
        /// Request id.
        id: u32,
        /// Fields as sent.
        fields: Fields,
    },
}

impl ServerLine {
    /// Parses one line (without the newline).
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let f = split_line(line)?;
        Ok(match f[0].as_str() {
            "VERSION" => ServerLine::Version {
                major: number("VERSION", "major", f.get(1))?,
                minor: number("VERSION", "minor", f.get(2))?,
            },
            "MECH" => ServerLine::Mech {
                name: text("MECH", "name", f.get(1))?,
                flags: f[2.min(f.len())..].to_vec(),
            },
            "SPID" => ServerLine::Spid(number("SPID", "pid", f.get(1))?),
            "CUID" => ServerLine::Cuid(number("CUID", "id", f.get(1))?),
            "COOKIE" => ServerLine::Cookie(text("COOKIE", "cookie", f.get(1))?),
            "DONE" => ServerLine::Done,
            "CONT" => ServerLine::Cont {
                id: number("CONT", "id", f.get(1))?,
                data: f.get(2).cloned().unwrap_or_default(),
            },
            "OK" => {
                ServerLine::Ok { id: number("OK", "id", f.get(1))?, fields: Fields::parse(f.iter().skip(2)) }
            }
            "FAIL" => ServerLine::Fail {
                id: number("FAIL", "id", f.get(1))?,
                fields: Fields::parse(f.iter().skip(2)),
            },
            other => return Err(ProtocolError::UnknownCommand(other.into())),
        })
    }

    /// Appends the line with its newline.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            ServerLine::Version { major, minor } => {
                out.extend_from_slice(format!("VERSION\t{major}\t{minor}").as_bytes())
            }
            ServerLine::Mech { name, flags } => {
                out.extend_from_slice(b"MECH");
                push_field(out, name);
                for flag in flags {
                    push_field(out, flag);
                }
            }
            ServerLine::Spid(pid) => out.extend_from_slice(format!("SPID\t{pid}").as_bytes()),
            ServerLine::Cuid(id) => out.extend_from_slice(format!("CUID\t{id}").as_bytes()),
            ServerLine::Cookie(c) => {
                out.extend_from_slice(b"COOKIE");
                push_field(out, c);
            }
            ServerLine::Done => out.extend_from_slice(b"DONE"),
            ServerLine::Cont { id, data } => {
                out.extend_from_slice(format!("CONT\t{id}").as_bytes());
                push_field(out, data);
            }
            ServerLine::Ok { id, fields } => {
                out.extend_from_slice(format!("OK\t{id}").as_bytes());
                fields.write(out);
            }
            ServerLine::Fail { id, fields } => {
                out.extend_from_slice(format!("FAIL\t{id}").as_bytes());
                fields.write(out);
            }
        }
        out.push(b'\n');
    }

    /// The line as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// The request id of CONT/OK/FAIL.
    pub fn request_id(&self) -> Option<u32> {
        match self {
            ServerLine::Cont { id, .. } | ServerLine::Ok { id, .. } | ServerLine::Fail { id, .. } => {
                Some(*id)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes captured from Dovecot 2.3.19.1's auth-client socket.
    const HANDSHAKE: &[u8] = b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n\
MECH\tCRAM-MD5\tdictionary\tactive\nMECH\tSCRAM-SHA-1\tmutual-auth\nSPID\t25609\nCUID\t2\n\
COOKIE\t073321cff062453d45797bda1adaa86f\nDONE\nOK\t1\tuser=tim\t\n\
FAIL\t99\treason=Authentication request timed out\n\
FAIL\t6\tcode=invalid_base64\treason=Invalid base64 data in initial response\nFAIL\t7\nCONT\t3\t\n";

    #[test]
    fn server_lines_round_trip_dovecot_bytes() {
        let mut again = Vec::new();
        for line in HANDSHAKE.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let parsed = ServerLine::parse(line).unwrap();
            parsed.write(&mut again);
        }
        assert_eq!(again, HANDSHAKE);
        let ok = ServerLine::parse(b"OK\t1\tuser=tim\t").unwrap();
        let ServerLine::Ok { fields, .. } = ok else { panic!() };
        assert_eq!(fields.get("user"), Some("tim"));
        assert_eq!(
            ServerLine::parse(b"MECH\tPLAIN\tplaintext").unwrap(),
            ServerLine::Mech { name: "PLAIN".into(), flags: vec!["plaintext".into()] }
        );
    }

    #[test]
    fn client_lines() {
        let line = b"AUTH\t1\tPLAIN\tservice=imap\tlip=127.0.0.1\tsecured\tresp=AHRpbQB0YW5zdGFhZg==";
        let ClientLine::Auth(req) = ClientLine::parse(line).unwrap() else { panic!() };
        assert_eq!(req.service(), Some("imap"));
        assert!(req.params.has("secured"));
        assert_eq!(req.resp.as_deref(), Some("AHRpbQB0YW5zdGFhZg=="));
        assert_eq!(ClientLine::Auth(req).to_bytes(), [&line[..], b"\n"].concat());
        let ClientLine::Auth(req) = ClientLine::parse(b"AUTH\t2\tPLAIN\tservice=imap\tresp").unwrap() else {
            panic!()
        };
        assert_eq!(req.resp.as_deref(), Some(""));
        assert_eq!(ClientLine::parse(b"CPID\t4242").unwrap(), ClientLine::Cpid(4242));
        assert_eq!(ClientLine::parse(b"CANCEL\t3").unwrap(), ClientLine::Cancel(3));
        let mut req = AuthRequest::new(5, "PLAIN", "smtp");
        req.params.add("rip", "a\tb");
        assert_eq!(ClientLine::Auth(req).to_bytes(), b"AUTH\t5\tPLAIN\tservice=smtp\trip=a\x01tb\n");
        for bad in [
            &b""[..],
            b"AUTH",
            b"AUTH\tx\tPLAIN",
            b"AUTH\t1",
            b"BOGUS\t1",
            b"CONT\t1",
            b"VERSION\t1\t-2",
            b"\xff",
        ] {
            assert!(ClientLine::parse(bad).is_err(), "{bad:?}");
        }
    }
}
