//! Maildir: one file per message in `cur/` or `new/`, written through
//! `tmp/`; flags in the `:2,` suffix, keywords through `dovecot-keywords`,
//! UIDs and UIDVALIDITY in `dovecot-uidlist` exactly as Dovecot 2.3 writes
//! them, under Dovecot's `dovecot-uidlist.lock` dotlock so both servers can
//! share a Maildir.
//!
//! Saves don't list the directories ([`Backend::save_uid_floor`]): like
//! Dovecot's, they take the next UID from dovecot-uidlist's header and last
//! line and append their own lines; files other programs dropped into
//! `new/` are picked up by the next sync. Only the directories a
//! transaction changed are fsynced ([`MaildirBackend::dirty`]).

pub mod filename;
pub mod keywords;
pub mod uidlist;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirEntryExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use self::filename::MaildirName;
use self::uidlist::Uidlist;
use super::backend::{virtual_size, Backend, FormatLock, Scan, ScannedMessage, Staged};
use super::error::{Result, StorageError};
use super::fsutil::{self, DotLockSource, PendingSyncs};
use super::index::MailboxState;
use super::parallel;
use super::types::{Flags, Keywords, MessageRecord};

pub const UIDLIST: &str = "dovecot-uidlist";
pub const KEYWORDS: &str = "dovecot-keywords";

/// One Maildir folder.
#[derive(Debug)]
pub struct MaildirBackend {
    /// The folder (with cur/ new/ tmp/).
    pub dir: PathBuf,
    /// Where dovecot-uidlist and dovecot-keywords live (`CONTROL=`).
    pub control: PathBuf,
    /// Whether to create `maildirfolder` (every folder but INBOX).
    pub is_subfolder: bool,
    pub fsync: bool,
    /// Directories changed since the last [`Backend::sync_dirs`]
    /// ([`DIRTY_NEW`], [`DIRTY_CUR`]).
    pub dirty: AtomicU8,
    /// Where the uidlist dotlocks of this handle are linked from.
    pub lock_source: DotLockSource,
}

/// `new/` gained or lost an entry.
pub const DIRTY_NEW: u8 = 1;
/// `cur/` gained or lost an entry.
pub const DIRTY_CUR: u8 = 2;

/// What a transaction needs of dovecot-uidlist, read without parsing the
/// records: the header and the last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidlistTail {
    pub uid_validity: u32,
    /// The larger of the header's `N` and the last UID + 1.
    pub next_uid: u32,
    /// The last record's UID (0 without records).
    pub last_uid: u32,
}

impl MaildirBackend {
    fn uidlist_path(&self) -> PathBuf {
        self.control.join(UIDLIST)
    }

    fn keywords_path(&self) -> PathBuf {
        self.control.join(KEYWORDS)
    }

    fn read_keywords(&self) -> Result<Vec<String>> {
        let data = fsutil::read_optional(&self.keywords_path())?;
        Ok(data.map(|d| keywords::parse(&String::from_utf8_lossy(&d))).unwrap_or_default())
    }

    /// Keyword indexes for `keywords`, adding new names to dovecot-keywords.
    fn keyword_indexes(&self, wanted: &Keywords) -> Result<Vec<usize>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut list = self.read_keywords()?;
        let before = list.len();
        for k in wanted {
            if !list.contains(k) && list.len() < 26 {
                list.push(k.clone());
            }
        }
        if list.len() != before {
            fsutil::write_atomic(&self.keywords_path(), keywords::format(&list).as_bytes())?;
        }
        Ok(filename::keyword_indexes(wanted, &list))
    }

    /// Reads dovecot-uidlist; a broken one is reported and ignored.
    pub fn read_uidlist(&self) -> Result<Option<Uidlist>> {
        let Some(data) = fsutil::read_optional(&self.uidlist_path())? else { return Ok(None) };
        match Uidlist::parse(&String::from_utf8_lossy(&data)) {
            Ok(list) => Ok(Some(list)),
            Err(reason) => {
                crate::storage::warn(&format!("Broken file {}: {reason}", self.uidlist_path().display()));
                Ok(None)
            }
        }
    }

    /// The header and last line of dovecot-uidlist (two small reads,
    /// whatever the mailbox size); `None` when it is missing or its last
    /// line is torn or unreadable, which a full read then sorts out.
    pub fn read_uidlist_tail(&self) -> Result<Option<UidlistTail>> {
        use std::os::unix::fs::FileExt;
        const CHUNK: u64 = 4096;
        let path = self.uidlist_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("open", &path, e)),
        };
        let len = f.metadata().map_err(|e| StorageError::io("fstat", &path, e))?.len();
        let read_at = |offset: u64, size: u64| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; size as usize];
            f.read_exact_at(&mut buf, offset).map_err(|e| StorageError::io("read", &path, e))?;
            Ok(buf)
        };
        let head = read_at(0, len.min(CHUNK))?;
        let Some(header_end) = head.iter().position(|&b| b == b'\n') else { return Ok(None) };
        let header = String::from_utf8_lossy(&head[..header_end]);
        let Ok(list) = Uidlist::parse(&format!("{header}\n")) else { return Ok(None) };
        if !head.ends_with(b"\n") && len <= CHUNK {
            return Ok(None);
        }
        let tail = if len <= CHUNK { head } else { read_at(len - CHUNK, CHUNK)? };
        if !tail.ends_with(b"\n") {
            return Ok(None);
        }
        let body = &tail[..tail.len() - 1];
        let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let last_line = &body[start..];
        let last_uid = if start == 0 {
            if len > CHUNK {
                return Ok(None); // a line longer than the chunk
            }
            0 // only the header
        } else {
            let text = String::from_utf8_lossy(last_line);
            match text.split(' ').next().and_then(|u| u.parse::<u32>().ok()) {
                Some(uid) => uid,
                None => return Ok(None),
            }
        };
        Ok(Some(UidlistTail {
            uid_validity: list.uid_validity,
            next_uid: list.next_uid.max(last_uid.saturating_add(1)),
            last_uid,
        }))
    }

    fn mark_dirty(&self, location: &str) {
        let bit = if location.starts_with("new/") { DIRTY_NEW } else { DIRTY_CUR };
        self.dirty.fetch_or(bit, Ordering::Relaxed);
    }

    fn location_for(base: &str, flags: Flags, kw_indexes: &[usize]) -> String {
        if flags == Flags::empty() && kw_indexes.is_empty() {
            format!("new/{base}")
        } else {
            format!("cur/{base}:{}", filename::info(flags, kw_indexes))
        }
    }

    /// Finds a message whose file was renamed behind our back.
    fn find_base(&self, base: &str) -> Option<String> {
        for sub in ["cur", "new"] {
            let Ok(entries) = fs::read_dir(self.dir.join(sub)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if MaildirName::parse(&name).base == base {
                    return Some(format!("{sub}/{name}"));
                }
            }
        }
        None
    }
}

/// Threads stat-ing files during a scan.
const SCAN_THREADS: usize = 8;

impl MaildirBackend {
    /// One file of `new/` or `cur/` as a scan sees it; `None` if it vanished.
    fn scan_file(
        &self,
        sub: &str,
        name: &str,
        by_name: &std::collections::HashMap<&str, u32>,
        keyword_list: &[String],
    ) -> Result<Option<ScannedMessage>> {
        let path = self.dir.join(sub).join(name);
        let parsed = MaildirName::parse(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("stat", path, e)),
        };
        let physical_size = parsed.size().unwrap_or(meta.size());
        let virtual_size = match parsed.vsize() {
            Some(v) => v,
            None => fs::read(&path).map(|d| virtual_size(&d)).unwrap_or(physical_size),
        };
        let (flags, kw) = parsed.flags();
        Ok(Some(ScannedMessage {
            flags_modseq: 0,
            uid: by_name.get(parsed.base.as_str()).copied(),
            guid: parsed.base.clone(),
            location: format!("{sub}/{name}"),
            flags: Some((flags, filename::keyword_names(&kw, keyword_list))),
            received: meta.mtime(),
            saved: meta.ctime(),
            physical_size,
            virtual_size,
        }))
    }

    /// Lists the files; those whose base name `known` accepts are taken
    /// from their names alone (see [`Backend::scan_known`]).
    fn scan_with(&self, known: &dyn Fn(&str) -> bool) -> Result<Scan> {
        let list = self.read_uidlist()?;
        let keyword_list = self.read_keywords()?;
        let by_name = list.as_ref().map(|l| l.by_name()).unwrap_or_default();
        let mut scan = Scan {
            uid_validity: list.as_ref().map(|l| l.uid_validity),
            guid: list.as_ref().and_then(|l| l.guid.clone()),
            uid_next: list.as_ref().map(|l| l.next_uid),
            messages: Vec::new(),
        };
        // readdir first, then the stats (received/saved dates) from a few
        // threads in inode order: on a cold cache each stat is a disk read,
        // and several in flight finish much sooner than one after another.
        let mut names = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.dir.join(sub);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("opendir", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StorageError::io("readdir", &dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    names.push((entry.ino(), sub, name));
                }
            }
        }
        // Known files: everything the index uses comes from the name. Only
        // the first file of a base name: a second one (a copy made behind
        // our back, or new/ and cur/ both holding it mid-rename) becomes a
        // new message and needs its real dates and size.
        let mut known_bases = std::collections::HashSet::new();
        names.retain(|(_, sub, name)| {
            let parsed = MaildirName::parse(name);
            if !known(&parsed.base) || !known_bases.insert(parsed.base.clone()) {
                return true;
            }
            let (flags, kw) = parsed.flags();
            scan.messages.push(ScannedMessage {
                flags_modseq: 0,
                uid: by_name.get(parsed.base.as_str()).copied(),
                guid: parsed.base.clone(),
                location: format!("{sub}/{name}"),
                flags: Some((flags, filename::keyword_names(&kw, &keyword_list))),
                received: 0,
                saved: 0,
                physical_size: parsed.size().unwrap_or(0),
                virtual_size: parsed.vsize().unwrap_or(0),
            });
            false
        });
        names.sort_unstable();
        let found = parallel::filter_map(&names, SCAN_THREADS, 256, |(_, sub, name)| {
            self.scan_file(sub, name, &by_name, &keyword_list)
        })?;
        scan.messages.extend(found);
        Ok(scan)
    }
}

/// The base name (GUID) from a location.
pub fn base_of(location: &str) -> &str {
    let name = location.rsplit('/').next().unwrap_or(location);
    name.split(':').next().unwrap_or(name)
}

/// A new unique base name (`<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<vsize>`).
fn new_base(size: u64, vsize: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{},S={size},W={vsize}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        fsutil::unique_counter(),
        hostname(),
    )
}

fn hostname() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    // '/' and ':' would break the file name; Dovecot escapes them likewise.
    host.replace('/', "\\057").replace(':', "\\072")
}

impl Backend for MaildirBackend {
    fn new_file_order(&self, a: &ScannedMessage, b: &ScannedMessage) -> std::cmp::Ordering {
        filename::sort_cmp(base_of(&a.location), base_of(&b.location))
    }

    fn format(&self) -> crate::storage::location::Format {
        crate::storage::location::Format::Maildir
    }

    fn exists(&self) -> bool {
        self.dir.join("cur").is_dir()
    }

    fn create(&self, guid: &str, uid_validity: u32) -> Result<()> {
        for sub in ["cur", "new", "tmp"] {
            fsutil::mkdir_all(&self.dir.join(sub))?;
        }
        fsutil::mkdir_all(&self.control)?;
        if self.is_subfolder {
            fsutil::write_synced(&self.dir.join("maildirfolder"), b"")?;
        }
        let list = Uidlist { uid_validity, next_uid: 1, guid: Some(guid.to_string()), ..Uidlist::default() };
        fsutil::write_atomic(&self.uidlist_path(), list.format().as_bytes())?;
        if let Some(parent) = self.dir.parent() {
            fsutil::fsync_dir(parent)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<FormatLock> {
        fsutil::mkdir_all(&self.control)?;
        let lock = self.lock_source.acquire(
            &self.uidlist_path(),
            Duration::from_secs(120),
            Duration::from_secs(120),
        )?;
        Ok(Some(Box::new(lock)))
    }

    fn stage(
        &self,
        data: &[u8],
        received: i64,
        flags: Flags,
        keywords: &Keywords,
        _guid: Option<&str>,
    ) -> Result<Staged> {
        let vsize = virtual_size(data);
        let base = new_base(data.len() as u64, vsize);
        let tmp_path = self.dir.join("tmp").join(&base);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(|e| StorageError::io("open", &tmp_path, e))?;
        f.write_all(data).map_err(|e| StorageError::io("write", &tmp_path, e))?;
        let mtime = UNIX_EPOCH + Duration::from_secs(received.max(0) as u64);
        f.set_modified(mtime).map_err(|e| StorageError::io("futimens", &tmp_path, e))?;
        if self.fsync {
            f.sync_all().map_err(|e| StorageError::io("fsync", &tmp_path, e))?;
        }
        Ok(Staged {
            tmp_path,
            guid: base,
            physical_size: data.len() as u64,
            virtual_size: vsize,
            received,
            flags,
            keywords: keywords.clone(),
            inline: None,
        })
    }

    fn publish(&self, staged: Staged, uid: u32) -> Result<MessageRecord> {
        let kw = self.keyword_indexes(&staged.keywords)?;
        let location = Self::location_for(&staged.guid, staged.flags, &kw);
        let dest = self.dir.join(&location);
        fs::rename(&staged.tmp_path, &dest).map_err(|e| StorageError::io("rename", &dest, e))?;
        self.mark_dirty(&location);
        Ok(MessageRecord {
            uid,
            guid: staged.guid,
            flags: staged.flags,
            keywords: staged.keywords,
            modseq: 0,
            saved_modseq: 0,
            received: staged.received,
            saved: fsutil::now(),
            physical_size: staged.physical_size,
            virtual_size: staged.virtual_size,
            location,
        })
    }

    fn read(&self, record: &MessageRecord) -> Result<Vec<u8>> {
        let path = self.path_of(record);
        fs::read(&path).map_err(|e| StorageError::io("open", &path, e))
    }

    fn path_of(&self, record: &MessageRecord) -> PathBuf {
        self.dir.join(&record.location)
    }

    fn set_flags(&self, record: &MessageRecord, flags: Flags, keywords: &Keywords) -> Result<Option<String>> {
        let kw = self.keyword_indexes(keywords)?;
        let base = base_of(&record.location);
        let location = format!("cur/{base}:{}", filename::info(flags, &kw));
        if location == record.location {
            return Ok(None);
        }
        let from = self.dir.join(&record.location);
        // Whichever directory the file was found in loses an entry.
        self.dirty.fetch_or(DIRTY_NEW | DIRTY_CUR, Ordering::Relaxed);
        match fs::rename(&from, self.dir.join(&location)) {
            Ok(()) => Ok(Some(location)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.find_base(base) {
                Some(current) => {
                    fs::rename(self.dir.join(&current), self.dir.join(&location))
                        .map_err(|e| StorageError::io("rename", self.dir.join(&current), e))?;
                    Ok(Some(location))
                }
                None => Err(StorageError::io("rename", from, e)),
            },
            Err(e) => Err(StorageError::io("rename", from, e)),
        }
    }

    fn remove(&self, record: &MessageRecord) -> Result<()> {
        let path = self.path_of(record);
        self.dirty.fetch_or(DIRTY_NEW | DIRTY_CUR, Ordering::Relaxed);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(current) = self.find_base(base_of(&record.location)) {
                    let _ = fs::remove_file(self.dir.join(current));
                }
                Ok(())
            }
            Err(e) => Err(StorageError::io("unlink", path, e)),
        }
    }

    fn stamp(&self) -> String {
        let (new, _) = fsutil::stat_stamp(&self.dir.join("new"));
        let (cur, _) = fsutil::stat_stamp(&self.dir.join("cur"));
        let (ul, ul_size) = fsutil::stat_stamp(&self.uidlist_path());
        format!("{new} {cur} {ul} {ul_size}")
    }

    fn needs_scan(&self, stamp: &str) -> bool {
        let current = self.stamp();
        if current != stamp {
            return true;
        }
        // A change by another process in the same clock tick as ours would
        // leave the stamp equal: distrust stamps from the last second.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
        current.split(' ').take(2).filter_map(|t| t.parse::<i128>().ok()).any(|t| now - t < 1_000_000_000)
    }

    fn scan(&self) -> Result<Scan> {
        self.scan_with(&|_| false)
    }

    fn scan_known(&self, index: &MailboxState) -> Result<Scan> {
        let guids: std::collections::HashSet<&str> =
            index.messages.values().map(|m| m.guid.as_str()).collect();
        self.scan_with(&|guid| guids.contains(guid))
    }

    fn commit(
        &self,
        state: &MailboxState,
        appended: &[u32],
        rewrite: bool,
        pending: &mut PendingSyncs,
    ) -> Result<()> {
        let path = self.uidlist_path();
        if appended.is_empty() && !rewrite && path.exists() {
            // Flag changes and moves don't touch the uidlist (a missing one
            // is rewritten below).
            return Ok(());
        }
        // Appending needs only the header and the last UID, not the
        // records: reading them all made every save O(mailbox size).
        let current = if rewrite { None } else { self.read_uidlist_tail()? };
        let usable = current.as_ref().is_some_and(|l| {
            l.uid_validity == state.uid_validity && appended.first().is_none_or(|first| l.last_uid < *first)
        });
        if usable {
            if appended.is_empty() {
                return Ok(());
            }
            let mut lines = String::new();
            for uid in appended {
                if let Some(m) = state.messages.get(uid) {
                    lines.push_str(&Uidlist::record_line(*uid, "", base_of(&m.location)));
                }
            }
            let mut f = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| StorageError::io("open", &path, e))?;
            f.write_all(lines.as_bytes()).map_err(|e| StorageError::io("write", &path, e))?;
            if self.fsync {
                pending.data(f, &path);
            }
            return Ok(());
        }
        let mut list = Uidlist {
            uid_validity: state.uid_validity,
            next_uid: state.uid_next,
            guid: Some(state.guid.clone()),
            ..Uidlist::default()
        };
        for (uid, m) in &state.messages {
            list.records.insert(*uid, (String::new(), base_of(&m.location).to_string()));
        }
        if self.fsync {
            fsutil::write_atomic(&path, list.format().as_bytes())
        } else {
            let tmp = fsutil::temp_name(&path);
            fs::write(&tmp, list.format()).map_err(|e| StorageError::io("write", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &path, e))
        }
    }

    fn sync_dirs(&self, pending: &mut PendingSyncs) -> Result<()> {
        let dirty = self.dirty.swap(0, Ordering::Relaxed);
        if self.fsync {
            if dirty & DIRTY_NEW != 0 {
                pending.dir(&self.dir.join("new"))?;
            }
            if dirty & DIRTY_CUR != 0 {
                pending.dir(&self.dir.join("cur"))?;
            }
        }
        Ok(())
    }

    fn save_uid_floor(&self) -> Result<Option<u32>> {
        match self.read_uidlist_tail()? {
            Some(tail) => Ok(Some(tail.next_uid)),
            // Missing or torn: the full read of a scan decides.
            None => Ok(None),
        }
    }

    fn delete(&self) -> Result<()> {
        for sub in ["cur", "new", "tmp"] {
            let dir = self.dir.join(sub);
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("rmdir", dir, e)),
            }
        }
        for name in [UIDLIST, KEYWORDS, "maildirfolder"] {
            let _ = fs::remove_file(self.control.join(name));
            let _ = fs::remove_file(self.dir.join(name));
        }
        // Dotlock sources other handles keep (fsutil::DotLockSource): left
        // behind they would keep the folder's directory from going away.
        for dir in [&self.control, &self.dir] {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("dovecot-uidlist.lock.tmp.") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        remove_dovecot_index_files(&self.dir);
        let _ = File::open(&self.dir);
        Ok(())
    }

    fn stage_link(&self, source_path: &Path, source: &MessageRecord) -> Result<Option<Staged>> {
        // A copy is a new message with its own base name (its GUID), as
        // Dovecot's hard-link copy does; the file (and its mtime, the
        // received date) is shared.
        let base = new_base(source.physical_size, source.virtual_size);
        let tmp_path = self.dir.join("tmp").join(&base);
        match fs::hard_link(source_path, &tmp_path) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EPERM | libc::EMLINK)) => {
                return Ok(None)
            }
            // Renamed by a flag change in another process: copy the bytes.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("link", &tmp_path, e)),
        }
        Ok(Some(Staged {
            tmp_path,
            guid: base,
            physical_size: source.physical_size,
            virtual_size: source.virtual_size,
            received: source.received,
            flags: source.flags,
            keywords: source.keywords.clone(),
            inline: None,
        }))
    }

    fn control_dir(&self) -> PathBuf {
        self.control.clone()
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.dir.join("new"), self.dir.join("cur"), self.control.clone()]
    }
}

/// Removes Dovecot's and our index files from a directory.
pub fn remove_dovecot_index_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("dovecot.index") || name.starts_with("dovecote.") {
            let _ = fs::remove_file(entry.path());
        }
    }
}
