//! Dates SEARCH and SORT work with: IMAP `date` arguments (`1-Feb-1994`)
//! and RFC 5322 `Date:` header values, parsed as tolerantly as Dovecot
//! parses them (optional weekday and seconds, two-digit years, named and
//! numeric zones).

pub use crate::calendar::days_from_civil;

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

fn month(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == lower).map(|i| i as u32 + 1)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// A search date that isn't `d-Mon-yyyy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Invalid search date parameter")]
pub struct BadDate;

/// An IMAP search date: `Ok(Some(day number))`, `Ok(None)` for a day that
/// passes the syntax check but doesn't exist (`31-Feb-2026`: Dovecot
/// accepts it and nothing matches), `Err` for bad syntax.
pub fn parse_imap_date(s: &str) -> Result<Option<i64>, BadDate> {
    let mut it = s.split('-');
    let (Some(d), Some(m), Some(y), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(BadDate);
    };
    if d.is_empty() || d.len() > 2 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadDate);
    }
    if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadDate);
    }
    let day: u32 = d.parse().map_err(|_| BadDate)?;
    let year: i64 = y.parse().map_err(|_| BadDate)?;
    let mon = month(m).ok_or(BadDate)?;
    if !(1..=31).contains(&day) {
        return Err(BadDate);
    }
    if day > days_in_month(year, mon) {
        return Ok(None);
    }
    Ok(Some(days_from_civil(year, mon, day)))
}

/// An APPEND `date-time` (RFC 3501: `"dd-Mon-yyyy hh:mm:ss +zzzz"`, the
/// day may be space-padded) as Unix seconds. Anything else — including a
/// day that doesn't exist in its month — is `None`; the caller answers BAD.
pub fn parse_imap_datetime(s: &str) -> Option<i64> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    let mut fields = s.split(' ');
    let (Some(date), Some(time), Some(zone), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let days = parse_imap_date(date).ok()??;
    let t = time.as_bytes();
    let digits = |i: usize| -> Option<i64> {
        let (a, b) = (*t.get(i)?, *t.get(i + 1)?);
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    if t.len() != 8 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (h, mi, sec) = (digits(0)?, digits(3)?, digits(6)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let offset = zone_numeric(zone)?;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - i64::from(offset))
}

/// A `+hhmm` / `-hhmm` zone as seconds east of UTC.
fn zone_numeric(z: &str) -> Option<i32> {
    let b = z.as_bytes();
    if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize| i32::from(b[i] - b'0');
    let off = (n(1) * 10 + n(2)) * 3600 + (n(3) * 10 + n(4)) * 60;
    Some(if b[0] == b'-' { -off } else { off })
}

fn zone_offset(z: &str) -> Option<i32> {
    if let Some(off) = zone_numeric(z) {
        return Some(off);
    }
    let hours = match z.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ => return None,
    };
    Some(hours * 3600)
}

/// A `Date:` header value as (UTC seconds, zone offset in seconds).
pub fn parse_rfc822_date(value: &[u8]) -> Option<(i64, i32)> {
    let text = String::from_utf8_lossy(value);
    // Comments and commas are only separators here.
    let mut cleaned = String::with_capacity(text.len());
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ',' => cleaned.push(' '),
            c => cleaned.push(c),
        }
    }
    let mut tokens: Vec<&str> = cleaned.split_ascii_whitespace().collect();
    if tokens.first().is_some_and(|t| t.chars().all(|c| c.is_ascii_alphabetic())) {
        tokens.remove(0);
    }
    let day: u32 = tokens.first()?.parse().ok()?;
    let mon = month(tokens.get(1)?)?;
    let year_s = tokens.get(2)?;
    if !year_s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut year: i64 = year_s.parse().ok()?;
    if year_s.len() <= 2 {
        year += if year < 70 { 2000 } else { 1900 };
    } else if year_s.len() == 3 {
        year += 1900;
    }
    let mut time = tokens.get(3)?.split(':');
    let hour: i64 = time.next()?.parse().ok()?;
    let min: i64 = time.next()?.parse().ok()?;
    let sec: i64 = match time.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let offset = tokens.get(4).and_then(|z| zone_offset(z)).unwrap_or(0);
    let local = days_from_civil(year, mon, day) * 86_400 + hour * 3600 + min * 60 + sec;
    Some((local - i64::from(offset), offset))
}

/// The day number (days since 1970-01-01) of `ts` in the zone `offset`.
pub fn day_of(ts: i64, offset: i32) -> i64 {
    (ts + i64::from(offset)).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_dates() {
        assert_eq!(parse_imap_datetime("01-Jan-2020 10:00:00 +0100"), Some(1_577_869_200));
        assert_eq!(parse_imap_datetime(" 1-Jan-2020 10:00:00 -0030"), Some(1_577_874_600));
        for bad in [
            "",
            "01-Jan-2020",
            "01-Jan-2020 10:00:00",
            "01-Jan-2020 25:00:00 +0000",
            "31-Feb-2020 10:00:00 +0000",
            "01-Jan-2020 10:00:00 é+100",
            "01-Jan-2020 1é:00:0 +0000",
            "01-Jan-99999999999999999999 10:00:00 +0000",
            "01-Jan-2020 10:00:00 +0000 x",
        ] {
            assert_eq!(parse_imap_datetime(bad), None, "{bad:?}");
        }
        assert_eq!(parse_imap_date("1-Jan-1970"), Ok(Some(0)));
        assert_eq!(parse_imap_date("02-feb-1970"), Ok(Some(32)));
        assert_eq!(parse_imap_date("31-Feb-2026"), Ok(None));
        assert_eq!(parse_imap_date("notadate"), Err(BadDate));
        assert_eq!(parse_imap_date("32-Jan-2026"), Err(BadDate));
    }

    #[test]
    fn header_dates() {
        assert_eq!(parse_rfc822_date(b"Thu, 1 Jan 1970 01:00:00 +0100"), Some((0, 3600)));
        assert_eq!(parse_rfc822_date(b"1 Jan 70 00:00 GMT"), Some((0, 0)));
        let (ts, off) = parse_rfc822_date(b"Tue, 10 Nov 2026 23:59:59 -1200").unwrap();
        assert_eq!(off, -43_200);
        assert_eq!(day_of(ts, off), days_from_civil(2026, 11, 10));
        assert_eq!(parse_rfc822_date(b"garbage date"), None);
    }
}
