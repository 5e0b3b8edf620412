//! `pop3`: the post-login POP3 process. The bootstrap (handoff, auth-master,
//! privileges, storage) is [`dovecote_mailproc::postlogin`]; the protocol is
//! [`dovecote_mailproc::pop3::Session`], fed one line at a time.

use std::path::PathBuf;

use dovecote_mailproc::pop3::lock::{LockError, SessionLock, WAIT};
use dovecote_mailproc::pop3::session::{LOCKED_REPLY, LOGGED_IN, SHUTDOWN_REPLY};
use dovecote_mailproc::pop3::{MailboxDrop, Pop3Settings, Session};
use dovecote_mailproc::postlogin::{LoggedIn, MailProtocol, PostLogin, Reply};
use dovecote_mailproc::storage::User;

struct Pop3 {
    settings: Pop3Settings,
}

/// Where `pop3_lock_session` puts its lock: the INBOX namespace's index
/// directory, else its root (as Dovecot).
fn lock_dir(user: &User) -> Option<PathBuf> {
    let ns = user.namespaces.iter().find(|n| n.inbox)?;
    Some(ns.location.index.clone().unwrap_or_else(|| ns.location.root.clone()))
}

impl MailProtocol for Pop3 {
    type Session = Session;
    const SERVICE: &'static str = "pop3";

    fn start(&self, login: &LoggedIn) -> Result<(Session, Vec<u8>), String> {
        // The lock comes first: the snapshot must not be taken while
        // another session may still commit its deletions.
        let lock = if self.settings.lock_session {
            let dir = lock_dir(&login.user)
                .ok_or("pop3_lock_session: Storage has no root/index directory, can't create a POP3 session lock file")?;
            match SessionLock::acquire(&dir, WAIT) {
                Ok(lock) => Some(lock),
                Err(LockError::InUse) => {
                    let mut session =
                        Session::new(self.settings.clone(), Box::new(EmptyDrop), &login.record.session_id);
                    session = session.locked_out();
                    return Ok((session, LOCKED_REPLY.to_vec()));
                }
                Err(LockError::Io(e)) => {
                    return Err(format!("file_dotlock_create({}) failed: {e}", dir.display()));
                }
            }
        } else {
            None
        };
        let mailbox = login.user.open("INBOX").map_err(|e| format!("Couldn't open INBOX: {e}"))?;
        let mut session =
            Session::new(self.settings.clone(), Box::new(MailboxDrop { mailbox }), &login.record.session_id);
        if let Some(lock) = lock {
            session = session.with_lock(lock);
        }
        Ok((session, LOGGED_IN.to_vec()))
    }

    fn command(&self, _login: &LoggedIn, session: &mut Session, line: &[u8]) -> Reply {
        let out = session.command(line);
        for e in session.take_errors() {
            eprintln!("Error: {e}");
        }
        Reply { output: out.bytes, close: out.close }
    }

    fn disconnect_text(
        &self,
        _login: &LoggedIn,
        session: &Session,
        _logged_out: bool,
        input: u64,
        output: u64,
    ) -> String {
        session.log_line(input, output)
    }

    fn shutdown_text(&self) -> &'static [u8] {
        SHUTDOWN_REPLY
    }
}

/// The maildrop of a session that never got the lock: nothing in it.
struct EmptyDrop;

impl dovecote_mailproc::pop3::Maildrop for EmptyDrop {
    fn uid_validity(&self) -> u32 {
        0
    }
    fn snapshot(&self, _: Option<&str>) -> Vec<dovecote_mailproc::pop3::maildrop::DropMessage> {
        Vec::new()
    }
    fn read(&mut self, _: u32) -> Result<Vec<u8>, dovecote_mailproc::pop3::maildrop::ReadError> {
        Err(dovecote_mailproc::pop3::maildrop::ReadError::Expunged)
    }
    fn apply(&mut self, _: &dovecote_mailproc::pop3::maildrop::Changes) -> Result<(), String> {
        Ok(())
    }
    fn clear_seen(&mut self, _: &[u32]) -> Result<(), String> {
        Ok(())
    }
}

fn main() {
    dovecote_master::run(|ctx| {
        let settings = match Pop3Settings::from_config(&ctx.config) {
            Ok(s) => s,
            Err(e) => {
                slog::crit!(ctx.log, "Fatal: {}", e);
                std::process::exit(dovecote_master::contract::EXIT_FATAL)
            }
        };
        match PostLogin::new(ctx, Pop3 { settings }) {
            Ok(service) => service,
            Err(e) => {
                slog::crit!(ctx.log, "Fatal: epoll_create() failed: {}", e);
                std::process::exit(dovecote_master::contract::EXIT_FATAL)
            }
        }
    })
}
