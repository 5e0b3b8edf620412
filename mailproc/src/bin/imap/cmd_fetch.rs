//! FETCH and UID FETCH: the data items of RFC 3501 §6.4.5 (FLAGS, UID,
//! INTERNALDATE, RFC822*, BODY[section]<partial>, BODY.PEEK, BODY,
//! BODYSTRUCTURE, ENVELOPE), BINARY[...]<partial>, BINARY.PEEK and
//! BINARY.SIZE (RFC 3516, content from [`binary`]; a literal8 `~{n}` for
//! decoded content, a failed conversion ends the FETCH with `NO` as in
//! Dovecot), MODSEQ and CHANGEDSINCE/VANISHED (RFC 7162), SAVEDATE,
//! EMAILID/THREADID, SNIPPET (FUZZY) and PREVIEW (RFC 8970, text from
//! [`snippet`]); non-peek body items set `\Seen`. Non-binary body
//! content goes out with NULs as 0x80, as Dovecot sends it.

use dovecote_mailproc::imap::args::{compress, Arg};
use dovecote_mailproc::storage::mime;
use dovecote_mailproc::storage::{FlagOp, FlagUpdate, Flags, Keywords};

use crate::dispatch::{Ctx, Done};
use crate::response::{
    crlf, flag_list, internal_date, push_literal, push_nstring, push_string, storage_error,
};
use dovecote_mailproc::imap::binary::{self, BinaryError, Converted};
use dovecote_mailproc::imap::parts::{self, Kind, Part};
use dovecote_mailproc::imap::{bodystructure, envelope, snippet};

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
    Section {
        peek: bool,
        binary: bool,
        part: String,
        sect: Sect,
        partial: Option<(u64, Option<u64>)>,
    },
    BinarySize {
        part: String,
        sect: Sect,
    },
    /// SNIPPET / PREVIEW (RFC 8970); `fuzzy`: the `(FUZZY "…")` form.
    Preview {
        name: &'static str,
        fuzzy: bool,
    },
}

impl Item {
    /// Dovecot's IMAP_FETCH_HANDLER_FLAG_BUFFERED items.
    fn buffered(&self) -> bool {
        matches!(
            self,
            Item::Flags
                | Item::Uid
                | Item::InternalDate
                | Item::Size
                | Item::Modseq
                | Item::SaveDate
                | Item::EmailId
                | Item::ThreadId
                | Item::Preview { .. }
        )
    }

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
    let (prefix, peek) = if upper.starts_with("BODY.PEEK[") {
        ("BODY.PEEK[", true)
    } else if upper.starts_with("BODY[") {
        ("BODY[", false)
    } else if upper.starts_with("BINARY") {
        return parse_binary(text);
    } else {
        return Err(format!("Unknown parameter {upper}"));
    };
    let close = text.rfind(']').ok_or("Invalid BODY[..] parameter")?;
    let inner = &text[prefix.len()..close];
    let (part, sect) = parse_section(inner)?;
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
    Ok(vec![Item::Section { peek, binary: false, part, sect, partial }])
}

/// `SNIPPET [(mods)]` / `PREVIEW [(mods)]`: LAZY, FUZZY, LAZY=FUZZY.
/// SNIPPET always answers in its FUZZY form.
fn preview_item(name: &str, mods: Option<&[Arg]>) -> Result<Item, String> {
    let snippet = name == "SNIPPET";
    let mut fuzzy = snippet;
    if let Some(mods) = mods {
        if mods.is_empty() {
            return Err("FETCH list contains non-atoms".into());
        }
        for m in mods {
            let Some(m) = m.as_atom() else { return Err("FETCH list contains non-atoms".into()) };
            match m.to_ascii_uppercase().as_str() {
                "LAZY" => {}
                "FUZZY" | "LAZY=FUZZY" => fuzzy = true,
                _ => return Err(format!("'{m}' is not a supported PREVIEW modifier")),
            }
        }
    }
    Ok(Item::Preview { name: if snippet { "SNIPPET" } else { "PREVIEW" }, fuzzy })
}

/// `BINARY[section]<partial>`, `BINARY.PEEK[…]`, `BINARY.SIZE[section]`
/// with Dovecot's error wording.
fn parse_binary(text: &str) -> Result<Vec<Item>, String> {
    let bad = |e: &str| format!("Invalid BINARY[..] parameter: {e}");
    let rest = &text["BINARY".len()..];
    let upper = rest.to_ascii_uppercase();
    let (size, peek, rest) = if upper.starts_with(".SIZE") {
        (true, true, &rest[5..])
    } else if upper.starts_with(".PEEK") {
        (false, true, &rest[5..])
    } else {
        (false, false, rest)
    };
    let Some(rest) = rest.strip_prefix('[') else { return Err(bad("Missing '['")) };
    let close = rest.rfind(']').ok_or_else(|| bad("Missing ']'"))?;
    let (part, sect) = parse_section(&rest[..close]).map_err(|_| "Invalid BINARY[..] section".to_string())?;
    let tail = &rest[close + 1..];
    if size {
        // Dovecot ignores a partial after BINARY.SIZE[…].
        return Ok(vec![Item::BinarySize { part, sect }]);
    }
    let partial = if tail.is_empty() {
        None
    } else {
        let p = tail.strip_prefix('<').ok_or_else(|| bad("Unexpected data after ']'"))?;
        let end = p.find('>').ok_or_else(|| bad("Missing '>' in partial"))?;
        if end + 1 != p.len() {
            return Err(bad("Unexpected data after '>'"));
        }
        let (start, len) = match p[..end].split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (&p[..end], None),
        };
        let start: u64 = start.parse().map_err(|_| bad("Too big partial start"))?;
        let len = match len {
            Some(l) => Some(l.parse::<u64>().map_err(|_| bad("Too big partial end"))?),
            None => None,
        };
        Some((start, len))
    };
    Ok(vec![Item::Section { peek, binary: true, part, sect, partial }])
}

/// The part a section's numbers name: a number descends into a
/// multipart's children, and through a message/rfc822 part into the
/// enclosed message; `1` of a non-multipart is the part itself.
fn find_part<'a>(root: &'a Part, spec: &str) -> Option<&'a Part> {
    let mut cur = root;
    for n in spec.split('.').filter(|t| !t.is_empty()) {
        let n: usize = n.parse().ok()?;
        if cur.kind == Kind::Message {
            cur = cur.children.first()?;
        }
        cur = match cur.kind {
            Kind::Multipart => cur.children.get(n.checked_sub(1)?)?,
            _ if n == 1 => cur,
            _ => return None,
        };
    }
    Some(cur)
}

/// BINARY content of a section: decoded for the whole message, a part's
/// body or TEXT; raw (as BODY) for header sections. `None`: no such part.
fn binary_section(data: &[u8], part: &str, sect: &Sect) -> Result<Option<Converted>, BinaryError> {
    let root = parts::parse(data);
    let Some(target) = find_part(&root, part) else { return Ok(None) };
    match sect {
        Sect::Full if part.is_empty() => binary::convert(data, target, true).map(Some),
        Sect::Full => binary::convert(data, target, false).map(Some),
        Sect::Text => {
            // TEXT of the message itself or of an enclosed message.
            let message = match (part.is_empty(), target.kind) {
                (true, _) => target,
                (false, Kind::Message) => match target.children.first() {
                    Some(m) => m,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            };
            binary::convert(data, message, false).map(Some)
        }
        _ => Ok(section_bytes(data, part, sect).map(|bytes| Converted { bytes, binary: false })),
    }
}

/// Dovecot sends NULs of non-binary content as 0x80.
fn no_nuls(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr(0, bytes).is_none() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    std::borrow::Cow::Owned(bytes.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect())
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
    let mut i = 0;
    while i < item_args.len() {
        let Some(text) = item_args[i].as_atom() else { return ctx.invalid() };
        let upper = text.to_ascii_uppercase();
        let parsed = if upper == "SNIPPET" || upper == "PREVIEW" {
            // Modifiers: the list right after the name.
            let mods = match item_args.get(i + 1) {
                Some(Arg::List(l)) => {
                    i += 1;
                    Some(&l[..])
                }
                _ => None,
            };
            preview_item(&upper, mods).map(|item| vec![item])
        } else {
            parse_item(text)
        };
        match parsed {
            Ok(mut v) => items.append(&mut v),
            Err(e) => return ctx.bad(&e),
        }
        i += 1;
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
        // (buffered, text): Dovecot sends its buffered items first.
        let mut parts: Vec<(bool, Vec<u8>)> = Vec::new();
        let mut failed = false;
        let mut binary_failure = None;
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
                    push_literal(&mut p, &no_nuls(bytes));
                }
                Item::Preview { name, fuzzy } => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    let text = snippet::snippet(&d);
                    p.extend_from_slice(name.as_bytes());
                    p.extend_from_slice(if *fuzzy { b" (FUZZY " } else { b" " });
                    push_string(&mut p, text.as_bytes());
                    if *fuzzy {
                        p.push(b')');
                    }
                }
                Item::BinarySize { part, sect } => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    // Dovecot sizes from the whole message's conversion:
                    // a broken part anywhere fails every BINARY.SIZE.
                    let size = binary::convert(&d, &parts::parse(&d), true)
                        .and_then(|_| binary_section(&d, part, sect))
                        .map(|c| c.map_or(0, |c| c.bytes.len()));
                    match size {
                        Ok(size) => {
                            let name = section_name(&Item::Section {
                                peek: true,
                                binary: true,
                                part: part.clone(),
                                sect: sect.clone(),
                                partial: None,
                            });
                            let name = name.replacen("BINARY", "BINARY.SIZE", 1);
                            p.extend_from_slice(format!("{name} {size}").as_bytes());
                        }
                        Err(e) => {
                            binary_failure = Some(e);
                            break;
                        }
                    }
                }
                Item::Section { binary: true, part, sect, partial, .. } => {
                    let Some(d) = need_data(&mut sel.mailbox) else {
                        failed = true;
                        break;
                    };
                    let converted = match binary_section(&d, part, sect) {
                        Ok(c) => c.unwrap_or(Converted { bytes: Vec::new(), binary: false }),
                        Err(e) => {
                            binary_failure = Some(e);
                            break;
                        }
                    };
                    let b = &converted.bytes;
                    let b = match partial {
                        Some((start, len)) => {
                            let s = usize::try_from(*start).unwrap_or(usize::MAX).min(b.len());
                            let e = len.map_or(b.len(), |l| {
                                s.saturating_add(usize::try_from(l).unwrap_or(usize::MAX)).min(b.len())
                            });
                            &b[s..e]
                        }
                        None => &b[..],
                    };
                    stats.body_count += 1;
                    stats.body_bytes += b.len() as u64;
                    p.extend_from_slice(section_name(item).as_bytes());
                    p.push(b' ');
                    if converted.binary {
                        p.push(b'~');
                    }
                    push_literal(&mut p, b);
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
                            push_literal(&mut p, &no_nuls(&b));
                        }
                        None => push_nstring(&mut p, None),
                    }
                }
            }
            parts.push((item.buffered(), p));
        }
        if let Some(e) = binary_failure {
            // As Dovecot: the response so far is closed (with the UID when
            // nothing was sent) and the FETCH ends with the error.
            if parts.is_empty() {
                parts.push((true, format!("UID {uid}").into_bytes()));
            }
            write_fetch(ctx.out, seq, &parts);
            return Done::No(e.to_string());
        }
        if failed {
            expunged_some = true;
            continue;
        }
        if add_flags {
            let f = sel.mailbox.message(uid).map(|m| (m.flags, m.keywords.clone())).unwrap_or_default();
            parts.push((
                true,
                format!("FLAGS {}", flag_list(f.0, &f.1, sel.recent.contains(&uid))).into_bytes(),
            ));
        }
        write_fetch(ctx.out, seq, &parts);
    }
    if expunged_some {
        return Done::No("[EXPUNGEISSUED] Some messages were also expunged.".into());
    }
    Done::Ok("Fetch completed".into())
}

/// `* seq FETCH (item item …)`.
/// Buffered items (short ones, the implicit FLAGS last among them) come
/// first, then the others in request order, as Dovecot sends them.
fn write_fetch(out: &mut Vec<u8>, seq: u32, parts: &[(bool, Vec<u8>)]) {
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    let ordered = parts.iter().filter(|p| p.0).chain(parts.iter().filter(|p| !p.0)).map(|p| &p.1);
    for (i, p) in ordered.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b")\r\n");
}

fn mime_header_len(data: &[u8]) -> usize {
    dovecote_mailproc::storage::mailbox::header_len(data)
}

/// The bytes a URL's `;SECTION=` names in a (CRLF) message (CATENATE):
/// `Err` for a section that doesn't parse, `Ok(None)` for a missing part.
pub fn url_section(data: &[u8], section: &str) -> Result<Option<Vec<u8>>, ()> {
    let (part, sect) = parse_section(section).map_err(|_| ())?;
    Ok(section_bytes(data, &part, &sect))
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
