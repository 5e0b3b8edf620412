//! Response formatting: IMAP strings (quoted or literal), flag lists,
//! dates, the `(0.001 + 0.000 secs)` timing suffix and storage errors in
//! Dovecot's words.

use std::time::Instant;

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
    let (y, mo, d) = civil(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Days since 1970-01-01 to (year, month, day).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { era * 400 + yoe + 1 } else { era * 400 + yoe }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// INTERNALDATE text: `"01-Jan-2020 10:00:00 +0000"` (UTC).
pub fn internal_date(secs: i64) -> String {
    let (y, m, d) = civil(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    format!(
        "\"{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000\"",
        MONTHS[(m - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Parses `01-Jan-2020 10:00:00 +0100` (APPEND date-time) to Unix seconds.
pub fn parse_date_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(' ')?;
    let (time, zone) = rest.trim().split_once(' ')?;
    let days = parse_date(date.trim())?;
    let mut hms = time.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let mi: i64 = hms.next()?.parse().ok()?;
    let s: i64 = hms.next()?.parse().ok()?;
    if hms.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let zone = zone.trim();
    if zone.len() != 5 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    Some(days * 86400 + h * 3600 + mi * 60 + s - sign * (zh * 3600 + zm * 60))
}

/// Parses `1-Jan-2020` / `01-Jan-2020` to days since the epoch.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let d: u32 = parts.next()?.trim().parse().ok()?;
    let mon = parts.next()?;
    let y: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=31).contains(&d) {
        return None;
    }
    let m = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(mon))? as u32 + 1;
    Some(days_from_civil(y, m, d))
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
        let t = parse_date_time("01-Jan-2020 10:00:00 +0100").unwrap();
        assert_eq!(internal_date(t), "\"01-Jan-2020 09:00:00 +0000\"");
        assert_eq!(parse_date("29-Feb-2024").map(civil), Some((2024, 2, 29)));
        assert_eq!(&*crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(flag_list(Flags::SEEN, &Keywords::new(), true), "(\\Seen \\Recent)");
    }
}
