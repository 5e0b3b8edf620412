//! The settings an LMTP session and its deliveries need, read once from
//! the `protocol lmtp` view of the configuration with 2.3's defaults.

use dovecote_config::model::ConnectionInfo;
use dovecote_config::Config;

/// `lmtp_hdr_delivery_address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrDeliveryAddress {
    Final,
    Original,
    None,
}

/// What the protocol side needs.
#[derive(Debug, Clone)]
pub struct LmtpSettings {
    /// `hostname`, or the system's host name.
    pub hostname: String,
    pub recipient_delimiter: String,
    pub save_to_detail_mailbox: bool,
    pub add_received_header: bool,
    pub hdr_delivery_address: HdrDeliveryAddress,
    /// `quota_max_mail_size` (plugin setting): advertised as `SIZE` and
    /// enforced for DATA/BDAT.
    pub max_mail_size: Option<u64>,
    /// STARTTLS can be offered (`ssl != no` and a certificate loaded).
    pub starttls: bool,
    pub postmaster_address: String,
}

impl LmtpSettings {
    /// The `protocol lmtp` view of `config`.
    pub fn lmtp_view(config: &Config) -> Config {
        config.for_connection(&ConnectionInfo { protocol: Some("lmtp".into()), ..ConnectionInfo::default() })
    }

    pub fn from_config(config: &Config) -> LmtpSettings {
        let view = Self::lmtp_view(config);
        let root = &view.root;
        let hostname = match root.text("hostname").trim() {
            "" => nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default(),
            h => h.to_string(),
        };
        let hdr_delivery_address = match root.text("lmtp_hdr_delivery_address").as_str() {
            "none" => HdrDeliveryAddress::None,
            "original" => HdrDeliveryAddress::Original,
            _ => HdrDeliveryAddress::Final,
        };
        let max_mail_size = view
            .plugin("quota_max_mail_size")
            .and_then(|t| dovecote_config::value::parse_size(t.trim()).ok())
            .filter(|n| *n > 0);
        LmtpSettings {
            hostname,
            recipient_delimiter: root.text("recipient_delimiter"),
            save_to_detail_mailbox: root.bool("lmtp_save_to_detail_mailbox"),
            add_received_header: root.bool("lmtp_add_received_header"),
            hdr_delivery_address,
            max_mail_size,
            starttls: false,
            postmaster_address: root.text("postmaster_address"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_plugin_size() {
        let cfg = dovecote_config::parse_str(
            "t.conf",
            "hostname = mx.example\nplugin {\n  quota_max_mail_size = 10M\n}\nprotocol lmtp {\n  lmtp_save_to_detail_mailbox = yes\n}\n",
            Default::default(),
        )
        .unwrap();
        let s = LmtpSettings::from_config(&cfg);
        assert_eq!(s.hostname, "mx.example");
        assert_eq!(s.recipient_delimiter, "+");
        assert!(s.save_to_detail_mailbox);
        assert!(s.add_received_header);
        assert_eq!(s.hdr_delivery_address, HdrDeliveryAddress::Final);
        assert_eq!(s.max_mail_size, Some(10 << 20));
    }
}
