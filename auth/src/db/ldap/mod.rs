//! The `ldap` passdb and userdb (`args = /etc/dovecot/dovecot-ldap.conf.ext`,
//! seed procedure S10), over ldap3's blocking client with rustls.
//!
//! What it promises, as Dovecot 2.3's db-ldap/passdb-ldap/userdb-ldap:
//! * `%` values in `base`, filters and `auth_bind_userdn` are escaped
//!   ([`ldap_escape`]: RFC 4515 specials plus DN specials, as `\XX`);
//! * passdb modes: `auth_bind = no` searches `pass_filter` as `dn`/`dnpass`
//!   and verifies `userPassword` itself; `auth_bind = yes` searches, then
//!   binds as the entry's DN with the user's password (the `password` field
//!   of `pass_attrs` is ignored); `auth_bind_userdn` binds as the expanded
//!   template without searching. An empty password never reaches a bind;
//! * a search must find exactly one entry: none is "unknown user", several
//!   is an internal failure ("pass_filter matched multiple objects");
//! * `scope`, `deref`, `base` are honoured; attributes map to fields as
//!   described in [`attrs`];
//! * connection loss, timeouts and TLS failures are
//!   [`DbError::Unavailable`]; the connection is dropped and the next
//!   request connects again.
//!
//! Not supported: `sasl_bind = yes` (refused at setup), `@` DN pointers in
//! attribute lists; `ldap_version` is always 3 on the wire; `debug_level`,
//! `ldaprc_path`, `tls_cipher_suite` are accepted and ignored.

pub mod attrs;
mod conn;

use std::path::{Path, PathBuf};

use self::attrs::{AttrMap, LdapEntry};
use self::conn::Connection;
use super::args_file::{self, Setting};
use super::{verify_password, DbError, ExtraFields, PassdbEntry, PlainVerify, RequestVars};
use crate::mech::PassdbResult;

const DRIVER: &str = "ldap";

/// `tls_require_cert` (OpenLDAP's TLS_REQCERT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRequireCert {
    /// Do not ask for or check a certificate.
    Never,
    /// Check, continue on failure.
    Allow,
    /// Check if sent, continue on failure.
    Try,
    /// A valid certificate is required.
    Demand,
    /// Same as demand.
    Hard,
}

/// The settings of a `dovecot-ldap.conf.ext` file (2.3 names and defaults).
#[derive(Clone, PartialEq, Eq)]
pub struct LdapSettings {
    /// Servers to try in order: `uris`, or `hosts` as `ldap://host[:port]`.
    pub uris: Vec<String>,
    /// `dn` for searches (anonymous when unset).
    pub dn: Option<String>,
    /// `dnpass`.
    pub dnpass: Option<String>,
    /// `auth_bind`.
    pub auth_bind: bool,
    /// `auth_bind_userdn` template.
    pub auth_bind_userdn: Option<String>,
    /// `tls` (StartTLS).
    pub tls: bool,
    /// `tls_ca_cert_file`.
    pub tls_ca_cert_file: Option<PathBuf>,
    /// `tls_ca_cert_dir`.
    pub tls_ca_cert_dir: Option<PathBuf>,
    /// `tls_cert_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`.
    pub tls_key_file: Option<PathBuf>,
    /// `tls_require_cert` (unset = OpenLDAP's default, demand).
    pub tls_require_cert: Option<TlsRequireCert>,
    /// `deref`: never, searching, finding, always.
    pub deref: String,
    /// `scope`: base, onelevel, subtree.
    pub scope: String,
    /// `base` template.
    pub base: String,
    /// `ldap_version`.
    pub ldap_version: u32,
    /// `user_attrs`.
    pub user_attrs: String,
    /// `user_filter`.
    pub user_filter: String,
    /// `pass_attrs`.
    pub pass_attrs: String,
    /// `pass_filter`.
    pub pass_filter: String,
    /// `iterate_attrs`.
    pub iterate_attrs: String,
    /// `iterate_filter`.
    pub iterate_filter: String,
    /// `default_pass_scheme` (`CRYPT`).
    pub default_pass_scheme: String,
    /// `blocking` (lookups always run in auth-worker processes here).
    pub blocking: bool,
}

// Hand-written so that `dnpass` never reaches a log line.
impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("uris", &self.uris)
            .field("dn", &self.dn)
            .field("auth_bind", &self.auth_bind)
            .field("auth_bind_userdn", &self.auth_bind_userdn)
            .field("tls", &self.tls)
            .field("base", &self.base)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl LdapSettings {
    /// Reads the args file.
    pub fn read(path: &Path) -> Result<Self, DbError> {
        Self::from_settings(&args_file::read(path, DRIVER)?)
    }

    /// Parses args-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, DbError> {
        Self::from_settings(&args_file::parse(text, origin, DRIVER)?)
    }

    fn from_settings(settings: &[Setting]) -> Result<Self, DbError> {
        let mut out = LdapSettings {
            uris: Vec::new(),
            dn: None,
            dnpass: None,
            auth_bind: false,
            auth_bind_userdn: None,
            tls: false,
            tls_ca_cert_file: None,
            tls_ca_cert_dir: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_require_cert: None,
            deref: "never".into(),
            scope: "subtree".into(),
            base: String::new(),
            ldap_version: 3,
            user_attrs: "homeDirectory=home,uidNumber=uid,gidNumber=gid".into(),
            user_filter: "(&(objectClass=posixAccount)(uid=%u))".into(),
            pass_attrs: "uid=user,userPassword=password".into(),
            pass_filter: "(&(objectClass=posixAccount)(uid=%u))".into(),
            iterate_attrs: "uid=user".into(),
            iterate_filter: "(objectClass=posixAccount)".into(),
            default_pass_scheme: "CRYPT".into(),
            blocking: false,
        };
        let (mut uris, mut hosts, mut base, mut sasl_bind) = (None, None, None, false);
        for s in settings {
            let value = s.value.clone();
            let bool_value = || args_file::parse_bool(s, DRIVER);
            match s.key.as_str() {
                "hosts" => hosts = Some(value),
                "uris" => uris = Some(value),
                "dn" => out.dn = Some(value),
                "dnpass" => out.dnpass = Some(value),
                "auth_bind" => out.auth_bind = bool_value()?,
                "auth_bind_userdn" => out.auth_bind_userdn = Some(value),
                "tls" => out.tls = bool_value()?,
                "sasl_bind" => sasl_bind = bool_value()?,
                "tls_ca_cert_file" => out.tls_ca_cert_file = Some(value.into()),
                "tls_ca_cert_dir" => out.tls_ca_cert_dir = Some(value.into()),
                "tls_cert_file" => out.tls_cert_file = Some(value.into()),
                "tls_key_file" => out.tls_key_file = Some(value.into()),
                "tls_require_cert" => {
                    out.tls_require_cert = Some(match value.to_ascii_lowercase().as_str() {
                        "never" => TlsRequireCert::Never,
                        "allow" => TlsRequireCert::Allow,
                        "try" => TlsRequireCert::Try,
                        "demand" => TlsRequireCert::Demand,
                        "hard" => TlsRequireCert::Hard,
                        _ => return Err(s.error(DRIVER, format!("Unknown tls_require_cert value '{value}'"))),
                    })
                }
                "deref" => {
                    out.deref = value.to_ascii_lowercase();
                    if !["never", "searching", "finding", "always"].contains(&out.deref.as_str()) {
                        return Err(s.error(DRIVER, format!("Unknown deref option '{value}'")));
                    }
                }
                "scope" => {
                    out.scope = value.to_ascii_lowercase();
                    if !["base", "onelevel", "subtree"].contains(&out.scope.as_str()) {
                        return Err(s.error(DRIVER, format!("Unknown scope option '{value}'")));
                    }
                }
                "base" => base = Some(value),
                "ldap_version" => {
                    out.ldap_version =
                        value.parse().map_err(|_| s.error(DRIVER, format!("Invalid number: {value}")))?
                }
                "user_attrs" => out.user_attrs = value,
                "user_filter" => out.user_filter = value,
                "pass_attrs" => out.pass_attrs = value,
                "pass_filter" => out.pass_filter = value,
                "iterate_attrs" => out.iterate_attrs = value,
                "iterate_filter" => out.iterate_filter = value,
                "default_pass_scheme" => out.default_pass_scheme = value.to_ascii_uppercase(),
                "blocking" => out.blocking = bool_value()?,
                "userdb_warning_disable" => {
                    bool_value()?;
                }
                "sasl_mech" | "sasl_realm" | "sasl_authz_id" | "tls_cipher_suite" | "debug_level"
                | "ldaprc_path" => {}
                other => return Err(s.error(DRIVER, format!("Unknown setting: {other}"))),
            }
        }
        let bad = |reason: &str| DbError::Args { driver: DRIVER, reason: reason.to_string() };
        out.base = base.ok_or_else(|| bad("No base given"))?;
        out.uris = match (uris, hosts) {
            (Some(uris), _) => {
                uris.split([' ', '\t', ',']).filter(|u| !u.is_empty()).map(str::to_string).collect()
            }
            (None, Some(hosts)) => {
                hosts.split([' ', '\t']).filter(|h| !h.is_empty()).map(|h| format!("ldap://{h}")).collect()
            }
            (None, None) => Vec::new(),
        };
        if out.uris.is_empty() {
            return Err(bad("No uris or hosts set"));
        }
        if sasl_bind {
            return Err(bad("sasl_bind = yes is not supported by dovecote"));
        }
        if out.tls && out.ldap_version < 3 {
            return Err(bad("tls=yes requires ldap_version=3"));
        }
        if out.tls && out.uris.iter().any(|u| u.to_ascii_lowercase().starts_with("ldaps:")) {
            return Err(bad("Don't use both tls=yes and ldaps URI"));
        }
        if out.tls_cert_file.is_some() != out.tls_key_file.is_some() {
            return Err(bad("tls_cert_file and tls_key_file must be set together"));
        }
        Ok(out)
    }
}

/// An ldap passdb/userdb: settings, parsed attribute maps, one connection
/// opened on first use.
#[derive(Debug)]
pub struct LdapDb {
    settings: LdapSettings,
    pass_attrs: AttrMap,
    user_attrs: AttrMap,
    iterate_attrs: AttrMap,
    conn: Connection,
}

impl LdapDb {
    /// Reads `args` (the args-file path). Does not connect yet.
    pub fn new(args: &str) -> Result<Self, DbError> {
        let path = args.trim();
        if path.is_empty() {
            return Err(DbError::Args { driver: DRIVER, reason: "Configuration file path not given".into() });
        }
        Self::with_settings(LdapSettings::read(Path::new(path))?)
    }

    /// A driver for already parsed settings.
    pub fn with_settings(settings: LdapSettings) -> Result<Self, DbError> {
        let skip = settings.auth_bind.then_some("password");
        Ok(LdapDb {
            pass_attrs: AttrMap::parse(&settings.pass_attrs, skip)?,
            user_attrs: AttrMap::parse(&settings.user_attrs, None)?,
            iterate_attrs: AttrMap::parse(&settings.iterate_attrs, None)?,
            settings,
            conn: Connection::new(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    /// Ignored attribute-list items, for the log.
    pub fn warnings(&self) -> Vec<String> {
        [&self.pass_attrs, &self.user_attrs, &self.iterate_attrs]
            .iter()
            .flat_map(|m| m.warnings.iter().cloned())
            .collect()
    }

    /// True while a connection is open.
    pub fn connected(&self) -> bool {
        self.conn.is_open()
    }

    /// passdb lookup without a password check (credentials lookups, userdb
    /// prefetch): searches `pass_filter`. `Ok(None)` = no entry. With
    /// `auth_bind = yes` the entry has no password.
    pub fn passdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<PassdbEntry>, DbError> {
        Ok(self.pass_search(vars)?.map(|(entry, _)| entry))
    }

    /// Authenticates `password` in the configured mode (see the module
    /// docs).
    pub fn verify_plain(&mut self, vars: &RequestVars, password: &[u8]) -> Result<PlainVerify, DbError> {
        if !self.settings.auth_bind {
            let Some(entry) = self.passdb_lookup(vars)? else {
                return Ok(PlainVerify { result: PassdbResult::UserUnknown, entry: None });
            };
            let result = if entry.password.is_none() && !entry.fields.has("nopassword") {
                PassdbResult::PasswordMismatch
            } else {
                verify_password(&entry, password)
            };
            return Ok(PlainVerify { result, entry: Some(entry) });
        }
        let (entry, dn) = match self.settings.auth_bind_userdn.clone() {
            Some(template) => {
                let dn = vars.expand_escaped(&template, "auth_bind_userdn", ldap_escape)?;
                (self.new_entry(vars), dn)
            }
            None => match self.pass_search(vars)? {
                Some(found) => found,
                None => return Ok(PlainVerify { result: PassdbResult::UserUnknown, entry: None }),
            },
        };
        // An empty password would be an anonymous bind, which succeeds.
        let result = match std::str::from_utf8(password) {
            Ok("") | Err(_) => PassdbResult::PasswordMismatch,
            Ok(password) => self.conn.auth_bind(&self.settings, &dn, password)?,
        };
        let entry = (result != PassdbResult::UserUnknown).then_some(entry);
        Ok(PlainVerify { result, entry })
    }

    /// userdb lookup: searches `user_filter`; `Ok(None)` = no entry. A
    /// multi-valued `gid` becomes a comma-separated list; other fields
    /// take their first value.
    pub fn userdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<ExtraFields>, DbError> {
        let filter = self.settings.user_filter.clone();
        let attrs = self.user_attrs.request_attrs.clone();
        let entries = self.search(vars, &filter, &attrs)?;
        let entry = match entries.as_slice() {
            [] => return Ok(None),
            [one] => one,
            _ => return Err(lookup_error("user_filter matched multiple objects, aborting")),
        };
        let mut fields = ExtraFields::default();
        for (name, values) in self.user_attrs.apply(entry, vars) {
            match (name.as_str(), values.as_slice()) {
                (_, []) => {}
                ("gid", all) => fields.set(&name, &all.join(",")),
                (_, [first, ..]) => fields.set(&name, first),
            }
        }
        Ok(Some(fields))
    }

    /// All users: `iterate_filter` entries, every value of the `user` field.
    pub fn iterate(&mut self) -> Result<Vec<String>, DbError> {
        let vars = RequestVars::default();
        let filter = self.settings.iterate_filter.clone();
        let attrs = self.iterate_attrs.request_attrs.clone();
        let entries = self.search(&vars, &filter, &attrs)?;
        let mut users = Vec::new();
        for entry in &entries {
            for (name, values) in self.iterate_attrs.apply(entry, &vars) {
                if name == "user" {
                    users.extend(values);
                }
            }
        }
        Ok(users)
    }

    /// The `pass_filter` search: exactly one entry, mapped through
    /// `pass_attrs`; returns it with its DN.
    fn pass_search(&mut self, vars: &RequestVars) -> Result<Option<(PassdbEntry, String)>, DbError> {
        let filter = self.settings.pass_filter.clone();
        let attrs = self.pass_attrs.request_attrs.clone();
        let entries = self.search(vars, &filter, &attrs)?;
        let found = match entries.as_slice() {
            [] => return Ok(None),
            [one] => one,
            _ => return Err(lookup_error("pass_filter matched multiple objects, aborting")),
        };
        let mut entry = self.new_entry(vars);
        for (name, values) in self.pass_attrs.apply(found, vars) {
            if let Some(first) = values.first() {
                entry.set_field(&name, first);
            }
        }
        Ok(Some((entry, found.dn.clone())))
    }

    fn search(
        &mut self,
        vars: &RequestVars,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<LdapEntry>, DbError> {
        let base = vars.expand_escaped(&self.settings.base, "base", ldap_escape)?;
        let filter = vars.expand_escaped(filter, "filter", ldap_escape)?;
        self.conn.search(&self.settings, &base, &filter, attrs)
    }

    fn new_entry(&self, vars: &RequestVars) -> PassdbEntry {
        PassdbEntry {
            user: vars.user.clone(),
            default_scheme: self.settings.default_pass_scheme.clone(),
            ..Default::default()
        }
    }
}

fn lookup_error(reason: &str) -> DbError {
    DbError::Lookup { driver: DRIVER, reason: reason.to_string() }
}

/// Dovecot 2.3's `ldap_escape`: bytes ≥ 0x80 and `* , \ # + < > ; " ( ) =`
/// and space become `\XX`, which is safe both in search filters (RFC 4515)
/// and in DN values (RFC 4514). A NUL is escaped too.
pub fn ldap_escape(value: &str) -> String {
    const SPECIAL: &[u8] = b"*,\\#+<>;\"()= \0";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b >= 0x80 || SPECIAL.contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S10: &str = "uris = ldaps://LDAP-srv.example.com\n\
dn = cn=dovecot_LDAP,dc=example,dc=com\n\
dnpass = password\n\
auth_bind = yes\n\
tls_require_cert = hard\n\
base = ou=People,dc=example,dc=com\n\
scope = onelevel\n\
pass_filter = (&(objectClass=posixAccount)(uid=%n))\n";

    #[test]
    fn s10_args_file() {
        let s = LdapSettings::parse(S10, Path::new("dovecot-ldap.conf.ext")).unwrap();
        assert_eq!(s.uris, ["ldaps://LDAP-srv.example.com"]);
        assert!(s.auth_bind);
        assert_eq!(s.tls_require_cert, Some(TlsRequireCert::Hard));
        assert_eq!(s.scope, "onelevel");
        assert_eq!(s.default_pass_scheme, "CRYPT");
        assert!(!format!("{s:?}").contains("dnpass: Some(\"password\")"));
        let db = LdapDb::with_settings(s).unwrap();
        // auth_bind drops the password mapping.
        assert_eq!(db.pass_attrs.request_attrs, ["uid"]);
    }

    #[test]
    fn settings_errors() {
        let p = Path::new("f");
        let s = LdapSettings::parse("hosts = a b:390\nbase = dc=x\n", p).unwrap();
        assert_eq!(s.uris, ["ldap://a", "ldap://b:390"]);
        for bad in [
            "uris = ldap://a\n",
            "base = dc=x\n",
            "uris = ldap://a\nbase = x\nscope = deep\n",
            "uris = ldap://a\nbase = x\nderef = maybe\n",
            "uris = ldap://a\nbase = x\ntls_require_cert = always\n",
            "uris = ldap://a\nbase = x\nsasl_bind = yes\n",
            "uris = ldaps://a\nbase = x\ntls = yes\n",
            "uris = ldap://a\nbase = x\nauth_bind = maybe\n",
            "uris = ldap://a\nbase = x\nfrob = 1\n",
        ] {
            assert!(LdapSettings::parse(bad, p).is_err(), "{bad}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(ldap_escape("tim"), "tim");
        assert_eq!(ldap_escape("*)(uid=*"), "\\2A\\29\\28uid\\3D\\2A");
        assert_eq!(ldap_escape("a\\b,c é"), "a\\5Cb\\2Cc\\20\\C3\\A9");
        let vars = RequestVars::new("x)(|(uid=*", "imap");
        let filter = vars.expand_escaped("(&(objectClass=posixAccount)(uid=%u))", "f", ldap_escape).unwrap();
        assert_eq!(filter, "(&(objectClass=posixAccount)(uid=x\\29\\28|\\28uid\\3D\\2A))");
    }
}
