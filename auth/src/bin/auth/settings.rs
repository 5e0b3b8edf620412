//! The settings the auth process and its workers use, read once from the
//! configuration the master hands over: the global `auth_*` settings and the
//! `passdb { }` / `userdb { }` lists with their drivers built. Both the auth
//! process and `auth -w` build the same lists from the same configuration,
//! so a worker request names a database by its index; a hash of the lists
//! ([`AuthSettings::db_hash`]) catches a worker started from a different
//! configuration generation.

use std::time::Duration;

use dovecote_auth::db::chain::{PassdbRules, PassdbSkip, Rule, UserdbRules, UserdbSkip};
use dovecote_auth::db::driver::{PassdbDriver, UserdbDriver};
use dovecote_auth::db::static_db::FieldTemplate;
use dovecote_auth::db::DbError;
use dovecote_config::{Config, Section, SectionKind};
use sha2::{Digest, Sha256};

/// A settings error (fatal at startup).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A driver rejected its args.
    #[error("{kind} {index} ({driver}): {source}")]
    Driver {
        /// `passdb` or `userdb`.
        kind: &'static str,
        /// Position in the configuration.
        index: usize,
        /// Driver name.
        driver: String,
        /// Cause.
        source: Box<DbError>,
    },
    /// An auth_mechanisms entry we do not implement.
    #[error("Unknown authentication mechanism '{0}'")]
    UnknownMechanism(String),
    /// No passdbs.
    #[error("No passdbs specified in configuration file. PLAIN mechanism needs one")]
    NoPassdbs,
}

/// One `passdb { }` block.
#[derive(Debug)]
pub struct PassdbSettings {
    /// The driver.
    pub driver: PassdbDriver,
    /// `default_fields`.
    pub default_fields: FieldTemplate,
    /// `override_fields`.
    pub override_fields: FieldTemplate,
}

/// One `userdb { }` block.
#[derive(Debug)]
pub struct UserdbSettings {
    /// The driver.
    pub driver: UserdbDriver,
    /// `default_fields`.
    pub default_fields: FieldTemplate,
    /// `override_fields`.
    pub override_fields: FieldTemplate,
}

/// Everything the auth process needs to know.
#[derive(Debug)]
pub struct AuthSettings {
    /// `auth_mechanisms`, upper case, in configuration order.
    pub mechanisms: Vec<String>,
    /// `auth_username_format`.
    pub username_format: String,
    /// `auth_username_chars` (empty = anything goes).
    pub username_chars: String,
    /// `auth_username_translation` as (from, to) pairs.
    pub username_translation: Vec<(char, char)>,
    /// `auth_default_realm`.
    pub default_realm: String,
    /// First character of `auth_master_user_separator`.
    pub master_user_separator: Option<char>,
    /// `auth_anonymous_username`.
    pub anonymous_username: String,
    /// `auth_failure_delay`.
    pub failure_delay: Duration,
    /// `auth_cache_size` in bytes (0 = no cache).
    pub cache_size: u64,
    /// `auth_cache_ttl`.
    pub cache_ttl: Duration,
    /// `auth_cache_negative_ttl`.
    pub cache_negative_ttl: Duration,
    /// `auth_worker_max_count`.
    pub worker_max_count: usize,
    /// `auth_verbose`.
    pub verbose: bool,
    /// `auth_ssl_require_client_cert`: AUTH without a verified client
    /// certificate fails.
    pub ssl_require_client_cert: bool,
    /// `auth_ssl_username_from_cert`: the certificate's name
    /// (`cert_username=` from the login process) replaces the mechanism's.
    pub ssl_username_from_cert: bool,
    /// `auth_debug`.
    pub debug: bool,
    /// `auth_debug_passwords` (implies debug).
    pub debug_passwords: bool,
    /// `hostname` or the system's, for CRAM-MD5 challenges.
    pub hostname: String,
    /// `first_valid_uid`, `last_valid_uid` (passwd iteration).
    pub first_valid_uid: u32,
    /// See `first_valid_uid`.
    pub last_valid_uid: u32,
    /// `base_dir`, where the `auth-worker` socket is.
    pub base_dir: String,
    /// passdb chain rules, parallel to `passdbs`.
    pub passdb_rules: Vec<PassdbRules>,
    /// The passdbs.
    pub passdbs: Vec<PassdbSettings>,
    /// userdb chain rules, parallel to `userdbs`.
    pub userdb_rules: Vec<UserdbRules>,
    /// The userdbs.
    pub userdbs: Vec<UserdbSettings>,
    /// Hash of the passdb/userdb configuration (worker handshake).
    pub db_hash: String,
}

fn rule(section: &Section, name: &str, default: Rule) -> Rule {
    Rule::parse(&section.text(name)).unwrap_or(default)
}

fn list(text: &str) -> Vec<String> {
    text.split([' ', ',', '\t']).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

impl AuthSettings {
    /// Reads the settings and builds the drivers.
    pub fn from_config(config: &Config) -> Result<Self, SettingsError> {
        let root = &config.root;
        let secs = |name: &str| Duration::from_secs(root.number(name));
        let mut hasher = Sha256::new();
        let mut passdb_rules = Vec::new();
        let mut passdbs = Vec::new();
        for (index, s) in root.children_of(SectionKind::Passdb).enumerate() {
            let driver_name = s.text("driver");
            let args = s.text("args");
            hasher.update(format!("passdb\t{driver_name}\t{args}\n").as_bytes());
            let driver = PassdbDriver::new(&driver_name, &args).map_err(|source| SettingsError::Driver {
                kind: "passdb",
                index,
                driver: driver_name.clone(),
                source: Box::new(source),
            })?;
            let skip = match s.text("skip").as_str() {
                "authenticated" => PassdbSkip::Authenticated,
                "unauthenticated" => PassdbSkip::Unauthenticated,
                _ => PassdbSkip::Never,
            };
            passdb_rules.push(PassdbRules {
                deny: s.bool("deny"),
                master: s.bool("master"),
                pass: s.bool("pass"),
                skip,
                mechanisms: list(&s.text("mechanisms")),
                username_filter: list(&s.text("username_filter")),
                result_success: rule(s, "result_success", Rule::ReturnOk),
                result_failure: rule(s, "result_failure", Rule::Continue),
                result_internalfail: rule(s, "result_internalfail", Rule::Continue),
            });
            passdbs.push(PassdbSettings {
                driver,
                default_fields: FieldTemplate::parse(&s.text("default_fields")),
                override_fields: FieldTemplate::parse(&s.text("override_fields")),
            });
        }
        let mut userdb_rules = Vec::new();
        let mut userdbs = Vec::new();
        for (index, s) in root.children_of(SectionKind::Userdb).enumerate() {
            let driver_name = s.text("driver");
            let args = s.text("args");
            hasher.update(format!("userdb\t{driver_name}\t{args}\n").as_bytes());
            let driver = UserdbDriver::new(&driver_name, &args).map_err(|source| SettingsError::Driver {
                kind: "userdb",
                index,
                driver: driver_name.clone(),
                source: Box::new(source),
            })?;
            let skip = match s.text("skip").as_str() {
                "found" => UserdbSkip::Found,
                "notfound" => UserdbSkip::NotFound,
                _ => UserdbSkip::Never,
            };
            userdb_rules.push(UserdbRules {
                skip,
                result_success: rule(s, "result_success", Rule::ReturnOk),
                result_failure: rule(s, "result_failure", Rule::Continue),
                result_internalfail: rule(s, "result_internalfail", Rule::Continue),
            });
            userdbs.push(UserdbSettings {
                driver,
                default_fields: FieldTemplate::parse(&s.text("default_fields")),
                override_fields: FieldTemplate::parse(&s.text("override_fields")),
            });
        }
        let mut mechanisms = Vec::new();
        for mech in list(&root.text("auth_mechanisms")) {
            let upper = mech.to_ascii_uppercase();
            if !dovecote_auth::mech::MECHANISMS.iter().any(|(n, _)| *n == upper) {
                return Err(SettingsError::UnknownMechanism(mech));
            }
            if !mechanisms.contains(&upper) {
                mechanisms.push(upper);
            }
        }
        let translation: Vec<char> = root.text("auth_username_translation").chars().collect();
        let hostname = match root.text("hostname") {
            h if !h.is_empty() => h,
            _ => nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default(),
        };
        let debug_passwords = root.bool("auth_debug_passwords");
        Ok(AuthSettings {
            mechanisms,
            username_format: root.text("auth_username_format"),
            username_chars: root.text("auth_username_chars"),
            username_translation: translation
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0], c[1]))
                .collect(),
            default_realm: root.text("auth_default_realm"),
            master_user_separator: root.text("auth_master_user_separator").chars().next(),
            anonymous_username: root.text("auth_anonymous_username"),
            failure_delay: secs("auth_failure_delay"),
            cache_size: root.number("auth_cache_size"),
            cache_ttl: secs("auth_cache_ttl"),
            cache_negative_ttl: secs("auth_cache_negative_ttl"),
            worker_max_count: usize::try_from(root.number("auth_worker_max_count")).unwrap_or(30).max(1),
            verbose: root.bool("auth_verbose") || root.bool("auth_debug") || debug_passwords,
            ssl_require_client_cert: root.bool("auth_ssl_require_client_cert"),
            ssl_username_from_cert: root.bool("auth_ssl_username_from_cert"),
            debug: root.bool("auth_debug") || debug_passwords,
            debug_passwords,
            hostname,
            first_valid_uid: u32::try_from(root.number("first_valid_uid")).unwrap_or(500),
            last_valid_uid: u32::try_from(root.number("last_valid_uid")).unwrap_or(0),
            base_dir: root.text("base_dir").trim_end_matches('/').to_string(),
            passdb_rules,
            passdbs,
            userdb_rules,
            userdbs,
            db_hash: dovecote_auth::scheme::hex_encode(&hasher.finalize()[..8]),
        })
    }

    /// True when `user` passes `auth_username_chars`.
    pub fn username_chars_ok(&self, user: &str) -> Option<char> {
        if self.username_chars.is_empty() {
            return None;
        }
        user.chars().find(|c| !self.username_chars.contains(*c))
    }
}
