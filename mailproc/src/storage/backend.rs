//! The contract between the format-independent mailbox logic
//! ([`super::mailbox`]) and a mail file format (Maildir, sdbox).
//!
//! A backend owns the mail files; the index owns UIDs, modseqs and flags,
//! and every backend can rebuild that knowledge from its files ([`scan`]).

use std::path::PathBuf;

use super::error::Result;
use super::fsutil::PendingSyncs;
use super::index::MailboxState;
use super::location::Format;
use super::types::{Flags, Keywords, MessageRecord};

/// A message written durably to a temp file, not yet visible.
#[derive(Debug)]
pub struct Staged {
    pub tmp_path: PathBuf,
    pub guid: String,
    pub physical_size: u64,
    pub virtual_size: u64,
    pub received: i64,
    pub flags: Flags,
    pub keywords: Keywords,
    /// The message itself, for formats that write it only when publishing
    /// (mbox appends under the mailbox lock).
    pub inline: Option<Vec<u8>>,
}

/// One message found on disk.
#[derive(Debug, Clone)]
pub struct ScannedMessage {
    /// The UID the files carry (uidlist entry, `u.<uid>` name).
    pub uid: Option<u32>,
    pub guid: String,
    pub location: String,
    /// Flags if the files carry them.
    pub flags: Option<(Flags, Keywords)>,
    /// Modseq of those flags when the format records it (sdbox flags
    /// file), so a rebuild only replays newer logged changes.
    pub flags_modseq: u64,
    pub received: i64,
    pub saved: i64,
    pub physical_size: u64,
    pub virtual_size: u64,
}

/// Everything the mail files say about a mailbox.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub messages: Vec<ScannedMessage>,
    pub uid_validity: Option<u32>,
    pub guid: Option<String>,
    pub uid_next: Option<u32>,
}

/// A lock that a format needs besides our own (Dovecot's uidlist dotlock).
pub type FormatLock = Option<Box<dyn std::fmt::Debug>>;

pub trait Backend: std::fmt::Debug + Send + Sync {
    /// Which format this is (hard-link copies need the same on both sides).
    fn format(&self) -> Format;
    /// Whether the mailbox's mail directory exists.
    fn exists(&self) -> bool;
    /// Creates the directories and persists the mailbox identity.
    fn create(&self, guid: &str, uid_validity: u32) -> Result<()>;
    /// Takes the format's own lock for a write transaction.
    fn lock(&self) -> Result<FormatLock>;
    /// Writes a new message to a temp file and fsyncs it (if `fsync`).
    fn stage(
        &self,
        data: &[u8],
        received: i64,
        flags: Flags,
        keywords: &Keywords,
        guid: Option<&str>,
    ) -> Result<Staged>;
    /// Makes a staged message visible under `uid`; returns its record with
    /// modseqs left 0 for the caller. Called under the mailbox lock.
    fn publish(&self, staged: Staged, uid: u32) -> Result<MessageRecord>;
    /// The raw message bytes.
    fn read(&self, record: &MessageRecord) -> Result<Vec<u8>>;
    /// Path of the file holding a message (for hard-link copies).
    fn path_of(&self, record: &MessageRecord) -> PathBuf;
    /// Stores new flags in the mail files if the format keeps them there;
    /// returns the new location if the file moved.
    fn set_flags(&self, record: &MessageRecord, flags: Flags, keywords: &Keywords) -> Result<Option<String>>;
    /// Removes a message's files.
    fn remove(&self, record: &MessageRecord) -> Result<()>;
    /// A cheap fingerprint (directory mtimes) of the mail files.
    fn stamp(&self) -> String;
    /// Whether the files may have changed behind the index's back.
    fn needs_scan(&self, stamp: &str) -> bool;
    /// Lists every message on disk.
    fn scan(&self) -> Result<Scan>;
    /// Like [`Backend::scan`], but files the index already has (by GUID or
    /// location) are taken from it: only their uid, guid, location and
    /// flags count, so a format may leave their dates and sizes unread (0)
    /// instead of a `stat` or read per file on every sync.
    fn scan_known(&self, index: &MailboxState) -> Result<Scan> {
        let _ = index;
        self.scan()
    }
    /// Whether a UID found in the files identifies the message by itself
    /// (mbox `X-UID`), so scans match by UID alone and keep file order.
    fn uid_is_identity(&self) -> bool {
        false
    }
    /// The order new files without a UID get their UIDs in: by received
    /// date unless the format knows better (Maildir: the file names).
    fn new_file_order(&self, a: &ScannedMessage, b: &ScannedMessage) -> std::cmp::Ordering {
        a.received.cmp(&b.received)
    }
    /// Persists format-side metadata after a transaction (Maildir's
    /// dovecot-uidlist). `appended` are new UIDs in ascending order. Flushes
    /// may be left in `pending`, which the caller runs after unlocking.
    fn commit(
        &self,
        state: &MailboxState,
        appended: &[u32],
        rewrite: bool,
        pending: &mut PendingSyncs,
    ) -> Result<()>;
    /// Makes the directory entries of published, moved and removed files
    /// durable, now or through `pending` (run after the locks are released).
    fn sync_dirs(&self, pending: &mut PendingSyncs) -> Result<()>;
    /// Whether a save may skip looking at the files, and the lowest UID it
    /// may then hand out. `None` (the default): saves scan like any other
    /// transaction. `Some(floor)`: UIDs are assigned under the format's
    /// lock from a source other programs also respect (Maildir's
    /// dovecot-uidlist), so new files from other programs wait for the next
    /// sync, which sees the changed stamp. Called under the locks.
    fn save_uid_floor(&self) -> Result<Option<u32>> {
        Ok(None)
    }
    /// Removes the mailbox's mail files and directories (not children).
    fn delete(&self) -> Result<()>;

    /// Stages a copy of `source` (a message of `source_path`, another
    /// mailbox of the same format) by hard-linking its file instead of
    /// writing the bytes again. `Ok(None)`: not possible here (other file
    /// system, format keeps per-mailbox data in the file); the caller
    /// falls back to copying the bytes.
    fn stage_link(&self, _source_path: &std::path::Path, _source: &MessageRecord) -> Result<Option<Staged>> {
        Ok(None)
    }
    /// Writes the format-side copies that are kept lazily (sdbox's flags
    /// file). Called under the mailbox lock with a caught-up state, when
    /// the log is compacted and when a handle that changed flags closes.
    fn flush(&self, _state: &MailboxState) -> Result<()> {
        Ok(())
    }
    /// Whether flags found by [`Backend::scan`] may be older than the
    /// change log (flushed lazily), so a rebuild replays the log's flag
    /// records over them. Formats whose files always carry the current
    /// flags (Maildir names, mbox headers) say no.
    fn flags_lag_log(&self) -> bool {
        false
    }
    /// The directory next to the mail files (not the index directory, which
    /// an administrator may wipe) where the modseq ceiling is kept.
    fn control_dir(&self) -> PathBuf;
    /// What to watch (inotify) to notice changes by other processes: the
    /// mail directories or file. The index directory is added by the caller.
    fn watch_paths(&self) -> Vec<PathBuf>;
}

/// IMAP virtual size: bare LFs count as CRLF.
pub fn virtual_size(data: &[u8]) -> u64 {
    let mut size = data.len() as u64;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            size += 1;
        }
        prev = b;
    }
    size
}
