//! `dovecote-flags` (sans-IO): the flags and keywords of every message of
//! an sdbox mailbox, the copy that survives losing the index.
//!
//! The change log is what makes a flag change durable; this file is written
//! when the log is compacted and when a handle that changed flags is
//! closed, so a flag update costs one log append instead of one write per
//! message file. An index rebuild reads this file and then replays what
//! can be salvaged of the log (records are absolute, so replaying in order
//! gives the latest flags).
//!
//! ```text
//! dovecote-flags 1
//! <uid>\t<modseq>\t<flag bits>[\t<keyword>]...
//! ```
//! Keywords escape `\`, tab and newline like the change log does.

use std::collections::BTreeMap;

use crate::storage::index::record::{escape, unescape};
use crate::storage::types::{Flags, Keywords, MessageRecord};

pub const FLAGS_FILE: &str = "dovecote-flags";
const HEADER: &str = "dovecote-flags 1";

/// Flags, keywords and modseq of one message as the file stores them.
pub type Entry = (Flags, Keywords, u64);

/// Formats the file for `messages`.
pub fn format<'a>(messages: impl Iterator<Item = &'a MessageRecord>) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for m in messages {
        out.push_str(&format!("{}\t{}\t{}", m.uid, m.modseq, m.flags.0));
        for k in &m.keywords {
            out.push('\t');
            out.push_str(&escape(k));
        }
        out.push('\n');
    }
    out
}

/// Parses the file; `None` if it is not one of ours. Malformed lines are
/// skipped (the file is a redundant copy, not the record of truth).
pub fn parse(text: &str) -> Option<BTreeMap<u32, Entry>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in lines {
        let mut fields = line.split('\t');
        let uid = fields.next().and_then(|f| f.parse::<u32>().ok());
        let modseq = fields.next().and_then(|f| f.parse::<u64>().ok());
        let flags = fields.next().and_then(|f| f.parse::<u8>().ok());
        let (Some(uid), Some(modseq), Some(flags)) = (uid, modseq, flags) else { continue };
        let keywords = fields.filter(|k| !k.is_empty()).map(unescape).collect();
        out.insert(uid, (Flags(flags & Flags::ALL.0), keywords, modseq));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = MessageRecord {
            uid: 3,
            guid: "g".into(),
            flags: Flags::SEEN.union(Flags::DRAFT),
            keywords: ["Work item".to_string(), "a\tb".to_string()].into_iter().collect(),
            modseq: 17,
            saved_modseq: 2,
            received: 0,
            saved: 0,
            physical_size: 1,
            virtual_size: 1,
            location: "u.3".into(),
        };
        let text = format(std::iter::once(&m));
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed[&3], (m.flags, m.keywords.clone(), 17));
        assert!(parse("something else\n1\t1\t1\n").is_none());
    }
}
