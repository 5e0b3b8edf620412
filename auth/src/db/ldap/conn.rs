//! The LDAP connection (ldap3's blocking client): connect to the first
//! reachable URI, StartTLS or ldaps with rustls per `tls_*`, bind as
//! `dn`/`dnpass` before searches, simple binds as users for `auth_bind`,
//! searches. Any transport failure drops the connection and is reported as
//! [`DbError::Unavailable`]; the next call connects again.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{DerefAliases, LdapConn, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};

use super::attrs::LdapEntry;
use super::{LdapSettings, TlsRequireCert};
use crate::db::DbError;
use crate::mech::PassdbResult;

const DRIVER: &str = "ldap";
/// Dovecot's DB_LDAP_CONNECT_TIMEOUT_SECS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit for one operation on an established connection.
const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Result codes that mean the request itself is bad (Dovecot's
/// `ldap_handle_error` "invalid input" list); anything else is treated as a
/// connection problem.
const INVALID_INPUT: &[u32] = &[3, 4, 16, 17, 18, 19, 20, 21, 32, 33, 34, 35, 36, 87];

/// Who the connection is bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Not bound yet (fresh connection).
    Nobody,
    /// `dn`/`dnpass` (or anonymous): searches may run.
    Default,
    /// Some user's DN after an auth bind: rebind before searching.
    User,
}

/// A lazily opened connection.
pub(super) struct Connection {
    conn: Option<LdapConn>,
    bound: Bound,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("open", &self.conn.is_some()).field("bound", &self.bound).finish()
    }
}

impl Connection {
    pub fn new() -> Self {
        Connection { conn: None, bound: Bound::Nobody }
    }

    pub fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Searches as the default DN.
    pub fn search(
        &mut self,
        set: &LdapSettings,
        base: &str,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<LdapEntry>, DbError> {
        self.bind_default(set)?;
        let conn = self.open(set)?;
        let scope = match set.scope.as_str() {
            "base" => Scope::Base,
            "onelevel" => Scope::OneLevel,
            _ => Scope::Subtree,
        };
        let deref = match set.deref.as_str() {
            "searching" => DerefAliases::Searching,
            "finding" => DerefAliases::Finding,
            "always" => DerefAliases::Always,
            _ => DerefAliases::Never,
        };
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let result = conn
            .with_search_options(SearchOptions::new().deref(deref))
            .with_timeout(OP_TIMEOUT)
            .search(base, scope, filter, attrs);
        let ldap3::SearchResult(raw, res) = match result {
            Ok(r) => r,
            Err(LdapError::FilterParsing) => {
                return Err(DbError::Lookup {
                    driver: DRIVER,
                    reason: format!("ldap_search({filter}) parsing failed: invalid filter"),
                })
            }
            Err(e) => return Err(self.lost(&format!("ldap_search(base={base} filter={filter})"), &e)),
        };
        // noSuchObject: the base does not exist, i.e. no entries.
        if res.rc != 0 && res.rc != 32 {
            let reason =
                format!("ldap_search(base={base} filter={filter}) failed: {}", describe(res.rc, &res.text));
            if INVALID_INPUT.contains(&res.rc) {
                return Err(DbError::Lookup { driver: DRIVER, reason });
            }
            self.drop_connection();
            return Err(DbError::Unavailable { driver: DRIVER, reason });
        }
        let mut entries = Vec::with_capacity(raw.len());
        for re in raw.into_iter().filter(|re| !re.is_ref()) {
            // ldap3 panics on malformed entries instead of returning an error.
            let entry = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(re)))
                .map_err(|_| DbError::Lookup {
                    driver: DRIVER,
                    reason: "malformed search result entry".into(),
                })?;
            let mut attrs: Vec<(String, Vec<String>)> = entry.attrs.into_iter().collect();
            for (name, values) in entry.bin_attrs {
                attrs.push((name, values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect()));
            }
            entries.push(LdapEntry { dn: entry.dn, attrs });
        }
        Ok(entries)
    }

    /// A simple bind as `dn` with the user's password: Ok, PasswordMismatch
    /// (invalidCredentials) or UserUnknown (noSuchObject).
    pub fn auth_bind(
        &mut self,
        set: &LdapSettings,
        dn: &str,
        password: &str,
    ) -> Result<PassdbResult, DbError> {
        let conn = self.open(set)?;
        let result = conn.with_timeout(OP_TIMEOUT).simple_bind(dn, password);
        self.bound = Bound::User;
        match result {
            Ok(res) if res.rc == 0 => Ok(PassdbResult::Ok),
            Ok(res) if res.rc == 49 => Ok(PassdbResult::PasswordMismatch),
            Ok(res) if res.rc == 32 => Ok(PassdbResult::UserUnknown),
            Ok(res) => Err(DbError::Lookup {
                driver: DRIVER,
                reason: format!("ldap_bind() failed: {}", describe(res.rc, &res.text)),
            }),
            Err(e) => Err(self.lost(&format!("ldap_bind({dn})"), &e)),
        }
    }

    fn bind_default(&mut self, set: &LdapSettings) -> Result<(), DbError> {
        if self.conn.is_some() && self.bound == Bound::Default {
            return Ok(());
        }
        let conn = self.open(set)?;
        let dn = set.dn.as_deref().unwrap_or("");
        let result = conn.with_timeout(OP_TIMEOUT).simple_bind(dn, set.dnpass.as_deref().unwrap_or(""));
        match result {
            Ok(res) if res.rc == 0 => {
                self.bound = Bound::Default;
                Ok(())
            }
            Ok(res) => {
                self.drop_connection();
                let dn = if dn.is_empty() { "(none)" } else { dn };
                Err(DbError::Lookup {
                    driver: DRIVER,
                    reason: format!("binding failed (dn {dn}): {}", describe(res.rc, &res.text)),
                })
            }
            Err(e) => Err(self.lost("binding", &e)),
        }
    }

    fn open(&mut self, set: &LdapSettings) -> Result<&mut LdapConn, DbError> {
        if self.conn.is_none() {
            self.conn = Some(connect(set)?);
            self.bound = Bound::Nobody;
        }
        self.conn.as_mut().ok_or(DbError::Unavailable { driver: DRIVER, reason: "not connected".into() })
    }

    fn drop_connection(&mut self) {
        self.conn = None;
        self.bound = Bound::Nobody;
    }

    fn lost(&mut self, what: &str, e: &LdapError) -> DbError {
        self.drop_connection();
        DbError::Unavailable {
            driver: DRIVER,
            reason: format!("{what} failed: {e}; reconnecting on next request"),
        }
    }
}

fn describe(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "Operations error",
        2 => "Protocol error",
        3 => "Time limit exceeded",
        4 => "Size limit exceeded",
        32 => "No such object",
        34 => "Invalid DN syntax",
        48 => "Inappropriate authentication",
        49 => "Invalid credentials",
        50 => "Insufficient access",
        51 => "Server is busy",
        52 => "Server is unavailable",
        53 => "Server is unwilling to perform",
        _ => "LDAP error",
    };
    if text.is_empty() {
        format!("{name} ({rc})")
    } else {
        format!("{name} ({rc}), {text}")
    }
}

/// Tries each URI in order.
fn connect(set: &LdapSettings) -> Result<LdapConn, DbError> {
    let mut errors = Vec::new();
    for uri in &set.uris {
        let settings = tls_settings(set, uri)?;
        match LdapConn::with_settings(settings, uri) {
            Ok(conn) => return Ok(conn),
            Err(e) => errors.push(format!("{uri}: {e}")),
        }
    }
    Err(DbError::Unavailable {
        driver: DRIVER,
        reason: format!("Can't connect to server: {}", errors.join("; ")),
    })
}

fn tls_settings(set: &LdapSettings, uri: &str) -> Result<LdapConnSettings, DbError> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(CONNECT_TIMEOUT).set_starttls(set.tls);
    let uses_tls = set.tls || uri.to_ascii_lowercase().starts_with("ldaps:");
    if !uses_tls {
        return Ok(settings);
    }
    let verify =
        matches!(set.tls_require_cert, None | Some(TlsRequireCert::Demand) | Some(TlsRequireCert::Hard));
    if !verify {
        // never/allow/try: OpenLDAP continues with a bad or missing
        // certificate.
        settings = settings.set_no_tls_verify(true);
    }
    let custom =
        set.tls_ca_cert_file.is_some() || set.tls_ca_cert_dir.is_some() || set.tls_cert_file.is_some();
    if verify && custom {
        settings = settings.set_config(client_config(set)?);
    }
    Ok(settings)
}

/// A rustls client configuration from `tls_ca_cert_file`, `tls_ca_cert_dir`
/// (system roots when neither is set), `tls_cert_file` + `tls_key_file`.
fn client_config(set: &LdapSettings) -> Result<Arc<rustls::ClientConfig>, DbError> {
    let bad = |reason: String| DbError::Args { driver: DRIVER, reason };
    let mut roots = rustls::RootCertStore::empty();
    let add_pem_file =
        |path: &std::path::Path, roots: &mut rustls::RootCertStore| -> Result<usize, DbError> {
            let data = std::fs::read(path).map_err(|e| bad(format!("Can't read {}: {e}", path.display())))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut data.as_slice()).flatten() {
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            Ok(added)
        };
    if let Some(file) = &set.tls_ca_cert_file {
        if add_pem_file(file, &mut roots)? == 0 {
            return Err(bad(format!("tls_ca_cert_file {}: no certificates", file.display())));
        }
    }
    if let Some(dir) = &set.tls_ca_cert_dir {
        let listing =
            std::fs::read_dir(dir).map_err(|e| bad(format!("Can't read {}: {e}", dir.display())))?;
        for item in listing.flatten() {
            // Unreadable or non-PEM files in a hashed CA directory are skipped.
            let _ = add_pem_file(&item.path(), &mut roots);
        }
    }
    if set.tls_ca_cert_file.is_none() && set.tls_ca_cert_dir.is_none() {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let config = match (&set.tls_cert_file, &set.tls_key_file) {
        (Some(cert), Some(key)) => {
            let certs =
                std::fs::read(cert).map_err(|e| bad(format!("Can't read {}: {e}", cert.display())))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut certs.as_slice()).flatten().collect();
            let key_pem =
                std::fs::read(key).map_err(|e| bad(format!("Can't read {}: {e}", key.display())))?;
            let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .ok()
                .flatten()
                .ok_or_else(|| bad(format!("tls_key_file {}: no private key", key.display())))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| bad(format!("tls_cert_file: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
