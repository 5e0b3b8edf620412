//! The contract between the `imap` binary and the SEARCH/SORT/THREAD
//! evaluators: what the evaluators may ask of one message, loading the
//! expensive parts (header, whole message) only when a key needs them.

use crate::storage::{Flags, Keywords};

/// One message as SEARCH, SORT and THREAD see it. The header and the
/// message are fetched lazily (hence `&mut self`); implementations cache
/// them for the duration of one command.
pub trait SearchMessage {
    /// Message sequence number in the selected mailbox (1-based).
    fn seq(&self) -> u32;
    fn uid(&self) -> u32;
    fn flags(&self) -> Flags;
    fn keywords(&self) -> &Keywords;
    /// `\Recent` for this session.
    fn recent(&self) -> bool;
    fn modseq(&self) -> u64;
    /// INTERNALDATE, Unix seconds, with its timezone offset in seconds
    /// east of UTC (BEFORE/ON/SINCE compare dates in that zone, as
    /// Dovecot does).
    fn internal_date(&self) -> (i64, i32);
    /// SAVEDATE (RFC 8514), Unix seconds; None when unknown.
    fn save_date(&self) -> Option<i64>;
    /// RFC822.SIZE (CRLF line endings).
    fn size(&mut self) -> u64;
    /// The header block, up to and including the empty line; empty when
    /// the message can't be read (the key then doesn't match).
    fn header(&mut self) -> &[u8];
    /// The whole message as stored.
    fn message(&mut self) -> &[u8];
}

/// Per-command facts the evaluators need besides the messages.
#[derive(Debug, Clone, Default)]
pub struct SearchContext {
    /// Highest sequence number (the value of `*` in sequence sets).
    pub max_seq: u32,
    /// Highest UID in the mailbox (the value of `*` in UID sets).
    pub max_uid: u32,
    /// The SEARCHRES saved result (`$`) as UIDs, if one was saved.
    pub saved: Option<Vec<u32>>,
    /// Now, Unix seconds (OLDER/YOUNGER, RFC 5032).
    pub now: i64,
}
