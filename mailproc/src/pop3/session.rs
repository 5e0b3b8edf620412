//! The post-login POP3 state machine (RFC 1939 TRANSACTION state plus
//! RFC 2449 CAPA), sans I/O: [`Session::command`] takes one line and
//! returns the bytes to send. The mailbox is the snapshot taken at login;
//! DELE marks, and only QUIT commits (expunge, or the `pop3_deleted_flag`
//! keyword) together with the `\Seen` flags RETR earned. A client that
//! just disconnects keeps its messages but still gets its `\Seen` flags,
//! as with Dovecot.
//!
//! Replies and the logout line are Dovecot 2.3.19's, byte for byte.

use dovecote_config::var_expand::{self, Variable};

use super::command::{self, ArgError, Verb, MAX_LINE};
use super::fetch;
use super::lock::SessionLock;
use super::maildrop::{Changes, DropMessage, Maildrop, ReadError};
use super::settings::{DeleteType, Pop3Settings, UidlDuplicates};
use super::uidl;
use crate::storage::crc::crc32;
use crate::storage::mailbox::header_len;

/// The post-login CAPA reply (no USER/SASL/STLS after login).
pub const CAPABILITY_REPLY: &[u8] =
    b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n.\r\n";
/// Sent when the mail server stops under an idle client.
pub const SHUTDOWN_REPLY: &[u8] = b"-ERR [SYS/TEMP] Server shutting down.\r\n";
/// The greeting after a successful login.
pub const LOGGED_IN: &[u8] = b"+OK Logged in.\r\n";
/// The reply when `pop3_lock_session` finds another session.
pub const LOCKED_REPLY: &[u8] = b"-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n";
/// Dovecot's `MAIL_ERRSTR_CRITICAL_MSG` with the temporary-failure code.
const STORAGE_ERROR: &[u8] =
    b"-ERR [SYS/TEMP] Internal error occurred. Refer to server log for more information.\r\n";
/// Bad commands in a row before the client is dropped.
const MAX_BAD_COMMANDS: u32 = 20;

/// What one command line produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub bytes: Vec<u8>,
    /// End the session after sending `bytes`.
    pub close: bool,
}

/// A command's outcome for the bad-command counter.
enum Outcome {
    Ok,
    Bad,
}

/// One logged-in POP3 session.
pub struct Session {
    settings: Pop3Settings,
    drop: Box<dyn Maildrop>,
    session_id: String,
    uid_validity: u32,
    messages: Vec<DropMessage>,
    total_size: u64,
    /// DELE marks; `any_deleted` is Dovecot's `client->deleted` (reset by RSET).
    deleted: Vec<bool>,
    any_deleted: bool,
    deleted_count: u64,
    deleted_size: u64,
    /// RETR'd messages that were not `\Seen` (`None` with
    /// `pop3_no_flag_updates` or an empty mailbox).
    seen_marks: Option<Vec<bool>>,
    seen_changes: u64,
    last_seen: u32,
    lowest_retr: u32,
    uidls: Vec<Option<String>>,
    highest_expunged_fetch: Option<u32>,
    bad_commands: u32,
    top_count: u64,
    top_bytes: u64,
    retr_count: u64,
    retr_bytes: u64,
    delete_success: bool,
    quit: bool,
    /// Why the session ended (for the log line); `None` = client closed.
    reason: Option<String>,
    /// Errors to log (storage failures) — drained by the caller.
    errors: Vec<String>,
    lock: Option<SessionLock>,
    /// The lock was held by another session: every input ends it.
    locked_out: bool,
}

impl Session {
    /// Takes the login-time snapshot of `drop`.
    pub fn new(settings: Pop3Settings, drop: Box<dyn Maildrop>, session_id: &str) -> Session {
        let hidden = (!settings.deleted_flag.is_empty()).then_some(settings.deleted_flag.as_str());
        let messages = drop.snapshot(hidden);
        let n = messages.len();
        let total_size = messages.iter().map(|m| m.size).sum();
        let last_seen = messages.iter().rposition(|m| m.seen).map_or(0, |i| i as u32 + 1);
        let seen_marks = (!settings.no_flag_updates && n > 0).then(|| vec![false; n]);
        Session {
            uid_validity: drop.uid_validity(),
            settings,
            drop,
            session_id: session_id.to_string(),
            messages,
            total_size,
            deleted: vec![false; n],
            any_deleted: false,
            deleted_count: 0,
            deleted_size: 0,
            seen_marks,
            seen_changes: 0,
            last_seen,
            lowest_retr: 0,
            uidls: vec![None; n],
            highest_expunged_fetch: None,
            bad_commands: 0,
            top_count: 0,
            top_bytes: 0,
            retr_count: 0,
            retr_bytes: 0,
            delete_success: false,
            quit: false,
            reason: None,
            errors: Vec::new(),
            lock: None,
            locked_out: false,
        }
    }

    /// Holds `lock` for the session's lifetime.
    pub fn with_lock(mut self, lock: SessionLock) -> Session {
        self.lock = Some(lock);
        self
    }

    /// The session lost the `pop3_lock_session` race: the greeting is
    /// [`LOCKED_REPLY`] and any further input ends it.
    pub fn locked_out(mut self) -> Session {
        self.locked_out = true;
        self.reason = Some("Couldn't lock POP3 session".into());
        self
    }

    /// Storage errors since the last call, for the log.
    pub fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// Handles one command line (without its line ending).
    pub fn command(&mut self, line: &[u8]) -> Output {
        let mut out = Output::default();
        if self.locked_out || self.reason.is_some() {
            out.close = true;
            return out;
        }
        if let Some(lock) = &mut self.lock {
            lock.refresh();
        }
        if line.len() + 2 > MAX_LINE {
            out.bytes.extend_from_slice(b"-ERR Input line too long.\r\n");
            self.reason = Some("Input line too long".into());
            out.close = true;
            return out;
        }
        let cmd = command::split(line);
        let outcome = match Verb::from_name(&cmd.name, self.settings.enable_last) {
            Some(verb) => self.run(verb, cmd.args, &mut out.bytes),
            None => {
                out.bytes.extend(command::unknown_reply(&cmd.name));
                Outcome::Bad
            }
        };
        match outcome {
            Outcome::Ok => self.bad_commands = 0,
            Outcome::Bad => {
                self.bad_commands += 1;
                if self.bad_commands > MAX_BAD_COMMANDS && self.reason.is_none() {
                    out.bytes.extend_from_slice(b"-ERR Too many bad commands.\r\n");
                    self.reason = Some("Too many bad commands.".into());
                }
            }
        }
        out.close = self.reason.is_some();
        out
    }

    fn run(&mut self, verb: Verb, args: &[u8], out: &mut Vec<u8>) -> Outcome {
        match verb {
            Verb::Capa => out.extend_from_slice(CAPABILITY_REPLY),
            Verb::Noop => out.extend_from_slice(b"+OK\r\n"),
            Verb::Stat => line(
                out,
                format_args!(
                    "+OK {} {}",
                    self.messages.len() as u64 - self.deleted_count,
                    self.total_size - self.deleted_size
                ),
            ),
            Verb::Last => line(out, format_args!("+OK {}", self.last_seen)),
            Verb::Dele => {
                let Some(i) = self.msgnum(args, false, out) else { return Outcome::Bad };
                self.deleted[i] = true;
                self.any_deleted = true;
                self.deleted_count += 1;
                self.deleted_size += self.messages[i].size;
                out.extend_from_slice(b"+OK Marked to be deleted.\r\n");
            }
            Verb::List => {
                if args.is_empty() {
                    line(
                        out,
                        format_args!("+OK {} messages:", self.messages.len() as u64 - self.deleted_count),
                    );
                    for (i, m) in self.messages.iter().enumerate() {
                        if !self.deleted[i] {
                            line(out, format_args!("{} {}", i + 1, m.size));
                        }
                    }
                    out.extend_from_slice(b".\r\n");
                } else {
                    let Some(i) = self.msgnum(args, false, out) else { return Outcome::Bad };
                    line(out, format_args!("+OK {} {}", i + 1, self.messages[i].size));
                }
            }
            Verb::Rset => self.rset(out),
            Verb::Retr => {
                let Some(i) = self.msgnum(args, false, out) else { return Outcome::Bad };
                let n = i as u32 + 1;
                if self.lowest_retr == 0 || self.lowest_retr > n {
                    self.lowest_retr = n;
                }
                self.last_seen = self.last_seen.max(n);
                self.retr_count += 1;
                return self.fetch(i, None, out);
            }
            Verb::Top => {
                let rest = match command::msgnum(args, true) {
                    Ok((_, rest)) => rest,
                    Err(e) => return bad(out, &e),
                };
                let Some(i) = self.msgnum(args, true, out) else { return Outcome::Bad };
                let lines = match command::size(rest, false) {
                    Ok((n, _)) => n,
                    Err(e) => return bad(out, &e),
                };
                self.top_count += 1;
                return self.fetch(i, Some(lines), out);
            }
            Verb::Uidl => return self.uidl(args, out),
            Verb::Quit => self.quit(out),
        }
        Outcome::Ok
    }

    /// A message number argument checked against the snapshot and the DELE
    /// marks; the error reply is written on failure.
    fn msgnum(&self, args: &[u8], then_space: bool, out: &mut Vec<u8>) -> Option<usize> {
        let num = match command::msgnum(args, then_space) {
            Ok((n, _)) => n,
            Err(e) => {
                out.extend(e.reply());
                return None;
            }
        };
        if num == 0 || num as usize > self.messages.len() {
            line(out, format_args!("-ERR There's no message {num}."));
            return None;
        }
        let i = num as usize - 1;
        if self.deleted[i] {
            out.extend_from_slice(b"-ERR Message is deleted.\r\n");
            return None;
        }
        Some(i)
    }

    fn expunged_reply(&mut self, i: usize, out: &mut Vec<u8>) -> Outcome {
        line(out, format_args!("-ERR Message {} expunged.", i + 1));
        // Asking again for an expunged message counts as a bad command, so a
        // looping client is eventually dropped.
        let n = i as u32;
        if self.highest_expunged_fetch.is_some_and(|h| n <= h) {
            return Outcome::Bad;
        }
        self.highest_expunged_fetch = Some(n);
        Outcome::Ok
    }

    fn fetch(&mut self, i: usize, top: Option<u64>, out: &mut Vec<u8>) -> Outcome {
        let uid = self.messages[i].uid;
        let data = match self.drop.read(uid) {
            Ok(d) => d,
            Err(ReadError::Expunged) => return self.expunged_reply(i, out),
            Err(ReadError::Other(e)) => {
                self.errors.push(format!("RETR: reading UID {uid} failed: {e}"));
                return self.expunged_reply(i, out);
            }
        };
        if top.is_none() && !self.messages[i].seen {
            if let Some(marks) = &mut self.seen_marks {
                marks[i] = true;
                self.seen_changes += 1;
            }
        }
        let start = out.len();
        match top {
            None => line(out, format_args!("+OK {} octets", self.messages[i].size)),
            Some(_) => out.extend_from_slice(b"+OK\r\n"),
        }
        out.reserve(data.len() + data.len() / 32 + 16);
        let head = out.len() - start;
        let counted = (head + fetch::encode(&data, top, self.settings.workarounds, out)) as u64;
        if top.is_some() {
            self.top_bytes += counted;
        } else {
            self.retr_bytes += counted;
        }
        Outcome::Ok
    }

    fn rset(&mut self, out: &mut Vec<u8>) {
        self.last_seen = 0;
        if self.any_deleted {
            self.deleted.iter_mut().for_each(|d| *d = false);
            self.any_deleted = false;
            self.deleted_count = 0;
            self.deleted_size = 0;
        }
        if self.seen_changes > 0 {
            if let Some(marks) = &mut self.seen_marks {
                marks.iter_mut().for_each(|m| *m = false);
            }
            self.seen_changes = 0;
        }
        if self.settings.enable_last {
            // RFC 1460's LAST semantics: RSET makes every message unseen.
            let uids: Vec<u32> = self.messages.iter().map(|m| m.uid).collect();
            if let Err(e) = self.drop.clear_seen(&uids) {
                self.errors.push(format!("RSET: removing \\Seen failed: {e}"));
            }
            self.messages.iter_mut().for_each(|m| m.seen = false);
        }
        out.extend_from_slice(b"+OK\r\n");
    }

    /// The UIDL of message `i`, computed once.
    fn uidl_of(&mut self, i: usize) -> Result<String, String> {
        if let Some(u) = &self.uidls[i] {
            return Ok(u.clone());
        }
        let m = &self.messages[i];
        let header = if uidl::needs_header(&self.settings.uidl_format, self.settings.reuse_xuidl) {
            let uid = m.uid;
            match self.drop.read(uid) {
                Ok(mut data) => {
                    data.truncate(header_len(&data));
                    Some(data)
                }
                Err(ReadError::Expunged) => return Err(format!("Message UID={uid} expunged")),
                Err(ReadError::Other(e)) => return Err(e),
            }
        } else {
            None
        };
        let m = &self.messages[i];
        let input = uidl::UidlInput {
            uid_validity: self.uid_validity,
            uid: m.uid,
            guid: &m.guid,
            filename: &m.filename,
            header: header.as_deref(),
        };
        let value = uidl::compute(&self.settings.uidl_format, self.settings.reuse_xuidl, &input)?;
        self.uidls[i] = Some(value.clone());
        Ok(value)
    }

    /// Computes every UIDL (duplicates renamed if configured).
    fn all_uidls(&mut self) -> Result<(), String> {
        if self.uidls.iter().all(Option::is_some) {
            return Ok(());
        }
        let mut all = Vec::with_capacity(self.messages.len());
        for i in 0..self.messages.len() {
            all.push(self.uidl_of(i)?);
        }
        if self.settings.uidl_duplicates == UidlDuplicates::Rename {
            uidl::rename_duplicates(&mut all);
        }
        self.uidls = all.into_iter().map(Some).collect();
        Ok(())
    }

    fn wants_all_uidls(&self) -> bool {
        self.settings.uidl_duplicates == UidlDuplicates::Rename
            || uidl_change_in(&self.settings.logout_format)
    }

    fn uidl(&mut self, args: &[u8], out: &mut Vec<u8>) -> Outcome {
        let single = if args.is_empty() {
            None
        } else {
            match self.msgnum(args, false, out) {
                Some(i) => Some(i),
                None => return Outcome::Bad,
            }
        };
        let prepared = if self.wants_all_uidls() { self.all_uidls() } else { Ok(()) };
        if let Err(e) = prepared {
            return self.uidl_failed(e);
        }
        match single {
            Some(i) => match self.uidl_of(i) {
                Ok(u) => line(out, format_args!("+OK {} {u}", i + 1)),
                Err(e) => return self.uidl_failed(e),
            },
            None => {
                out.extend_from_slice(b"+OK\r\n");
                for i in 0..self.messages.len() {
                    if self.deleted[i] {
                        continue;
                    }
                    match self.uidl_of(i) {
                        Ok(u) => line(out, format_args!("{} {u}", i + 1)),
                        Err(e) => return self.uidl_failed(e),
                    }
                }
                out.extend_from_slice(b".\r\n");
            }
        }
        Outcome::Ok
    }

    fn uidl_failed(&mut self, error: String) -> Outcome {
        self.errors.push(error);
        self.reason = Some("POP3 UIDLs couldn't be listed".into());
        Outcome::Ok
    }

    /// The changes to commit; `with_deletes` false for a disconnect.
    fn changes(&self, with_deletes: bool) -> Changes {
        let mut changes = Changes::default();
        let mut flagged = Vec::new();
        for (i, m) in self.messages.iter().enumerate() {
            if self.deleted[i] {
                if with_deletes {
                    match self.settings.delete_type {
                        DeleteType::Expunge => changes.expunge.push(m.uid),
                        DeleteType::Flag => flagged.push(m.uid),
                    }
                }
            } else if self.seen_marks.as_ref().is_some_and(|s| s[i]) {
                changes.seen.push(m.uid);
            }
        }
        if !flagged.is_empty() {
            changes.flag_deleted = Some((self.settings.deleted_flag.clone(), flagged));
        }
        changes
    }

    fn quit(&mut self, out: &mut Vec<u8>) {
        self.quit = true;
        if self.any_deleted || self.seen_changes > 0 {
            let changes = self.changes(true);
            if let Err(e) = self.drop.apply(&changes) {
                self.errors.push(format!("QUIT: {e}"));
                out.extend_from_slice(STORAGE_ERROR);
                self.reason = Some("Storage error during logout.".into());
                return;
            }
        }
        self.delete_success = true;
        self.seen_changes = 0;
        if self.any_deleted {
            out.extend_from_slice(b"+OK Logging out, messages deleted.\r\n");
        } else {
            out.extend_from_slice(b"+OK Logging out.\r\n");
        }
        self.reason = Some("Logged out".into());
    }

    /// The client went away without QUIT: DELE marks are forgotten, the
    /// `\Seen` flags RETR earned are still stored.
    pub fn disconnected(&mut self) {
        if self.quit || self.seen_changes == 0 {
            return;
        }
        let changes = self.changes(false);
        if let Err(e) = self.drop.apply(&changes) {
            self.errors.push(format!("Saving \\Seen flags failed: {e}"));
        }
        self.seen_changes = 0;
    }

    fn uidl_change(&self) -> String {
        if self.uidls.iter().any(Option::is_none) || self.uidls.is_empty() {
            return String::new();
        }
        let uidls: Vec<&str> = self.uidls.iter().flatten().map(String::as_str).collect();
        let n = self.messages.len();
        // Messages before the first RETR were probably left by an earlier session.
        let old_count = if self.lowest_retr > 0 { self.lowest_retr as usize - 1 } else { n };
        let old_hash = uidls[..old_count].iter().fold(0, |h, u| h ^ crc32(u.as_bytes()));
        let new_hash = uidls
            .iter()
            .enumerate()
            .filter(|(i, _)| !(self.any_deleted && self.deleted[*i]))
            .fold(0, |h, (_, u)| h ^ crc32(u.as_bytes()));
        let new_count = n as u64 - self.deleted_count;
        if old_hash == new_hash && old_count as u64 == new_count {
            format!("{old_count}/{old_hash:08x}")
        } else {
            format!("{old_count}/{old_hash:08x} -> {new_count}/{new_hash:08x}")
        }
    }

    /// `pop3_logout_format` expanded (`top=0/0, retr=1/62, del=0/2, size=79`).
    pub fn logout_stats(&self, input: u64, output: u64) -> String {
        let (deleted_count, deleted_bytes) =
            if self.delete_success { (self.deleted_count, self.deleted_size) } else { (0, 0) };
        let vars = [
            Variable::new('p', "top_bytes", self.top_bytes.to_string()),
            Variable::new('t', "top_count", self.top_count.to_string()),
            Variable::new('b', "retr_bytes", self.retr_bytes.to_string()),
            Variable::new('r', "retr_count", self.retr_count.to_string()),
            Variable::new('d', "deleted_count", deleted_count.to_string()),
            Variable::new('m', "message_count", self.messages.len().to_string()),
            Variable::new('s', "message_bytes", self.total_size.to_string()),
            Variable::new('i', "input", input.to_string()),
            Variable::new('o', "output", output.to_string()),
            Variable::new('u', "uidl_change", self.uidl_change()),
            Variable::long("session", self.session_id.as_str()),
            Variable::long("deleted_bytes", deleted_bytes.to_string()),
        ];
        match var_expand::expand(&self.settings.logout_format, &vars) {
            Ok(s) => s,
            Err(e) => e.partial,
        }
    }

    /// The log line when the session ends.
    pub fn log_line(&self, input: u64, output: u64) -> String {
        let reason = self.reason.as_deref().unwrap_or("Connection closed");
        format!("Disconnected: {reason} {}", self.logout_stats(input, output))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.disconnected();
        for e in self.take_errors() {
            eprintln!("Error: {e}");
        }
    }
}

fn uidl_change_in(format: &str) -> bool {
    !uidl::template_keys(format, &[(b'u', "uidl_change")]).is_empty()
}

fn line(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = out.write_fmt(args);
    out.extend_from_slice(b"\r\n");
}

fn bad(out: &mut Vec<u8>, e: &ArgError) -> Outcome {
    out.extend(e.reply());
    Outcome::Bad
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::pop3::memory::MemoryDrop;

    /// A MemoryDrop the test can look at after the session used it.
    #[derive(Clone)]
    struct Shared(Rc<RefCell<MemoryDrop>>);

    impl Maildrop for Shared {
        fn uid_validity(&self) -> u32 {
            self.0.borrow().uid_validity()
        }
        fn snapshot(&self, k: Option<&str>) -> Vec<DropMessage> {
            self.0.borrow().snapshot(k)
        }
        fn read(&mut self, uid: u32) -> Result<Vec<u8>, ReadError> {
            self.0.borrow_mut().read(uid)
        }
        fn apply(&mut self, c: &Changes) -> Result<(), String> {
            self.0.borrow_mut().apply(c)
        }
        fn clear_seen(&mut self, uids: &[u32]) -> Result<(), String> {
            self.0.borrow_mut().clear_seen(uids)
        }
    }

    const M1: &[u8] = b"From: a@b\nSubject: hi\n\nline1\n.dot\nline3\n";
    const M2: &[u8] = b"From: c@d\nSubject: two\n\nbody\n";

    fn session(settings: Pop3Settings) -> (Session, Shared) {
        let mut drop = MemoryDrop::with(&[M1, M2]);
        drop.uid_validity = 0x6b06_5a88;
        let shared = Shared(Rc::new(RefCell::new(drop)));
        (Session::new(settings, Box::new(shared.clone()), "sess"), shared)
    }

    fn say(s: &mut Session, line: &str) -> String {
        String::from_utf8(s.command(line.as_bytes()).bytes).unwrap()
    }

    /// The transcript of Dovecot 2.3.19's pop3 on the same two messages.
    #[test]
    fn transcript_matches_dovecot() {
        let (mut s, _) = session(Pop3Settings::default());
        assert_eq!(say(&mut s, "STAT"), "+OK 2 79\r\n");
        assert_eq!(say(&mut s, "LIST"), "+OK 2 messages:\r\n1 46\r\n2 33\r\n.\r\n");
        assert_eq!(say(&mut s, "UIDL"), "+OK\r\n1 000000016b065a88\r\n2 000000026b065a88\r\n.\r\n");
        assert_eq!(
            say(&mut s, "RETR 1"),
            "+OK 46 octets\r\nFrom: a@b\r\nSubject: hi\r\n\r\nline1\r\n..dot\r\nline3\r\n.\r\n"
        );
        assert_eq!(say(&mut s, "TOP 1 1"), "+OK\r\nFrom: a@b\r\nSubject: hi\r\n\r\nline1\r\n.\r\n");
        assert_eq!(say(&mut s, "TOP 1"), "-ERR Noise after message number: \r\n");
        assert_eq!(say(&mut s, "LIST 3"), "-ERR There's no message 3.\r\n");
        assert_eq!(say(&mut s, "LIST x"), "-ERR Invalid message number: x\r\n");
        assert_eq!(say(&mut s, "DELE 1"), "+OK Marked to be deleted.\r\n");
        assert_eq!(say(&mut s, "RETR 1"), "-ERR Message is deleted.\r\n");
        assert_eq!(say(&mut s, "STAT"), "+OK 1 33\r\n");
        assert_eq!(say(&mut s, "LIST"), "+OK 1 messages:\r\n2 33\r\n.\r\n");
        assert_eq!(say(&mut s, "UIDL 2"), "+OK 2 000000026b065a88\r\n");
        assert_eq!(say(&mut s, "LAST"), "-ERR Unknown command: LAST\r\n");
        assert_eq!(say(&mut s, "RSET"), "+OK\r\n");
        assert_eq!(say(&mut s, "STAT"), "+OK 2 79\r\n");
        assert_eq!(say(&mut s, "TOP 2 0"), "+OK\r\nFrom: c@d\r\nSubject: two\r\n\r\n.\r\n");
        assert_eq!(say(&mut s, "TOP 2 x"), "-ERR Invalid size: x\r\n");
        assert_eq!(say(&mut s, "TOP 2  1"), "+OK\r\nFrom: c@d\r\nSubject: two\r\n\r\nbody\r\n.\r\n");
        assert_eq!(say(&mut s, "list 1"), "+OK 1 46\r\n");
        assert_eq!(say(&mut s, ""), "-ERR Unknown command.\r\n");
        assert_eq!(say(&mut s, "CAPA"), String::from_utf8_lossy(CAPABILITY_REPLY));
        let out = s.command(b"QUIT");
        assert_eq!(out.bytes, b"+OK Logging out.\r\n");
        assert!(out.close);
        // The counters Dovecot logged for this session (its retr count
        // included the same RETR; top bytes count the +OK lines).
        assert_eq!(s.log_line(0, 0), "Disconnected: Logged out top=3/108, retr=1/62, del=0/2, size=79");
    }

    #[test]
    fn dele_commits_only_at_quit() {
        let (mut s, drop) = session(Pop3Settings::default());
        say(&mut s, "DELE 1");
        say(&mut s, "RETR 2");
        assert!(drop.0.borrow().applied.is_empty());
        assert_eq!(say(&mut s, "QUIT"), "+OK Logging out, messages deleted.\r\n");
        let d = drop.0.borrow();
        assert_eq!(d.applied.len(), 1);
        assert_eq!(d.applied[0].expunge, [1]);
        assert_eq!(d.applied[0].seen, [2]);
        assert_eq!(d.messages.len(), 1);
        drop_session(s);
        assert_eq!(drop.0.borrow().applied.len(), 1);
    }

    fn drop_session(s: Session) {
        let line = s.log_line(10, 20);
        assert!(line.starts_with("Disconnected: "), "{line}");
    }

    #[test]
    fn disconnect_keeps_messages_but_stores_seen() {
        let (mut s, drop) = session(Pop3Settings::default());
        say(&mut s, "DELE 1");
        say(&mut s, "RETR 2");
        assert_eq!(s.log_line(0, 0), "Disconnected: Connection closed top=0/0, retr=1/48, del=0/2, size=79");
        std::mem::drop(s);
        let d = drop.0.borrow();
        assert_eq!(d.applied.len(), 1);
        assert!(d.applied[0].expunge.is_empty());
        assert_eq!(d.applied[0].seen, [2]);
        assert_eq!(d.messages.len(), 2);
    }

    #[test]
    fn flag_delete_type_and_hidden_messages() {
        let settings = Pop3Settings {
            deleted_flag: "$POP3Deleted".into(),
            delete_type: DeleteType::Flag,
            no_flag_updates: true,
            ..Pop3Settings::default()
        };
        let (mut s, drop) = session(settings.clone());
        say(&mut s, "DELE 1");
        say(&mut s, "RETR 2");
        say(&mut s, "QUIT");
        std::mem::drop(s);
        let applied = drop.0.borrow().applied.clone();
        assert_eq!(applied[0].flag_deleted, Some(("$POP3Deleted".to_string(), vec![1])));
        assert!(applied[0].seen.is_empty(), "pop3_no_flag_updates");
        // The next session does not see the flagged message.
        let mut next = Session::new(settings, Box::new(drop.clone()), "s2");
        assert_eq!(say(&mut next, "STAT"), "+OK 1 33\r\n");
        assert_eq!(say(&mut next, "UIDL"), "+OK\r\n1 000000026b065a88\r\n.\r\n");
    }

    #[test]
    fn bad_commands_and_long_lines_end_the_session() {
        let (mut s, _) = session(Pop3Settings::default());
        for _ in 0..20 {
            let out = s.command(b"BAD");
            assert!(!out.close);
        }
        let out = s.command(b"BAD");
        assert_eq!(out.bytes, b"-ERR Unknown command: BAD\r\n-ERR Too many bad commands.\r\n");
        assert!(out.close);

        let (mut s, _) = session(Pop3Settings::default());
        for _ in 0..19 {
            s.command(b"LIST 9");
        }
        assert!(!s.command(b"NOOP").close, "a good command resets the count");
        assert_eq!(say(&mut s, "NO\0OP"), "-ERR Unknown command: NO\r\n");
        let out = s.command(&[b'X'; 3000]);
        assert_eq!(out.bytes, b"-ERR Input line too long.\r\n");
        assert!(out.close);
        assert!(s.log_line(0, 0).starts_with("Disconnected: Input line too long top="));
    }

    #[test]
    fn last_and_rset_with_enable_last() {
        let settings = Pop3Settings { enable_last: true, ..Pop3Settings::default() };
        let (mut s, drop) = session(settings);
        assert_eq!(say(&mut s, "LAST"), "+OK 0\r\n");
        say(&mut s, "RETR 2");
        assert_eq!(say(&mut s, "LAST"), "+OK 2\r\n");
        assert_eq!(say(&mut s, "RSET"), "+OK\r\n");
        assert_eq!(say(&mut s, "LAST"), "+OK 0\r\n");
        assert_eq!(drop.0.borrow().unseen, [1, 2]);
    }

    #[test]
    fn expunged_message_reply_and_repeat_is_bad() {
        let (mut s, drop) = session(Pop3Settings::default());
        drop.0.borrow_mut().messages.remove(0);
        assert_eq!(say(&mut s, "RETR 1"), "-ERR Message 1 expunged.\r\n");
        assert_eq!(s.bad_commands, 0);
        assert_eq!(say(&mut s, "RETR 1"), "-ERR Message 1 expunged.\r\n");
        assert_eq!(s.bad_commands, 1);
    }

    #[test]
    fn uidl_formats_and_logout_format() {
        let settings = Pop3Settings {
            uidl_format: "%g".into(),
            uidl_duplicates: UidlDuplicates::Rename,
            logout_format: "%u|%{deleted_bytes}|%i/%o|%{session}".into(),
            ..Pop3Settings::default()
        };
        let (mut s, _) = session(settings);
        assert_eq!(say(&mut s, "UIDL 1"), "+OK 1 guid1\r\n");
        say(&mut s, "DELE 2");
        say(&mut s, "QUIT");
        let crc = |u: &str| crc32(u.as_bytes());
        let old = crc("guid1") ^ crc("guid2");
        assert_eq!(s.logout_stats(5, 6), format!("2/{old:08x} -> 1/{:08x}|33|5/6|sess", crc("guid1")));
    }

    #[test]
    fn workarounds_apply_to_retr() {
        let settings = Pop3Settings {
            workarounds: crate::pop3::fetch::OutputWorkarounds { outlook_no_nuls: true, oe_ns_eoh: true },
            ..Pop3Settings::default()
        };
        let drop = MemoryDrop::with(&[b"A: b\n"]);
        let mut s = Session::new(settings, Box::new(drop), "x");
        assert_eq!(say(&mut s, "RETR 1"), "+OK 6 octets\r\nA: b\r\n\r\n.\r\n");
    }
}
