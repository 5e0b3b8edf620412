//! STLS (RFC 2595).

use crate::pop3::{Pop3Login, State};
use crate::settings::SslMode;
use crate::Action;

pub(super) fn run(client: &mut Pop3Login) {
    if client.security.tls {
        client.send("-ERR TLS is already active.\r\n".into());
    } else if client.settings.ssl == SslMode::No {
        client.send("-ERR TLS support isn't enabled.\r\n".into());
    } else {
        client.send("+OK Begin TLS negotiation now.\r\n".into());
        client.actions.push(Action::StartTls);
        client.state = State::StartingTls;
        client.input.clear();
    }
}
