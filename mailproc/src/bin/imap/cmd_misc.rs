//! Session-level commands: CAPABILITY, LOGOUT, ID, ENABLE, IDLE, COMPRESS.

use std::time::Instant;

use dovecote_mailproc::imap::args::Arg;

use crate::dispatch::{Ctx, Done};
use crate::session::{Idle, SyncKind, IDLE_CHECK};

pub fn capability(ctx: &mut Ctx<'_>) -> Done {
    ctx.out.extend_from_slice(format!("* CAPABILITY {}\r\n", ctx.imap.capability).as_bytes());
    Done::Ok("Capability completed".into())
}

pub fn logout(ctx: &mut Ctx<'_>) -> Done {
    ctx.out.extend_from_slice(b"* BYE Logging out\r\n");
    crate::dispatch::reply(ctx.out, ctx.tag, "OK", "Logout completed", ctx.started);
    Done::Logout
}

/// `ID (...)|NIL`: Dovecot's `imap_id_send` default answer.
pub fn id(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    match args {
        [Arg::Nil] => {}
        [Arg::List(items)] if items.len() % 2 == 0 && items.len() <= 60 => {}
        _ => return ctx.invalid(),
    }
    ctx.out.extend_from_slice(b"* ID (\"name\" \"Dovecot\")\r\n");
    Done::Ok("ID completed".into())
}

pub fn enable(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    if args.is_empty() {
        return ctx.bad("Missing arguments");
    }
    let mut enabled = Vec::new();
    for a in args {
        let Some(name) = a.as_atom() else { return ctx.invalid() };
        match name.to_ascii_uppercase().as_str() {
            "CONDSTORE" if !ctx.session.condstore => {
                ctx.session.condstore = true;
                enabled.push("CONDSTORE");
            }
            "QRESYNC" if !ctx.session.qresync => {
                ctx.session.qresync = true;
                ctx.session.condstore = true;
                enabled.push("QRESYNC");
            }
            "UTF8=ACCEPT" if !ctx.session.utf8 => {
                ctx.session.utf8 = true;
                enabled.push("UTF8=ACCEPT");
            }
            _ => {}
        }
    }
    if enabled.contains(&"CONDSTORE") || enabled.contains(&"QRESYNC") {
        if let Some(sel) = &ctx.session.selected {
            let highest = sel.mailbox.status().highest_modseq;
            ctx.out.extend_from_slice(format!("* OK [HIGHESTMODSEQ {highest}] Highest\r\n").as_bytes());
        }
    }
    let mut line = "* ENABLED".to_string();
    for e in &enabled {
        line.push(' ');
        line.push_str(e);
    }
    line.push_str("\r\n");
    ctx.out.extend_from_slice(line.as_bytes());
    Done::Ok("Enabled".into())
}

/// `COMPRESS <mechanism>` (RFC 4978, Dovecot's imap_zlib plugin): only
/// DEFLATE, once per session. The switch itself happens in the postlogin
/// layer after the tagged OK.
pub fn compress(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let [mechanism] = args else { return ctx.invalid() };
    let Some(mechanism) = mechanism.as_atom() else { return ctx.invalid() };
    if ctx.session.compressed {
        return Done::No("[COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled".into());
    }
    if !mechanism.eq_ignore_ascii_case("DEFLATE") {
        return Done::No("Unknown compression mechanism".into());
    }
    ctx.session.compressed = true;
    Done::Compress(ctx.imap.compress.unwrap_or(dovecote_mailproc::postlogin::deflate::DEFAULT_LEVEL))
}

pub fn idle(ctx: &mut Ctx<'_>) -> Done {
    ctx.out.extend_from_slice(b"+ idling\r\n");
    ctx.session.sync(SyncKind::Full, ctx.out);
    let now = Instant::now();
    ctx.session.idle =
        Some(Idle { tag: ctx.tag.to_string(), next_check: now + IDLE_CHECK, started: now, last_notify: now });
    Done::Pending
}
