//! Header fields as Dovecot's header parser delivers them: the name (with
//! trailing whitespace trimmed) and the full value (leading whitespace of
//! the first line skipped, continuation lines kept after a `\n`, CRs
//! dropped, NUL bytes replaced by U+FFFD).

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: Vec<u8>,
}

/// Splits `data` into lines (each without its LF / CRLF), stopping after
/// the empty line that ends the header.
fn header_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || pos >= data.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
        let mut line = &data[pos..end];
        pos = end + 1;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() {
            done = true;
            return None;
        }
        Some(line)
    })
}

fn push_value(value: &mut Vec<u8>, s: &[u8]) {
    for &c in s {
        if c == 0 {
            value.extend_from_slice("\u{fffd}".as_bytes());
        } else {
            value.push(c);
        }
    }
}

/// The fields of a header block (parsing stops at the first empty line).
pub fn fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut in_field = false;
    for line in header_lines(header) {
        if matches!(line[0], b' ' | b'\t') {
            if in_field {
                if let Some(f) = out.last_mut() {
                    f.value.push(b'\n');
                    push_value(&mut f.value, line);
                }
            }
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            in_field = false;
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        let mut rest = &line[colon + 1..];
        while let [b' ' | b'\t', tail @ ..] = rest {
            rest = tail;
        }
        let mut value = Vec::with_capacity(rest.len());
        push_value(&mut value, rest);
        out.push(Field { name, value });
        in_field = true;
    }
    out
}

/// The value of the last field called `name` (case-insensitive).
pub fn last<'a>(fields: &'a [Field<'_>], name: &str) -> Option<&'a [u8]> {
    fields.iter().rev().find(|f| f.name.eq_ignore_ascii_case(name.as_bytes())).map(|f| &f.value[..])
}

/// The value of the first field called `name` (case-insensitive).
pub fn first<'a>(fields: &'a [Field<'_>], name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name.as_bytes())).map(|f| &f.value[..])
}

/// The value of the last `(name, value)` pair called `name`.
pub fn last_value<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| &v[..])
}

/// Where the header ends: the offset just past the empty line, or the end
/// of `data` when there is none.
pub fn header_len(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
        let line = &data[pos..end];
        if line.is_empty() || line == b"\r" {
            return (end + 1).min(data.len());
        }
        pos = end + 1;
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_names() {
        let f = fields(b"Subject :  a\r\n b\nX\nIn-Reply-To:\n <c@x>\n\nBody: no\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"Subject");
        assert_eq!(f[0].value, b"a\n b");
        assert_eq!(f[1].value, b"\n <c@x>");
        assert_eq!(header_len(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_len(b"A: b\n"), 5);
        assert_eq!(fields(b"S: a\0b\n")[0].value, "a\u{fffd}b".as_bytes());
    }
}
