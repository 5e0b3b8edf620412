//! The mbox format without I/O: `From ` separator lines and their dates,
//! and the status headers Dovecot 2.3 keeps in each
//! message (`X-IMAPbase`, `X-IMAP`, `X-UID`, `Status`, `X-Status`,
//! `X-Keywords`, `Content-Length`), parsed and rendered the way Dovecot
//! writes them so that either server reads the other's UIDs and flags.
//!
//! Status headers are hidden from the message as clients see it (as
//! Dovecot hides them) and stripped from messages being saved.

use md5::{Digest, Md5};

use crate::calendar::{civil_from_days, days_from_civil};
use crate::storage::types::{Flags, Keywords};

/// Headers the mbox format owns; never part of a message as read.
pub const HIDDEN_HEADERS: [&str; 7] =
    ["X-IMAPbase", "X-IMAP", "X-UID", "Status", "X-Status", "X-Keywords", "Content-Length"];

/// Spaces kept free in `X-Keywords:` so flag changes fit in place.
pub const DEFAULT_PADDING: usize = 30;

/// The sender Dovecot writes in `From ` lines of its own messages.
pub const SENDER: &str = "MAILER-DAEMON";

/// Mailbox-wide data from `X-IMAPbase` (first message) or `X-IMAP` (the
/// pseudo message Dovecot leaves in an emptied mbox).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base {
    pub uid_validity: u32,
    pub last_uid: u32,
    pub keywords: Vec<String>,
}

/// What one message's header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Byte ranges (relative to the header start) of hidden header fields,
    /// continuation lines included.
    pub hidden: Vec<(usize, usize)>,
    pub uid: Option<u32>,
    pub flags: Flags,
    pub keywords: Keywords,
    /// `O` in `Status:` (no longer \Recent); kept as found.
    pub old: bool,
    /// `X-IMAPbase:` of the first message.
    pub base: Option<Base>,
    /// `X-IMAP:`: this is Dovecot's internal-data pseudo message.
    pub pseudo: Option<Base>,
    pub content_length: Option<u64>,
    /// MD5 of the visible header bytes (identity of the message text).
    pub hash: [u8; 16],
    /// Visible header length (hidden fields removed).
    pub visible_len: u64,
    /// Bare LFs in the visible header (for the virtual size).
    pub bare_lfs: u64,
}

/// Whether `line` is a `From ` separator line with a readable date.
pub fn is_from_line(line: &[u8]) -> bool {
    parse_from_line(line).is_some()
}

/// The date of a `From sender  Wed Nov 25 02:30:14 2026` line, as unix
/// seconds (UTC unless the line carries a numeric zone).
pub fn parse_from_line(line: &[u8]) -> Option<i64> {
    let rest = line.strip_prefix(b"From ")?;
    let text = std::str::from_utf8(rest).ok()?;
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    let i = (1..tokens.len()).find(|&i| month(tokens[i]).is_some() && weekday(tokens[i - 1]))?;
    let mon = month(tokens[i])?;
    let day: u32 = tokens.get(i + 1)?.parse().ok().filter(|d| (1..=31).contains(d))?;
    let mut hms = tokens.get(i + 2)?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m) = (hms.next()??, hms.next()??);
    let s = hms.next().flatten().unwrap_or(0);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut year = None;
    let mut offset = 0i64;
    for t in tokens.iter().skip(i + 3).take(2) {
        if t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()) {
            year = t.parse::<i64>().ok();
        } else if let Some(z) = parse_zone(t) {
            offset = z;
        }
    }
    let year = year?;
    Some(days_from_civil(year, mon, day) * 86400 + h * 3600 + m * 60 + s - offset)
}

/// `From <sender>  <asctime>` (two spaces, as Dovecot and Postfix write).
pub fn format_from_line(sender: &str, time: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let days = time.div_euclid(86400);
    let secs = time.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "From {sender}  {} {} {d:2} {:02}:{:02}:{:02} {y}\n",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses a header block (the bytes after the `From ` line up to and
/// including the empty line).
pub fn analyze_header(header: &[u8]) -> HeaderInfo {
    let mut info = HeaderInfo::default();
    let mut visible = Md5::new();
    let mut pos = 0;
    while pos < header.len() {
        // One field: a line plus its continuation lines.
        let mut end = line_end(header, pos);
        while end < header.len() && matches!(header[end], b' ' | b'\t') {
            end = line_end(header, end);
        }
        let field = &header[pos..end];
        let name_end = field.iter().position(|&b| b == b':');
        let hidden_name = name_end
            .map(|n| &field[..n])
            .and_then(|name| HIDDEN_HEADERS.iter().find(|h| h.as_bytes().eq_ignore_ascii_case(name)));
        match (hidden_name, name_end) {
            (Some(name), Some(n)) => {
                info.hidden.push((pos, end));
                let value = String::from_utf8_lossy(&field[n + 1..]);
                apply_field(&mut info, name, value.trim());
            }
            _ => {
                visible.update(field);
                info.visible_len += field.len() as u64;
                info.bare_lfs += bare_lfs(field);
            }
        }
        pos = end;
    }
    info.hash = visible.finalize().into();
    info
}

/// The status headers for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBlock<'a> {
    /// `X-IMAPbase` to carry (first message of the file).
    pub base: Option<&'a Base>,
    pub uid: u32,
    pub flags: Flags,
    pub keywords: &'a Keywords,
    pub old: bool,
    pub content_length: u64,
}

impl StatusBlock<'_> {
    /// The header lines, with `pad` spaces of room in `X-Keywords:`.
    pub fn render(&self, pad: usize) -> Vec<u8> {
        let mut out = String::new();
        if let Some(base) = self.base {
            out.push_str(&base_line("X-IMAPbase", base, 0));
        }
        out.push_str(&format!("X-UID: {}\n", self.uid));
        let mut status = String::new();
        if self.flags.contains(Flags::SEEN) {
            status.push('R');
        }
        if self.old {
            status.push('O');
        }
        out.push_str(&format!("Status: {status}\n"));
        let kws: Vec<&str> = self.keywords.iter().map(String::as_str).collect();
        out.push_str(&format!("X-Keywords: {}{}\n", kws.join(" "), " ".repeat(pad)));
        out.push_str(&format!("Content-Length: {}\n", self.content_length));
        let mut x = String::new();
        for (flag, c) in
            [(Flags::ANSWERED, 'A'), (Flags::FLAGGED, 'F'), (Flags::DRAFT, 'T'), (Flags::DELETED, 'D')]
        {
            if self.flags.contains(flag) {
                x.push(c);
            }
        }
        if !x.is_empty() {
            out.push_str(&format!("X-Status: {x}\n"));
        }
        out.into_bytes()
    }
}

/// `X-IMAPbase: <uidvalidity> <last uid, 10 digits> <keywords><pad>`.
pub fn base_line(name: &str, base: &Base, pad: usize) -> String {
    let mut line = format!("{name}: {} {:010}", base.uid_validity, base.last_uid);
    for k in &base.keywords {
        line.push(' ');
        line.push_str(k);
    }
    line.push_str(&" ".repeat(pad));
    line.push('\n');
    line
}

/// A header with its hidden fields replaced by `block`; the result is
/// exactly `target` bytes long when `target` leaves room for it (the
/// padding line absorbs the difference), else it gets default padding.
pub fn render_header(
    header: &[u8],
    hidden: &[(usize, usize)],
    block: &dyn Fn(usize) -> Vec<u8>,
    target: Option<usize>,
) -> Vec<u8> {
    let (content, blank) = split_blank_line(header);
    let mut visible = Vec::with_capacity(header.len() + 64);
    let mut pos = 0;
    for &(start, end) in hidden.iter().filter(|(s, _)| *s < content.len()) {
        visible.extend_from_slice(&content[pos..start]);
        pos = end.min(content.len());
    }
    visible.extend_from_slice(&content[pos..]);
    if !visible.is_empty() && !visible.ends_with(b"\n") {
        visible.push(b'\n');
    }
    let blank: &[u8] = if blank.is_empty() { b"\n" } else { blank };
    let bare = visible.len() + block(0).len() + blank.len();
    let pad = match target {
        Some(t) if t >= bare => t - bare,
        _ => DEFAULT_PADDING,
    };
    let mut out = visible;
    out.extend_from_slice(&block(pad));
    out.extend_from_slice(blank);
    out
}

/// Builds the bytes Dovecot's "internal data" pseudo message holds.
pub fn pseudo_message(base: &Base, now: i64, host: &str, pad: usize) -> Vec<u8> {
    let mut out = format_from_line("MAILER_DAEMON", now);
    out.push_str(&format!("Date: {}\n", rfc822_date(now)));
    out.push_str(&format!("From: Mail System Internal Data <MAILER-DAEMON@{host}>\n"));
    out.push_str("Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n");
    out.push_str(&format!("Message-ID: <{now}@{host}>\n"));
    out.push_str(&base_line("X-IMAP", base, pad));
    out.push_str("Status: RO\n\n");
    out.push_str(
        "This text is part of the internal format of your mail folder, and is not\n\
         a real message.  It is created automatically by the mail system software.\n\
         If deleted, important folder data will be lost, and it will be re-created\n\
         with the data reset to initial values.\n\n",
    );
    out.into_bytes()
}

/// Splits a header block into its fields and the empty line ending it.
pub fn split_blank_line(header: &[u8]) -> (&[u8], &[u8]) {
    if header == b"\n" || header == b"\r\n" {
        return (&[], header);
    }
    if header.ends_with(b"\r\n\r\n") {
        return header.split_at(header.len() - 2);
    }
    if header.ends_with(b"\n\n") {
        return header.split_at(header.len() - 1);
    }
    (header, &[])
}

/// Bare LFs (not preceded by CR) in `data`.
pub fn bare_lfs(data: &[u8]) -> u64 {
    let mut n = 0;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// An MD5 of the message identity parts, as 32 hex digits.
pub fn guid_of(hash: &[u8; 16], salt: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(hash);
    h.update(salt);
    let digest: [u8; 16] = h.finalize().into();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn apply_field(info: &mut HeaderInfo, name: &str, value: &str) {
    match name {
        "X-UID" => info.uid = value.parse().ok().filter(|u| *u > 0),
        "Status" => {
            for c in value.chars() {
                match c {
                    'R' => info.flags = info.flags.union(Flags::SEEN),
                    'O' => info.old = true,
                    _ => {}
                }
            }
        }
        "X-Status" => {
            for c in value.chars() {
                let flag = match c {
                    'A' => Flags::ANSWERED,
                    'F' => Flags::FLAGGED,
                    'T' => Flags::DRAFT,
                    'D' => Flags::DELETED,
                    _ => continue,
                };
                info.flags = info.flags.union(flag);
            }
        }
        "X-Keywords" => info.keywords.extend(value.split_ascii_whitespace().map(str::to_string)),
        "Content-Length" => info.content_length = value.parse().ok(),
        "X-IMAPbase" | "X-IMAP" => {
            let mut it = value.split_ascii_whitespace();
            let base = (|| {
                Some(Base {
                    uid_validity: it.next()?.parse().ok()?,
                    last_uid: it.next()?.parse().ok()?,
                    keywords: it.map(str::to_string).collect(),
                })
            })();
            if name == "X-IMAP" {
                info.pseudo = base;
            } else {
                info.base = base;
            }
        }
        _ => {}
    }
}

fn line_end(data: &[u8], pos: usize) -> usize {
    memchr::memchr(b'\n', &data[pos..]).map(|i| pos + i + 1).unwrap_or(data.len())
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn month(t: &str) -> Option<u32> {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(t)).map(|i| i as u32 + 1)
}

fn weekday(t: &str) -> bool {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].iter().any(|d| d.eq_ignore_ascii_case(t))
}

fn parse_zone(t: &str) -> Option<i64> {
    let (sign, digits) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(sign * ((n / 100) * 3600 + (n % 100) * 60))
}

fn rfc822_date(time: i64) -> String {
    let line = format_from_line("x", time);
    // "From x  Wed Nov 25 02:30:14 2026\n" → "Wed, 25 Nov 2026 02:30:14 +0000"
    let t: Vec<&str> = line.split_ascii_whitespace().collect();
    match t.as_slice() {
        [_, _, wd, mon, day, hms, year] => format!("{wd}, {day} {mon} {year} {hms} +0000"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_round_trip() {
        let line = format_from_line("MAILER-DAEMON", 1_795_573_814);
        assert_eq!(line, "From MAILER-DAEMON  Wed Nov 25 02:30:14 2026\n");
        assert_eq!(parse_from_line(line.trim_end().as_bytes()), Some(1_795_573_814));
        assert_eq!(parse_from_line(b"From a@b Thu Jan  1 00:00:00 1970"), Some(0));
        assert_eq!(parse_from_line(b"From a@b Thu Jan  1 02:00:00 +0200 1970"), Some(0));
        assert_eq!(parse_from_line(b"From \"x y\"@z  Mon Feb  3 04:05 2020"), Some(1_580_702_700));
        assert!(!is_from_line(b"From here on, the body"));
        assert!(!is_from_line(b">From a@b Thu Jan  1 00:00:00 1970"));
    }

    #[test]
    fn dovecot_status_headers_parse() {
        let h = b"From: a@b\nSubject: one\nX-IMAPbase: 1795573814 0000000002 $Forwarded kw2\nX-UID: 1\n\
Status: RO\nX-Keywords: $Forwarded kw2                 \nContent-Length: 27\nX-Status: AFTD\n\n";
        let info = analyze_header(h);
        assert_eq!(info.uid, Some(1));
        assert_eq!(info.flags, Flags::ALL);
        assert!(info.old);
        assert_eq!(info.content_length, Some(27));
        let base = info.base.clone().unwrap();
        assert_eq!((base.uid_validity, base.last_uid), (1_795_573_814, 2));
        assert_eq!(base.keywords, ["$Forwarded", "kw2"]);
        assert_eq!(info.keywords.iter().collect::<Vec<_>>(), ["$Forwarded", "kw2"]);
        assert_eq!(info.visible_len, 24);
        let plain = analyze_header(b"From: a@b\nSubject: one\n\n");
        assert_eq!(plain.hash, info.hash, "status headers are not part of the identity");
    }

    #[test]
    fn render_keeps_length_with_padding() {
        let kw: Keywords = ["a".to_string()].into_iter().collect();
        let header =
            b"Subject: x\nX-UID: 7\nStatus: \nX-Keywords:                    \nContent-Length: 3\n\n";
        let info = analyze_header(header);
        let block = |pad: usize| {
            StatusBlock {
                base: None,
                uid: 7,
                flags: Flags::SEEN,
                keywords: &kw,
                old: false,
                content_length: 3,
            }
            .render(pad)
        };
        let out = render_header(header, &info.hidden, &block, Some(header.len()));
        assert_eq!(out.len(), header.len());
        let again = analyze_header(&out);
        assert_eq!((again.uid, again.flags, again.keywords), (Some(7), Flags::SEEN, kw));
        assert!(out.ends_with(b"\n\n"));
    }
}
