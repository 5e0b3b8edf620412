//! The storage data model shared by every format: flags, message records,
//! tombstones, status and change sets (shared/DESIGN.md §4.4).

use std::collections::BTreeSet;

/// IMAP system flags as a bit set (`\Recent` is per-session and not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Flags(pub u8);

impl Flags {
    pub const ANSWERED: Flags = Flags(1);
    pub const FLAGGED: Flags = Flags(2);
    pub const DELETED: Flags = Flags(4);
    pub const SEEN: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    pub const ALL: Flags = Flags(31);

    /// IMAP names, in bit order.
    pub const NAMES: [(Flags, &'static str); 5] = [
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::SEEN, "\\Seen"),
        (Flags::DRAFT, "\\Draft"),
    ];

    pub fn empty() -> Flags {
        Flags(0)
    }
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// Parses one IMAP system flag name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(f, _)| *f)
    }

    /// The IMAP names of the set flags.
    pub fn names(self) -> Vec<&'static str> {
        Flags::NAMES.iter().filter(|(f, _)| self.contains(*f)).map(|(_, n)| *n).collect()
    }
}

/// Keywords of a message, kept sorted and unique.
pub type Keywords = BTreeSet<String>;

/// Everything the index knows about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub uid: u32,
    /// Globally unique message id: the dbox `G` metadata for sdbox, the base
    /// file name for Maildir (as Dovecot reports it).
    pub guid: String,
    pub flags: Flags,
    pub keywords: Keywords,
    /// Modseq of the last change to this message.
    pub modseq: u64,
    /// Modseq at which the message was added to this mailbox.
    pub saved_modseq: u64,
    /// INTERNALDATE (unix seconds).
    pub received: i64,
    /// When it was saved to this mailbox (unix seconds).
    pub saved: i64,
    /// Size as stored (LF line endings).
    pub physical_size: u64,
    /// Size with CRLF line endings, as IMAP counts it.
    pub virtual_size: u64,
    /// Format-specific location: the file name relative to the mailbox
    /// directory (`cur/<name>:2,S`, `u.12`).
    pub location: String,
}

/// What remains of an expunged message for "changes since".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub uid: u32,
    pub guid: String,
    pub modseq: u64,
}

/// STATUS items.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxStatus {
    pub messages: u32,
    pub recent: u32,
    pub uid_next: u32,
    pub uid_validity: u32,
    pub unseen: u32,
    pub highest_modseq: u64,
    /// Sum of virtual sizes.
    pub size: u64,
    pub guid: String,
}

/// How a flag update combines with the current flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// A flag/keyword update request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub op: FlagOp,
    pub flags: Flags,
    pub keywords: Keywords,
    /// CONDSTORE UNCHANGEDSINCE: messages with a higher modseq are not
    /// changed and are reported back.
    pub unchanged_since: Option<u64>,
}

impl FlagUpdate {
    /// The result of applying this update to `flags`/`keywords`.
    pub fn apply(&self, flags: Flags, keywords: &Keywords) -> (Flags, Keywords) {
        match self.op {
            FlagOp::Add => (flags.union(self.flags), keywords.union(&self.keywords).cloned().collect()),
            FlagOp::Remove => {
                (flags.minus(self.flags), keywords.difference(&self.keywords).cloned().collect())
            }
            FlagOp::Replace => (self.flags, self.keywords.clone()),
        }
    }
}

/// The outcome of a flag update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreResult {
    /// The modseq given to the changed messages (0 when nothing changed).
    pub modseq: u64,
    /// UIDs that were changed.
    pub changed: Vec<u32>,
    /// UIDs refused because of UNCHANGEDSINCE (IMAP `[MODIFIED ...]`).
    pub modified: Vec<u32>,
}

/// A message to save.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMessage {
    pub data: Vec<u8>,
    pub flags: Flags,
    pub keywords: Keywords,
    /// INTERNALDATE; `None` means now.
    pub received: Option<i64>,
}

/// Where a saved message ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedMessage {
    pub uid: u32,
    pub guid: String,
    pub modseq: u64,
}

/// "What changed since modseq N" (CONDSTORE/QRESYNC, replication).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Messages added after N (uid, guid).
    pub new: Vec<(u32, String)>,
    /// Existing messages whose flags changed after N.
    pub flags: Vec<MessageRecord>,
    /// Messages expunged after N.
    pub expunged: Vec<Tombstone>,
    pub highest_modseq: u64,
}
