//! The text preview of FETCH SNIPPET (FUZZY) / PREVIEW (RFC 8970) as
//! Dovecot 2.3 makes it: the first text part (multiparts are searched,
//! message/rfc822 parts are not), transfer- and charset-decoded, HTML
//! turned into text, at most 200 characters with whitespace runs as one
//! space. Lines starting with `>` are quoted text: used (after a `>`)
//! only when nothing else is there; the whitespace flag is shared between
//! the two, as in Dovecot's message-snippet.c.

use super::parts::{self, Kind, Part};
use super::text;

/// Dovecot's `BODY_SNIPPET_MAX_CHARS`.
pub const MAX_CHARS: usize = 200;

/// The preview of a (CRLF or LF) message.
pub fn snippet(message: &[u8]) -> String {
    let root = parts::parse(message);
    let Some(part) = first_text_part(&root) else { return String::new() };
    let body = message.get(part.body.0..part.body.1).unwrap_or_default();
    let charset = part
        .data
        .params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let decoded = text::decode_body(body, part.data.transfer_encoding.as_deref(), charset.as_deref());
    let html = part.data.content_subtype.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(b"html"));
    let plain = if html { html_to_text(&decoded) } else { decoded };
    make_snippet(&plain, MAX_CHARS)
}

/// A text/* leaf (or one without Content-Type), depth first through
/// multiparts only.
fn first_text_part(part: &Part) -> Option<&Part> {
    match part.kind {
        Kind::Leaf if part.is_text() => Some(part),
        Kind::Multipart => part.children.iter().find_map(first_text_part),
        _ => None,
    }
}

#[derive(Default)]
struct Target {
    text: String,
    left: usize,
}

impl Target {
    /// Adds the pending space and one character while there is room.
    fn push(&mut self, c: char, space: &mut bool) {
        if *space {
            *space = false;
            if self.left == 0 {
                return;
            }
            self.left -= 1;
            self.text.push(' ');
        }
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        self.text.push(c);
    }
}

/// The snippet of plain text.
pub fn make_snippet(plain: &str, max: usize) -> String {
    let mut normal = Target { text: String::new(), left: max };
    let mut quoted = Target { text: String::new(), left: max };
    let mut space = false;
    let mut newline = true;
    let mut in_quote = false;
    let mut chars = plain.chars();
    while let Some(mut c) = chars.next() {
        if newline {
            newline = false;
            in_quote = c == '>';
            if in_quote {
                match chars.next() {
                    Some(next) => c = next,
                    None => break,
                }
            }
        }
        let target = if in_quote { &mut quoted } else { &mut normal };
        if c == '\u{feff}' || c == '\0' {
            continue;
        }
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
            if !target.text.is_empty() {
                space = true;
            }
            newline = c == '\n';
            continue;
        }
        target.push(c, &mut space);
        if normal.left == 0 {
            break;
        }
    }
    let trim = |s: &str| s.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']).to_string();
    if !normal.text.is_empty() {
        trim(&normal.text)
    } else if !quoted.text.is_empty() {
        format!(">{}", trim(&quoted.text))
    } else {
        String::new()
    }
}

/// HTML to text as Dovecot's mail-html2text does it for snippets: every
/// tag is a space, comments nothing, `<script>`/`<style>`/`<blockquote>`
/// content dropped, entities decoded (unknown named ones dropped, a `&`
/// without `;` dropped).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    let mut quote_depth = 0usize;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(after) = rest.strip_prefix("<!--") {
                rest = after.find("-->").map_or("", |e| &after[e + 3..]);
                continue;
            }
            let (inner, after) = match rest.find('>') {
                Some(e) => (&rest[1..e], &rest[e + 1..]),
                None => (&rest[1..], ""),
            };
            let tag = inner.trim().to_ascii_lowercase();
            rest = after;
            let name: String =
                tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            let closing = tag.starts_with('/');
            if let Some(until) = skip_until {
                if closing && name == until {
                    skip_until = None;
                }
                continue;
            }
            match (name.as_str(), closing) {
                ("script", false) => skip_until = Some("script"),
                ("style", false) => skip_until = Some("style"),
                ("blockquote", false) => {
                    if quote_depth == 0 {
                        out.push(' ');
                    }
                    quote_depth += 1;
                }
                ("blockquote", true) => quote_depth = quote_depth.saturating_sub(1),
                _ if quote_depth == 0 => out.push(' '),
                _ => {}
            }
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if skip_until.is_some() || quote_depth > 0 {
            continue;
        }
        if c != '&' {
            out.push(c);
            continue;
        }
        let name_len = rest.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '#')).unwrap_or(rest.len());
        let name = &rest[..name_len];
        if rest[name_len..].starts_with(';') {
            rest = &rest[name_len + 1..];
            if let Some(ch) = entity(name) {
                out.push(ch);
            }
        }
        // Without `;` the `&` is dropped and the name stays text.
    }
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    let code = match name {
        "amp" => 38,
        "lt" => 60,
        "gt" => 62,
        "quot" => 34,
        "apos" => 39,
        "nbsp" => 160,
        "iexcl" => 161,
        "cent" => 162,
        "pound" => 163,
        "curren" => 164,
        "yen" => 165,
        "brvbar" => 166,
        "sect" => 167,
        "uml" => 168,
        "copy" => 169,
        "ordf" => 170,
        "laquo" => 171,
        "not" => 172,
        "shy" => 173,
        "reg" => 174,
        "macr" => 175,
        "deg" => 176,
        "plusmn" => 177,
        "sup2" => 178,
        "sup3" => 179,
        "acute" => 180,
        "micro" => 181,
        "para" => 182,
        "middot" => 183,
        "cedil" => 184,
        "sup1" => 185,
        "ordm" => 186,
        "raquo" => 187,
        "frac14" => 188,
        "frac12" => 189,
        "frac34" => 190,
        "iquest" => 191,
        "times" => 215,
        "divide" => 247,
        "szlig" => 223,
        "Ccedil" => 199,
        "ccedil" => 231,
        "Ntilde" => 209,
        "ntilde" => 241,
        "AElig" => 198,
        "aelig" => 230,
        "Oslash" => 216,
        "oslash" => 248,
        "ndash" => 0x2013,
        "mdash" => 0x2014,
        "lsquo" => 0x2018,
        "rsquo" => 0x2019,
        "sbquo" => 0x201a,
        "ldquo" => 0x201c,
        "rdquo" => 0x201d,
        "bdquo" => 0x201e,
        "bull" => 0x2022,
        "hellip" => 0x2026,
        "euro" => 0x20ac,
        "trade" => 0x2122,
        _ => return latin1_letter(name),
    };
    char::from_u32(code)
}

/// `Agrave`, `eacute`, `ouml`…: the Latin-1 letters by base and accent.
fn latin1_letter(name: &str) -> Option<char> {
    const ACCENTS: [(&str, [u32; 12]); 6] = [
        // A, E, I, O, U, Y, a, e, i, o, u, y (0 = none)
        ("grave", [0xc0, 0xc8, 0xcc, 0xd2, 0xd9, 0, 0xe0, 0xe8, 0xec, 0xf2, 0xf9, 0]),
        ("acute", [0xc1, 0xc9, 0xcd, 0xd3, 0xda, 0xdd, 0xe1, 0xe9, 0xed, 0xf3, 0xfa, 0xfd]),
        ("circ", [0xc2, 0xca, 0xce, 0xd4, 0xdb, 0, 0xe2, 0xea, 0xee, 0xf4, 0xfb, 0]),
        ("tilde", [0xc3, 0, 0, 0xd5, 0, 0, 0xe3, 0, 0, 0xf5, 0, 0]),
        ("uml", [0xc4, 0xcb, 0xcf, 0xd6, 0xdc, 0, 0xe4, 0xeb, 0xef, 0xf6, 0xfc, 0xff]),
        ("ring", [0xc5, 0, 0, 0, 0, 0, 0xe5, 0, 0, 0, 0, 0]),
    ];
    let mut chars = name.chars();
    let base = chars.next()?;
    let accent = chars.as_str();
    let index = "AEIOUYaeiouy".find(base)?;
    let (_, codes) = ACCENTS.iter().find(|(a, _)| *a == accent)?;
    char::from_u32(codes[index]).filter(|_| codes[index] != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each expectation is Dovecot 2.3.19's FETCH SNIPPET for the message.
    #[test]
    fn plain_text_like_dovecot() {
        let m =
            b"Subject: a\r\n\r\nHello   world,\r\n\r\n> quoted line\r\nthis is   the body.\r\n-- \r\nsig\r\n";
        assert_eq!(snippet(m), "Hello world, this is the body. -- sig");
        assert_eq!(snippet(b"Subject: a\r\n\r\na b c\r\n"), "a b c");
        assert_eq!(snippet(b"Subject: c\r\n\r\n> only quoted\r\n>  more\r\n"), ">only quoted more");
        let words = "word ".repeat(100);
        let got = snippet(format!("Subject: e\r\n\r\n{words}\r\n").as_bytes());
        assert_eq!((got.chars().count(), got.matches("word").count()), (199, 40));
        let e = "\u{e9}".repeat(150);
        assert_eq!(snippet(format!("Subject: h\r\n\r\n{e}\r\n").as_bytes()), e);
        assert_eq!(
            snippet(b"Subject: f\r\n\r\n\xef\xbb\xbfbom x\x00y \"q\" back\\s\r\n"),
            "bom xy \"q\" back\\s"
        );
        let latin1 = b"Subject: g\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n\xe9t\xe9 x\r\n";
        assert_eq!(snippet(latin1), "\u{e9}t\u{e9} x");
    }

    #[test]
    fn parts_like_dovecot() {
        let alt = b"Subject: c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\n\
                    Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                    Caf=C3=A9 =\r\nau lait\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--x--\r\n";
        assert_eq!(snippet(alt), "Caf\u{e9} au lait");
        let mixed = b"Subject: d\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: image/png\r\n\r\n\
                      xx\r\n--x\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--x--\r\n";
        assert_eq!(snippet(mixed), "second part");
        assert_eq!(snippet(b"Subject: d\r\nContent-Type: application/pdf\r\n\r\nxxxx\r\n"), "");
        assert_eq!(
            snippet(b"Subject: e\r\nContent-Type: message/rfc822\r\n\r\nSubject: i\r\n\r\nbody\r\n"),
            ""
        );
    }

    #[test]
    fn html_like_dovecot() {
        let h = b"Subject: b\r\nContent-Type: text/html\r\n\r\n<html><head><style>x{}</style></head><body><p>Hi &amp; \
                  <b>there</b></p>&lt;ok&gt; &eacute;&#233;</body></html>\r\n";
        assert_eq!(snippet(h), "Hi & there <ok> \u{e9}\u{e9}");
        let h = b"Subject: b\r\nContent-Type: text/html\r\n\r\n<div>bo<b>ld</b>x<br>y</div><script>var a=1;</script>\
                  z&nbsp;w&copy;&euro;&#x41;&bogus; &amp</div>\r\n";
        assert_eq!(snippet(h), "bo ld x y z\u{a0}w\u{a9}\u{20ac}A amp");
        let h = b"Subject: g\r\nContent-Type: text/html\r\n\r\n<html><head><title>T</title></head><body>A<blockquote>\
                  quoted</blockquote>B<!-- c -->C</body></html>\r\n";
        assert_eq!(snippet(h), "T A BC");
    }
}
