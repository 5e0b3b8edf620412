//! An open mailbox: the format-independent rules of DESIGN §4.4.
//!
//! Every change runs as a transaction under the mailbox lock: catch up with
//! the change log, look at the mail files if their stamp changed (another
//! program delivered, flagged or expunged), apply the change to the files,
//! make them durable, then append the records to the log and fsync it. Only
//! then does the call return, so a save that returned is never lost; a crash
//! before that leaves files the next scan adopts or removes.
//!
//! Departure from DESIGN §4.4's strict order (fsync directory, then append
//! to the log): a new file is fsynced before its rename, but the directory,
//! format metadata (dovecot-uidlist) and log flushes are collected under
//! the lock and run together after it is released ([`PendingSyncs`]), so
//! concurrent deliveries share flushes instead of queueing behind each
//! other's (group commit). The call still returns only after all of them.
//! A crash in between can leave a log record whose rename was not yet
//! durable: the next scan sees the file gone and expunges it, and that
//! message was never acknowledged.
//!
//! [`Mailbox::sync`] sees other sessions' changes by reading only the new
//! part of the log, plus a few `stat`s of the mail directories.
//!
//! Change notification (IMAP IDLE, LMTP → IMAP): [`Mailbox::notify_paths`]
//! lists what to watch with inotify (the index directory, where every
//! change appends to `dovecote.log`, plus the mail directories or file for
//! programs that don't write our log, such as Dovecot or an MTA), and
//! [`Mailbox::changed_since_sync`] answers "is there anything new" with two
//! or three `stat`s and no reads; when it says yes, call [`Mailbox::sync`].
//!
//! `\Recent` follows Dovecot: the index keeps a "first recent UID"; a
//! session that selects the mailbox ([`Mailbox::claim_recent`]) takes every
//! message at or above it as recent for itself and moves it past them, so
//! no other session sees them as recent. STATUS (an unclaimed handle)
//! counts the messages at or above it.
//!
//! HIGHESTMODSEQ never goes backwards, even across an index rebuild: see
//! [`super::modseq`]. A rebuild also salvages what it can of the old index
//! and log (tombstones, modseqs, and for sdbox flag changes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use super::backend::{Backend, ScannedMessage, Staged};
use super::error::{Result, StorageError};
use super::fsutil::{self, PendingSyncs};
use super::index::fields::FieldCache;
use super::index::{IndexStore, LoadOutcome, MailboxState, Record};
use super::location::Format;
use super::mime::{self, CachedFields};
use super::modseq;
use super::types::{
    Changes, FlagUpdate, Flags, MailboxStatus, MessageRecord, NewMessage, SavedMessage, StoreResult,
    Tombstone,
};

/// An open mailbox of one session.
#[derive(Debug)]
pub struct Mailbox {
    name: String,
    backend: Box<dyn Backend>,
    store: IndexStore,
    state: MailboxState,
    fields: FieldCache,
    /// Messages this handle had to parse (the rest came from the cache).
    parses: u64,
    /// `\Recent` UIDs of this session, when it claims them (SELECT).
    recent: Option<BTreeSet<u32>>,
    /// This handle changed flags the format keeps lazily (sdbox's flags
    /// file): flush them when it closes.
    flags_dirty: bool,
    /// The modseq ceiling in force (0 = not read yet).
    modseq_ceiling: u64,
    /// APPENDLIMIT: the largest message a save accepts (None = no limit).
    pub(crate) append_limit: Option<u64>,
    /// `mail_fsync = always`: fsync flag-only changes too.
    fsync_always: bool,
}

/// The work of one transaction, applied to the state as it goes.
struct Txn<'a> {
    state: &'a mut MailboxState,
    backend: &'a dyn Backend,
    records: Vec<Record>,
    appended: Vec<u32>,
    rewrite: bool,
    modseq: u64,
    /// Flags changed (the format may keep them lazily).
    flags_changed: bool,
}

impl Txn<'_> {
    fn modseq(&mut self) -> u64 {
        if self.modseq == 0 {
            self.modseq = self.state.highest_modseq + 1;
        }
        self.modseq
    }

    fn push(&mut self, record: Record) {
        self.state.apply(&record);
        self.records.push(record);
    }
}

impl Mailbox {
    /// Opens an existing mailbox, rebuilding a missing or broken index.
    pub(crate) fn open(name: &str, backend: Box<dyn Backend>, store: IndexStore) -> Result<Mailbox> {
        if !backend.exists() {
            return Err(StorageError::NotFound(name.to_string()));
        }
        let fields = FieldCache::new(store.dir());
        let mut mailbox = Mailbox {
            name: name.to_string(),
            backend,
            store,
            state: MailboxState::default(),
            fields,
            parses: 0,
            recent: None,
            flags_dirty: false,
            modseq_ceiling: 0,
            append_limit: None,
            fsync_always: false,
        };
        mailbox.reload()?;
        mailbox.sync()?;
        Ok(mailbox)
    }

    /// Creates the mailbox on disk with a new GUID and UIDVALIDITY; returns
    /// the GUID.
    pub(crate) fn create(name: &str, backend: Box<dyn Backend>, store: IndexStore) -> Result<String> {
        if backend.exists() {
            return Err(StorageError::AlreadyExists(name.to_string()));
        }
        let guid = fsutil::new_guid();
        let uid_validity = (fsutil::now() as u32).max(1);
        let mut store = store;
        let _lock = store.lock(true)?;
        backend.create(&guid, uid_validity)?;
        let mut state = MailboxState::default();
        state.apply(&Record::Header { guid: guid.clone(), uid_validity });
        state.stamp = backend.stamp();
        store.compact(&state)?;
        restamp(backend.as_ref(), &mut store, &mut state)?;
        Ok(guid)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state as of the last sync.
    pub fn state(&self) -> &MailboxState {
        &self.state
    }

    /// STATUS values. `recent` is this session's `\Recent` count when it
    /// claims them ([`Mailbox::claim_recent`]), else the unclaimed ones.
    pub fn status(&self) -> MailboxStatus {
        let mut status = self.state.status();
        if let Some(recent) = &self.recent {
            status.recent = recent.iter().filter(|uid| self.state.messages.contains_key(uid)).count() as u32;
        }
        status
    }

    /// APPENDLIMIT (RFC 7889): the largest message this mailbox accepts,
    /// `None` when unlimited (IMAP `NIL`).
    pub fn append_limit(&self) -> Option<u64> {
        self.append_limit
    }

    /// Makes this handle the session that takes `\Recent` (IMAP SELECT,
    /// not EXAMINE or STATUS): every message not yet claimed by another
    /// session is recent here, now and at every later sync.
    pub fn claim_recent(&mut self) -> Result<()> {
        if self.recent.is_none() {
            self.recent = Some(BTreeSet::new());
        }
        if self.state.unclaimed_recent().next().is_some() {
            self.transaction(|_| Ok(()))?;
        }
        Ok(())
    }

    /// Whether `uid` is `\Recent` in this session.
    pub fn is_recent(&self, uid: u32) -> bool {
        self.recent.as_ref().is_some_and(|r| r.contains(&uid))
    }

    /// This session's `\Recent` UIDs that still exist, ascending.
    pub fn recent_uids(&self) -> Vec<u32> {
        self.recent.iter().flatten().copied().filter(|uid| self.state.messages.contains_key(uid)).collect()
    }

    /// What to watch (inotify) to learn that this mailbox changed: the
    /// index directory (our change log) and the mail files' directories.
    pub fn notify_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.store.dir().to_path_buf()];
        for p in self.backend.watch_paths() {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        paths
    }

    /// Whether another session or program changed the mailbox since this
    /// handle's last sync: a `stat` of the change log and of the mail
    /// directories, no reads. A `true` may be a false alarm (e.g. our own
    /// save moved a directory's mtime); [`Mailbox::sync`] sorts it out.
    pub fn changed_since_sync(&self) -> bool {
        self.store.has_unread() || self.backend.stamp() != self.state.stamp
    }

    /// Messages in UID order.
    pub fn messages(&self) -> impl Iterator<Item = &MessageRecord> {
        self.state.messages.values()
    }

    pub fn message(&self, uid: u32) -> Option<&MessageRecord> {
        self.state.messages.get(&uid)
    }

    /// Everything that changed after `modseq` (CONDSTORE/QRESYNC).
    pub fn changes_since(&self, modseq: u64) -> Changes {
        self.state.changes_since(modseq)
    }

    /// Brings the view up to date with other sessions and programs.
    pub fn sync(&mut self) -> Result<()> {
        self.catch_up()?;
        let claim = self.recent.is_some() && self.state.unclaimed_recent().next().is_some();
        if claim || self.backend.needs_scan(&self.state.stamp) {
            self.transaction(|_| Ok(()))?;
        }
        Ok(())
    }

    /// Saves one message; it is durable when this returns.
    pub fn save(&mut self, message: &NewMessage) -> Result<SavedMessage> {
        let mut saved = self.save_many(std::slice::from_ref(message))?;
        saved.pop().ok_or_else(|| StorageError::NotPossible("save produced no message".into()))
    }

    /// Saves several messages in one transaction (one log fsync). The files
    /// are written and fsynced by several threads at once, so the file
    /// system commits their journal entries together instead of one by one.
    pub fn save_many(&mut self, messages: &[NewMessage]) -> Result<Vec<SavedMessage>> {
        if let Some(limit) = self.append_limit {
            if let Some(m) = messages.iter().find(|m| m.data.len() as u64 > limit) {
                return Err(StorageError::NotPossible(format!(
                    "Mail size is larger than the maximum size allowed by server configuration ({} > {limit})",
                    m.data.len()
                )));
            }
        }
        let now = fsutil::now();
        let backend = self.backend.as_ref();
        let stage =
            |m: &NewMessage| backend.stage(&m.data, m.received.unwrap_or(now), m.flags, &m.keywords, None);
        let threads = if backend.format() == Format::Mbox { 1 } else { STAGE_THREADS.min(messages.len()) };
        let staged: Vec<Result<Staged>> = if threads <= 1 {
            messages.iter().map(stage).collect()
        } else {
            let chunk = messages.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = messages
                    .chunks(chunk)
                    .map(|part| scope.spawn(move || part.iter().map(stage).collect::<Vec<_>>()))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| {
                        h.join().unwrap_or_else(|_| {
                            vec![Err(StorageError::NotPossible("save thread panicked".into()))]
                        })
                    })
                    .collect()
            })
        };
        let mut ok = Vec::with_capacity(staged.len());
        let mut failed = None;
        for s in staged {
            match s {
                Ok(s) => ok.push(s),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            for s in ok {
                let _ = std::fs::remove_file(&s.tmp_path);
            }
            return Err(e);
        }
        self.publish(ok)
    }

    fn publish(&mut self, staged: Vec<Staged>) -> Result<Vec<SavedMessage>> {
        self.transaction_with(true, |txn| {
            let mut out = Vec::with_capacity(staged.len());
            for s in staged {
                let uid = txn.state.uid_next;
                let mut record = txn.backend.publish(s, uid)?;
                txn.flags_changed |= record.flags != Flags::empty() || !record.keywords.is_empty();
                let modseq = txn.modseq();
                record.modseq = modseq;
                record.saved_modseq = modseq;
                out.push(SavedMessage { uid, guid: record.guid.clone(), modseq });
                txn.appended.push(uid);
                txn.push(Record::Append(record));
            }
            Ok(out)
        })
    }

    /// Changes flags/keywords of `uids` (unknown UIDs are ignored).
    pub fn store_flags(&mut self, uids: &[u32], update: &FlagUpdate) -> Result<StoreResult> {
        self.transaction(|txn| {
            let mut result = StoreResult::default();
            for uid in uids {
                // Borrowed, not cloned: this loop runs for every message of
                // a STORE 1:* on a big mailbox.
                let (flags, keywords, moved) = {
                    let Some(m) = txn.state.messages.get(uid) else { continue };
                    if update.unchanged_since.is_some_and(|since| m.modseq > since) {
                        result.modified.push(*uid);
                        continue;
                    }
                    let (flags, keywords) = update.apply(m.flags, &m.keywords);
                    if flags == m.flags && keywords == m.keywords {
                        continue;
                    }
                    let moved = txn.backend.set_flags(m, flags, &keywords)?;
                    (flags, keywords, moved)
                };
                txn.flags_changed = true;
                let modseq = txn.modseq();
                txn.push(Record::Flags { uid: *uid, modseq, flags, keywords });
                if let Some(location) = moved {
                    txn.push(Record::Location { uid: *uid, location });
                }
                result.changed.push(*uid);
                result.modseq = modseq;
            }
            Ok(result)
        })
    }

    /// Expunges `uids`; returns the ones that existed.
    pub fn expunge(&mut self, uids: &[u32]) -> Result<Vec<u32>> {
        self.transaction(|txn| {
            let mut done = Vec::new();
            for uid in uids {
                let Some(m) = txn.state.messages.get(uid).cloned() else { continue };
                txn.backend.remove(&m)?;
                let modseq = txn.modseq();
                txn.push(Record::Expunge(Tombstone { uid: *uid, guid: m.guid.clone(), modseq }));
                txn.rewrite = true;
                done.push(*uid);
            }
            Ok(done)
        })
    }

    /// Copies `uids` into `dest` keeping flags, keywords, dates and (for
    /// sdbox) GUIDs; returns (source UID, new UID) pairs. Between mailboxes
    /// of the same format the file is hard-linked where the format and
    /// file system allow it (Maildir, sdbox), else the bytes are copied.
    pub fn copy_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        let mut staged = Vec::new();
        let mut sources = Vec::new();
        let same_format = self.backend.format() == dest.backend.format();
        for uid in uids {
            let Some(m) = self.state.messages.get(uid).cloned() else { continue };
            let linked =
                if same_format { dest.backend.stage_link(&self.backend.path_of(&m), &m)? } else { None };
            let s = match linked {
                Some(s) => s,
                None => {
                    let data = self.read_message(*uid)?;
                    dest.backend.stage(&data, m.received, m.flags, &m.keywords, Some(&m.guid))?
                }
            };
            staged.push(s);
            sources.push(*uid);
        }
        let saved = dest.publish(staged)?;
        Ok(sources.into_iter().zip(saved.into_iter().map(|s| s.uid)).collect())
    }

    /// Copies message `uid` into `dest` by hard-linking its file, as
    /// Dovecot's LMTP does for the recipients after the first. `Ok(None)`
    /// when no link is possible here (other format or file system, file
    /// moved meanwhile): the caller saves the bytes it has instead.
    pub fn link_to(&mut self, uid: u32, dest: &mut Mailbox) -> Result<Option<SavedMessage>> {
        if self.backend.format() != dest.backend.format() {
            return Ok(None);
        }
        let Some(m) = self.state.messages.get(&uid).cloned() else { return Ok(None) };
        let Some(staged) = dest.backend.stage_link(&self.backend.path_of(&m), &m)? else { return Ok(None) };
        let mut saved = dest.publish(vec![staged])?;
        Ok(saved.pop())
    }

    /// Copies then expunges; returns (source UID, new UID) pairs.
    pub fn move_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        let pairs = self.copy_to(uids, dest)?;
        let moved: Vec<u32> = pairs.iter().map(|(src, _)| *src).collect();
        self.expunge(&moved)?;
        Ok(pairs)
    }

    /// The whole message as stored.
    pub fn read_message(&mut self, uid: u32) -> Result<Vec<u8>> {
        let record = self.record(uid)?;
        match self.backend.read(&record) {
            Err(e) if e.is_io_kind(std::io::ErrorKind::NotFound) => {
                // Renamed by another program (Maildir flags): rescan once.
                self.sync()?;
                let record = self.record(uid)?;
                self.backend.read(&record)
            }
            other => other,
        }
    }

    /// The header part (up to and including the empty line).
    pub fn read_header(&mut self, uid: u32) -> Result<Vec<u8>> {
        let data = self.read_message(uid)?;
        Ok(data[..header_len(&data)].to_vec())
    }

    /// The body part (after the empty line).
    pub fn read_body(&mut self, uid: u32) -> Result<Vec<u8>> {
        let data = self.read_message(uid)?;
        Ok(data[header_len(&data)..].to_vec())
    }

    /// Envelope, body structure, dates and sizes of a message: from the
    /// field cache, or parsed once and cached.
    pub fn fields(&mut self, uid: u32) -> Result<std::sync::Arc<CachedFields>> {
        let uid_validity = self.state.uid_validity;
        if let Some(f) = self.fields.get(uid_validity, uid) {
            return Ok(f);
        }
        let record = self.record(uid)?;
        let data = self.read_message(uid)?;
        self.parses += 1;
        let fields = mime::analyze(&data, record.received, record.saved);
        Ok(self.fields.put(uid_validity, uid, fields))
    }

    /// An IMAP section of a message (`HEADER`, `TEXT`, `1.2`, `2.MIME`,
    /// `3.HEADER`, ...); `None` if the message has no such part.
    pub fn read_section(&mut self, uid: u32, section: &str) -> Result<Option<Vec<u8>>> {
        let fields = self.fields(uid)?;
        let data = self.read_message(uid)?;
        let range = mime::section(&fields.structure, data.len() as u32, section);
        Ok(range.map(|r| mime::slice(&data, r).to_vec()))
    }

    /// `mail_fsync = always`: fsync the field cache and flag-only changes too.
    pub(crate) fn set_sync_cache(&mut self, sync: bool) {
        self.fields.set_sync(sync);
        self.fsync_always = sync;
    }

    /// How many messages this handle parsed (not served from the cache).
    pub fn parse_count(&self) -> u64 {
        self.parses
    }

    fn record(&self, uid: u32) -> Result<MessageRecord> {
        self.state
            .messages
            .get(&uid)
            .cloned()
            .ok_or_else(|| StorageError::NoSuchMessage { mailbox: self.name.clone(), uid })
    }

    /// Removes the mailbox's files and index.
    pub(crate) fn delete_files(backend: &dyn Backend, store: &IndexStore) -> Result<()> {
        let _lock = store.lock(true)?;
        backend.delete()?;
        for name in [super::index::store::INDEX_FILE, super::index::store::LOG_FILE] {
            let _ = std::fs::remove_file(store.dir().join(name));
        }
        Ok(())
    }

    // --- loading and transactions -------------------------------------

    fn reload(&mut self) -> Result<()> {
        let outcome = {
            let _lock = self.store.lock(false)?;
            self.store.load()?
        };
        match outcome {
            LoadOutcome::Loaded(state) => {
                self.state = state;
                Ok(())
            }
            LoadOutcome::Missing => self.rebuild(None),
            LoadOutcome::Corrupt(reason) => self.rebuild(Some(reason)),
        }
    }

    fn catch_up(&mut self) -> Result<()> {
        match self.store.read_new()? {
            Some(records) => {
                records.iter().for_each(|r| self.state.apply(r));
                Ok(())
            }
            None => self.reload(),
        }
    }

    /// Rebuilds the index from the mail files, keeping the UIDs, UIDVALIDITY
    /// and flags they carry.
    fn rebuild(&mut self, reason: Option<String>) -> Result<()> {
        let _lock = self.store.lock(true)?;
        let _format_lock = self.backend.lock()?;
        if let LoadOutcome::Loaded(state) = self.store.load()? {
            self.state = state;
            return Ok(());
        }
        let why = reason.unwrap_or_else(|| "index files are missing".into());
        super::warn(&format!(
            "Mailbox {}: {why} - rebuilding index {} from mail files",
            self.name,
            self.store.dir().display()
        ));
        let salvaged = self.store.salvage();
        let scan = self.backend.scan()?;
        let mut state = MailboxState::default();
        // The old index's header, if it survived, says whether its records
        // describe this mailbox incarnation.
        let old_header = salvaged.iter().find_map(|r| match r {
            Record::Header { guid, uid_validity } => Some((guid.clone(), *uid_validity)),
            _ => None,
        });
        let salvage_ok = match (&old_header, scan.uid_validity) {
            (Some((_, old)), Some(uv)) => *old == uv,
            _ => true,
        };
        let salvaged = if salvage_ok { salvaged } else { Vec::new() };
        let (old_guid, old_uv) = old_header.filter(|_| salvage_ok).unzip();
        state.apply(&Record::Header {
            guid: scan.guid.clone().or(old_guid).unwrap_or_else(fsutil::new_guid),
            uid_validity: scan.uid_validity.or(old_uv).unwrap_or((fsutil::now() as u32).max(1)),
        });
        state.uid_next = scan.uid_next.unwrap_or(1).max(1);
        // HIGHESTMODSEQ continues above anything handed out before.
        let ceiling = modseq::read_ceiling(&self.backend.control_dir())?;
        let modseq = ceiling.max(salvaged.iter().map(record_modseq).max().unwrap_or(0)) + 1;
        state.highest_modseq = modseq;
        let (with_uid, without): (Vec<_>, Vec<_>) = scan.messages.into_iter().partition(|m| m.uid.is_some());
        let mut by_uid: BTreeMap<u32, ScannedMessage> = BTreeMap::new();
        let mut later = without;
        for m in with_uid {
            let uid = m.uid.unwrap_or(0);
            match by_uid.entry(uid) {
                std::collections::btree_map::Entry::Occupied(_) => later.push(m),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(m);
                }
            }
        }
        if self.backend.flags_lag_log() {
            // The files' flags may predate the log: replay newer changes.
            for r in &salvaged {
                let (uid, changed, flags, keywords) = match r {
                    Record::Flags { uid, modseq, flags, keywords } => (uid, modseq, flags, keywords),
                    Record::Append(m) => (&m.uid, &m.modseq, &m.flags, &m.keywords),
                    _ => continue,
                };
                // Same message (an sdbox UID is never reused) and newer.
                if let Some(m) = by_uid.get_mut(uid).filter(|m| *changed > m.flags_modseq) {
                    m.flags = Some((*flags, keywords.clone()));
                    m.flags_modseq = *changed;
                }
            }
        }
        for r in &salvaged {
            match r {
                // UIDs that were handed out are never handed out again.
                Record::Append(m) => state.uid_next = state.uid_next.max(m.uid.saturating_add(1)),
                Record::Counters { uid_next, .. } => state.uid_next = state.uid_next.max(*uid_next),
                Record::FirstRecent(uid) => state.first_recent_uid = state.first_recent_uid.max(*uid),
                _ => {}
            }
        }
        for (uid, m) in by_uid {
            state.apply(&Record::Append(scanned_record(m, uid, modseq)));
        }
        if !self.backend.uid_is_identity() {
            let backend = &self.backend;
            later.sort_by(|a, b| backend.new_file_order(a, b));
        }
        for m in later {
            let uid = state.uid_next;
            state.apply(&Record::Append(scanned_record(m, uid, modseq)));
        }
        // Tombstones of messages that are gone, so "expunged since" still
        // answers for changes before the rebuild.
        let mut tombstoned = BTreeSet::new();
        for r in &salvaged {
            if let Record::Expunge(t) = r {
                if !state.messages.contains_key(&t.uid) && tombstoned.insert(t.uid) {
                    state.tombstones.push(t.clone());
                    state.uid_next = state.uid_next.max(t.uid.saturating_add(1));
                }
            }
        }
        let mut pending = PendingSyncs::default();
        self.backend.commit(&state, &[], true, &mut pending)?;
        pending.run()?;
        self.backend.flush(&state)?;
        self.modseq_ceiling = modseq::raise_ceiling(&self.backend.control_dir(), ceiling, modseq)?;
        state.stamp = self.backend.stamp();
        self.store.compact(&state)?;
        restamp(self.backend.as_ref(), &mut self.store, &mut state)?;
        self.state = state;
        Ok(())
    }

    fn transaction<T>(&mut self, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        self.transaction_with(false, f)
    }

    /// A transaction; `save` says it only adds messages, so a format whose
    /// UIDs don't depend on the files ([`Backend::save_uid_floor`]) skips
    /// the scan. The fsyncs it owes run after both locks are released
    /// ([`PendingSyncs`]), and it returns only once they are done.
    fn transaction_with<T>(&mut self, save: bool, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        let mut pending = PendingSyncs::default();
        let result = self.transaction_locked(save, &mut pending, f);
        // Flushed even after an error: whatever reached the files is
        // recorded, and recorded durably.
        let synced = pending.run();
        let value = result?;
        synced?;
        Ok(value)
    }

    fn transaction_locked<T>(
        &mut self,
        save: bool,
        pending: &mut PendingSyncs,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.store.lock(true)?;
        let _format_lock = self.backend.lock()?;
        match self.store.read_new()? {
            Some(records) => records.iter().for_each(|r| self.state.apply(r)),
            None => match self.store.load()? {
                LoadOutcome::Loaded(state) => self.state = state,
                _ => {
                    return Err(StorageError::NotPossible(format!(
                        "index of {} changed while locked; retry",
                        self.name
                    )))
                }
            },
        }
        if self.modseq_ceiling == 0 {
            self.modseq_ceiling = modseq::read_ceiling(&self.backend.control_dir())?;
        }
        let mut txn = Txn {
            state: &mut self.state,
            backend: self.backend.as_ref(),
            records: Vec::new(),
            appended: Vec::new(),
            rewrite: false,
            modseq: 0,
            flags_changed: false,
        };
        let floor = if save { txn.backend.save_uid_floor()? } else { None };
        // A save that skips the scan must not record the files' stamp as
        // seen: the next sync still has to look at them.
        let scanned_files = floor.is_none();
        let scanned = match floor {
            Some(floor) => {
                if floor > txn.state.uid_next {
                    let highest_modseq = txn.state.highest_modseq;
                    txn.push(Record::Counters { uid_next: floor, highest_modseq });
                }
                Ok(())
            }
            None if txn.backend.needs_scan(&txn.state.stamp) => apply_scan(&mut txn),
            None => Ok(()),
        };
        let result = scanned.and_then(|()| f(&mut txn));
        if let Some(recent) = self.recent.as_mut() {
            // This session selected the mailbox: whatever nobody claimed yet
            // is recent here, and for no one else.
            let claimed: Vec<u32> = txn.state.unclaimed_recent().collect();
            if !claimed.is_empty() {
                recent.extend(claimed);
                let next = txn.state.uid_next;
                txn.push(Record::FirstRecent(next));
            }
        }
        // Only formats that keep flags lazily have anything to flush.
        self.flags_dirty |= txn.flags_changed && txn.backend.flags_lag_log();
        let ceiling = &mut self.modseq_ceiling;
        // Whatever was done to the files is recorded, even after an error.
        let persisted = (|| {
            if txn.records.is_empty() && (!scanned_files || txn.backend.stamp() == txn.state.stamp) {
                return Ok(());
            }
            txn.backend.sync_dirs(pending)?;
            txn.backend.commit(txn.state, &txn.appended, txn.rewrite, pending)?;
            // Before any modseq above the stored ceiling becomes visible.
            *ceiling = modseq::raise_ceiling(&txn.backend.control_dir(), *ceiling, txn.state.highest_modseq)?;
            if scanned_files {
                let stamp = txn.backend.stamp();
                if stamp != txn.state.stamp {
                    txn.push(Record::Stamp(stamp));
                }
            }
            let records = std::mem::take(&mut txn.records);
            // New and expunged messages are durable before we return (DESIGN
            // §4.4); flag-only changes are fsynced under mail_fsync=always
            // only, like Dovecot's index fsync mask under `optimized`.
            let sync = self.fsync_always || records.iter().any(must_sync);
            self.store.append_deferred(&records, sync, pending)?;
            if self.store.needs_compaction() {
                // The log is about to be folded away: bring the format's
                // lazy copies up to date first.
                txn.backend.flush(txn.state)?;
                self.flags_dirty = false;
                self.store.compact(txn.state)?;
                if scanned_files {
                    restamp(txn.backend, &mut self.store, txn.state)?;
                }
            }
            Ok(())
        })();
        persisted?;
        result
    }

    /// Writes the format's lazily kept copies (sdbox flags) if this handle
    /// changed flags; done when the handle is dropped, callable earlier.
    pub fn flush(&mut self) -> Result<()> {
        // Deleted or renamed away meanwhile: locking would recreate the
        // directories, and there is nothing left to flush into.
        if !self.flags_dirty || !self.backend.exists() || !self.store.dir().is_dir() {
            return Ok(());
        }
        let _lock = self.store.lock(true)?;
        let _format_lock = self.backend.lock()?;
        match self.store.read_new()? {
            Some(records) => records.iter().for_each(|r| self.state.apply(r)),
            None => match self.store.load()? {
                LoadOutcome::Loaded(state) => self.state = state,
                // Rebuilt or replaced meanwhile: the new index carries it.
                _ => return Ok(()),
            },
        }
        let clean = self.backend.stamp() == self.state.stamp;
        self.backend.flush(&self.state)?;
        self.flags_dirty = false;
        if clean {
            restamp(self.backend.as_ref(), &mut self.store, &mut self.state)?;
        }
        Ok(())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            super::warn(&format!("Mailbox {}: {e}", self.name));
        }
    }
}

/// Threads writing the files of one batch save.
const STAGE_THREADS: usize = 8;

/// Reconciles the index with what is on disk.
fn apply_scan(txn: &mut Txn<'_>) -> Result<()> {
    let by_guid: HashMap<String, u32> =
        txn.state.messages.values().map(|m| (m.guid.clone(), m.uid)).collect();
    // Files the index already has need no stat: under steady delivery every
    // transaction rescans (directory mtimes keep moving), and a stat per
    // message made each save O(mailbox size).
    let scan = txn.backend.scan_known(txn.state)?;
    if let Some(next) = scan.uid_next {
        if next > txn.state.uid_next {
            let highest_modseq = txn.state.highest_modseq;
            txn.push(Record::Counters { uid_next: next, highest_modseq });
        }
    }
    let tombstoned: std::collections::HashSet<u32> = txn.state.tombstones.iter().map(|t| t.uid).collect();
    let mut seen = std::collections::HashSet::new();
    let mut new_files = Vec::new();
    let identity = txn.backend.uid_is_identity();
    for m in scan.messages {
        let known = match m.uid {
            _ if identity => m.uid.filter(|uid| txn.state.messages.contains_key(uid)),
            // A second file naming the same message (a copy under the same
            // Maildir base name) is a new message, not a second location.
            Some(uid)
                if !seen.contains(&uid) && txn.state.messages.get(&uid).is_some_and(|r| r.guid == m.guid) =>
            {
                Some(uid)
            }
            _ => by_guid.get(&m.guid).copied().filter(|uid| !seen.contains(uid)),
        };
        match known {
            Some(uid) => {
                seen.insert(uid);
                let Some(current) = txn.state.messages.get(&uid).cloned() else { continue };
                // Lazily kept flags are older than the index: ignore them.
                let flags_in_files = m.flags.as_ref().filter(|_| !txn.backend.flags_lag_log());
                if let Some((flags, keywords)) = flags_in_files {
                    if *flags != current.flags || *keywords != current.keywords {
                        let modseq = txn.modseq();
                        txn.push(Record::Flags { uid, modseq, flags: *flags, keywords: keywords.clone() });
                    }
                }
                if m.location != current.location {
                    txn.push(Record::Location { uid, location: m.location.clone() });
                }
            }
            None => new_files.push(m),
        }
    }
    let gone: Vec<MessageRecord> =
        txn.state.messages.values().filter(|r| !seen.contains(&r.uid)).cloned().collect();
    for r in gone {
        let modseq = txn.modseq();
        txn.push(Record::Expunge(Tombstone { uid: r.uid, guid: r.guid, modseq }));
        txn.rewrite = true;
    }
    if !identity {
        let backend = txn.backend;
        new_files.sort_by(|a, b| {
            a.uid
                .unwrap_or(u32::MAX)
                .cmp(&b.uid.unwrap_or(u32::MAX))
                .then_with(|| backend.new_file_order(a, b))
        });
    }
    for m in new_files {
        let uid = match m.uid {
            Some(uid) if tombstoned.contains(&uid) => {
                // Expunged in the log, file still there: finish the expunge.
                let record = scanned_record(m, uid, 0);
                txn.backend.remove(&record)?;
                continue;
            }
            Some(uid) if !txn.state.messages.contains_key(&uid) => uid,
            _ => {
                txn.rewrite = true;
                txn.state.uid_next
            }
        };
        let modseq = txn.modseq();
        txn.push(Record::Append(scanned_record(m, uid, modseq)));
    }
    Ok(())
}

/// Records the mail files' stamp again after our own writes in their
/// directory (sdbox keeps the index and its flags file in `dbox-Mails`), so
/// the next sync doesn't take them for another program's changes and
/// rescan. Call with the exclusive lock held, right after those writes.
fn restamp(backend: &dyn Backend, store: &mut IndexStore, state: &mut MailboxState) -> Result<()> {
    let stamp = backend.stamp();
    if stamp != state.stamp {
        let record = Record::Stamp(stamp);
        state.apply(&record);
        store.append(std::slice::from_ref(&record))?;
    }
    Ok(())
}

/// Whether a log record must be on disk before the change returns.
fn must_sync(record: &Record) -> bool {
    matches!(record, Record::Append(_) | Record::Expunge(_) | Record::Header { .. } | Record::Counters { .. })
}

/// The modseq a record carries (0 for records without one).
fn record_modseq(record: &Record) -> u64 {
    match record {
        Record::Counters { highest_modseq, .. } => *highest_modseq,
        Record::Append(m) => m.modseq,
        Record::Flags { modseq, .. } => *modseq,
        Record::Expunge(t) => t.modseq,
        _ => 0,
    }
}

fn scanned_record(m: ScannedMessage, uid: u32, modseq: u64) -> MessageRecord {
    let (flags, keywords) = m.flags.unwrap_or_default();
    MessageRecord {
        uid,
        guid: m.guid,
        flags,
        keywords,
        modseq,
        saved_modseq: modseq,
        received: m.received,
        saved: m.saved,
        physical_size: m.physical_size,
        virtual_size: m.virtual_size,
        location: m.location,
    }
}

/// Length of the header including the blank line that ends it.
pub fn header_len(data: &[u8]) -> usize {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return i + 2;
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return i + 3;
            }
        }
        i += 1;
    }
    data.len()
}
