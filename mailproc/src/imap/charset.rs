//! Charset names and conversion to UTF-8 for SEARCH: message bodies and
//! encoded words in their declared charset, and the client's search
//! string in the `CHARSET` it named. Unknown charsets in messages fall
//! back to UTF-8 with invalid bytes replaced (as Dovecot does); an unknown
//! search charset is the caller's `BADCHARSET`.

use encoding_rs::Encoding;

/// The decoder for a charset name; `None` when unknown. US-ASCII and its
/// aliases decode as UTF-8 (a superset that keeps 8-bit text readable).
pub fn lookup(name: &str) -> Option<&'static Encoding> {
    let name = name.trim();
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "utf8" | "utf-8" | "iso-10646-utf-8" => {
            Some(encoding_rs::UTF_8)
        }
        "iso-8859-8-i" => Some(encoding_rs::ISO_8859_8_I),
        _ => Encoding::for_label_no_replacement(lower.as_bytes()),
    }
}

/// Whether a client may name this charset in SEARCH/SORT/THREAD.
pub fn is_known(name: &str) -> bool {
    lookup(name).is_some()
}

/// `bytes` as UTF-8 text, decoded from `charset` when known.
pub fn to_utf8(bytes: &[u8], charset: Option<&str>) -> String {
    let enc = charset.and_then(lookup).unwrap_or(encoding_rs::UTF_8);
    let (text, _) = enc.decode_without_bom_handling(bytes);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        assert!(is_known("UTF-8") && is_known("us-ascii") && is_known("ISO-8859-1") && is_known("koi8-r"));
        assert!(!is_known("X-FOO"));
        assert_eq!(to_utf8(b"caf\xe9", Some("iso-8859-1")), "café");
        assert_eq!(to_utf8(&[0xf0, 0xd2, 0xc9], Some("KOI8-R")), "При");
        assert_eq!(to_utf8(b"a\xffb", None), "a\u{fffd}b");
        assert_eq!(to_utf8(b"\x1b$BF|K\\\x1b(B", Some("iso-2022-jp")), "日本");
    }
}
