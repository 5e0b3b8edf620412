//! SORT / UID SORT (RFC 5256, SORT=DISPLAY, ESORT's `RETURN (…)` through
//! [`crate::esearch`]) and THREAD / UID THREAD
//! (REFERENCES, REFS, ORDEREDSUBJECT): the search program picks the
//! messages, [`dovecote_mailproc::imap::sort`] and
//! [`dovecote_mailproc::imap::thread`] order them from their headers.

use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::imap::message::SearchMessage;
use dovecote_mailproc::imap::search::{SearchError, SearchProgram};
use dovecote_mailproc::imap::sort::{self, SortCriteria};
use dovecote_mailproc::imap::thread;

use crate::cmd_search::matching;
use crate::dispatch::{Ctx, Done};
use crate::esearch::{Hit, ReturnOptions};
use crate::session::Message;

/// The reply for a parse error, naming the command as the client sent it.
fn refused(ctx: &Ctx<'_>, e: SearchError) -> Done {
    match e {
        e @ SearchError::BadCharset(_) => Done::No(e.to_string()),
        e => {
            let command = match (ctx.uid, ctx.name.ends_with("THREAD")) {
                (true, true) => "UID THREAD",
                (false, true) => "THREAD",
                (true, false) => "UID SORT",
                (false, false) => "SORT",
            };
            Done::Bad(e.for_command(command).to_string())
        }
    }
}

/// `charset search-keys…` after the SORT criteria / THREAD algorithm.
fn program(ctx: &Ctx<'_>, rest: &[Arg]) -> Result<SearchProgram, Done> {
    let Some(charset) = rest.first().and_then(Arg::as_astring) else { return Err(ctx.invalid()) };
    let charset = String::from_utf8_lossy(charset).into_owned();
    SearchProgram::parse(&rest[1..], Some(&charset)).map_err(|e| refused(ctx, e))
}

/// The matching messages with their headers read, in sequence order.
fn snapshots(ctx: &mut Ctx<'_>, program: &SearchProgram) -> Option<Vec<Message<'static>>> {
    let hits = matching(ctx, program)?;
    let sel = ctx.session.selected.as_mut()?;
    let mut out = Vec::with_capacity(hits.len());
    for (seq, uid, _) in hits {
        let Some(record) = sel.mailbox.message(uid).cloned() else { continue };
        let header = sel.mailbox.read_header(uid).unwrap_or_default();
        out.push(Message::with_header(record, seq, sel.recent.contains(&uid), header));
    }
    Some(out)
}

pub fn sort(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    // ESORT (RFC 5267): `RETURN (…)` before the criteria.
    let (esort, args) = match ReturnOptions::parse(args) {
        Ok(Some((o, n))) => (Some(o), &args[n..]),
        Ok(None) => (None, args),
        Err(e) => return ctx.bad(&e),
    };
    let Some(first) = args.first() else { return ctx.invalid() };
    let criteria = match SortCriteria::parse_arg(first) {
        Ok(c) => c,
        Err(e) => return refused(ctx, e),
    };
    let program = match program(ctx, &args[1..]) {
        Ok(p) => p,
        Err(done) => return done,
    };
    let Some(mut msgs) = snapshots(ctx, &program) else { return Done::Bad("No mailbox selected".into()) };
    let mut refs: Vec<&mut dyn SearchMessage> =
        msgs.iter_mut().map(|m| m as &mut dyn SearchMessage).collect();
    let order = sort::sort(&criteria, &mut refs);
    if let Some(opts) = esort {
        let hits: Vec<Hit> = order
            .iter()
            .map(|&i| {
                let m = &msgs[i];
                (if ctx.uid { m.record.uid } else { m.seq }, m.record.uid, m.record.modseq)
            })
            .collect();
        if let Some(line) =
            opts.respond(ctx.tag, ctx.uid, &hits, program.uses_modseq(), &mut ctx.session.saved_search)
        {
            ctx.out.extend_from_slice(line.as_bytes());
        }
        return Done::Ok("Sort completed".into());
    }
    let mut line = String::from("* SORT");
    for i in order {
        let m = &msgs[i];
        line.push_str(&format!(" {}", if ctx.uid { m.record.uid } else { m.seq }));
    }
    line.push_str("\r\n");
    ctx.out.extend_from_slice(line.as_bytes());
    Done::Ok("Sort completed".into())
}

pub fn thread(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let Some(algorithm) = args.first().and_then(Arg::as_atom).map(str::to_string) else {
        return ctx.invalid();
    };
    let program = match program(ctx, &args[1..]) {
        Ok(p) => p,
        Err(done) => return done,
    };
    let Some(mut msgs) = snapshots(ctx, &program) else { return Done::Bad("No mailbox selected".into()) };
    let mut refs: Vec<&mut dyn SearchMessage> =
        msgs.iter_mut().map(|m| m as &mut dyn SearchMessage).collect();
    let tree = match thread::thread(&algorithm, &mut refs, ctx.uid) {
        Ok(t) => t,
        Err(e) => return refused(ctx, e),
    };
    ctx.out.extend_from_slice(format!("* THREAD {tree}\r\n").as_bytes());
    Done::Ok("Thread completed".into())
}
