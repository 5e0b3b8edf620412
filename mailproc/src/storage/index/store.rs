//! The on-disk index of one mailbox: `dovecote.index` (a memory-mapped
//! snapshot), `dovecote.log` (the append-only change log since that
//! snapshot) and `dovecote.lock` (flock: exclusive for writers, shared for
//! full loads).
//!
//! Crash safety: log appends are framed and checksummed, so a torn append
//! is invisible and truncated by the next writer; snapshots are written to a
//! temp file, fsynced and renamed, and carry a generation number that the
//! fresh log repeats. A crash between the two renames leaves a log of an
//! older generation, whose records the snapshot already contains.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::record::{decode_all, Record};
use super::state::{apply_snapshot_record, MailboxState};
use crate::storage::crc::crc32;
use crate::storage::error::{Result, StorageError};
use crate::storage::fsutil::{self, FileLock, PendingSyncs};

const INDEX_MAGIC: &[u8; 8] = b"DVCIDX01";
const LOG_MAGIC: &[u8; 8] = b"DVCLOG01";
const INDEX_HEADER: usize = 8 + 8 + 8 + 4;
const LOG_HEADER: u64 = 16;
/// Compact the log into a new snapshot once it is this large.
const COMPACT_LOG_SIZE: u64 = 512 * 1024;

pub const INDEX_FILE: &str = "dovecote.index";
pub const LOG_FILE: &str = "dovecote.log";
pub const LOCK_FILE: &str = "dovecote.lock";

/// What a full load found.
#[derive(Debug)]
pub enum LoadOutcome {
    Loaded(MailboxState),
    /// No index files at all (a new or never-indexed mailbox).
    Missing,
    /// Index files exist but cannot be trusted; the reason is for the log.
    Corrupt(String),
}

/// Handle on one mailbox's index files.
#[derive(Debug)]
pub struct IndexStore {
    dir: PathBuf,
    log: Option<File>,
    log_ino: u64,
    log_pos: u64,
    generation: u64,
    /// The log on disk is of an older generation and must be recreated
    /// before the next append.
    stale_log: bool,
}

impl IndexStore {
    pub fn new(dir: &Path) -> IndexStore {
        IndexStore {
            dir: dir.to_path_buf(),
            log: None,
            log_ino: 0,
            log_pos: 0,
            generation: 0,
            stale_log: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Takes the mailbox lock (exclusive for changes).
    pub fn lock(&self, exclusive: bool) -> Result<FileLock> {
        fsutil::mkdir_all(&self.dir)?;
        FileLock::acquire(&self.path(LOCK_FILE), exclusive)
    }

    /// Reads snapshot + log. Call with the lock held (shared is enough).
    pub fn load(&mut self) -> Result<LoadOutcome> {
        self.log = None;
        let index_path = self.path(INDEX_FILE);
        let log_path = self.path(LOG_FILE);
        let index_file = match File::open(&index_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(if log_path.exists() {
                    LoadOutcome::Corrupt(format!("{} is missing", index_path.display()))
                } else {
                    LoadOutcome::Missing
                });
            }
            Err(e) => return Err(StorageError::io("open", &index_path, e)),
        };
        let (mut state, generation) = match read_snapshot(&index_file, &index_path)? {
            Ok(loaded) => loaded,
            Err(reason) => return Ok(LoadOutcome::Corrupt(reason)),
        };
        self.generation = generation;
        let mut log = match File::open(&log_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A compaction writes the snapshot first and the fresh log
                // second: a crash in between leaves exactly this, and the
                // snapshot is complete. The next append creates the log.
                self.stale_log = true;
                return Ok(LoadOutcome::Loaded(state));
            }
            Err(e) => return Err(StorageError::io("open", &log_path, e)),
        };
        let mut header = [0u8; LOG_HEADER as usize];
        if log.read_exact(&mut header).is_err() || &header[..8] != LOG_MAGIC {
            return Ok(LoadOutcome::Corrupt(format!("{} has a bad header", log_path.display())));
        }
        let log_generation = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        self.log_ino = log.metadata().map_err(|e| StorageError::io("fstat", &log_path, e))?.ino();
        self.log_pos = LOG_HEADER;
        self.stale_log = log_generation < generation;
        if log_generation > generation {
            return Ok(LoadOutcome::Corrupt(format!(
                "{} is newer (generation {log_generation}) than {} ({generation})",
                log_path.display(),
                index_path.display()
            )));
        }
        self.log = Some(log);
        if !self.stale_log {
            match self.read_new()? {
                Some(records) => records.iter().for_each(|r| state.apply(r)),
                None => return Ok(LoadOutcome::Corrupt("log rotated during load".into())),
            }
        }
        Ok(LoadOutcome::Loaded(state))
    }

    /// Records appended to the log since the last read. `Ok(None)` means the
    /// log was replaced by a compaction and the caller must [`load`] again.
    pub fn read_new(&mut self) -> Result<Option<Vec<Record>>> {
        let log_path = self.path(LOG_FILE);
        let ino = match fs::metadata(&log_path) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("stat", &log_path, e)),
        };
        let Some(log) = self.log.as_mut() else { return Ok(None) };
        if ino != self.log_ino {
            return Ok(None);
        }
        if self.stale_log {
            return Ok(Some(Vec::new()));
        }
        log.seek(SeekFrom::Start(self.log_pos)).map_err(|e| StorageError::io("lseek", &log_path, e))?;
        let mut buf = Vec::new();
        log.read_to_end(&mut buf).map_err(|e| StorageError::io("read", &log_path, e))?;
        let (records, used) = decode_all(&buf).map_err(|reason| StorageError::Corrupted {
            what: "change log",
            path: log_path.clone(),
            reason,
        })?;
        self.log_pos += used as u64;
        Ok(Some(records))
    }

    /// Whether the log has records this handle has not read, or was
    /// replaced: one `stat`.
    pub fn has_unread(&self) -> bool {
        match fs::metadata(self.path(LOG_FILE)) {
            Ok(m) => m.ino() != self.log_ino || m.len() > self.log_pos,
            Err(_) => true,
        }
    }

    /// Every record that can still be decoded from the index and log files,
    /// whatever state they are in (a rebuild salvages tombstones, modseqs
    /// and flag changes from them). Frames carry their own checksums, so a
    /// damaged file yields its records up to the damage.
    pub fn salvage(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for (name, skip) in [(INDEX_FILE, INDEX_HEADER), (LOG_FILE, LOG_HEADER as usize)] {
            let Ok(data) = fs::read(self.path(name)) else { continue };
            let Some(body) = data.get(skip..) else { continue };
            let mut pos = 0;
            while let Ok(Some((record, used))) = Record::decode(&body[pos..]) {
                out.push(record);
                pos += used;
            }
        }
        out
    }

    /// Appends records durably. Call with the exclusive lock held and after
    /// [`read_new`] has caught up (so `log_pos` is the valid end).
    pub fn append(&mut self, records: &[Record]) -> Result<()> {
        self.append_with(records, true)
    }

    /// [`IndexStore::append`], fsyncing only when `sync` (flag-only
    /// changes under `mail_fsync = optimized`, as Dovecot's index fsync
    /// mask: appends and expunges are synced, flag updates are not).
    pub fn append_with(&mut self, records: &[Record], sync: bool) -> Result<()> {
        let mut pending = PendingSyncs::default();
        self.append_deferred(records, sync, &mut pending)?;
        pending.run()
    }

    /// [`IndexStore::append_with`], leaving the flush in `pending` for the
    /// caller to run once it has released the lock. A later writer appends
    /// after our records, and its flush of the same file covers them too.
    pub fn append_deferred(
        &mut self,
        records: &[Record],
        sync: bool,
        pending: &mut PendingSyncs,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.stale_log || self.log.is_none() {
            self.create_log()?;
        }
        let log_path = self.path(LOG_FILE);
        let mut file = OpenOptions::new()
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("open", &log_path, e))?;
        // Drop a torn tail left by a crashed writer.
        file.set_len(self.log_pos).map_err(|e| StorageError::io("ftruncate", &log_path, e))?;
        let mut buf = Vec::new();
        for r in records {
            buf.extend(r.encode());
        }
        file.seek(SeekFrom::Start(self.log_pos)).map_err(|e| StorageError::io("lseek", &log_path, e))?;
        file.write_all(&buf).map_err(|e| StorageError::io("write", &log_path, e))?;
        self.log_pos += buf.len() as u64;
        if sync {
            pending.data(file, &log_path);
        }
        Ok(())
    }

    /// Whether the log has grown enough to be folded into a snapshot.
    pub fn needs_compaction(&self) -> bool {
        self.stale_log || self.log_pos > COMPACT_LOG_SIZE
    }

    /// Writes `state` as a new snapshot and starts an empty log. Call with
    /// the exclusive lock held and `state` fully caught up.
    pub fn compact(&mut self, state: &MailboxState) -> Result<()> {
        fsutil::mkdir_all(&self.dir)?;
        self.generation += 1;
        let mut body = Vec::new();
        for r in state.snapshot() {
            body.extend(r.encode());
        }
        let mut data = Vec::with_capacity(INDEX_HEADER + body.len());
        data.extend_from_slice(INDEX_MAGIC);
        data.extend_from_slice(&self.generation.to_le_bytes());
        data.extend_from_slice(&(body.len() as u64).to_le_bytes());
        data.extend_from_slice(&crc32(&body).to_le_bytes());
        data.extend_from_slice(&body);
        // Snapshot first, then the fresh log, one directory fsync for both:
        // if only the log's rename survives a crash, the log is newer than
        // the snapshot and the next open rebuilds; every other outcome is a
        // consistent old or new state.
        let index_path = self.path(INDEX_FILE);
        let tmp = fsutil::temp_name(&index_path);
        fsutil::write_synced(&tmp, &data)?;
        fs::rename(&tmp, &index_path).map_err(|e| StorageError::io("rename", &index_path, e))?;
        self.write_log(false)?;
        fsutil::fsync_dir(&self.dir)
    }

    fn create_log(&mut self) -> Result<()> {
        self.write_log(true)
    }

    fn write_log(&mut self, sync_dir: bool) -> Result<()> {
        let log_path = self.path(LOG_FILE);
        let mut header = Vec::with_capacity(LOG_HEADER as usize);
        header.extend_from_slice(LOG_MAGIC);
        header.extend_from_slice(&self.generation.to_le_bytes());
        if sync_dir {
            fsutil::write_atomic(&log_path, &header)?;
        } else {
            let tmp = fsutil::temp_name(&log_path);
            fsutil::write_synced(&tmp, &header)?;
            fs::rename(&tmp, &log_path).map_err(|e| StorageError::io("rename", &log_path, e))?;
        }
        let log = File::open(&log_path).map_err(|e| StorageError::io("open", &log_path, e))?;
        self.log_ino = log.metadata().map_err(|e| StorageError::io("fstat", &log_path, e))?.ino();
        self.log = Some(log);
        self.log_pos = LOG_HEADER;
        self.stale_log = false;
        Ok(())
    }
}

/// Parses a snapshot through a memory map. The outer `Result` is an I/O
/// failure, the inner one a corruption reason.
fn read_snapshot(file: &File, path: &Path) -> Result<std::result::Result<(MailboxState, u64), String>> {
    let len = file.metadata().map_err(|e| StorageError::io("fstat", path, e))?.len();
    if (len as usize) < INDEX_HEADER {
        return Ok(Err(format!("{} is truncated ({len} bytes)", path.display())));
    }
    // SAFETY: the index is only ever replaced by rename, never modified in
    // place, so the mapped pages of this inode do not change under us.
    let map = unsafe { Mmap::map(file) }.map_err(|e| StorageError::io("mmap", path, e))?;
    if &map[..8] != INDEX_MAGIC {
        return Ok(Err(format!("{} has a bad header", path.display())));
    }
    let word = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().unwrap_or_default());
    let generation = word(8);
    let body_len = word(16) as usize;
    let crc = u32::from_le_bytes(map[24..28].try_into().unwrap_or_default());
    let Some(body) = map.get(INDEX_HEADER..INDEX_HEADER.saturating_add(body_len)) else {
        return Ok(Err(format!("{} is truncated", path.display())));
    };
    if crc32(body) != crc {
        return Ok(Err(format!("{} has a bad checksum", path.display())));
    }
    let (records, used) = match decode_all(body) {
        Ok(r) => r,
        Err(reason) => return Ok(Err(format!("{}: {reason}", path.display()))),
    };
    if used != body.len() {
        return Ok(Err(format!("{} has trailing garbage", path.display())));
    }
    let mut state = MailboxState::default();
    for r in records {
        apply_snapshot_record(&mut state, r);
    }
    Ok(Ok((state, generation)))
}
