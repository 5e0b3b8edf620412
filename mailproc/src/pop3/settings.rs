//! The `pop3_*` settings the POP3 session obeys, read once from the
//! configuration and checked the way Dovecot's settings check does.

use dovecote_config::Config;
use thiserror::Error;

use super::fetch::OutputWorkarounds;

/// What DELE does at QUIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteType {
    Expunge,
    /// Add the `pop3_deleted_flag` keyword; flagged messages are hidden
    /// from later POP3 sessions.
    Flag,
}

/// `pop3_uidl_duplicates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidlDuplicates {
    Allow,
    /// Second and later copies of a UIDL get `-2`, `-3`, ... appended.
    Rename,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Settings {
    pub uidl_format: String,
    pub uidl_duplicates: UidlDuplicates,
    pub reuse_xuidl: bool,
    pub save_uidl: bool,
    pub lock_session: bool,
    pub no_flag_updates: bool,
    pub enable_last: bool,
    pub deleted_flag: String,
    pub delete_type: DeleteType,
    pub logout_format: String,
    pub workarounds: OutputWorkarounds,
    pub fast_size_lookups: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("pop3_client_workarounds: Unknown workaround: {0}")]
    UnknownWorkaround(String),
    #[error("pop3_delete_type: Unknown value: {0}")]
    UnknownDeleteType(String),
    #[error("pop3_delete_type=flag, but pop3_deleted_flag not set")]
    FlagWithoutKeyword,
    #[error("Invalid pop3_uidl_format")]
    InvalidUidlFormat,
}

impl Default for Pop3Settings {
    fn default() -> Self {
        Pop3Settings {
            uidl_format: "%08Xu%08Xv".into(),
            uidl_duplicates: UidlDuplicates::Allow,
            reuse_xuidl: false,
            save_uidl: false,
            lock_session: false,
            no_flag_updates: false,
            enable_last: false,
            deleted_flag: String::new(),
            delete_type: DeleteType::Expunge,
            logout_format: "top=%t/%p, retr=%r/%b, del=%d/%m, size=%s".into(),
            workarounds: OutputWorkarounds::default(),
            fast_size_lookups: false,
        }
    }
}

impl Pop3Settings {
    pub fn from_config(config: &Config) -> Result<Pop3Settings, SettingsError> {
        let deleted_flag = config.text("pop3_deleted_flag");
        let delete_type = match config.text("pop3_delete_type").as_str() {
            "" | "default" if deleted_flag.is_empty() => DeleteType::Expunge,
            "" | "default" | "flag" if !deleted_flag.is_empty() => DeleteType::Flag,
            "flag" => return Err(SettingsError::FlagWithoutKeyword),
            "expunge" => DeleteType::Expunge,
            other => return Err(SettingsError::UnknownDeleteType(other.to_string())),
        };
        let uidl_format = config.text("pop3_uidl_format");
        if !super::uidl::format_has_key(&uidl_format) {
            return Err(SettingsError::InvalidUidlFormat);
        }
        Ok(Pop3Settings {
            uidl_format,
            uidl_duplicates: if config.text("pop3_uidl_duplicates") == "rename" {
                UidlDuplicates::Rename
            } else {
                UidlDuplicates::Allow
            },
            reuse_xuidl: config.root.bool("pop3_reuse_xuidl"),
            save_uidl: config.root.bool("pop3_save_uidl"),
            lock_session: config.root.bool("pop3_lock_session"),
            no_flag_updates: config.root.bool("pop3_no_flag_updates"),
            enable_last: config.root.bool("pop3_enable_last"),
            deleted_flag,
            delete_type,
            logout_format: config.text("pop3_logout_format"),
            workarounds: parse_workarounds(&config.text("pop3_client_workarounds"))?,
            fast_size_lookups: config.root.bool("pop3_fast_size_lookups"),
        })
    }
}

/// `pop3_client_workarounds`: names separated by spaces or commas.
pub fn parse_workarounds(text: &str) -> Result<OutputWorkarounds, SettingsError> {
    let mut w = OutputWorkarounds::default();
    for name in text.split([' ', ',', '\t']).filter(|n| !n.is_empty()) {
        match name {
            "outlook-no-nuls" => w.outlook_no_nuls = true,
            "oe-ns-eoh" => w.oe_ns_eoh = true,
            other => return Err(SettingsError::UnknownWorkaround(other.to_string())),
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workarounds_parse() {
        let w = parse_workarounds("outlook-no-nuls, oe-ns-eoh").unwrap();
        assert!(w.outlook_no_nuls && w.oe_ns_eoh);
        assert_eq!(parse_workarounds(""), Ok(OutputWorkarounds::default()));
        assert_eq!(parse_workarounds("foo"), Err(SettingsError::UnknownWorkaround("foo".into())));
    }
}
