//! The drivers behind the fuzz targets in login/fuzz (one place for the
//! property they check): arbitrary bytes, split at points chosen by the
//! first byte, with scripted auth replies and STARTTLS completions, fed
//! through a pre-auth state machine; every line it sends must end in CRLF
//! and nothing may panic.

use crate::imap::ImapLogin;
use crate::policy::Security;
use crate::pop3::Pop3Login;
use crate::sasl::{AuthReply, Mechanism};
use crate::settings::LoginSettings;
use crate::Action;

/// What the driver needs of a pre-auth protocol front end.
trait PreLogin {
    fn input(&mut self, data: &[u8]) -> Vec<Action>;
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action>;
    fn tls_started(&mut self) -> Vec<Action>;
}

impl PreLogin for ImapLogin {
    fn input(&mut self, data: &[u8]) -> Vec<Action> {
        ImapLogin::input(self, data)
    }
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        ImapLogin::auth_reply(self, reply)
    }
    fn tls_started(&mut self) -> Vec<Action> {
        ImapLogin::tls_started(self)
    }
}

impl PreLogin for Pop3Login {
    fn input(&mut self, data: &[u8]) -> Vec<Action> {
        Pop3Login::input(self, data)
    }
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        Pop3Login::auth_reply(self, reply)
    }
    fn tls_started(&mut self) -> Vec<Action> {
        Pop3Login::tls_started(self)
    }
}

fn mechanisms() -> Vec<Mechanism> {
    vec![Mechanism::new("PLAIN", true, false), Mechanism::new("LOGIN", true, false)]
}

fn security(control: u8) -> Security {
    Security { tls: control & 1 != 0, secured: control & 2 != 0, trusted: false }
}

fn check(actions: Vec<Action>) {
    for action in actions {
        if let Action::Send(bytes) = action {
            assert!(bytes.ends_with(b"\r\n"), "a reply line without CRLF: {bytes:?}");
        }
    }
}

fn drive(control: u8, body: &[u8], login: &mut dyn PreLogin) {
    let chunk = usize::from(control >> 2).max(1);
    for (i, piece) in body.chunks(chunk).enumerate() {
        check(login.input(piece));
        let reply = match i % 4 {
            0 => AuthReply::Continue(String::new()),
            1 => AuthReply::Failure { code: None, reason: Some("x".into()), temporary: false },
            2 => AuthReply::Unavailable,
            _ => AuthReply::Continue("AA==".into()),
        };
        check(login.auth_reply(reply));
        if i % 7 == 3 {
            check(login.tls_started());
        }
    }
}

/// IMAP pre-auth: the command parser, the HAProxy header parser and the
/// `imap-login` state machine.
pub fn imap(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else { return };
    let _ = crate::imap::parser::parse(body);
    let _ = crate::haproxy::parse(body);
    drive(control, body, &mut ImapLogin::new(LoginSettings::default(), security(control), mechanisms()));
}

/// POP3 pre-auth: the `pop3-login` state machine.
pub fn pop3(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else { return };
    drive(control, body, &mut Pop3Login::new(LoginSettings::default(), security(control), mechanisms()));
}

#[cfg(test)]
mod tests {
    /// The fuzz property on a few fixed inputs, in every test run.
    #[test]
    fn drivers_hold_on_sample_inputs() {
        for sample in [
            &b"\x05a LOGIN x y\r\nb STARTTLS\r\nc AUTHENTICATE PLAIN\r\n*\r\n"[..],
            b"\x09USER a\r\nPASS b\r\nAUTH PLAIN\r\n=\r\nSTLS\r\n",
            b"\x00\xff\x00\r\n",
        ] {
            super::imap(sample);
            super::pop3(sample);
        }
    }
}
