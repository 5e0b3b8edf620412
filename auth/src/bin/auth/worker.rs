//! `auth -w`: the auth-worker process. It serves the auth process's
//! connections on the `auth-worker` socket (one at a time,
//! `client_limit = 1`) and runs the blocking drivers (passwd, shadow, pam,
//! later sql/ldap) synchronously — blocking here is the point: the auth
//! process keeps serving everyone else. Protocol: [`crate::worker_proto`].
//! It runs as root (PAM and shadow need it) under the same SELinux domain
//! as auth, which is why it is the same executable.

use std::io::{ErrorKind, Read};

use dovecote_auth::db::driver::UserdbOutcome;
use dovecote_auth::mech::PassdbResult;
use dovecote_master::{Client, Progress, Service};

use crate::settings::AuthSettings;
use crate::worker_proto::{WorkerReply, WorkerRequest};

/// Longest request line (a password and the request fields).
const MAX_LINE: usize = 65536;

/// The worker service.
pub struct Worker {
    settings: AuthSettings,
    log: slog::Logger,
}

/// One connection from the auth process.
#[derive(Default)]
pub struct WorkerSession {
    input: Vec<u8>,
    hash_ok: Option<bool>,
}

impl Worker {
    /// A worker for these settings.
    pub fn new(settings: AuthSettings, log: slog::Logger) -> Self {
        Worker { settings, log }
    }

    fn handle(&mut self, request: WorkerRequest, hash_ok: bool, out: &mut String) {
        let mut emit = |reply: WorkerReply| out.push_str(&reply.to_line());
        let internal = |id| WorkerReply::Pass { id, result: PassdbResult::InternalFailure, entry: None };
        if !hash_ok {
            let id = match &request {
                WorkerRequest::Verify { id, .. }
                | WorkerRequest::Lookup { id, .. }
                | WorkerRequest::User { id, .. }
                | WorkerRequest::List { id, .. } => *id,
                WorkerRequest::Hello { .. } => return,
            };
            let text = "auth-worker: passdb/userdb configuration differs from the auth process's".into();
            emit(WorkerReply::Log { id, error: true, text });
            emit(internal(id));
            return;
        }
        match request {
            WorkerRequest::Hello { .. } => {}
            WorkerRequest::Verify { id, passdb, password, vars } => {
                let Some(db) = self.settings.passdbs.get_mut(passdb) else { return emit(internal(id)) };
                let outcome = db.driver.verify(&vars, password.as_bytes());
                if let Some(text) = outcome.log {
                    let error = outcome.result == PassdbResult::InternalFailure;
                    let text = format!("{}: {text}", prefix(db.driver.name(), &vars));
                    emit(WorkerReply::Log { id, error, text });
                }
                emit(WorkerReply::Pass { id, result: outcome.result, entry: outcome.entry });
            }
            WorkerRequest::Lookup { id, passdb, vars } => {
                let Some(db) = self.settings.passdbs.get_mut(passdb) else { return emit(internal(id)) };
                let outcome = db.driver.lookup(&vars);
                if let Some(text) = outcome.log {
                    let error = outcome.result == PassdbResult::InternalFailure;
                    let text = format!("{}: {text}", prefix(db.driver.name(), &vars));
                    emit(WorkerReply::Log { id, error, text });
                }
                emit(WorkerReply::Pass { id, result: outcome.result, entry: outcome.entry });
            }
            WorkerRequest::User { id, userdb, vars } => {
                let Some(db) = self.settings.userdbs.get_mut(userdb) else {
                    return emit(WorkerReply::User { id, status: "fail".into(), fields: Default::default() });
                };
                let (status, fields) = match db.driver.lookup(&vars, true) {
                    UserdbOutcome::Found(fields) => ("ok", fields),
                    UserdbOutcome::NeedPassdbCheck(fields) => ("passdbcheck", fields),
                    UserdbOutcome::NotFound => ("notfound", Default::default()),
                    UserdbOutcome::Failed(text) => {
                        let text = format!("{}: {text}", prefix(db.driver.name(), &vars));
                        emit(WorkerReply::Log { id, error: true, text });
                        ("fail", Default::default())
                    }
                };
                emit(WorkerReply::User { id, status: status.into(), fields });
            }
            WorkerRequest::List { id, userdb } => {
                let (first, last) = (self.settings.first_valid_uid, self.settings.last_valid_uid);
                match self.settings.userdbs.get_mut(userdb).and_then(|db| db.driver.iterate(first, last)) {
                    Some(Ok(users)) => {
                        for user in users {
                            emit(WorkerReply::List { id, user });
                        }
                        emit(WorkerReply::Done { id, failed: false });
                    }
                    Some(Err(e)) => {
                        emit(WorkerReply::Log { id, error: true, text: format!("iteration failed: {e}") });
                        emit(WorkerReply::Done { id, failed: true });
                    }
                    None => emit(WorkerReply::Done { id, failed: true }),
                }
            }
        }
    }
}

/// Dovecot's `driver(user,rip)` log prefix.
fn prefix(driver: &str, vars: &dovecote_auth::db::RequestVars) -> String {
    match &vars.remote_ip {
        Some(rip) => format!("{driver}({},{rip})", vars.user),
        None => format!("{driver}({})", vars.user),
    }
}

impl Service for Worker {
    type Session = WorkerSession;

    fn connected(&mut self, client: &mut Client) -> Option<WorkerSession> {
        client.state = "idling".into();
        Some(WorkerSession::default())
    }

    fn readable(&mut self, client: &mut Client, session: &mut WorkerSession) -> Progress {
        let mut buf = [0u8; 8192];
        let mut eof = false;
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => session.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Progress::Close,
            }
        }
        while let Some(pos) = session.input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = session.input.drain(..=pos).collect();
            let Some(request) = WorkerRequest::parse(&line) else {
                slog::error!(
                    self.log,
                    "auth-worker: BUG: invalid request from auth: {}",
                    String::from_utf8_lossy(&line).trim_end()
                );
                return Progress::Close;
            };
            if let WorkerRequest::Hello { db_hash } = &request {
                let ok = *db_hash == self.settings.db_hash;
                if !ok {
                    slog::error!(
                        self.log,
                        "auth-worker: passdb/userdb configuration differs from the auth process's"
                    );
                }
                session.hash_ok = Some(ok);
                continue;
            }
            client.state = "lookup".into();
            let mut out = String::new();
            self.handle(request, session.hash_ok.unwrap_or(false), &mut out);
            client.send(out.as_bytes());
            client.state = "idling".into();
            if self.settings.passdbs.iter().any(|p| p.driver.exhausted()) {
                // PAM's max_requests: the reply is out (a small write to a
                // unix socket completes at once); start afresh.
                slog::debug!(self.log, "auth-worker: max_requests reached, restarting");
                std::process::exit(0);
            }
        }
        if session.input.len() > MAX_LINE {
            slog::error!(self.log, "auth-worker: BUG: request line too long");
            return Progress::Close;
        }
        if eof {
            Progress::Close
        } else {
            Progress::Continue
        }
    }
}
