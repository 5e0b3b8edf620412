//! FETCH ENVELOPE (RFC 3501 §7.4.2) exactly as Dovecot 2.3 prints it: the
//! last Date/Subject/In-Reply-To/Message-ID field wins, address fields of
//! the same name accumulate, Sender and Reply-To fall back to From, encoded
//! words are passed through undecoded, subjects and display names use the
//! "for humans" form (whitespace collapsed, literals for 8-bit or quotes).
//!
//! Cost and caching: ENVELOPE needs only the header block (a few hundred
//! bytes, microseconds to parse), so FETCH can render it from the header
//! each time; a mailbox FETCHing 100,000 ENVELOPEs repeatedly should keep
//! the rendered bytes in the per-message field cache (as Dovecot caches
//! `imap.envelope`): they never change for a given message.

use super::address::{self, Address};
use super::header;
use super::quote;

/// The raw envelope fields of one header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

impl Envelope {
    /// Collects the envelope fields of a header block.
    pub fn parse(header_block: &[u8]) -> Envelope {
        let mut e = Envelope::default();
        for f in header::fields(header_block) {
            let name = f.name.to_ascii_lowercase();
            let addrs = match &name[..] {
                b"date" => {
                    e.date = Some(f.value);
                    continue;
                }
                b"subject" => {
                    e.subject = Some(f.value);
                    continue;
                }
                b"in-reply-to" => {
                    e.in_reply_to = Some(f.value);
                    continue;
                }
                b"message-id" => {
                    e.message_id = Some(f.value);
                    continue;
                }
                b"from" => &mut e.from,
                b"sender" => &mut e.sender,
                b"reply-to" => &mut e.reply_to,
                b"to" => &mut e.to,
                b"cc" => &mut e.cc,
                b"bcc" => &mut e.bcc,
                _ => continue,
            };
            addrs.extend(address::parse(&f.value));
        }
        e
    }

    /// The parenthesised ENVELOPE list.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'(');
        quote::nstring_nolf(out, self.date.as_deref());
        out.push(b' ');
        match &self.subject {
            None => out.extend_from_slice(b"NIL"),
            Some(s) => quote::string_for_humans(out, s),
        }
        let sender = if self.sender.is_empty() { &self.from } else { &self.sender };
        let reply_to = if self.reply_to.is_empty() { &self.from } else { &self.reply_to };
        for list in [&self.from, sender, reply_to, &self.to, &self.cc, &self.bcc] {
            out.push(b' ');
            write_addresses(out, list);
        }
        out.push(b' ');
        quote::nstring_nolf(out, self.in_reply_to.as_deref());
        out.push(b' ');
        quote::nstring_nolf(out, self.message_id.as_deref());
        out.push(b')');
    }
}

fn write_addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match &a.name {
            None => out.extend_from_slice(b"NIL"),
            Some(n) => quote::string_for_humans(out, n),
        }
        out.push(b' ');
        quote::nstring(out, a.route.as_deref());
        out.push(b' ');
        quote::nstring(out, a.mailbox.as_deref());
        out.push(b' ');
        quote::nstring(out, a.domain.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// The ENVELOPE of a message header (the header block, or the whole
/// message: parsing stops at the first empty line), as wire bytes.
pub fn envelope_bytes(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    Envelope::parse(header).write(&mut out);
    out
}

/// The ENVELOPE of a message header as Dovecot prints it. 8-bit header
/// bytes travel inside IMAP literals; bytes that aren't UTF-8 are replaced
/// here (use [`envelope_bytes`] to keep them exact).
pub fn envelope(header: &[u8]) -> String {
    let bytes = envelope_bytes(header);
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_missing_fields() {
        assert_eq!(
            envelope(b"From: Alice <a@b.c>\nSubject: hi\n\n"),
            "(NIL \"hi\" ((\"Alice\" NIL \"a\" \"b.c\")) ((\"Alice\" NIL \"a\" \"b.c\")) ((\"Alice\" NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL)"
        );
        assert_eq!(envelope(b""), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    }

    #[test]
    fn last_string_field_wins_and_addresses_accumulate() {
        let e = envelope(b"Subject: one\nSubject: two\nFrom: a@b\nFrom: c@d\n\n");
        assert!(e.starts_with("(NIL \"two\" ((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\"))"), "{e}");
    }
}
