//! The static passdb and userdb. userdb args are a field template such as
//! `uid=vmail gid=vmail home=/var/vmail/%d/%n allow_all_users=yes` (uid/gid
//! names resolved once at init, values `%`-expanded per lookup); passdb
//! args are `password=<p>` or `nopassword` plus any fields (e.g. proxy).

use super::{words, DbError, ExtraFields, PassdbEntry, RequestVars};

/// A parsed `key=value` template (also used for `default_fields` and
/// `override_fields`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldTemplate(pub Vec<(String, String)>);

impl FieldTemplate {
    /// Parses space-separated `key=value` / `key` words.
    pub fn parse(args: &str) -> Self {
        FieldTemplate(
            words(args)
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (w.to_string(), String::new()),
                })
                .collect(),
        )
    }

    /// Expands every value for a request.
    pub fn expand(&self, vars: &RequestVars) -> Result<Vec<(String, String)>, DbError> {
        self.0.iter().map(|(k, v)| Ok((k.clone(), vars.expand(v, k)?))).collect()
    }
}

/// Result of a static userdb lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticUserdbLookup {
    /// The fields.
    Found(ExtraFields),
    /// `allow_all_users` is off and this is not a lookup after a successful
    /// authentication: the caller must check with a passdb lookup that the
    /// user exists, then use these fields.
    NeedPassdbCheck(ExtraFields),
}

/// The static userdb.
#[derive(Debug, Clone)]
pub struct StaticUserdb {
    template: FieldTemplate,
    allow_all_users: bool,
}

impl StaticUserdb {
    /// Parses args, resolving `uid`/`gid` names to numbers via NSS.
    pub fn new(args: &str) -> Result<Self, DbError> {
        let mut template = FieldTemplate::parse(args);
        let mut allow_all_users = false;
        template.0.retain(|(k, v)| {
            if k == "allow_all_users" {
                allow_all_users = v == "yes" || v.is_empty();
                false
            } else {
                true
            }
        });
        for (key, value) in &mut template.0 {
            if (key == "uid" || key == "gid") && !value.contains('%') && value.parse::<u32>().is_err() {
                *value = resolve_id(key == "uid", value)?.to_string();
            }
        }
        Ok(StaticUserdb { template, allow_all_users })
    }

    /// The lookup. `authenticated` is true for the userdb step after a
    /// successful login (Dovecot skips the existence check then).
    pub fn lookup(&self, vars: &RequestVars, authenticated: bool) -> Result<StaticUserdbLookup, DbError> {
        let mut fields = ExtraFields::default();
        for (k, v) in self.template.expand(vars)? {
            fields.set(&k, &v);
        }
        Ok(if self.allow_all_users || authenticated {
            StaticUserdbLookup::Found(fields)
        } else {
            StaticUserdbLookup::NeedPassdbCheck(fields)
        })
    }
}

fn resolve_id(uid: bool, name: &str) -> Result<u32, DbError> {
    let kind = if uid { "user" } else { "group" };
    let unknown = || DbError::UnknownId { driver: "static", kind, name: name.to_string() };
    if uid {
        nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()).ok_or_else(unknown)
    } else {
        nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw()).ok_or_else(unknown)
    }
}

/// The static passdb.
#[derive(Debug, Clone)]
pub struct StaticPassdb {
    template: FieldTemplate,
}

impl StaticPassdb {
    /// Parses args (`password=...`, `nopassword`, other fields).
    pub fn new(args: &str) -> Self {
        StaticPassdb { template: FieldTemplate::parse(args) }
    }

    /// Every user "exists"; the password and fields come from the template.
    pub fn lookup(&self, vars: &RequestVars) -> Result<PassdbEntry, DbError> {
        let mut entry =
            PassdbEntry { user: vars.user.clone(), default_scheme: "PLAIN".into(), ..Default::default() };
        for (k, v) in self.template.expand(vars)? {
            entry.set_field(&k, &v);
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::verify_password;
    use crate::mech::PassdbResult;

    #[test]
    fn static_userdb() {
        let db = StaticUserdb::new("uid=root gid=root home=/var/vmail/%d/%n allow_all_users=yes").unwrap();
        let StaticUserdbLookup::Found(f) =
            db.lookup(&RequestVars::new("tim@example.com", "imap"), false).unwrap()
        else {
            panic!()
        };
        assert_eq!(f.get("uid"), Some("0"));
        assert_eq!(f.get("gid"), Some("0"));
        assert_eq!(f.get("home"), Some("/var/vmail/example.com/tim"));
        let db = StaticUserdb::new("uid=1000 gid=1000 home=/home/%u").unwrap();
        assert!(matches!(
            db.lookup(&RequestVars::new("x", "imap"), false).unwrap(),
            StaticUserdbLookup::NeedPassdbCheck(_)
        ));
        assert!(matches!(
            db.lookup(&RequestVars::new("x", "imap"), true).unwrap(),
            StaticUserdbLookup::Found(_)
        ));
        assert!(StaticUserdb::new("uid=no-such-user-here").is_err());
    }

    #[test]
    fn static_passdb() {
        let db = StaticPassdb::new("password=%u-pw proxy=y host=10.0.0.1");
        let e = db.lookup(&RequestVars::new("tim", "imap")).unwrap();
        assert_eq!(verify_password(&e, b"tim-pw"), PassdbResult::Ok);
        assert_eq!(e.fields.get("host"), Some("10.0.0.1"));
        let e = StaticPassdb::new("nopassword").lookup(&RequestVars::new("tim", "imap")).unwrap();
        assert_eq!(verify_password(&e, b"x"), PassdbResult::Ok);
    }
}
