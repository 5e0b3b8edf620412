//! Evaluates search keys against one message, loading and decoding the
//! header or the whole message only when a key needs it (once per
//! message), with Dovecot's matching rules: substrings of decoded,
//! case-folded text; BODY looks at text/* and message/* bodies only; TEXT
//! adds every header of every part; dates compare calendar days in the
//! date's own zone; a missing or broken Date: counts as 1970-01-01.

use super::{DateField, DateOp, HeaderMatch, Key};
use crate::imap::message::{SearchContext, SearchMessage};
use crate::imap::parts::{self, Kind, Part};
use crate::imap::{address, date, header, text};

/// Lazily decoded views of the message, shared by all keys.
#[derive(Default)]
struct Decoded {
    /// Raw header fields of the message header.
    fields: Option<Vec<(String, Vec<u8>)>>,
    /// Folded text of all header blocks (TEXT).
    headers_text: Option<Vec<String>>,
    /// Folded text of the searchable bodies (BODY, TEXT).
    bodies_text: Option<Vec<String>>,
}

pub struct Evaluator<'a> {
    msg: &'a mut dyn SearchMessage,
    ctx: &'a SearchContext,
    cache: Decoded,
}

impl<'a> Evaluator<'a> {
    pub fn new(msg: &'a mut dyn SearchMessage, ctx: &'a SearchContext) -> Self {
        Evaluator { msg, ctx, cache: Decoded::default() }
    }

    pub fn all(&mut self, keys: &[Key]) -> bool {
        keys.iter().all(|k| self.key(k))
    }

    fn fields(&mut self) -> &[(String, Vec<u8>)] {
        if self.cache.fields.is_none() {
            let fields = header::fields(self.msg.header())
                .into_iter()
                .map(|f| (String::from_utf8_lossy(f.name).into_owned(), f.value))
                .collect();
            self.cache.fields = Some(fields);
        }
        self.cache.fields.as_deref().unwrap_or_default()
    }

    fn load_body(&mut self) {
        if self.cache.bodies_text.is_some() {
            return;
        }
        let message = self.msg.message();
        let root = parts::parse(message);
        let mut headers = Vec::new();
        let mut bodies = Vec::new();
        collect(message, &root, &mut headers, &mut bodies);
        self.cache.headers_text = Some(headers);
        self.cache.bodies_text = Some(bodies);
    }

    fn key(&mut self, key: &Key) -> bool {
        match key {
            Key::All => true,
            Key::Flag(f, set) => self.msg.flags().contains(*f) == *set,
            Key::Keyword(k, set) => {
                self.msg.keywords().iter().any(|have| have.eq_ignore_ascii_case(k)) == *set
            }
            Key::Recent(set) => self.msg.recent() == *set,
            Key::New => self.msg.recent() && !self.msg.flags().contains(crate::storage::Flags::SEEN),
            Key::Seq(set) => match set {
                crate::imap::args::SeqSet::Saved => self.saved_contains(),
                _ => set.contains(self.msg.seq(), self.ctx.max_seq),
            },
            Key::Uid(set) => match set {
                crate::imap::args::SeqSet::Saved => self.saved_contains(),
                _ => set.contains(self.msg.uid(), self.ctx.max_uid),
            },
            Key::Date { field, op, day } => {
                let Some(want) = day else { return false };
                let have = match field {
                    DateField::Received => {
                        let (ts, off) = self.msg.internal_date();
                        date::day_of(ts, off)
                    }
                    DateField::Saved => {
                        let (received, off) = self.msg.internal_date();
                        date::day_of(self.msg.save_date().unwrap_or(received), off)
                    }
                    DateField::Sent => {
                        let sent =
                            header::last_value(self.fields(), "Date").and_then(date::parse_rfc822_date);
                        sent.map_or(0, |(ts, off)| date::day_of(ts, off))
                    }
                };
                match op {
                    DateOp::Before => have < *want,
                    DateOp::On => have == *want,
                    DateOp::Since => have >= *want,
                }
            }
            Key::SaveDateSupported => true,
            Key::Larger(n) => self.msg.size() > *n,
            Key::Smaller(n) => self.msg.size() < *n,
            Key::ModSeq(n) => self.msg.modseq() >= *n,
            Key::Younger(secs) => self.msg.internal_date().0 > self.ctx.now - secs,
            Key::Older(secs) => self.msg.internal_date().0 <= self.ctx.now - secs,
            Key::Header { name, how, value } => {
                let how = *how;
                self.fields()
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .any(|(_, raw)| header_text(raw, how).contains(value.as_str()))
            }
            // An empty string is in every message (Dovecot agrees).
            Key::Body(value) | Key::Text(value) if value.is_empty() => true,
            Key::Body(value) => {
                self.load_body();
                self.cache
                    .bodies_text
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|b| b.contains(value.as_str()))
            }
            Key::Text(value) => {
                self.load_body();
                let in_headers = self
                    .cache
                    .headers_text
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|h| h.contains(value.as_str()));
                in_headers
                    || self
                        .cache
                        .bodies_text
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .any(|b| b.contains(value.as_str()))
            }
            Key::Not(k) => !self.key(k),
            Key::Or(a, b) => self.key(a) || self.key(b),
            Key::And(keys) => keys.iter().all(|k| self.key(k)),
        }
    }

    fn saved_contains(&self) -> bool {
        self.ctx.saved.as_ref().is_some_and(|uids| uids.contains(&self.msg.uid()))
    }
}

/// A folded header value with its line breaks removed (the whitespace
/// that starts each continuation line stays).
fn unfold(raw: &[u8]) -> Vec<u8> {
    raw.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect()
}

/// A header value in comparison form for one header match type.
pub fn header_text(raw: &[u8], how: HeaderMatch) -> String {
    let raw = &unfold(raw)[..];
    match how {
        HeaderMatch::Plain => text::fold(&text::decode_header(raw)),
        HeaderMatch::CompressLwsp => text::fold(&text::compress_lwsp(&text::decode_header(raw))),
        HeaderMatch::Address => {
            let written = address::write(&address::parse(raw));
            text::fold(&text::compress_lwsp(&text::decode_header(&written)))
        }
    }
}

/// Gathers the header blocks of every part and the searchable bodies.
fn collect(message: &[u8], part: &Part, headers: &mut Vec<String>, bodies: &mut Vec<String>) {
    let block = message.get(part.header.0..part.header.1).unwrap_or_default();
    let mut h = String::new();
    for f in header::fields(block) {
        h.push_str(&String::from_utf8_lossy(f.name));
        h.push_str(": ");
        h.push_str(&text::decode_header(&unfold(&f.value)));
        h.push('\n');
    }
    headers.push(text::fold(&h));
    match part.kind {
        Kind::Multipart | Kind::Message => {
            for child in &part.children {
                collect(message, child, headers, bodies);
            }
        }
        Kind::Leaf => {
            let searchable = part
                .data
                .content_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(b"text") || t.eq_ignore_ascii_case(b"message"));
            if searchable {
                let body = message.get(part.body.0..part.body.1).unwrap_or_default();
                let charset = part
                    .data
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                let decoded =
                    text::decode_body(body, part.data.transfer_encoding.as_deref(), charset.as_deref());
                bodies.push(text::fold(&decoded));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::args::Arg;
    use crate::imap::search::SearchProgram;
    use crate::storage::{Flags, Keywords};

    struct Msg(Vec<u8>, Keywords);

    impl SearchMessage for Msg {
        fn seq(&self) -> u32 {
            1
        }
        fn uid(&self) -> u32 {
            1
        }
        fn flags(&self) -> Flags {
            Flags::empty()
        }
        fn keywords(&self) -> &Keywords {
            &self.1
        }
        fn recent(&self) -> bool {
            false
        }
        fn modseq(&self) -> u64 {
            1
        }
        fn internal_date(&self) -> (i64, i32) {
            (0, 0)
        }
        fn save_date(&self) -> Option<i64> {
            None
        }
        fn size(&mut self) -> u64 {
            self.0.len() as u64
        }
        fn header(&mut self) -> &[u8] {
            let n = header::header_len(&self.0);
            &self.0[..n]
        }
        fn message(&mut self) -> &[u8] {
            &self.0
        }
    }

    fn hit(message: &[u8], keys: &[&str]) -> bool {
        let args: Vec<Arg> = keys.iter().map(|k| Arg::Quoted(k.as_bytes().to_vec())).collect();
        let mut args = args;
        args[0] = Arg::Atom(keys[0].to_string());
        if keys[0] == "HEADER" {
            args[1] = Arg::Atom(keys[1].to_string());
        }
        let p = SearchProgram::parse(&args, None).unwrap();
        p.matches(&mut Msg(message.to_vec(), Keywords::new()), &SearchContext::default())
    }

    #[test]
    fn dovecot_body_and_header_rules() {
        let m = b"Subject: a\nX-Long: first\n second\n\nbody\n";
        assert!(hit(m, &["HEADER", "X-Long", "first second"]));
        assert!(hit(m, &["TEXT", "first second"]));
        let mixed = b"Content-Type: multipart/mixed; boundary=b\n\npreamble\n--b\nContent-Type: message/rfc822\n\n\
Subject: inner\n\ninnerbody\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n\
aGVsbG9iaW5hcnk=\n--b--\nepilogue\n";
        assert!(!hit(mixed, &["BODY", "preamble"]));
        assert!(!hit(mixed, &["BODY", "epilogue"]));
        assert!(!hit(mixed, &["BODY", "Subject: inner"]));
        assert!(hit(mixed, &["TEXT", "subject: INNER"]));
        assert!(hit(mixed, &["BODY", "innerbody"]));
        assert!(!hit(mixed, &["BODY", "hellobinary"]));
        assert!(hit(mixed, &["BODY", ""]));
    }
}
