//! `dovecote.cache`: the per-mailbox cache of parsed message fields
//! ([`CachedFields`]: envelope, body structure, dates, sizes), so repeated
//! FETCHes of a message — in this session or a later one — don't parse it
//! again.
//!
//! Append-only frames `len u32, crc32 u32, uidvalidity u32, uid u32,
//! payload`. The cache is derived data: it is not fsynced, a torn or
//! corrupt frame ends loading (the rest is recomputed on demand), and
//! entries of another UIDVALIDITY are ignored.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::crc::crc32;
use crate::storage::mime::{self, CachedFields};

pub const CACHE_FILE: &str = "dovecote.cache";

/// The field cache of one mailbox.
#[derive(Debug)]
pub struct FieldCache {
    path: PathBuf,
    entries: Option<HashMap<u32, Arc<CachedFields>>>,
    uid_validity: u32,
    /// fsync each append (`mail_fsync = always`).
    sync: bool,
}

impl FieldCache {
    pub fn new(dir: &Path) -> FieldCache {
        FieldCache { path: dir.join(CACHE_FILE), entries: None, uid_validity: 0, sync: false }
    }

    /// Whether appends are fsynced (`mail_fsync = always`).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// The cached fields of `uid`, loading the file on first use.
    pub fn get(&mut self, uid_validity: u32, uid: u32) -> Option<Arc<CachedFields>> {
        if self.entries.is_none() || self.uid_validity != uid_validity {
            self.load(uid_validity);
        }
        self.entries.as_ref()?.get(&uid).cloned()
    }

    /// Remembers and appends `fields` (best effort: a write error only
    /// costs a parse later).
    pub fn put(&mut self, uid_validity: u32, uid: u32, fields: CachedFields) -> Arc<CachedFields> {
        let payload = mime::encode(&fields);
        let mut body = Vec::with_capacity(payload.len() + 8);
        body.extend_from_slice(&uid_validity.to_le_bytes());
        body.extend_from_slice(&uid.to_le_bytes());
        body.extend_from_slice(&payload);
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        let written =
            OpenOptions::new().append(true).create(true).mode(0o600).open(&self.path).and_then(|mut f| {
                f.write_all(&frame)?;
                if self.sync {
                    f.sync_data()?;
                }
                Ok(())
            });
        if let Err(e) = written {
            crate::storage::warn(&format!("write({}) failed: {e}", self.path.display()));
        }
        let fields = Arc::new(fields);
        if self.uid_validity == uid_validity {
            if let Some(entries) = self.entries.as_mut() {
                entries.insert(uid, fields.clone());
            }
        }
        fields
    }

    fn load(&mut self, uid_validity: u32) {
        let mut entries = HashMap::new();
        let data = fs::read(&self.path).unwrap_or_default();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let (len, crc) = (word(pos) as usize, word(pos + 4));
            let Some(body) = data.get(pos + 8..pos + 8 + len) else { break };
            if len < 8 || crc32(body) != crc {
                break;
            }
            let uv = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            let uid = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            if uv == uid_validity {
                if let Some(fields) = mime::decode(&body[8..]) {
                    entries.insert(uid, Arc::new(fields));
                }
            }
            pos += 8 + len;
        }
        self.entries = Some(entries);
        self.uid_validity = uid_validity;
    }
}
