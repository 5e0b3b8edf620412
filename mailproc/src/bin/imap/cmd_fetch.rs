//! FETCH and UID FETCH: the data items of RFC 3501 §6.4.5 (FLAGS, UID,
//! INTERNALDATE, RFC822*, BODY[section]<partial>, BODY.PEEK, BODY,
//! BODYSTRUCTURE, ENVELOPE), BINARY[...]/BINARY.SIZE (undecoded
//! fallback), MODSEQ and CHANGEDSINCE/VANISHED (RFC 7162), SAVEDATE,
//! EMAILID/THREADID; non-peek body items set `\Seen`.

use dovecote_mailproc::imap::args::{compress, Arg};
use dovecote_mailproc::storage::mime;
use dovecote_mailproc::storage::{FlagOp, FlagUpdate, Flags, Keywords};

use crate::dispatch::{Ctx, Done};
use crate::response::{crlf, flag_list, internal_date, push_literal, push_nstring, storage_error};
use dovecote_mailproc::imap::{bodystructure, envelope};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sect {
    Full,
    Header,
    Text,
    Mime,
    Fields { names: Vec<String>, not: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Flags,
    Uid,
    InternalDate,
    Size,
    Envelope,
    Body,
    BodyStructure,
    Modseq,
    SaveDate,
    EmailId,
    ThreadId,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Section { peek: bool, binary: bool, part: String, sect: Sect, partial: Option<(u64, Option<u64>)> },
    BinarySize { part: String },
}

impl Item {
    fn sets_seen(&self) -> bool {
        matches!(self, Item::Rfc822 | Item::Rfc822Text | Item::Section { peek: false, .. })
    }
}

fn parse_section(inner: &str) -> Result<(String, Sect), &'static str> {
    let inner = inner.trim();
    let (spec, fields) = match inner.find(' ') {
        Some(i) => (&inner[..i], Some(inner[i..].trim())),
        None => (inner, None),
    };
    let mut part = Vec::new();
    let mut rest = Vec::new();
    for t in spec.split('.').filter(|t| !t.is_empty()) {
        if rest.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
            if t.starts_with('0') {
                return Err("Invalid BODY[..] parameter");
            }
            part.push(t.to_string());
        } else {
            rest.push(t.to_ascii_uppercase());
        }
    }
    let keyword = rest.join(".");
    let sect = match keyword.as_str() {
        "" => Sect::Full,
        "HEADER" => Sect::Header,
        "TEXT" => Sect::Text,
        "MIME" if !part.is_empty() => Sect::Mime,
        "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
            let list = fields.ok_or("Invalid BODY[..] parameter")?;
            let list = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or("Invalid BODY[..] parameter")?;
            let names: Vec<String> = list
                .split_whitespace()
                .map(|n| n.trim_matches('"').to_ascii_uppercase())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                return Err("Invalid BODY[..] parameter");
            }
            Sect::Fields { names, not: keyword.ends_with(".NOT") }
        }
        _ => return Err("Invalid BODY[..] parameter"),
    };
    if fields.is_some() && !matches!(sect, Sect::Fields { .. }) {
        return Err("Invalid BODY[..] parameter");
    }
    Ok((part.join("."), sect))
}

fn parse_item(text: &str) -> Result<Vec<Item>, String> {
    let upper = text.to_ascii_uppercase();
    let simple = match upper.as_str() {
        "ALL" => Some(vec![Item::Flags, Item::InternalDate, Item::Size, Item::Envelope]),
        "FAST" => Some(vec![Item::Flags, Item::InternalDate, Item::Size]),
        "FULL" => Some(vec![Item::Flags, Item::InternalDate, Item::Size, Item::Envelope, Item::Body]),
        "FLAGS" => Some(vec![Item::Flags]),
        "UID" => Some(vec![Item::Uid]),
        "INTERNALDATE" => Some(vec![Item::InternalDate]),
        "RFC822.SIZE" => Some(vec![Item::Size]),
        "ENVELOPE" => Some(vec![Item::Envelope]),
        "BODY" => Some(vec![Item::Body]),
        "BODYSTRUCTURE" => Some(vec![Item::BodyStructure]),
        "MODSEQ" => Some(vec![Item::Modseq]),
        "SAVEDATE" => Some(vec![Item::SaveDate]),
        "EMAILID" => Some(vec![Item::EmailId]),
        "THREADID" => Some(vec![Item::ThreadId]),
        "RFC822" => Some(vec![Item::Rfc822]),
        "RFC822.HEADER" => Some(vec![Item::Rfc822Header]),
        "RFC822.TEXT" => Some(vec![Item::Rfc822Text]),
        _ => None,
    };
    if let Some(items) = simple {
        return Ok(items);
    }
    let (prefix, peek, binary) = if upper.starts_with("BODY.PEEK[") {
        ("BODY.PEEK[", true, false)
    } else if upper.starts_with("BODY[") {
        ("BODY[", false, false)
    } else if upper.starts_with("BINARY.PEEK[") {
        ("BINARY.PEEK[", true, true)
    } else if upper.starts_with("BINARY[") {
        ("BINARY[", false, true)
    } else if let Some(rest) = upper.strip_prefix("BINARY.SIZE[") {
        let inner = rest.strip_suffix(']').ok_or("Invalid BINARY.SIZE[..] parameter")?;
        return Ok(vec![Item::BinarySize { part: inner.to_string() }]);
    } else {
        return Err(format!("Unknown parameter {upper}"));
    };
    let close = text.rfind(']').ok_or("Invalid BODY[..] parameter")?;
    let inner = &text[prefix.len()..close];
    let (part, sect) = parse_section(inner)?;
    if binary && sect != Sect::Full {
        return Err("Invalid BINARY[..] parameter".into());
    }
    let tail = &text[close + 1..];
    let partial = if tail.is_empty() {
        None
    } else {
        let p =
            tail.strip_prefix('<').and_then(|t| t.strip_suffix('>')).ok_or("Invalid BODY[..] parameter")?;
        let (start, len) = match p.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (p, None),
        };
        let start: u64 = start.parse().map_err(|_| "Invalid BODY[..] parameter")?;
        let len = match len {
            Some(l) => Some(l.parse::<u64>().map_err(|_| "Invalid BODY[..] parameter")?),
            None => None,
        };
        if len == Some(0) {
            return Err("Invalid BODY[..] parameter".into());
        }
        Some((start, len))
    };
    Ok(vec![Item::Section { peek, binary, part, sect, partial }])
}

/// Filters a header block to (or without) the named fields.
fn filter_header(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.is_empty() {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            let name = line.iter().position(|&b| b == b':').map(|c| &line[..c]).unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_uppercase();
            keep = names.contains(&name) != not;
        }
        if keep {
            out.extend_from_slice(trimmed);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn section_name(item: &Item) -> String {
    let Item::Section { binary, part, sect, partial, .. } = item else { return String::new() };
    let mut spec = part.clone();
    let kw = match sect {
        Sect::Full => String::new(),
        Sect::Header => "HEADER".into(),
        Sect::Text => "TEXT".into(),
        Sect::Mime => "MIME".into(),
        Sect::Fields { names, not } => {
            format!("HEADER.FIELDS{} ({})", if *not { ".NOT" } else { "" }, names.join(" "))
        }
    };
    if !kw.is_empty() {
        if !spec.is_empty() {
            spec.push('.');
        }
        spec.push_str(&kw);
    }
    let origin = partial.map(|(s, _)| format!("<{s}>")).unwrap_or_default();
    format!("{}[{spec}]{origin}", if *binary { "BINARY" } else { "BODY" })
}

pub fn fetch(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    if args.len() < 2 {
        return ctx.invalid();
    }
    let targets = match ctx.session.resolve_set(args.first(), ctx.uid) {
        Ok(t) => t,
        Err(e) => return ctx.bad(e),
    };
    let mut items = Vec::new();
    let item_args: Vec<&Arg> = match &args[1] {
        Arg::List(l) => l.iter().collect(),
        a => vec![a],
    };
    for a in item_args {
        let Some(text) = a.as_atom() else { return ctx.invalid() };
        match parse_item(text) {
            Ok(mut v) => items.append(&mut v),
            Err(e) => return ctx.bad(&e),
        }
    }
    if items.is_empty() {
        return ctx.invalid();
    }
    let mut changed_since = None;
    let mut vanished = false;
    if let Some(mods) = args.get(2) {
        let Some(mods) = mods.as_list() else { return ctx.invalid() };
        let mut i = 0;
        while i < mods.len() {
            match mods[i].as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("CHANGEDSINCE") => {
                    let Some(n) = mods.get(i + 1).and_then(Arg::as_atom).and_then(|t| t.parse::<u64>().ok())
                    else {
                        return ctx.bad("Invalid CHANGEDSINCE modseq.");
                    };
                    changed_since = Some(n);
                    i += 1;
                }
                Some("VANISHED") => vanished = true,
                _ => return ctx.bad("Unknown FETCH modifier"),
            }
            i += 1;
        }
    }
    if vanished && (!ctx.uid || !ctx.session.qresync || changed_since.is_none()) {
        return ctx.bad("VANISHED not allowed without QRESYNC and CHANGEDSINCE");
    }
    if changed_since.is_some() {
        ctx.session.condstore = true;
        if !items.contains(&Item::Modseq) {
            items.push(Item::Modseq);
        }
    }
    if ctx.uid && !items.contains(&Item::Uid) {
        items.insert(0, Item::Uid);
    }
    let sets_seen = items.iter().any(Item::sets_seen);
    let Some(sel) = ctx.session.selected.as_mut() else { return Done::Bad("No mailbox selected".into()) };
    if let (Some(since), true) = (changed_since, vanished) {
        let changes = sel.mailbox.changes_since(since);
        let max = sel.max_uid();
        let set = match args
            .first()
            .and_then(Arg::as_atom)
            .and_then(dovecote_mailproc::imap::args::SeqSet::parse)
        {
            Some(s) => s,
            None => return ctx.bad("Invalid uidset"),
        };
        let gone: Vec<u32> =
            changes.expunged.iter().map(|t| t.uid).filter(|u| set.contains(*u, max.max(*u))).collect();
        if !gone.is_empty() {
            ctx.out.extend_from_slice(format!("* VANISHED (EARLIER) {}\r\n", compress(&gone)).as_bytes());
        }
    }
    // \Seen first, so the FLAGS we send include it.
    let mut add_flags = false;
    if sets_seen && !sel.readonly {
        let unseen: Vec<u32> = targets
            .iter()
            .filter(|(_, u)| sel.mailbox.message(*u).is_some_and(|m| !m.flags.contains(Flags::SEEN)))
            .map(|(_, u)| *u)
            .collect();
        if !unseen.is_empty() {
            let update = FlagUpdate {
                op: FlagOp::Add,
                flags: Flags::SEEN,
                keywords: Keywords::new(),
                unchanged_since: None,
            };
            match sel.mailbox.store_flags(&unseen, &update) {
                Ok(r) => {
                    for u in r.changed {
                        sel.known.insert(u, r.modseq);
                    }
                    add_flags = !items.contains(&Item::Flags);
                }
                Err(e) => return Done::No(storage_error(&e)),
            }
        }
    }
    let stats = &mut ctx.session.stats;
    let mut expunged_some = false;
    for (seq, uid) in targets {
        let Some(record) = sel.mailbox.message(uid).cloned() else {
            expunged_some = true;
            continue;
        };
        if changed_since.is_some_and(|s| record.modseq <= s) {
            continue;
        }
        let mut data: Option<Vec<u8>> = None;
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut failed = false;
        for item in &items {
            let mut p = Vec::new();
            let mut need_data = |mailbox: &mut dovecote_mailproc::storage::Mailbox| -> Option<Vec<u8>> {
                if data.is_none() {
                    data = match mailbox.read_message(uid) {
                        Ok(d) => Some(crlf(&d).into_owned()),
                        Err(e) => {
                            eprintln!("Error: Mailbox {}: FETCH of UID {uid} failed: {e}", mailbox.name());
                            None
                        }
                    };
                }
                data.clone()
            };
            match item {
                Item::Flags => p.extend_from_slice(
                    format!("FLAGS {}", flag_list(record.flags, &record.keywords, sel.recent.contains(&uid)))
                        .as_bytes(),
                ),
                Item::Uid => p.extend_from_slice(format!("UID {uid}").as_bytes()),
                Item::InternalDate => {
                    p.extend_from_slice(format!("INTERNALDATE {}", internal_date(record.received)).as_bytes())
                }
                Item::Size => p.extend_from_slice(format!("RFC822.SIZE {}", record.virtual_size).as_bytes()),
                Item::Modseq => p.extend_from_slice(format!("MODSEQ ({})", record.modseq).as_bytes()),
                Item::SaveDate => {
                    p.extend_from_slice(format!("SAVEDATE {}", internal_date(record.saved)).as_bytes())
                }
                Item::EmailId => p.extend_from_slice(format!("EMAILID ({})", record.guid).as_bytes()),
                Item::ThreadId => p.extend_from_slice(b"THREADID NIL"),
                Item::Envelope | Item::Body | Item::BodyStructure => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    // Bytes, not text: 8-bit header values go out as sent.
                    match item {
                        Item::Envelope => {
                            p.extend_from_slice(b"ENVELOPE ");
                            p.extend_from_slice(&envelope::envelope_bytes(&d[..mime_header_len(&d)]));
                        }
                        Item::Body => {
                            p.extend_from_slice(b"BODY ");
                            p.extend_from_slice(&bodystructure::render(&d, false));
                        }
                        _ => {
                            p.extend_from_slice(b"BODYSTRUCTURE ");
                            p.extend_from_slice(&bodystructure::render(&d, true));
                        }
                    }
                }
                Item::Rfc822 | Item::Rfc822Header | Item::Rfc822Text => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    let hl = mime_header_len(&d);
                    let (name, bytes) = match item {
                        Item::Rfc822 => ("RFC822", &d[..]),
                        Item::Rfc822Header => ("RFC822.HEADER", &d[..hl]),
                        _ => ("RFC822.TEXT", &d[hl..]),
                    };
                    if *item == Item::Rfc822Header {
                        stats.hdr_count += 1;
                        stats.hdr_bytes += bytes.len() as u64;
                    } else {
                        stats.body_count += 1;
                        stats.body_bytes += bytes.len() as u64;
                    }
                    p.extend_from_slice(name.as_bytes());
                    p.push(b' ');
                    push_literal(&mut p, bytes);
                }
                Item::BinarySize { part } => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    let size = section_bytes(&d, part, &Sect::Full).map(|b| b.len()).unwrap_or(0);
                    p.extend_from_slice(format!("BINARY.SIZE[{part}] {size}").as_bytes());
                }
                Item::Section { part, sect, partial, .. } => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    let bytes = section_bytes(&d, part, sect);
                    let is_header = matches!(sect, Sect::Header | Sect::Fields { .. } | Sect::Mime);
                    p.extend_from_slice(section_name(item).as_bytes());
                    p.push(b' ');
                    match bytes {
                        Some(b) => {
                            let b = match partial {
                                Some((start, len)) => {
                                    let s = (*start as usize).min(b.len());
                                    let e = len.map_or(b.len(), |l| (s + l as usize).min(b.len()));
                                    b[s..e].to_vec()
                                }
                                None => b,
                            };
                            if is_header {
                                stats.hdr_count += 1;
                                stats.hdr_bytes += b.len() as u64;
                            } else {
                                stats.body_count += 1;
                                stats.body_bytes += b.len() as u64;
                            }
                            push_literal(&mut p, &b);
                        }
                        None => push_nstring(&mut p, None),
                    }
                }
            }
            parts.push(p);
        }
        if failed {
            expunged_some = true;
            continue;
        }
        if add_flags {
            let f = sel.mailbox.message(uid).map(|m| (m.flags, m.keywords.clone())).unwrap_or_default();
            parts.push(format!("FLAGS {}", flag_list(f.0, &f.1, sel.recent.contains(&uid))).into_bytes());
        }
        ctx.out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                ctx.out.push(b' ');
            }
            ctx.out.extend_from_slice(p);
        }
        ctx.out.extend_from_slice(b")\r\n");
    }
    if expunged_some {
        return Done::No("[EXPUNGEISSUED] Some messages were also expunged.".into());
    }
    Done::Ok("Fetch completed".into())
}

fn mime_header_len(data: &[u8]) -> usize {
    dovecote_mailproc::storage::mailbox::header_len(data)
}

/// The bytes of `part` + `sect` of a (CRLF) message.
fn section_bytes(data: &[u8], part: &str, sect: &Sect) -> Option<Vec<u8>> {
    let fields = mime::analyze(data, 0, 0);
    let len = data.len() as u32;
    let spec = |kw: &str| -> String {
        match (part.is_empty(), kw.is_empty()) {
            (true, _) => kw.to_string(),
            (false, true) => part.to_string(),
            (false, false) => format!("{part}.{kw}"),
        }
    };
    let range = |s: String| mime::section(&fields.structure, len, &s).map(|r| mime::slice(data, r).to_vec());
    match sect {
        Sect::Full => range(spec("")),
        Sect::Header => range(spec("HEADER")),
        Sect::Text => range(spec("TEXT")),
        Sect::Mime => range(spec("MIME")),
        Sect::Fields { names, not } => range(spec("HEADER")).map(|h| filter_header(&h, names, *not)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_sections() {
        let v = parse_item("BODY.PEEK[1.HEADER.FIELDS (Subject From)]<0.10>").unwrap();
        assert_eq!(section_name(&v[0]), "BODY[1.HEADER.FIELDS (SUBJECT FROM)]<0>");
        assert!(parse_item("BODY[FOO]").is_err());
        assert!(parse_item("FOO").is_err());
        let msg = b"Subject: hi\r\nFrom: a@b\r\nX: y\r\n\r\nbody\r\n";
        assert_eq!(
            section_bytes(msg, "", &Sect::Fields { names: vec!["SUBJECT".into()], not: false }).unwrap(),
            b"Subject: hi\r\n\r\n"
        );
        assert_eq!(section_bytes(msg, "", &Sect::Text).unwrap(), b"body\r\n");
        assert_eq!(section_bytes(msg, "1", &Sect::Full).unwrap(), b"body\r\n");
    }
}
