//! Command dispatch: the UID prefix, the authenticated/selected state
//! check, the handler, untagged updates after it (without EXPUNGEs after
//! FETCH, STORE and SEARCH by sequence number, RFC 3501 §7.4.1), and the
//! tagged reply with Dovecot's timing suffix.

use std::time::Instant;

use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::imap::parser::Command;
use dovecote_mailproc::postlogin::{Flow, LoggedIn};

use crate::session::{Session, SyncKind};
use crate::{
    cmd_append, cmd_fetch, cmd_mailbox, cmd_misc, cmd_search, cmd_select, cmd_sort, cmd_store, response, Imap,
};

/// A handler's outcome (texts without tag and timing).
pub enum Done {
    Ok(String),
    No(String),
    Bad(String),
    /// No tagged reply yet (IDLE).
    Pending,
    /// LOGOUT: reply sent, close.
    Logout,
    /// COMPRESS: `OK Begin compression`, then deflate at this level.
    Compress(u32),
}

/// What a handler works with.
pub struct Ctx<'a> {
    pub imap: &'a Imap,
    pub login: &'a LoggedIn,
    pub session: &'a mut Session,
    pub tag: &'a str,
    /// Upper-case name, `UID FETCH` for UID commands.
    pub name: String,
    pub uid: bool,
    pub out: &'a mut Vec<u8>,
    pub started: Instant,
}

impl Ctx<'_> {
    /// `Error in IMAP command NAME: text`.
    pub fn bad(&self, text: &str) -> Done {
        Done::Bad(format!("Error in IMAP command {}: {text}", self.name))
    }

    pub fn invalid(&self) -> Done {
        self.bad("Invalid arguments")
    }
}

const NEEDS_SELECTED: &[&str] =
    &["CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "SORT", "THREAD"];

/// Runs one command and writes its replies.
pub fn run(imap: &Imap, login: &LoggedIn, session: &mut Session, cmd: Command, out: &mut Vec<u8>) -> Flow {
    let started = Instant::now();
    let mut name = cmd.name.to_ascii_uppercase();
    let mut args: &[Arg] = &cmd.args;
    let mut uid = false;
    if name == "UID" {
        let sub = args.first().and_then(Arg::as_atom).map(str::to_ascii_uppercase).unwrap_or_default();
        uid = true;
        args = args.get(1..).unwrap_or_default();
        name = format!("UID {sub}");
        if !matches!(
            sub.as_str(),
            "FETCH" | "STORE" | "COPY" | "MOVE" | "SEARCH" | "EXPUNGE" | "SORT" | "THREAD"
        ) {
            let text = format!("Error in IMAP command {name}: Unknown command");
            reply(out, &cmd.tag, "BAD", &text, started);
            return Flow::Continue;
        }
    }
    let base = name.trim_start_matches("UID ").to_string();
    if NEEDS_SELECTED.contains(&base.as_str()) && session.selected.is_none() {
        reply(out, &cmd.tag, "BAD", "No mailbox selected", started);
        return Flow::Continue;
    }
    let mut ctx = Ctx { imap, login, session, tag: &cmd.tag, name: name.clone(), uid, out, started };
    let done = match base.as_str() {
        "CAPABILITY" => cmd_misc::capability(&mut ctx),
        "NOOP" => Done::Ok("NOOP completed".into()),
        "CHECK" => Done::Ok("Check completed".into()),
        "LOGOUT" => cmd_misc::logout(&mut ctx),
        "ID" => cmd_misc::id(&mut ctx, args),
        "ENABLE" => cmd_misc::enable(&mut ctx, args),
        "NAMESPACE" => cmd_mailbox::namespace(&mut ctx),
        "IDLE" => cmd_misc::idle(&mut ctx),
        "SELECT" => cmd_select::select(&mut ctx, args, false),
        "EXAMINE" => cmd_select::select(&mut ctx, args, true),
        "CLOSE" => cmd_select::close(&mut ctx),
        "UNSELECT" => cmd_select::unselect(&mut ctx),
        "EXPUNGE" => cmd_select::expunge(&mut ctx, args),
        "CREATE" => cmd_mailbox::create(&mut ctx, args),
        "DELETE" => cmd_mailbox::delete(&mut ctx, args),
        "RENAME" => cmd_mailbox::rename(&mut ctx, args),
        "SUBSCRIBE" => cmd_mailbox::subscribe(&mut ctx, args, true),
        "UNSUBSCRIBE" => cmd_mailbox::subscribe(&mut ctx, args, false),
        "LIST" => cmd_mailbox::list(&mut ctx, args, false),
        "LSUB" => cmd_mailbox::list(&mut ctx, args, true),
        "STATUS" => cmd_mailbox::status(&mut ctx, args),
        "APPEND" => cmd_append::append(&mut ctx, args),
        "FETCH" => cmd_fetch::fetch(&mut ctx, args),
        "STORE" => cmd_store::store(&mut ctx, args),
        "COPY" => cmd_store::copy(&mut ctx, args, false),
        "MOVE" => cmd_store::copy(&mut ctx, args, true),
        "SEARCH" => cmd_search::search(&mut ctx, args),
        "SORT" => cmd_sort::sort(&mut ctx, args),
        "THREAD" => cmd_sort::thread(&mut ctx, args),
        "COMPRESS" if imap.compress.is_some() => cmd_misc::compress(&mut ctx, args),
        _ => Done::Bad(format!("Error in IMAP command {name}: Unknown command")),
    };
    let tag = cmd.tag.as_str();
    let (kind, text) = match done {
        Done::Pending => return Flow::Continue,
        Done::Logout => return Flow::LoggedOut,
        Done::Compress(level) => {
            // No untagged updates here: the next bytes are compressed.
            reply(out, tag, "OK", "Begin compression", started);
            session.last_command = Some((name, Instant::now()));
            return Flow::StartCompression(level);
        }
        Done::Ok(t) => ("OK", t),
        Done::No(t) => ("NO", t),
        Done::Bad(t) => ("BAD", t),
    };
    let sync = match base.as_str() {
        _ if kind == "BAD" => None,
        "SELECT" | "EXAMINE" | "CLOSE" | "UNSELECT" | "LOGOUT" => None,
        "FETCH" | "STORE" | "SEARCH" | "SORT" | "THREAD" if !uid => Some(SyncKind::NoExpunges),
        _ => Some(SyncKind::Full),
    };
    if let Some(sync) = sync {
        session.sync(sync, out);
    }
    reply(out, tag, kind, &text, started);
    session.last_command = Some((name, Instant::now()));
    Flow::Continue
}

/// `tag KIND text (timing).`
pub fn reply(out: &mut Vec<u8>, tag: &str, kind: &str, text: &str, started: Instant) {
    out.extend_from_slice(format!("{tag} {kind} {text} {}.\r\n", response::timing(started)).as_bytes());
}
