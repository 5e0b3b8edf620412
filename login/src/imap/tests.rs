use super::*;
use crate::testing::{mechanisms, replay, settings_for, Machine};

impl Machine for ImapLogin {
    fn greeting(&mut self) -> Vec<Action> {
        ImapLogin::greeting(self)
    }
    fn input(&mut self, data: &[u8]) -> Vec<Action> {
        ImapLogin::input(self, data)
    }
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        ImapLogin::auth_reply(self, reply)
    }
}

fn make(t: &crate::testing::Transcript) -> Box<dyn Machine> {
    let (settings, security) = settings_for(t);
    Box::new(ImapLogin::new(settings, security, mechanisms()))
}

#[test]
fn matches_dovecot_transcripts() {
    replay(include_str!("../../tests/fixtures/imap.txt"), make);
}

#[test]
fn matches_dovecot_transcripts_ssl_required() {
    replay(include_str!("../../tests/fixtures/imap-required.txt"), make);
}

fn machine(secured: bool) -> ImapLogin {
    let security = Security { tls: false, secured, trusted: false };
    ImapLogin::new(LoginSettings::default(), security, mechanisms())
}

fn sent(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn starttls_then_login_hands_off_with_pipelined_input() {
    let mut m = machine(false);
    let actions = m.input(b"a STARTTLS\r\nb LOGIN injected x\r\n");
    assert_eq!(sent(&actions), "a OK Begin TLS negotiation now.\r\n");
    assert!(actions.contains(&Action::StartTls));
    // Input pipelined in the clear after STARTTLS is dropped.
    assert!(m.tls_started().is_empty());
    assert!(m.capability().ends_with("IDLE LITERAL+ AUTH=PLAIN"));
    let actions = m.input(b"b CAPABILITY\r\n");
    assert_eq!(
        sent(&actions),
        "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\nb OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
    );
    assert_eq!(sent(&m.input(b"c STARTTLS\r\n")), "c BAD TLS is already active.\r\n");
    let actions = m.input(b"d LOGIN alice secret\r\ne SELECT INBOX\r\n");
    assert_eq!(
        actions,
        vec![Action::AuthBegin {
            mechanism: "PLAIN".into(),
            initial_response: Some("AGFsaWNlAHNlY3JldA==".into())
        }]
    );
    let actions = m.auth_reply(AuthReply::Success { user: "alice".into(), fields: vec![] });
    assert_eq!(
        actions,
        vec![Action::Handoff {
            user: "alice".into(),
            prefix: b"0d".to_vec(),
            client_input: b"e SELECT INBOX\r\n".to_vec()
        }]
    );
    assert!(m.is_done());
}

#[test]
fn authenticate_continuation_and_tempfail() {
    let mut m = machine(true);
    let a = m.input(b"a AUTHENTICATE PLAIN\r\n");
    assert_eq!(a, vec![Action::AuthBegin { mechanism: "PLAIN".into(), initial_response: None }]);
    assert_eq!(sent(&m.auth_reply(AuthReply::Continue(String::new()))), "+ \r\n");
    let a = m.input(b"AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(a, vec![Action::AuthContinue("AGFsaWNlAHNlY3JldA==".into())]);
    let a =
        m.auth_reply(AuthReply::Failure { code: Some("temp_fail".into()), reason: None, temporary: true });
    assert_eq!(sent(&a), "a NO [UNAVAILABLE] Temporary authentication failure.\r\n");
    let a = m.input(b"b AUTHENTICATE PLAIN =\r\n");
    assert_eq!(
        a,
        vec![Action::AuthBegin { mechanism: "PLAIN".into(), initial_response: Some(String::new()) }]
    );
    let a = m.auth_reply(AuthReply::Success {
        user: "u".into(),
        fields: vec![("nologin".into(), String::new()), ("reason".into(), "Moved".into())],
    });
    assert_eq!(sent(&a), "b NO [ALERT] Moved\r\n");
}

#[test]
fn ssl_no_and_trusted() {
    let settings = LoginSettings { ssl: crate::settings::SslMode::No, ..LoginSettings::default() };
    let sec = Security::classify(
        &settings,
        Some("10.0.0.1".parse().unwrap()),
        Some("10.0.0.2".parse().unwrap()),
        false,
    );
    let mut m = ImapLogin::new(settings, sec, mechanisms());
    assert_eq!(m.capability(), "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ LOGINDISABLED");
    assert_eq!(sent(&m.input(b"a STARTTLS\r\n")), "a BAD TLS support isn't enabled.\r\n");
    let settings = LoginSettings {
        login_trusted_networks: crate::settings::parse_networks("10.0.0.0/24"),
        ..LoginSettings::default()
    };
    let sec = Security::classify(
        &settings,
        Some("10.0.0.1".parse().unwrap()),
        Some("10.0.0.2".parse().unwrap()),
        false,
    );
    assert!(sec.secured && !sec.tls);
    let m = ImapLogin::new(settings, sec, mechanisms());
    assert!(m.capability().ends_with("STARTTLS AUTH=PLAIN"));
}

#[test]
fn greeting_and_capability_settings() {
    let settings = LoginSettings {
        login_greeting: "Hi.".into(),
        imap_capability: "+XFOO".into(),
        imap_literal_minus: true,
        ..LoginSettings::default()
    };
    let mut m = ImapLogin::new(settings, Security { tls: true, secured: true, trusted: false }, mechanisms());
    assert_eq!(
        sent(&m.greeting()),
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL- XFOO AUTH=PLAIN] Hi.\r\n"
    );
}

#[test]
fn never_panics_on_random_input() {
    let mut seed = 0x1234_5678_u64;
    for _ in 0..2000 {
        let mut m = machine(seed.is_multiple_of(2));
        let mut data = Vec::new();
        for _ in 0..(seed % 300) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let b = (seed >> 33) as u8;
            data.push(match b % 8 {
                0 => b' ',
                1 => b'\n',
                2 => b'{',
                3 => b'"',
                _ => b,
            });
        }
        let _ = m.input(&data);
        let _ = m.auth_reply(AuthReply::Continue("x".into()));
        let _ = m.input(b"\r\n");
    }
}

#[test]
fn proxy_reply_waits_then_resumes_or_hands_over_the_input() {
    let proxy_fields =
        || vec![("proxy".to_owned(), String::new()), ("host".to_owned(), "10.0.0.2".to_owned())];
    let mut m = machine(true);
    assert_eq!(sent(&m.input(b"x CAPABILITY\r\n")).lines().count(), 2);
    assert!(m.capability_requested());
    m.input(b"a LOGIN alice secret\r\nb NOOP\r\n");
    let a = m.auth_reply(AuthReply::Success { user: "alice".into(), fields: proxy_fields() });
    assert_eq!(a, vec![Action::Proxy { user: "alice".into(), fields: proxy_fields(), tag: "a".into() }]);
    // Input while the backend login runs is kept, not run.
    assert!(m.input(b"c NOOP\r\n").is_empty());
    assert_eq!(m.pending_input(), 16);
    // The backend login failed: the pipelined commands run now.
    assert_eq!(sent(&m.proxy_failed()), "b OK NOOP completed.\r\nc OK NOOP completed.\r\n");

    m.input(b"d LOGIN alice secret\r\ne SELECT INBOX\r\n");
    let a = m.auth_reply(AuthReply::Success { user: "alice".into(), fields: proxy_fields() });
    assert!(matches!(&a[0], Action::Proxy { tag, .. } if tag == "d"));
    assert_eq!(m.take_input(), b"e SELECT INBOX\r\n");
    assert!(m.is_done());
}

#[test]
fn id_forwarding_only_from_trusted_networks() {
    let id = b"i ID (\"x-session-id\" \"abcDEF123\" \"x-originating-ip\" \"192.0.2.7\" \"x-originating-port\" \"4711\" \"x-connected-ip\" \"10.0.0.1\" \"x-connected-port\" \"143\" \"x-proxy-ttl\" \"4\")\r\n";
    let trusted = Security { tls: false, secured: true, trusted: true };
    let mut m = ImapLogin::new(LoginSettings::default(), trusted, mechanisms());
    let a = m.input(id);
    assert_eq!(
        a[0],
        Action::Forwarded(crate::Forwarded {
            remote_ip: Some("192.0.2.7".parse().unwrap()),
            remote_port: Some(4711),
            local_ip: Some("10.0.0.1".parse().unwrap()),
            local_port: Some(143),
            session_id: Some("abcDEF123".into()),
        })
    );
    assert!(sent(&a).ends_with("i OK ID completed.\r\n"));
    let mut m = machine(true);
    assert!(!m.input(id).iter().any(|a| matches!(a, Action::Forwarded(_))));
}
