//! IMAP pre-auth: arbitrary bytes, split at arbitrary points, with
//! scripted auth replies, through the IMAP command parser, the HAProxy
//! header parser and the IMAP pre-auth state machine.
#![no_main]

use dovecote_login::imap::ImapLogin;
use dovecote_login::policy::Security;
use dovecote_login::sasl::{AuthReply, Mechanism};
use dovecote_login::settings::LoginSettings;
use dovecote_login::Action;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let control = data[0];
    let body = &data[1..];
    let _ = dovecote_login::imap::parser::parse(body);
    let _ = dovecote_login::haproxy::parse(body);
    let mechs = vec![Mechanism::new("PLAIN", true, false), Mechanism::new("LOGIN", true, false)];
    let security = Security { tls: control & 1 != 0, secured: control & 2 != 0, trusted: false };
    let mut imap = ImapLogin::new(LoginSettings::default(), security, mechs);
    let chunk = usize::from(control >> 2).max(1);
    for (i, piece) in body.chunks(chunk).enumerate() {
        for action in imap.input(piece) {
            if let Action::Send(bytes) = action {
                assert!(bytes.ends_with(b"\r\n"));
            }
        }
        let reply = match i % 4 {
            0 => AuthReply::Continue(String::new()),
            1 => AuthReply::Failure { code: None, reason: Some("x".into()), temporary: false },
            2 => AuthReply::Unavailable,
            _ => AuthReply::Continue("AA==".into()),
        };
        let _ = imap.auth_reply(reply);
        if i % 7 == 3 {
            let _ = imap.tls_started();
        }
    }
});
