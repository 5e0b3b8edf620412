//! STARTTLS: refused when `ssl = no` or TLS is already on; otherwise
//! `OK Begin TLS negotiation now.` and the I/O layer starts the handshake.

use super::Outcome;
use crate::imap::{ImapLogin, State};
use crate::settings::SslMode;
use crate::Action;

pub(super) fn run(client: &mut ImapLogin, tag: &str) -> Outcome {
    if client.security.tls {
        client.tagged(tag, "BAD TLS is already active.");
    } else if client.settings.ssl == SslMode::No {
        client.tagged(tag, "BAD TLS support isn't enabled.");
    } else {
        client.tagged(tag, "OK Begin TLS negotiation now.");
        client.actions.push(Action::StartTls);
        client.state = State::StartingTls;
        // Anything pipelined after STARTTLS was sent in the clear.
        client.input.clear();
    }
    Outcome::Done
}
