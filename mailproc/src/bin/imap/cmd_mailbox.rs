//! Mailbox-list commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
//! LIST (LIST-EXTENDED selection and return options, SPECIAL-USE,
//! LIST-STATUS), LSUB, STATUS and NAMESPACE.

use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::storage::{ListOptions, MailboxStatus};

use crate::dispatch::{Ctx, Done};
use crate::response::{mailbox as quote_mailbox, storage_error};

/// A mailbox-name argument, `INBOX` normalised.
pub fn mailbox_arg(arg: Option<&Arg>) -> Option<String> {
    let raw = arg?.as_astring()?;
    let name = String::from_utf8_lossy(raw).into_owned();
    if name.eq_ignore_ascii_case("INBOX") {
        return Some("INBOX".into());
    }
    Some(name)
}

pub fn namespace(ctx: &mut Ctx<'_>) -> Done {
    let mut groups = [Vec::new(), Vec::new(), Vec::new()];
    for ns in &ctx.login.user.namespaces {
        if ns.hidden {
            continue;
        }
        let i = match ns.kind.as_str() {
            "shared" => 1,
            "public" => 2,
            _ => 0,
        };
        groups[i].push(format!("({} \"{}\")", quote_mailbox(&ns.prefix), ns.separator));
    }
    let part = |g: &Vec<String>| if g.is_empty() { "NIL".to_string() } else { format!("({})", g.join("")) };
    ctx.out.extend_from_slice(
        format!("* NAMESPACE {} {} {}\r\n", part(&groups[0]), part(&groups[1]), part(&groups[2])).as_bytes(),
    );
    Done::Ok("Namespace completed".into())
}

/// The separator of the namespace a name falls in.
fn separator(ctx: &Ctx<'_>, name: &str) -> char {
    ctx.login.user.resolve(name).map(|(ns, _)| ns.separator).unwrap_or('.')
}

pub fn create(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let Some(mut name) = mailbox_arg(args.first()) else { return ctx.invalid() };
    let sep = separator(ctx, &name);
    if name.ends_with(sep) {
        name.pop();
    }
    if name.is_empty() {
        return ctx.invalid();
    }
    match ctx.login.user.create(&name) {
        Ok(()) => Done::Ok("Create completed".into()),
        Err(e) => Done::No(storage_error(&e)),
    }
}

pub fn delete(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let Some(name) = mailbox_arg(args.first()) else { return ctx.invalid() };
    if name == "INBOX" {
        return Done::No("INBOX can't be deleted.".into());
    }
    if ctx.session.selected.as_ref().is_some_and(|s| s.name == name) {
        // Dovecot closes the mailbox it deletes.
        ctx.session.selected = None;
        ctx.out.extend_from_slice(b"* BYE Selected mailbox was deleted, have to disconnect.\r\n");
    }
    match ctx.login.user.delete(&name) {
        Ok(()) => Done::Ok("Delete completed".into()),
        Err(e) => Done::No(storage_error(&e)),
    }
}

pub fn rename(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    let (Some(old), Some(new)) = (mailbox_arg(args.first()), mailbox_arg(args.get(1))) else {
        return ctx.invalid();
    };
    if args.len() != 2 {
        return ctx.invalid();
    }
    match ctx.login.user.rename(&old, &new) {
        Ok(()) => Done::Ok("Rename completed".into()),
        Err(e) => Done::No(storage_error(&e)),
    }
}

pub fn subscribe(ctx: &mut Ctx<'_>, args: &[Arg], on: bool) -> Done {
    let Some(name) = mailbox_arg(args.first()) else { return ctx.invalid() };
    if on && !ctx.login.user.exists(&name).unwrap_or(false) {
        return Done::No(format!("[NONEXISTENT] Mailbox doesn't exist: {name}"));
    }
    match ctx.login.user.subscribe(&name, on) {
        Ok(()) => Done::Ok(if on { "Subscribe completed" } else { "Unsubscribe completed" }.into()),
        Err(e) => Done::No(storage_error(&e)),
    }
}

/// LIST-EXTENDED options.
#[derive(Default)]
struct ListRequest {
    subscribed: bool,
    special_use_only: bool,
    recursive: bool,
    return_subscribed: bool,
    return_children: bool,
    return_special_use: bool,
    status: Option<Vec<String>>,
    extended: bool,
}

pub fn list(ctx: &mut Ctx<'_>, args: &[Arg], lsub: bool) -> Done {
    let mut req = ListRequest::default();
    let mut pos = 0;
    if !lsub {
        if let Some(Arg::List(opts)) = args.first() {
            req.extended = true;
            for o in opts {
                match o.as_atom().map(str::to_ascii_uppercase).as_deref() {
                    Some("SUBSCRIBED") => req.subscribed = true,
                    Some("SPECIAL-USE") => req.special_use_only = true,
                    Some("RECURSIVEMATCH") => req.recursive = true,
                    Some("REMOTE") => {}
                    _ => return ctx.bad("List options contains unknown keyword"),
                }
            }
            pos = 1;
        }
    }
    let Some(reference) = args.get(pos).and_then(Arg::as_astring) else {
        return ctx.bad("Invalid reference");
    };
    let reference = String::from_utf8_lossy(reference).into_owned();
    let patterns: Vec<String> = match args.get(pos + 1) {
        Some(Arg::List(items)) if !lsub => {
            req.extended = true;
            let mut v = Vec::new();
            for i in items {
                let Some(p) = i.as_astring() else { return ctx.bad("Invalid pattern list") };
                v.push(String::from_utf8_lossy(p).into_owned());
            }
            v
        }
        Some(a) => match a.as_astring() {
            Some(p) => vec![String::from_utf8_lossy(p).into_owned()],
            None => return ctx.bad("Invalid pattern"),
        },
        None => return ctx.bad("Missing arguments"),
    };
    let rest = &args[pos + 2..];
    if !rest.is_empty() {
        if lsub {
            return ctx.invalid();
        }
        let (Some("RETURN"), Some(Arg::List(opts))) =
            (rest[0].as_atom().map(str::to_ascii_uppercase).as_deref(), rest.get(1))
        else {
            return ctx.bad("Unknown argument");
        };
        req.extended = true;
        let mut i = 0;
        while i < opts.len() {
            match opts[i].as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("SUBSCRIBED") => req.return_subscribed = true,
                Some("CHILDREN") => req.return_children = true,
                Some("SPECIAL-USE") => req.return_special_use = true,
                Some("STATUS") => {
                    let Some(Arg::List(items)) = opts.get(i + 1) else {
                        return ctx.bad("Invalid status items");
                    };
                    let mut names = Vec::new();
                    for it in items {
                        let Some(n) = it.as_atom() else { return ctx.bad("Invalid status items") };
                        names.push(n.to_ascii_uppercase());
                    }
                    if let Some(bad) = names.iter().find(|n| !STATUS_ITEMS.contains(&n.as_str())) {
                        return ctx.bad(&format!("Invalid status item {bad}"));
                    }
                    req.status = Some(names);
                    i += 1;
                }
                _ => return ctx.bad("Unknown return option"),
            }
            i += 1;
        }
    }
    let user = &ctx.login.user;
    let mut lines = String::new();
    for pattern in &patterns {
        let full = if reference.is_empty() { pattern.clone() } else { format!("{reference}{pattern}") };
        if full.is_empty() {
            // `LIST "" ""`: the hierarchy separator.
            let sep = user.namespaces.iter().find(|n| n.prefix.is_empty()).map_or('.', |n| n.separator);
            let cmd = if lsub { "LSUB" } else { "LIST" };
            lines.push_str(&format!("* {cmd} (\\Noselect) \"{sep}\" \"\"\r\n"));
            continue;
        }
        let options =
            ListOptions { subscribed_only: lsub || req.subscribed, special_use_only: req.special_use_only };
        let entries = match user.list(&full, options) {
            Ok(e) => e,
            Err(e) => return Done::No(storage_error(&e)),
        };
        for e in entries {
            let mut attrs: Vec<&str> = Vec::new();
            for a in &e.attributes {
                let keep = match a.as_str() {
                    "\\Subscribed" => !lsub && (req.subscribed || req.return_subscribed),
                    "\\NonExistent" => !lsub,
                    "\\HasChildren" | "\\HasNoChildren" => !lsub,
                    "\\Noselect" => true,
                    // Special-use flags: always in plain LIST, as Dovecot.
                    _ => !lsub,
                };
                if keep {
                    attrs.push(a);
                }
            }
            if lsub && e.attributes.iter().any(|a| a == "\\NonExistent") {
                attrs.retain(|a| *a != "\\Noselect");
                attrs.push("\\Noselect");
            }
            let cmd = if lsub { "LSUB" } else { "LIST" };
            lines.push_str(&format!(
                "* {cmd} ({}) \"{}\" {}\r\n",
                attrs.join(" "),
                e.separator,
                quote_mailbox(&e.name)
            ));
            if let Some(items) = &req.status {
                let selectable = !e.attributes.iter().any(|a| a == "\\Noselect" || a == "\\NonExistent");
                if selectable {
                    if let Ok(st) = status_of(ctx, &e.name) {
                        lines.push_str(&format!(
                            "* STATUS {} ({})\r\n",
                            quote_mailbox(&e.name),
                            status_items(&st, items)
                        ));
                    }
                }
            }
        }
    }
    ctx.out.extend_from_slice(lines.as_bytes());
    Done::Ok(if lsub { "Lsub completed" } else { "List completed" }.into())
}

const STATUS_ITEMS: &[&str] =
    &["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED"];

fn status_of(ctx: &mut Ctx<'_>, name: &str) -> dovecote_mailproc::storage::Result<MailboxStatus> {
    if let Some(sel) = ctx.session.selected.as_mut().filter(|s| s.name == name) {
        let _ = sel.mailbox.sync();
        let mut st = sel.mailbox.status();
        st.recent = sel.recent.len() as u32;
        return Ok(st);
    }
    let mut st = ctx.login.user.status(name)?;
    // \Recent belongs to the session that selects the mailbox.
    st.recent = 0;
    Ok(st)
}

fn status_items(st: &MailboxStatus, items: &[String]) -> String {
    items
        .iter()
        .map(|i| {
            let v = match i.as_str() {
                "MESSAGES" => st.messages as u64,
                "RECENT" => st.recent as u64,
                "UIDNEXT" => st.uid_next as u64,
                "UIDVALIDITY" => st.uid_validity as u64,
                "UNSEEN" => st.unseen as u64,
                "HIGHESTMODSEQ" => st.highest_modseq,
                "SIZE" => st.size,
                _ => 0,
            };
            format!("{i} {v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn status(ctx: &mut Ctx<'_>, args: &[Arg]) -> Done {
    if args.len() < 2 {
        return ctx.bad("Missing arguments");
    }
    let Some(name) = mailbox_arg(args.first()) else { return ctx.invalid() };
    let Some(Arg::List(items)) = args.get(1) else { return ctx.bad("Status items must be a list") };
    let mut names = Vec::new();
    for it in items {
        let Some(n) = it.as_atom() else { return ctx.bad("Status items must be atoms") };
        let n = n.to_ascii_uppercase();
        if !STATUS_ITEMS.contains(&n.as_str()) || n == "DELETED" {
            return ctx.bad(&format!("Invalid status item {n}"));
        }
        names.push(n);
    }
    match status_of(ctx, &name) {
        Ok(st) => {
            let line = format!("* STATUS {} ({})\r\n", quote_mailbox(&name), status_items(&st, &names));
            ctx.out.extend_from_slice(line.as_bytes());
            // Dovecot's hint that STATUS on the selected mailbox is a
            // client mistake (RFC 3501 §6.3.10 says it shouldn't be done).
            let selected = ctx.session.selected.as_ref().is_some_and(|s| s.name == name);
            Done::Ok(
                if selected {
                    "[CLIENTBUG] Status on selected mailbox completed"
                } else {
                    "Status completed"
                }
                .into(),
            )
        }
        Err(e) => Done::No(storage_error(&e)),
    }
}
