//! `mail_location` parsing (sans-IO): `driver:path[:KEY=value]...` with
//! Dovecot's `::` escape for a literal colon, `%` variables and `~` = home.

use std::path::PathBuf;

use dovecote_config::var_expand::MailVars;

use super::error::{Result, StorageError};

/// The mail storage format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Maildir,
    Sdbox,
    Mbox,
}

/// How mailbox names map to directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `.Sent.Sub` directories under the root (Maildir++).
    MaildirPlusPlus,
    /// `Sent/Sub` directories (the dbox and mbox default; Maildir `LAYOUT=fs`).
    Fs,
}

/// A parsed `mail_location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailLocation {
    pub format: Format,
    pub root: PathBuf,
    pub inbox: Option<PathBuf>,
    pub index: Option<PathBuf>,
    pub control: Option<PathBuf>,
    pub layout: Layout,
    /// `UTF8`: mailbox names on disk in UTF-8 instead of modified UTF-7.
    pub utf8: bool,
    /// `SUBSCRIPTIONS=` file name (default `subscriptions`).
    pub subscriptions: String,
    /// `DIRNAME=` for dbox (default `dbox-Mails`).
    pub dirname: String,
    /// `INDEX=MEMORY` and similar in-memory settings.
    pub index_in_memory: bool,
}

impl MailLocation {
    /// Parses `text` after expanding `%` variables with `vars` and `~` with
    /// `home`.
    pub fn parse(text: &str, vars: &MailVars, home: Option<&str>) -> Result<MailLocation> {
        let bad =
            |reason: &str| StorageError::Location { location: text.to_string(), reason: reason.to_string() };
        let expanded = vars.expand(text).map_err(|e| bad(&e.message))?;
        let (driver, rest) = expanded.split_once(':').ok_or_else(|| bad("missing driver (e.g. maildir:)"))?;
        let format = match driver {
            "maildir" => Format::Maildir,
            "sdbox" | "dbox" => Format::Sdbox,
            "mbox" => Format::Mbox,
            other => return Err(bad(&format!("Unknown mail storage driver {other}"))),
        };
        let parts = split_params(rest);
        let mut parts = parts.into_iter();
        let root = parts.next().unwrap_or_default();
        if root.is_empty() {
            return Err(bad("root mail directory not given"));
        }
        let tilde = |p: &str| -> Result<PathBuf> {
            if p == "~" || p.starts_with("~/") {
                let home = home.ok_or_else(|| bad("~ used but home directory is not set"))?;
                Ok(PathBuf::from(format!("{home}{}", &p[1..])))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        let mut loc = MailLocation {
            format,
            root: tilde(&root)?,
            inbox: None,
            index: None,
            control: None,
            layout: if format == Format::Maildir { Layout::MaildirPlusPlus } else { Layout::Fs },
            utf8: false,
            // Dovecot's mbox keeps it hidden among the mailbox files.
            subscriptions: if format == Format::Mbox { ".subscriptions" } else { "subscriptions" }.into(),
            dirname: "dbox-Mails".into(),
            index_in_memory: false,
        };
        for part in parts {
            let (key, value) = part.split_once('=').unwrap_or((part.as_str(), ""));
            match key {
                "INBOX" => loc.inbox = Some(tilde(value)?),
                "INDEX" if value == "MEMORY" => loc.index_in_memory = true,
                "INDEX" => loc.index = Some(tilde(value)?),
                "CONTROL" => loc.control = Some(tilde(value)?),
                "LAYOUT" => {
                    loc.layout = match value {
                        "fs" => Layout::Fs,
                        "maildir++" => Layout::MaildirPlusPlus,
                        "index" => return Err(bad("LAYOUT=index is not supported")),
                        _ => return Err(bad(&format!("Unknown layout {value}"))),
                    }
                }
                "UTF8" => loc.utf8 = true,
                "SUBSCRIPTIONS" => loc.subscriptions = value.to_string(),
                "DIRNAME" => loc.dirname = value.to_string(),
                // Accepted and without effect on this implementation.
                "VOLATILEDIR" | "NO-NOSELECT" | "NOSELECT" | "FULLDIRNAME" | "ITERINDEX" | "LISTINDEX"
                | "ALT" | "MAILBOXDIR" | "BROKENCHARS" | "KEEP-NOSELECT" | "NO-INBOX" => {}
                "" => {}
                other => return Err(bad(&format!("Unknown setting: {other}"))),
            }
        }
        Ok(loc)
    }
}

/// Splits at single `:`; `::` is a literal colon.
fn split_params(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            if chars.peek() == Some(&':') {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push(':');
                }
            } else {
                out.push(String::new());
            }
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> MailVars {
        MailVars {
            user: Some("jane@example.com".into()),
            home: Some("/home/jane".into()),
            ..MailVars::default()
        }
    }

    #[test]
    fn maildir_with_params() {
        let loc = MailLocation::parse(
            "maildir:~/Maildir:INBOX=~/Maildir/.INBOX:INDEX=/var/idx/%u:CONTROL=/c::x:LAYOUT=fs",
            &vars(),
            Some("/home/jane"),
        )
        .unwrap();
        assert_eq!(loc.format, Format::Maildir);
        assert_eq!(loc.root, PathBuf::from("/home/jane/Maildir"));
        assert_eq!(loc.inbox, Some(PathBuf::from("/home/jane/Maildir/.INBOX")));
        assert_eq!(loc.index, Some(PathBuf::from("/var/idx/jane@example.com")));
        assert_eq!(loc.control, Some(PathBuf::from("/c:x")));
        assert_eq!(loc.layout, Layout::Fs);
    }

    #[test]
    fn sdbox_and_mbox() {
        let loc = MailLocation::parse("sdbox:/var/mail/%n/", &vars(), None).unwrap();
        assert_eq!((loc.format, loc.root), (Format::Sdbox, PathBuf::from("/var/mail/jane/")));
        let loc = MailLocation::parse("mbox:~/mail:INBOX=/var/mail/%u", &vars(), Some("/h")).unwrap();
        assert_eq!(loc.format, Format::Mbox);
        assert_eq!(loc.root, PathBuf::from("/h/mail"));
        assert_eq!(loc.inbox, Some(PathBuf::from("/var/mail/jane@example.com")));
    }

    #[test]
    fn errors() {
        assert!(MailLocation::parse("nosuch:/x", &vars(), None).is_err());
        assert!(MailLocation::parse("maildir:~/M", &vars(), None).is_err());
        assert!(MailLocation::parse("/just/a/path", &vars(), None).is_err());
    }
}
