//! SMTP paths in `MAIL FROM:` / `RCPT TO:` (RFC 5321 §4.1.2, as Dovecot
//! 2.3's smtp-address parser reports errors) and the recipient's user name
//! and detail (`recipient_delimiter`).

use thiserror::Error;

/// Why a path was refused; the text follows `Invalid FROM: ` / `Invalid TO: `.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("Missing '<' at beginning of path")]
    MissingOpen,
    #[error("Missing '>' at end of path")]
    MissingClose,
    #[error("Null path not allowed")]
    NullPath,
    #[error("Unexpected whitespace before path")]
    WhitespaceBefore,
    #[error("Invalid character in path")]
    InvalidChar,
}

/// A parsed `<path>` and the parameter words after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAndParams {
    /// The address between the brackets (empty for `<>`), source route dropped.
    pub address: String,
    pub params: Vec<String>,
}

/// Parses `<path> [params]` (the text after `FROM:` / `TO:`).
pub fn parse_path(text: &str, allow_null: bool) -> Result<PathAndParams, PathError> {
    if text.starts_with([' ', '\t']) {
        return Err(PathError::WhitespaceBefore);
    }
    let rest = text.strip_prefix('<').ok_or(PathError::MissingOpen)?;
    let end = rest.find('>').ok_or(PathError::MissingClose)?;
    let inner = &rest[..end];
    let after = &rest[end + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(PathError::InvalidChar);
    }
    if inner.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'<') {
        return Err(PathError::InvalidChar);
    }
    // A source route (`@a,@b:user@host`) is accepted and ignored (RFC 5321 §C).
    let address = match inner.strip_prefix('@') {
        Some(_) => inner.split_once(':').map(|(_, a)| a).unwrap_or(""),
        None => inner,
    };
    if address.is_empty() && !allow_null {
        return Err(PathError::NullPath);
    }
    let params = after.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect();
    Ok(PathAndParams { address: address.to_string(), params })
}

/// The userdb name and the detail of a recipient address: with
/// `recipient_delimiter = +`, `alice+box@example.org` is user
/// `alice@example.org` with detail `box`. Any of the delimiter's
/// characters separates, the first one in the local part wins.
pub fn split_detail(address: &str, delimiters: &str) -> (String, Option<String>) {
    let (local, domain) = match address.rfind('@') {
        Some(at) => (&address[..at], Some(&address[at..])),
        None => (address, None),
    };
    if delimiters.is_empty() {
        return (address.to_string(), None);
    }
    match local.find(|c| delimiters.contains(c)) {
        Some(pos) => {
            let delimiter_len = local[pos..].chars().next().map_or(1, char::len_utf8);
            let user = format!("{}{}", &local[..pos], domain.unwrap_or(""));
            (user, Some(local[pos + delimiter_len..].to_string()))
        }
        None => (address.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_dovecots_errors() {
        let p = parse_path("<a@b> BODY=8BITMIME", true).unwrap();
        assert_eq!(p.address, "a@b");
        assert_eq!(p.params, vec!["BODY=8BITMIME"]);
        assert_eq!(parse_path("<>", true).unwrap().address, "");
        assert_eq!(parse_path("<>", false), Err(PathError::NullPath));
        assert_eq!(parse_path("garbage", true), Err(PathError::MissingOpen));
        assert_eq!(parse_path(" <a@b>", true), Err(PathError::WhitespaceBefore));
        assert_eq!(parse_path("<a@b", true), Err(PathError::MissingClose));
        assert_eq!(parse_path("<@x,@y:u@h>", false).unwrap().address, "u@h");
        assert_eq!(
            PathError::MissingOpen.to_string(),
            "Missing '<' at beginning of path",
            "the text Dovecot puts after `Invalid FROM: `"
        );
    }

    #[test]
    fn detail_split() {
        assert_eq!(split_detail("alice+box", "+"), ("alice".into(), Some("box".into())));
        assert_eq!(split_detail("alice+box@d.org", "+-"), ("alice@d.org".into(), Some("box".into())));
        assert_eq!(split_detail("a-b+c@d", "+-"), ("a@d".into(), Some("b+c".into())));
        assert_eq!(split_detail("alice@d", "+"), ("alice@d".into(), None));
        assert_eq!(split_detail("x+y", ""), ("x+y".into(), None));
    }
}
