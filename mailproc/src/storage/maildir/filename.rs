//! Maildir file names (sans-IO): `<base>[:2,<flags>]` where the base may
//! carry `,S=<size>` and `,W=<vsize>`, system flags are the letters
//! D F R S T and keywords are `a`..`z` indexes into `dovecot-keywords`.

use crate::storage::types::{Flags, Keywords};

const FLAG_LETTERS: [(char, Flags); 5] = [
    ('D', Flags::DRAFT),
    ('F', Flags::FLAGGED),
    ('R', Flags::ANSWERED),
    ('S', Flags::SEEN),
    ('T', Flags::DELETED),
];

/// A parsed file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirName {
    pub base: String,
    /// Flag letters after `:2,` (empty when absent).
    pub info: String,
}

impl MaildirName {
    pub fn parse(file_name: &str) -> MaildirName {
        match file_name.split_once(':') {
            Some((base, info)) => MaildirName {
                base: base.to_string(),
                info: info.strip_prefix("2,").unwrap_or("").to_string(),
            },
            None => MaildirName { base: file_name.to_string(), info: String::new() },
        }
    }

    /// `,S=` from the base.
    pub fn size(&self) -> Option<u64> {
        base_field(&self.base, "S=")
    }

    /// `,W=` from the base.
    pub fn vsize(&self) -> Option<u64> {
        base_field(&self.base, "W=")
    }

    /// System flags and keyword indexes.
    pub fn flags(&self) -> (Flags, Vec<usize>) {
        let mut flags = Flags::empty();
        let mut keywords = Vec::new();
        for c in self.info.chars() {
            if let Some((_, f)) = FLAG_LETTERS.iter().find(|(l, _)| *l == c) {
                flags = flags.union(*f);
            } else if c.is_ascii_lowercase() {
                keywords.push((c as u8 - b'a') as usize);
            }
        }
        (flags, keywords)
    }
}

fn base_field(base: &str, key: &str) -> Option<u64> {
    base.split(',').skip(1).find_map(|f| f.strip_prefix(key)).and_then(|v| v.parse().ok())
}

/// The `:2,` info part for flags and keyword indexes.
pub fn info(flags: Flags, keyword_indexes: &[usize]) -> String {
    let mut out = String::from("2,");
    for (letter, f) in FLAG_LETTERS {
        if flags.contains(f) {
            out.push(letter);
        }
    }
    let mut idx: Vec<usize> = keyword_indexes.iter().copied().filter(|i| *i < 26).collect();
    idx.sort_unstable();
    idx.dedup();
    for i in idx {
        out.push((b'a' + i as u8) as char);
    }
    out
}

/// Keyword indexes for names, given the `dovecot-keywords` list.
pub fn keyword_indexes(keywords: &Keywords, list: &[String]) -> Vec<usize> {
    keywords.iter().filter_map(|k| list.iter().position(|l| l == k)).collect()
}

/// Keyword names for indexes.
pub fn keyword_names(indexes: &[usize], list: &[String]) -> Keywords {
    indexes.iter().filter_map(|i| list.get(*i).cloned()).collect()
}

/// Dovecot's order of new Maildir files (its UID order for them): the
/// leading seconds, then the `.M<usecs>` part when both have one, then the
/// base names as strings.
pub fn sort_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn number(s: &str) -> (u64, &str) {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        (
            s[..end].bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))),
            &s[end..],
        )
    }
    let ((secs_a, rest_a), (secs_b, rest_b)) = (number(a), number(b));
    let usecs = |rest: &str| rest.strip_prefix(".M").map(|r| number(r).0);
    let base = |name: &str| name.split(':').next().unwrap_or(name).to_string();
    secs_a
        .cmp(&secs_b)
        .then_with(|| match (usecs(rest_a), usecs(rest_b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => std::cmp::Ordering::Equal,
        })
        .then_with(|| base(rest_a).cmp(&base(rest_b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_sort_by_time_in_the_name() {
        let mut names = vec![
            "1700000001.M5P1.host:2,S",
            "1700000000.M900P2.host",
            "1700000000.M10P3.host,S=5",
            "999.x",
            "1700000000.M10P2.host",
        ];
        names.sort_by(|a, b| sort_cmp(a, b));
        assert_eq!(
            names,
            [
                "999.x",
                "1700000000.M10P2.host",
                "1700000000.M10P3.host,S=5",
                "1700000000.M900P2.host",
                "1700000001.M5P1.host:2,S"
            ]
        );
    }

    #[test]
    fn dovecot_names() {
        let n = MaildirName::parse("1795570192.M199360P20509.vm,S=30,W=34:2,Sab");
        assert_eq!(n.base, "1795570192.M199360P20509.vm,S=30,W=34");
        assert_eq!((n.size(), n.vsize()), (Some(30), Some(34)));
        assert_eq!(n.flags(), (Flags::SEEN, vec![0, 1]));
        assert_eq!(info(Flags::SEEN.union(Flags::DRAFT), &[1, 0]), "2,DSab");
        assert_eq!(MaildirName::parse("x").info, "");
    }
}
