//! APPEND's CATENATE (RFC 4469) with URL-PARTIAL (RFC 5550): a message
//! built from literal TEXT parts and IMAP URLs naming this user's messages
//! (`/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`, or
//! `;UID=…` relative to the selected mailbox). Absolute `imap://` URLs are
//! refused as Dovecot does; errors are `NO [BADURL url] …` with Dovecot's
//! texts where it has one.

use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::storage::{Mailbox, StorageError};

use crate::cmd_fetch::url_section;
use crate::dispatch::{Ctx, Done};
use crate::response::crlf;

/// A parsed message-part URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartUrl {
    /// `None`: the selected mailbox.
    pub mailbox: Option<String>,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    pub section: Option<String>,
    pub partial: Option<(u64, Option<u64>)>,
}

fn invalid(text: &str) -> String {
    format!("Invalid IMAP URL: {text}")
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(&format!("Value '{value}' is not a valid IMAP number")));
    }
    value.parse().map_err(|_| invalid(&format!("Value '{value}' is not a valid IMAP number")))
}

/// `%XX` decoding of one URL component.
fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else { return Err(invalid("Invalid %-encoding")) };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("Invalid UTF-8"))
}

/// `;NAME=value` (name case-insensitive).
fn param<'a>(segment: &'a str, name: &str) -> Option<&'a str> {
    let rest = segment.strip_prefix(';')?;
    let (n, v) = rest.split_once('=')?;
    n.eq_ignore_ascii_case(name).then_some(v)
}

impl PartUrl {
    pub fn parse(url: &str) -> Result<PartUrl, String> {
        if url.len() >= 5 && url[..5].eq_ignore_ascii_case("imap:") {
            return Err(if url[5..].starts_with("//") {
                invalid("Relative URL required")
            } else {
                invalid("Absolute IMAP URL requires `//' after `imap:'")
            });
        }
        let mut segments: Vec<&str> = url.split('/').collect();
        let mut parsed = PartUrl { mailbox: None, uid_validity: None, uid: 0, section: None, partial: None };
        if url.starts_with('/') {
            // "" before the first '/', then the mailbox segment.
            segments.remove(0);
            let first = if segments.is_empty() { "" } else { segments.remove(0) };
            let (name, validity) = match first.find(';') {
                Some(i) => (&first[..i], Some(&first[i..])),
                None => (first, None),
            };
            if name.is_empty() {
                return Err(invalid("Empty mailbox name"));
            }
            if let Some(v) = validity {
                let value = param(v, "UIDVALIDITY")
                    .ok_or_else(|| invalid(&format!("Unexpected IMAP URL path segment: `{v}'")))?;
                parsed.uid_validity = Some(number(value)?);
            }
            let name = unescape(name)?;
            parsed.mailbox = Some(if name.eq_ignore_ascii_case("INBOX") { "INBOX".into() } else { name });
        }
        let mut have_uid = false;
        for seg in segments {
            if let Some(v) = param(seg, "UID").filter(|_| !have_uid) {
                parsed.uid = number(v)?;
                have_uid = true;
            } else if let Some(v) = param(seg, "SECTION").filter(|_| have_uid && parsed.section.is_none()) {
                // A `;` inside the value starts an extension we don't know.
                if let Some(i) = v.find(';') {
                    return Err(invalid(&format!("Unrecognized IMAP URL extension: {}", &v[i..])));
                }
                parsed.section = Some(unescape(v)?);
            } else if let Some(v) = param(seg, "PARTIAL").filter(|_| have_uid && parsed.partial.is_none()) {
                let (off, len) = match v.split_once('.') {
                    Some((o, l)) => (o, Some(l)),
                    None => (v, None),
                };
                parsed.partial = Some((number(off)?, len.map(number).transpose()?));
            } else {
                return Err(invalid(&format!("Unexpected IMAP URL path segment: `{seg}'")));
            }
        }
        if !have_uid {
            return Err(invalid("URL does not name a message"));
        }
        Ok(parsed)
    }
}

/// The bytes a URL names, or the `NO` text.
fn resolve(ctx: &mut Ctx<'_>, url: &str) -> Result<Vec<u8>, String> {
    let bad = |text: String| format!("[BADURL {url}] {text}");
    let parsed = PartUrl::parse(url).map_err(bad)?;
    let selected_name = ctx.session.selected.as_ref().map(|s| s.name.clone());
    let name = match (&parsed.mailbox, &selected_name) {
        (Some(n), _) => n.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => return Err(bad(invalid("Relative URL not allowed"))),
    };
    let read = |mailbox: &mut Mailbox| -> Result<Vec<u8>, String> {
        if parsed.uid_validity.is_some_and(|v| v != mailbox.status().uid_validity) {
            return Err(bad("Invalid UIDVALIDITY".into()));
        }
        if mailbox.message(parsed.uid).is_none() {
            return Err(bad("Message not found".into()));
        }
        mailbox.read_message(parsed.uid).map_err(|_| bad("Message not found".into()))
    };
    let data = match ctx.session.selected.as_mut().filter(|s| s.name == name) {
        Some(sel) => read(&mut sel.mailbox)?,
        None => match ctx.login.user.open(&name) {
            Ok(mut mailbox) => read(&mut mailbox)?,
            Err(StorageError::NotFound(_)) => return Err(bad(format!("Mailbox doesn't exist: {name}"))),
            Err(e) => return Err(bad(crate::response::storage_error(&e))),
        },
    };
    let data = crlf(&data).into_owned();
    let bytes = match &parsed.section {
        None => data,
        Some(section) => match url_section(&data, section) {
            Ok(b) => b.unwrap_or_default(),
            Err(()) => return Err(bad(invalid("Invalid section"))),
        },
    };
    Ok(match parsed.partial {
        Some((off, len)) => {
            let start = usize::try_from(off).unwrap_or(usize::MAX).min(bytes.len());
            let end = len.map_or(bytes.len(), |l| {
                start.saturating_add(usize::try_from(l).unwrap_or(usize::MAX)).min(bytes.len())
            });
            bytes[start..end].to_vec()
        }
        None => bytes,
    })
}

/// The message a `CATENATE (…)` list builds (CRLF line ends as sent).
pub fn build(ctx: &mut Ctx<'_>, items: &[Arg]) -> Result<Vec<u8>, Done> {
    if items.is_empty() {
        return Err(ctx.bad("Empty CATENATE list"));
    }
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        match pair {
            [Arg::Atom(kind), Arg::Literal(data)] if kind.eq_ignore_ascii_case("TEXT") => {
                out.extend_from_slice(data)
            }
            [Arg::Atom(kind), url] if kind.eq_ignore_ascii_case("URL") => {
                let Some(url) = url.as_astring() else { return Err(ctx.invalid()) };
                let url = String::from_utf8_lossy(url).into_owned();
                out.extend(resolve(ctx, &url).map_err(Done::No)?);
            }
            _ => return Err(ctx.invalid()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_dovecots_errors() {
        let u = PartUrl::parse("/IN%42OX;UIDVALIDITY=7/;UID=3/;SECTION=1.MIME/;PARTIAL=2.5").unwrap();
        assert_eq!(
            u,
            PartUrl {
                mailbox: Some("INBOX".into()),
                uid_validity: Some(7),
                uid: 3,
                section: Some("1.MIME".into()),
                partial: Some((2, Some(5)))
            }
        );
        assert_eq!(PartUrl::parse(";UID=1").unwrap().mailbox, None);
        let err = |u: &str| PartUrl::parse(u).unwrap_err();
        assert_eq!(err("imap://a@h/INBOX/;UID=1"), "Invalid IMAP URL: Relative URL required");
        assert_eq!(
            err("imap:/INBOX/;UID=1"),
            "Invalid IMAP URL: Absolute IMAP URL requires `//' after `imap:'"
        );
        assert_eq!(err("/INBOX/;UID=x"), "Invalid IMAP URL: Value 'x' is not a valid IMAP number");
        assert_eq!(
            err("/INBOX/;UID=1/;FOO=1"),
            "Invalid IMAP URL: Unexpected IMAP URL path segment: `;FOO=1'"
        );
        assert_eq!(
            err("/INBOX/;UID=1/;SECTION=2;PARTIAL=1.5"),
            "Invalid IMAP URL: Unrecognized IMAP URL extension: ;PARTIAL=1.5"
        );
    }
}
