//! What the POP3 session needs from the storage, as a trait: the snapshot
//! of INBOX taken at login, reading one message, and the changes made at
//! QUIT. [`MailboxDrop`] implements it over a real [`Mailbox`]; the unit
//! tests and the fuzz target use an in-memory one.

use crate::storage::{FlagOp, FlagUpdate, Flags, Keywords, Mailbox, StorageError};

/// One message of the login-time snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropMessage {
    pub uid: u32,
    /// Size with CRLF line endings (what LIST and RETR report).
    pub size: u64,
    pub seen: bool,
    pub guid: String,
    /// The storage's file name (Maildir base name, `u.N` for sdbox).
    pub filename: String,
}

/// Reading a message failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Gone since the snapshot (another session expunged it).
    Expunged,
    Other(String),
}

/// The changes of a session, applied at QUIT (or the `\Seen` part alone
/// when the client just disconnects).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub expunge: Vec<u32>,
    /// Add this keyword to these UIDs (`pop3_delete_type = flag`).
    pub flag_deleted: Option<(String, Vec<u32>)>,
    pub seen: Vec<u32>,
}

pub trait Maildrop {
    /// UIDVALIDITY of INBOX.
    fn uid_validity(&self) -> u32;
    /// The messages visible to this session, in UID order.
    fn snapshot(&self, hidden_keyword: Option<&str>) -> Vec<DropMessage>;
    /// The whole message as stored.
    fn read(&mut self, uid: u32) -> Result<Vec<u8>, ReadError>;
    /// Applies the session's changes durably.
    fn apply(&mut self, changes: &Changes) -> Result<(), String>;
    /// Removes `\Seen` from these messages now (RSET with `pop3_enable_last`).
    fn clear_seen(&mut self, uids: &[u32]) -> Result<(), String>;
}

/// The storage's INBOX as a maildrop.
pub struct MailboxDrop {
    pub mailbox: Mailbox,
}

fn filename_of(location: &str) -> String {
    let base = location.rsplit('/').next().unwrap_or(location);
    base.split(':').next().unwrap_or(base).to_string()
}

fn add(flags: Flags, keywords: Keywords) -> FlagUpdate {
    FlagUpdate { op: FlagOp::Add, flags, keywords, unchanged_since: None }
}

impl Maildrop for MailboxDrop {
    fn uid_validity(&self) -> u32 {
        self.mailbox.status().uid_validity
    }

    fn snapshot(&self, hidden_keyword: Option<&str>) -> Vec<DropMessage> {
        self.mailbox
            .messages()
            .filter(|m| hidden_keyword.is_none_or(|k| !m.keywords.contains(k)))
            .map(|m| DropMessage {
                uid: m.uid,
                size: m.virtual_size,
                seen: m.flags.contains(Flags::SEEN),
                guid: m.guid.clone(),
                filename: filename_of(&m.location),
            })
            .collect()
    }

    fn read(&mut self, uid: u32) -> Result<Vec<u8>, ReadError> {
        match self.mailbox.read_message(uid) {
            Ok(data) => Ok(data),
            Err(StorageError::NoSuchMessage { .. }) => Err(ReadError::Expunged),
            Err(e) if e.is_io_kind(std::io::ErrorKind::NotFound) => Err(ReadError::Expunged),
            Err(e) => Err(ReadError::Other(e.to_string())),
        }
    }

    fn apply(&mut self, changes: &Changes) -> Result<(), String> {
        if !changes.seen.is_empty() {
            self.mailbox
                .store_flags(&changes.seen, &add(Flags::SEEN, Keywords::new()))
                .map_err(|e| e.to_string())?;
        }
        if let Some((keyword, uids)) = &changes.flag_deleted {
            let keywords: Keywords = [keyword.clone()].into_iter().collect();
            self.mailbox.store_flags(uids, &add(Flags::empty(), keywords)).map_err(|e| e.to_string())?;
        }
        if !changes.expunge.is_empty() {
            self.mailbox.expunge(&changes.expunge).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn clear_seen(&mut self, uids: &[u32]) -> Result<(), String> {
        let update = FlagUpdate {
            op: FlagOp::Remove,
            flags: Flags::SEEN,
            keywords: Keywords::new(),
            unchanged_since: None,
        };
        self.mailbox.store_flags(uids, &update).map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filename_is_the_maildir_base_name() {
        assert_eq!(super::filename_of("cur/1000.M1.host:2,S"), "1000.M1.host");
        assert_eq!(super::filename_of("u.12"), "u.12");
    }
}

#[cfg(test)]
mod storage_tests {
    use super::*;
    use crate::storage::{MailLocation, NewMessage, User};
    use dovecote_config::var_expand::MailVars;

    #[test]
    fn quit_changes_reach_the_storage() {
        let dir = tempfile::tempdir().unwrap();
        let loc = format!("maildir:{}/Maildir", dir.path().display());
        let user = User::with_location("u", MailLocation::parse(&loc, &MailVars::default(), None).unwrap());
        let mut inbox = user.open("INBOX").unwrap();
        for m in ["A: 1\n\nx\n", "A: 2\n\ny\n", "A: 3\n\nz\n"] {
            inbox.save(&NewMessage { data: m.as_bytes().to_vec(), ..NewMessage::default() }).unwrap();
        }
        drop(inbox);
        let mut md = MailboxDrop { mailbox: user.open("INBOX").unwrap() };
        assert_eq!(md.snapshot(None).len(), 3);
        md.apply(&Changes { expunge: vec![2], flag_deleted: None, seen: vec![1, 3] }).unwrap();
        drop(md);
        let inbox = user.open("INBOX").unwrap();
        let left: Vec<(u32, bool)> =
            inbox.messages().map(|m| (m.uid, m.flags.contains(Flags::SEEN))).collect();
        assert_eq!(left, [(1, true), (3, true)]);
    }
}
