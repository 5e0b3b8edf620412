//! The in-memory state of one mailbox, built by applying records. Pure: no
//! I/O, so replaying a log and checking a model are the same code.

use std::collections::BTreeMap;

use super::record::Record;
use crate::storage::types::{Changes, MailboxStatus, MessageRecord, Tombstone};

/// A mailbox as the index and change log describe it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxState {
    /// Mailbox GUID, 32 hex digits.
    pub guid: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub messages: BTreeMap<u32, MessageRecord>,
    pub tombstones: Vec<Tombstone>,
    /// The format's stamp of how the mail files looked when last synced.
    pub stamp: String,
    /// Messages with this UID or higher are `\Recent` for the next session
    /// that selects the mailbox (Dovecot's `first_recent_uid`).
    pub first_recent_uid: u32,
}

impl MailboxState {
    /// Applies one record. Records are idempotent where that is cheap
    /// (re-appending a known UID replaces it), so replay after a partial
    /// compaction cannot duplicate messages.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Header { guid, uid_validity } => {
                self.guid = guid.clone();
                self.uid_validity = *uid_validity;
                self.uid_next = self.uid_next.max(1);
            }
            Record::Counters { uid_next, highest_modseq } => {
                self.uid_next = self.uid_next.max(*uid_next);
                self.highest_modseq = self.highest_modseq.max(*highest_modseq);
            }
            Record::Append(m) => {
                self.uid_next = self.uid_next.max(m.uid.saturating_add(1));
                self.highest_modseq = self.highest_modseq.max(m.modseq);
                self.messages.insert(m.uid, m.clone());
            }
            Record::Flags { uid, modseq, flags, keywords } => {
                self.highest_modseq = self.highest_modseq.max(*modseq);
                if let Some(m) = self.messages.get_mut(uid) {
                    m.flags = *flags;
                    m.keywords = keywords.clone();
                    m.modseq = *modseq;
                }
            }
            Record::Expunge(t) => {
                self.highest_modseq = self.highest_modseq.max(t.modseq);
                self.uid_next = self.uid_next.max(t.uid.saturating_add(1));
                if self.messages.remove(&t.uid).is_some() {
                    self.tombstones.push(t.clone());
                }
            }
            Record::Location { uid, location } => {
                if let Some(m) = self.messages.get_mut(uid) {
                    m.location = location.clone();
                }
            }
            Record::Stamp(s) => self.stamp = s.clone(),
            Record::FirstRecent(uid) => self.first_recent_uid = self.first_recent_uid.max(*uid),
        }
    }

    /// The records that recreate this state (an index snapshot).
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.messages.len() + self.tombstones.len() + 3);
        out.push(Record::Header { guid: self.guid.clone(), uid_validity: self.uid_validity });
        out.push(Record::Counters { uid_next: self.uid_next, highest_modseq: self.highest_modseq });
        out.extend(self.messages.values().cloned().map(Record::Append));
        for t in &self.tombstones {
            // A tombstone replays as an expunge of a message that is not
            // there; keep it by appending and expunging.
            out.push(Record::Expunge(t.clone()));
        }
        out.push(Record::Stamp(self.stamp.clone()));
        out.push(Record::FirstRecent(self.first_recent_uid));
        out
    }

    /// STATUS values.
    pub fn status(&self) -> MailboxStatus {
        MailboxStatus {
            messages: self.messages.len() as u32,
            recent: self.messages.range(self.first_recent_uid.max(1)..).count() as u32,
            uid_next: self.uid_next,
            uid_validity: self.uid_validity,
            unseen: self
                .messages
                .values()
                .filter(|m| !m.flags.contains(crate::storage::types::Flags::SEEN))
                .count() as u32,
            highest_modseq: self.highest_modseq,
            size: self.messages.values().map(|m| m.virtual_size).sum(),
            guid: self.guid.clone(),
        }
    }

    /// UIDs that are `\Recent` for the next session to claim them.
    pub fn unclaimed_recent(&self) -> impl Iterator<Item = u32> + '_ {
        self.messages.range(self.first_recent_uid.max(1)..).map(|(uid, _)| *uid)
    }

    /// Everything that changed after `modseq`.
    pub fn changes_since(&self, modseq: u64) -> Changes {
        let mut changes = Changes { highest_modseq: self.highest_modseq, ..Changes::default() };
        for m in self.messages.values() {
            if m.saved_modseq > modseq {
                changes.new.push((m.uid, m.guid.clone()));
            } else if m.modseq > modseq {
                changes.flags.push(m.clone());
            }
        }
        changes.expunged = self.tombstones.iter().filter(|t| t.modseq > modseq).cloned().collect();
        changes
    }
}

/// Applies the tombstone-preserving semantics of a snapshot: an `Expunge` of
/// an unknown UID still records the tombstone.
pub fn apply_snapshot_record(state: &mut MailboxState, record: Record) {
    match record {
        Record::Expunge(t) if !state.messages.contains_key(&t.uid) => {
            state.highest_modseq = state.highest_modseq.max(t.modseq);
            state.tombstones.push(t);
        }
        // The bulk of a snapshot: moved in, not cloned.
        Record::Append(m) => {
            state.uid_next = state.uid_next.max(m.uid.saturating_add(1));
            state.highest_modseq = state.highest_modseq.max(m.modseq);
            state.messages.insert(m.uid, m);
        }
        other => state.apply(&other),
    }
}
