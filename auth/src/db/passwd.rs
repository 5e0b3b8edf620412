//! The system-account drivers: `passwd` (NSS `getpwnam_r`, passdb and
//! userdb, with iteration) and `shadow` (`getspnam_r`, passdb). Both block
//! (NSS may ask LDAP or sssd), so the auth process runs them in auth-worker
//! processes. Passwords are `CRYPT` (system crypt(3)); a hash starting with
//! `!` or `*`, or an empty one, is a locked account (user disabled), as in
//! Dovecot's `IS_VALID_PASSWD`.

use nix::unistd::User;

use super::sys::getspnam;
use super::{DbError, ExtraFields, PassdbEntry, RequestVars};

/// Dovecot's `IS_VALID_PASSWD`.
pub fn is_valid_password(hash: &str) -> bool {
    !hash.is_empty() && !hash.starts_with('*') && !hash.starts_with('!')
}

fn nss_user(name: &str) -> Result<Option<User>, DbError> {
    User::from_name(name).map_err(|e| DbError::Nss { driver: "passwd", user: name.to_string(), source: e })
}

/// The passwd passdb/userdb.
#[derive(Debug, Clone, Default)]
pub struct PasswdDb;

impl PasswdDb {
    /// passdb lookup: `pw_passwd` as a CRYPT password; the user name is
    /// replaced by the canonical one from NSS. A locked account gives an
    /// entry without password and the [`LOCKED_FIELD`] marker, which the
    /// caller maps to "user disabled".
    pub fn passdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<PassdbEntry>, DbError> {
        let Some(pw) = nss_user(&vars.user)? else { return Ok(None) };
        let hash = pw.passwd.to_string_lossy().into_owned();
        Ok(Some(system_entry(&pw.name, hash)))
    }

    /// userdb lookup: `system_groups_user`, `uid`, `gid`, `home` (Dovecot's
    /// field order).
    pub fn userdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<ExtraFields>, DbError> {
        let Some(pw) = nss_user(&vars.user)? else { return Ok(None) };
        let mut fields = ExtraFields::default();
        fields.set("system_groups_user", &pw.name);
        fields.set("uid", &pw.uid.to_string());
        fields.set("gid", &pw.gid.to_string());
        fields.set("home", &pw.dir.to_string_lossy());
        Ok(Some(fields))
    }

    /// Every account of `/etc/passwd` with `first_valid_uid <= uid <=
    /// last_valid_uid` (0 = no upper limit), in file order. (Accounts only
    /// NSS modules know are not listed: libc's getpwent is not reentrant.)
    pub fn iterate(&mut self, first_valid_uid: u32, last_valid_uid: u32) -> Result<Vec<String>, DbError> {
        let text = std::fs::read_to_string("/etc/passwd")
            .map_err(|source| DbError::Io { path: "/etc/passwd".into(), source })?;
        let mut users = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(name), Some(uid)) = (f.first(), f.get(2).and_then(|u| u.parse::<u32>().ok())) else {
                continue;
            };
            if uid < first_valid_uid || (last_valid_uid != 0 && uid > last_valid_uid) {
                continue;
            }
            users.push(name.to_string());
        }
        Ok(users)
    }
}

/// The shadow passdb.
#[derive(Debug, Clone, Default)]
pub struct ShadowDb;

impl ShadowDb {
    /// passdb lookup via `getspnam_r`.
    pub fn passdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<PassdbEntry>, DbError> {
        let entry = getspnam(&vars.user)
            .map_err(|source| DbError::Io { path: format!("getspnam({})", vars.user), source })?;
        Ok(entry.map(|sp| system_entry(&sp.name, sp.password)))
    }
}

/// A passdb entry for a system account: CRYPT password, or the `locked`
/// marker field for `!`/`*`/empty hashes.
fn system_entry(name: &str, hash: String) -> PassdbEntry {
    let mut entry =
        PassdbEntry { user: name.to_string(), default_scheme: "CRYPT".into(), ..Default::default() };
    if is_valid_password(&hash) {
        entry.password = Some(hash);
    } else {
        entry.fields.set(LOCKED_FIELD, "");
    }
    entry
}

/// Marker a driver sets on an entry whose account is locked; the caller
/// answers "user disabled" and never sends the field to clients.
pub const LOCKED_FIELD: &str = "dovecote_locked";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_locked_hashes() {
        let mut db = PasswdDb;
        let fields = db.userdb_lookup(&RequestVars::new("root", "imap")).unwrap().unwrap();
        assert_eq!(fields.get("uid"), Some("0"));
        assert_eq!(fields.0[0].0, "system_groups_user");
        assert!(db.passdb_lookup(&RequestVars::new("no-such-user-dovecote", "imap")).unwrap().is_none());
        assert!(!is_valid_password("!$6$x"));
        assert!(!is_valid_password("*"));
        assert!(is_valid_password("$6$abc"));
        assert!(system_entry("x", "!".into()).fields.has(LOCKED_FIELD));
        assert!(db.iterate(0, 0).unwrap().contains(&"root".to_string()));
        assert!(!db.iterate(1, 0).unwrap().contains(&"root".to_string()));
    }
}
