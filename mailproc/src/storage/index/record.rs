//! Change log and index records: a sans-IO codec.
//!
//! A record is framed as `len: u32 LE`, `crc32(payload): u32 LE`, payload.
//! The payload is one line of tab-separated fields whose first field names
//! the record kind; text fields escape `\`, tab and newline. A frame whose
//! length runs past the end of the buffer or whose CRC does not match ends
//! the readable part of a file: that is how a torn write after a crash looks.

use crate::storage::crc::crc32;
use crate::storage::types::{Flags, Keywords, MessageRecord, Tombstone};

/// One entry of the change log (and, for snapshots, of the index file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Mailbox identity: GUID (32 hex) and UIDVALIDITY.
    Header { guid: String, uid_validity: u32 },
    /// Counters that a snapshot carries.
    Counters { uid_next: u32, highest_modseq: u64 },
    /// A message was added.
    Append(MessageRecord),
    /// New flags/keywords of a message (absolute, not a delta).
    Flags { uid: u32, modseq: u64, flags: Flags, keywords: Keywords },
    /// A message was expunged; also the tombstone.
    Expunge(Tombstone),
    /// A message file moved without a flag change (e.g. Maildir new/ → cur/).
    Location { uid: u32, location: String },
    /// The format's "mail files last looked like this" stamp.
    Stamp(String),
    /// Messages below this UID are no longer `\Recent` for anyone: a
    /// session that selected the mailbox has claimed them.
    FirstRecent(u32),
}

/// Frame size overhead.
pub const FRAME_HEADER: usize = 8;
/// Records larger than this are treated as corruption.
const MAX_RECORD: usize = 1 << 20;

impl Record {
    /// The framed bytes of this record.
    pub fn encode(&self) -> Vec<u8> {
        let payload = self.payload();
        let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32(payload.as_bytes()).to_le_bytes());
        out.extend_from_slice(payload.as_bytes());
        out
    }

    fn payload(&self) -> String {
        match self {
            Record::Header { guid, uid_validity } => format!("H\t{guid}\t{uid_validity}"),
            Record::Counters { uid_next, highest_modseq } => format!("C\t{uid_next}\t{highest_modseq}"),
            Record::Append(m) => format!(
                "A\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                m.uid,
                m.modseq,
                m.saved_modseq,
                m.flags.0,
                keywords_field(&m.keywords),
                escape(&m.guid),
                m.received,
                m.saved,
                m.physical_size,
                m.virtual_size,
                escape(&m.location)
            ),
            Record::Flags { uid, modseq, flags, keywords } => {
                format!("F\t{uid}\t{modseq}\t{}\t{}", flags.0, keywords_field(keywords))
            }
            Record::Expunge(t) => format!("X\t{}\t{}\t{}", t.uid, t.modseq, escape(&t.guid)),
            Record::Location { uid, location } => format!("L\t{uid}\t{}", escape(location)),
            Record::Stamp(s) => format!("S\t{}", escape(s)),
            Record::FirstRecent(uid) => format!("R\t{uid}"),
        }
    }

    /// Decodes the record at the start of `buf`: `Ok(Some((record, len)))`,
    /// `Ok(None)` when `buf` holds no complete valid frame (end of data or a
    /// torn write), `Err` for a complete frame with a bad payload.
    pub fn decode(buf: &[u8]) -> Result<Option<(Record, usize)>, String> {
        if buf.len() < FRAME_HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if len > MAX_RECORD || buf.len() < FRAME_HEADER + len {
            return Ok(None);
        }
        let payload = &buf[FRAME_HEADER..FRAME_HEADER + len];
        if crc32(payload) != crc {
            return Ok(None);
        }
        let text = std::str::from_utf8(payload).map_err(|_| "record is not UTF-8".to_string())?;
        Ok(Some((parse_payload(text)?, FRAME_HEADER + len)))
    }
}

/// Decodes consecutive records; returns them and the offset after the last
/// valid one.
pub fn decode_all(buf: &[u8]) -> Result<(Vec<Record>, usize), String> {
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some((record, used)) = Record::decode(&buf[pos..])? {
        records.push(record);
        pos += used;
    }
    Ok((records, pos))
}

fn parse_payload(text: &str) -> Result<Record, String> {
    let fields: Vec<&str> = text.split('\t').collect();
    let bad = || format!("malformed record '{}'", text.chars().take(60).collect::<String>());
    let num = |i: usize| -> Result<u64, String> {
        fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(bad)
    };
    let int = |i: usize| -> Result<i64, String> {
        fields.get(i).and_then(|f| f.parse::<i64>().ok()).ok_or_else(bad)
    };
    let txt = |i: usize| -> Result<String, String> { fields.get(i).map(|f| unescape(f)).ok_or_else(bad) };
    let uid = |i: usize| -> Result<u32, String> { u32::try_from(num(i)?).map_err(|_| bad()) };
    let flags = |i: usize| -> Result<Flags, String> {
        u8::try_from(num(i)?).map(|b| Flags(b & Flags::ALL.0)).map_err(|_| bad())
    };
    let kw =
        |i: usize| -> Result<Keywords, String> { fields.get(i).map(|f| parse_keywords(f)).ok_or_else(bad) };
    let record = match fields.first().copied() {
        Some("H") => Record::Header { guid: txt(1)?, uid_validity: uid(2)? },
        Some("C") => Record::Counters { uid_next: uid(1)?, highest_modseq: num(2)? },
        Some("A") if fields.len() == 12 => Record::Append(MessageRecord {
            uid: uid(1)?,
            modseq: num(2)?,
            saved_modseq: num(3)?,
            flags: flags(4)?,
            keywords: kw(5)?,
            guid: txt(6)?,
            received: int(7)?,
            saved: int(8)?,
            physical_size: num(9)?,
            virtual_size: num(10)?,
            location: txt(11)?,
        }),
        Some("F") if fields.len() == 5 => {
            Record::Flags { uid: uid(1)?, modseq: num(2)?, flags: flags(3)?, keywords: kw(4)? }
        }
        Some("X") => Record::Expunge(Tombstone { uid: uid(1)?, modseq: num(2)?, guid: txt(3)? }),
        Some("L") => Record::Location { uid: uid(1)?, location: txt(2)? },
        Some("S") => Record::Stamp(txt(1)?),
        Some("R") => Record::FirstRecent(uid(1)?),
        _ => return Err(bad()),
    };
    Ok(record)
}

fn keywords_field(keywords: &Keywords) -> String {
    keywords.iter().map(|k| escape(k).replace(' ', "\\s")).collect::<Vec<_>>().join(" ")
}

fn parse_keywords(field: &str) -> Keywords {
    if field.is_empty() {
        return Keywords::new();
    }
    field.split(' ').filter(|k| !k.is_empty()).map(|k| unescape(&k.replace("\\s", " "))).collect()
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MessageRecord {
        MessageRecord {
            uid: 7,
            guid: "g\tx".into(),
            flags: Flags::SEEN,
            keywords: ["$Forwarded".to_string(), "a b".to_string()].into_iter().collect(),
            modseq: 9,
            saved_modseq: 3,
            received: -5,
            saved: 100,
            physical_size: 10,
            virtual_size: 12,
            location: "cur/x:2,S".into(),
        }
    }

    #[test]
    fn round_trip() {
        let records = vec![
            Record::Header { guid: "abc".into(), uid_validity: 5 },
            Record::Append(sample()),
            Record::Flags { uid: 7, modseq: 10, flags: Flags::ALL, keywords: Keywords::new() },
            Record::Expunge(Tombstone { uid: 7, guid: "g".into(), modseq: 11 }),
            Record::Stamp("1 2 3".into()),
            Record::FirstRecent(8),
        ];
        let mut buf = Vec::new();
        for r in &records {
            buf.extend(r.encode());
        }
        let (decoded, end) = decode_all(&buf).unwrap();
        assert_eq!(decoded, records);
        assert_eq!(end, buf.len());
    }

    #[test]
    fn torn_tail_is_not_a_record() {
        let mut buf = Record::Stamp("a".into()).encode();
        let full = buf.len();
        buf.extend(&Record::Stamp("bcd".into()).encode()[..5]);
        let (decoded, end) = decode_all(&buf).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(end, full);
        let mut flipped = Record::Stamp("a".into()).encode();
        flipped[9] ^= 1;
        assert_eq!(decode_all(&flipped).unwrap().0.len(), 0);
    }
}
