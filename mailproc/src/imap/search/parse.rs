//! SEARCH keys from the argument tree, with Dovecot 2.3's BAD texts
//! ("Unknown argument FOO", "Missing parameter for search key (for search
//! key: HEADER)", "Invalid search date parameter", …) and the search
//! strings converted from the client's CHARSET into comparison form.

use super::{DateField, DateOp, HeaderMatch, Key, SearchError, SearchProgram};
use crate::imap::args::{Arg, SeqSet};
use crate::imap::{charset, date, text};
use crate::storage::Flags;

struct KeyParser<'a> {
    args: &'a [Arg],
    pos: usize,
    charset: Option<String>,
}

/// Parses a whole program (see [`SearchProgram::parse`]).
pub fn program(args: &[Arg], charset: Option<&str>) -> Result<SearchProgram, SearchError> {
    let mut p = KeyParser { args, pos: 0, charset: charset.map(str::to_string) };
    if charset.is_none() && p.peek_atom().is_some_and(|a| a.eq_ignore_ascii_case("CHARSET")) {
        p.pos += 1;
        let cs = p.next_string("CHARSET").map_err(|_| SearchError::bad("Invalid charset argument"))?;
        p.charset = Some(String::from_utf8_lossy(&cs).into_owned());
    }
    if let Some(cs) = &p.charset {
        if !charset::is_known(cs) {
            return Err(SearchError::BadCharset(cs.clone()));
        }
    }
    if p.pos >= args.len() {
        return Err(SearchError::bad("Missing search parameters"));
    }
    let mut keys = Vec::new();
    while p.pos < args.len() {
        keys.push(p.key()?);
    }
    Ok(SearchProgram { keys })
}

fn missing(key: &str) -> SearchError {
    SearchError::bad(format!("Missing parameter for search key (for search key: {key})"))
}

/// Atoms Dovecot takes for a sequence set (and then validates).
fn is_seqset_atom(a: &str) -> bool {
    a.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
}

impl<'a> KeyParser<'a> {
    fn peek_atom(&self) -> Option<&str> {
        self.args.get(self.pos).and_then(Arg::as_atom)
    }

    fn next_arg(&mut self) -> Option<&'a Arg> {
        let a = self.args.get(self.pos);
        self.pos += 1;
        a
    }

    /// An astring parameter (NIL counts as the string "NIL").
    fn next_string(&mut self, key: &str) -> Result<Vec<u8>, SearchError> {
        match self.next_arg() {
            Some(Arg::Nil) => Ok(b"NIL".to_vec()),
            Some(a) => a.as_astring().map(<[u8]>::to_vec).ok_or_else(|| missing(key)),
            None => Err(missing(key)),
        }
    }

    /// A search string in comparison form.
    fn next_text(&mut self, key: &str) -> Result<String, SearchError> {
        let raw = self.next_string(key)?;
        Ok(text::fold(&charset::to_utf8(&raw, self.charset.as_deref())))
    }

    fn next_atom(&mut self, key: &str) -> Result<String, SearchError> {
        let s = self.next_string(key)?;
        Ok(String::from_utf8_lossy(&s).into_owned())
    }

    fn next_date(&mut self, key: &str, field: DateField, op: DateOp) -> Result<Key, SearchError> {
        let s = self.next_atom(key)?;
        let day = date::parse_imap_date(&s).map_err(|e| SearchError::bad(e.to_string()))?;
        Ok(Key::Date { field, op, day })
    }

    fn next_number(&mut self, key: &str, what: &str) -> Result<u64, SearchError> {
        let s = self.next_atom(key)?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SearchError::bad(format!("Invalid search {what} parameter")));
        }
        s.parse().map_err(|_| SearchError::bad(format!("Invalid search {what} parameter")))
    }

    /// WITHIN's interval: seconds, 1 to 2^32-1 as Dovecot takes it.
    fn next_interval(&mut self, key: &str) -> Result<i64, SearchError> {
        match self.next_number(key, "interval")? {
            n @ 1..=0xffff_ffff => Ok(n as i64),
            _ => Err(SearchError::bad("Invalid search interval parameter")),
        }
    }

    fn next_key(&mut self) -> Result<Key, SearchError> {
        if self.pos >= self.args.len() {
            return Err(SearchError::bad("Missing argument"));
        }
        self.key()
    }

    fn header(&mut self, name: &str, key: &str) -> Result<Key, SearchError> {
        let how = match name.to_ascii_lowercase().as_str() {
            "from" | "to" | "cc" | "bcc" => HeaderMatch::Address,
            "subject" => HeaderMatch::CompressLwsp,
            _ => HeaderMatch::Plain,
        };
        Ok(Key::Header { name: name.to_string(), how, value: self.next_text(key)? })
    }

    fn key(&mut self) -> Result<Key, SearchError> {
        let Some(arg) = self.next_arg() else { return Err(SearchError::bad("Missing argument")) };
        let atom = match arg {
            Arg::List(list) if list.is_empty() => {
                return Err(SearchError::bad("No search parameters inside list"));
            }
            Arg::List(list) => {
                let mut sub = KeyParser { args: list, pos: 0, charset: self.charset.clone() };
                let mut keys = Vec::new();
                while sub.pos < list.len() {
                    keys.push(sub.key()?);
                }
                return Ok(Key::And(keys));
            }
            Arg::Atom(a) => a.clone(),
            Arg::Nil => "NIL".to_string(),
            Arg::Quoted(s) | Arg::Literal(s) => {
                let s = String::from_utf8_lossy(s);
                return Err(SearchError::bad(format!("Unexpected string as search key: {s}")));
            }
        };
        let upper = atom.to_ascii_uppercase();
        let flag = |f: Flags, set: bool| Ok(Key::Flag(f, set));
        match upper.as_str() {
            "ALL" => Ok(Key::All),
            "ANSWERED" => flag(Flags::ANSWERED, true),
            "DELETED" => flag(Flags::DELETED, true),
            "DRAFT" => flag(Flags::DRAFT, true),
            "FLAGGED" => flag(Flags::FLAGGED, true),
            "SEEN" => flag(Flags::SEEN, true),
            "UNANSWERED" => flag(Flags::ANSWERED, false),
            "UNDELETED" => flag(Flags::DELETED, false),
            "UNDRAFT" => flag(Flags::DRAFT, false),
            "UNFLAGGED" => flag(Flags::FLAGGED, false),
            "UNSEEN" => flag(Flags::SEEN, false),
            "RECENT" => Ok(Key::Recent(true)),
            "OLD" => Ok(Key::Recent(false)),
            "NEW" => Ok(Key::New),
            "KEYWORD" => Ok(Key::Keyword(self.next_atom(&upper)?, true)),
            "UNKEYWORD" => Ok(Key::Keyword(self.next_atom(&upper)?, false)),
            "BEFORE" => self.next_date(&upper, DateField::Received, DateOp::Before),
            "ON" => self.next_date(&upper, DateField::Received, DateOp::On),
            "SINCE" => self.next_date(&upper, DateField::Received, DateOp::Since),
            "SENTBEFORE" => self.next_date(&upper, DateField::Sent, DateOp::Before),
            "SENTON" => self.next_date(&upper, DateField::Sent, DateOp::On),
            "SENTSINCE" => self.next_date(&upper, DateField::Sent, DateOp::Since),
            "SAVEDBEFORE" => self.next_date(&upper, DateField::Saved, DateOp::Before),
            "SAVEDON" => self.next_date(&upper, DateField::Saved, DateOp::On),
            "SAVEDSINCE" => self.next_date(&upper, DateField::Saved, DateOp::Since),
            "SAVEDATESUPPORTED" => Ok(Key::SaveDateSupported),
            "LARGER" => Ok(Key::Larger(self.next_number(&upper, "size")?)),
            "SMALLER" => Ok(Key::Smaller(self.next_number(&upper, "size")?)),
            "YOUNGER" => Ok(Key::Younger(self.next_interval(&upper)?)),
            "OLDER" => Ok(Key::Older(self.next_interval(&upper)?)),
            "BODY" => Ok(Key::Body(self.next_text(&upper)?)),
            "TEXT" => Ok(Key::Text(self.next_text(&upper)?)),
            "SUBJECT" => self.header("Subject", &upper),
            "FROM" => self.header("From", &upper),
            "TO" => self.header("To", &upper),
            "CC" => self.header("Cc", &upper),
            "BCC" => self.header("Bcc", &upper),
            "HEADER" => {
                let name = self.next_atom(&upper)?;
                self.header(&name, &upper)
            }
            "NOT" => Ok(Key::Not(Box::new(self.next_key()?))),
            "OR" => {
                let a = self.next_key()?;
                let b = self.next_key()?;
                Ok(Key::Or(Box::new(a), Box::new(b)))
            }
            "UID" => {
                let set = self.next_atom(&upper)?;
                SeqSet::parse(&set).map(Key::Uid).ok_or_else(|| SearchError::bad("Invalid UID messageset"))
            }
            "MODSEQ" => {
                // Optional entry name and type (RFC 7162); we keep one
                // modseq per message, so they only need to be well-formed.
                if matches!(self.args.get(self.pos), Some(Arg::Quoted(_) | Arg::Literal(_))) {
                    self.pos += 1;
                    let kind = self.next_atom(&upper)?.to_ascii_lowercase();
                    if !matches!(kind.as_str(), "priv" | "shared" | "all") {
                        return Err(SearchError::bad("Invalid MODSEQ type"));
                    }
                }
                let value = self.next_atom(&upper)?;
                match value.parse::<u64>() {
                    Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(Key::ModSeq(n)),
                    _ => Err(SearchError::bad("Invalid MODSEQ value")),
                }
            }
            _ if is_seqset_atom(&atom) => {
                SeqSet::parse(&atom).map(Key::Seq).ok_or_else(|| SearchError::bad("Invalid messageset"))
            }
            _ => Err(SearchError::bad(format!("Unknown argument {upper}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atoms(s: &str) -> Vec<Arg> {
        s.split_whitespace().map(|a| Arg::Atom(a.to_string())).collect()
    }

    fn err(s: &str) -> String {
        program(&atoms(s), None).unwrap_err().to_string()
    }

    #[test]
    fn dovecot_error_texts() {
        assert_eq!(err("FOO"), "Error in IMAP command SEARCH: Unknown argument FOO");
        assert_eq!(err("BEFORE notadate"), "Error in IMAP command SEARCH: Invalid search date parameter");
        assert_eq!(err("OR SEEN"), "Error in IMAP command SEARCH: Missing argument");
        assert_eq!(
            err("HEADER Subject"),
            "Error in IMAP command SEARCH: Missing parameter for search key (for search key: HEADER)"
        );
        assert_eq!(err("0"), "Error in IMAP command SEARCH: Invalid messageset");
        assert_eq!(err("LARGER x"), "Error in IMAP command SEARCH: Invalid search size parameter");
        assert_eq!(err(""), "Error in IMAP command SEARCH: Missing search parameters");
        assert_eq!(err("UID 0"), "Error in IMAP command SEARCH: Invalid UID messageset");
        assert_eq!(err("1:x"), "Error in IMAP command SEARCH: Invalid messageset");
        assert_eq!(err("MODSEQ x"), "Error in IMAP command SEARCH: Invalid MODSEQ value");
        assert_eq!(err("YOUNGER x"), "Error in IMAP command SEARCH: Invalid search interval parameter");
        assert_eq!(err("OLDER 0"), "Error in IMAP command SEARCH: Invalid search interval parameter");
        assert_eq!(
            err("OLDER 4294967296"),
            "Error in IMAP command SEARCH: Invalid search interval parameter"
        );
        assert_eq!(err("CHARSET"), "Error in IMAP command SEARCH: Invalid charset argument");
        assert_eq!(
            program(&[Arg::Quoted(b"SEEN".to_vec())], None).unwrap_err().to_string(),
            "Error in IMAP command SEARCH: Unexpected string as search key: SEEN"
        );
        assert_eq!(
            program(&[Arg::List(vec![])], None).unwrap_err().to_string(),
            "Error in IMAP command SEARCH: No search parameters inside list"
        );
        assert_eq!(
            program(&atoms("CHARSET X-FOO BODY x"), None),
            Err(SearchError::BadCharset("X-FOO".to_string()))
        );
    }

    #[test]
    fn structure() {
        let p = program(&atoms("or seen not flagged 1:3 modseq 5"), None).unwrap();
        assert_eq!(p.keys.len(), 3);
        assert!(p.uses_modseq() && !p.needs_body() && !p.needs_header());
        assert!(program(&atoms("TEXT x"), Some("utf-8")).unwrap().needs_body());
    }
}
