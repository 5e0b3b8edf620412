//! Typed setting values: parsing what an administrator writes (`30s`, `1G`,
//! `0600`, `yes`) and printing it back the way `doveconf` does (`30 secs`,
//! `1 G`, `0600`, `yes`).

use crate::catalog::Kind;

/// A parsed setting value. Sizes are bytes, times are seconds (or
/// milliseconds for [`Kind::TimeMsecs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Uint(u64),
    Octal(u64),
    Size(u64),
    Time(u64),
    TimeMsecs(u64),
    Port(u16),
    Str(String),
}

/// The largest value Dovecot keeps in an `unsigned int` setting.
const UINT_MAX: u64 = u32::MAX as u64;

impl Value {
    /// Parses `text` as a value of `kind`. The error is the reason Dovecot
    /// gives, without the file and line.
    pub fn parse(kind: Kind, text: &str) -> Result<Value, String> {
        match kind {
            Kind::Bool => parse_bool(text).map(Value::Bool),
            Kind::Uint => parse_uint(text).map(Value::Uint),
            Kind::Octal => parse_octal(text).map(Value::Octal),
            Kind::Size => parse_size(text).map(Value::Size),
            Kind::Time => parse_time(text).map(Value::Time),
            Kind::TimeMsecs => parse_msecs(text).map(Value::TimeMsecs),
            Kind::Port => parse_port(text).map(Value::Port),
            Kind::Str | Kind::StrVars => Ok(Value::Str(text.to_owned())),
            Kind::Enum(values) => {
                if values.contains(&text) {
                    Ok(Value::Str(text.to_owned()))
                } else {
                    Err(format!("Invalid value: {text}"))
                }
            }
        }
    }

    /// The value as `doveconf` prints it.
    pub fn display(&self) -> String {
        match self {
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            Value::Uint(n) => n.to_string(),
            Value::Octal(n) => format!("0{n:o}"),
            Value::Size(n) => display_size(*n),
            Value::Time(secs) => display_time(*secs),
            Value::TimeMsecs(ms) => display_msecs(*ms),
            Value::Port(p) => p.to_string(),
            Value::Str(s) => s.clone(),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Numbers of every numeric kind (sizes in bytes, times in their unit).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(n) | Value::Octal(n) | Value::Size(n) | Value::Time(n) => Some(*n),
            Value::TimeMsecs(n) => Some(*n),
            Value::Port(p) => Some(u64::from(*p)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "y" | "1" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("Invalid boolean value: {text} (use yes or no)")),
    }
}

/// Leading decimal digits of `text` and the rest. `None` when there are none.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number = text[..digits].parse::<u64>().ok()?;
    Some((number, &text[digits..]))
}

fn parse_uint(text: &str) -> Result<u64, String> {
    let trimmed = text.trim_matches([' ', '\t']);
    if trimmed.starts_with('-') {
        return Err(format!("Invalid number {text}: Number too small"));
    }
    match split_number(trimmed) {
        Some((n, "")) if n <= UINT_MAX => Ok(n),
        Some((_, "")) => Err(format!("Invalid number {text}: Number too large")),
        None if trimmed.len() > 1 && trimmed.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("Invalid number {text}: Number too large"))
        }
        _ => Err(format!("Invalid number {text}: Not a valid number")),
    }
}

/// File modes: octal with a leading `0`, else decimal. Like Dovecot, a value
/// past 32 bits wraps.
fn parse_octal(text: &str) -> Result<u64, String> {
    if text.len() > 1 && text.starts_with('0') {
        let mut n: u64 = 0;
        for b in text.bytes().skip(1) {
            if !(b'0'..=b'7').contains(&b) {
                return Err(format!("Invalid number: {text}"));
            }
            n = ((n << 3) | u64::from(b - b'0')) & UINT_MAX;
        }
        Ok(n)
    } else {
        parse_uint(text)
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match split_number(text) {
        Some((n, "")) if n <= u64::from(u16::MAX) => Ok(n as u16),
        _ => Err(format!("Invalid port number {text}")),
    }
}

/// A Dovecot size (`10M`, `512k`, `1 GiB`, `1024`) in bytes, for settings
/// outside the catalog too (plugin settings such as `quota_max_mail_size`).
/// The error is Dovecot's reason (`Invalid size: …`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("Invalid size: {text}");
    let (number, rest) = split_number(text).ok_or_else(invalid)?;
    let unit = rest.trim_start_matches([' ', '\t']);
    let mut chars = unit.chars();
    let multiplier: u64 = match chars.next().map(|c| c.to_ascii_lowercase()) {
        None => return Ok(number),
        Some('b') => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some(_) => return Err(invalid()),
    };
    // After the unit letter: nothing, `B`, or `iB` (`1k`, `1KB`, `1KiB`).
    let tail = chars.as_str().to_ascii_lowercase();
    if multiplier > 1 && !matches!(tail.as_str(), "" | "b" | "ib") || multiplier == 1 && !tail.is_empty() {
        return Err(invalid());
    }
    number.checked_mul(multiplier).ok_or_else(invalid)
}

/// Parses a time interval into milliseconds. A bare number is only allowed
/// for 0, as in Dovecot 2.3.
fn parse_time_msecs(text: &str) -> Result<u64, String> {
    let invalid = || format!("Invalid time interval: {text}");
    let (number, rest) = split_number(text).ok_or_else(invalid)?;
    let unit = rest.trim_start_matches([' ', '\t']);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" if number == 0 => 0,
        "" => return Err(format!("Time interval '{text}' is missing units (add e.g. 's' for seconds)")),
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * 1000,
        "h" | "hour" | "hours" => 3600 * 1000,
        "d" | "day" | "days" => 86400 * 1000,
        "w" | "week" | "weeks" => 7 * 86400 * 1000,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

fn parse_time(text: &str) -> Result<u64, String> {
    let ms = parse_time_msecs(text)?;
    if !ms.is_multiple_of(1000) {
        return Err(format!("Milliseconds not supported for this setting: {text}"));
    }
    let secs = ms / 1000;
    if secs > UINT_MAX {
        return Err(format!("Time interval is too large: {text}"));
    }
    Ok(secs)
}

fn parse_msecs(text: &str) -> Result<u64, String> {
    let ms = parse_time_msecs(text)?;
    if ms > UINT_MAX {
        return Err(format!("Time interval is too large: {text}"));
    }
    Ok(ms)
}

fn display_size(mut n: u64) -> String {
    if n == 0 {
        return "0".to_owned();
    }
    let mut suffix = 'B';
    for next in ['k', 'M', 'G', 'T'] {
        if !n.is_multiple_of(1024) {
            break;
        }
        n /= 1024;
        suffix = next;
    }
    format!("{n} {suffix}")
}

fn display_time(mut n: u64) -> String {
    if n == 0 {
        return "0".to_owned();
    }
    let mut suffix = "secs";
    for (divisor, next) in [(60, "mins"), (60, "hours"), (24, "days"), (7, "weeks")] {
        if !n.is_multiple_of(divisor) {
            break;
        }
        n /= divisor;
        suffix = next;
    }
    format!("{n} {suffix}")
}

fn display_msecs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        display_time(ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_in_the_largest_whole_unit() {
        assert_eq!(Value::parse(Kind::Size, "1G").unwrap().display(), "1 G");
        assert_eq!(Value::parse(Kind::Size, "512 M").unwrap().display(), "512 M");
        assert_eq!(Value::parse(Kind::Size, "1536k").unwrap().display(), "1536 k");
        assert_eq!(Value::parse(Kind::Size, "1000").unwrap().display(), "1000 B");
        assert_eq!(Value::parse(Kind::Size, "0").unwrap().display(), "0");
        assert!(Value::parse(Kind::Size, "foo").is_err());
    }

    #[test]
    fn times_print_in_the_largest_whole_unit() {
        assert_eq!(Value::parse(Kind::Time, "30s").unwrap().display(), "30 secs");
        assert_eq!(Value::parse(Kind::Time, "120s").unwrap().display(), "2 mins");
        assert!(Value::parse(Kind::Time, "60").is_err());
        assert_eq!(Value::parse(Kind::TimeMsecs, "1500ms").unwrap().display(), "1500 ms");
        assert_eq!(Value::parse(Kind::Size, "1KiB").unwrap().display(), "1 k");
        assert_eq!(Value::parse(Kind::Time, "90d").unwrap().display(), "90 days");
        assert_eq!(Value::parse(Kind::Time, "14 days").unwrap().display(), "2 weeks");
        assert_eq!(Value::parse(Kind::Time, "foo").unwrap_err(), "Invalid time interval: foo");
    }

    #[test]
    fn octal_modes_accept_decimal_without_leading_zero() {
        assert_eq!(Value::parse(Kind::Octal, "0600").unwrap().display(), "0600");
        assert_eq!(Value::parse(Kind::Octal, "999").unwrap().display(), "01747");
    }

    #[test]
    fn booleans_and_numbers_report_dovecots_errors() {
        assert_eq!(
            Value::parse(Kind::Bool, "maybe").unwrap_err(),
            "Invalid boolean value: maybe (use yes or no)"
        );
        assert_eq!(Value::parse(Kind::Uint, "x").unwrap_err(), "Invalid number x: Not a valid number");
        assert_eq!(Value::parse(Kind::Uint, "42").unwrap(), Value::Uint(42));
    }
}
