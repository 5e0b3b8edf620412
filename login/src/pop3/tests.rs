use super::*;
use crate::testing::{mechanisms, replay, settings_for, Machine};

impl Machine for Pop3Login {
    fn greeting(&mut self) -> Vec<Action> {
        Pop3Login::greeting(self)
    }
    fn input(&mut self, data: &[u8]) -> Vec<Action> {
        Pop3Login::input(self, data)
    }
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        Pop3Login::auth_reply(self, reply)
    }
}

fn make(t: &crate::testing::Transcript) -> Box<dyn Machine> {
    let (settings, security) = settings_for(t);
    Box::new(Pop3Login::new(settings, security, mechanisms()))
}

#[test]
fn matches_dovecot_transcripts() {
    replay(include_str!("../../tests/fixtures/pop3.txt"), make);
}

#[test]
fn matches_dovecot_transcripts_ssl_required() {
    replay(include_str!("../../tests/fixtures/pop3-required.txt"), make);
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
fn stls_user_pass_handoff() {
    let mut m = Pop3Login::new(LoginSettings::default(), Security::default(), mechanisms());
    let a = m.input(b"STLS\r\nUSER injected\r\n");
    assert_eq!(sent(&a), "+OK Begin TLS negotiation now.\r\n");
    assert!(a.contains(&Action::StartTls));
    m.tls_started();
    assert_eq!(sent(&m.input(b"STLS\r\n")), "-ERR TLS is already active.\r\n");
    assert_eq!(sent(&m.input(b"USER alice\r\n")), "+OK\r\n");
    let a = m.input(b"PASS secret\r\nSTAT\r\n");
    assert_eq!(
        a,
        vec![Action::AuthBegin {
            mechanism: "PLAIN".into(),
            initial_response: Some("AGFsaWNlAHNlY3JldA==".into())
        }]
    );
    let a = m.auth_reply(AuthReply::Success { user: "alice".into(), fields: vec![] });
    assert_eq!(
        a,
        vec![Action::Handoff { user: "alice".into(), prefix: vec![], client_input: b"STAT\r\n".to_vec() }]
    );
}

#[test]
fn apop_greeting_and_command() {
    let mut mechs = mechanisms();
    mechs.push(Mechanism::new("APOP", false, true));
    let mut m = Pop3Login::new(
        LoginSettings::default(),
        Security { tls: true, secured: true, trusted: false },
        mechs,
    );
    m.set_apop_challenge(Some("<1.2.3@host>".into()));
    assert_eq!(sent(&m.greeting()), "+OK Dovecot ready. <1.2.3@host>\r\n");
    assert_eq!(sent(&m.input(b"APOP alice zz\r\n")), "-ERR Invalid characters in MD5 response.\r\n");
    let a = m.input(b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n");
    assert!(matches!(&a[..], [Action::AuthBegin { mechanism, .. }] if mechanism == "APOP"));
}

#[test]
fn proxy_reply_waits_then_resumes() {
    let mut m = Pop3Login::new(
        LoginSettings::default(),
        Security { tls: true, secured: true, trusted: false },
        mechanisms(),
    );
    m.input(b"USER alice\r\nPASS secret\r\nCAPA\r\n");
    let fields = vec![("proxy".to_owned(), String::new())];
    let a = m.auth_reply(AuthReply::Success { user: "alice".into(), fields: fields.clone() });
    assert_eq!(a, vec![Action::Proxy { user: "alice".into(), fields, tag: String::new() }]);
    assert!(m.input(b"QUIT\r\n").is_empty());
    let a = m.proxy_failed();
    assert!(sent(&a).starts_with("+OK\r\nCAPA"), "{}", sent(&a));
    assert!(sent(&a).ends_with("+OK Logging out\r\n"), "{}", sent(&a));
}

#[test]
fn xclient_from_trusted_networks_only() {
    let trusted = Security { tls: false, secured: true, trusted: true };
    let mut m = Pop3Login::new(LoginSettings::default(), trusted, mechanisms());
    assert_eq!(sent(&m.greeting()), "+OK [XCLIENT] Dovecot ready.\r\n");
    let a = m.input(b"XCLIENT ADDR=192.0.2.7 PORT=4711 SESSION=abc123 TTL=4\r\n");
    assert_eq!(
        a[0],
        Action::Forwarded(crate::Forwarded {
            remote_ip: Some("192.0.2.7".parse().unwrap()),
            remote_port: Some(4711),
            session_id: Some("abc123".into()),
            ..crate::Forwarded::default()
        })
    );
    assert_eq!(sent(&a), "+OK Updated\r\n");
    assert_eq!(sent(&m.input(b"XCLIENT ADDR=nope\r\n")), "-ERR Invalid parameters\r\n");
    let mut m = Pop3Login::new(LoginSettings::default(), Security::default(), mechanisms());
    assert_eq!(sent(&m.greeting()), "+OK Dovecot ready.\r\n");
    assert_eq!(sent(&m.input(b"XCLIENT ADDR=192.0.2.7\r\n")), "-ERR You are not from trusted IP\r\n");
}
