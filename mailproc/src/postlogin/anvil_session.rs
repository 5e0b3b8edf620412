//! Registers each post-login mail session with anvil (`CONNECT` at start,
//! `DISCONNECT` at the end) so login processes can enforce
//! `mail_max_userip_connections` on the ident `<service>/<ip>/<user>`, as
//! Dovecot's imap/pop3 do. The connection is the one the master passed at
//! spawn (`dovecote_anvil` crate docs) — this process may already run as
//! the mail user, which could not open the root-only socket itself. If the
//! process dies, anvil drops its sessions when the socket closes.
//! Failures are logged once and otherwise ignored: the limit then simply
//! isn't enforced, as in Dovecot when anvil is unreachable.

use std::sync::Mutex;

use dovecote_anvil::protocol::userip_ident;
use dovecote_anvil::AnvilClient;

use super::LoggedIn;

enum State {
    NotOpened,
    Open(AnvilClient),
    Unavailable,
}

static ANVIL: Mutex<State> = Mutex::new(State::NotOpened);

fn ident(service: &str, login: &LoggedIn) -> String {
    let ip = login.record.remote.map(|a| a.ip().to_string()).unwrap_or_default();
    userip_ident(service, &ip, &login.name)
}

fn with_anvil(
    log: &slog::Logger,
    f: impl FnOnce(&mut AnvilClient) -> Result<(), dovecote_anvil::AnvilError>,
) {
    let Ok(mut state) = ANVIL.lock() else { return };
    if matches!(*state, State::NotOpened) {
        *state = match AnvilClient::from_master() {
            Some(Ok(c)) => State::Open(c),
            Some(Err(e)) => {
                slog::error!(log, "anvil: {}", e);
                State::Unavailable
            }
            None => State::Unavailable,
        };
    }
    if let State::Open(client) = &mut *state {
        if let Err(e) = f(client) {
            slog::error!(log, "anvil: {}", e);
            *state = State::Unavailable;
        }
    }
}

/// The session started (after the `OK` to the login process).
pub fn session_started(log: &slog::Logger, service: &str, login: &LoggedIn) {
    let ident = ident(service, login);
    with_anvil(log, |c| c.connect_session(std::process::id(), &ident));
}

/// The session ended.
pub fn session_finished(log: &slog::Logger, service: &str, login: &LoggedIn) {
    let ident = ident(service, login);
    with_anvil(log, |c| c.disconnect_session(std::process::id(), &ident));
}
