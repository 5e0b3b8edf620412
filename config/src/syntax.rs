//! Classifies one logical dovecot.conf line with the pest grammar in
//! `line.pest`: an assignment, a section opening or closing, an include, or a
//! malformed line with Dovecot's reason.

use pest::Parser;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "line.pest"]
struct LineParser;

/// How a value was written after `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// Unquoted text, as written.
    Plain(String),
    /// `"..."` or `'...'`, quotes removed and backslash escapes resolved.
    Quoted(String),
    /// `<path`: the value is the file's contents.
    File(String),
}

/// One logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Assignment {
        key: String,
        value: RawValue,
    },
    SectionBegin {
        kind: String,
        name: String,
    },
    SectionEnd,
    Include {
        pattern: String,
        ignore_missing: bool,
    },
    /// A line Dovecot rejects, with its reason.
    Malformed(&'static str),
}

/// Parses a logical line that is not empty and not a comment.
pub fn parse_line(text: &str) -> Line {
    let Ok(mut pairs) = LineParser::parse(Rule::line, text) else {
        // The last alternative accepts anything, so this is unreachable in
        // practice; report it the way Dovecot reports any unparsable line.
        return Line::Malformed("Expecting '{'");
    };
    let Some(pair) = pairs.next() else {
        return Line::Malformed("Expecting '{'");
    };
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    match rule {
        Rule::include | Rule::include_try => Line::Include {
            pattern: inner.next().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            ignore_missing: rule == Rule::include_try,
        },
        Rule::section_end => Line::SectionEnd,
        Rule::assignment => {
            let key = inner.next().map(|p| p.as_str().to_owned()).unwrap_or_default();
            let value = match inner.next() {
                Some(v) if v.as_rule() == Rule::file_value => {
                    RawValue::File(v.into_inner().next().map(|p| p.as_str().to_owned()).unwrap_or_default())
                }
                Some(v) if v.as_rule() == Rule::quoted_value => {
                    RawValue::Quoted(unescape(v.into_inner().next().map(|p| p.as_str()).unwrap_or_default()))
                }
                Some(v) => RawValue::Plain(v.as_str().to_owned()),
                None => RawValue::Plain(String::new()),
            };
            Line::Assignment { key, value }
        }
        Rule::section_begin => {
            let kind = inner.next().map(|p| p.as_str().to_owned()).unwrap_or_default();
            let name = match inner.next() {
                Some(n) if n.as_rule() == Rule::quoted_name => {
                    unescape(n.into_inner().next().map(|p| p.as_str()).unwrap_or_default())
                }
                Some(n) => n.as_str().to_owned(),
                None => String::new(),
            };
            Line::SectionBegin { kind, name }
        }
        Rule::garbage_after_brace => Line::Malformed("Garbage after '{'"),
        _ => Line::Malformed("Expecting '{'"),
    }
}

/// Resolves backslash escapes as Dovecot's `str_unescape` does: `\n`, `\r`,
/// `\t` become control characters, any other escaped character stands for
/// itself.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => break,
        }
    }
    out
}

/// Escapes a value for printing inside double quotes (Dovecot's `str_escape`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a block name inside a key path as Dovecot does, which decides
/// where `mailbox "Sent Messages"` sorts relative to `mailbox Sent`.
pub fn section_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '=' => out.push_str("\\e"),
            '/' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            ' ' => out.push_str("\\_"),
            ',' => out.push_str("\\+"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(key: &str, value: &str) -> Line {
        Line::Assignment { key: key.into(), value: RawValue::Plain(value.into()) }
    }

    #[test]
    fn assignments() {
        assert_eq!(parse_line("a = b c"), plain("a", "b c"));
        assert_eq!(parse_line("a=b"), plain("a", "b"));
        assert_eq!(parse_line("a ="), plain("a", ""));
        assert_eq!(
            parse_line(r#"a = "x \"y\" # z""#),
            Line::Assignment { key: "a".into(), value: RawValue::Quoted(r#"x "y" # z"#.into()) }
        );
        assert_eq!(
            parse_line("ssl_cert = </etc/x.pem"),
            Line::Assignment { key: "ssl_cert".into(), value: RawValue::File("/etc/x.pem".into()) }
        );
        assert_eq!(parse_line("a = \"unterminated"), plain("a", "\"unterminated"));
    }

    #[test]
    fn sections_and_includes() {
        assert_eq!(
            parse_line("service imap-login {"),
            Line::SectionBegin { kind: "service".into(), name: "imap-login".into() }
        );
        assert_eq!(
            parse_line(r#"mailbox "Sent Messages" {"#),
            Line::SectionBegin { kind: "mailbox".into(), name: "Sent Messages".into() }
        );
        assert_eq!(parse_line("passdb {"), Line::SectionBegin { kind: "passdb".into(), name: "".into() });
        assert_eq!(parse_line("}"), Line::SectionEnd);
        assert_eq!(
            parse_line("!include_try conf.d/*.conf"),
            Line::Include { pattern: "conf.d/*.conf".into(), ignore_missing: true }
        );
        assert_eq!(parse_line("service imap { x"), Line::Malformed("Garbage after '{'"));
        assert_eq!(parse_line("service imap"), Line::Malformed("Expecting '{'"));
        assert_eq!(parse_line("service imap{"), Line::Malformed("Expecting '{'"));
    }
}
