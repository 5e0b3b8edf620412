//! SEARCH and UID SEARCH: CHARSET, `RETURN (…)` ([`crate::esearch`]),
//! SEARCHRES `$` (RFC 5182) and the `(MODSEQ n)` of CONDSTORE, evaluated
//! by [`dovecote_mailproc::imap::search::SearchProgram`].

use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::imap::message::SearchContext;
use dovecote_mailproc::imap::search::{SearchError, SearchProgram};

use crate::dispatch::{Ctx, Done};
use crate::esearch::{Hit, ReturnOptions};
use crate::session::Message;

pub fn search(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let (esearch, rest) = match ReturnOptions::parse(args) {
        Ok(Some((o, n))) => (Some(o), &args[n..]),
        Ok(None) => (None, args),
        Err(e) => return ctx.bad(&e),
    };
    // CHARSET is parsed (and checked) by the search program itself.
    let program = match SearchProgram::parse(rest, None) {
        Ok(p) => p,
        Err(e @ SearchError::BadCharset(_)) => return Done::No(e.to_string()),
        Err(e) => {
            let command = if ctx.uid { "UID SEARCH" } else { "SEARCH" };
            return Done::Bad(e.for_command(command).to_string());
        }
    };
    let uid_cmd = ctx.uid;
    let Some(hits) = matching(ctx, &program) else { return Done::Bad("No mailbox selected".into()) };
    let shown: Vec<Hit> = hits.iter().map(|&(s, u, m)| (if uid_cmd { u } else { s }, u, m)).collect();
    match esearch {
        None => {
            let mut line = "* SEARCH".to_string();
            for (n, _, _) in &shown {
                line.push_str(&format!(" {n}"));
            }
            if let (true, Some(m)) = (program.uses_modseq(), shown.iter().map(|h| h.2).max()) {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            line.push_str("\r\n");
            ctx.out.extend_from_slice(line.as_bytes());
        }
        Some(opts) => {
            if let Some(line) =
                opts.respond(ctx.tag, uid_cmd, &shown, program.uses_modseq(), &mut ctx.session.saved_search)
            {
                ctx.out.extend_from_slice(line.as_bytes());
            }
        }
    }
    Done::Ok("Search completed".into())
}

/// The selected messages `program` matches, as (sequence, UID, modseq).
pub fn matching(ctx: &mut Ctx<'_>, program: &SearchProgram) -> Option<Vec<(u32, u32, u64)>> {
    let saved = ctx.session.saved_search.clone();
    let sel = ctx.session.selected.as_mut()?;
    let search_ctx = SearchContext {
        max_seq: sel.uids.len() as u32,
        max_uid: sel.max_uid(),
        saved,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    let mut hits = Vec::new();
    let uids = sel.uids.clone();
    for (i, uid) in uids.iter().enumerate() {
        let Some(record) = sel.mailbox.message(*uid).cloned() else { continue };
        let recent = sel.recent.contains(uid);
        let modseq = record.modseq;
        let mut msg = Message::new(&mut sel.mailbox, record, i as u32 + 1, recent);
        if program.matches(&mut msg, &search_ctx) {
            hits.push((i as u32 + 1, *uid, modseq));
        }
    }
    Some(hits)
}
