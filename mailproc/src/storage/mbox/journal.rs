//! The redo journal that makes mbox rewrites crash safe while keeping the
//! spool's inode (see the module doc of [`super`]).
//!
//! Layout: `DVCMBXJ1`, the spool's inode and final length (u64 LE), then
//! extents (`offset u64, length u64, bytes`), then `DVCMBXJE`. The journal
//! is written under a temp name, fsynced and renamed, so a journal at its
//! real name is always complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::storage::error::{Result, StorageError};
use crate::storage::fsutil;

pub const JOURNAL_FILE: &str = "dovecote.mbox-journal";
const MAGIC: &[u8; 8] = b"DVCMBXJ1";
const END: &[u8; 8] = b"DVCMBXJE";

/// Where new bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Bytes(Vec<u8>),
    /// A range of the current spool.
    Copy {
        start: u64,
        end: u64,
    },
}

/// New content for `[offset, offset + len(pieces))`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extent {
    pub offset: u64,
    pub pieces: Vec<Piece>,
}

impl Extent {
    pub fn len(&self) -> u64 {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len() as u64,
                Piece::Copy { start, end } => end - start,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes the journal durably; after this returns the rewrite will happen
/// even if we crash now.
pub fn write(
    dir: &Path,
    spool: &File,
    spool_path: &Path,
    final_len: u64,
    extents: &[Extent],
    durable: bool,
) -> Result<PathBuf> {
    fsutil::mkdir_all(dir)?;
    let path = dir.join(JOURNAL_FILE);
    let tmp = fsutil::temp_name(&path);
    let ino = spool.metadata().map_err(|e| StorageError::io("fstat", spool_path, e))?.ino();
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| StorageError::io("open", &tmp, e))?;
    let werr = |e| StorageError::io("write", &tmp, e);
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    out.write_all(MAGIC).map_err(werr)?;
    out.write_all(&ino.to_le_bytes()).map_err(werr)?;
    out.write_all(&final_len.to_le_bytes()).map_err(werr)?;
    let mut buf = vec![0u8; 1 << 20];
    for extent in extents {
        out.write_all(&extent.offset.to_le_bytes()).map_err(werr)?;
        out.write_all(&extent.len().to_le_bytes()).map_err(werr)?;
        for piece in &extent.pieces {
            match piece {
                Piece::Bytes(b) => out.write_all(b).map_err(werr)?,
                Piece::Copy { start, end } => {
                    let mut pos = *start;
                    while pos < *end {
                        let n = ((end - pos) as usize).min(buf.len());
                        spool
                            .read_exact_at(&mut buf[..n], pos)
                            .map_err(|e| StorageError::io("read", spool_path, e))?;
                        out.write_all(&buf[..n]).map_err(werr)?;
                        pos += n as u64;
                    }
                }
            }
        }
    }
    out.write_all(END).map_err(werr)?;
    out.flush().map_err(werr)?;
    drop(out);
    if durable {
        file.sync_all().map_err(|e| StorageError::io("fsync", &tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &path, e))?;
    if durable {
        fsutil::fsync_dir(dir)?;
    }
    Ok(path)
}

/// Applies a journal to the spool, fsyncs it and removes the journal.
/// Returns false (and removes it) when the journal is for another file.
pub fn apply(path: &Path, spool: &File, spool_path: &Path) -> Result<bool> {
    let mut data = match File::open(path) {
        Ok(f) => io::BufReader::with_capacity(1 << 20, f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StorageError::io("open", path, e)),
    };
    let rerr = |e| StorageError::io("read", path, e);
    let corrupt = |reason: &str| StorageError::Corrupted {
        what: "mbox journal",
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut head = [0u8; 24];
    data.read_exact(&mut head).map_err(rerr)?;
    if &head[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let (ino, final_len) = (u64_at(&head[8..16]), u64_at(&head[16..24]));
    let spool_ino = spool.metadata().map_err(|e| StorageError::io("fstat", spool_path, e))?.ino();
    if ino != spool_ino {
        crate::storage::warn(&format!(
            "mbox {}: dropping rewrite journal {} of a replaced file",
            spool_path.display(),
            path.display()
        ));
        remove(path)?;
        return Ok(false);
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let mut word = [0u8; 8];
        data.read_exact(&mut word).map_err(rerr)?;
        if &word == END {
            break;
        }
        let offset = u64_at(&word);
        data.read_exact(&mut word).map_err(rerr)?;
        let mut left = u64_at(&word);
        let mut pos = offset;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            data.read_exact(&mut buf[..n]).map_err(rerr)?;
            spool.write_all_at(&buf[..n], pos).map_err(|e| StorageError::io("pwrite", spool_path, e))?;
            pos += n as u64;
            left -= n as u64;
        }
    }
    spool.set_len(final_len).map_err(|e| StorageError::io("ftruncate", spool_path, e))?;
    spool.sync_all().map_err(|e| StorageError::io("fsync", spool_path, e))?;
    remove(path)?;
    Ok(true)
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("unlink", path, e)),
    }
    if let Some(dir) = path.parent() {
        fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_after_a_torn_apply_gives_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let spool_path = dir.path().join("spool");
        let old = b"AAAA-message-one\nBBBB-message-two\nCCCC-message-three\n";
        std::fs::write(&spool_path, old).unwrap();
        let spool = OpenOptions::new().read(true).write(true).open(&spool_path).unwrap();
        // Expunge "message-two": the tail from its offset is rewritten.
        let extents = [
            Extent { offset: 0, pieces: vec![Piece::Bytes(b"aaaa".to_vec())] },
            Extent { offset: 17, pieces: vec![Piece::Copy { start: 34, end: old.len() as u64 }] },
        ];
        let final_len = 17 + (old.len() as u64 - 34);
        let journal = write(dir.path(), &spool, &spool_path, final_len, &extents, true).unwrap();
        // Crash in the middle of applying: half of the tail written.
        spool.write_all_at(b"CCCC-mes", 17).unwrap();
        assert!(apply(&journal, &spool, &spool_path).unwrap());
        assert_eq!(std::fs::read(&spool_path).unwrap(), b"aaaa-message-one\nCCCC-message-three\n");
        assert!(!journal.exists());
        // A second replay (crash after apply, before unlink) is harmless.
        assert!(!apply(&journal, &spool, &spool_path).unwrap());
    }
}
