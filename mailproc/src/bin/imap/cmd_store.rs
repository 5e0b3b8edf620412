//! STORE (+/-FLAGS(.SILENT), UNCHANGEDSINCE → `[MODIFIED …]`), COPY and
//! MOVE (`[COPYUID …]`, UIDPLUS), with their UID variants.

use dovecote_mailproc::imap::args::{compress, Arg};
use dovecote_mailproc::storage::{FlagOp, FlagUpdate, Flags, Keywords, StorageError};

use crate::cmd_mailbox::mailbox_arg;
use crate::dispatch::{Ctx, Done};
use crate::response::{flag_list, storage_error};

/// Parses a flag list (`(\Seen kw)` or bare atoms); `\Recent` and unknown
/// system flags are refused.
pub fn parse_flags(args: &[Arg]) -> Result<(Flags, Keywords), String> {
    let mut flags = Flags::empty();
    let mut keywords = Keywords::new();
    let items: Vec<&Arg> = match args {
        [Arg::List(l)] => l.iter().collect(),
        other => other.iter().collect(),
    };
    for a in items {
        let Some(text) = a.as_atom() else { return Err("Flags list contains non-atoms.".into()) };
        if let Some(sys) = text.strip_prefix('\\') {
            match Flags::from_name(text) {
                Some(f) => flags = flags.union(f),
                None => return Err(format!("Invalid system flag \\{sys}")),
            }
        } else {
            keywords.insert(text.to_string());
        }
    }
    Ok((flags, keywords))
}

pub fn store(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    if args.len() < 3 {
        return ctx.invalid();
    }
    let targets = match ctx.session.resolve_set(args.first(), ctx.uid) {
        Ok(t) => t,
        Err(e) => return ctx.bad(e),
    };
    let mut pos = 1;
    let mut unchanged_since = None;
    if let Some(mods) = args[1].as_list() {
        match (mods.first().and_then(Arg::as_atom).map(str::to_ascii_uppercase).as_deref(), mods.get(1)) {
            (Some("UNCHANGEDSINCE"), Some(n)) if mods.len() == 2 => {
                match n.as_atom().and_then(|t| t.parse::<u64>().ok()) {
                    Some(n) => unchanged_since = Some(n),
                    None => return ctx.bad("Invalid modseq"),
                }
            }
            _ => return ctx.bad("Unknown STORE modifier"),
        }
        pos = 2;
    }
    let Some(op_text) = args.get(pos).and_then(Arg::as_atom) else { return ctx.invalid() };
    let op_upper = op_text.to_ascii_uppercase();
    let (op, rest) = match op_upper.as_bytes().first() {
        Some(b'+') => (FlagOp::Add, &op_upper[1..]),
        Some(b'-') => (FlagOp::Remove, &op_upper[1..]),
        _ => (FlagOp::Replace, op_upper.as_str()),
    };
    let silent = match rest {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return ctx.bad("Invalid arguments"),
    };
    let (flags, keywords) = match parse_flags(&args[pos + 1..]) {
        Ok(f) => f,
        Err(e) => return ctx.bad(&e),
    };
    if unchanged_since.is_some() {
        ctx.session.condstore = true;
    }
    let condstore = ctx.session.condstore;
    let uid_cmd = ctx.uid;
    let Some(sel) = ctx.session.selected.as_mut() else { return Done::Bad("No mailbox selected".into()) };
    if sel.readonly {
        return Done::No("Mailbox is read-only.".into());
    }
    let uids: Vec<u32> = targets.iter().map(|(_, u)| *u).collect();
    let update = FlagUpdate { op, flags, keywords: keywords.clone(), unchanged_since };
    let result = match sel.mailbox.store_flags(&uids, &update) {
        Ok(r) => r,
        Err(e) => return Done::No(storage_error(&e)),
    };
    if flags.contains(Flags::DELETED) && op != FlagOp::Remove {
        ctx.session.stats.deleted += result.changed.len() as u64;
    }
    let mut new_keywords = false;
    for k in &keywords {
        new_keywords |= sel.keywords.insert(k.clone());
    }
    if new_keywords {
        ctx.out.extend_from_slice(sel.flags_line().as_bytes());
    }
    for (seq, uid) in &targets {
        let Some(m) = sel.mailbox.message(*uid) else { continue };
        if result.modified.contains(uid) {
            continue;
        }
        sel.known.insert(*uid, m.modseq);
        // .SILENT hides the change from this client unless CONDSTORE
        // needs the new modseq (RFC 7162 §3.2).
        if silent && !(unchanged_since.is_some() && result.changed.contains(uid)) {
            continue;
        }
        let mut line = format!("* {seq} FETCH (");
        if uid_cmd {
            line.push_str(&format!("UID {uid} "));
        }
        if silent {
            line.push_str(&format!("MODSEQ ({}))\r\n", m.modseq));
        } else {
            line.push_str(&format!("FLAGS {}", flag_list(m.flags, &m.keywords, sel.recent.contains(uid))));
            if condstore {
                line.push_str(&format!(" MODSEQ ({})", m.modseq));
            }
            line.push_str(")\r\n");
        }
        ctx.out.extend_from_slice(line.as_bytes());
    }
    if !result.modified.is_empty() {
        let shown: Vec<u32> = if uid_cmd {
            result.modified.clone()
        } else {
            result.modified.iter().filter_map(|u| sel.seq_of(*u)).collect()
        };
        return Done::Ok(format!("[MODIFIED {}] Conditional store failed", compress(&shown)));
    }
    Done::Ok("Store completed".into())
}

pub fn copy(ctx: &mut Ctx<'_>, args: &[Arg], is_move: bool) -> Done {
    if args.len() != 2 {
        return ctx.invalid();
    }
    let targets = match ctx.session.resolve_set(args.first(), ctx.uid) {
        Ok(t) => t,
        Err(e) => return ctx.bad(e),
    };
    let Some(dest_name) = mailbox_arg(args.get(1)) else { return ctx.invalid() };
    let user = &ctx.login.user;
    let Some(sel) = ctx.session.selected.as_mut() else { return Done::Bad("No mailbox selected".into()) };
    if is_move && sel.readonly {
        return Done::No("Mailbox is read-only.".into());
    }
    let uids: Vec<u32> = targets.iter().map(|(_, u)| *u).collect();
    let same = dest_name == sel.name;
    let mut dest = match user.open(&dest_name) {
        Ok(d) => d,
        Err(StorageError::NotFound(_)) => {
            return Done::No(format!("[TRYCREATE] Mailbox doesn't exist: {dest_name}"));
        }
        Err(e) => return Done::No(storage_error(&e)),
    };
    let result =
        if is_move { sel.mailbox.move_to(&uids, &mut dest) } else { sel.mailbox.copy_to(&uids, &mut dest) };
    let pairs = match result {
        Ok(p) => p,
        Err(e) => return Done::No(storage_error(&e)),
    };
    let validity = dest.status().uid_validity;
    if same {
        // Our own view must see the copies (EXISTS follows). A MOVE into
        // the selected mailbox itself is allowed, as in Dovecot: the
        // messages get new UIDs and the old ones are expunged.
        let _ = sel.mailbox.sync();
    }
    if pairs.is_empty() {
        return Done::Ok("No messages found.".into());
    }
    let src: Vec<u32> = pairs.iter().map(|(s, _)| *s).collect();
    let dst: Vec<u32> = pairs.iter().map(|(_, d)| *d).collect();
    let code = format!("COPYUID {validity} {} {}", compress(&src), compress(&dst));
    if is_move {
        ctx.session.stats.expunged += src.len() as u64;
        ctx.out.extend_from_slice(format!("* OK [{code}] Moved UIDs.\r\n").as_bytes());
        Done::Ok("Move completed".into())
    } else {
        Done::Ok(format!("[{code}] Copy completed"))
    }
}
