//! IMAP SEARCH programs (RFC 3501 §6.4.4 plus CONDSTORE MODSEQ, WITHIN
//! YOUNGER/OLDER, SAVEDATE, SEARCHRES `$`): parsed from the argument tree
//! with Dovecot's error texts ([`parse`]) and evaluated against one
//! [`SearchMessage`] at a time ([`eval`]) with Dovecot's string matching:
//! case-insensitive substrings of decoded text.

pub mod eval;
pub mod parse;

use crate::imap::args::{Arg, SeqSet};
use crate::imap::message::{SearchContext, SearchMessage};
use crate::storage::Flags;

/// Why a SEARCH/SORT/THREAD command was refused. The parsers name the
/// command `SEARCH`, `SORT` or `THREAD`; Dovecot names it as the client
/// sent it, so callers use [`SearchError::for_command`] for the UID forms
/// ("Error in IMAP command UID SEARCH: Unknown argument FOO") and for
/// search-key errors inside SORT/THREAD. The tagged reply is
/// `BAD <Display>` / `NO <Display>`, then Dovecot's timing and a final `.`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// Answered `BAD <Display>`.
    #[error("Error in IMAP command {command}: {message}")]
    Bad { command: &'static str, message: String },
    /// Answered `NO <Display>`: the client named a charset we can't
    /// convert from.
    #[error("[BADCHARSET] Unknown charset")]
    BadCharset(String),
}

impl SearchError {
    pub(crate) fn bad(message: impl Into<String>) -> SearchError {
        SearchError::Bad { command: "SEARCH", message: message.into() }
    }

    /// The same error reported for another command (SORT, THREAD, or
    /// `UID SEARCH` as Dovecot names it).
    pub fn for_command(self, command: &'static str) -> SearchError {
        match self {
            SearchError::Bad { message, .. } => SearchError::Bad { command, message },
            other => other,
        }
    }
}

/// Which date of a message a date key looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateField {
    /// INTERNALDATE, in its own zone.
    Received,
    /// The Date: header, in its own zone.
    Sent,
    /// SAVEDATE.
    Saved,
}

/// BEFORE, ON or SINCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOp {
    Before,
    On,
    Since,
}

/// How a header key matches (Dovecot's header search types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMatch {
    /// Decoded value as is.
    Plain,
    /// Decoded, whitespace runs compressed (Subject).
    CompressLwsp,
    /// Parsed as addresses and written back, then decoded and compressed
    /// (From, To, Cc, Bcc).
    Address,
}

/// One search key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    All,
    /// A system flag set (`true`) or unset (`false`).
    Flag(Flags, bool),
    Keyword(String, bool),
    Recent(bool),
    /// RECENT and UNSEEN.
    New,
    Seq(SeqSet),
    Uid(SeqSet),
    /// A date comparison; `day` None for a date that doesn't exist (never
    /// matches, as in Dovecot).
    Date {
        field: DateField,
        op: DateOp,
        day: Option<i64>,
    },
    SaveDateSupported,
    Larger(u64),
    Smaller(u64),
    /// HEADER/SUBJECT/FROM/…: `name` (any case), `value` in comparison form.
    Header {
        name: String,
        how: HeaderMatch,
        value: String,
    },
    /// Text bodies, decoded (comparison form).
    Body(String),
    /// Headers of all parts and text bodies (comparison form).
    Text(String),
    ModSeq(u64),
    /// INTERNALDATE within the last n seconds.
    Younger(i64),
    /// INTERNALDATE more than n seconds ago.
    Older(i64),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

/// A parsed SEARCH program: all keys must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchProgram {
    pub keys: Vec<Key>,
}

impl SearchProgram {
    /// Parses search keys. `charset` is the CHARSET the client named
    /// (when the caller took it off already); a leading `CHARSET x` in
    /// `args` is honoured too.
    pub fn parse(args: &[Arg], charset: Option<&str>) -> Result<SearchProgram, SearchError> {
        parse::program(args, charset)
    }

    /// Whether `msg` matches.
    pub fn matches(&self, msg: &mut dyn SearchMessage, ctx: &SearchContext) -> bool {
        eval::Evaluator::new(msg, ctx).all(&self.keys)
    }

    /// Whether a MODSEQ key is present (the reply then carries
    /// `(MODSEQ n)`, RFC 7162).
    pub fn uses_modseq(&self) -> bool {
        fn any(k: &Key) -> bool {
            match k {
                Key::ModSeq(_) => true,
                Key::Not(k) => any(k),
                Key::Or(a, b) => any(a) || any(b),
                Key::And(ks) => ks.iter().any(any),
                _ => false,
            }
        }
        self.keys.iter().any(any)
    }

    /// Whether evaluation reads the header block.
    pub fn needs_header(&self) -> bool {
        self.any_key(&|k| matches!(k, Key::Header { .. } | Key::Date { field: DateField::Sent, .. }))
    }

    /// Whether evaluation reads the whole message.
    pub fn needs_body(&self) -> bool {
        self.any_key(&|k| matches!(k, Key::Body(_) | Key::Text(_)))
    }

    /// Whether the saved result (`$`) is referenced.
    pub fn uses_saved(&self) -> bool {
        self.any_key(&|k| matches!(k, Key::Seq(SeqSet::Saved) | Key::Uid(SeqSet::Saved)))
    }

    fn any_key(&self, f: &dyn Fn(&Key) -> bool) -> bool {
        fn walk(k: &Key, f: &dyn Fn(&Key) -> bool) -> bool {
            f(k) || match k {
                Key::Not(k) => walk(k, f),
                Key::Or(a, b) => walk(a, f) || walk(b, f),
                Key::And(ks) => ks.iter().any(|k| walk(k, f)),
                _ => false,
            }
        }
        self.keys.iter().any(|k| walk(k, f))
    }
}
