//! Response formatting: IMAP strings (quoted or literal), flag lists,
//! dates, the `(0.001 + 0.000 secs)` timing suffix and storage errors in
//! Dovecot's words.

use std::time::Instant;

use dovecote_mailproc::calendar::civil_from_days;
use dovecote_mailproc::storage::{Flags, Keywords, StorageError};

/// `text` as an IMAP string: quoted when it is short and safe, otherwise a
/// literal.
pub fn string(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    push_string(&mut out, text);
    out
}

pub fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    let quotable = text.len() < 1024 && text.iter().all(|b| (0x20..0x7f).contains(b));
    if quotable {
        out.push(b'"');
        for &b in text {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        push_literal(out, text);
    }
}

pub fn push_literal(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}

/// `nstring`: NIL or a string.
pub fn push_nstring(out: &mut Vec<u8>, text: Option<&[u8]>) {
    match text {
        Some(t) => push_string(out, t),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name as an astring: an atom when it can be one (as Dovecot
/// writes `* LIST (...) "." INBOX`), else quoted or a literal.
pub fn mailbox(name: &str) -> String {
    let atom = !name.is_empty()
        && !name.eq_ignore_ascii_case("NIL")
        && name.bytes().all(|b| b > b' ' && b < 0x7f && !b"(){%*\"\\".contains(&b));
    if atom {
        return name.to_string();
    }
    String::from_utf8_lossy(&string(name.as_bytes())).into_owned()
}

/// `(\Seen \Recent kw)`: system flags in Dovecot's order, then `\Recent`,
/// then keywords.
pub fn flag_list(flags: Flags, keywords: &Keywords, recent: bool) -> String {
    let mut parts: Vec<&str> = flags.names();
    if recent {
        parts.push("\\Recent");
    }
    parts.extend(keywords.iter().map(String::as_str));
    format!("({})", parts.join(" "))
}

/// Dovecot's `(0.001 + 0.000 secs)`: time in the command, then time spent
/// waiting for locks (not measured separately here).
pub fn timing(started: Instant) -> String {
    let ms = started.elapsed().as_millis().max(1);
    format!("({}.{:03} + 0.000 secs)", ms / 1000, ms % 1000)
}

/// The `NO` text for a storage error; internal errors are logged (stderr
/// reaches the master's log) and hidden from the client as Dovecot does.
pub fn storage_error(e: &StorageError) -> String {
    match e {
        StorageError::NotFound(name) => format!("[NONEXISTENT] Mailbox doesn't exist: {name}"),
        StorageError::AlreadyExists(_) => "[ALREADYEXISTS] Mailbox already exists".into(),
        StorageError::InvalidName { reason, .. } => format!("[CANNOT] Invalid mailbox name: {reason}"),
        StorageError::NoSuchMessage { .. } => {
            "[EXPUNGEISSUED] Some of the requested messages no longer exist.".into()
        }
        StorageError::NotPossible(text) => format!("[CANNOT] {text}"),
        StorageError::LockTimeout(_) => "[INUSE] Mailbox is locked, will abort in 0 seconds".to_string(),
        other => {
            eprintln!("Error: {other}");
            format!("[SERVERBUG] {} [{}]", dovecote_mailproc::postlogin::CRITICAL_MSG, now_text())
        }
    }
}

/// `2026-11-25 03:48:24` in local (here: UTC) time.
fn now_text() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// INTERNALDATE text: `"01-Jan-2020 10:00:00 +0000"` (UTC).
pub fn internal_date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    format!(
        "\"{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000\"",
        MONTHS[(m - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Converts bare LF line endings to CRLF (IMAP sends messages with CRLF).
pub fn crlf(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let needs = data.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
    if !needs {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = dovecote_mailproc::imap::date::parse_imap_datetime("01-Jan-2020 10:00:00 +0100");
        assert_eq!(t.map(internal_date).as_deref(), Some("\"01-Jan-2020 09:00:00 +0000\""));
        assert_eq!(&*crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(flag_list(Flags::SEEN, &Keywords::new(), true), "(\\Seen \\Recent)");
    }
}
