//! Selecting and leaving a mailbox: SELECT and EXAMINE (with CONDSTORE
//! and QRESYNC parameters), CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE.

use dovecote_mailproc::imap::args::{compress, Arg, SeqSet};
use dovecote_mailproc::storage::Flags;

use crate::cmd_mailbox::mailbox_arg;
use crate::dispatch::{Ctx, Done};
use crate::response::{flag_list, storage_error};
use crate::session::Selected;

/// `(QRESYNC (uidvalidity modseq [known-uids]))` as given.
struct Qresync {
    uid_validity: u32,
    modseq: u64,
    known: Option<SeqSet>,
}

pub fn select(ctx: &mut Ctx<'_>, args: &[Arg], readonly: bool) -> Done {
    let Some(name) = mailbox_arg(args.first()) else { return ctx.invalid() };
    let mut condstore = false;
    let mut qresync = None;
    if let Some(params) = args.get(1) {
        let Some(items) = params.as_list() else { return ctx.invalid() };
        let mut i = 0;
        while i < items.len() {
            match items[i].as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("CONDSTORE") => condstore = true,
                Some("QRESYNC") => {
                    if !ctx.session.qresync {
                        return ctx.bad("QRESYNC not enabled");
                    }
                    let Some(q) = items.get(i + 1).and_then(Arg::as_list) else { return ctx.invalid() };
                    // UIDVALIDITY is 32 bits: a larger number must not match
                    // its truncation.
                    let v = q.first().and_then(Arg::as_atom).and_then(|t| t.parse::<u32>().ok());
                    let m = q.get(1).and_then(Arg::as_atom).and_then(|t| t.parse::<u64>().ok());
                    let (Some(v), Some(m)) = (v, m) else { return ctx.bad("Invalid QRESYNC parameters") };
                    let known = match q.get(2).and_then(Arg::as_atom) {
                        Some(t) => match SeqSet::parse(t) {
                            Some(s) => Some(s),
                            None => return ctx.bad("Invalid QRESYNC parameters"),
                        },
                        None => None,
                    };
                    qresync = Some(Qresync { uid_validity: v, modseq: m, known });
                    i += 1;
                }
                _ => return ctx.bad("Unknown FETCH modifier"),
            }
            i += 1;
        }
    }
    if args.len() > 2 {
        return ctx.invalid();
    }
    if condstore {
        ctx.session.condstore = true;
    }
    // A failed SELECT leaves no mailbox selected. RFC 7162 §3.2.11 wants
    // QRESYNC clients told when the previous one closes; Dovecot tells
    // every client.
    if ctx.session.selected.take().is_some() {
        ctx.out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed.\r\n");
    }
    let mut mailbox = match ctx.login.user.open(&name) {
        Ok(m) => m,
        Err(dovecote_mailproc::storage::StorageError::NotFound(_)) => {
            return Done::No(format!("Mailbox doesn't exist: {name}"));
        }
        Err(e) => return Done::No(storage_error(&e)),
    };
    // The first session to SELECT (never EXAMINE) takes \Recent.
    if !readonly {
        if let Err(e) = mailbox.claim_recent() {
            return Done::No(storage_error(&e));
        }
    }
    let mut sel = Selected::new(name, mailbox, readonly);
    sel.recent = sel.mailbox.recent_uids().into_iter().collect();
    sel.announced_recent = sel.recent.len();
    let st = sel.mailbox.status();
    let mut out = String::new();
    out.push_str(&sel.flags_line());
    if readonly {
        out.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
    } else {
        let mut all: Vec<&str> = Flags::ALL.names();
        all.extend(sel.keywords.iter().map(String::as_str));
        all.push("\\*");
        out.push_str(&format!("* OK [PERMANENTFLAGS ({})] Flags permitted.\r\n", all.join(" ")));
    }
    out.push_str(&format!("* {} EXISTS\r\n* {} RECENT\r\n", sel.uids.len(), sel.recent.len()));
    if let Some(first) = sel.mailbox.messages().position(|m| !m.flags.contains(Flags::SEEN)) {
        out.push_str(&format!("* OK [UNSEEN {}] First unseen.\r\n", first + 1));
    }
    out.push_str(&format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", st.uid_validity));
    out.push_str(&format!("* OK [UIDNEXT {}] Predicted next UID\r\n", st.uid_next));
    if ctx.session.condstore {
        out.push_str(&format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", st.highest_modseq));
    }
    if let Some(q) = qresync.filter(|q| q.uid_validity == st.uid_validity) {
        let changes = sel.mailbox.changes_since(q.modseq);
        let max = sel.max_uid();
        let vanished: Vec<u32> = changes
            .expunged
            .iter()
            .map(|t| t.uid)
            .filter(|u| q.known.as_ref().is_none_or(|k| k.contains(*u, max.max(*u))))
            .collect();
        if !vanished.is_empty() {
            out.push_str(&format!("* VANISHED (EARLIER) {}\r\n", compress(&vanished)));
        }
        for m in sel.mailbox.messages() {
            if m.modseq > q.modseq {
                let seq = sel.seq_of(m.uid).unwrap_or(0);
                out.push_str(&format!(
                    "* {seq} FETCH (UID {} FLAGS {} MODSEQ ({}))\r\n",
                    m.uid,
                    flag_list(m.flags, &m.keywords, false),
                    m.modseq
                ));
            }
        }
    }
    ctx.out.extend_from_slice(out.as_bytes());
    ctx.session.selected = Some(sel);
    if readonly {
        Done::Ok("[READ-ONLY] Examine completed".into())
    } else {
        Done::Ok("[READ-WRITE] Select completed".into())
    }
}

/// Expunges `\Deleted` messages (of `only`, if given); returns how many.
fn expunge_deleted(ctx: &mut Ctx<'_>, only: Option<&[u32]>) -> Result<usize, Done> {
    let Some(sel) = ctx.session.selected.as_mut() else { return Ok(0) };
    if sel.readonly {
        return Err(Done::No("Mailbox is read-only.".into()));
    }
    if let Err(e) = sel.mailbox.sync() {
        return Err(Done::No(storage_error(&e)));
    }
    let uids: Vec<u32> = sel
        .mailbox
        .messages()
        .filter(|m| m.flags.contains(Flags::DELETED))
        .filter(|m| only.is_none_or(|o| o.contains(&m.uid)))
        .map(|m| m.uid)
        .collect();
    match sel.mailbox.expunge(&uids) {
        Ok(done) => {
            ctx.session.stats.expunged += done.len() as u64;
            Ok(done.len())
        }
        Err(e) => Err(Done::No(storage_error(&e))),
    }
}

pub fn close(ctx: &mut Ctx<'_>) -> Done {
    let readonly = ctx.session.selected.as_ref().is_some_and(|s| s.readonly);
    if !readonly {
        if let Err(done) = expunge_deleted(ctx, None) {
            ctx.session.selected = None;
            return done;
        }
    }
    ctx.session.selected = None;
    Done::Ok("Close completed".into())
}

pub fn unselect(ctx: &mut Ctx<'_>) -> Done {
    ctx.session.selected = None;
    Done::Ok("Unselect completed".into())
}

pub fn expunge(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let only = if ctx.uid {
        match ctx.session.resolve_set(args.first(), true) {
            Ok(set) => Some(set.into_iter().map(|(_, u)| u).collect::<Vec<u32>>()),
            Err(e) => return ctx.bad(e),
        }
    } else {
        if !args.is_empty() {
            return ctx.invalid();
        }
        None
    };
    match expunge_deleted(ctx, only.as_deref()) {
        Ok(_) => Done::Ok("Expunge completed".into()),
        Err(done) => done,
    }
}
