//! The contract between the IMAP command parser (in the `imap` binary) and
//! the modules that interpret command arguments (SEARCH, SORT, THREAD,
//! FETCH attributes): a parsed argument tree, and IMAP sequence sets.

use std::fmt;

/// One parsed IMAP argument (RFC 3501 §4, §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An atom, including `\Flags`, `BODY[...]` fragments and numbers as
    /// the client sent them (never quoted).
    Atom(String),
    /// A quoted string (unescaped).
    Quoted(Vec<u8>),
    /// A literal `{n}` / `{n+}` / `~{n}` (the data, not the marker).
    Literal(Vec<u8>),
    /// A parenthesised list.
    List(Vec<Arg>),
    /// The atom `NIL` (case-insensitive).
    Nil,
}

impl Arg {
    /// The atom text, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Arg::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// An astring's bytes (atom, quoted or literal).
    pub fn as_astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(a) => Some(a.as_bytes()),
            Arg::Quoted(q) | Arg::Literal(q) => Some(q),
            _ => None,
        }
    }

    /// A string's bytes (quoted or literal; not an atom).
    pub fn as_string(&self) -> Option<&[u8]> {
        match self {
            Arg::Quoted(q) | Arg::Literal(q) => Some(q),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Arg]> {
        match self {
            Arg::List(l) => Some(l),
            _ => None,
        }
    }
}

/// One element of a sequence set; `u32::MAX` stands for `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub first: u32,
    pub last: u32,
}

/// An IMAP sequence set (`1:3,7,9:*`) or the SEARCHRES `$` marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqSet {
    Ranges(Vec<SeqRange>),
    /// `$`: the saved search result (RFC 5182).
    Saved,
}

/// `*` in a sequence set.
pub const STAR: u32 = u32::MAX;

impl SeqSet {
    /// Parses `set` as RFC 3501's sequence-set (0 is invalid), or `$`.
    pub fn parse(text: &str) -> Option<SeqSet> {
        if text == "$" {
            return Some(SeqSet::Saved);
        }
        if text.is_empty() {
            return None;
        }
        let number = |s: &str| -> Option<u32> {
            if s == "*" {
                return Some(STAR);
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match s.parse::<u32>() {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(n),
            }
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let (a, b) = match part.split_once(':') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let n = number(part)?;
                    (n, n)
                }
            };
            ranges.push(SeqRange { first: a.min(b), last: a.max(b) });
        }
        Some(SeqSet::Ranges(ranges))
    }

    /// The ranges with `*` replaced by `max` (the highest sequence number
    /// or UID; RFC 3501: `*` is the largest number in use, and a range
    /// `n:*` with n > max still contains max). Empty for `$` (callers
    /// substitute the saved result first).
    pub fn resolve(&self, max: u32) -> Vec<(u32, u32)> {
        let SeqSet::Ranges(ranges) = self else { return Vec::new() };
        ranges
            .iter()
            .map(|r| {
                let a = if r.first == STAR { max } else { r.first };
                let b = if r.last == STAR { max } else { r.last };
                (a.min(b), a.max(b))
            })
            .collect()
    }

    /// Whether `n` is in the set, `*` meaning `max`.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.resolve(max).iter().any(|&(a, b)| a <= n && n <= b)
    }
}

impl fmt::Display for SeqSet {
    /// The compact form (`1:3,7`), as used in `[COPYUID …]`, ESEARCH and
    /// VANISHED responses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqSet::Saved => f.write_str("$"),
            SeqSet::Ranges(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    let show = |n: u32| if n == STAR { "*".to_string() } else { n.to_string() };
                    if r.first == r.last {
                        f.write_str(&show(r.first))?;
                    } else {
                        write!(f, "{}:{}", show(r.first), show(r.last))?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Compresses a sorted or unsorted list of numbers into a sequence set
/// (`1,2,3,7` → `1:3,7`), keeping ascending order.
pub fn compress(numbers: &[u32]) -> SeqSet {
    let mut sorted: Vec<u32> = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<SeqRange> = Vec::new();
    for n in sorted {
        match ranges.last_mut() {
            Some(r) if r.last.checked_add(1) == Some(n) => r.last = n,
            _ => ranges.push(SeqRange { first: n, last: n }),
        }
    }
    SeqSet::Ranges(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_sets() {
        let s = SeqSet::parse("1:3,7,9:*").unwrap();
        assert!(s.contains(2, 20) && s.contains(7, 20) && s.contains(20, 20));
        assert!(!s.contains(8, 20));
        assert_eq!(SeqSet::parse("5:*").unwrap().resolve(3), vec![(3, 5)]);
        assert_eq!(SeqSet::parse("0"), None);
        assert_eq!(SeqSet::parse("1,,2"), None);
        assert_eq!(SeqSet::parse("$"), Some(SeqSet::Saved));
        assert_eq!(compress(&[7, 1, 2, 3, 9]).to_string(), "1:3,7,9");
        assert_eq!(SeqSet::parse("3:1").unwrap().to_string(), "1:3");
    }
}
