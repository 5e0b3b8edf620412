//! A mail user: namespaces and the mailbox list operations (list, create,
//! delete, rename, subscribe, status), plus auto-created special-use
//! mailboxes and autoexpunge. Every list change is recorded in the user's
//! mailbox-list log ([`super::listlog`]) before it returns.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dovecote_config::var_expand::MailVars;
use dovecote_config::{Config, SectionKind};

use super::backend::Backend;
use super::error::{Result, StorageError};
use super::fsutil;
use super::index::{IndexStore, LoadOutcome};
use super::listlog::{ListChange, ListChangeKind, ListLog};
use super::location::{Format, Layout, MailLocation};
use super::mailbox::Mailbox;
use super::maildir::MaildirBackend;
use super::mbox::lock::{parse_methods, MboxSettings};
use super::mbox::MboxBackend;
use super::namespace::{AutoMailbox, Namespace};
use super::pattern;
use super::sdbox::SdboxBackend;
use super::subscriptions;
use super::types::MailboxStatus;

/// Which mailboxes LIST returns (LIST-EXTENDED selection options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub subscribed_only: bool,
    pub special_use_only: bool,
}

/// One LIST reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub name: String,
    pub separator: char,
    /// `\HasChildren`, `\Subscribed`, `\Noselect`, `\Drafts`, ...
    pub attributes: Vec<String>,
}

/// A logged-in user's storage.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub namespaces: Vec<Namespace>,
    /// `mail_fsync != never`.
    pub fsync: bool,
    /// `mbox_*` locking settings and `mail_privileged_group`.
    pub mbox: MboxSettings,
    /// The other storage settings (`mail_fsync` mode, APPENDLIMIT, NFS).
    pub settings: StorageSettings,
}

/// `mail_fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncMode {
    /// New mail (files, directory entries, log records) and expunges are
    /// fsynced before the call returns (DESIGN §4.4); flag-only changes and
    /// derived data (the field cache) are not, as in Dovecot.
    #[default]
    Optimized,
    /// As `optimized`, and flag changes and the field cache are fsynced too.
    Always,
    /// Nothing is fsynced (test and bulk-load setups; a crash may lose
    /// acknowledged mail).
    Never,
}

impl FsyncMode {
    pub fn parse(text: &str) -> Option<FsyncMode> {
        match text {
            "optimized" | "" => Some(FsyncMode::Optimized),
            "always" => Some(FsyncMode::Always),
            "never" => Some(FsyncMode::Never),
            _ => None,
        }
    }
}

/// Storage settings beyond the mail location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageSettings {
    pub fsync_mode: FsyncMode,
    /// APPENDLIMIT: `plugin { quota_max_mail_size }` when set (as Dovecot
    /// 2.3 with the quota plugin); `None` = unlimited (STATUS says `NIL`).
    pub append_limit: Option<u64>,
    /// `mail_nfs_storage` / `mail_nfs_index`: accepted. Every read of our
    /// log and mail files already opens them (NFS close-to-open
    /// consistency) and locks are flock/dotlock, so nothing else changes.
    pub nfs_storage: bool,
    pub nfs_index: bool,
}

impl StorageSettings {
    /// Reads `mail_fsync`, `mail_nfs_*` and `quota_max_mail_size`.
    pub fn from_config(config: &Config) -> Result<StorageSettings> {
        let fsync_text = config.text("mail_fsync");
        let fsync_mode = FsyncMode::parse(&fsync_text).ok_or_else(|| StorageError::Location {
            location: "mail_fsync".into(),
            reason: format!("Unknown mail_fsync value: {fsync_text}"),
        })?;
        let plugin =
            config.root.children_of(SectionKind::Plugin).find_map(|p| p.plugin_value("quota_max_mail_size"));
        let append_limit = match plugin {
            Some(text) => dovecote_config::value::parse_size(text.trim()).map_err(|reason| {
                StorageError::Location { location: "quota_max_mail_size".into(), reason }
            })?,
            None => 0,
        };
        Ok(StorageSettings {
            fsync_mode,
            append_limit: (append_limit > 0).then_some(append_limit),
            nfs_storage: config.root.bool("mail_nfs_storage"),
            nfs_index: config.root.bool("mail_nfs_index"),
        })
    }
}

impl User {
    /// Builds the user from the configuration: every enabled namespace, or
    /// one inbox namespace on `mail_location`. Creates `auto` mailboxes.
    pub fn from_config(config: &Config, vars: &MailVars) -> Result<User> {
        let global = config.text("mail_location");
        let mut namespaces = Vec::new();
        for section in config.root.children_of(SectionKind::Namespace) {
            if section.bool("disabled") {
                continue;
            }
            match Namespace::from_section(section, &global, vars) {
                Ok(ns) => namespaces.push(ns),
                Err(e) if section.bool("ignore_on_failure") => {
                    super::warn(&format!("Namespace {}: {e} (ignored)", section.name));
                }
                Err(e) => return Err(e),
            }
        }
        if namespaces.is_empty() {
            let location = MailLocation::parse(&global, vars, vars.home.as_deref())?;
            namespaces.push(Namespace::default_inbox(location));
        }
        let settings = StorageSettings::from_config(config)?;
        let user = User {
            name: vars.user.clone().unwrap_or_default(),
            namespaces,
            fsync: settings.fsync_mode != FsyncMode::Never,
            mbox: mbox_settings(config)?,
            settings,
        };
        user.autocreate()?;
        Ok(user)
    }

    /// A user with one inbox namespace on `location`.
    pub fn with_location(name: &str, location: MailLocation) -> User {
        User {
            name: name.to_string(),
            namespaces: vec![Namespace::default_inbox(location)],
            fsync: true,
            mbox: MboxSettings::default(),
            settings: StorageSettings::default(),
        }
    }

    /// The namespace of a client-visible name and the name's levels.
    pub fn resolve(&self, name: &str) -> Result<(&Namespace, Vec<String>)> {
        let is_inbox =
            name.split(['/', '.']).next().is_some_and(|h| h.eq_ignore_ascii_case("INBOX")) && name.len() == 5;
        if is_inbox {
            if let Some(ns) = self.namespaces.iter().find(|n| n.inbox) {
                return Ok((ns, vec!["INBOX".to_string()]));
            }
        }
        let ns = self
            .namespaces
            .iter()
            .filter(|n| name.starts_with(&n.prefix) && name.len() > n.prefix.len())
            .max_by_key(|n| n.prefix.len())
            .ok_or_else(|| StorageError::NotFound(name.to_string()))?;
        Ok((ns, ns.levels(&name[ns.prefix.len()..])?))
    }

    fn parts(&self, ns: &Namespace, levels: &[String]) -> (Box<dyn Backend>, IndexStore) {
        let paths = ns.paths(levels);
        let is_inbox = ns.inbox && levels == ["INBOX"];
        let backend: Box<dyn Backend> = match ns.location.format {
            Format::Maildir => Box::new(MaildirBackend {
                dir: paths.dir.clone(),
                control: paths.control.clone(),
                is_subfolder: !is_inbox,
                fsync: self.fsync,
                dirty: Default::default(),
                lock_source: Default::default(),
            }),
            Format::Mbox => Box::new(MboxBackend::new(
                paths.dir.clone(),
                paths.index.clone(),
                self.fsync,
                self.mbox.clone(),
            )),
            Format::Sdbox => Box::new(SdboxBackend {
                mailbox_dir: paths.dir.clone(),
                dir: paths.dir.join(&ns.location.dirname),
                fsync: self.fsync,
            }),
        };
        (backend, IndexStore::new(&paths.index))
    }

    /// Opens a mailbox; INBOX is created on first use.
    pub fn open(&self, name: &str) -> Result<Mailbox> {
        let (ns, levels) = self.resolve(name)?;
        let (backend, store) = self.parts(ns, &levels);
        let mut mailbox = if ns.inbox && levels == ["INBOX"] && !backend.exists() {
            match Mailbox::create("INBOX", backend, store) {
                Ok(guid) => {
                    self.log_list_change(ns, ListChangeKind::Create { guid, name: "INBOX".into() })?
                }
                Err(StorageError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
            let (backend, store) = self.parts(ns, &levels);
            Mailbox::open(name, backend, store)?
        } else {
            Mailbox::open(name, backend, store)?
        };
        mailbox.append_limit = self.settings.append_limit;
        mailbox.set_sync_cache(self.settings.fsync_mode == FsyncMode::Always);
        Ok(mailbox)
    }

    /// APPENDLIMIT for every mailbox of this user (`None`: unlimited).
    pub fn append_limit(&self) -> Option<u64> {
        self.settings.append_limit
    }

    /// Changes to the mailbox list (create, delete, rename, subscribe)
    /// after `modseq` of the list log, oldest first.
    pub fn mailbox_list_changes(&self, since: u64) -> Result<Vec<ListChange>> {
        let mut out = Vec::new();
        for log in self.list_logs() {
            out.extend(log.changes_since(since)?);
        }
        out.sort_by_key(|c| c.modseq);
        Ok(out)
    }

    /// The highest modseq of the mailbox-list log.
    pub fn mailbox_list_modseq(&self) -> Result<u64> {
        let mut highest = 0;
        for log in self.list_logs() {
            highest = highest.max(log.highest_modseq()?);
        }
        Ok(highest)
    }

    fn list_logs(&self) -> Vec<ListLog> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for ns in &self.namespaces {
            let dir = list_log_dir(self.subscriptions_namespace(ns));
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs.iter().map(|d| ListLog::new(d)).collect()
    }

    fn log_list_change(&self, ns: &Namespace, kind: ListChangeKind) -> Result<()> {
        ListLog::new(&list_log_dir(self.subscriptions_namespace(ns))).append(kind).map(|_| ())
    }

    /// The GUID of an existing mailbox from its index (empty if unreadable).
    fn mailbox_guid(&self, ns: &Namespace, levels: &[String]) -> String {
        let (_, mut store) = self.parts(ns, levels);
        let loaded = store.lock(false).and_then(|_lock| store.load());
        match loaded {
            Ok(LoadOutcome::Loaded(state)) => state.guid,
            _ => String::new(),
        }
    }

    pub fn exists(&self, name: &str) -> Result<bool> {
        let (ns, levels) = self.resolve(name)?;
        Ok(self.parts(ns, &levels).0.exists())
    }

    /// Creates a mailbox (parents in fs layouts are plain directories).
    pub fn create(&self, name: &str) -> Result<()> {
        let (ns, levels) = self.resolve(name)?;
        refuse_inside_mbox_file(ns, &levels)?;
        let (backend, store) = self.parts(ns, &levels);
        let guid = Mailbox::create(name, backend, store)?;
        self.log_list_change(ns, ListChangeKind::Create { guid, name: name.to_string() })
    }

    /// Deletes a mailbox; its children stay.
    pub fn delete(&self, name: &str) -> Result<()> {
        let (ns, levels) = self.resolve(name)?;
        if ns.inbox && levels == ["INBOX"] {
            return Err(StorageError::NotPossible("INBOX can't be deleted.".into()));
        }
        let (backend, store) = self.parts(ns, &levels);
        if !backend.exists() {
            return Err(StorageError::NotFound(name.to_string()));
        }
        let guid = self.mailbox_guid(ns, &levels);
        Mailbox::delete_files(backend.as_ref(), &store)?;
        self.log_list_change(ns, ListChangeKind::Delete { guid, name: name.to_string() })?;
        let paths = ns.paths(&levels);
        let _ = fs::remove_file(store.dir().join(super::index::store::LOCK_FILE));
        for dir in [&paths.index, &paths.control, &paths.dir] {
            remove_if_no_children(dir);
        }
        Ok(())
    }

    /// Renames a mailbox with its children; renaming INBOX moves its
    /// messages into the new mailbox and leaves INBOX empty (RFC 3501).
    pub fn rename(&self, old: &str, new: &str) -> Result<()> {
        let (ns, old_levels) = self.resolve(old)?;
        let (new_ns, new_levels) = self.resolve(new)?;
        if !std::ptr::eq(ns, new_ns) {
            return Err(StorageError::NotPossible("Can't rename mailboxes across namespaces".into()));
        }
        if self.exists(new)? {
            return Err(StorageError::AlreadyExists(new.to_string()));
        }
        if ns.inbox && new_levels == ["INBOX"] {
            return Err(StorageError::AlreadyExists(new.to_string()));
        }
        if new_levels.starts_with(&old_levels) {
            return Err(StorageError::NotPossible("Can't rename mailbox under itself".into()));
        }
        refuse_inside_mbox_file(ns, &new_levels)?;
        if !self.exists(old)? {
            return Err(StorageError::NotFound(old.to_string()));
        }
        if ns.inbox && old_levels == ["INBOX"] {
            let mut inbox = self.open(old)?;
            self.create(new)?;
            let mut dest = self.open(new)?;
            let uids: Vec<u32> = inbox.messages().map(|m| m.uid).collect();
            inbox.move_to(&uids, &mut dest)?;
            return Ok(());
        }
        let mut moves: Vec<(Vec<String>, Vec<String>)> = vec![(old_levels.clone(), new_levels.clone())];
        if ns.location.layout == Layout::MaildirPlusPlus {
            for child in self.all_levels(ns)? {
                if child.len() > old_levels.len() && child.starts_with(&old_levels) {
                    let mut to = new_levels.clone();
                    to.extend_from_slice(&child[old_levels.len()..]);
                    moves.push((child, to));
                }
            }
        }
        let mut renamed = Vec::new();
        for (from, to) in moves {
            renamed.push((self.mailbox_guid(ns, &from), ns.vname(&from), ns.vname(&to)));
            let a = ns.paths(&from);
            let b = ns.paths(&to);
            for (x, y) in [(&a.dir, &b.dir), (&a.index, &b.index), (&a.control, &b.control)] {
                if x == y || !x.exists() || (x.starts_with(&a.dir) && x != &a.dir) {
                    continue;
                }
                if let Some(parent) = y.parent() {
                    fsutil::mkdir_all(parent)?;
                }
                if y.exists() && x != &a.dir {
                    continue;
                }
                fs::rename(x, y).map_err(|e| StorageError::io("rename", x, e))?;
            }
        }
        for (guid, old, new) in renamed {
            self.log_list_change(ns, ListChangeKind::Rename { guid, old, new })?;
        }
        Ok(())
    }

    /// Subscribes (or unsubscribes) a name; the mailbox need not exist.
    pub fn subscribe(&self, name: &str, subscribe: bool) -> Result<()> {
        let (ns, levels) = self.resolve(name)?;
        let ns = self.subscriptions_namespace(ns);
        let path = ns.subscriptions_path();
        fsutil::mkdir_all(path.parent().unwrap_or(Path::new(".")))?;
        let _lock = fsutil::FileLock::acquire(&path.with_extension("lock"), true)?;
        let mut names = self.read_subscriptions(ns)?;
        let stored: Vec<String> = levels.iter().map(|l| ns.encode_level(l)).collect();
        let stored = self.with_ns_prefix(ns, name, stored);
        names.retain(|n| *n != stored);
        if subscribe {
            names.push(stored);
        }
        fsutil::write_atomic(&path, subscriptions::format(&names).as_bytes())?;
        let name = name.to_string();
        let kind =
            if subscribe { ListChangeKind::Subscribe { name } } else { ListChangeKind::Unsubscribe { name } };
        self.log_list_change(ns, kind)
    }

    fn subscriptions_namespace<'a>(&'a self, ns: &'a Namespace) -> &'a Namespace {
        if ns.subscriptions {
            ns
        } else {
            self.namespaces.iter().find(|n| n.subscriptions && n.prefix.is_empty()).unwrap_or(ns)
        }
    }

    fn with_ns_prefix(&self, _owner: &Namespace, _name: &str, stored: Vec<String>) -> Vec<String> {
        stored
    }

    fn read_subscriptions(&self, ns: &Namespace) -> Result<Vec<Vec<String>>> {
        let data = fsutil::read_optional(&ns.subscriptions_path())?;
        Ok(data.map(|d| subscriptions::parse(&String::from_utf8_lossy(&d))).unwrap_or_default())
    }

    /// Subscribed client-visible names.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        for ns in self.namespaces.iter().filter(|n| n.subscriptions) {
            for levels in self.read_subscriptions(ns)? {
                let decoded: Vec<String> = levels.iter().map(|l| ns.decode_level(l)).collect();
                out.insert(ns.vname(&decoded));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// STATUS of a mailbox.
    pub fn status(&self, name: &str) -> Result<MailboxStatus> {
        Ok(self.open(name)?.status())
    }

    /// LIST / LSUB with an IMAP pattern.
    pub fn list(&self, pattern_text: &str, options: ListOptions) -> Result<Vec<ListEntry>> {
        let subscribed: BTreeSet<String> = self.subscriptions()?.into_iter().collect();
        let mut out = Vec::new();
        for ns in &self.namespaces {
            if ns.list == "no" && !(ns.prefix.is_empty()) {
                continue;
            }
            let all = self.all_levels(ns)?;
            let mut names: BTreeSet<Vec<String>> = all.iter().cloned().collect();
            // Parents that are not mailboxes show as \Noselect.
            for levels in &all {
                for i in 1..levels.len() {
                    names.insert(levels[..i].to_vec());
                }
            }
            for levels in &names {
                let vname = ns.vname(levels);
                if !pattern::matches(pattern_text, &vname, ns.separator) {
                    continue;
                }
                let mut attributes = Vec::new();
                if !all.contains(levels) {
                    attributes.push("\\Noselect".to_string());
                }
                let has_children = names.iter().any(|n| n.len() > levels.len() && n.starts_with(levels));
                if all.contains(levels) && is_mbox_file(ns, levels) {
                    // A file can't hold children: Dovecot says so instead
                    // of \HasNoChildren (RFC 3348 lets one imply the other).
                    attributes.push("\\NoInferiors".to_string());
                } else {
                    attributes
                        .push(if has_children { "\\HasChildren" } else { "\\HasNoChildren" }.to_string());
                }
                let is_subscribed = subscribed.contains(&vname);
                if is_subscribed {
                    attributes.push("\\Subscribed".to_string());
                }
                let special = ns.settings(levels).map(|s| s.special_use.clone()).unwrap_or_default();
                if options.subscribed_only && !is_subscribed {
                    continue;
                }
                if options.special_use_only && special.is_empty() {
                    continue;
                }
                attributes.extend(special);
                out.push(ListEntry { name: vname, separator: ns.separator, attributes });
            }
            if options.subscribed_only {
                // Subscribed names that don't exist are listed too.
                for s in &subscribed {
                    if s.starts_with(&ns.prefix)
                        && pattern::matches(pattern_text, s, ns.separator)
                        && !out.iter().any(|e| &e.name == s)
                    {
                        out.push(ListEntry {
                            name: s.clone(),
                            separator: ns.separator,
                            attributes: vec!["\\Subscribed".into(), "\\NonExistent".into()],
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every existing mailbox of a namespace, as levels.
    fn all_levels(&self, ns: &Namespace) -> Result<Vec<Vec<String>>> {
        let mut out = Vec::new();
        if ns.inbox && self.parts(ns, &["INBOX".to_string()]).0.exists() {
            out.push(vec!["INBOX".to_string()]);
        }
        let root = &ns.location.root;
        match (ns.location.format, ns.location.layout) {
            (Format::Maildir, Layout::MaildirPlusPlus) => {
                for name in read_dir_names(root)? {
                    let Some(rest) = name.strip_prefix('.') else { continue };
                    if rest.is_empty() || rest == "." || !root.join(&name).join("cur").is_dir() {
                        continue;
                    }
                    let levels: Vec<String> = rest.split('.').map(|l| ns.decode_level(l)).collect();
                    if !(ns.inbox && levels == ["INBOX"]) {
                        out.push(levels);
                    }
                }
            }
            (Format::Maildir, Layout::Fs) => {
                walk(root, &mut Vec::new(), &mut out, ns, &|dir| dir.join("cur").is_dir())?
            }
            (Format::Mbox, _) => {
                let inbox = ns.inbox.then(|| ns.paths(&["INBOX".to_string()]).dir);
                walk_mbox(root, &mut Vec::new(), &mut out, ns, inbox.as_deref())?;
            }
            (Format::Sdbox, _) => {
                let dirname = ns.location.dirname.clone();
                let mut found = Vec::new();
                walk(&root.join("mailboxes"), &mut Vec::new(), &mut found, ns, &|dir| {
                    dir.join(&dirname).is_dir()
                })?;
                out.extend(found.into_iter().filter(|l| !(ns.inbox && l == &["INBOX"])));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Creates and subscribes `auto` mailboxes (first access).
    pub fn autocreate(&self) -> Result<()> {
        for ns in &self.namespaces {
            for settings in &ns.mailboxes {
                if settings.auto == AutoMailbox::No {
                    continue;
                }
                let name = format!("{}{}", ns.prefix, settings.name);
                if !self.exists(&name)? {
                    match self.create(&name) {
                        Ok(()) | Err(StorageError::AlreadyExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                if settings.auto == AutoMailbox::Subscribe && !self.subscriptions()?.contains(&name) {
                    self.subscribe(&name, true)?;
                }
            }
        }
        Ok(())
    }

    /// Expunges mail older than each mailbox's `autoexpunge` (by saved
    /// date) and beyond `autoexpunge_max_mails`; returns how many.
    pub fn autoexpunge(&self, now: i64) -> Result<usize> {
        let mut total = 0;
        for ns in &self.namespaces {
            for settings in &ns.mailboxes {
                if settings.autoexpunge == 0 && settings.autoexpunge_max_mails == 0 {
                    continue;
                }
                let name = format!("{}{}", ns.prefix, settings.name);
                if !self.exists(&name)? {
                    continue;
                }
                let mut mailbox = self.open(&name)?;
                let mut uids: Vec<u32> = Vec::new();
                if settings.autoexpunge > 0 {
                    let limit = now - settings.autoexpunge as i64;
                    uids.extend(mailbox.messages().filter(|m| m.saved < limit).map(|m| m.uid));
                }
                let max = settings.autoexpunge_max_mails as usize;
                let count = mailbox.messages().count();
                if max > 0 && count > max {
                    uids.extend(mailbox.messages().take(count - max).map(|m| m.uid));
                }
                uids.sort_unstable();
                uids.dedup();
                total += mailbox.expunge(&uids)?.len();
            }
        }
        Ok(total)
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StorageError::io("opendir", dir, e)),
    }
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
    ns: &Namespace,
    is_mailbox: &dyn Fn(&Path) -> bool,
) -> Result<()> {
    for name in read_dir_names(dir)? {
        if name.starts_with('.')
            || ["cur", "new", "tmp", ns.location.dirname.as_str()].contains(&name.as_str())
        {
            continue;
        }
        let path: PathBuf = dir.join(&name);
        if !path.is_dir() {
            continue;
        }
        prefix.push(ns.decode_level(&name));
        if is_mailbox(&path) {
            out.push(prefix.clone());
        }
        walk(&path, prefix, out, ns, is_mailbox)?;
        prefix.pop();
    }
    Ok(())
}

/// mbox: every regular file under the root is a mailbox, directories are
/// hierarchy; hidden entries (`.imap`, `.subscriptions`) and dotlocks are not.
/// Whether a mailbox of an mbox namespace is a file that cannot have
/// children: every one but an INBOX kept outside the mail root (a spool
/// such as `/var/mail/%u`), whose children live in `<root>/INBOX/`.
fn is_mbox_file(ns: &Namespace, levels: &[String]) -> bool {
    if ns.location.format != Format::Mbox {
        return false;
    }
    if ns.inbox && levels == ["INBOX"] {
        return ns.paths(levels).dir == ns.location.root.join("INBOX");
    }
    true
}

/// An mbox mailbox is a file, so a name below it has nowhere to go:
/// Dovecot's `Mailbox doesn't allow inferior mailboxes` instead of a
/// failing mkdir().
fn refuse_inside_mbox_file(ns: &Namespace, levels: &[String]) -> Result<()> {
    if ns.location.format != Format::Mbox {
        return Ok(());
    }
    let mut dir = ns.paths(levels).dir;
    while dir.pop() && dir.starts_with(&ns.location.root) && dir != ns.location.root {
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(StorageError::NotPossible("Mailbox doesn't allow inferior mailboxes".into()))
            }
            Err(_) => {}
        }
    }
    Ok(())
}

fn walk_mbox(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
    ns: &Namespace,
    inbox: Option<&Path>,
) -> Result<()> {
    for name in read_dir_names(dir)? {
        if name.starts_with('.') || name.ends_with(".lock") || name.contains(".tmp.") {
            continue;
        }
        let path = dir.join(&name);
        let Ok(meta) = fs::metadata(&path) else { continue };
        if inbox == Some(path.as_path()) {
            continue;
        }
        prefix.push(ns.decode_level(&name));
        if meta.is_dir() {
            walk_mbox(&path, prefix, out, ns, inbox)?;
        } else if meta.is_file() {
            out.push(prefix.clone());
        }
        prefix.pop();
    }
    Ok(())
}

/// Where a namespace's mailbox-list log lives: next to its subscriptions.
/// mbox keeps it with its indexes (`~/mail/.imap`), since every plain file
/// under an mbox root is a mailbox.
fn list_log_dir(ns: &Namespace) -> PathBuf {
    if ns.location.format == Format::Mbox {
        return ns.location.index.clone().unwrap_or_else(|| ns.location.root.join(".imap"));
    }
    ns.subscriptions_path().parent().map(PathBuf::from).unwrap_or_else(|| ns.location.root.clone())
}

/// mbox settings from the configuration.
fn mbox_settings(config: &Config) -> Result<MboxSettings> {
    let bad = |e: String| StorageError::Location { location: "mbox_*_locks".into(), reason: e };
    let defaults = MboxSettings::default();
    let seconds =
        |name: &str, default: std::time::Duration| match config.root.value(name).and_then(|v| v.as_u64()) {
            Some(n) => std::time::Duration::from_secs(n),
            None => default,
        };
    let group = config.text("mail_privileged_group");
    Ok(MboxSettings {
        read_locks: parse_methods(&config.text("mbox_read_locks")).map_err(bad)?,
        write_locks: parse_methods(&config.text("mbox_write_locks")).map_err(bad)?,
        lock_timeout: seconds("mbox_lock_timeout", defaults.lock_timeout),
        dotlock_change_timeout: seconds("mbox_dotlock_change_timeout", defaults.dotlock_change_timeout),
        privileged_group: (!group.is_empty()).then_some(group),
    })
}

/// Removes a mailbox directory unless child mailboxes live inside it.
fn remove_if_no_children(dir: &Path) {
    super::maildir::remove_dovecot_index_files(dir);
    let _ = fs::remove_file(dir.join("maildirfolder"));
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        dovecote_config::parse_str("test.conf", text, Default::default()).expect("config")
    }

    #[test]
    fn storage_settings_from_config() {
        let s = StorageSettings::from_config(&config("")).unwrap();
        assert_eq!(s, StorageSettings::default());
        assert_eq!(s.append_limit, None);
        let s = StorageSettings::from_config(&config(
            "mail_fsync = always\nmail_nfs_storage = yes\nplugin {\n  quota_max_mail_size = 10M\n}\n",
        ))
        .unwrap();
        assert_eq!(s.fsync_mode, FsyncMode::Always);
        assert!(s.nfs_storage && !s.nfs_index);
        assert_eq!(s.append_limit, Some(10 << 20));
        let s = StorageSettings::from_config(&config("mail_fsync = never\n")).unwrap();
        assert_eq!(s.fsync_mode, FsyncMode::Never);
    }
}
