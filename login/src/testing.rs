//! Test support: replays transcripts recorded from the real Dovecot 2.3
//! (`tests/fixtures/*.txt`, made by `tests/fixtures/record.py`) through a
//! sans-IO state machine with a scripted auth service, comparing every
//! byte the server sent.

use crate::policy::Security;
use crate::sasl::{AuthReply, Mechanism};
use crate::settings::{LoginSettings, SslMode};
use crate::Action;

/// One recorded conversation.
pub struct Transcript {
    pub name: String,
    pub ssl: SslMode,
    pub secured: bool,
    /// Greeting, then (client bytes, server bytes) pairs.
    pub greeting: Vec<u8>,
    pub steps: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reverses Python's `unicode_escape` of latin-1 text.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

pub fn parse_fixture(text: &str) -> Vec<Transcript> {
    let mut all = Vec::new();
    let mut cur: Option<Transcript> = None;
    for line in text.lines() {
        let t = cur.get_or_insert_with(|| Transcript {
            name: String::new(),
            ssl: SslMode::Yes,
            secured: true,
            greeting: Vec::new(),
            steps: Vec::new(),
        });
        if let Some(v) = line.strip_prefix("# name: ") {
            t.name = v.into();
        } else if let Some(v) = line.strip_prefix("# ssl: ") {
            t.ssl = match v {
                "required" => SslMode::Required,
                "no" => SslMode::No,
                _ => SslMode::Yes,
            };
        } else if let Some(v) = line.strip_prefix("# secured: ") {
            t.secured = v == "yes";
        } else if line.starts_with('#') {
        } else if let Some(v) = line.strip_prefix("C ") {
            t.steps.push((unescape(v), Vec::new()));
        } else if let Some(v) = line.strip_prefix("S ").or(if line == "S" { Some("") } else { None }) {
            match t.steps.last_mut() {
                Some(step) => step.1.extend(unescape(v)),
                None => t.greeting.extend(unescape(v)),
            }
        } else if line == "=" {
            all.extend(cur.take());
        }
    }
    all
}

/// What the replay drives: the IMAP or POP3 machine.
pub trait Machine {
    fn greeting(&mut self) -> Vec<Action>;
    fn input(&mut self, data: &[u8]) -> Vec<Action>;
    fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action>;
}

pub fn settings_for(t: &Transcript) -> (LoginSettings, Security) {
    let settings = LoginSettings { ssl: t.ssl, ..LoginSettings::default() };
    let security = Security { tls: false, secured: t.secured, trusted: false };
    (settings, security)
}

pub fn mechanisms() -> Vec<Mechanism> {
    vec![Mechanism::new("PLAIN", true, false)]
}

/// Runs `actions` through a scripted auth: a mechanism started without an
/// initial response gets an empty challenge, any response is refused
/// (fixtures only record failed logins). Returns the bytes sent and
/// whether the connection was closed.
pub fn drive(machine: &mut dyn Machine, mut actions: Vec<Action>, out: &mut Vec<u8>) -> bool {
    let mut closed = false;
    while !actions.is_empty() {
        let mut next = Vec::new();
        for action in actions {
            match action {
                Action::Send(b) => out.extend(b),
                Action::Close { .. } => closed = true,
                Action::AuthBegin { initial_response: None, .. } => {
                    next.extend(machine.auth_reply(AuthReply::Continue(String::new())))
                }
                Action::AuthBegin { initial_response: Some(ir), .. }
                    if !crate::sasl::is_base64(ir.as_bytes()) =>
                {
                    next.extend(machine.auth_reply(AuthReply::Failure {
                        code: Some("invalid_base64".into()),
                        reason: Some("Invalid base64 data in initial response".into()),
                        temporary: false,
                    }))
                }
                Action::AuthBegin { .. } | Action::AuthContinue(_) => {
                    next.extend(machine.auth_reply(AuthReply::Failure {
                        code: None,
                        reason: None,
                        temporary: false,
                    }))
                }
                Action::AuthCancel | Action::StartTls | Action::Forwarded(_) => {}
                Action::Handoff { .. } | Action::Proxy { .. } => panic!("fixtures never log in"),
            }
        }
        actions = next;
    }
    closed
}

/// Replays every transcript in `fixture` through machines from `make`.
pub fn replay(fixture: &str, make: impl Fn(&Transcript) -> Box<dyn Machine>) {
    let transcripts = parse_fixture(fixture);
    assert!(!transcripts.is_empty());
    for t in &transcripts {
        let mut m = make(t);
        let mut out = Vec::new();
        let greeting = m.greeting();
        drive(m.as_mut(), greeting, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&t.greeting),
            "{}: greeting",
            t.name
        );
        for (i, (client, server)) in t.steps.iter().enumerate() {
            let mut out = Vec::new();
            let actions = m.input(client);
            let closed = drive(m.as_mut(), actions, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(server),
                "{}: step {} ({:?})",
                t.name,
                i,
                String::from_utf8_lossy(client)
            );
            if closed {
                break;
            }
        }
    }
}
