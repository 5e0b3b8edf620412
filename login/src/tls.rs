//! TLS for the login processes, with rustls (ring provider; no OpenSSL).
//!
//! [`build_server_config`] turns the `ssl_*` settings into a rustls
//! `ServerConfig` once per process, and returns notices for everything
//! rustls cannot honour exactly, to be logged once at startup:
//! * `ssl_cert`/`ssl_key`/`ssl_ca` hold PEM text (the master expanded the
//!   `<file` values and sent them over the config pipe, so the chrooted
//!   dovenull process never opens the root-only key);
//! * `ssl_key_password`: encrypted PEM keys are not supported (rustls-pemfile
//!   cannot decrypt them) — a clear error says how to decrypt the key;
//! * `ssl_min_protocol` TLSv1.2 (default) or TLSv1.3; older values and ANY
//!   map to TLSv1.2 with a notice; TLS 1.2 always uses Extended Master
//!   Secret (rustls does, RFC 7627);
//! * `ssl_cipher_list` (OpenSSL names for TLS ≤ 1.2) and `ssl_cipher_suites`
//!   (TLS 1.3) restrict rustls' suites where names match; Dovecot's default
//!   list is accepted silently since every rustls suite satisfies it;
//! * `ssl_curve_list` selects key exchange groups (X25519, P-256, P-384);
//!   `ssl_dh` is ignored with a notice (no finite-field DH in rustls/ring);
//! * `ssl_prefer_server_ciphers = yes` → server order;
//! * SNI: `local_name` filter blocks with their own `ssl_cert`/`ssl_key`;
//! * client certificates: `ssl_verify_client_cert = yes` with `ssl_ca`
//!   requests one and verifies it against `ssl_ca` (clients without a
//!   certificate still connect; `auth_ssl_require_client_cert` is enforced
//!   at authentication).

use std::sync::Arc;

use dovecote_config::model::ConnectionInfo;
use dovecote_config::{Config, Filter};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use thiserror::Error;

/// Dovecot 2.3's default `ssl_cipher_list`.
pub const DEFAULT_CIPHER_LIST: &str =
    "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("ssl enabled, but ssl_cert not set")]
    MissingCert,
    #[error("ssl enabled, but ssl_key not set")]
    MissingKey,
    #[error("Can't load SSL certificate ({setting}): {reason}")]
    Cert { setting: String, reason: String },
    #[error("Can't load SSL private key ({setting}): {reason}")]
    Key { setting: String, reason: String },
    #[error("ssl_key is encrypted (ssl_key_password is set): encrypted PEM keys are not supported; store it decrypted and root-only, e.g. `openssl pkey -in key.pem -out key-plain.pem`")]
    EncryptedKey,
    #[error("Can't load ssl_ca: {0}")]
    Ca(String),
    #[error("ssl_verify_client_cert = yes needs ssl_ca")]
    NoCaForClientCerts,
    #[error("ssl_min_protocol: unknown protocol {0:?}")]
    MinProtocol(String),
    #[error("no usable cipher suites left after ssl_cipher_list/ssl_cipher_suites")]
    NoCiphers,
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A built server configuration and the notices to log once.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub notices: Vec<String>,
}

/// Builds the rustls server configuration for `protocol` (`imap`, `pop3`)
/// from the process' settings.
pub fn build_server_config(config: &Config, protocol: &str) -> Result<ServerTls, TlsError> {
    let mut notices = Vec::new();
    let proto_conn = ConnectionInfo { protocol: Some(protocol.to_owned()), ..ConnectionInfo::default() };
    let base = config.for_connection(&proto_conn);
    let root = &base.root;
    let provider = Arc::new(provider_for(root, &mut notices)?);
    let versions = protocol_versions(&root.text("ssl_min_protocol"), &mut notices)?;
    if !root.text("ssl_dh").trim().is_empty() {
        notices
            .push("ssl_dh is ignored: rustls offers only ECDHE key exchange (X25519, P-256, P-384)".into());
    }

    let default_key = load_key_pair(
        &provider,
        &root.text("ssl_cert"),
        &root.text("ssl_key"),
        !root.text("ssl_key_password").is_empty(),
        "ssl_cert",
    )?;
    let mut by_name = Vec::new();
    for block in &config.filters {
        let Some(_) = &block.filter.local_name else { continue };
        if !block.root.is_set("ssl_cert") && !block.root.is_set("ssl_key") {
            continue;
        }
        let merged = config.for_connection(&ConnectionInfo {
            protocol: Some(protocol.to_owned()),
            local_name: block
                .filter
                .local_name
                .as_ref()
                .map(|n| n.split_whitespace().next().unwrap_or("").trim_start_matches("*.").to_owned()),
            ..ConnectionInfo::default()
        });
        let key = load_key_pair(
            &provider,
            &merged.text("ssl_cert"),
            &merged.text("ssl_key"),
            !merged.text("ssl_key_password").is_empty(),
            &format!("local_name {} ssl_cert", block.filter.local_name.as_deref().unwrap_or("")),
        )?;
        by_name.push((block.filter.clone(), key));
    }
    let resolver = Arc::new(SniResolver { default: default_key, by_name, protocol: protocol.to_owned() });

    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let verify = root.bool("ssl_verify_client_cert");
    let ca = root.text("ssl_ca");
    let builder = if verify {
        if ca.trim().is_empty() {
            return Err(TlsError::NoCaForClientCerts);
        }
        let mut roots = RootCertStore::empty();
        for cert in parse_certs(&ca).map_err(TlsError::Ca)? {
            roots.add(cert).map_err(|e| TlsError::Ca(e.to_string()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Ca(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut server = builder.with_cert_resolver(resolver);
    server.ignore_client_order = root.bool("ssl_prefer_server_ciphers");
    Ok(ServerTls { config: Arc::new(server), notices })
}

fn protocol_versions(
    min: &str,
    notices: &mut Vec<String>,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    match min.trim() {
        "" | "TLSv1.2" => Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
        "TLSv1.3" => Ok(vec![&rustls::version::TLS13]),
        old @ ("ANY" | "SSLv3" | "TLSv1" | "TLSv1.1") => {
            notices.push(format!(
                "ssl_min_protocol = {old}: rustls supports only TLSv1.2 and later; using TLSv1.2"
            ));
            Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12])
        }
        other => Err(TlsError::MinProtocol(other.to_owned())),
    }
}

/// OpenSSL cipher names (TLS 1.2) and TLS 1.3 suite names → rustls suite names.
fn suite_for_openssl_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "ECDHE-ECDSA-AES256-GCM-SHA384" => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256" => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305" => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384" => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256" => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_AES_256_GCM_SHA384" => "TLS13_AES_256_GCM_SHA384",
        "TLS_AES_128_GCM_SHA256" => "TLS13_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256" => "TLS13_CHACHA20_POLY1305_SHA256",
        _ => return None,
    })
}

fn provider_for(
    root: &dovecote_config::Section,
    notices: &mut Vec<String>,
) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let suite_name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
    let tls12_wanted =
        select_names(&root.text("ssl_cipher_list"), DEFAULT_CIPHER_LIST, "ssl_cipher_list", notices);
    let tls13_wanted = select_names(&root.text("ssl_cipher_suites"), "", "ssl_cipher_suites", notices);
    provider.cipher_suites.retain(|s| {
        let name = suite_name(s);
        let is13 = name.starts_with("TLS13_");
        let wanted = if is13 { &tls13_wanted } else { &tls12_wanted };
        wanted.as_ref().is_none_or(|w| w.contains(&name))
    });
    if provider.cipher_suites.is_empty() {
        return Err(TlsError::NoCiphers);
    }
    let curves = root.text("ssl_curve_list");
    if !curves.trim().is_empty() {
        let mut wanted = Vec::new();
        let mut unknown = Vec::new();
        for c in curves.split([':', ',', ' ']).filter(|c| !c.is_empty()) {
            match c.to_ascii_lowercase().as_str() {
                "x25519" => wanted.push("X25519"),
                "p-256" | "prime256v1" | "secp256r1" => wanted.push("secp256r1"),
                "p-384" | "secp384r1" => wanted.push("secp384r1"),
                _ => unknown.push(c.to_owned()),
            }
        }
        if !unknown.is_empty() {
            notices.push(format!(
                "ssl_curve_list: ignoring groups rustls does not offer: {}",
                unknown.join(":")
            ));
        }
        if !wanted.is_empty() {
            provider.kx_groups.retain(|g| wanted.contains(&format!("{:?}", g.name()).as_str()));
        }
    }
    Ok(provider)
}

/// `None` = no restriction. Notes names that map to nothing, once.
fn select_names(value: &str, default: &str, setting: &str, notices: &mut Vec<String>) -> Option<Vec<String>> {
    let value = value.trim();
    if value.is_empty() || value == default {
        return None;
    }
    let mut known = Vec::new();
    let mut ignored = Vec::new();
    for item in value.split([':', ',', ' ']).filter(|s| !s.is_empty()) {
        match suite_for_openssl_name(item) {
            Some(s) => known.push(s.to_owned()),
            None => ignored.push(item.to_owned()),
        }
    }
    if !ignored.is_empty() {
        notices.push(format!(
            "{setting}: rustls cannot apply {}; {}",
            ignored.join(":"),
            if known.is_empty() { "using rustls' default suites" } else { "using the suites that match" }
        ));
    }
    if known.is_empty() {
        None
    } else {
        Some(known)
    }
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_bytes()).collect();
    let certs = certs.map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn load_key_pair(
    provider: &CryptoProvider,
    cert_pem: &str,
    key_pem: &str,
    has_password: bool,
    setting: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    if cert_pem.trim().is_empty() {
        return Err(TlsError::MissingCert);
    }
    if key_pem.trim().is_empty() {
        return Err(TlsError::MissingKey);
    }
    let certs =
        parse_certs(cert_pem).map_err(|reason| TlsError::Cert { setting: setting.to_owned(), reason })?;
    if key_pem.contains("ENCRYPTED") {
        return if has_password {
            Err(TlsError::EncryptedKey)
        } else {
            Err(TlsError::Key {
                setting: setting.to_owned(),
                reason: "the key is encrypted and ssl_key_password is not set".into(),
            })
        };
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| TlsError::Key { setting: setting.to_owned(), reason: e.to_string() })?
        .ok_or_else(|| TlsError::Key {
            setting: setting.to_owned(),
            reason: "no PEM private key found".into(),
        })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key { setting: setting.to_owned(), reason: e.to_string() })?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

/// Chooses the certificate by SNI against `local_name` filters.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: Vec<(Filter, Arc<CertifiedKey>)>,
    protocol: String,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let conn = ConnectionInfo {
                protocol: Some(self.protocol.clone()),
                local_name: Some(name.to_owned()),
                ..ConnectionInfo::default()
            };
            // The last matching block wins, as the most specific one does in Dovecot.
            if let Some((_, key)) = self.by_name.iter().rev().find(|(f, _)| f.matches(&conn)) {
                return Some(key.clone());
            }
        }
        Some(self.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_protocol_mapping() {
        let mut notes = Vec::new();
        assert_eq!(protocol_versions("TLSv1.3", &mut notes).unwrap().len(), 1);
        assert_eq!(protocol_versions("TLSv1.2", &mut notes).unwrap().len(), 2);
        assert!(notes.is_empty());
        assert_eq!(protocol_versions("TLSv1", &mut notes).unwrap().len(), 2);
        assert_eq!(notes.len(), 1);
        assert!(protocol_versions("TLSv9", &mut notes).is_err());
    }

    #[test]
    fn cipher_names() {
        let mut notes = Vec::new();
        assert_eq!(
            select_names(DEFAULT_CIPHER_LIST, DEFAULT_CIPHER_LIST, "ssl_cipher_list", &mut notes),
            None
        );
        let sel = select_names(
            "ECDHE-RSA-AES256-GCM-SHA384:HIGH",
            DEFAULT_CIPHER_LIST,
            "ssl_cipher_list",
            &mut notes,
        );
        assert_eq!(sel, Some(vec!["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_owned()]));
        assert_eq!(notes.len(), 1);
        let provider = rustls::crypto::ring::default_provider();
        let names: Vec<String> = provider.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
        for name in ["ECDHE-RSA-AES256-GCM-SHA384", "TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]
        {
            let mapped = suite_for_openssl_name(name).unwrap();
            assert!(names.iter().any(|n| n == mapped), "{mapped} not in {names:?}");
        }
    }
}
