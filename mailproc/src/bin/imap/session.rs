//! Per-connection IMAP state: the parser, enabled extensions, the selected
//! mailbox as the client knows it (sequence numbers → UIDs, the flags it
//! was last told, `\Recent`), IDLE, and the untagged updates that bring
//! the client up to date with other sessions' changes at the moments
//! RFC 3501 §5.2/§7.4.1 allow.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use dovecote_mailproc::imap::args::compress;
use dovecote_mailproc::imap::message::SearchMessage;
use dovecote_mailproc::imap::parser::{Limits, Parser};
use dovecote_mailproc::storage::{Flags, Keywords, Mailbox, MessageRecord};

use crate::response::flag_list;

/// How often an idling client's mailbox is checked for changes
/// (Dovecot: `mailbox_idle_check_interval = 30 secs`, plus inotify; we
/// poll the cheap `sync()` instead).
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Counters for the logout line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub deleted: u64,
    pub expunged: u64,
    pub trashed: u64,
    pub hdr_count: u64,
    pub hdr_bytes: u64,
    pub body_count: u64,
    pub body_bytes: u64,
    /// Messages saved by APPEND.
    pub appended: u64,
}

/// A client in IDLE.
#[derive(Debug)]
pub struct Idle {
    pub tag: String,
    pub next_check: Instant,
    pub started: Instant,
    /// Last `* OK Still here` (or the start).
    pub last_notify: Instant,
}

/// The selected mailbox.
pub struct Selected {
    pub name: String,
    pub mailbox: Mailbox,
    pub readonly: bool,
    /// Sequence number − 1 → UID, as the client knows the mailbox.
    pub uids: Vec<u32>,
    /// UID → modseq of the flags the client was last told (or saw).
    pub known: HashMap<u32, u64>,
    /// This session's `\Recent` messages.
    pub recent: BTreeSet<u32>,
    /// The count last sent in `* n RECENT`: as Dovecot, a new one goes out
    /// whenever the count differs (expunges lower it too), and not when
    /// new mail leaves it as it was.
    pub announced_recent: usize,
    /// The mailbox's highest modseq when the client last caught up.
    pub seen_modseq: u64,
    /// The keywords announced in `* FLAGS`.
    pub keywords: BTreeSet<String>,
}

impl Selected {
    pub fn new(name: String, mailbox: Mailbox, readonly: bool) -> Selected {
        let uids: Vec<u32> = mailbox.messages().map(|m| m.uid).collect();
        let known = mailbox.messages().map(|m| (m.uid, m.modseq)).collect();
        let keywords = mailbox.messages().flat_map(|m| m.keywords.iter().cloned()).collect();
        let seen_modseq = mailbox.status().highest_modseq;
        Selected {
            name,
            mailbox,
            readonly,
            uids,
            known,
            recent: BTreeSet::new(),
            announced_recent: 0,
            seen_modseq,
            keywords,
        }
    }

    /// `* FLAGS (...)` with the mailbox's keywords.
    pub fn flags_line(&self) -> String {
        let mut all: Vec<&str> = Flags::ALL.names();
        all.extend(self.keywords.iter().map(String::as_str));
        format!("* FLAGS ({})\r\n", all.join(" "))
    }

    /// The highest UID the client knows.
    pub fn max_uid(&self) -> u32 {
        self.uids.last().copied().unwrap_or(0)
    }

    /// Sequence number of a UID the client knows.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }
}

/// Whether sequence numbers may shift in this update (EXPUNGE allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// After commands during which expunges must not be reported
    /// (FETCH, STORE, SEARCH by sequence number).
    NoExpunges,
    Full,
}

/// Session state.
pub struct Session {
    pub parser: Parser,
    pub selected: Option<Selected>,
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
    /// COMPRESS=DEFLATE is on.
    pub compressed: bool,
    pub idle: Option<Idle>,
    pub stats: Stats,
    /// SEARCHRES `$`, as UIDs.
    pub saved_search: Option<Vec<u32>>,
    /// Last finished command and when (for `Connection closed (…)`).
    pub last_command: Option<(String, Instant)>,
    /// Why the session ends, if the server ends it.
    pub close_reason: Option<String>,
}

impl Session {
    pub fn new(max_line: usize) -> Session {
        Session {
            parser: Parser::new(Limits { max_line, ..Limits::default() }),
            selected: None,
            condstore: false,
            qresync: false,
            utf8: false,
            compressed: false,
            idle: None,
            stats: Stats::default(),
            saved_search: None,
            last_command: None,
            close_reason: None,
        }
    }

    /// Brings the client up to date: EXPUNGE/VANISHED (if allowed), EXISTS
    /// and RECENT for new mail, FETCH FLAGS for others' flag changes.
    pub fn sync(&mut self, kind: SyncKind, out: &mut Vec<u8>) {
        let condstore = self.condstore;
        let qresync = self.qresync;
        let Some(sel) = self.selected.as_mut() else { return };
        if let Err(e) = sel.mailbox.sync() {
            eprintln!("Error: Mailbox {}: sync failed: {e}", sel.name);
            return;
        }
        let state = sel.mailbox.state();
        if kind == SyncKind::Full {
            let gone: Vec<usize> = sel
                .uids
                .iter()
                .enumerate()
                .filter(|(_, u)| !state.messages.contains_key(u))
                .map(|(i, _)| i)
                .collect();
            if !gone.is_empty() {
                if qresync {
                    let uids: Vec<u32> = gone.iter().map(|&i| sel.uids[i]).collect();
                    out.extend_from_slice(format!("* VANISHED {}\r\n", compress(&uids)).as_bytes());
                } else {
                    // Highest first: the numbers of lower messages don't move.
                    for &i in gone.iter().rev() {
                        out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                    }
                }
                for &i in gone.iter().rev() {
                    let uid = sel.uids.remove(i);
                    sel.known.remove(&uid);
                    sel.recent.remove(&uid);
                }
            }
        }
        let max = sel.max_uid();
        let new: Vec<&MessageRecord> =
            state.messages.range(max.saturating_add(1)..).map(|(_, m)| m).collect();
        let mut new_keywords = false;
        for m in &new {
            sel.uids.push(m.uid);
            sel.known.insert(m.uid, m.modseq);
            if sel.mailbox.is_recent(m.uid) {
                sel.recent.insert(m.uid);
            }
            for k in &m.keywords {
                new_keywords |= sel.keywords.insert(k.clone());
            }
        }
        let highest = state.highest_modseq;
        let mut changed = Vec::new();
        if highest > sel.seen_modseq {
            for (i, uid) in sel.uids.iter().enumerate() {
                let Some(m) = state.messages.get(uid) else { continue };
                let known = sel.known.get(uid).copied().unwrap_or(0);
                if m.modseq > known {
                    changed.push((i as u32 + 1, m.uid, m.flags, m.keywords.clone(), m.modseq));
                }
            }
        }
        for (_, _, _, kw, _) in &changed {
            for k in kw {
                new_keywords |= sel.keywords.insert(k.clone());
            }
        }
        if new_keywords {
            out.extend_from_slice(sel.flags_line().as_bytes());
        }
        if !new.is_empty() {
            out.extend_from_slice(format!("* {} EXISTS\r\n", sel.uids.len()).as_bytes());
        }
        if sel.recent.len() != sel.announced_recent {
            sel.announced_recent = sel.recent.len();
            out.extend_from_slice(format!("* {} RECENT\r\n", sel.recent.len()).as_bytes());
        }
        for (seq, uid, flags, keywords, modseq) in changed {
            sel.known.insert(uid, modseq);
            let recent = sel.recent.contains(&uid);
            let mut line = format!("* {seq} FETCH (");
            if qresync {
                line.push_str(&format!("UID {uid} "));
            }
            line.push_str(&format!("FLAGS {}", flag_list(flags, &keywords, recent)));
            if condstore {
                line.push_str(&format!(" MODSEQ ({modseq})"));
            }
            line.push_str(")\r\n");
            out.extend_from_slice(line.as_bytes());
        }
        sel.seen_modseq = highest;
    }
}

/// A message of the selected mailbox as SEARCH/SORT see it: record facts
/// at hand, header and body read on first use and kept for the command.
pub struct Message<'a> {
    /// `None` for a [`Message::with_header`] snapshot.
    pub mailbox: Option<&'a mut Mailbox>,
    pub record: MessageRecord,
    pub seq: u32,
    pub recent: bool,
    header: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
}

impl<'a> Message<'a> {
    pub fn new(mailbox: &'a mut Mailbox, record: MessageRecord, seq: u32, recent: bool) -> Message<'a> {
        Message { mailbox: Some(mailbox), record, seq, recent, header: None, data: None }
    }

    /// A message detached from the mailbox with its header already read:
    /// SORT and THREAD need many messages at once but only their headers.
    /// Its `message()` is the header alone.
    pub fn with_header(record: MessageRecord, seq: u32, recent: bool, header: Vec<u8>) -> Message<'static> {
        Message { mailbox: None, record, seq, recent, header: Some(header), data: None }
    }
}

impl SearchMessage for Message<'_> {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn uid(&self) -> u32 {
        self.record.uid
    }
    fn flags(&self) -> Flags {
        self.record.flags
    }
    fn keywords(&self) -> &Keywords {
        &self.record.keywords
    }
    fn recent(&self) -> bool {
        self.recent
    }
    fn modseq(&self) -> u64 {
        self.record.modseq
    }
    fn internal_date(&self) -> (i64, i32) {
        (self.record.received, 0)
    }
    fn save_date(&self) -> Option<i64> {
        Some(self.record.saved)
    }
    fn size(&mut self) -> u64 {
        self.record.virtual_size
    }
    fn header(&mut self) -> &[u8] {
        if self.header.is_none() {
            let h = match &self.data {
                Some(d) => d[..dovecote_mailproc::storage::mailbox::header_len(d)].to_vec(),
                None => match self.mailbox.as_deref_mut() {
                    Some(m) => m.read_header(self.record.uid).unwrap_or_default(),
                    None => Vec::new(),
                },
            };
            self.header = Some(h);
        }
        self.header.as_deref().unwrap_or_default()
    }
    fn message(&mut self) -> &[u8] {
        if self.data.is_none() {
            self.data = Some(match self.mailbox.as_deref_mut() {
                Some(m) => m.read_message(self.record.uid).unwrap_or_default(),
                None => self.header.clone().unwrap_or_default(),
            });
        }
        self.data.as_deref().unwrap_or_default()
    }
}

impl Session {
    /// The messages a sequence-set (or UID-set) argument names, as
    /// (sequence number, UID) pairs in ascending order. `$` is the saved
    /// search result. Sequence numbers past EXISTS are an error, as in
    /// Dovecot; unknown UIDs are skipped.
    pub fn resolve_set(
        &self,
        arg: Option<&dovecote_mailproc::imap::args::Arg>,
        uid: bool,
    ) -> Result<Vec<(u32, u32)>, &'static str> {
        use dovecote_mailproc::imap::args::SeqSet;
        let Some(sel) = &self.selected else { return Err("No mailbox selected") };
        let text = arg.and_then(|a| a.as_atom()).ok_or("Invalid arguments")?;
        let set = SeqSet::parse(text).ok_or("Invalid messageset")?;
        if set == SeqSet::Saved {
            let saved = self.saved_search.clone().unwrap_or_default();
            return Ok(saved.iter().filter_map(|u| sel.seq_of(*u).map(|s| (s, *u))).collect());
        }
        let mut out = Vec::new();
        if uid {
            let max = sel.max_uid();
            let ranges = set.resolve(max);
            if max == 0 {
                return Ok(out);
            }
            for (i, u) in sel.uids.iter().enumerate() {
                if ranges.iter().any(|&(a, b)| a <= *u && *u <= b) {
                    out.push((i as u32 + 1, *u));
                }
            }
        } else {
            let max = sel.uids.len() as u32;
            let ranges = set.resolve(max);
            if ranges.iter().any(|&(_, b)| b > max || b == 0) {
                return Err("Invalid messageset");
            }
            let mut seqs: Vec<u32> = ranges.iter().flat_map(|&(a, b)| a..=b).collect();
            seqs.sort_unstable();
            seqs.dedup();
            out = seqs.into_iter().map(|s| (s, sel.uids[s as usize - 1])).collect();
        }
        Ok(out)
    }
}
