//! FETCH BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) exactly as Dovecot 2.3
//! prints them, from the part tree of [`super::parts`]: quoted type and
//! subtype as written in the message, a default `("charset" "us-ascii")`
//! for text parts, sizes counting bare LFs as CRLF, line counts for text
//! and message/rfc822 parts, and for BODYSTRUCTURE the MD5, disposition,
//! language and location extension data.
//!
//! Cost and caching: unlike ENVELOPE this reads the whole message (sizes
//! and line counts of every part), so FETCH BODY/BODYSTRUCTURE should keep
//! the rendered bytes of both forms in the per-message field cache (as
//! Dovecot caches `imap.body`/`imap.bodystructure`) and parse only on a
//! miss; messages are immutable, so the cache never needs invalidating.
//! [`super::parts::parse`] also gives the byte ranges BODY[section] needs.

use super::envelope::Envelope;
use super::parts::{self, Kind, Part};
use super::quote;

const EMPTY_BODY: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
const EMPTY_BODYSTRUCTURE: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

/// FETCH BODY (non-extensible) of a whole message.
pub fn body(message: &[u8]) -> String {
    to_string(render(message, false))
}

/// FETCH BODYSTRUCTURE (extensible) of a whole message.
pub fn bodystructure(message: &[u8]) -> String {
    to_string(render(message, true))
}

/// BODY or BODYSTRUCTURE as exact wire bytes (8-bit parameters and
/// descriptions travel in literals).
pub fn render(message: &[u8], extended: bool) -> Vec<u8> {
    let root = parts::parse(message);
    let mut out = Vec::with_capacity(256);
    write_part(&mut out, message, &root, extended);
    out
}

fn to_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Writes one part in parentheses.
pub fn write_part(out: &mut Vec<u8>, message: &[u8], part: &Part, extended: bool) {
    out.push(b'(');
    if part.kind == Kind::Multipart {
        write_multipart(out, message, part, extended);
    } else {
        write_leaf(out, message, part, extended);
    }
    out.push(b')');
}

fn params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)], default_charset: bool) {
    if params.is_empty() && !default_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    let mut seen_charset = false;
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        seen_charset |= k.eq_ignore_ascii_case(b"charset");
        quote::string(out, k);
        out.push(b' ');
        quote::string(out, v);
    }
    if default_charset && !seen_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

fn write_multipart(out: &mut Vec<u8>, message: &[u8], part: &Part, extended: bool) {
    if part.children.is_empty() {
        out.extend_from_slice(if extended { EMPTY_BODYSTRUCTURE } else { EMPTY_BODY });
    }
    for child in &part.children {
        write_part(out, message, child, extended);
    }
    out.push(b' ');
    quote::string(out, part.data.content_subtype.as_deref().unwrap_or_default());
    if !extended {
        return;
    }
    out.push(b' ');
    params(out, &part.data.params, false);
    write_common_ext(out, part);
}

fn write_leaf(out: &mut Vec<u8>, message: &[u8], part: &Part, extended: bool) {
    let d = &part.data;
    let text = part.is_text();
    match (part.kind, &d.content_type) {
        (Kind::Message, _) => out.extend_from_slice(b"\"message\" \"rfc822\""),
        (_, None) => out.extend_from_slice(b"\"text\" \"plain\""),
        (_, Some(t)) => {
            quote::string(out, t);
            out.push(b' ');
            quote::string(out, d.content_subtype.as_deref().unwrap_or_default());
        }
    }
    out.push(b' ');
    params(out, &d.params, text);
    out.push(b' ');
    quote::nstring_nolf(out, d.id.as_deref());
    out.push(b' ');
    quote::nstring_nolf(out, d.description.as_deref());
    out.push(b' ');
    match &d.transfer_encoding {
        Some(e) => quote::string(out, e),
        None => out.extend_from_slice(b"\"7bit\""),
    }
    out.extend_from_slice(format!(" {}", part.body_vsize).as_bytes());
    if text {
        out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
    } else if part.kind == Kind::Message {
        if let Some(child) = part.children.first() {
            out.push(b' ');
            let header = message.get(child.header.0..child.header.1).unwrap_or_default();
            Envelope::parse(header).write(out);
            out.push(b' ');
            write_part(out, message, child, extended);
        }
        out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
    }
    if !extended {
        return;
    }
    out.push(b' ');
    quote::nstring_nolf(out, d.md5.as_deref());
    write_common_ext(out, part);
}

/// Disposition, language and location.
fn write_common_ext(out: &mut Vec<u8>, part: &Part) {
    let d = &part.data;
    out.push(b' ');
    match &d.disposition {
        None => out.extend_from_slice(b"NIL"),
        Some(disp) => {
            out.push(b'(');
            quote::string(out, disp);
            out.push(b' ');
            params(out, &d.disposition_params, false);
            out.push(b')');
        }
    }
    out.push(b' ');
    match &d.language {
        None => out.extend_from_slice(b"NIL"),
        Some(langs) => {
            out.push(b'(');
            for (i, l) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                quote::string(out, l);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    quote::nstring_nolf(out, d.location.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message() {
        let m = b"From: a@b\nSubject: hi\n\nbody\n";
        assert_eq!(body(m), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
        assert_eq!(
            bodystructure(m),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn multipart_without_children() {
        let m = b"Content-Type: multipart/mixed\n\n--x\n\nbody\n";
        assert_eq!(
            bodystructure(m),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)"
        );
    }
}
