//! Blocking auth-master client: userdb/passdb lookups, user iteration and
//! the post-login `REQUEST`, over an auth-master or auth-userdb socket. Used
//! by mail processes, lmtp and doveadm.

use std::path::Path;
use std::time::Duration;

use super::client_conn::{ConnError, LineConn};
use super::master::{MasterReply, MasterRequest};
use super::{Fields, MASTER_CLIENT_VERSION};

/// lib-auth's auth-master input buffer: longest reply line we accept.
const MAX_LINE: usize = 8192 * 8;
/// `MASTER_AUTH_LOOKUP_TIMEOUT_SECS`.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(155);

/// Result of a `USER`/`REQUEST`/`PASS` lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Found: the (possibly changed) user name and its fields.
    Found {
        /// User name (for `PASS`, the `user=` field).
        user: String,
        /// userdb or passdb fields.
        fields: Fields,
    },
    /// `NOTFOUND`.
    NotFound,
    /// `FAIL` with its reason, if any.
    Failed(Option<String>),
}

/// A blocking auth-master connection.
pub struct AuthMasterConnection {
    conn: LineConn,
    spid: u32,
    next_id: u32,
}

impl AuthMasterConnection {
    /// Connects, sends `VERSION\t1\t0` and reads the server's VERSION and
    /// SPID.
    pub fn connect(path: &Path) -> Result<Self, ConnError> {
        let mut conn = LineConn::connect(path, MAX_LINE)?;
        conn.set_timeout(Some(LOOKUP_TIMEOUT))?;
        conn.send(
            &MasterRequest::Version { major: MASTER_CLIENT_VERSION.0, minor: MASTER_CLIENT_VERSION.1 }
                .to_bytes(),
        )?;
        let mut spid = None;
        let mut version_seen = false;
        while spid.is_none() {
            let line = conn.read_line()?;
            match MasterReply::parse(&line).map_err(|e| conn.protocol(e))? {
                MasterReply::Version { major, .. } if major != 1 => {
                    return Err(ConnError::Version { path: conn.path.clone(), major })
                }
                MasterReply::Version { .. } => version_seen = true,
                MasterReply::Spid(pid) if version_seen => spid = Some(pid),
                other => return Err(conn.unexpected(other)),
            }
        }
        Ok(AuthMasterConnection { conn, spid: spid.unwrap_or_default(), next_id: 1 })
    }

    /// The auth server's pid (compare with the login's SPID).
    pub fn spid(&self) -> u32 {
        self.spid
    }

    /// Read timeout (default [`LOOKUP_TIMEOUT`]).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ConnError> {
        self.conn.set_timeout(timeout)
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn read(&mut self) -> Result<MasterReply, ConnError> {
        let line = self.conn.read_line()?;
        MasterReply::parse(&line).map_err(|e| self.conn.protocol(e))
    }

    fn lookup(&mut self, request: MasterRequest, id: u32) -> Result<Lookup, ConnError> {
        self.conn.send(&request.to_bytes())?;
        loop {
            let reply = self.read()?;
            if reply.request_id() != Some(id) {
                continue;
            }
            return Ok(match reply {
                MasterReply::User { user, fields, .. } => Lookup::Found { user, fields },
                MasterReply::Pass { fields, .. } => {
                    Lookup::Found { user: fields.get("user").unwrap_or_default().to_string(), fields }
                }
                MasterReply::NotFound(_) => Lookup::NotFound,
                MasterReply::Fail { fields, .. } => Lookup::Failed(fields.get("reason").map(str::to_string)),
                other => return Err(self.conn.unexpected(other)),
            });
        }
    }

    /// userdb lookup (`USER`); `params` usually has `service=`.
    pub fn user(&mut self, user: &str, params: Fields) -> Result<Lookup, ConnError> {
        let id = self.id();
        self.lookup(MasterRequest::User { id, user: user.into(), params }, id)
    }

    /// passdb lookup without password (`PASS`).
    pub fn pass(&mut self, user: &str, params: Fields) -> Result<Lookup, ConnError> {
        let id = self.id();
        self.lookup(MasterRequest::Pass { id, user: user.into(), params }, id)
    }

    /// Post-login `REQUEST` for a login's OK'ed auth request.
    pub fn request(
        &mut self,
        client_pid: u32,
        auth_id: u32,
        cookie: &str,
        params: Fields,
    ) -> Result<Lookup, ConnError> {
        let id = self.id();
        let req = MasterRequest::Request { id, client_pid, auth_id, cookie: cookie.into(), params };
        self.lookup(req, id)
    }

    /// Iterates users (`LIST`); `params` may hold `user=<mask>`. Returns the
    /// users, or `Ok(Err(users))` when the server reported `DONE ... fail`
    /// after listing some.
    pub fn list(&mut self, params: Fields) -> Result<Result<Vec<String>, Vec<String>>, ConnError> {
        let id = self.id();
        self.conn.send(&MasterRequest::List { id, params }.to_bytes())?;
        let mut users = Vec::new();
        loop {
            match self.read()? {
                MasterReply::List { id: rid, user } if rid == id => users.push(user),
                MasterReply::Done { id: rid, failed } if rid == id => {
                    return Ok(if failed { Err(users) } else { Ok(users) });
                }
                other if other.request_id() != Some(id) => continue,
                other => return Err(self.conn.unexpected(other)),
            }
        }
    }
}
