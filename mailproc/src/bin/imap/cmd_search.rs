//! SEARCH and UID SEARCH: CHARSET, ESEARCH `RETURN (MIN MAX COUNT ALL
//! SAVE)` (RFC 4731), SEARCHRES `$` (RFC 5182) and the `(MODSEQ n)` of
//! CONDSTORE, evaluated by [`dovecote_mailproc::imap::search::SearchProgram`].

use dovecote_mailproc::imap::args::{compress, Arg};
use dovecote_mailproc::imap::message::SearchContext;
use dovecote_mailproc::imap::search::{SearchError, SearchProgram};

use crate::dispatch::{Ctx, Done};
use crate::session::Message;

pub fn search(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let mut rest = args;
    let mut esearch: Option<Vec<String>> = None;
    if rest.first().and_then(Arg::as_atom).is_some_and(|a| a.eq_ignore_ascii_case("RETURN")) {
        let Some(Arg::List(opts)) = rest.get(1) else { return ctx.bad("Invalid RETURN options") };
        let mut names = Vec::new();
        for o in opts {
            let Some(n) = o.as_atom().map(str::to_ascii_uppercase) else {
                return ctx.bad("Invalid RETURN options");
            };
            if !matches!(n.as_str(), "MIN" | "MAX" | "COUNT" | "ALL" | "SAVE") {
                return ctx.bad(&format!("Unknown RETURN option {n}"));
            }
            names.push(n);
        }
        if names.is_empty() {
            names.push("ALL".into());
        }
        esearch = Some(names);
        rest = &rest[2..];
    }
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
    let numbers: Vec<u32> = hits.iter().map(|(s, u, _)| if uid_cmd { *u } else { *s }).collect();
    let max_modseq = hits.iter().map(|(_, _, m)| *m).max();
    let modseq_suffix = match (program.uses_modseq(), max_modseq) {
        (true, Some(m)) => format!(" (MODSEQ {m})"),
        _ => String::new(),
    };
    match esearch {
        None => {
            let mut line = "* SEARCH".to_string();
            for n in &numbers {
                line.push_str(&format!(" {n}"));
            }
            line.push_str(&modseq_suffix);
            line.push_str("\r\n");
            ctx.out.extend_from_slice(line.as_bytes());
        }
        Some(opts) => {
            if opts.iter().any(|o| o == "SAVE") {
                ctx.session.saved_search = Some(hits.iter().map(|(_, u, _)| *u).collect());
            }
            let shown: Vec<&String> = opts.iter().filter(|o| *o != "SAVE").collect();
            if !shown.is_empty() {
                let mut line = format!("* ESEARCH (TAG \"{}\")", ctx.tag);
                if uid_cmd {
                    line.push_str(" UID");
                }
                for o in shown {
                    match o.as_str() {
                        "MIN" if !numbers.is_empty() => line.push_str(&format!(" MIN {}", numbers[0])),
                        "MAX" if !numbers.is_empty() => {
                            line.push_str(&format!(" MAX {}", numbers[numbers.len() - 1]))
                        }
                        "COUNT" => line.push_str(&format!(" COUNT {}", numbers.len())),
                        "ALL" if !numbers.is_empty() => {
                            line.push_str(&format!(" ALL {}", compress(&numbers)))
                        }
                        _ => {}
                    }
                }
                if let (true, Some(m)) = (program.uses_modseq(), max_modseq) {
                    line.push_str(&format!(" MODSEQ {m}"));
                }
                line.push_str("\r\n");
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
