//! The POP3 command line grammar as Dovecot 2.3's `pop3` reads it: a name
//! (case-insensitive, up to the first space), then arguments with leading
//! spaces skipped, and the message-number / line-count arguments with
//! Dovecot's exact error texts (`-ERR Invalid message number: x`, ...).
//!
//! Pure functions over bytes, so the fuzz target can hammer them.

/// Longest line (with its CRLF) Dovecot's pop3 buffers (`MAX_INBUF_SIZE`).
pub const MAX_LINE: usize = 2048;

/// One command line split Dovecot's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// The name, ASCII-uppercased.
    pub name: Vec<u8>,
    /// Everything after the first space, leading spaces skipped.
    pub args: &'a [u8],
}

/// Splits a line (without its line ending). Like Dovecot, which reads the
/// line as a C string, everything from the first NUL on is ignored.
pub fn split(line: &[u8]) -> CommandLine<'_> {
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let (name, args) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &line[line.len()..]),
    };
    let skip = args.iter().take_while(|b| **b == b' ').count();
    CommandLine { name: name.to_ascii_uppercase(), args: &args[skip..] }
}

/// The commands the post-login POP3 state knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Capa,
    Dele,
    List,
    Last,
    Noop,
    Quit,
    Retr,
    Rset,
    Stat,
    Top,
    Uidl,
}

impl Verb {
    /// The verb of an uppercased name; `LAST` only when enabled.
    pub fn from_name(name: &[u8], enable_last: bool) -> Option<Verb> {
        Some(match name {
            b"CAPA" => Verb::Capa,
            b"DELE" => Verb::Dele,
            b"LIST" => Verb::List,
            b"LAST" if enable_last => Verb::Last,
            b"NOOP" => Verb::Noop,
            b"QUIT" => Verb::Quit,
            b"RETR" => Verb::Retr,
            b"RSET" => Verb::Rset,
            b"STAT" => Verb::Stat,
            b"TOP" => Verb::Top,
            b"UIDL" => Verb::Uidl,
            _ => return None,
        })
    }
}

/// The reply to an unknown command name.
pub fn unknown_reply(name: &[u8]) -> Vec<u8> {
    if name.is_empty() {
        return b"-ERR Unknown command.\r\n".to_vec();
    }
    let mut out = b"-ERR Unknown command: ".to_vec();
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\n");
    out
}

/// A number argument that did not parse; [`ArgError::reply`] is the line
/// Dovecot sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    InvalidNumber(Vec<u8>),
    NumberTooLarge(Vec<u8>),
    NoiseAfterNumber(Vec<u8>),
    InvalidSize(Vec<u8>),
    SizeTooLarge(Vec<u8>),
    NoiseAfterSize(Vec<u8>),
}

impl ArgError {
    pub fn reply(&self) -> Vec<u8> {
        let (text, rest): (&[u8], &[u8]) = match self {
            ArgError::InvalidNumber(r) => (b"-ERR Invalid message number: ", r),
            ArgError::NumberTooLarge(r) => (b"-ERR Message number too large: ", r),
            ArgError::NoiseAfterNumber(r) => (b"-ERR Noise after message number: ", r),
            ArgError::InvalidSize(r) => (b"-ERR Invalid size: ", r),
            ArgError::SizeTooLarge(r) => (b"-ERR Size too large: ", r),
            ArgError::NoiseAfterSize(r) => (b"-ERR Noise after size: ", r),
        };
        let mut out = text.to_vec();
        out.extend_from_slice(rest);
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Leading decimal digits as u64: `Ok((value, rest))`, or `Err(())` when the
/// digits overflow 64 bits (Dovecot then reports the whole argument).
fn digits(args: &[u8]) -> Result<(u64, &[u8]), ()> {
    let n = args.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut value: u64 = 0;
    for &d in &args[..n] {
        value = value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))).ok_or(())?;
    }
    Ok((value, &args[n..]))
}

/// What must follow a number: a space (more arguments) or the end.
fn check_end(rest: &[u8], then_space: bool) -> bool {
    if then_space {
        rest.first() == Some(&b' ')
    } else {
        rest.is_empty()
    }
}

fn skip_spaces(rest: &[u8]) -> &[u8] {
    let n = rest.iter().take_while(|b| **b == b' ').count();
    &rest[n..]
}

/// A message number (1-based, not yet range-checked) and the arguments
/// after it (spaces skipped).
pub fn msgnum(args: &[u8], then_space: bool) -> Result<(u32, &[u8]), ArgError> {
    if !args.first().is_some_and(u8::is_ascii_digit) {
        return Err(ArgError::InvalidNumber(args.to_vec()));
    }
    let (value, rest) = digits(args).map_err(|()| ArgError::NumberTooLarge(args.to_vec()))?;
    // The digits fit 64 bits but not an unsigned int: Dovecot has already
    // moved past them and reports only what follows.
    let value = u32::try_from(value).map_err(|_| ArgError::NumberTooLarge(rest.to_vec()))?;
    if !check_end(rest, then_space) {
        return Err(ArgError::NoiseAfterNumber(rest.to_vec()));
    }
    Ok((value, skip_spaces(rest)))
}

/// TOP's line count.
pub fn size(args: &[u8], then_space: bool) -> Result<(u64, &[u8]), ArgError> {
    if !args.first().is_some_and(u8::is_ascii_digit) {
        return Err(ArgError::InvalidSize(args.to_vec()));
    }
    let (value, rest) = digits(args).map_err(|()| ArgError::SizeTooLarge(args.to_vec()))?;
    if !check_end(rest, then_space) {
        return Err(ArgError::NoiseAfterSize(rest.to_vec()));
    }
    Ok((value, skip_spaces(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_uppercases_and_skips_spaces() {
        let c = split(b"list   1 ");
        assert_eq!(c.name, b"LIST");
        assert_eq!(c.args, b"1 ");
        let c = split(b"NO\0OP");
        assert_eq!(c.name, b"NO");
        assert_eq!(split(b"").name, b"");
        assert_eq!(split(b" STAT").name, b"");
    }

    #[test]
    fn number_errors_read_as_dovecot() {
        let reply = |r: Result<(u32, &[u8]), ArgError>| String::from_utf8(r.unwrap_err().reply()).unwrap();
        assert_eq!(reply(msgnum(b"x", false)), "-ERR Invalid message number: x\r\n");
        assert_eq!(reply(msgnum(b"", false)), "-ERR Invalid message number: \r\n");
        assert_eq!(reply(msgnum(b"1x", false)), "-ERR Noise after message number: x\r\n");
        assert_eq!(reply(msgnum(b"1", true)), "-ERR Noise after message number: \r\n");
        assert_eq!(reply(msgnum(b"1 ", false)), "-ERR Noise after message number:  \r\n");
        assert_eq!(reply(msgnum(b"99999999999x", false)), "-ERR Message number too large: x\r\n");
        assert_eq!(
            reply(msgnum(b"99999999999999999999999x", false)),
            "-ERR Message number too large: 99999999999999999999999x\r\n"
        );
        assert_eq!(msgnum(b"2  5", true).unwrap(), (2, &b"5"[..]));
        assert_eq!(size(b"5", false).unwrap(), (5, &b""[..]));
        let e = size(b"99999999999999999999999", false).unwrap_err();
        assert_eq!(e.reply(), b"-ERR Size too large: 99999999999999999999999\r\n");
        assert_eq!(size(b"1 2", false).unwrap_err().reply(), b"-ERR Noise after size:  2\r\n");
        assert_eq!(size(b"x", false).unwrap_err().reply(), b"-ERR Invalid size: x\r\n");
    }

    #[test]
    fn last_is_a_command_only_when_enabled() {
        assert_eq!(Verb::from_name(b"LAST", false), None);
        assert_eq!(Verb::from_name(b"LAST", true), Some(Verb::Last));
        assert_eq!(unknown_reply(b"FOO"), b"-ERR Unknown command: FOO\r\n");
        assert_eq!(unknown_reply(b""), b"-ERR Unknown command.\r\n");
    }
}
