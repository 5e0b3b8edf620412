//! Single-dbox: `mailboxes/<name>/dbox-Mails/u.<uid>`, one file per message
//! in Dovecot 2.3's dbox format ([`file`]). The UID is in the file name and
//! the GUID, received date and virtual size in the file's metadata. Mailbox
//! GUID, UIDVALIDITY and the next UID after expunges are kept in
//! `dovecote-mailbox`, and flags in the `user.dovecote.flags` extended
//! attribute of each file, so a lost index loses nothing.

pub mod file;

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::backend::{virtual_size, Backend, FormatLock, Scan, ScannedMessage, Staged};
use super::error::{Result, StorageError};
use super::fsutil;
use super::index::MailboxState;
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

fn set_flags_xattr(path: &Path, flags: Flags, keywords: &Keywords) {
    let value =
        std::iter::once(flags.0.to_string()).chain(keywords.iter().cloned()).collect::<Vec<_>>().join("\n");
    let (Ok(cpath), Ok(name)) = (CString::new(path.as_os_str().as_bytes()), CString::new(FLAGS_XATTR)) else {
        return;
    };
    // SAFETY: all pointers are valid NUL-terminated strings or a buffer
    // with its length; failure (e.g. no xattr support) only loses the
    // redundant copy, the change log stays authoritative.
    unsafe {
        libc::setxattr(cpath.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0);
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
        set_flags_xattr(&tmp_path, flags, keywords);
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

    fn set_flags(&self, record: &MessageRecord, flags: Flags, keywords: &Keywords) -> Result<Option<String>> {
        set_flags_xattr(&self.path_of(record), flags, keywords);
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
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("readdir", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(uid) = name.strip_prefix("u.").and_then(|u| u.parse::<u32>().ok()) else {
                // Temp files of crashed saves; a live save's file is young.
                let stale =
                    entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if name.starts_with(".temp.") && stale.is_some_and(|age| age.as_secs() > 36 * 3600) {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            };
            let path = entry.path();
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("read", &path, e)),
            };
            let parsed = match file::parse(&data) {
                Ok(p) => p,
                Err(reason) => {
                    crate::storage::warn(&format!(
                        "sdbox: skipping broken file {}: {reason}",
                        path.display()
                    ));
                    continue;
                }
            };
            let meta = entry.metadata().map_err(|e| StorageError::io("stat", &path, e))?;
            let body = &data[parsed.body_offset..parsed.body_offset + parsed.body_len];
            scan.messages.push(ScannedMessage {
                uid: Some(uid),
                guid: parsed.metadata.guid.clone().unwrap_or_else(fsutil::new_guid),
                location: name,
                flags: get_flags_xattr(&path),
                received: parsed.metadata.received.unwrap_or(meta.mtime()),
                saved: parsed.metadata.save_time.unwrap_or(meta.mtime()),
                physical_size: parsed.metadata.physical_size.unwrap_or(parsed.body_len as u64),
                virtual_size: parsed.metadata.virtual_size.unwrap_or_else(|| virtual_size(body)),
            });
        }
        Ok(scan)
    }

    fn commit(&self, state: &MailboxState, _appended: &[u32], rewrite: bool) -> Result<()> {
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

    fn sync_dirs(&self) -> Result<()> {
        if self.fsync {
            fsutil::fsync_dir(&self.dir)?;
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
}
