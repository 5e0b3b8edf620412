//! RFC 5256 base subject (§2.1), as SORT SUBJECT and THREAD compare it:
//! encoded words decoded, whitespace collapsed, `(fwd)` trailers and
//! `Re:`/`Fw:`/`Fwd:`/`[blob]` leaders removed, `[fwd: …]` unwrapped, in
//! comparison form (case-folded). Also reports whether the subject was a
//! reply or forward, which THREAD=REFERENCES needs.

use super::text;

/// The base subject (comparison form) and whether a reply/forward
/// leader, trailer or wrapper was removed.
pub fn base_subject(raw: &[u8]) -> (String, bool) {
    let decoded = text::decode_header(raw);
    let mut s = text::compress_lwsp(&decoded).trim_matches(' ').to_string();
    let mut reply = false;
    loop {
        // (2) trailers: "(fwd)" and whitespace
        loop {
            let before = s.len();
            s = s.trim_end_matches(' ').to_string();
            if s.len() >= 5 && s.as_bytes()[s.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                s.truncate(s.len() - 5);
                reply = true;
            }
            if s.len() == before {
                break;
            }
        }
        // (3) leaders and blobs
        loop {
            let before = s.len();
            s = s.trim_start_matches(' ').to_string();
            if let Some(rest) = strip_refwd(&s) {
                s = rest;
                reply = true;
            }
            if let Some(rest) = strip_blob(&s) {
                if !rest.trim_start_matches(' ').is_empty() {
                    s = rest;
                }
            }
            if s.len() == before {
                break;
            }
        }
        // (4) "[fwd: …]"
        if s.len() >= 6 && s.as_bytes()[..5].eq_ignore_ascii_case(b"[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_string();
            reply = true;
            continue;
        }
        break;
    }
    (text::fold(&s), reply)
}

/// A leading `[...]` and the whitespace after it.
fn strip_blob(s: &str) -> Option<String> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    if rest.as_bytes()[end] != b']' {
        return None;
    }
    Some(rest[end + 1..].trim_start_matches(' ').to_string())
}

/// `*blob ("re" / "fw" / "fwd") *WSP [blob] ":"` at the start.
fn strip_refwd(s: &str) -> Option<String> {
    let mut rest = s.to_string();
    while let Some(r) = strip_blob(&rest) {
        rest = r;
    }
    let lower = rest.as_bytes().to_ascii_lowercase();
    let n = if lower.starts_with(b"re") {
        2
    } else if lower.starts_with(b"fwd") {
        3
    } else if lower.starts_with(b"fw") {
        2
    } else {
        return None;
    };
    let mut rest = rest[n..].trim_start_matches(' ').to_string();
    if let Some(r) = strip_blob(&rest) {
        rest = r;
    }
    rest.strip_prefix(':').map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        base_subject(s.as_bytes())
    }

    #[test]
    fn rfc5256_examples() {
        assert_eq!(base("Re: Project kickoff"), ("PROJECT KICKOFF".to_string(), true));
        assert_eq!(base("RE: [proj] Project kickoff").0, "PROJECT KICKOFF");
        assert_eq!(base("[Fwd: Re: Project kickoff]"), ("PROJECT KICKOFF".to_string(), true));
        assert_eq!(base("Re: Budget (fwd)"), ("BUDGET".to_string(), true));
        assert_eq!(base("Budget"), ("BUDGET".to_string(), false));
        assert_eq!(base("Re:"), (String::new(), true));
        assert_eq!(base("[list] only blob").0, "ONLY BLOB");
        assert_eq!(base("[only blob]").0, "[ONLY BLOB]");
        assert_eq!(base("  tabs\tand  spaces  ").0, "TABS AND SPACES");
    }
}
