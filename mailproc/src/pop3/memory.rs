//! An in-memory [`Maildrop`] for unit tests and the fuzz target: messages
//! as byte strings, with the changes a session committed recorded.

use super::maildrop::{Changes, DropMessage, Maildrop, ReadError};
use crate::storage::backend::virtual_size;

#[derive(Debug, Clone, Default)]
pub struct MemoryDrop {
    pub uid_validity: u32,
    /// (uid, data, seen, keywords)
    pub messages: Vec<(u32, Vec<u8>, bool, Vec<String>)>,
    /// Every `apply` call, in order.
    pub applied: Vec<Changes>,
    pub unseen: Vec<u32>,
}

impl MemoryDrop {
    /// Messages with UIDs 1.. and no flags.
    pub fn with(messages: &[&[u8]]) -> MemoryDrop {
        MemoryDrop {
            uid_validity: 1_700_000_000,
            messages: messages
                .iter()
                .enumerate()
                .map(|(i, m)| (i as u32 + 1, m.to_vec(), false, Vec::new()))
                .collect(),
            ..MemoryDrop::default()
        }
    }
}

impl Maildrop for MemoryDrop {
    fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    fn snapshot(&self, hidden_keyword: Option<&str>) -> Vec<DropMessage> {
        self.messages
            .iter()
            .filter(|(_, _, _, kw)| hidden_keyword.is_none_or(|k| !kw.iter().any(|x| x == k)))
            .map(|(uid, data, seen, _)| DropMessage {
                uid: *uid,
                size: virtual_size(data),
                seen: *seen,
                guid: format!("guid{uid}"),
                filename: format!("file{uid}"),
            })
            .collect()
    }

    fn read(&mut self, uid: u32) -> Result<Vec<u8>, ReadError> {
        self.messages.iter().find(|m| m.0 == uid).map(|m| m.1.clone()).ok_or(ReadError::Expunged)
    }

    fn apply(&mut self, changes: &Changes) -> Result<(), String> {
        self.applied.push(changes.clone());
        self.messages.retain(|m| !changes.expunge.contains(&m.0));
        for m in &mut self.messages {
            if changes.seen.contains(&m.0) {
                m.2 = true;
            }
            if let Some((kw, uids)) = &changes.flag_deleted {
                if uids.contains(&m.0) {
                    m.3.push(kw.clone());
                }
            }
        }
        Ok(())
    }

    fn clear_seen(&mut self, uids: &[u32]) -> Result<(), String> {
        self.unseen.extend_from_slice(uids);
        Ok(())
    }
}
