//! mbox: one file per mailbox — the spool (`INBOX=/var/mail/%u`) and the
//! files under the root (`~/mail/Sent`, `~/mail/a/b`), each a sequence of
//! messages that start with a `From ` line ([`format`], [`reader`]).
//!
//! UIDs, UIDVALIDITY and flags live in the file as Dovecot 2.3 keeps them
//! (`X-IMAPbase`, `X-UID`, `Status`, `X-Status`, `X-Keywords`), so Dovecot
//! reads our UIDs and flags and we read its; a lost index loses nothing
//! but modseqs. A message's UID is its identity ([`Backend::uid_is_identity`]);
//! messages without `X-UID` (fresh local(8) deliveries) get the next UIDs
//! in file order and their `X-UID` is written in the same transaction.
//!
//! Locking: every access holds `mbox_read_locks` or `mbox_write_locks`
//! ([`lock`]) on one open handle of the spool for its whole duration.
//!
//! Durability and crash safety:
//! * Append writes after the end of the file and fsyncs before the save
//!   returns. A crash mid-append leaves a truncated last message, which the
//!   next open adopts like any delivery; earlier mail is never touched.
//! * Everything else (flags, UIDs, expunge) is a rewrite. Rewriting in
//!   place by shifting data is not crash safe, and a temp file + rename is
//!   not an option for a spool: it needs write access to `/var/mail`,
//!   changes the inode under MTAs that hold the old one open (their
//!   delivery would be lost) and resets owner and mode. So a rewrite is
//!   computed as extents (new bytes for ranges of the file, the tail from
//!   the first shifted message), written to a redo journal in the index
//!   directory (temp file, fsync, rename), then applied in place,
//!   truncated and fsynced, and the journal removed. A crash before the
//!   journal's rename leaves the old content; after it, the next lock of
//!   the mailbox (read or write) re-applies the journal and yields the new
//!   content. Flag changes usually fit in the `X-Keywords:` padding, so
//!   their extents are a few bytes per message. The single exception is
//!   updating the ten `X-IMAPbase` last-UID digits after an append, which
//!   is written directly: a torn write there can only make that hint
//!   wrong, and UIDs are taken from `X-UID` lines and the index.
//! * A spool that can't be opened because of its owner or mode gives
//!   [`StorageError::Permission`] naming the file, its owner and mode, our
//!   uid/gid and the command that fixes it (the S13 pitfall).

pub mod format;
pub mod journal;
pub mod lock;
pub mod reader;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use self::format::{Base, StatusBlock};
use self::journal::{Extent, Piece};
use self::lock::{HeldLocks, MboxSettings};
use self::reader::{MboxMessage, Parsed};
use super::backend::{Backend, FormatLock, Scan, ScannedMessage, Staged};
use super::error::{Result, StorageError};
use super::fsutil::{self, PendingSyncs};
use super::index::MailboxState;
use super::types::{Flags, Keywords, MessageRecord};

/// One mbox mailbox file.
#[derive(Debug)]
pub struct MboxBackend {
    pub path: PathBuf,
    /// Index directory (`~/mail/.imap/<name>`); holds the rewrite journal.
    pub index_dir: PathBuf,
    pub fsync: bool,
    pub settings: MboxSettings,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    cache: Option<Cache>,
    /// The spool handle holding the write locks of a transaction.
    locked: Option<Locked>,
}

#[derive(Debug)]
struct Cache {
    stamp: (u64, u64, i128),
    parsed: Parsed,
}

#[derive(Debug)]
struct Locked {
    file: File,
    _locks: HeldLocks,
}

/// Releases the write locks when a transaction ends.
#[derive(Debug)]
struct WriteGuard(Arc<Mutex<Inner>>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.locked = None;
        }
    }
}

impl MboxBackend {
    pub fn new(path: PathBuf, index_dir: PathBuf, fsync: bool, settings: MboxSettings) -> MboxBackend {
        MboxBackend { path, index_dir, fsync, settings, inner: Arc::default() }
    }

    fn inner(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| StorageError::NotPossible("mbox state lock poisoned".into()))
    }

    fn journal_path(&self) -> PathBuf {
        self.index_dir.join(journal::JOURNAL_FILE)
    }

    fn open_spool(&self, write: bool) -> Result<File> {
        OpenOptions::new().read(true).write(write).open(&self.path).map_err(|e| self.open_error(e, write))
    }

    fn open_error(&self, e: io::Error, write: bool) -> StorageError {
        if e.kind() != io::ErrorKind::PermissionDenied {
            return StorageError::io("open", &self.path, e);
        }
        let user = name_of_uid(nix::unistd::geteuid().as_raw());
        let group =
            fs::metadata(&self.path).map(|m| name_of_gid(m.gid())).unwrap_or_else(|_| "mail".to_string());
        let p = self.path.display();
        StorageError::Permission {
            path: self.path.clone(),
            reason: access_detail(&self.path, write),
            fix: format!("the mail user must own its mbox: chown {user}:{group} {p} && chmod 0600 {p}"),
        }
    }

    /// Runs `f` on the spool under the transaction's write lock, or else
    /// under the read locks for the duration of the call.
    fn with_file<T>(&self, f: impl FnOnce(&File, &Path, &mut Option<Cache>) -> Result<T>) -> Result<T> {
        {
            let mut inner = self.inner()?;
            let Inner { cache, locked } = &mut *inner;
            if let Some(l) = locked {
                return f(&l.file, &self.path, cache);
            }
        }
        if self.journal_path().exists() {
            // A crashed rewrite: finish it before anyone reads.
            let _guard = self.lock()?;
            return self.with_file(f);
        }
        let file = self.open_spool(false)?;
        let _locks = lock::acquire(&file, &self.path, &self.settings.read_locks, false, &self.settings)?;
        let mut inner = self.inner()?;
        f(&file, &self.path, &mut inner.cache)
    }

    fn locked<T>(&self, f: impl FnOnce(&File, &Path, &mut Option<Cache>) -> Result<T>) -> Result<T> {
        let mut inner = self.inner()?;
        let Inner { cache, locked } = &mut *inner;
        match locked {
            Some(l) => f(&l.file, &self.path, cache),
            None => Err(StorageError::NotPossible(format!(
                "mbox {} written without its lock",
                self.path.display()
            ))),
        }
    }
}

/// The cached parse of the file, refreshed if the file changed.
fn parsed<'a>(file: &File, path: &Path, cache: &'a mut Option<Cache>) -> Result<&'a mut Parsed> {
    let stamp = file_stamp(file, path)?;
    if cache.as_ref().is_none_or(|c| c.stamp != stamp) {
        let parsed = reader::parse(file).map_err(|e| match e {
            reader::ReadError::Io(e) => StorageError::io("read", path, e),
            reader::ReadError::NotMbox(reason) => {
                StorageError::Corrupted { what: "mbox file", path: path.to_path_buf(), reason }
            }
        })?;
        *cache = Some(Cache { stamp, parsed });
    }
    match cache {
        Some(c) => Ok(&mut c.parsed),
        None => Err(StorageError::NotPossible("mbox cache missing".into())),
    }
}

fn file_stamp(file: &File, path: &Path) -> Result<(u64, u64, i128)> {
    let m = file.metadata().map_err(|e| StorageError::io("fstat", path, e))?;
    Ok((m.ino(), m.size(), m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128))
}

/// Reads the message as clients see it (status headers removed).
fn read_message(file: &File, path: &Path, m: &MboxMessage) -> Result<Vec<u8>> {
    let rerr = |e| StorageError::io("read", path, e);
    let mut header = vec![0u8; (m.body_start - m.header_start) as usize];
    file.read_exact_at(&mut header, m.header_start).map_err(rerr)?;
    let mut out = Vec::with_capacity(m.physical_size as usize);
    let mut pos = 0;
    for &(start, end) in &m.hidden {
        out.extend_from_slice(&header[pos..start]);
        pos = end;
    }
    out.extend_from_slice(&header[pos..]);
    let mut body = vec![0u8; (m.body_end - m.body_start) as usize];
    file.read_exact_at(&mut body, m.body_start).map_err(rerr)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The bytes of a new message and its parsed form at `offset`.
fn build_message(
    data: &[u8],
    received: i64,
    uid: u32,
    flags: Flags,
    keywords: &Keywords,
    offset: u64,
) -> (Vec<u8>, MboxMessage) {
    let hlen = super::mailbox::header_len(data);
    let (header, body) = data.split_at(hlen);
    // Body lines starting with "From " are written as they are, as
    // Dovecot writes them: Content-Length keeps them inside the message
    // (the reader trusts it), and `>From` quoting would change the
    // message a client saved (and its size) for good.
    let mut body = body.to_vec();
    if !body.is_empty() && !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    let hidden = format::analyze_header(header).hidden;
    let block = |pad: usize| {
        StatusBlock { base: None, uid, flags, keywords, old: false, content_length: body.len() as u64 }
            .render(pad)
    };
    let header = format::render_header(header, &hidden, &block, None);
    let from = format::format_from_line(format::SENDER, received);
    let info = format::analyze_header(&header);
    let header_start = offset + from.len() as u64;
    let body_start = header_start + header.len() as u64;
    let physical_size = info.visible_len + body.len() as u64;
    let message = MboxMessage {
        from_start: offset,
        header_start,
        body_start,
        body_end: body_start + body.len() as u64,
        end: body_start + body.len() as u64 + 1,
        hidden: info.hidden,
        uid: Some(uid),
        flags,
        keywords: keywords.clone(),
        old: false,
        base: None,
        received,
        hash: info.hash,
        physical_size,
        virtual_size: physical_size + info.bare_lfs + format::bare_lfs(&body),
        guid: format::guid_of(&info.hash, &uid.to_le_bytes()),
    };
    let mut bytes = from.into_bytes();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&body);
    bytes.push(b'\n');
    (bytes, message)
}

impl Backend for MboxBackend {
    fn format(&self) -> crate::storage::location::Format {
        crate::storage::location::Format::Mbox
    }

    fn exists(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.is_file())
    }

    fn create(&self, _guid: &str, _uid_validity: u32) -> Result<()> {
        // UIDVALIDITY goes into X-IMAPbase with the first message; until
        // then the index holds it (as Dovecot's does).
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fsutil::mkdir_all(dir)?;
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(|e| StorageError::io("open", &self.path, e))
        };
        match create() {
            Ok(_) => {}
            Err(e) if e.is_io_kind(io::ErrorKind::AlreadyExists) => {
                return Err(StorageError::AlreadyExists(self.path.display().to_string()))
            }
            Err(e) if e.is_io_kind(io::ErrorKind::PermissionDenied) => {
                return Err(StorageError::Permission {
                    path: self.path.clone(),
                    reason: format!("can't create the mbox: {}", access_detail(dir, true)),
                    fix: format!(
                        "create it for the user (touch {p}; chown USER:mail {p}; chmod 0600 {p}) \
                         or set mail_privileged_group = mail",
                        p = self.path.display()
                    ),
                });
            }
            Err(e) => return Err(e),
        }
        fsutil::fsync_dir(dir)
    }

    fn lock(&self) -> Result<FormatLock> {
        for _ in 0..10 {
            let file = self.open_spool(true)?;
            let locks = lock::acquire(&file, &self.path, &self.settings.write_locks, true, &self.settings)?;
            // Replaced while we waited (another program renamed a new
            // file into place): lock the new one.
            let now = fs::metadata(&self.path).map_err(|e| StorageError::io("stat", &self.path, e))?;
            let ours = file.metadata().map_err(|e| StorageError::io("fstat", &self.path, e))?;
            if now.ino() != ours.ino() {
                continue;
            }
            if journal::apply(&self.journal_path(), &file, &self.path)? {
                crate::storage::warn(&format!(
                    "mbox {}: finished a rewrite interrupted by a crash",
                    self.path.display()
                ));
            }
            self.inner()?.locked = Some(Locked { file, _locks: locks });
            return Ok(Some(Box::new(WriteGuard(self.inner.clone()))));
        }
        Err(StorageError::NotPossible(format!("mbox {} keeps being replaced", self.path.display())))
    }

    fn stage(
        &self,
        data: &[u8],
        received: i64,
        flags: Flags,
        keywords: &Keywords,
        _guid: Option<&str>,
    ) -> Result<Staged> {
        Ok(Staged {
            tmp_path: PathBuf::new(),
            guid: String::new(),
            physical_size: data.len() as u64,
            virtual_size: super::backend::virtual_size(data),
            received,
            flags,
            keywords: keywords.clone(),
            inline: Some(data.to_vec()),
        })
    }

    fn publish(&self, staged: Staged, uid: u32) -> Result<MessageRecord> {
        let data = staged.inline.unwrap_or_default();
        self.locked(|file, path, cache| {
            let parsed = parsed(file, path, cache)?;
            let len = parsed.len;
            let mut tail = [0u8; 2];
            let have = (len as usize).min(2);
            file.read_exact_at(&mut tail[..have], len - have as u64)
                .map_err(|e| StorageError::io("read", path, e))?;
            let prefix: &[u8] = match &tail[..have] {
                [] | [b'\n', b'\n'] => b"",
                [b'\n'] if len == 1 => b"",
                [_, b'\n'] => b"\n",
                _ => b"\n\n",
            };
            let offset = len + prefix.len() as u64;
            let (bytes, message) =
                build_message(&data, staged.received, uid, staged.flags, &staged.keywords, offset);
            let mut all = prefix.to_vec();
            all.extend_from_slice(&bytes);
            if let Err(e) = file.write_all_at(&all, len) {
                // Leave no partial message behind when we still can.
                let _ = file.set_len(len);
                return Err(StorageError::io("write", path, e));
            }
            let record = MessageRecord {
                uid,
                guid: message.guid.clone(),
                flags: staged.flags,
                keywords: staged.keywords.clone(),
                modseq: 0,
                saved_modseq: 0,
                received: staged.received,
                saved: fsutil::now(),
                physical_size: message.physical_size,
                virtual_size: message.virtual_size,
                location: String::new(),
            };
            if prefix.is_empty() {
                if let Some(last) = parsed.messages.last_mut() {
                    last.end = offset;
                }
                parsed.messages.push(message);
                parsed.len = offset + bytes.len() as u64;
                let stamp = file_stamp(file, path)?;
                if let Some(c) = cache.as_mut() {
                    c.stamp = stamp;
                }
            } else {
                *cache = None;
            }
            Ok(record)
        })
    }

    fn read(&self, record: &MessageRecord) -> Result<Vec<u8>> {
        self.with_file(|file, path, cache| {
            let parsed = parsed(file, path, cache)?;
            let i = parsed.find(record.uid).ok_or_else(|| {
                StorageError::io(
                    "read",
                    path,
                    io::Error::new(io::ErrorKind::NotFound, format!("UID {} is not in the mbox", record.uid)),
                )
            })?;
            read_message(file, path, &parsed.messages[i])
        })
    }

    fn path_of(&self, _record: &MessageRecord) -> PathBuf {
        self.path.clone()
    }

    fn set_flags(
        &self,
        _record: &MessageRecord,
        _flags: Flags,
        _keywords: &Keywords,
    ) -> Result<Option<String>> {
        // Written by commit(), once for the whole transaction.
        Ok(None)
    }

    fn remove(&self, _record: &MessageRecord) -> Result<()> {
        // Removed by commit()'s rewrite.
        Ok(())
    }

    fn stamp(&self) -> String {
        let (mtime, size) = fsutil::stat_stamp(&self.path);
        let ino = fs::metadata(&self.path).map(|m| m.ino()).unwrap_or(0);
        let journal = if self.journal_path().exists() { "+journal" } else { "" };
        format!("{ino}:{size}:{mtime}{journal}")
    }

    fn needs_scan(&self, stamp: &str) -> bool {
        self.stamp() != stamp
    }

    fn uid_is_identity(&self) -> bool {
        true
    }

    fn scan(&self) -> Result<Scan> {
        self.with_file(|file, path, cache| {
            let parsed = parsed(file, path, cache)?;
            let base = parsed.base().cloned();
            let max_uid = parsed.messages.iter().filter_map(|m| m.uid).max().unwrap_or(0);
            Ok(Scan {
                messages: parsed
                    .messages
                    .iter()
                    .map(|m| ScannedMessage {
                        flags_modseq: 0,
                        uid: m.uid,
                        guid: m.guid.clone(),
                        location: String::new(),
                        flags: Some((m.flags, m.keywords.clone())),
                        received: m.received,
                        saved: m.received,
                        physical_size: m.physical_size,
                        virtual_size: m.virtual_size,
                    })
                    .collect(),
                uid_validity: base.as_ref().map(|b| b.uid_validity).filter(|v| *v > 0),
                guid: None,
                uid_next: base.map(|b| b.last_uid.max(max_uid) + 1).or(Some(max_uid + 1)).filter(|n| *n > 1),
            })
        })
    }

    fn commit(
        &self,
        state: &MailboxState,
        _appended: &[u32],
        _rewrite: bool,
        _pending: &mut PendingSyncs,
    ) -> Result<()> {
        let durable = self.fsync;
        let journal_dir = self.index_dir.clone();
        self.locked(|file, path, cache| {
            let parsed = parsed(file, path, cache)?;
            let plan = plan_rewrite(file, path, parsed, state)?;
            if plan.extents.is_empty() {
                return Ok(());
            }
            let direct = plan.extents.len() == 1 && plan.direct_ok;
            if direct {
                for extent in &plan.extents {
                    for piece in &extent.pieces {
                        if let Piece::Bytes(b) = piece {
                            file.write_all_at(b, extent.offset)
                                .map_err(|e| StorageError::io("pwrite", path, e))?;
                        }
                    }
                }
                if durable {
                    file.sync_data().map_err(|e| StorageError::io("fsync", path, e))?;
                }
            } else {
                let journal =
                    journal::write(&journal_dir, file, path, plan.final_len, &plan.extents, durable)?;
                journal::apply(&journal, file, path)?;
            }
            match plan.in_place_updates {
                Some(updates) => {
                    for (i, m) in updates {
                        parsed.messages[i] = m;
                    }
                    if let Some(p) = plan.pseudo_update {
                        parsed.pseudo = Some(p);
                    }
                    let stamp = file_stamp(file, path)?;
                    if let Some(c) = cache.as_mut() {
                        c.stamp = stamp;
                    }
                }
                None => *cache = None,
            }
            Ok(())
        })
    }

    /// The mbox file is flushed at once, under its lock: a rewrite by the
    /// next writer may move the bytes this transaction appended.
    fn sync_dirs(&self, _pending: &mut PendingSyncs) -> Result<()> {
        if !self.fsync {
            return Ok(());
        }
        let inner = self.inner()?;
        if let Some(l) = &inner.locked {
            l.file.sync_data().map_err(|e| StorageError::io("fsync", &self.path, e))?;
        }
        Ok(())
    }

    fn delete(&self) -> Result<()> {
        let _ = fs::remove_file(self.journal_path());
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("unlink", &self.path, e)),
        }
    }

    fn control_dir(&self) -> PathBuf {
        self.index_dir.clone()
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}

/// What a commit writes.
struct Plan {
    extents: Vec<Extent>,
    final_len: u64,
    /// Only the X-IMAPbase digits changed: may be written directly.
    direct_ok: bool,
    /// New cache entries when nothing shifted (None: re-parse).
    in_place_updates: Option<Vec<(usize, MboxMessage)>>,
    pseudo_update: Option<MboxMessage>,
}

enum Fate<'a> {
    Keep(&'a MessageRecord),
    Drop,
    Unknown,
}

/// Computes the extents that make the file say what `state` says.
fn plan_rewrite(file: &File, path: &Path, parsed: &Parsed, state: &MailboxState) -> Result<Plan> {
    let pending: HashMap<&str, &MessageRecord> = if parsed.messages.iter().any(|m| m.uid.is_none()) {
        state.messages.values().map(|m| (m.guid.as_str(), m)).collect()
    } else {
        HashMap::new()
    };
    let tombstoned: HashSet<u32> = state.tombstones.iter().map(|t| t.uid).collect();
    let fates: Vec<Fate> = parsed
        .messages
        .iter()
        .map(|m| {
            let record = match m.uid {
                Some(uid) => state.messages.get(&uid),
                None => pending.get(m.guid.as_str()).copied(),
            };
            match (record, m.uid) {
                (Some(r), _) => Fate::Keep(r),
                (None, Some(uid)) if tombstoned.contains(&uid) => Fate::Drop,
                _ => Fate::Unknown,
            }
        })
        .collect();
    let mut keywords = parsed.base().map(|b| b.keywords.clone()).unwrap_or_default();
    let mut known: HashSet<String> = keywords.iter().cloned().collect();
    for m in state.messages.values() {
        for k in &m.keywords {
            if !known.contains(k) {
                known.insert(k.clone());
                keywords.push(k.clone());
            }
        }
    }
    let base =
        Base { uid_validity: state.uid_validity, last_uid: state.uid_next.saturating_sub(1), keywords };
    let survivors = fates.iter().filter(|f| !matches!(f, Fate::Drop)).count();
    let carrier =
        if parsed.pseudo.is_some() { None } else { fates.iter().position(|f| !matches!(f, Fate::Drop)) };

    let mut plan = Plan {
        extents: Vec::new(),
        final_len: parsed.len,
        direct_ok: false,
        in_place_updates: Some(Vec::new()),
        pseudo_update: None,
    };
    let mut tail: Option<Extent> = None;
    let read_header = |m: &MboxMessage| -> Result<Vec<u8>> {
        let mut h = vec![0u8; (m.body_start - m.header_start) as usize];
        file.read_exact_at(&mut h, m.header_start).map_err(|e| StorageError::io("read", path, e))?;
        Ok(h)
    };
    let mut digits_only = true;

    // Dovecot's pseudo message: kept, its X-IMAP updated; created when
    // the last message goes.
    if let Some(p) = &parsed.pseudo {
        if p.base.as_ref() != Some(&base) {
            let old = read_header(p)?;
            let line = |pad: usize| {
                let mut b = format::base_line("X-IMAP", &base, pad).into_bytes();
                b.extend_from_slice(b"Status: RO\n");
                b
            };
            let new = format::render_header(&old, &p.hidden, &line, Some(old.len()));
            if new.len() == old.len() {
                let (extent, digits) = diff_extent(p.header_start, &old, &new);
                digits_only &= digits;
                plan.extents.push(extent);
                let mut updated = p.clone();
                updated.base = Some(base.clone());
                updated.hidden = format::analyze_header(&new).hidden;
                plan.pseudo_update = Some(updated);
            } else {
                let mut t = Extent { offset: p.from_start, pieces: Vec::new() };
                t.pieces.push(Piece::Copy { start: p.from_start, end: p.header_start });
                t.pieces.push(Piece::Bytes(new));
                t.pieces.push(Piece::Copy { start: p.body_start, end: p.end });
                tail = Some(t);
            }
        }
    } else if survivors == 0 && state.uid_next > 1 && !parsed.messages.is_empty() {
        let pseudo =
            format::pseudo_message(&base, fsutil::now(), &fsutil::host_name(), format::DEFAULT_PADDING);
        tail = Some(Extent { offset: 0, pieces: vec![Piece::Bytes(pseudo)] });
    }

    for (i, (m, fate)) in parsed.messages.iter().zip(&fates).enumerate() {
        let new_header = match fate {
            Fate::Drop => {
                if tail.is_none() {
                    tail = Some(Extent { offset: m.from_start, pieces: Vec::new() });
                }
                continue;
            }
            Fate::Unknown => None,
            Fate::Keep(r) => {
                let is_carrier = carrier == Some(i);
                let want_base = if is_carrier { Some(&base) } else { None };
                let same = m.uid == Some(r.uid)
                    && m.flags == r.flags
                    && m.keywords == r.keywords
                    && m.base.as_ref() == want_base;
                if same {
                    None
                } else {
                    let old = read_header(m)?;
                    let block = |pad: usize| {
                        StatusBlock {
                            base: want_base,
                            uid: r.uid,
                            flags: r.flags,
                            keywords: &r.keywords,
                            old: m.old,
                            content_length: m.body_end - m.body_start,
                        }
                        .render(pad)
                    };
                    let new = format::render_header(&old, &m.hidden, &block, Some(old.len()));
                    Some((old, new, r))
                }
            }
        };
        match (&mut tail, new_header) {
            (None, None) => {}
            (None, Some((old, new, r))) if new.len() == old.len() => {
                let (extent, digits) = diff_extent(m.header_start, &old, &new);
                digits_only &= digits;
                plan.extents.push(extent);
                let info = format::analyze_header(&new);
                let mut updated = m.clone();
                updated.uid = Some(r.uid);
                updated.flags = r.flags;
                updated.keywords = r.keywords.clone();
                updated.base = info.base;
                updated.hidden = info.hidden;
                if let Some(u) = plan.in_place_updates.as_mut() {
                    u.push((i, updated));
                }
            }
            (t, new_header) => {
                let t = t.get_or_insert_with(|| Extent { offset: m.from_start, pieces: Vec::new() });
                match new_header {
                    None => push_copy(&mut t.pieces, m.from_start, m.end),
                    Some((_, new, _)) => {
                        push_copy(&mut t.pieces, m.from_start, m.header_start);
                        t.pieces.push(Piece::Bytes(new));
                        push_copy(&mut t.pieces, m.body_start, m.end);
                    }
                }
            }
        }
    }
    if let Some(t) = tail {
        plan.final_len = t.offset + t.len();
        plan.extents.push(t);
        plan.in_place_updates = None;
        digits_only = false;
    }
    plan.direct_ok = digits_only;
    Ok(plan)
}

/// The changed middle of a same-length header; whether it is only digits
/// (the X-IMAPbase last-UID field).
fn diff_extent(offset: u64, old: &[u8], new: &[u8]) -> (Extent, bool) {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix =
        old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    let changed = &new[prefix..new.len() - suffix];
    let was = &old[prefix..old.len() - suffix];
    let digits =
        changed.len() <= 10 && changed.iter().all(u8::is_ascii_digit) && was.iter().all(u8::is_ascii_digit);
    (Extent { offset: offset + prefix as u64, pieces: vec![Piece::Bytes(changed.to_vec())] }, digits)
}

fn push_copy(pieces: &mut Vec<Piece>, start: u64, end: u64) {
    if start == end {
        return;
    }
    if let Some(Piece::Copy { end: last_end, .. }) = pieces.last_mut() {
        if *last_end == start {
            *last_end = end;
            return;
        }
    }
    pieces.push(Piece::Copy { start, end });
}

fn name_of_uid(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}

fn name_of_gid(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into()).ok().flatten().map(|g| g.name).unwrap_or_else(|| gid.to_string())
}

/// Dovecot-style detail of a permission problem: who we are, what is
/// missing, who owns the file and its mode.
pub fn access_detail(path: &Path, write: bool) -> String {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let groups: Vec<u32> =
        nix::unistd::getgroups().map(|g| g.iter().map(|g| g.as_raw()).collect()).unwrap_or_default();
    let who = format!("euid={euid}({}) egid={egid}({})", name_of_uid(euid), name_of_gid(egid));
    let Ok(meta) = fs::metadata(path) else {
        return format!("Permission denied ({who}, {} is not accessible)", path.display());
    };
    let mode = meta.mode() & 0o7777;
    let bits = if euid == meta.uid() {
        mode >> 6
    } else if egid == meta.gid() || groups.contains(&meta.gid()) {
        mode >> 3
    } else {
        mode
    } & 7;
    let mut missing = String::new();
    if bits & 4 == 0 && !meta.is_dir() {
        missing.push_str("+r");
    }
    if write && bits & 2 == 0 {
        missing.push_str("+w");
    }
    if meta.is_dir() && bits & 1 == 0 {
        missing.push_str("+x");
    }
    let in_group = if egid != meta.gid() && !groups.contains(&meta.gid()) {
        format!(", we're not in group {}({})", meta.gid(), name_of_gid(meta.gid()))
    } else {
        String::new()
    };
    format!(
        "Permission denied ({who} missing {missing} perm: {}{in_group}, owned by {}({}):{}({}) mode=0{:o})",
        path.display(),
        meta.uid(),
        name_of_uid(meta.uid()),
        meta.gid(),
        name_of_gid(meta.gid()),
        mode
    )
}
