//! auth-master / auth-userdb protocol lines, both directions.
//!
//! Client → server: `VERSION`, `CPID` (refused on master sockets),
//! `REQUEST`, `USER`, `PASS`, `LIST`, `CACHE-FLUSH`.
//! Server → client: `VERSION`, `SPID`, `USER`, `PASS`, `NOTFOUND`, `FAIL`,
//! `LIST`, `DONE`, `OK`.

use super::{number, push_field, split_line, text, Fields, ProtocolError};

/// A line from an auth-master client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterRequest {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Major (1).
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// `CPID\t<pid>` (an auth-client line; an error on master sockets).
    Cpid(u32),
    /// `REQUEST\t<id>\t<client_pid>\t<auth_id>\t<cookie>[\t<params>]`.
    Request {
        /// Request id.
        id: u32,
        /// The login process's pid (its CPID).
        client_pid: u32,
        /// The `OK`ed auth request's id on that login connection.
        auth_id: u32,
        /// The login connection's COOKIE (hex).
        cookie: String,
        /// `session_pid=`, `request_auth_token`...
        params: Fields,
    },
    /// `USER\t<id>\t<user>[\t<params>]`: userdb lookup.
    User {
        /// Request id.
        id: u32,
        /// User name.
        user: String,
        /// `service=`, `lip=`, `rip=`...
        params: Fields,
    },
    /// `PASS\t<id>\t<user>[\t<params>]`: passdb lookup without password.
    Pass {
        /// Request id.
        id: u32,
        /// User name.
        user: String,
        /// `service=`...
        params: Fields,
    },
    /// `LIST\t<id>[\t<params>]`: iterate users (`user=<mask>`, `service=`).
    List {
        /// Request id.
        id: u32,
        /// Parameters.
        params: Fields,
    },
    /// `CACHE-FLUSH\t<id>[\t<user>...]`.
    CacheFlush {
        /// Request id.
        id: u32,
        /// Users to flush; empty = all.
        users: Vec<String>,
    },
}

impl MasterRequest {
    /// Parses one line (without the newline).
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let f = split_line(line)?;
        Ok(match f[0].as_str() {
            "VERSION" => MasterRequest::Version {
                major: number("VERSION", "major", f.get(1))?,
                minor: number("VERSION", "minor", f.get(2))?,
            },
            "CPID" => MasterRequest::Cpid(number("CPID", "pid", f.get(1))?),
            "REQUEST" => MasterRequest::Request {
                id: number("REQUEST", "id", f.get(1))?,
                client_pid: number("REQUEST", "client_pid", f.get(2))?,
                auth_id: number("REQUEST", "auth_id", f.get(3))?,
                cookie: text("REQUEST", "cookie", f.get(4))?,
                params: Fields::parse(f.iter().skip(5)),
            },
            "USER" => MasterRequest::User {
                id: number("USER", "id", f.get(1))?,
                user: text("USER", "user", f.get(2))?,
                params: Fields::parse(f.iter().skip(3)),
            },
            "PASS" => MasterRequest::Pass {
                id: number("PASS", "id", f.get(1))?,
                user: text("PASS", "user", f.get(2))?,
                params: Fields::parse(f.iter().skip(3)),
            },
            "LIST" => MasterRequest::List {
                id: number("LIST", "id", f.get(1))?,
                params: Fields::parse(f.iter().skip(2)),
            },
            "CACHE-FLUSH" => MasterRequest::CacheFlush {
                id: number("CACHE-FLUSH", "id", f.get(1))?,
                users: f[2.min(f.len())..].to_vec(),
            },
            other => return Err(ProtocolError::UnknownCommand(other.into())),
        })
    }

    /// Appends the line with its newline.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            MasterRequest::Version { major, minor } => {
                out.extend_from_slice(format!("VERSION\t{major}\t{minor}").as_bytes())
            }
            MasterRequest::Cpid(pid) => out.extend_from_slice(format!("CPID\t{pid}").as_bytes()),
            MasterRequest::Request { id, client_pid, auth_id, cookie, params } => {
                out.extend_from_slice(format!("REQUEST\t{id}\t{client_pid}\t{auth_id}").as_bytes());
                push_field(out, cookie);
                params.write(out);
            }
            MasterRequest::User { id, user, params } => {
                out.extend_from_slice(format!("USER\t{id}").as_bytes());
                push_field(out, user);
                params.write(out);
            }
            MasterRequest::Pass { id, user, params } => {
                out.extend_from_slice(format!("PASS\t{id}").as_bytes());
                push_field(out, user);
                params.write(out);
            }
            MasterRequest::List { id, params } => {
                out.extend_from_slice(format!("LIST\t{id}").as_bytes());
                params.write(out);
            }
            MasterRequest::CacheFlush { id, users } => {
                out.extend_from_slice(format!("CACHE-FLUSH\t{id}").as_bytes());
                for u in users {
                    push_field(out, u);
                }
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
}

/// A line from the auth server on a master/userdb socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterReply {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Major.
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// `SPID\t<pid>`.
    Spid(u32),
    /// `USER\t<id>\t<user>[\t<userdb fields>]`.
    User {
        /// Request id.
        id: u32,
        /// Final user name.
        user: String,
        /// userdb fields (uid, gid, home, mail, ...).
        fields: Fields,
    },
    /// `PASS\t<id>[\t<passdb fields>]` (`user=` first).
    Pass {
        /// Request id.
        id: u32,
        /// passdb fields.
        fields: Fields,
    },
    /// `NOTFOUND\t<id>`.
    NotFound(u32),
    /// `FAIL\t<id>[\treason=...]`.
    Fail {
        /// Request id.
        id: u32,
        /// Fields (`reason=`).
        fields: Fields,
    },
    /// `LIST\t<id>\t<user>`: one iterated user.
    List {
        /// Request id.
        id: u32,
        /// User name.
        user: String,
    },
    /// `DONE\t<id>\t[fail]`: end of iteration.
    Done {
        /// Request id.
        id: u32,
        /// Iteration failed.
        failed: bool,
    },
    /// `OK\t<id>\t<count>`: CACHE-FLUSH result.
    Ok {
        /// Request id.
        id: u32,
        /// Entries flushed.
        count: u32,
    },
}

impl MasterReply {
    /// Parses one line (without the newline).
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let f = split_line(line)?;
        Ok(match f[0].as_str() {
            "VERSION" => MasterReply::Version {
                major: number("VERSION", "major", f.get(1))?,
                minor: number("VERSION", "minor", f.get(2))?,
            },
            "SPID" => MasterReply::Spid(number("SPID", "pid", f.get(1))?),
            "USER" => MasterReply::User {
                id: number("USER", "id", f.get(1))?,
                user: text("USER", "user", f.get(2))?,
                fields: Fields::parse(f.iter().skip(3)),
            },
            "PASS" => MasterReply::Pass {
                id: number("PASS", "id", f.get(1))?,
                fields: Fields::parse(f.iter().skip(2)),
            },
            "NOTFOUND" => MasterReply::NotFound(number("NOTFOUND", "id", f.get(1))?),
            "FAIL" => MasterReply::Fail {
                id: number("FAIL", "id", f.get(1))?,
                fields: Fields::parse(f.iter().skip(2)),
            },
            "LIST" => MasterReply::List {
                id: number("LIST", "id", f.get(1))?,
                user: text("LIST", "user", f.get(2))?,
            },
            "DONE" => MasterReply::Done {
                id: number("DONE", "id", f.get(1))?,
                failed: f.get(2).is_some_and(|s| s == "fail"),
            },
            "OK" => {
                MasterReply::Ok { id: number("OK", "id", f.get(1))?, count: number("OK", "count", f.get(2))? }
            }
            other => return Err(ProtocolError::UnknownCommand(other.into())),
        })
    }

    /// Appends the line with its newline, as Dovecot 2.3 writes it
    /// (`DONE\t<id>\t` with an empty last field on success).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            MasterReply::Version { major, minor } => {
                out.extend_from_slice(format!("VERSION\t{major}\t{minor}").as_bytes())
            }
            MasterReply::Spid(pid) => out.extend_from_slice(format!("SPID\t{pid}").as_bytes()),
            MasterReply::User { id, user, fields } => {
                out.extend_from_slice(format!("USER\t{id}").as_bytes());
                push_field(out, user);
                fields.write(out);
            }
            MasterReply::Pass { id, fields } => {
                out.extend_from_slice(format!("PASS\t{id}").as_bytes());
                fields.write(out);
            }
            MasterReply::NotFound(id) => out.extend_from_slice(format!("NOTFOUND\t{id}").as_bytes()),
            MasterReply::Fail { id, fields } => {
                out.extend_from_slice(format!("FAIL\t{id}").as_bytes());
                fields.write(out);
            }
            MasterReply::List { id, user } => {
                out.extend_from_slice(format!("LIST\t{id}").as_bytes());
                push_field(out, user);
            }
            MasterReply::Done { id, failed } => {
                out.extend_from_slice(format!("DONE\t{id}\t{}", if *failed { "fail" } else { "" }).as_bytes())
            }
            MasterReply::Ok { id, count } => out.extend_from_slice(format!("OK\t{id}\t{count}").as_bytes()),
        }
        out.push(b'\n');
    }

    /// The line as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// The request id, for replies that carry one.
    pub fn request_id(&self) -> Option<u32> {
        match self {
            MasterReply::Version { .. } | MasterReply::Spid(_) => None,
            MasterReply::User { id, .. }
            | MasterReply::Pass { id, .. }
            | MasterReply::NotFound(id)
            | MasterReply::Fail { id, .. }
            | MasterReply::List { id, .. }
            | MasterReply::Done { id, .. }
            | MasterReply::Ok { id, .. } => Some(*id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes captured from Dovecot 2.3.19.1's auth-master socket.
    const REPLIES: &[u8] = b"VERSION\t1\t1\nSPID\t25609\n\
USER\t1\ttim\tuid=1000\tgid=1000\thome=/home/tim\tmail=maildir:~/Maildir\nNOTFOUND\t2\n\
PASS\t3\tuser=tim\t\nLIST\t4\ttim\nLIST\t4\tbob\nDONE\t4\t\nFAIL\t5\treason=x\nDONE\t6\tfail\nOK\t7\t3\n";

    #[test]
    fn replies_round_trip_dovecot_bytes() {
        let mut again = Vec::new();
        for line in REPLIES.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            MasterReply::parse(line).unwrap().write(&mut again);
        }
        assert_eq!(again, REPLIES);
        let MasterReply::User { fields, .. } =
            MasterReply::parse(b"USER\t1\ttim\tuid=1000\thome=/h").unwrap()
        else {
            panic!()
        };
        assert_eq!(fields.get("uid"), Some("1000"));
    }

    #[test]
    fn requests() {
        let lines: &[&[u8]] = &[
            b"VERSION\t1\t0\n",
            b"USER\t1\ttim\tservice=imap\n",
            b"PASS\t2\ttim\tservice=imap\n",
            b"LIST\t3\tuser=t*\n",
            b"REQUEST\t4\t1234\t1\t073321cff062453d45797bda1adaa86f\tsession_pid=99\n",
            b"CACHE-FLUSH\t5\ttim\tbob\n",
            b"CPID\t77\n",
        ];
        for line in lines {
            let parsed = MasterRequest::parse(&line[..line.len() - 1]).unwrap();
            assert_eq!(&parsed.to_bytes()[..], *line);
        }
        for bad in [&b"USER\t1"[..], b"REQUEST\t1\t2\t3", b"LIST", b"NOPE", b"USER\tx\ty"] {
            assert!(MasterRequest::parse(bad).is_err(), "{bad:?}");
        }
    }
}
