//! APPEND with MULTIAPPEND (RFC 3502): flags, INTERNALDATE, one or more
//! messages saved in one transaction, `[APPENDUID v uids]` (UIDPLUS), each
//! a literal (literal8 too) or a CATENATE list ([`crate::catenate`]).

use dovecote_mailproc::imap::args::{compress, Arg};
use dovecote_mailproc::storage::{NewMessage, StorageError};

use crate::catenate;
use crate::cmd_mailbox::mailbox_arg;
use crate::cmd_store::parse_flags;
use crate::dispatch::{Ctx, Done};
use crate::response::storage_error;
use dovecote_mailproc::imap::date::parse_imap_datetime;

/// Messages are stored with LF line endings (Dovecot's default
/// `mail_save_crlf = no`); IMAP sizes count them as CRLF again.
fn lf_only(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

pub fn append(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let Some(name) = mailbox_arg(args.first()) else { return ctx.invalid() };
    let mut messages = Vec::new();
    let mut rest = &args[1..];
    while !rest.is_empty() {
        let mut msg = NewMessage::default();
        if let Arg::List(items) = &rest[0] {
            let (flags, keywords) = match parse_flags(std::slice::from_ref(&rest[0])) {
                Ok(f) => f,
                Err(e) => return ctx.bad(&e),
            };
            let _ = items;
            msg.flags = flags;
            msg.keywords = keywords;
            rest = &rest[1..];
        }
        if let Some(Arg::Quoted(date)) = rest.first() {
            match parse_imap_datetime(&String::from_utf8_lossy(date)) {
                Some(t) => msg.received = Some(t),
                None => return ctx.bad("Invalid internal date."),
            }
            rest = &rest[1..];
        }
        let catenate =
            rest.first().and_then(Arg::as_atom).is_some_and(|a| a.eq_ignore_ascii_case("CATENATE"));
        if let (true, Some(Arg::List(items))) = (catenate, rest.get(1)) {
            // CATENATE may build an empty message, unlike a literal.
            match catenate::build(ctx, items) {
                Ok(data) => msg.data = lf_only(&data),
                Err(done) => return done,
            }
            rest = &rest[2..];
            messages.push(msg);
            continue;
        }
        match rest.first() {
            Some(Arg::Literal(data)) => {
                if data.is_empty() {
                    return Done::No("Can't save a zero byte message.".into());
                }
                msg.data = lf_only(data);
                rest = &rest[1..];
            }
            None => return ctx.bad("Missing message size"),
            Some(_) => return ctx.bad("Invalid arguments."),
        }
        messages.push(msg);
    }
    if messages.is_empty() {
        return ctx.invalid();
    }
    let selected_here = ctx.session.selected.as_ref().is_some_and(|s| s.name == name);
    let result = if selected_here {
        let Some(sel) = ctx.session.selected.as_mut() else { return Done::Bad("No mailbox selected".into()) };
        sel.mailbox.save_many(&messages).map(|saved| (sel.mailbox.status().uid_validity, saved))
    } else {
        match ctx.login.user.open(&name) {
            Ok(mut mailbox) => {
                mailbox.save_many(&messages).map(|saved| (mailbox.status().uid_validity, saved))
            }
            Err(StorageError::NotFound(_)) => {
                return Done::No(format!("[TRYCREATE] Mailbox doesn't exist: {name}"));
            }
            Err(e) => Err(e),
        }
    };
    match result {
        Ok((validity, saved)) => {
            let uids: Vec<u32> = saved.iter().map(|s| s.uid).collect();
            ctx.session.stats.appended += uids.len() as u64;
            Done::Ok(format!("[APPENDUID {validity} {}] Append completed", compress(&uids)))
        }
        Err(e) => Done::No(storage_error(&e)),
    }
}
