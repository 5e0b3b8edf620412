//! Driver dispatch: one [`PassdbDriver`] / [`UserdbDriver`] variant per
//! `driver =` name, built from `args`, with the three operations the auth
//! process needs — look an entry up, verify a plaintext password, iterate
//! users — and [`PassdbDriver::blocking`], which says whether the auth
//! process must hand the call to an auth-worker process (passwd, shadow,
//! pam, sql, ldap) or may run it inline (passwd-file, static).
//!
//! Adding a driver: implement
//! `passdb_lookup(&mut self, &RequestVars) -> Result<Option<PassdbEntry>, DbError>`,
//! `userdb_lookup(&mut self, &RequestVars) -> Result<Option<ExtraFields>, DbError>`
//! and optionally `iterate`, add a variant to both enums, a name in `new`,
//! and return `true` from `blocking` when it may block. A backend that
//! cannot be reached must return `Err` (an internal failure: the client
//! gets `FAIL … code=temp_fail`), never `Ok(None)`.

use super::ldap::LdapDb;
use super::pam::{PamArgs, PamDb};
use super::passwd::{PasswdDb, ShadowDb, LOCKED_FIELD};
use super::passwd_file::{PasswdFileArgs, PasswdFileDb};
use super::sql::SqlDb;
use super::static_db::{StaticPassdb, StaticUserdb, StaticUserdbLookup};
use super::{verify_password, DbError, ExtraFields, PassdbEntry, RequestVars};
use crate::mech::PassdbResult;

/// A configured passdb driver.
#[derive(Debug)]
pub enum PassdbDriver {
    /// `passwd-file`.
    PasswdFile(PasswdFileDb),
    /// `static`.
    Static(StaticPassdb),
    /// `passwd` (NSS).
    Passwd(PasswdDb),
    /// `shadow`.
    Shadow(ShadowDb),
    /// `pam`.
    Pam(PamDb),
    /// `sql` (sqlite, mysql).
    Sql(Box<SqlDb>),
    /// `ldap`.
    Ldap(Box<LdapDb>),
}

/// Outcome of [`PassdbDriver::verify`] / [`PassdbDriver::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassdbOutcome {
    /// The passdb result.
    pub result: PassdbResult,
    /// What the passdb found (fields, changed user name, stored password).
    pub entry: Option<PassdbEntry>,
    /// A log message (internal failures at error level, the rest at info).
    pub log: Option<String>,
}

impl PassdbOutcome {
    fn from_lookup(found: Result<Option<PassdbEntry>, DbError>) -> Self {
        match found {
            Ok(Some(entry)) if entry.fields.has(LOCKED_FIELD) => PassdbOutcome {
                result: PassdbResult::UserDisabled,
                entry: Some(entry),
                log: Some("invalid password field".into()),
            },
            Ok(Some(entry)) => PassdbOutcome { result: PassdbResult::Ok, entry: Some(entry), log: None },
            Ok(None) => PassdbOutcome {
                result: PassdbResult::UserUnknown,
                entry: None,
                log: Some("unknown user".into()),
            },
            Err(e) => {
                PassdbOutcome { result: PassdbResult::InternalFailure, entry: None, log: Some(e.to_string()) }
            }
        }
    }
}

impl PassdbDriver {
    /// Builds `driver` with `args`.
    pub fn new(driver: &str, args: &str) -> Result<Self, DbError> {
        Ok(match driver {
            "passwd-file" => PassdbDriver::PasswdFile(PasswdFileDb::new(PasswdFileArgs::parse(args)?)),
            "static" => PassdbDriver::Static(StaticPassdb::new(args)),
            "passwd" => PassdbDriver::Passwd(PasswdDb),
            "shadow" => PassdbDriver::Shadow(ShadowDb),
            "pam" => PassdbDriver::Pam(PamDb::new(PamArgs::parse(args)?)),
            "sql" => PassdbDriver::Sql(Box::new(SqlDb::new(args)?)),
            "ldap" => PassdbDriver::Ldap(Box::new(LdapDb::new(args)?)),
            other => {
                return Err(DbError::Args {
                    driver: "passdb",
                    reason: format!("Unknown passdb driver '{other}'"),
                })
            }
        })
    }

    /// The `driver =` name.
    pub fn name(&self) -> &'static str {
        match self {
            PassdbDriver::PasswdFile(_) => "passwd-file",
            PassdbDriver::Static(_) => "static",
            PassdbDriver::Passwd(_) => "passwd",
            PassdbDriver::Shadow(_) => "shadow",
            PassdbDriver::Pam(_) => "pam",
            PassdbDriver::Sql(_) => "sql",
            PassdbDriver::Ldap(_) => "ldap",
        }
    }

    /// True when lookups may block: they run in an auth-worker.
    pub fn blocking(&self) -> bool {
        matches!(
            self,
            PassdbDriver::Passwd(_)
                | PassdbDriver::Shadow(_)
                | PassdbDriver::Pam(_)
                | PassdbDriver::Sql(_)
                | PassdbDriver::Ldap(_)
        )
    }

    /// The auth cache key template, for drivers whose results may be cached.
    pub fn cache_key(&self) -> Option<&str> {
        match self {
            PassdbDriver::Passwd(_)
            | PassdbDriver::Shadow(_)
            | PassdbDriver::Sql(_)
            | PassdbDriver::Ldap(_) => Some("%u"),
            PassdbDriver::Pam(db) => db.args().cache_key.as_deref(),
            _ => None,
        }
    }

    /// True when the driver can hand out stored credentials (PAM cannot).
    pub fn has_credentials(&self) -> bool {
        !matches!(self, PassdbDriver::Pam(_))
    }

    /// True when a pam driver has done its `max_requests` in this process.
    pub fn exhausted(&self) -> bool {
        matches!(self, PassdbDriver::Pam(db) if db.exhausted())
    }

    /// Looks the user up without checking a password.
    pub fn lookup(&mut self, vars: &RequestVars) -> PassdbOutcome {
        let found = match self {
            PassdbDriver::PasswdFile(db) => db.passdb_lookup(vars),
            PassdbDriver::Static(db) => db.lookup(vars).map(Some),
            PassdbDriver::Passwd(db) => db.passdb_lookup(vars),
            PassdbDriver::Shadow(db) => db.passdb_lookup(vars),
            PassdbDriver::Sql(db) => db.passdb_lookup(vars),
            PassdbDriver::Ldap(db) => db.passdb_lookup(vars),
            PassdbDriver::Pam(_) => {
                return PassdbOutcome {
                    result: PassdbResult::SchemeNotAvailable,
                    entry: None,
                    log: Some("pam: credentials lookups are not supported".into()),
                }
            }
        };
        PassdbOutcome::from_lookup(found)
    }

    /// Looks the user up and verifies `password`.
    pub fn verify(&mut self, vars: &RequestVars, password: &[u8]) -> PassdbOutcome {
        if let PassdbDriver::Pam(db) = self {
            let v = db.verify(vars, password);
            return PassdbOutcome { result: v.result, entry: Some(v.entry), log: v.error };
        }
        let own = match self {
            PassdbDriver::Sql(db) => Some(db.verify_plain(vars, password)),
            PassdbDriver::Ldap(db) => Some(db.verify_plain(vars, password)),
            _ => None,
        };
        if let Some(verified) = own {
            return match verified {
                Ok(v) => PassdbOutcome {
                    result: v.result,
                    entry: v.entry,
                    log: match v.result {
                        PassdbResult::UserUnknown => Some("unknown user".into()),
                        PassdbResult::PasswordMismatch => Some("Password mismatch".into()),
                        _ => None,
                    },
                },
                Err(e) => PassdbOutcome {
                    result: PassdbResult::InternalFailure,
                    entry: None,
                    log: Some(e.to_string()),
                },
            };
        }
        let mut outcome = self.lookup(vars);
        if let (PassdbResult::Ok, Some(entry)) = (outcome.result, outcome.entry.as_ref()) {
            outcome.result = verify_password(entry, password);
            outcome.log = match outcome.result {
                PassdbResult::PasswordMismatch => Some("Password mismatch".into()),
                PassdbResult::InternalFailure => Some("No password or unknown scheme in passdb".into()),
                _ => None,
            };
        }
        outcome
    }
}

/// A configured userdb driver.
#[derive(Debug)]
pub enum UserdbDriver {
    /// `passwd-file`.
    PasswdFile(PasswdFileDb),
    /// `static`.
    Static(StaticUserdb),
    /// `passwd` (NSS).
    Passwd(PasswdDb),
    /// `sql` (sqlite, mysql).
    Sql(Box<SqlDb>),
    /// `ldap`.
    Ldap(Box<LdapDb>),
}

/// Outcome of a userdb lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbOutcome {
    /// Found, with these fields.
    Found(ExtraFields),
    /// Not found.
    NotFound,
    /// The static userdb without `allow_all_users`: found only if a passdb
    /// lookup finds the user.
    NeedPassdbCheck(ExtraFields),
    /// Backend failure (the message is for the log).
    Failed(String),
}

impl UserdbDriver {
    /// Builds `driver` with `args`.
    pub fn new(driver: &str, args: &str) -> Result<Self, DbError> {
        Ok(match driver {
            "passwd-file" => UserdbDriver::PasswdFile(PasswdFileDb::new(PasswdFileArgs::parse(args)?)),
            "static" => UserdbDriver::Static(StaticUserdb::new(args)?),
            "passwd" => UserdbDriver::Passwd(PasswdDb),
            "sql" => UserdbDriver::Sql(Box::new(SqlDb::new(args)?)),
            "ldap" => UserdbDriver::Ldap(Box::new(LdapDb::new(args)?)),
            other => {
                return Err(DbError::Args {
                    driver: "userdb",
                    reason: format!("Unknown userdb driver '{other}'"),
                })
            }
        })
    }

    /// The `driver =` name.
    pub fn name(&self) -> &'static str {
        match self {
            UserdbDriver::PasswdFile(_) => "passwd-file",
            UserdbDriver::Static(_) => "static",
            UserdbDriver::Passwd(_) => "passwd",
            UserdbDriver::Sql(_) => "sql",
            UserdbDriver::Ldap(_) => "ldap",
        }
    }

    /// True when lookups may block: they run in an auth-worker.
    pub fn blocking(&self) -> bool {
        matches!(self, UserdbDriver::Passwd(_) | UserdbDriver::Sql(_) | UserdbDriver::Ldap(_))
    }

    /// The auth cache key template, for drivers whose results may be cached.
    pub fn cache_key(&self) -> Option<&str> {
        match self {
            UserdbDriver::Passwd(_) | UserdbDriver::Sql(_) | UserdbDriver::Ldap(_) => Some("%u"),
            _ => None,
        }
    }

    /// Whether `iterate` can list users.
    pub fn can_iterate(&self) -> bool {
        !matches!(self, UserdbDriver::Static(_))
    }

    /// userdb lookup. `authenticated` = right after a successful login.
    pub fn lookup(&mut self, vars: &RequestVars, authenticated: bool) -> UserdbOutcome {
        let found = match self {
            UserdbDriver::PasswdFile(db) => db.userdb_lookup(vars),
            UserdbDriver::Passwd(db) => db.userdb_lookup(vars),
            UserdbDriver::Sql(db) => db.userdb_lookup(vars),
            UserdbDriver::Ldap(db) => db.userdb_lookup(vars),
            UserdbDriver::Static(db) => {
                return match db.lookup(vars, authenticated) {
                    Ok(StaticUserdbLookup::Found(f)) => UserdbOutcome::Found(f),
                    Ok(StaticUserdbLookup::NeedPassdbCheck(f)) => UserdbOutcome::NeedPassdbCheck(f),
                    Err(e) => UserdbOutcome::Failed(e.to_string()),
                }
            }
        };
        match found {
            Ok(Some(f)) => UserdbOutcome::Found(f),
            Ok(None) => UserdbOutcome::NotFound,
            Err(e) => UserdbOutcome::Failed(e.to_string()),
        }
    }

    /// All users (`None` when the driver cannot iterate).
    pub fn iterate(
        &mut self,
        first_valid_uid: u32,
        last_valid_uid: u32,
    ) -> Option<Result<Vec<String>, DbError>> {
        match self {
            UserdbDriver::PasswdFile(db) => Some(db.iterate()),
            UserdbDriver::Passwd(db) => Some(db.iterate(first_valid_uid, last_valid_uid)),
            UserdbDriver::Sql(db) => Some(db.iterate()),
            UserdbDriver::Ldap(db) => Some(db.iterate()),
            UserdbDriver::Static(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_dispatches() {
        let mut p = PassdbDriver::new("static", "password=secret").unwrap();
        assert!(!p.blocking());
        let vars = RequestVars::new("tim", "imap");
        assert_eq!(p.verify(&vars, b"secret").result, PassdbResult::Ok);
        assert_eq!(p.verify(&vars, b"nope").result, PassdbResult::PasswordMismatch);
        assert!(PassdbDriver::new("pam", "").unwrap().blocking());
        assert!(PassdbDriver::new("bogus", "").is_err());
        let mut u = UserdbDriver::new("static", "uid=0 gid=0 home=/h/%u allow_all_users=yes").unwrap();
        assert!(matches!(u.lookup(&vars, false), UserdbOutcome::Found(f) if f.get("home") == Some("/h/tim")));
        assert!(u.iterate(0, 0).is_none());
        let mut u = UserdbDriver::new("passwd", "").unwrap();
        assert!(matches!(u.lookup(&RequestVars::new("root", "imap"), false), UserdbOutcome::Found(_)));
        assert_eq!(
            u.lookup(&RequestVars::new("no-such-user-dovecote", "imap"), false),
            UserdbOutcome::NotFound
        );
    }
}
