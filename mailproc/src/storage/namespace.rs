//! Namespaces and per-mailbox settings from the configuration, and the
//! mapping of mailbox names to directories for each layout (sans-IO).

use std::path::PathBuf;

use dovecote_config::var_expand::MailVars;
use dovecote_config::{Section, SectionKind};

use super::error::{Result, StorageError};
use super::location::{Format, Layout, MailLocation};
use super::mutf7;

/// `mailbox NAME { auto = ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMailbox {
    No,
    Create,
    Subscribe,
}

/// `mailbox NAME { ... }` inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSettings {
    pub name: String,
    pub auto: AutoMailbox,
    /// Special-use flags such as `\Drafts`.
    pub special_use: Vec<String>,
    /// Seconds; 0 = off.
    pub autoexpunge: u64,
    pub autoexpunge_max_mails: u64,
}

/// One namespace.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub name: String,
    /// private, shared or public.
    pub kind: String,
    pub prefix: String,
    /// The separator clients see.
    pub separator: char,
    pub inbox: bool,
    pub hidden: bool,
    /// yes, no or children.
    pub list: String,
    pub subscriptions: bool,
    pub location: MailLocation,
    pub mailboxes: Vec<MailboxSettings>,
}

/// Where one mailbox lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxPaths {
    /// Maildir folder, or the sdbox `mailboxes/<name>` directory.
    pub dir: PathBuf,
    /// Index files directory.
    pub index: PathBuf,
    /// Maildir control files directory.
    pub control: PathBuf,
}

impl Namespace {
    /// Builds a namespace from its config block (`location` empty means the
    /// global `mail_location`).
    pub fn from_section(section: &Section, global_location: &str, vars: &MailVars) -> Result<Namespace> {
        let location_text = match section.text("location") {
            l if l.is_empty() => global_location.to_string(),
            l => l,
        };
        let location = MailLocation::parse(&location_text, vars, vars.home.as_deref())?;
        let separator = section.text("separator").chars().next().unwrap_or(default_separator(&location));
        let prefix = vars.expand(&section.text("prefix")).unwrap_or_else(|e| e.partial);
        let mailboxes = section
            .children_of(SectionKind::Mailbox)
            .map(|m| MailboxSettings {
                name: m.name.clone(),
                auto: match m.text("auto").as_str() {
                    "create" => AutoMailbox::Create,
                    "subscribe" => AutoMailbox::Subscribe,
                    _ => AutoMailbox::No,
                },
                special_use: m.text("special_use").split_whitespace().map(str::to_string).collect(),
                autoexpunge: m.number("autoexpunge"),
                autoexpunge_max_mails: m.number("autoexpunge_max_mails"),
            })
            .collect();
        Ok(Namespace {
            name: section.name.clone(),
            kind: section.text("type"),
            prefix,
            separator,
            inbox: section.bool("inbox"),
            hidden: section.bool("hidden"),
            list: section.text("list"),
            subscriptions: section.bool("subscriptions"),
            location,
            mailboxes,
        })
    }

    /// A plain private inbox namespace (no config namespaces).
    pub fn default_inbox(location: MailLocation) -> Namespace {
        Namespace {
            name: String::new(),
            kind: "private".into(),
            prefix: String::new(),
            separator: default_separator(&location),
            inbox: true,
            hidden: false,
            list: "yes".into(),
            subscriptions: true,
            location,
            mailboxes: Vec::new(),
        }
    }

    /// Splits a client-visible name (prefix removed) into hierarchy levels,
    /// normalising INBOX.
    pub fn levels(&self, name: &str) -> Result<Vec<String>> {
        let invalid =
            |reason: &str| StorageError::InvalidName { name: name.to_string(), reason: reason.into() };
        if name.is_empty() {
            return Err(invalid("empty name"));
        }
        let mut levels: Vec<String> = name.split(self.separator).map(str::to_string).collect();
        if levels.iter().any(|l| l.is_empty()) {
            return Err(invalid("empty hierarchy level"));
        }
        if self.inbox && levels[0].eq_ignore_ascii_case("INBOX") {
            levels[0] = "INBOX".into();
        }
        let fs_sep = self.storage_separator();
        for l in &levels {
            if l.contains('/') || (fs_sep != '/' && l.contains(fs_sep)) || l == "." || l == ".." {
                return Err(invalid(&format!(
                    "Name must not have '{}' characters",
                    if l.contains('/') { '/' } else { fs_sep }
                )));
            }
            if l.contains(['\t', '\n', '\r', '~']) && l.starts_with('~') {
                return Err(invalid("bad characters"));
            }
        }
        Ok(levels)
    }

    /// The client-visible name for levels.
    pub fn vname(&self, levels: &[String]) -> String {
        format!("{}{}", self.prefix, levels.join(&self.separator.to_string()))
    }

    /// The separator inside storage names (`.` for Maildir++).
    pub fn storage_separator(&self) -> char {
        match self.location.layout {
            Layout::MaildirPlusPlus => '.',
            Layout::Fs => '/',
        }
    }

    /// One level as a directory name.
    pub fn encode_level(&self, level: &str) -> String {
        if self.location.utf8 {
            level.to_string()
        } else {
            mutf7::encode(level)
        }
    }

    /// A directory name back to a level.
    pub fn decode_level(&self, level: &str) -> String {
        if self.location.utf8 {
            level.to_string()
        } else {
            mutf7::decode(level).unwrap_or_else(|| level.to_string())
        }
    }

    /// Directories of a mailbox.
    pub fn paths(&self, levels: &[String]) -> MailboxPaths {
        let loc = &self.location;
        let is_inbox = self.inbox && levels.len() == 1 && levels[0] == "INBOX";
        let encoded: Vec<String> = levels.iter().map(|l| self.encode_level(l)).collect();
        if loc.format == Format::Mbox {
            return self.mbox_paths(&encoded, is_inbox);
        }
        let relative: PathBuf = match (loc.format, loc.layout) {
            (Format::Sdbox, _) | (Format::Mbox, _) => {
                let mut p = PathBuf::from("mailboxes");
                encoded.iter().for_each(|l| p.push(l));
                p
            }
            (Format::Maildir, Layout::MaildirPlusPlus) => {
                if is_inbox {
                    PathBuf::new()
                } else {
                    PathBuf::from(format!(".{}", encoded.join(".")))
                }
            }
            (Format::Maildir, Layout::Fs) => {
                if is_inbox {
                    PathBuf::new()
                } else {
                    encoded.iter().collect()
                }
            }
        };
        let dir = match (&loc.inbox, is_inbox) {
            (Some(inbox), true) => inbox.clone(),
            _ => loc.root.join(&relative),
        };
        let in_root = |root: &Option<PathBuf>| match (root, is_inbox, &loc.inbox) {
            (Some(r), _, _) => r.join(&relative),
            (None, _, _) => match loc.format {
                Format::Sdbox | Format::Mbox => dir.join(&loc.dirname),
                Format::Maildir => dir.clone(),
            },
        };
        MailboxPaths { index: in_root(&loc.index), control: in_root(&loc.control), dir }
    }

    /// mbox: the mailbox is a file; its index is `.imap/<name>` next to
    /// it (INBOX: `<root>/.imap/INBOX`), as Dovecot lays it out.
    fn mbox_paths(&self, encoded: &[String], is_inbox: bool) -> MailboxPaths {
        let loc = &self.location;
        let relative: PathBuf = encoded.iter().collect();
        let dir = match (&loc.inbox, is_inbox) {
            (Some(inbox), true) => inbox.clone(),
            (None, true) => loc.root.join("inbox"),
            _ => loc.root.join(&relative),
        };
        let index = match (&loc.index, is_inbox) {
            (Some(root), _) => root.join(&relative),
            (None, true) => loc.root.join(".imap").join("INBOX"),
            (None, false) => {
                let file = loc.root.join(&relative);
                let parent = file.parent().map(PathBuf::from).unwrap_or_else(|| loc.root.clone());
                parent.join(".imap").join(file.file_name().unwrap_or_default())
            }
        };
        MailboxPaths { dir, control: index.clone(), index }
    }

    /// Settings of a mailbox by levels.
    pub fn settings(&self, levels: &[String]) -> Option<&MailboxSettings> {
        let name = levels.join(&self.separator.to_string());
        self.mailboxes.iter().find(|m| m.name == name)
    }

    /// The subscriptions file.
    pub fn subscriptions_path(&self) -> PathBuf {
        self.location.control.as_ref().unwrap_or(&self.location.root).join(&self.location.subscriptions)
    }
}

fn default_separator(location: &MailLocation) -> char {
    match location.layout {
        Layout::MaildirPlusPlus => '.',
        Layout::Fs => '/',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(location: &str) -> Namespace {
        Namespace::default_inbox(MailLocation::parse(location, &MailVars::default(), Some("/h")).unwrap())
    }

    #[test]
    fn maildir_paths() {
        let n = ns("maildir:~/Maildir");
        assert_eq!(n.paths(&["INBOX".into()]).dir, PathBuf::from("/h/Maildir"));
        let levels = n.levels("Entwürfe.x").unwrap();
        assert_eq!(n.paths(&levels).dir, PathBuf::from("/h/Maildir/.Entw&APw-rfe.x"));
        let n = ns("maildir:~/Maildir:LAYOUT=fs:INDEX=/idx");
        let p = n.paths(&n.levels("a/b").unwrap());
        assert_eq!((p.dir, p.index), (PathBuf::from("/h/Maildir/a/b"), PathBuf::from("/idx/a/b")));
    }

    #[test]
    fn sdbox_paths() {
        let n = ns("sdbox:/var/mail/u");
        let p = n.paths(&n.levels("inbox").unwrap());
        assert_eq!(p.dir, PathBuf::from("/var/mail/u/mailboxes/INBOX"));
        assert_eq!(p.index, PathBuf::from("/var/mail/u/mailboxes/INBOX/dbox-Mails"));
        assert!(n.levels("a//b").is_err());
    }

    #[test]
    fn mbox_paths() {
        let n = ns("mbox:~/mail:INBOX=/var/mail/jane");
        let p = n.paths(&n.levels("INBOX").unwrap());
        assert_eq!((p.dir, p.index), (PathBuf::from("/var/mail/jane"), PathBuf::from("/h/mail/.imap/INBOX")));
        let p = n.paths(&n.levels("Sub/Child").unwrap());
        assert_eq!(p.dir, PathBuf::from("/h/mail/Sub/Child"));
        assert_eq!(p.index, PathBuf::from("/h/mail/Sub/.imap/Child"));
        assert_eq!(n.subscriptions_path(), PathBuf::from("/h/mail/.subscriptions"));
    }
}
