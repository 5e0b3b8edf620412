//! Single-dbox: `mailboxes/<name>/dbox-Mails/u.<uid>`, one file per message
//! in Dovecot 2.3's dbox format ([`file`]). The UID is in the file name and
//! the GUID, received date and virtual size in the file's metadata. Mailbox
//! GUID, UIDVALIDITY and the next UID after expunges are kept in
//! `dovecote-mailbox`, and flags in `dovecote-flags` ([`flagsfile`]), so a
//! lost index loses nothing.
//!
//! Speed: as in Dovecot, a flag change only touches the index (the change
//! log); the flags file is written lazily ([`Backend::flush`]). A rebuild
//! reads the header and metadata of each file (two small `pread`s, not the
//! message), in inode order and from several threads so a cold disk serves
//! several requests at once. Copies hard-link the source file: the file
//! holds only the message, its GUID and dates, all shared by a copy.
//! Files written by older versions kept flags in a `user.dovecote.flags`
//! extended attribute; a rebuild still reads it when there is no flags file.

pub mod file;
pub mod flagsfile;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::backend::{virtual_size, Backend, FormatLock, Scan, ScannedMessage, Staged};
use super::error::{Result, StorageError};
use super::fsutil::{self, PendingSyncs};
use super::index::MailboxState;
use super::parallel;
use super::types::{Flags, Keywords, MessageRecord};

pub const IDENTITY: &str = "dovecote-mailbox";
const FLAGS_XATTR: &str = "user.dovecote.flags";

/// One sdbox mailbox.
#[derive(Debug)]
pub struct SdboxBackend {
    /// `.../mailboxes/<name>`.
    pub mailbox_dir: PathBuf,
    /// `.../mailboxes/<name>/dbox-Mails`.
    pub dir: PathBuf,
    pub fsync: bool,
}

impl SdboxBackend {
    fn identity_path(&self) -> PathBuf {
        self.dir.join(IDENTITY)
    }

    fn write_identity(&self, guid: &str, uid_validity: u32, uid_next: u32) -> Result<()> {
        fsutil::write_atomic(&self.identity_path(), format!("{guid} {uid_validity} {uid_next}\n").as_bytes())
    }

    fn read_identity(&self) -> Result<Option<(String, u32, u32)>> {
        let Some(data) = fsutil::read_optional(&self.identity_path())? else { return Ok(None) };
        let text = String::from_utf8_lossy(&data);
        let mut it = text.split_whitespace();
        let guid = it.next().map(str::to_string);
        let uv = it.next().and_then(|v| v.parse().ok());
        let next = it.next().and_then(|v| v.parse().ok()).unwrap_or(1);
        Ok(guid.zip(uv).map(|(g, u)| (g, u, next)))
    }
}

fn get_flags_xattr(path: &Path) -> Option<(Flags, Keywords)> {
    let cpath = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(FLAGS_XATTR).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is writable for buf.len() bytes.
    let n = unsafe { libc::getxattr(cpath.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split('\n');
    let flags = Flags(lines.next()?.parse::<u8>().ok()? & Flags::ALL.0);
    Some((flags, lines.filter(|l| !l.is_empty()).map(str::to_string).collect()))
}

impl Backend for SdboxBackend {
    fn format(&self) -> crate::storage::location::Format {
        crate::storage::location::Format::Sdbox
    }

    fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn create(&self, guid: &str, uid_validity: u32) -> Result<()> {
        fsutil::mkdir_all(&self.dir)?;
        self.write_identity(guid, uid_validity, 1)?;
        if let Some(parent) = self.mailbox_dir.parent() {
            fsutil::fsync_dir(parent)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<FormatLock> {
        Ok(None)
    }

    fn stage(
        &self,
        data: &[u8],
        received: i64,
        flags: Flags,
        keywords: &Keywords,
        guid: Option<&str>,
    ) -> Result<Staged> {
        let guid = guid.filter(|g| g.len() == 32 && g.bytes().all(|b| b.is_ascii_hexdigit()));
        let guid = guid.map(str::to_string).unwrap_or_else(fsutil::new_guid);
        let vsize = virtual_size(data);
        let now = fsutil::now();
        let bytes = file::build(data, now, received, vsize, &guid);
        let tmp_path = self.dir.join(format!(".temp.{}.{}", std::process::id(), fsutil::unique_counter()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(|e| StorageError::io("open", &tmp_path, e))?;
        f.write_all(&bytes).map_err(|e| StorageError::io("write", &tmp_path, e))?;
        if self.fsync {
            f.sync_all().map_err(|e| StorageError::io("fsync", &tmp_path, e))?;
        }
        Ok(Staged {
            tmp_path,
            guid,
            physical_size: data.len() as u64,
            virtual_size: vsize,
            received,
            flags,
            keywords: keywords.clone(),
            inline: None,
        })
    }

    fn publish(&self, staged: Staged, uid: u32) -> Result<MessageRecord> {
        let location = format!("u.{uid}");
        let dest = self.dir.join(&location);
        // link() refuses to replace: a UID is never given to two files.
        fs::hard_link(&staged.tmp_path, &dest).map_err(|e| StorageError::io("link", &dest, e))?;
        let _ = fs::remove_file(&staged.tmp_path);
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
        let data = fs::read(&path).map_err(|e| StorageError::io("open", &path, e))?;
        let parsed = file::parse(&data).map_err(|reason| StorageError::Corrupted {
            what: "dbox file",
            path: path.clone(),
            reason,
        })?;
        Ok(data[parsed.body_offset..parsed.body_offset + parsed.body_len].to_vec())
    }

    fn path_of(&self, record: &MessageRecord) -> PathBuf {
        self.dir.join(&record.location)
    }

    fn set_flags(
        &self,
        _record: &MessageRecord,
        _flags: Flags,
        _keywords: &Keywords,
    ) -> Result<Option<String>> {
        // The change log holds the flags; dovecote-flags follows in flush().
        Ok(None)
    }

    fn remove(&self, record: &MessageRecord) -> Result<()> {
        let path = self.path_of(record);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("unlink", path, e)),
        }
    }

    fn stamp(&self) -> String {
        let (mtime, _) = fsutil::stat_stamp(&self.dir);
        mtime.to_string()
    }

    fn needs_scan(&self, stamp: &str) -> bool {
        // Only our own saves create u.<uid> files; a mismatch means a save
        // crashed between publishing the file and logging it.
        self.stamp() != stamp
    }

    fn scan(&self) -> Result<Scan> {
        self.scan_with(None)
    }

    fn scan_known(&self, index: &MailboxState) -> Result<Scan> {
        self.scan_with(Some(index))
    }

    fn commit(
        &self,
        state: &MailboxState,
        _appended: &[u32],
        rewrite: bool,
        _pending: &mut PendingSyncs,
    ) -> Result<()> {
        // After expunging the highest UIDs, remember the next UID so that a
        // rebuild from the files cannot hand them out again.
        if rewrite {
            let max = state.messages.keys().next_back().copied().unwrap_or(0);
            if state.uid_next > max + 1 {
                self.write_identity(&state.guid, state.uid_validity, state.uid_next)?;
            }
        }
        Ok(())
    }

    fn sync_dirs(&self, pending: &mut PendingSyncs) -> Result<()> {
        if self.fsync {
            pending.dir(&self.dir)?;
        }
        Ok(())
    }

    fn delete(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("rmdir", &self.dir, e)),
        }
    }

    fn stage_link(&self, source_path: &Path, source: &MessageRecord) -> Result<Option<Staged>> {
        let tmp_path = self.dir.join(format!(".temp.{}.{}", std::process::id(), fsutil::unique_counter()));
        match fs::hard_link(source_path, &tmp_path) {
            Ok(()) => {}
            // Another file system, or links not allowed: copy the bytes.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EPERM | libc::EMLINK)) => {
                return Ok(None)
            }
            Err(e) => return Err(StorageError::io("link", &tmp_path, e)),
        }
        Ok(Some(Staged {
            tmp_path,
            guid: source.guid.clone(),
            physical_size: source.physical_size,
            virtual_size: source.virtual_size,
            received: source.received,
            flags: source.flags,
            keywords: source.keywords.clone(),
            inline: None,
        }))
    }

    fn flush(&self, state: &MailboxState) -> Result<()> {
        let path = self.dir.join(flagsfile::FLAGS_FILE);
        let text = flagsfile::format(state.messages.values());
        if fsutil::read_optional(&path)?.is_some_and(|current| current == text.as_bytes()) {
            // Reading is much cheaper than two fsyncs.
            return Ok(());
        }
        // Not fsynced: the change log (fsynced) is what makes a flag change
        // durable; this copy only needs to be whole, which the rename gives.
        // mail_fsync = optimized in Dovecot likewise skips fsyncs for flags.
        let tmp = fsutil::temp_name(&path);
        fs::write(&tmp, text).map_err(|e| StorageError::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &path, e))
    }

    fn flags_lag_log(&self) -> bool {
        true
    }

    fn control_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }
}

/// Threads reading files during a rebuild: enough to keep a disk queue
/// busy, few enough not to matter on a small machine.
const SCAN_THREADS: usize = 8;

impl SdboxBackend {
    /// Lists the `u.<uid>` files; with `index`, files it already has under
    /// the same name are taken from it instead of being read (every save
    /// changes the directory, and reading every message on each one made a
    /// save O(mailbox size)).
    fn scan_with(&self, index: Option<&MailboxState>) -> Result<Scan> {
        let mut scan = Scan::default();
        if let Some((guid, uv, next)) = self.read_identity()? {
            scan.guid = Some(guid);
            scan.uid_validity = Some(uv);
            scan.uid_next = Some(next);
        }
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(scan),
            Err(e) => return Err(StorageError::io("opendir", &self.dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("readdir", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.strip_prefix("u.").and_then(|u| u.parse::<u32>().ok()) {
                // A file the index has under this name: nothing to read
                // (sdbox flags lag the log, so the files' don't count).
                Some(uid) if index.and_then(|i| i.messages.get(&uid)).is_some_and(|r| r.location == name) => {
                    if let Some(r) = index.and_then(|i| i.messages.get(&uid)) {
                        scan.messages.push(ScannedMessage {
                            uid: Some(uid),
                            guid: r.guid.clone(),
                            location: name,
                            flags: None,
                            flags_modseq: 0,
                            received: r.received,
                            saved: r.saved,
                            physical_size: r.physical_size,
                            virtual_size: r.virtual_size,
                        });
                    }
                }
                Some(uid) => files.push((entry.ino(), uid, name)),
                None => {
                    // Temp files of crashed saves; a live save's file is young.
                    let stale =
                        entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                    if name.starts_with(".temp.") && stale.is_some_and(|age| age.as_secs() > 36 * 3600) {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        // Inode order is roughly disk order: a cold scan seeks less.
        files.sort_unstable();
        let flags_file = fsutil::read_optional(&self.dir.join(flagsfile::FLAGS_FILE))?
            .and_then(|d| flagsfile::parse(&String::from_utf8_lossy(&d)));
        let found = parallel::filter_map(&files, SCAN_THREADS, 256, |(_, uid, name)| {
            self.scan_file(*uid, name, flags_file.as_ref())
        })?;
        scan.messages.extend(found);
        scan.messages.sort_by_key(|m| m.uid);
        Ok(scan)
    }

    /// Reads what a rebuild needs from one `u.<uid>`: the headers and the
    /// metadata block, not the message. `None` for a vanished or broken file.
    fn scan_file(
        &self,
        uid: u32,
        name: &str,
        flags_file: Option<&std::collections::BTreeMap<u32, flagsfile::Entry>>,
    ) -> Result<Option<ScannedMessage>> {
        let path = self.dir.join(name);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("open", &path, e)),
        };
        let meta = f.metadata().map_err(|e| StorageError::io("fstat", &path, e))?;
        let broken = |reason: String| {
            crate::storage::warn(&format!("sdbox: skipping broken file {}: {reason}", path.display()));
            Ok(None)
        };
        // One read covers a whole small message (header, body, metadata);
        // for a larger one, a second read fetches just the metadata.
        let mut head = vec![0u8; (meta.len() as usize).clamp(file::HEADER_PROBE, WHOLE_FILE_PROBE)];
        let n = read_at_most(&f, &mut head, 0).map_err(|e| StorageError::io("pread", &path, e))?;
        head.truncate(n);
        let (body_offset, body_len) = match file::parse_header(&head) {
            Ok(h) => h,
            Err(reason) => return broken(reason),
        };
        let meta_start = body_offset + body_len;
        let tail = match head.get(meta_start..) {
            Some(tail) if meta_start as u64 + tail.len() as u64 == meta.len() => tail.to_vec(),
            _ => {
                let tail_len = (meta.len().saturating_sub(meta_start as u64) as usize).min(METADATA_PROBE);
                let mut tail = vec![0u8; tail_len];
                let n = read_at_most(&f, &mut tail, meta_start as u64)
                    .map_err(|e| StorageError::io("pread", &path, e))?;
                tail.truncate(n);
                tail
            }
        };
        let metadata = match file::parse_metadata(&tail) {
            Ok(m) => m,
            Err(reason) => return broken(reason),
        };
        let virtual_size = match metadata.virtual_size {
            Some(v) => v,
            None => {
                let mut body = vec![0u8; body_len];
                let n = read_at_most(&f, &mut body, body_offset as u64)
                    .map_err(|e| StorageError::io("pread", &path, e))?;
                virtual_size(&body[..n])
            }
        };
        let (flags, flags_modseq) = match flags_file {
            Some(known) => match known.get(&uid) {
                Some((f, k, modseq)) => (Some((*f, k.clone())), *modseq),
                None => (Some(Default::default()), 0),
            },
            None => (get_flags_xattr(&path), 0),
        };
        Ok(Some(ScannedMessage {
            uid: Some(uid),
            guid: metadata.guid.clone().unwrap_or_else(fsutil::new_guid),
            location: name.to_string(),
            flags,
            flags_modseq,
            received: metadata.received.unwrap_or(meta.mtime()),
            saved: metadata.save_time.unwrap_or(meta.mtime()),
            physical_size: metadata.physical_size.unwrap_or(body_len as u64),
            virtual_size,
        }))
    }
}

/// Files up to this size are read in one go during a scan.
const WHOLE_FILE_PROBE: usize = 32 * 1024;

/// The metadata block is a few short lines; more is not ours.
const METADATA_PROBE: usize = 1024;

/// Reads up to `buf.len()` bytes at `offset`, fewer at the end of the file.
fn read_at_most(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
