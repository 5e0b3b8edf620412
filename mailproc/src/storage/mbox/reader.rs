//! Reading an mbox file into message boundaries and status data, streaming
//! (a spool of any size is read through a fixed buffer, never mapped).
//!
//! A message starts at a `From ` line with a readable date that begins the
//! file or follows an empty line. `Content-Length:` is trusted when it
//! points exactly at such a separator (or the end of the file), as Dovecot
//! does, so unescaped `From ` lines inside Dovecot-written bodies stay
//! body text; otherwise the body ends at the next separator.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;

use super::format::{self, Base, HeaderInfo};
use crate::storage::types::{Flags, Keywords};

/// One message of the file. Offsets are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    pub from_start: u64,
    pub header_start: u64,
    /// First body byte (after the empty line).
    pub body_start: u64,
    /// End of the body (the separator's empty line is not part of it).
    pub body_end: u64,
    /// Where the next message (or the file) ends.
    pub end: u64,
    /// Hidden status fields, relative to `header_start`.
    pub hidden: Vec<(usize, usize)>,
    /// A valid `X-UID` (positive, not used earlier in the file).
    pub uid: Option<u32>,
    pub flags: Flags,
    pub keywords: Keywords,
    pub old: bool,
    pub base: Option<Base>,
    pub received: i64,
    pub hash: [u8; 16],
    /// Message as clients see it: visible header + body.
    pub physical_size: u64,
    pub virtual_size: u64,
    pub guid: String,
}

/// A whole parsed mbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Dovecot's internal-data pseudo message, if the file starts with one.
    pub pseudo: Option<MboxMessage>,
    pub messages: Vec<MboxMessage>,
    pub len: u64,
}

impl Parsed {
    /// The mailbox-wide data, from the pseudo message or the first message.
    pub fn base(&self) -> Option<&Base> {
        match &self.pseudo {
            Some(p) => p.base.as_ref(),
            None => self.messages.first().and_then(|m| m.base.as_ref()),
        }
    }

    /// Index of the message with `uid`.
    pub fn find(&self, uid: u32) -> Option<usize> {
        self.messages.iter().position(|m| m.uid == Some(uid))
    }
}

/// Why a file is not a readable mbox.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    NotMbox(String),
}

/// Parses the whole file.
pub fn parse(file: &File) -> Result<Parsed, ReadError> {
    let len = file.metadata().map_err(ReadError::Io)?.len();
    let mut reader = Lines { inner: BufReader::with_capacity(256 * 1024, file), pos: 0, line: Vec::new() };
    let mut parsed = Parsed { len, ..Parsed::default() };
    let mut from_start = 0u64;
    let mut from_line = match reader.next().map_err(ReadError::Io)? {
        None => return Ok(parsed),
        Some(line) => line.to_vec(),
    };
    let mut used_uids = HashSet::new();
    let mut pending: HashMap<[u8; 16], u32> = HashMap::new();
    loop {
        let received = format::parse_from_line(trim_eol(&from_line)).ok_or_else(|| {
            ReadError::NotMbox(format!(
                "mbox file doesn't begin with a From line at offset {from_start}: {:?}",
                String::from_utf8_lossy(&from_line[..from_line.len().min(60)])
            ))
        })?;
        let header_start = from_start + from_line.len() as u64;
        let mut header = Vec::new();
        while let Some(line) = reader.next().map_err(ReadError::Io)? {
            header.extend_from_slice(line);
            if line == b"\n" || line == b"\r\n" {
                break;
            }
        }
        let body_start = header_start + header.len() as u64;
        let info = format::analyze_header(&header);
        let cl_end =
            info.content_length.map(|cl| body_start + cl).filter(|&end| valid_boundary(file, end, len));
        // Read the body: up to the Content-Length boundary or the next
        // separator (a From line after an empty line).
        let body_end;
        let mut body_lfs = 0u64;
        let mut next_from: Option<(u64, Vec<u8>)> = None;
        // The empty line that would separate this message from a next one.
        let mut blank: Option<(u64, u64)> = Some((body_start, 0)).filter(|_| header.ends_with(b"\n\n"));
        match cl_end {
            Some(limit) => {
                body_end = limit;
                while reader.pos < limit {
                    let start = reader.pos;
                    let Some(line) = reader.next().map_err(ReadError::Io)? else { break };
                    let end = start + line.len() as u64;
                    body_lfs += format::bare_lfs(&line[..(end.min(limit) - start) as usize]);
                }
                // Skip the separator's empty line; the next line is a From line.
                if reader.pos == limit {
                    let _ = reader.next().map_err(ReadError::Io)?;
                }
                let start = reader.pos;
                if let Some(line) = reader.next().map_err(ReadError::Io)? {
                    next_from = Some((start, line.to_vec()));
                }
            }
            None => loop {
                let start = reader.pos;
                let Some(line) = reader.next().map_err(ReadError::Io)? else {
                    body_end = blank.map(|(b, _)| b).unwrap_or(len).max(body_start);
                    break;
                };
                if blank.is_some() && line.starts_with(b"From ") && format::is_from_line(trim_eol(line)) {
                    body_end = blank.map(|(b, _)| b).unwrap_or(start).max(body_start);
                    next_from = Some((start, line.to_vec()));
                    break;
                }
                // The previous empty line was body after all.
                body_lfs += blank.map(|(_, lfs)| lfs).unwrap_or(0);
                if line == b"\n" || line == b"\r\n" {
                    blank = Some((start, format::bare_lfs(line)));
                } else {
                    blank = None;
                    body_lfs += format::bare_lfs(line);
                }
            },
        }
        let end = next_from.as_ref().map(|(s, _)| *s).unwrap_or(len);
        let uid = info.uid.filter(|u| used_uids.insert(*u));
        let guid = match uid {
            Some(u) => format::guid_of(&info.hash, &u.to_le_bytes()),
            None => {
                let k = pending.entry(info.hash).or_insert(0);
                *k += 1;
                format::guid_of(&info.hash, format!("#{k}").as_bytes())
            }
        };
        let physical_size = info.visible_len + (body_end - body_start);
        let message = MboxMessage {
            from_start,
            header_start,
            body_start,
            body_end,
            end,
            uid,
            flags: info.flags,
            keywords: info.keywords.clone(),
            old: info.old,
            base: info.base.clone(),
            received,
            hash: info.hash,
            physical_size,
            virtual_size: physical_size + info.bare_lfs + body_lfs,
            guid,
            hidden: info.hidden.clone(),
        };
        if parsed.pseudo.is_none() && parsed.messages.is_empty() && is_pseudo(&info) {
            let mut pseudo = message;
            pseudo.base = info.pseudo.clone();
            parsed.pseudo = Some(pseudo);
        } else {
            parsed.messages.push(message);
        }
        match next_from {
            Some((start, line)) => {
                from_start = start;
                from_line = line;
            }
            None => break,
        }
    }
    Ok(parsed)
}

fn is_pseudo(info: &HeaderInfo) -> bool {
    info.pseudo.is_some()
}

/// Whether `offset` is where a message may end: the end of the file, or an
/// empty line followed by the end or a From line.
fn valid_boundary(file: &File, offset: u64, len: u64) -> bool {
    if offset == len {
        return true;
    }
    if offset > len {
        return false;
    }
    let mut buf = [0u8; 256];
    let Ok(n) = file.read_at(&mut buf, offset) else { return false };
    let buf = &buf[..n];
    let rest = match buf {
        [b'\n', rest @ ..] => rest,
        [b'\r', b'\n', rest @ ..] => rest,
        _ => return false,
    };
    if rest.is_empty() {
        return offset + (n as u64) == len;
    }
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    format::is_from_line(trim_eol(&rest[..line_end]))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

struct Lines<'a> {
    inner: BufReader<&'a File>,
    pos: u64,
    line: Vec<u8>,
}

impl Lines<'_> {
    fn next(&mut self) -> io::Result<Option<&[u8]>> {
        self.line.clear();
        let n = self.inner.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(None);
        }
        self.pos += n as u64;
        Ok(Some(&self.line))
    }
}

#[cfg(test)]
fn parse_bytes(data: &[u8]) -> Parsed {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mbox");
    std::fs::write(&path, data).unwrap();
    let parsed = match parse(&File::open(&path).unwrap()) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &[u8] = b"From alice@example.com  Mon Nov 23 10:00:00 2026\n\
Return-Path: <alice@example.com>\nX-Original-To: jane\nDelivered-To: jane@example.com\n\
Subject: hi\n\nline\n>From the escaped line\n\n\
From bob@example.com  Mon Nov 23 11:00:00 2026\nSubject: two\n\nFrom here is not a separator\nend\n\n";

    #[test]
    fn postfix_spool() {
        let p = parse_bytes(POSTFIX);
        assert_eq!(p.messages.len(), 2);
        let m = &p.messages[0];
        assert_eq!(m.uid, None);
        assert_eq!(m.received, 1_795_428_000);
        assert_eq!(&POSTFIX[m.body_start as usize..m.body_end as usize], b"line\n>From the escaped line\n");
        let m = &p.messages[1];
        assert_eq!(
            &POSTFIX[m.body_start as usize..m.body_end as usize],
            b"From here is not a separator\nend\n"
        );
        assert_eq!(m.end, POSTFIX.len() as u64);
        assert_ne!(p.messages[0].guid, p.messages[1].guid);
        let visible = b"Subject: two\n\nFrom here is not a separator\nend\n";
        assert_eq!(m.physical_size, visible.len() as u64);
        assert_eq!(m.virtual_size, visible.len() as u64 + 4);
    }

    #[test]
    fn content_length_wins_over_unescaped_from() {
        let data = b"From a  Mon Nov 23 10:00:00 2026\nX-UID: 3\nContent-Length: 50\n\n\
x\n\nFrom b  Mon Nov 23 10:00:00 2026\nnot a message\n\n\
From c  Mon Nov 23 10:00:00 2026\nX-UID: 4\n\nbody";
        let p = parse_bytes(data);
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[0].uid, Some(3));
        assert_eq!(p.messages[1].uid, Some(4));
        assert_eq!(&data[p.messages[1].body_start as usize..p.messages[1].body_end as usize], b"body");
    }

    #[test]
    fn wrong_content_length_is_ignored_and_duplicate_uids_dropped() {
        let data = b"From a  Mon Nov 23 10:00:00 2026\nX-UID: 3\nContent-Length: 999\n\nx\n\n\
From c  Mon Nov 23 10:00:00 2026\nX-UID: 3\n\ny\n\n";
        let p = parse_bytes(data);
        assert_eq!(p.messages.len(), 2);
        assert_eq!((p.messages[0].uid, p.messages[1].uid), (Some(3), None));
    }

    #[test]
    fn not_an_mbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"Subject: no from line\n\n").unwrap();
        assert!(matches!(parse(&File::open(&path).unwrap()), Err(ReadError::NotMbox(_))));
        std::fs::write(&path, b"").unwrap();
        assert!(parse(&File::open(&path).unwrap()).unwrap().messages.is_empty());
    }
}
