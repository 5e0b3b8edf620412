//! IMAP LIST patterns (RFC 3501 §6.3.8): `*` matches anything, `%` anything
//! but the hierarchy separator. Sans-IO; INBOX is matched case-insensitively.

/// Whether `name` matches `pattern` with hierarchy separator `sep`.
pub fn matches(pattern: &str, name: &str, sep: char) -> bool {
    let p: Vec<char> = normalize_inbox(pattern, sep).chars().collect();
    let n: Vec<char> = normalize_inbox(name, sep).chars().collect();
    match_from(&p, &n, sep)
}

fn normalize_inbox(text: &str, sep: char) -> String {
    let head = text.split(sep).next().unwrap_or("");
    if head.eq_ignore_ascii_case("INBOX") {
        format!("INBOX{}", &text[head.len()..])
    } else {
        text.to_string()
    }
}

fn match_from(p: &[char], n: &[char], sep: char) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| match_from(&p[1..], &n[i..], sep)),
        Some('%') => {
            let mut i = 0;
            loop {
                if match_from(&p[1..], &n[i..], sep) {
                    return true;
                }
                if i >= n.len() || n[i] == sep {
                    return false;
                }
                i += 1;
            }
        }
        Some(c) => n.first() == Some(c) && match_from(&p[1..], &n[1..], sep),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c", '/'));
        assert!(matches("%", "a", '/'));
        assert!(!matches("%", "a/b", '/'));
        assert!(matches("a/%", "a/b", '/'));
        assert!(matches("inbox", "INBOX", '/'));
        assert!(matches("S*", "Sent Messages", '/'));
        assert!(!matches("Sent", "Sent/x", '/'));
        assert!(matches("*b", "a/b", '/'));
    }
}
