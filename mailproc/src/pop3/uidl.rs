//! POP3 UIDLs: `pop3_uidl_format` expanded with the message's `%v`
//! (uidvalidity), `%u` (uid), `%m` (MD5 of the header), `%f` (file name)
//! and `%g` (GUID), all with the usual var_expand modifiers (`%08Xu`);
//! `pop3_reuse_xuidl` takes an existing `X-UIDL:` header instead.

use dovecote_config::var_expand::{self, Variable};
use md5::{Digest, Md5};

/// The identity of one message the format can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlInput<'a> {
    pub uid_validity: u32,
    pub uid: u32,
    pub guid: &'a str,
    /// The storage's file name for the message (Maildir base name).
    pub filename: &'a str,
    /// The message header, when the format needs it (`%m`).
    pub header: Option<&'a [u8]>,
}

const MODIFIERS: &[u8] = b"LUEXRHNMDT";
const KEYS: &[(u8, &str)] =
    &[(b'v', "uidvalidity"), (b'u', "uid"), (b'm', "md5"), (b'f', "filename"), (b'g', "guid")];

/// The UIDL keys a template uses (`%08Xu`, `%{uid}`, ...), as short keys.
pub fn format_keys(format: &str) -> Vec<u8> {
    template_keys(format, KEYS)
}

/// Which of `keys` (short key, long name) a var_expand template uses,
/// looking past widths and modifiers as Dovecot's `var_get_key` does.
pub fn template_keys(format: &str, keys: &[(u8, &str)]) -> Vec<u8> {
    let b = format.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'-' || b[i] == b'.') {
            i += 1;
        }
        while i < b.len() && MODIFIERS.contains(&b[i]) && i + 1 < b.len() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'{' {
            let end = b[i..].iter().position(|&c| c == b'}').map_or(b.len(), |p| i + p);
            let name = &format[i + 1..end.min(format.len())];
            if let Some((k, _)) = keys.iter().find(|(_, long)| *long == name) {
                found.push(*k);
            }
            i = end + 1;
        } else {
            if keys.iter().any(|(k, _)| *k == b[i]) {
                found.push(b[i]);
            }
            i += 1;
        }
    }
    found
}

/// Whether the template names any UIDL key (Dovecot refuses to run
/// otherwise: "Invalid pop3_uidl_format").
pub fn format_has_key(format: &str) -> bool {
    !format_keys(format).is_empty()
}

/// Whether computing the UIDL needs the message header.
pub fn needs_header(format: &str, reuse_xuidl: bool) -> bool {
    reuse_xuidl || format_keys(format).contains(&b'm')
}

/// The value of the first `X-UIDL:` header field, trimmed.
pub fn x_uidl(header: &[u8]) -> Option<String> {
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        if !line[..colon].eq_ignore_ascii_case(b"X-UIDL") {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                value.extend_from_slice(next.strip_suffix(b"\r").unwrap_or(next));
                lines.next();
            } else {
                break;
            }
        }
        let text = String::from_utf8_lossy(&value).trim().to_string();
        return (!text.is_empty()).then_some(text);
    }
    None
}

/// Expands the format for one message.
pub fn compute(format: &str, reuse_xuidl: bool, input: &UidlInput<'_>) -> Result<String, String> {
    if reuse_xuidl {
        if let Some(x) = input.header.and_then(x_uidl) {
            return Ok(x);
        }
    }
    let md5 = match input.header {
        Some(h) if format_keys(format).contains(&b'm') => {
            let digest: [u8; 16] = Md5::digest(h).into();
            digest.iter().map(|b| format!("{b:02x}")).collect()
        }
        _ => String::new(),
    };
    let vars = [
        Variable::new('v', "uidvalidity", input.uid_validity.to_string()),
        Variable::new('u', "uid", input.uid.to_string()),
        Variable::new('m', "md5", md5),
        Variable::new('f', "filename", input.filename),
        Variable::new('g', "guid", input.guid),
    ];
    var_expand::expand(format, &vars).map_err(|e| format!("UIDL: pop3_uidl_format: {e}"))
}

/// `pop3_uidl_duplicates = rename`: later copies of a UIDL get `-N`.
pub fn rename_duplicates(uidls: &mut [String]) {
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for uidl in uidls.iter_mut() {
        while let Some(count) = seen.get_mut(uidl.as_str()) {
            *count += 1;
            let renamed = format!("{uidl}-{count}");
            *uidl = renamed;
        }
        seen.insert(uidl.clone(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(header: Option<&'a [u8]>) -> UidlInput<'a> {
        UidlInput { uid_validity: 0x6b06_5a88, uid: 1, guid: "g1", filename: "1000.M1.host", header }
    }

    #[test]
    fn default_format_is_hex_uid_and_uidvalidity() {
        assert_eq!(compute("%08Xu%08Xv", false, &input(None)).unwrap(), "000000016b065a88");
        assert_eq!(compute("%v.%u", false, &input(None)).unwrap(), "1795578504.1");
        assert_eq!(compute("%f-%g", false, &input(None)).unwrap(), "1000.M1.host-g1");
        assert_eq!(compute("%{uid}", false, &input(None)).unwrap(), "1");
    }

    #[test]
    fn keys_are_found_behind_modifiers() {
        assert_eq!(format_keys("%08Xu%08Xv"), b"uv");
        assert_eq!(format_keys("%{md5}"), b"m");
        assert!(!format_has_key("static"));
        assert!(!format_has_key("%n"));
        assert!(needs_header("%m", false));
        assert!(!needs_header("%u", false));
    }

    #[test]
    fn md5_and_x_uidl() {
        let h = b"From: a\nX-UIDL:  abc\n  def\n\n";
        let md5 = compute("%m", false, &input(Some(h))).unwrap();
        assert_eq!(md5.len(), 32);
        assert_eq!(compute("%u", true, &input(Some(h))).unwrap(), "abc  def");
        assert_eq!(compute("%u", true, &input(Some(b"From: a\n\n"))).unwrap(), "1");
    }

    #[test]
    fn duplicates_renamed() {
        let mut u = vec!["a".to_string(), "a".into(), "b".into(), "a".into()];
        rename_duplicates(&mut u);
        assert_eq!(u, ["a", "a-2", "b", "a-3"]);
    }
}
