//! IMAP string output as Dovecot writes it: `NIL`, quoted strings, and
//! literals for 8-bit data, line breaks or more than four characters
//! needing escapes; plus the "for humans" form (whitespace collapsed, line
//! breaks removed) Dovecot uses for subjects and display names.

/// How many `"`/`\` a quoted string may carry before a literal is shorter
/// in the common case (Dovecot's rule).
const QUOTED_MAX_ESCAPES: usize = 4;

fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// A string (never NIL): quoted, or a literal when quoting can't carry it.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mut escapes = 0;
    for &c in s {
        match c {
            b'"' | b'\\' => {
                escapes += 1;
                if escapes > QUOTED_MAX_ESCAPES {
                    return literal(out, s);
                }
            }
            b'\r' | b'\n' => return literal(out, s),
            c if c >= 0x80 => return literal(out, s),
            _ => {}
        }
    }
    out.push(b'"');
    for &c in s {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// A string or `NIL`.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => string(out, s),
    }
}

/// A string or `NIL`, with CR/LF removed (a space put in where a line
/// break wasn't followed by whitespace).
pub fn nstring_nolf(out: &mut Vec<u8>, s: Option<&[u8]>) {
    let Some(s) = s else { return nstring(out, None) };
    if !s.iter().any(|&c| c == b'\r' || c == b'\n') {
        return string(out, s);
    }
    let mut clean = Vec::with_capacity(s.len());
    for (i, &c) in s.iter().enumerate() {
        if c != b'\r' && c != b'\n' {
            clean.push(c);
        } else if !matches!(s.get(i + 1), None | Some(b' ' | b'\t' | b'\r' | b'\n')) {
            clean.push(b' ');
        }
    }
    string(out, &clean);
}

/// A string for humans: tabs become spaces, runs of whitespace collapse
/// to one space, leading/trailing whitespace and line breaks go, NUL
/// becomes 0x80. Quoted when nothing had to change, else a literal.
pub fn string_for_humans(out: &mut Vec<u8>, s: &[u8]) {
    let mut modify = false;
    let mut last_lwsp = true;
    let mut prefix = true;
    for &c in s {
        match c {
            0 => {
                last_lwsp = false;
                modify = true;
            }
            b'\t' | b' ' => {
                if c == b'\t' || last_lwsp {
                    modify = true;
                }
                last_lwsp = true;
            }
            b'\r' | b'\n' => modify = true,
            b'"' | b'\\' => {
                modify = true;
                last_lwsp = false;
            }
            c => {
                if c >= 0x80 {
                    modify = true;
                }
                last_lwsp = false;
            }
        }
        if !last_lwsp {
            prefix = false;
        }
    }
    if last_lwsp && !s.is_empty() && !prefix {
        modify = true;
    }
    if !modify {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let mut clean = Vec::with_capacity(s.len());
    let mut last_lwsp = true;
    for &c in s {
        match c {
            0 => {
                clean.push(0x80);
                last_lwsp = false;
            }
            b'\t' | b' ' => {
                if !last_lwsp {
                    clean.push(b' ');
                }
                last_lwsp = true;
            }
            b'\r' | b'\n' => {}
            c => {
                clean.push(c);
                last_lwsp = false;
            }
        }
    }
    if last_lwsp && clean.last() == Some(&b' ') {
        clean.pop();
    }
    if clean.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else {
        literal(out, &clean);
    }
}

/// An astring: a bare atom when it is one (and isn't `NIL`), else a string.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    let atom = !s.is_empty()
        && !s.eq_ignore_ascii_case(b"NIL")
        && s.iter().all(|&c| c > b' ' && c < 0x7f && !b"(){%*\"\\".contains(&c));
    if atom {
        out.extend_from_slice(s);
    } else {
        string(out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(q(|o| string(o, b"a \"b\"")), "\"a \\\"b\\\"\"");
        assert_eq!(q(|o| string(o, b"\"\"\"\"\"")), "{5}\r\n\"\"\"\"\"");
        assert_eq!(q(|o| string(o, "é".as_bytes())), "{2}\r\né");
        assert_eq!(q(|o| nstring(o, None)), "NIL");
        assert_eq!(q(|o| nstring_nolf(o, Some(b"a\n b\nc"))), "\"a b c\"");
    }

    #[test]
    fn for_humans() {
        assert_eq!(q(|o| string_for_humans(o, b"plain")), "\"plain\"");
        assert_eq!(q(|o| string_for_humans(o, b"  a\tb  \n c ")), "{5}\r\na b c");
        assert_eq!(q(|o| string_for_humans(o, b"   ")), "\"\"");
        assert_eq!(q(|o| string_for_humans(o, b"")), "\"\"");
        assert_eq!(q(|o| string_for_humans(o, b"say \"hi\"")), "{8}\r\nsay \"hi\"");
    }
}
