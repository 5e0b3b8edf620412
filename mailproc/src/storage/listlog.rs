//! `dovecote.list.log`: the per-user change log of the mailbox list —
//! creates, deletes, renames (by mailbox GUID, which survives a rename) and
//! (un)subscriptions — so replication and clients can ask "what happened
//! to the mailbox list since modseq N" (DESIGN §4.4), as Dovecot's
//! `dovecot.mailbox.log` does for dsync.
//!
//! Frames as in the mailbox change log (`len u32 LE`, `crc32 u32 LE`,
//! payload); a torn tail is ignored and truncated by the next writer. The
//! payload is `<modseq>\t<unix time>\t<kind>\t<fields>` with text fields
//! escaped. Appends are fsynced under `dovecote.list.lock` before the
//! operation returns; the per-user modseq grows by one per change.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::crc::crc32;
use super::error::{Result, StorageError};
use super::fsutil::{self, FileLock};
use super::index::record::{escape, unescape};

pub const LIST_LOG_FILE: &str = "dovecote.list.log";
const LIST_LOCK_FILE: &str = "dovecote.list.lock";

/// What happened to the mailbox list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChangeKind {
    Create { guid: String, name: String },
    Delete { guid: String, name: String },
    Rename { guid: String, old: String, new: String },
    Subscribe { name: String },
    Unsubscribe { name: String },
}

/// One entry of the mailbox-list log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChange {
    pub modseq: u64,
    /// Unix seconds.
    pub time: i64,
    pub kind: ListChangeKind,
}

impl ListChange {
    fn payload(&self) -> String {
        let head = format!("{}\t{}", self.modseq, self.time);
        match &self.kind {
            ListChangeKind::Create { guid, name } => format!("{head}\tcreate\t{guid}\t{}", escape(name)),
            ListChangeKind::Delete { guid, name } => format!("{head}\tdelete\t{guid}\t{}", escape(name)),
            ListChangeKind::Rename { guid, old, new } => {
                format!("{head}\trename\t{guid}\t{}\t{}", escape(old), escape(new))
            }
            ListChangeKind::Subscribe { name } => format!("{head}\tsubscribe\t{}", escape(name)),
            ListChangeKind::Unsubscribe { name } => format!("{head}\tunsubscribe\t{}", escape(name)),
        }
    }

    fn parse(payload: &str) -> Option<ListChange> {
        let f: Vec<&str> = payload.split('\t').collect();
        let modseq = f.first()?.parse().ok()?;
        let time = f.get(1)?.parse().ok()?;
        let text = |i: usize| f.get(i).map(|t| unescape(t));
        let kind = match *f.get(2)? {
            "create" => ListChangeKind::Create { guid: text(3)?, name: text(4)? },
            "delete" => ListChangeKind::Delete { guid: text(3)?, name: text(4)? },
            "rename" => ListChangeKind::Rename { guid: text(3)?, old: text(4)?, new: text(5)? },
            "subscribe" => ListChangeKind::Subscribe { name: text(3)? },
            "unsubscribe" => ListChangeKind::Unsubscribe { name: text(3)? },
            _ => return None,
        };
        Some(ListChange { modseq, time, kind })
    }
}

/// The mailbox-list log of one user (one per subscriptions directory).
#[derive(Debug, Clone)]
pub struct ListLog {
    dir: PathBuf,
}

impl ListLog {
    pub fn new(dir: &Path) -> ListLog {
        ListLog { dir: dir.to_path_buf() }
    }

    /// Every readable change, oldest first, and the end of the valid part.
    fn read_all(&self) -> Result<(Vec<ListChange>, u64)> {
        let path = self.dir.join(LIST_LOG_FILE);
        let data = fsutil::read_optional(&path)?.unwrap_or_default();
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos + 8 <= data.len() {
            let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let (len, crc) = (word(pos) as usize, word(pos + 4));
            let Some(body) = data.get(pos + 8..pos + 8 + len) else { break };
            if crc32(body) != crc {
                break;
            }
            match std::str::from_utf8(body).ok().and_then(ListChange::parse) {
                Some(change) => out.push(change),
                None => break,
            }
            pos += 8 + len;
        }
        Ok((out, pos as u64))
    }

    /// Changes with a modseq above `since`.
    pub fn changes_since(&self, since: u64) -> Result<Vec<ListChange>> {
        Ok(self.read_all()?.0.into_iter().filter(|c| c.modseq > since).collect())
    }

    /// The modseq of the last change (0 when none).
    pub fn highest_modseq(&self) -> Result<u64> {
        Ok(self.read_all()?.0.last().map(|c| c.modseq).unwrap_or(0))
    }

    /// Records `kind` durably; returns its modseq.
    pub fn append(&self, kind: ListChangeKind) -> Result<u64> {
        fsutil::mkdir_all(&self.dir)?;
        let _lock = FileLock::acquire(&self.dir.join(LIST_LOCK_FILE), true)?;
        let (existing, end) = self.read_all()?;
        let modseq = existing.last().map(|c| c.modseq).unwrap_or(0) + 1;
        let change = ListChange { modseq, time: fsutil::now(), kind };
        let payload = change.payload();
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32(payload.as_bytes()).to_le_bytes());
        frame.extend_from_slice(payload.as_bytes());
        let path = self.dir.join(LIST_LOG_FILE);
        let created = !path.exists();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        // Drop a torn tail left by a crashed writer.
        f.set_len(end).map_err(|e| StorageError::io("ftruncate", &path, e))?;
        f.seek(SeekFrom::Start(end)).map_err(|e| StorageError::io("lseek", &path, e))?;
        f.write_all(&frame).map_err(|e| StorageError::io("write", &path, e))?;
        f.sync_data().map_err(|e| StorageError::io("fdatasync", &path, e))?;
        if created {
            fsutil::fsync_dir(&self.dir)?;
        }
        Ok(modseq)
    }

    /// Removes the log (tests, user deletion).
    pub fn remove(&self) {
        let _ = fs::remove_file(self.dir.join(LIST_LOG_FILE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_and_read_back_with_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = ListLog::new(dir.path());
        let a = log.append(ListChangeKind::Create { guid: "g1".into(), name: "Work\tx".into() }).unwrap();
        let b = log
            .append(ListChangeKind::Rename { guid: "g1".into(), old: "Work\tx".into(), new: "Old".into() })
            .unwrap();
        assert_eq!((a, b), (1, 2));
        // A torn append is invisible and overwritten by the next one.
        let path = dir.path().join(LIST_LOG_FILE);
        let mut data = fs::read(&path).unwrap();
        data.extend_from_slice(&[40, 0, 0, 0, 1, 2]);
        fs::write(&path, data).unwrap();
        assert_eq!(log.highest_modseq().unwrap(), 2);
        let c = log.append(ListChangeKind::Subscribe { name: "Old".into() }).unwrap();
        assert_eq!(c, 3);
        let since = log.changes_since(1).unwrap();
        assert_eq!(since.len(), 2);
        assert_eq!(
            since[0].kind,
            ListChangeKind::Rename { guid: "g1".into(), old: "Work\tx".into(), new: "Old".into() }
        );
    }
}
