//! Text as SEARCH compares it: header values with MIME encoded words
//! decoded (RFC 2047, whitespace between adjacent encoded words dropped,
//! malformed ones kept literally), bodies with their transfer encoding and
//! charset undone, and Dovecot's comparison form (decomposed, case-folded:
//! its i;unicode-casemap) with optional whitespace compression.

use icu_normalizer::DecomposingNormalizerBorrowed;

use super::charset;

/// One decoded encoded word found at the start of `s`: (charset, decoded
/// bytes, length consumed).
fn encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let rest = s.strip_prefix(b"=?")?;
    let q1 = rest.iter().position(|&c| c == b'?')?;
    let cs = &rest[..q1];
    if cs.is_empty() || cs.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let end = rest[text_start..].windows(2).position(|w| w == b"?=")? + text_start;
    let text = &rest[text_start..end];
    let decoded = match enc {
        b'B' | b'b' => base64(text)?,
        b'Q' | b'q' => quoted_printable(text, true),
        _ => return None,
    };
    // RFC 2231 language suffix: charset*lang
    let cs = String::from_utf8_lossy(cs);
    let cs = cs.split('*').next().unwrap_or_default().to_string();
    Some((cs, decoded, 2 + end + 2))
}

/// A header value with encoded words decoded, as UTF-8.
pub fn decode_header(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut raw = Vec::new();
    let mut pos = 0;
    let mut last_was_word = false;
    while pos < value.len() {
        if value[pos] == b'=' {
            if let Some((cs, bytes, len)) = encoded_word(&value[pos..]) {
                // Whitespace between two encoded words is dropped.
                if last_was_word && raw.iter().all(|c: &u8| c.is_ascii_whitespace()) {
                    raw.clear();
                }
                out.push_str(&charset::to_utf8(&raw, None));
                raw.clear();
                out.push_str(&charset::to_utf8(&bytes, Some(&cs)));
                pos += len;
                last_was_word = true;
                continue;
            }
        }
        if !value[pos].is_ascii_whitespace() {
            last_was_word = false;
        }
        raw.push(value[pos]);
        pos += 1;
    }
    out.push_str(&charset::to_utf8(&raw, None));
    out
}

/// Base64 decoding that skips whitespace and stops at padding; `None` for
/// other bytes outside the alphabet.
pub fn base64(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Base64 body decoding: bytes outside the alphabet are skipped.
fn base64_lenient(data: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        .collect();
    base64(&clean).unwrap_or_default()
}

/// Quoted-printable; `header` also turns `_` into a space (RFC 2047 Q).
pub fn quoted_printable(data: &[u8], header: bool) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        if c == b'=' {
            if let (Some(h), Some(l)) =
                (data.get(i + 1).and_then(|&c| hex(c)), data.get(i + 2).and_then(|&c| hex(c)))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            // Soft line break: "=" then optional whitespace then newline.
            let mut j = i + 1;
            while j < data.len() && matches!(data[j], b' ' | b'\t') {
                j += 1;
            }
            if data.get(j) == Some(&b'\r') {
                j += 1;
            }
            if data.get(j) == Some(&b'\n') || j >= data.len() {
                i = j + 1;
                continue;
            }
            out.push(c);
        } else if header && c == b'_' {
            out.push(b' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// A body with its Content-Transfer-Encoding undone and converted from
/// `charset` to UTF-8.
pub fn decode_body(body: &[u8], transfer_encoding: Option<&[u8]>, charset: Option<&str>) -> String {
    let te = transfer_encoding.map(<[u8]>::to_ascii_lowercase);
    let bytes = match te.as_deref() {
        Some(b"base64") => base64_lenient(body),
        Some(b"quoted-printable") => quoted_printable(body, false),
        _ => body.to_vec(),
    };
    charset::to_utf8(&bytes, charset)
}

/// The comparison form: canonical decomposition, then each character's
/// uppercase (Dovecot compares decomposed titlecase).
pub fn fold(s: &str) -> String {
    // ASCII is its own decomposition and uppercases to one ASCII byte:
    // most bodies take this path (SEARCH BODY folds every text body), and
    // the per-char `to_uppercase` iterator below cost ~80 % of a search.
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    let nfd = DecomposingNormalizerBorrowed::new_nfd();
    let decomposed = nfd.normalize(s);
    let mut out = String::with_capacity(decomposed.len());
    for c in decomposed.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.extend(c.to_uppercase());
        }
    }
    out
}

/// Runs of spaces, tabs and line breaks become one space.
pub fn compress_lwsp(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_ws = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if !in_ws {
                out.push(' ');
            }
            in_ws = true;
        } else {
            out.push(c);
            in_ws = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        assert_eq!(decode_header(b"=?utf-8?q?x?=  =?utf-8?q?y?="), "xy");
        assert_eq!(decode_header(b"Re: =?ISO-8859-1?Q?Andr=E9?= Pirard"), "Re: André Pirard");
        assert_eq!(decode_header(b"=?utf-8?B?R3LDvMOfZQ==?="), "Grüße");
        assert_eq!(decode_header(b"=?bogus?x?zz?= a"), "=?bogus?x?zz?= a");
        assert_eq!(decode_header(b"a =?utf-8?q?b?= c"), "a b c");
    }

    #[test]
    fn bodies_and_folding() {
        assert_eq!(decode_body(b"caf=E9 =\n!", Some(b"Quoted-Printable"), Some("iso-8859-1")), "café !");
        assert_eq!(decode_body(b"R3LDvMOfZQ==\n", Some(b"base64"), Some("utf-8")), "Grüße");
        assert_eq!(fold("Grüße"), fold("GRÜßE"));
        assert!(fold("café").starts_with(&fold("cafe")));
        assert_eq!(compress_lwsp("a \t\n b"), "a b");
        assert_eq!(fold("Lorem ipsum, 42!"), "LOREM IPSUM, 42!");
        assert_eq!(fold("straße é"), "STRASSE E\u{301}");
    }
}
