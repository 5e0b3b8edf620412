//! The settings a login process reads, resolved once per connection (after
//! `local`/`remote`/`local_name` filters are applied).

use std::net::IpAddr;

use dovecote_config::{Config, Net};

/// `ssl = no | yes | required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    No,
    Yes,
    Required,
}

/// Pre-login settings for one connection.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub login_greeting: String,
    pub disable_plaintext_auth: bool,
    pub ssl: SslMode,
    pub login_trusted_networks: Vec<Net>,
    pub haproxy_trusted_networks: Vec<Net>,
    pub imap_capability: String,
    pub imap_id_send: String,
    pub imap_literal_minus: bool,
    /// `auth_mechanisms`: used only to advertise something while the auth
    /// service has not yet told us its mechanisms.
    pub auth_mechanisms: Vec<String>,
    pub verbose_auth: bool,
    /// `mail_max_userip_connections` (0 = unlimited), checked with anvil
    /// after a successful login.
    pub mail_max_userip_connections: u32,
    /// `login_log_format` and `login_log_format_elements` ([`crate::log_format`]).
    pub login_log_format: String,
    pub login_log_format_elements: String,
    /// `ssl_cert_username_field`: the subject field sent as `cert_username`.
    pub ssl_cert_username_field: String,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            login_greeting: "Dovecot ready.".into(),
            disable_plaintext_auth: true,
            ssl: SslMode::Yes,
            login_trusted_networks: Vec::new(),
            haproxy_trusted_networks: Vec::new(),
            imap_capability: String::new(),
            imap_id_send: "name *".into(),
            imap_literal_minus: false,
            auth_mechanisms: vec!["plain".into()],
            verbose_auth: false,
            mail_max_userip_connections: 10,
            login_log_format: "%$: %s".into(),
            login_log_format_elements: "user=<%u> method=%m rip=%r lip=%l mpid=%e %c session=<%{session}>"
                .into(),
            ssl_cert_username_field: "commonName".into(),
        }
    }
}

impl LoginSettings {
    pub fn from_config(config: &Config) -> LoginSettings {
        let root = &config.root;
        let ssl = match root.text("ssl").as_str() {
            "no" => SslMode::No,
            "required" => SslMode::Required,
            _ => SslMode::Yes,
        };
        LoginSettings {
            login_greeting: root.text("login_greeting"),
            disable_plaintext_auth: root.bool("disable_plaintext_auth"),
            ssl,
            login_trusted_networks: parse_networks(&root.text("login_trusted_networks")),
            haproxy_trusted_networks: parse_networks(&root.text("haproxy_trusted_networks")),
            imap_capability: root.text("imap_capability"),
            imap_id_send: root.text("imap_id_send"),
            imap_literal_minus: root.bool("imap_literal_minus"),
            auth_mechanisms: root.text("auth_mechanisms").split_whitespace().map(str::to_owned).collect(),
            verbose_auth: root.bool("auth_verbose"),
            mail_max_userip_connections: u32::try_from(root.number("mail_max_userip_connections"))
                .unwrap_or(u32::MAX),
            login_log_format: root.text("login_log_format"),
            login_log_format_elements: root.text("login_log_format_elements"),
            ssl_cert_username_field: root.text("ssl_cert_username_field"),
        }
    }
}

/// A space/comma separated list of `ip[/bits]`; entries that do not parse
/// are skipped (Dovecot logs them once at startup; the config checker
/// already reported them).
pub fn parse_networks(text: &str) -> Vec<Net> {
    text.split([' ', ',', '\t'])
        .filter(|s| !s.is_empty())
        .filter_map(|item| {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max)?,
                None => max,
            };
            Some(Net { addr, bits })
        })
        .collect()
}

/// Whether `ip` is in any of `nets`.
pub fn in_networks(nets: &[Net], ip: &IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
        v4 => *v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let nets = parse_networks("10.0.0.0/8, 192.168.1.1 ::1 bogus 1.2.3.4/99");
        assert_eq!(nets.len(), 3);
        assert!(in_networks(&nets, &"10.9.8.7".parse().unwrap()));
        assert!(in_networks(&nets, &"192.168.1.1".parse().unwrap()));
        assert!(!in_networks(&nets, &"192.168.1.2".parse().unwrap()));
        assert!(in_networks(&nets, &"::1".parse().unwrap()));
        assert!(in_networks(&nets, &"::ffff:10.1.1.1".parse().unwrap()));
    }
}
