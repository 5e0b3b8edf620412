//! ENVELOPE, BODY, BODYSTRUCTURE, SEARCH, SORT and THREAD of the corpus in
//! tests/corpus/msgs compared byte for byte with what Debian's Dovecot
//! 2.3.19 answered for the same messages (tests/corpus/expected, produced
//! by tests/corpus/generate.py; this test doesn't need Dovecot).

use std::path::{Path, PathBuf};

use dovecote_mailproc::imap::{bodystructure, envelope};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn messages() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = std::fs::read_dir(corpus().join("msgs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), std::fs::read(corpus().join("msgs").join(&n)).unwrap())).collect()
}

/// Parses "NAME <len>\n<bytes>\n" records.
fn records(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let nl = pos + data[pos..].iter().position(|&b| b == b'\n').unwrap();
        let head = std::str::from_utf8(&data[pos..nl]).unwrap();
        let (name, len) = head.rsplit_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        out.push((name.to_string(), data[nl + 1..nl + 1 + len].to_vec()));
        pos = nl + 1 + len + 1;
    }
    out
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\r', "\\r")
}

#[test]
fn corpus_has_enough_messages() {
    assert!(messages().len() >= 100);
}

#[test]
fn envelope_body_bodystructure_match_dovecot() {
    let mut failures = Vec::new();
    let mut compared = 0;
    let all = messages();
    for (name, msg) in &all {
        let msg = msg.as_slice();
        let expected =
            records(&std::fs::read(corpus().join("expected").join(name.replace(".eml", ".fetch"))).unwrap());
        for (item, want) in expected {
            compared += 1;
            let got = match item.as_str() {
                "ENVELOPE" => envelope::envelope_bytes(msg),
                "BODY" => bodystructure::render(msg, false),
                "BODYSTRUCTURE" => bodystructure::render(msg, true),
                other => panic!("unknown item {other}"),
            };
            if got != want {
                failures.push(format!("{name} {item}\n  want {}\n  got  {}", show(&want), show(&got)));
            }
            // The String API agrees wherever the bytes are UTF-8.
            if let Ok(want) = std::str::from_utf8(&want) {
                let s = match item.as_str() {
                    "ENVELOPE" => envelope::envelope(msg),
                    "BODY" => bodystructure::body(msg),
                    _ => bodystructure::bodystructure(msg),
                };
                if s != want && !failures.iter().any(|f| f.starts_with(&format!("{name} {item}"))) {
                    failures.push(format!("{name} {item} (String API)"));
                }
            }
        }
    }
    assert_eq!(compared, 3 * all.len());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

// --- SEARCH / SORT / THREAD replay -------------------------------------

use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::imap::message::{SearchContext, SearchMessage};
use dovecote_mailproc::imap::search::{SearchError, SearchProgram};
use dovecote_mailproc::imap::sort::{self, SortCriteria};
use dovecote_mailproc::imap::thread;
use dovecote_mailproc::storage::{Flags, Keywords};

/// One corpus message as the mailbox generate.py built holds it.
struct TestMessage {
    seq: u32,
    data: Vec<u8>,
    header_len: usize,
    keywords: Keywords,
}

impl TestMessage {
    fn new(seq: u32, data: Vec<u8>) -> Self {
        let header_len = dovecote_mailproc::imap::header::header_len(&data);
        TestMessage { seq, data, header_len, keywords: Keywords::new() }
    }
}

/// Flags and INTERNALDATE of message i: keep in sync with meta() in
/// tests/corpus/generate.py.
fn meta_flags(i: u32) -> Flags {
    let mut f = Flags::empty();
    for (n, flag) in [
        (13, Flags::DRAFT),
        (5, Flags::FLAGGED),
        (7, Flags::ANSWERED),
        (3, Flags::SEEN),
        (11, Flags::DELETED),
    ] {
        if i.is_multiple_of(n) {
            f = f.union(flag);
        }
    }
    f
}

impl SearchMessage for TestMessage {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn uid(&self) -> u32 {
        self.seq
    }
    fn flags(&self) -> Flags {
        meta_flags(self.seq)
    }
    fn keywords(&self) -> &Keywords {
        &self.keywords
    }
    fn recent(&self) -> bool {
        true
    }
    fn modseq(&self) -> u64 {
        // Dovecot's mailbox reported HIGHESTMODSEQ 2 for every message.
        2
    }
    fn internal_date(&self) -> (i64, i32) {
        (1_794_000_000 + i64::from(self.seq) * 25_000, 0)
    }
    fn save_date(&self) -> Option<i64> {
        None
    }
    fn size(&mut self) -> u64 {
        dovecote_mailproc::imap::parts::vsize_lines(&self.data).0
    }
    fn header(&mut self) -> &[u8] {
        &self.data[..self.header_len]
    }
    fn message(&mut self) -> &[u8] {
        &self.data
    }
}

/// A minimal IMAP argument parser for the recorded commands (atoms,
/// quoted strings, lists); `None` for unbalanced parentheses and 8-bit
/// atoms, which the command parser reports before SEARCH sees anything.
fn parse_args(line: &[u8]) -> Option<Vec<Arg>> {
    fn list(s: &[u8], pos: &mut usize, nested: bool) -> Option<Vec<Arg>> {
        let mut out = Vec::new();
        loop {
            while *pos < s.len() && s[*pos] == b' ' {
                *pos += 1;
            }
            if *pos >= s.len() {
                return if nested { None } else { Some(out) };
            }
            match s[*pos] {
                b'(' => {
                    *pos += 1;
                    out.push(Arg::List(list(s, pos, true)?));
                }
                b')' => {
                    *pos += 1;
                    return if nested { Some(out) } else { None };
                }
                b'"' => {
                    *pos += 1;
                    let mut v = Vec::new();
                    while *pos < s.len() && s[*pos] != b'"' {
                        if s[*pos] == b'\\' {
                            *pos += 1;
                        }
                        v.push(s[*pos]);
                        *pos += 1;
                    }
                    *pos += 1;
                    out.push(Arg::Quoted(v));
                }
                _ => {
                    let start = *pos;
                    while *pos < s.len() && !b" ()".contains(&s[*pos]) {
                        *pos += 1;
                    }
                    if s[start..*pos].iter().any(|&b| b >= 0x80) {
                        return None; // "8bit data in atom"
                    }
                    let a = String::from_utf8_lossy(&s[start..*pos]).into_owned();
                    out.push(if a.eq_ignore_ascii_case("NIL") { Arg::Nil } else { Arg::Atom(a) });
                }
            }
        }
    }
    list(line, &mut 0, false)
}

/// (command, reply) pairs from expected/commands.
fn recorded_commands() -> Vec<(Vec<u8>, Vec<u8>)> {
    let data = std::fs::read(corpus().join("expected/commands")).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let nl = pos + data[pos..].iter().position(|&b| b == b'\n').unwrap();
        let cmd = data[pos + 2..nl].to_vec();
        pos = nl + 1;
        let nl = pos + data[pos..].iter().position(|&b| b == b'\n').unwrap();
        let len: usize = std::str::from_utf8(&data[pos + 2..nl]).unwrap().parse().unwrap();
        out.push((cmd, data[nl + 1..nl + 1 + len].to_vec()));
        pos = nl + 1 + len + 1;
    }
    out
}

/// The data line (`* SEARCH …`) and the tagged status text of a reply.
fn reply_parts(reply: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let data = lines
        .iter()
        .find(|l| l.starts_with("* SEARCH") || l.starts_with("* SORT") || l.starts_with("* THREAD"))
        .map(|l| l.to_string());
    (data, lines.last().unwrap_or(&"").to_string())
}

fn corpus_mailbox() -> Vec<TestMessage> {
    messages().into_iter().enumerate().map(|(i, (_, data))| TestMessage::new(i as u32 + 1, data)).collect()
}

fn context(count: u32) -> SearchContext {
    let now: i64 = std::fs::read_to_string(corpus().join("expected/now")).unwrap().trim().parse().unwrap();
    SearchContext { max_seq: count, max_uid: count, saved: None, now }
}

fn status_of(err: &SearchError) -> String {
    match err {
        SearchError::Bad { .. } => format!("BAD {err}."),
        SearchError::BadCharset(_) => format!("NO {err}."),
    }
}

/// What we answer for one recorded command: (data line, status line).
fn answer(
    cmd: &str,
    args: &[Arg],
    mailbox: &mut [TestMessage],
    ctx: &SearchContext,
) -> (Option<String>, String) {
    let (uid, cmd) = match cmd.strip_prefix("UID ") {
        Some(rest) => (true, rest),
        None => (false, cmd),
    };
    let number = |m: &TestMessage| if uid { m.uid() } else { m.seq() };
    if cmd == "SEARCH" {
        let program = match SearchProgram::parse(args, None) {
            Ok(p) => p,
            Err(e) => return (None, status_of(&e)),
        };
        let mut hits = Vec::new();
        let mut highest = 0;
        for m in mailbox.iter_mut() {
            if program.matches(m, ctx) {
                hits.push(number(m).to_string());
                highest = highest.max(m.modseq());
            }
        }
        let mut line =
            if hits.is_empty() { "* SEARCH".to_string() } else { format!("* SEARCH {}", hits.join(" ")) };
        if program.uses_modseq() && !hits.is_empty() {
            line.push_str(&format!(" (MODSEQ {highest})"));
        }
        return (Some(line), "OK Search completed.".to_string());
    }
    if cmd == "SORT" {
        // SORT (criteria) charset search-keys
        let criteria = match args.first().map(SortCriteria::parse_arg) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return (None, status_of(&e)),
            None => return (None, "missing criteria".to_string()),
        };
        let charset = args.get(1).and_then(Arg::as_astring).map(|c| String::from_utf8_lossy(c).into_owned());
        let program = match SearchProgram::parse(&args[2.min(args.len())..], charset.as_deref()) {
            Ok(p) => p,
            Err(e) => return (None, status_of(&e.for_command("SORT"))),
        };
        let mut matching: Vec<&mut dyn SearchMessage> = Vec::new();
        for m in mailbox.iter_mut() {
            if program.matches(m, ctx) {
                matching.push(m);
            }
        }
        let order = sort::sort(&criteria, &mut matching);
        let numbers: Vec<String> = order.iter().map(|&i| number_of(&*matching[i], uid).to_string()).collect();
        let line =
            if numbers.is_empty() { "* SORT".to_string() } else { format!("* SORT {}", numbers.join(" ")) };
        return (Some(line), "OK Sort completed.".to_string());
    }
    if cmd == "THREAD" {
        // THREAD algorithm charset search-keys
        let algorithm = args.first().and_then(Arg::as_atom).unwrap_or_default().to_string();
        let charset = args.get(1).and_then(Arg::as_astring).map(|c| String::from_utf8_lossy(c).into_owned());
        let program = match SearchProgram::parse(&args[2.min(args.len())..], charset.as_deref()) {
            Ok(p) => p,
            Err(e) => return (None, status_of(&e.for_command("THREAD"))),
        };
        let mut matching: Vec<&mut dyn SearchMessage> = Vec::new();
        for m in mailbox.iter_mut() {
            if program.matches(m, ctx) {
                matching.push(m);
            }
        }
        return match thread::thread(&algorithm, &mut matching, uid) {
            Ok(t) if t.is_empty() => (Some("* THREAD".to_string()), "OK Thread completed.".to_string()),
            Ok(t) => (Some(format!("* THREAD {t}")), "OK Thread completed.".to_string()),
            Err(e) => (None, status_of(&e)),
        };
    }
    (None, format!("unsupported command {cmd}"))
}

fn number_of(m: &dyn SearchMessage, uid: bool) -> u32 {
    if uid {
        m.uid()
    } else {
        m.seq()
    }
}

#[test]
fn search_sort_thread_match_dovecot() {
    let mut mailbox = corpus_mailbox();
    let ctx = context(mailbox.len() as u32);
    let mut failures = Vec::new();
    let mut compared = 0;
    for (cmd_line, reply) in recorded_commands() {
        let text = String::from_utf8_lossy(&cmd_line).into_owned();
        let (name_len, name) = if let Some(rest) = text.strip_prefix("UID ") {
            let n = rest.split(' ').next().unwrap_or_default();
            (4 + n.len(), format!("UID {n}"))
        } else {
            let n = text.split(' ').next().unwrap_or_default();
            (n.len(), n.to_string())
        };
        let Some(args) = parse_args(&cmd_line[name_len..]) else {
            // Unbalanced parentheses: the command parser's error, not ours.
            continue;
        };
        let want = reply_parts(&reply);
        let got = answer(&name, &args, &mut mailbox, &ctx);
        if got.1.starts_with("unsupported") {
            continue;
        }
        compared += 1;
        if got != want {
            failures.push(format!("{text}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(compared >= 100, "only {compared} commands compared");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

// --- properties ------------------------------------------------------------

use proptest::prelude::*;

/// Whether `out` is one well-formed IMAP parenthesised list: balanced
/// parentheses outside quoted strings and literals, literals complete.
fn well_formed(out: &[u8]) -> bool {
    let mut depth = 0i32;
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
                if depth == 0 && i + 1 != out.len() {
                    return false;
                }
            }
            b'"' => {
                i += 1;
                while i < out.len() && out[i] != b'"' {
                    if out[i] == b'\\' {
                        i += 1;
                    }
                    if i < out.len() && (out[i] == b'\r' || out[i] == b'\n' || out[i] >= 0x80) {
                        return false;
                    }
                    i += 1;
                }
                if i >= out.len() {
                    return false;
                }
            }
            b'{' => {
                let Some(close) = out[i..].iter().position(|&b| b == b'}') else { return false };
                let Ok(n) = std::str::from_utf8(&out[i + 1..i + close]).unwrap_or("x").parse::<usize>()
                else {
                    return false;
                };
                if out.get(i + close + 1..i + close + 3) != Some(b"\r\n") {
                    return false;
                }
                i += close + 3 + n;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    depth == 0 && out.first() == Some(&b'(')
}

fn message_fragments() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"Content-Type: multipart/mixed; boundary=b\n".to_vec()),
        Just(b"Content-Type: multipart/digest; boundary=\"c\"\n".to_vec()),
        Just(b"Content-Type: message/rfc822\n".to_vec()),
        Just(b"Content-Type: text/plain; charset=\"utf-8\"; name*0*=x; name*1=y\n".to_vec()),
        Just(b"Content-Disposition: attachment; filename=\"a\\\"b\"\n".to_vec()),
        Just(b"Content-Language: en, de\nContent-Location: x\n".to_vec()),
        Just(b"--b\n".to_vec()),
        Just(b"--b--\n".to_vec()),
        Just(b"--c\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b" folded\n".to_vec()),
        Just(b"Subject: =?utf-8?q?x?= \"q\" \\ (c)\n".to_vec()),
        Just(b"From: \"a, b\" <c@d>, G: e@f;, <@r:x@y>, broken <\n".to_vec()),
        Just(b"To: (comment) x@[1.2.3.4], \"\" <>\n".to_vec()),
        Just(b"Date: Mon, 2 Nov 2026 10:00:00 +0100\n".to_vec()),
        Just(b"body text\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(fragment, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn renderings_are_well_formed(msg in message_fragments()) {
        let env = envelope::envelope_bytes(&msg);
        prop_assert!(well_formed(&env), "ENVELOPE {}", show(&env));
        for extended in [false, true] {
            let b = bodystructure::render(&msg, extended);
            prop_assert!(well_formed(&b), "BODY{} {}", if extended { "STRUCTURE" } else { "" }, show(&b));
        }
    }

    #[test]
    fn search_parser_never_panics(words in proptest::collection::vec(
        prop_oneof![
            Just("OR"), Just("NOT"), Just("HEADER"), Just("SUBJECT"), Just("1:*"), Just("UID"), Just("$"),
            Just("BEFORE"), Just("1-Jan-2020"), Just("LARGER"), Just("10"), Just("MODSEQ"), Just("x"),
            Just("CHARSET"), Just("UTF-8"), Just("TEXT"), Just("ALL"), Just("0"),
        ], 0..10)) {
        let args: Vec<Arg> = words.iter().map(|w| Arg::Atom(w.to_string())).collect();
        if let Ok(p) = SearchProgram::parse(&args, None) {
            let mut m = TestMessage::new(1, b"Subject: x\n\nbody\n".to_vec());
            let ctx = SearchContext { max_seq: 1, max_uid: 1, saved: Some(vec![1]), now: 0 };
            let _ = p.matches(&mut m, &ctx);
        }
    }
}

#[test]
fn well_formed_checker_rejects_broken_output() {
    assert!(well_formed(b"(\"a\" {1}\r\n) NIL)"));
    assert!(!well_formed(b"(\"a)"));
    assert!(!well_formed(b"(a))"));
    assert!(!well_formed(b"({5}\r\nab)"));
    assert!(!well_formed(b"(\"\xc3\xa9\")"));
}
