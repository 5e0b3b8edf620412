//! One LMTP command line → [`Command`]. Pure: no state, no I/O; the
//! session decides what a command means in its current state. Verbs are
//! case-insensitive; HELO/EHLO are not LMTP commands (RFC 2033 §4.1), so
//! they are [`Command::Unknown`] as in Dovecot.

use crate::address::{parse_path, PathAndParams, PathError};

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO domain`; `None` when the domain is missing.
    Lhlo(Option<String>),
    Mail(Result<PathAndParams, PathError>),
    Rcpt(Result<PathAndParams, PathError>),
    Data,
    /// `BDAT size [LAST]`; `None` when the arguments don't parse.
    Bdat(Option<(u64, bool)>),
    Rset,
    Noop,
    Quit,
    Vrfy,
    StartTls,
    /// AUTH, EXPN, HELP, TURN, ...: known SMTP verbs LMTP does not offer.
    Unsupported,
    /// `MAIL`/`RCPT` without a `FROM:`/`TO:` or with extra spaces.
    BadSyntax,
    Unknown,
}

/// Parses one line (without CRLF).
pub fn parse(line: &[u8]) -> Command {
    let text = String::from_utf8_lossy(line);
    let (verb, args) = match text.split_once(' ') {
        Some((v, a)) => (v, Some(a)),
        None => (text.as_ref(), None),
    };
    match verb.to_ascii_uppercase().as_str() {
        "LHLO" => {
            let domain = args.and_then(|a| a.split(' ').find(|w| !w.is_empty())).map(str::to_string);
            Command::Lhlo(domain)
        }
        "MAIL" => match args.and_then(|a| strip_prefix_ci(a, "FROM:")) {
            Some(path) => Command::Mail(parse_path(path, true)),
            None => Command::BadSyntax,
        },
        "RCPT" => match args.and_then(|a| strip_prefix_ci(a, "TO:")) {
            Some(path) => Command::Rcpt(parse_path(path, false)),
            None => Command::BadSyntax,
        },
        "DATA" => Command::Data,
        "BDAT" => Command::Bdat(args.and_then(parse_bdat)),
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        "VRFY" => Command::Vrfy,
        "STARTTLS" => Command::StartTls,
        "AUTH" | "EXPN" | "HELP" | "TURN" | "ETRN" | "BURL" | "XCLIENT" => Command::Unsupported,
        _ => Command::Unknown,
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn parse_bdat(args: &str) -> Option<(u64, bool)> {
    let mut words = args.split(' ');
    let size = words.next()?;
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size = size.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some((size, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_arguments() {
        assert_eq!(parse(b"lhlo client.example"), Command::Lhlo(Some("client.example".into())));
        assert_eq!(parse(b"LHLO"), Command::Lhlo(None));
        assert!(matches!(parse(b"mail from:<a@b>"), Command::Mail(Ok(p)) if p.address == "a@b"));
        assert_eq!(parse(b"MAIL  FROM:<a@b>"), Command::BadSyntax);
        assert!(matches!(parse(b"MAIL FROM: <a@b>"), Command::Mail(Err(PathError::WhitespaceBefore))));
        assert!(matches!(parse(b"RCPT TO:<>"), Command::Rcpt(Err(PathError::NullPath))));
        assert_eq!(parse(b"BDAT 10 LAST"), Command::Bdat(Some((10, true))));
        assert_eq!(parse(b"BDAT 10"), Command::Bdat(Some((10, false))));
        assert_eq!(parse(b"BDAT x"), Command::Bdat(None));
        assert_eq!(parse(b"BDAT -1"), Command::Bdat(None));
        assert_eq!(parse(b"EHLO x"), Command::Unknown);
        assert_eq!(parse(b"AUTH PLAIN"), Command::Unsupported);
        assert_eq!(parse(b"\xff\x00"), Command::Unknown);
        assert_eq!(parse(b""), Command::Unknown);
    }
}
