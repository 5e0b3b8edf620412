//! Dovecot's tab escaping (`str_tabescape`/`str_tabunescape`): `\001` →
//! `\0011`, `\t` → `\001t`, `\r` → `\001r`, `\n` → `\001n`, so a value never
//! contains the field or line separators.

/// Escapes `value` onto `out`.
pub fn tab_escape_into(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        match b {
            0x01 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            b'\n' => out.extend_from_slice(b"\x01n"),
            _ => out.push(b),
        }
    }
}

/// Escaped copy of `value`.
pub fn tab_escape(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len());
    tab_escape_into(value.as_bytes(), &mut out);
    // Only ASCII bytes were replaced by ASCII sequences: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Unescapes one field. An `\001` followed by anything else keeps that
/// character (Dovecot does the same); a trailing lone `\001` is dropped.
pub fn tab_unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut iter = field.iter();
    while let Some(&b) = iter.next() {
        if b != 0x01 {
            out.push(b);
            continue;
        }
        match iter.next() {
            Some(b'1') => out.push(0x01),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(&other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "a\tb\nc\rd\x01e";
        assert_eq!(tab_escape(s), "a\x01tb\x01nc\x01rd\x011e");
        assert_eq!(tab_unescape(tab_escape(s).as_bytes()), s.as_bytes());
    }
}
