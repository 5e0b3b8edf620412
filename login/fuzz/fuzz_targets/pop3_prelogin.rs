//! POP3 pre-auth: arbitrary bytes, split at arbitrary points, with
//! scripted auth replies, through the POP3 pre-auth state machine, and the
//! handoff record decoder the post-login side runs on what it is sent.
#![no_main]

use dovecote_login::policy::Security;
use dovecote_login::pop3::Pop3Login;
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
    let _ = dovecote_login::handoff::HandoffRecord::decode(body);
    let mechs = vec![Mechanism::new("PLAIN", true, false), Mechanism::new("LOGIN", true, false)];
    let security = Security { tls: control & 1 != 0, secured: control & 2 != 0, trusted: false };
    let mut pop3 = Pop3Login::new(LoginSettings::default(), security, mechs);
    let chunk = usize::from(control >> 2).max(1);
    for (i, piece) in body.chunks(chunk).enumerate() {
        for action in pop3.input(piece) {
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
        let _ = pop3.auth_reply(reply);
        if i % 7 == 3 {
            let _ = pop3.tls_started();
        }
    }
});
