//! The one seam to the render helper's modules (ENVELOPE, BODYSTRUCTURE,
//! SEARCH; `dovecote_mailproc::imap::{envelope,bodystructure,search,sort,
//! thread}` on branch wip/render). Until they land, these are minimal
//! private fallbacks with the same API; at merge time this file becomes
//! re-exports of those modules and [`EXTRA_CAPABILITY`] gains SORT,
//! SORT=DISPLAY, THREAD=… and ESORT.

use std::fmt;

use dovecote_mailproc::imap::args::{Arg, SeqSet};
use dovecote_mailproc::imap::message::{SearchContext, SearchMessage};
use dovecote_mailproc::storage::mime::{self, MimePart};
use dovecote_mailproc::storage::Flags;

use crate::response::{parse_date, push_nstring, push_string};

/// Capabilities that depend on the render modules (SORT/THREAD are not
/// offered by the fallback).
pub const EXTRA_CAPABILITY: &str = "";

/// `imap::envelope::envelope`: the parenthesised ENVELOPE of a header.
pub fn envelope(header: &[u8]) -> String {
    let fields = mime::header_fields(header);
    let get =
        |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice());
    let mut out = Vec::new();
    out.push(b'(');
    push_nstring(&mut out, get("Date"));
    out.push(b' ');
    push_nstring(&mut out, get("Subject"));
    let from = get("From");
    for (name, fallback) in
        [("From", None), ("Sender", from), ("Reply-To", from), ("To", None), ("Cc", None), ("Bcc", None)]
    {
        out.push(b' ');
        push_addresses(&mut out, get(name).or(fallback));
    }
    out.push(b' ');
    push_nstring(&mut out, get("In-Reply-To"));
    out.push(b' ');
    push_nstring(&mut out, get("Message-ID"));
    out.push(b')');
    String::from_utf8_lossy(&out).into_owned()
}

fn push_addresses(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let Some(value) = value.filter(|v| !v.trim_ascii().is_empty()) else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let text = String::from_utf8_lossy(value);
    let mut list = Vec::new();
    for item in split_addresses(&text) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, addr) = match (item.rfind('<'), item.rfind('>')) {
            (Some(a), Some(b)) if a < b => {
                let name = item[..a].trim().trim_matches('"').trim();
                (
                    if name.is_empty() { None } else { Some(name.to_string()) },
                    item[a + 1..b].trim().to_string(),
                )
            }
            _ => (None, item.to_string()),
        };
        let (mbox, host) = match addr.rsplit_once('@') {
            Some((m, h)) => (m.to_string(), Some(h.to_string())),
            None => (addr.clone(), None),
        };
        list.push((name, mbox, host));
    }
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (name, mbox, host) in list {
        out.push(b'(');
        push_nstring(out, name.as_deref().map(str::as_bytes));
        out.extend_from_slice(b" NIL ");
        push_string(out, mbox.as_bytes());
        out.push(b' ');
        match host {
            Some(h) => push_string(out, h.as_bytes()),
            None => push_string(out, b"MISSING_DOMAIN"),
        }
        out.push(b')');
    }
    out.push(b')');
}

/// Splits on commas outside quotes and angle brackets.
fn split_addresses(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `imap::bodystructure::body`.
pub fn body(message: &[u8]) -> String {
    let fields = mime::analyze(message, 0, 0);
    render_part(message, &fields.structure, false)
}

/// `imap::bodystructure::bodystructure`.
pub fn bodystructure(message: &[u8]) -> String {
    let fields = mime::analyze(message, 0, 0);
    render_part(message, &fields.structure, true)
}

fn params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_string(out, k.as_bytes());
        out.push(b' ');
        push_string(out, v.as_bytes());
    }
    out.push(b')');
}

fn render_part(data: &[u8], part: &MimePart, extended: bool) -> String {
    let mut out = Vec::new();
    write_part(&mut out, data, part, extended);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_part(out: &mut Vec<u8>, data: &[u8], part: &MimePart, extended: bool) {
    out.push(b'(');
    if part.media_type == "multipart" {
        if part.children.is_empty() {
            out.extend_from_slice(b"\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0");
        }
        for child in &part.children {
            write_part(out, data, child, extended);
        }
        out.push(b' ');
        push_string(out, part.subtype.as_bytes());
        if extended {
            out.push(b' ');
            params(out, &part.params);
            write_ext(out, part);
        }
        out.push(b')');
        return;
    }
    push_string(out, part.media_type.as_bytes());
    out.push(b' ');
    push_string(out, part.subtype.as_bytes());
    out.push(b' ');
    let mut p = part.params.clone();
    if part.media_type == "text" && p.is_empty() {
        p.push(("charset".into(), "us-ascii".into()));
    }
    params(out, &p);
    out.push(b' ');
    push_nstring(out, part.id.as_deref().map(str::as_bytes));
    out.push(b' ');
    push_nstring(out, part.description.as_deref().map(str::as_bytes));
    out.push(b' ');
    push_string(out, part.encoding.as_deref().unwrap_or("7bit").as_bytes());
    let body = mime::slice(data, part.body);
    out.extend_from_slice(format!(" {}", dovecote_mailproc::storage::backend::virtual_size(body)).as_bytes());
    if part.media_type == "text" {
        out.extend_from_slice(format!(" {}", part.lines).as_bytes());
    } else if let Some(inner) = &part.message {
        out.push(b' ');
        let header = mime::slice(data, inner.1.header);
        out.extend_from_slice(envelope(header).as_bytes());
        out.push(b' ');
        write_part(out, data, &inner.1, extended);
        out.extend_from_slice(format!(" {}", part.lines).as_bytes());
    }
    if extended {
        out.extend_from_slice(b" NIL");
        write_ext(out, part);
    }
    out.push(b')');
}

/// disposition, language, location.
fn write_ext(out: &mut Vec<u8>, part: &MimePart) {
    out.push(b' ');
    match &part.disposition {
        Some((kind, p)) => {
            out.push(b'(');
            push_string(out, kind.as_bytes());
            out.push(b' ');
            params(out, p);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.extend_from_slice(b" NIL ");
    push_nstring(out, part.location.as_deref().map(str::as_bytes));
}

/// `imap::search::SearchError`: Display is the text after `BAD `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError(String);

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(text: &str) -> SearchError {
    SearchError(format!("Error in IMAP command SEARCH: {text}"))
}

/// One search key (the fallback's subset of RFC 3501 §6.4.4).
#[derive(Debug, Clone)]
enum Key {
    All,
    Flag(Flags, bool),
    Recent(bool),
    New,
    Keyword(String, bool),
    Seq(SeqSet),
    Uid(SeqSet),
    Larger(u64),
    Smaller(u64),
    Header(String, String),
    Body(String),
    Text(String),
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Modseq(u64),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

/// `imap::search::SearchProgram`.
#[derive(Debug, Clone)]
pub struct SearchProgram {
    key: Key,
}

impl SearchProgram {
    pub fn parse(args: &[Arg], _charset: Option<&str>) -> Result<SearchProgram, SearchError> {
        let mut pos = 0;
        let mut keys = Vec::new();
        while pos < args.len() {
            keys.push(parse_key(args, &mut pos)?);
        }
        if keys.is_empty() {
            return Err(err("Missing search parameters"));
        }
        Ok(SearchProgram { key: Key::And(keys) })
    }

    pub fn matches(&self, msg: &mut dyn SearchMessage, ctx: &SearchContext) -> bool {
        eval(&self.key, msg, ctx)
    }

    pub fn uses_modseq(&self) -> bool {
        fn walk(k: &Key) -> bool {
            match k {
                Key::Modseq(_) => true,
                Key::Not(k) => walk(k),
                Key::Or(a, b) => walk(a) || walk(b),
                Key::And(v) => v.iter().any(walk),
                _ => false,
            }
        }
        walk(&self.key)
    }
}

fn text_arg(args: &[Arg], pos: &mut usize) -> Result<String, SearchError> {
    let a = args.get(*pos).ok_or_else(|| err("Missing parameter for argument"))?;
    *pos += 1;
    a.as_astring().map(|b| String::from_utf8_lossy(b).into_owned()).ok_or_else(|| err("Invalid parameter"))
}

fn parse_key(args: &[Arg], pos: &mut usize) -> Result<Key, SearchError> {
    let arg = args.get(*pos).ok_or_else(|| err("Missing search parameters"))?;
    *pos += 1;
    if let Arg::List(items) = arg {
        let mut p = 0;
        let mut keys = Vec::new();
        while p < items.len() {
            keys.push(parse_key(items, &mut p)?);
        }
        return Ok(Key::And(keys));
    }
    let Some(atom) = arg.as_atom() else { return Err(err("Unknown argument")) };
    let upper = atom.to_ascii_uppercase();
    let date = |args: &[Arg], pos: &mut usize| -> Result<i64, SearchError> {
        let t = text_arg(args, pos)?;
        parse_date(&t).map(|d| d * 86400).ok_or_else(|| err("Invalid search date parameter"))
    };
    let number = |args: &[Arg], pos: &mut usize| -> Result<u64, SearchError> {
        text_arg(args, pos)?.parse().map_err(|_| err("Invalid search parameter"))
    };
    Ok(match upper.as_str() {
        "ALL" => Key::All,
        "ANSWERED" | "DELETED" | "DRAFT" | "FLAGGED" | "SEEN" => {
            Key::Flag(Flags::from_name(&format!("\\{upper}")).unwrap_or_default(), true)
        }
        "UNANSWERED" | "UNDELETED" | "UNDRAFT" | "UNFLAGGED" | "UNSEEN" => {
            Key::Flag(Flags::from_name(&format!("\\{}", &upper[2..])).unwrap_or_default(), false)
        }
        "RECENT" => Key::Recent(true),
        "OLD" => Key::Recent(false),
        "NEW" => Key::New,
        "KEYWORD" => Key::Keyword(text_arg(args, pos)?, true),
        "UNKEYWORD" => Key::Keyword(text_arg(args, pos)?, false),
        "UID" => Key::Uid(SeqSet::parse(&text_arg(args, pos)?).ok_or_else(|| err("Invalid uidset"))?),
        "LARGER" => Key::Larger(number(args, pos)?),
        "SMALLER" => Key::Smaller(number(args, pos)?),
        "SUBJECT" | "FROM" | "TO" | "CC" | "BCC" => Key::Header(upper.clone(), text_arg(args, pos)?),
        "HEADER" => {
            let name = text_arg(args, pos)?;
            Key::Header(name, text_arg(args, pos)?)
        }
        "BODY" => Key::Body(text_arg(args, pos)?),
        "TEXT" => Key::Text(text_arg(args, pos)?),
        "BEFORE" => Key::Before(date(args, pos)?),
        "ON" => Key::On(date(args, pos)?),
        "SINCE" => Key::Since(date(args, pos)?),
        "SENTBEFORE" => Key::SentBefore(date(args, pos)?),
        "SENTON" => Key::SentOn(date(args, pos)?),
        "SENTSINCE" => Key::SentSince(date(args, pos)?),
        "MODSEQ" => {
            // MODSEQ [entry-name entry-type] n
            let mut n = text_arg(args, pos)?;
            if n.starts_with('"') || n.starts_with('/') {
                let _type = text_arg(args, pos)?;
                n = text_arg(args, pos)?;
            }
            Key::Modseq(n.parse().map_err(|_| err("Invalid MODSEQ parameter"))?)
        }
        "NOT" => Key::Not(Box::new(parse_key(args, pos)?)),
        "OR" => {
            let a = parse_key(args, pos)?;
            Key::Or(Box::new(a), Box::new(parse_key(args, pos)?))
        }
        _ => match SeqSet::parse(atom) {
            Some(set) => Key::Seq(set),
            None => return Err(err(&format!("Unknown argument {upper}"))),
        },
    })
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let hay = String::from_utf8_lossy(hay).to_lowercase();
    hay.contains(&needle.to_lowercase())
}

fn in_set(set: &SeqSet, n: u32, max: u32, ctx: &SearchContext, uid: bool) -> bool {
    match set {
        SeqSet::Saved => uid && ctx.saved.as_ref().is_some_and(|s| s.contains(&n)),
        _ => set.contains(n, max),
    }
}

fn sent_date(msg: &mut dyn SearchMessage) -> Option<i64> {
    let fields = mime::header_fields(msg.header());
    let date = fields.iter().find(|(n, _)| n.eq_ignore_ascii_case("Date"))?.1.clone();
    let parsed = mime::analyze(format!("Date: {}\n\n", String::from_utf8_lossy(&date)).as_bytes(), 0, 0);
    parsed.date.map(|d| d.div_euclid(86400) * 86400)
}

fn eval(key: &Key, msg: &mut dyn SearchMessage, ctx: &SearchContext) -> bool {
    let day = |t: i64| t.div_euclid(86400) * 86400;
    match key {
        Key::All => true,
        Key::Flag(f, set) => msg.flags().contains(*f) == *set,
        Key::Recent(r) => msg.recent() == *r,
        Key::New => msg.recent() && !msg.flags().contains(Flags::SEEN),
        Key::Keyword(k, set) => msg.keywords().iter().any(|x| x.eq_ignore_ascii_case(k)) == *set,
        Key::Seq(s) => {
            let seq = msg.seq();
            in_set(s, seq, ctx.max_seq, ctx, false)
        }
        Key::Uid(s) => {
            let uid = msg.uid();
            in_set(s, uid, ctx.max_uid, ctx, true)
        }
        Key::Larger(n) => msg.size() > *n,
        Key::Smaller(n) => msg.size() < *n,
        Key::Header(name, value) => {
            let fields = mime::header_fields(msg.header());
            fields.iter().any(|(n, v)| n.eq_ignore_ascii_case(name) && contains_ci(v, value))
        }
        Key::Body(s) => {
            let data = msg.message();
            let start = dovecote_mailproc::storage::mailbox::header_len(data);
            contains_ci(&data[start..], s)
        }
        Key::Text(s) => contains_ci(msg.message(), s),
        Key::Before(d) => day(msg.internal_date().0) < *d,
        Key::On(d) => day(msg.internal_date().0) == *d,
        Key::Since(d) => day(msg.internal_date().0) >= *d,
        Key::SentBefore(d) => sent_date(msg).is_some_and(|t| t < *d),
        Key::SentOn(d) => sent_date(msg).is_some_and(|t| t == *d),
        Key::SentSince(d) => sent_date(msg).is_some_and(|t| t >= *d),
        Key::Modseq(n) => msg.modseq() >= *n,
        Key::Not(k) => !eval(k, msg, ctx),
        Key::Or(a, b) => eval(a, msg, ctx) || eval(b, msg, ctx),
        Key::And(keys) => keys.iter().all(|k| eval(k, msg, ctx)),
    }
}
