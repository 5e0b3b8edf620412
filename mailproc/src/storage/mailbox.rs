//! An open mailbox: the format-independent rules of DESIGN §4.4.
//!
//! Every change runs as a transaction under the mailbox lock: catch up with
//! the change log, look at the mail files if their stamp changed (another
//! program delivered, flagged or expunged), apply the change to the files,
//! make them durable, then append the records to the log and fsync it. Only
//! then does the call return, so a save that returned is never lost; a crash
//! before that leaves files the next scan adopts or removes.
//!
//! [`Mailbox::sync`] sees other sessions' changes by reading only the new
//! part of the log, plus a few `stat`s of the mail directories.

use std::collections::{BTreeMap, HashMap};

use super::backend::{Backend, ScannedMessage, Staged};
use super::error::{Result, StorageError};
use super::fsutil;
use super::index::fields::FieldCache;
use super::index::{IndexStore, LoadOutcome, MailboxState, Record};
use super::mime::{self, CachedFields};
use super::types::{
    Changes, FlagUpdate, MailboxStatus, MessageRecord, NewMessage, SavedMessage, StoreResult, Tombstone,
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
}

/// The work of one transaction, applied to the state as it goes.
struct Txn<'a> {
    state: &'a mut MailboxState,
    backend: &'a dyn Backend,
    records: Vec<Record>,
    appended: Vec<u32>,
    rewrite: bool,
    modseq: u64,
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
        };
        mailbox.reload()?;
        mailbox.sync()?;
        Ok(mailbox)
    }

    /// Creates the mailbox on disk with a new GUID and UIDVALIDITY.
    pub(crate) fn create(name: &str, backend: Box<dyn Backend>, store: IndexStore) -> Result<()> {
        if backend.exists() {
            return Err(StorageError::AlreadyExists(name.to_string()));
        }
        let guid = fsutil::new_guid();
        let uid_validity = (fsutil::now() as u32).max(1);
        let mut store = store;
        let _lock = store.lock(true)?;
        backend.create(&guid, uid_validity)?;
        let mut state = MailboxState::default();
        state.apply(&Record::Header { guid, uid_validity });
        state.stamp = backend.stamp();
        store.compact(&state)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state as of the last sync.
    pub fn state(&self) -> &MailboxState {
        &self.state
    }

    pub fn status(&self) -> MailboxStatus {
        self.state.status()
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
        if self.backend.needs_scan(&self.state.stamp) {
            self.transaction(|_| Ok(()))?;
        }
        Ok(())
    }

    /// Saves one message; it is durable when this returns.
    pub fn save(&mut self, message: &NewMessage) -> Result<SavedMessage> {
        let mut saved = self.save_many(std::slice::from_ref(message))?;
        saved.pop().ok_or_else(|| StorageError::NotPossible("save produced no message".into()))
    }

    /// Saves several messages in one transaction (one log fsync).
    pub fn save_many(&mut self, messages: &[NewMessage]) -> Result<Vec<SavedMessage>> {
        let now = fsutil::now();
        let mut staged = Vec::with_capacity(messages.len());
        for m in messages {
            staged.push(self.backend.stage(
                &m.data,
                m.received.unwrap_or(now),
                m.flags,
                &m.keywords,
                None,
            )?);
        }
        self.publish(staged)
    }

    fn publish(&mut self, staged: Vec<Staged>) -> Result<Vec<SavedMessage>> {
        self.transaction(|txn| {
            let mut out = Vec::with_capacity(staged.len());
            for s in staged {
                let uid = txn.state.uid_next;
                let mut record = txn.backend.publish(s, uid)?;
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
                let Some(m) = txn.state.messages.get(uid).cloned() else { continue };
                if update.unchanged_since.is_some_and(|since| m.modseq > since) {
                    result.modified.push(*uid);
                    continue;
                }
                let (flags, keywords) = update.apply(m.flags, &m.keywords);
                if flags == m.flags && keywords == m.keywords {
                    continue;
                }
                let moved = txn.backend.set_flags(&m, flags, &keywords)?;
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
    /// sdbox) GUIDs; returns (source UID, new UID) pairs.
    pub fn copy_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        let mut staged = Vec::new();
        let mut sources = Vec::new();
        for uid in uids {
            let Some(m) = self.state.messages.get(uid).cloned() else { continue };
            let data = self.read_message(*uid)?;
            staged.push(dest.backend.stage(&data, m.received, m.flags, &m.keywords, Some(&m.guid))?);
            sources.push(*uid);
        }
        let saved = dest.publish(staged)?;
        Ok(sources.into_iter().zip(saved.into_iter().map(|s| s.uid)).collect())
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
        let scan = self.backend.scan()?;
        let mut state = MailboxState::default();
        state.apply(&Record::Header {
            guid: scan.guid.clone().unwrap_or_else(fsutil::new_guid),
            uid_validity: scan.uid_validity.unwrap_or((fsutil::now() as u32).max(1)),
        });
        state.uid_next = scan.uid_next.unwrap_or(1).max(1);
        state.highest_modseq = 1;
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
        for (uid, m) in by_uid {
            state.apply(&Record::Append(scanned_record(m, uid, 1)));
        }
        if !self.backend.uid_is_identity() {
            later.sort_by_key(|m| m.received);
        }
        for m in later {
            let uid = state.uid_next;
            state.apply(&Record::Append(scanned_record(m, uid, 1)));
        }
        self.backend.commit(&state, &[], true)?;
        state.stamp = self.backend.stamp();
        self.store.compact(&state)?;
        self.state = state;
        Ok(())
    }

    fn transaction<T>(&mut self, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
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
        let mut txn = Txn {
            state: &mut self.state,
            backend: self.backend.as_ref(),
            records: Vec::new(),
            appended: Vec::new(),
            rewrite: false,
            modseq: 0,
        };
        let scanned = if txn.backend.needs_scan(&txn.state.stamp) { apply_scan(&mut txn) } else { Ok(()) };
        let result = scanned.and_then(|()| f(&mut txn));
        // Whatever was done to the files is recorded, even after an error.
        let persisted = (|| {
            if txn.records.is_empty() && txn.backend.stamp() == txn.state.stamp {
                return Ok(());
            }
            txn.backend.sync_dirs()?;
            txn.backend.commit(txn.state, &txn.appended, txn.rewrite)?;
            let stamp = txn.backend.stamp();
            if stamp != txn.state.stamp {
                txn.push(Record::Stamp(stamp));
            }
            let records = std::mem::take(&mut txn.records);
            self.store.append(&records)?;
            if self.store.needs_compaction() {
                self.store.compact(txn.state)?;
            }
            Ok(())
        })();
        persisted?;
        result
    }
}

/// Reconciles the index with what is on disk.
fn apply_scan(txn: &mut Txn<'_>) -> Result<()> {
    let scan = txn.backend.scan()?;
    if let Some(next) = scan.uid_next {
        if next > txn.state.uid_next {
            let highest_modseq = txn.state.highest_modseq;
            txn.push(Record::Counters { uid_next: next, highest_modseq });
        }
    }
    let by_guid: HashMap<String, u32> =
        txn.state.messages.values().map(|m| (m.guid.clone(), m.uid)).collect();
    let tombstoned: std::collections::HashSet<u32> = txn.state.tombstones.iter().map(|t| t.uid).collect();
    let mut seen = std::collections::HashSet::new();
    let mut new_files = Vec::new();
    let identity = txn.backend.uid_is_identity();
    for m in scan.messages {
        let known = match m.uid {
            _ if identity => m.uid.filter(|uid| txn.state.messages.contains_key(uid)),
            Some(uid) if txn.state.messages.get(&uid).is_some_and(|r| r.guid == m.guid) => Some(uid),
            _ => by_guid.get(&m.guid).copied().filter(|uid| !seen.contains(uid)),
        };
        match known {
            Some(uid) => {
                seen.insert(uid);
                let Some(current) = txn.state.messages.get(&uid).cloned() else { continue };
                if let Some((flags, keywords)) = &m.flags {
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
        new_files.sort_by_key(|m| (m.uid.unwrap_or(u32::MAX), m.received));
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
