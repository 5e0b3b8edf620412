//! The mail user's uid/gid: from the userdb reply (`uid`, `gid`) or
//! `mail_uid`/`mail_gid`, checked against `first_valid_uid`,
//! `last_valid_uid`, `first_valid_gid`, `last_valid_gid` with Dovecot
//! 2.3's messages (lib-storage's `service_drop_privileges`), then the
//! permanent drop: setgroups (the primary gid, `mail_access_groups`,
//! `mail_privileged_group`), setgid, setuid.

use dovecote_auth::protocol::Fields;
use dovecote_config::Config;
use nix::unistd::{Gid, Group, Uid, User};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PrivilegeError {
    #[error("User is missing UID (see mail_uid setting)")]
    MissingUid,
    #[error("User is missing GID (see mail_gid setting)")]
    MissingGid,
    #[error("Unknown UID in {from}: {value}")]
    UnknownUser { value: String, from: &'static str },
    #[error("Unknown GID in {from}: {value}")]
    UnknownGroup { value: String, from: &'static str },
    #[error("Mail access for users with UID {uid} not permitted, see first_valid_uid in config file (uid from {from}).")]
    Uid { uid: u32, from: &'static str },
    #[error("Mail access for users with GID {gid} not permitted, see first_valid_gid in config file (gid from {from}).")]
    Gid { gid: u32, from: &'static str },
    #[error("{setting}: Unknown group name: {name}")]
    UnknownExtraGroup { setting: &'static str, name: String },
    #[error("{step}({id}) failed: {err}")]
    Drop { step: &'static str, id: String, err: nix::Error },
    #[error("We couldn't drop root privileges")]
    StillRoot,
    #[error(
        "This process already runs as uid {uid} gid {gid} (service_count != 1 with users of different uids)"
    )]
    AlreadyDropped { uid: u32, gid: u32 },
}

/// What the process will run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups besides `gid`.
    pub extra_groups: Vec<u32>,
}

fn uid_of(value: &str, from: &'static str) -> Result<u32, PrivilegeError> {
    if let Ok(n) = value.parse::<u32>() {
        return Ok(n);
    }
    User::from_name(value)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| PrivilegeError::UnknownUser { value: value.to_string(), from })
}

fn gid_of(value: &str, from: &'static str) -> Result<u32, PrivilegeError> {
    if let Ok(n) = value.parse::<u32>() {
        return Ok(n);
    }
    Group::from_name(value)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| PrivilegeError::UnknownGroup { value: value.to_string(), from })
}

impl Privileges {
    /// Resolves and checks the uid/gid for a userdb reply.
    pub fn resolve(config: &Config, fields: &Fields) -> Result<Privileges, PrivilegeError> {
        let (uid_text, uid_source) = match fields.get("uid").filter(|v| !v.is_empty()) {
            Some(v) => (v.to_string(), "userdb lookup"),
            None => (config.text("mail_uid"), "mail_uid setting"),
        };
        let (gid_text, gid_source) = match fields.get("gid").filter(|v| !v.is_empty()) {
            Some(v) => (v.to_string(), "userdb lookup"),
            None => (config.text("mail_gid"), "mail_gid setting"),
        };
        if uid_text.is_empty() {
            return Err(PrivilegeError::MissingUid);
        }
        if gid_text.is_empty() {
            return Err(PrivilegeError::MissingGid);
        }
        let uid = uid_of(&uid_text, uid_source)?;
        let gid = gid_of(&gid_text, gid_source)?;
        let root = &config.root;
        let (first_uid, last_uid) = (root.number("first_valid_uid"), root.number("last_valid_uid"));
        if u64::from(uid) < first_uid || (last_uid != 0 && u64::from(uid) > last_uid) {
            return Err(PrivilegeError::Uid { uid, from: uid_source });
        }
        let (first_gid, last_gid) = (root.number("first_valid_gid"), root.number("last_valid_gid"));
        if u64::from(gid) < first_gid || (last_gid != 0 && u64::from(gid) > last_gid) {
            return Err(PrivilegeError::Gid { gid, from: gid_source });
        }
        let mut extra_groups = Vec::new();
        for setting in ["mail_access_groups", "mail_privileged_group"] {
            for name in config.text(setting).split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let g =
                    match name.parse::<u32>() {
                        Ok(n) => n,
                        Err(_) => Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw()).ok_or_else(
                            || PrivilegeError::UnknownExtraGroup { setting, name: name.to_string() },
                        )?,
                    };
                if g != gid && !extra_groups.contains(&g) {
                    extra_groups.push(g);
                }
            }
        }
        Ok(Privileges { uid, gid, extra_groups })
    }

    /// Drops to these ids for good.
    pub fn drop_to(&self) -> Result<(), PrivilegeError> {
        let mut groups = vec![Gid::from_raw(self.gid)];
        groups.extend(self.extra_groups.iter().map(|g| Gid::from_raw(*g)));
        let ids = |v: &[Gid]| v.iter().map(|g| g.as_raw().to_string()).collect::<Vec<_>>().join(",");
        if Uid::effective().is_root() {
            nix::unistd::setgroups(&groups).map_err(|err| PrivilegeError::Drop {
                step: "setgroups",
                id: ids(&groups),
                err,
            })?;
        }
        nix::unistd::setgid(Gid::from_raw(self.gid)).map_err(|err| PrivilegeError::Drop {
            step: "setgid",
            id: self.gid.to_string(),
            err,
        })?;
        nix::unistd::setuid(Uid::from_raw(self.uid)).map_err(|err| PrivilegeError::Drop {
            step: "setuid",
            id: self.uid.to_string(),
            err,
        })?;
        if self.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::StillRoot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        dovecote_config::parse_str("test.conf", text, Default::default()).expect("config")
    }

    #[test]
    fn userdb_uid_below_first_valid_uid_is_refused_with_dovecots_message() {
        let cfg = config("first_valid_uid = 500\n");
        let err =
            Privileges::resolve(&cfg, &Fields::new().with("uid", "100").with("gid", "100")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Mail access for users with UID 100 not permitted, see first_valid_uid in config file (uid from userdb lookup)."
        );
        let cfg = config("first_valid_uid = 500\nlast_valid_uid = 1000\nmail_uid = 2000\nmail_gid = 2000\n");
        let err = Privileges::resolve(&cfg, &Fields::new()).unwrap_err();
        assert!(err.to_string().ends_with("(uid from mail_uid setting)."), "{err}");
        let cfg = config("first_valid_gid = 500\n");
        let err =
            Privileges::resolve(&cfg, &Fields::new().with("uid", "1000").with("gid", "10")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Mail access for users with GID 10 not permitted, see first_valid_gid in config file (gid from userdb lookup)."
        );
    }

    #[test]
    fn mail_uid_fallback_and_groups() {
        let cfg = config("mail_uid = 1000\nmail_gid = 1001\nmail_access_groups = 5, 1001\n");
        let p = Privileges::resolve(&cfg, &Fields::new()).unwrap();
        assert_eq!(p, Privileges { uid: 1000, gid: 1001, extra_groups: vec![5] });
        let p = Privileges::resolve(&cfg, &Fields::new().with("uid", "1500")).unwrap();
        assert_eq!(p.uid, 1500);
        assert_eq!(Privileges::resolve(&config(""), &Fields::new()), Err(PrivilegeError::MissingUid));
    }
}
