//! The post-login POP3 server under the real master (issue 8, POP3 half):
//! Python's poplib on sdbox, Maildir and the mbox spool — STAT, LIST,
//! UIDL, RETR, TOP, DELE, RSET, QUIT; UIDLs stable across sessions and
//! equal to `pop3_uidl_format` computed here from UIDVALIDITY and UID;
//! deletions only at QUIT; `pop3_lock_session`; the pop3s greeting; and
//! bad input after login.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{Flags, MailLocation, NewMessage, User};

/// Every service binary, built once for all test files (common::bin_dir).
fn build_services() {
    bin_dir();
}

/// The three messages every test mailbox starts with (LF line endings; a
/// line starting with a dot; the last one without a final newline).
const MESSAGES: [&str; 3] = [
    "From: a@example.com\nSubject: one\n\nfirst body\n.dotted line\nlast\n",
    "From: b@example.com\nSubject: two\n\nsecond\n",
    "From: c@example.com\nSubject: three\n\nthird\nno newline",
];

struct Setup {
    dovecot: Instance,
    pop3: u16,
    pop3s: u16,
    /// UIDVALIDITY, the UIDs and CRLF sizes of MESSAGES, from the storage.
    uid_validity: u32,
    uids: Vec<u32>,
    sizes: Vec<usize>,
    location: String,
    home: PathBuf,
}

/// `format`: `maildir`, `sdbox` or `mbox` (S13's spool layout).
fn start(name: &str, format: &str, extra: &str) -> Setup {
    build_services();
    let dir = PathBuf::from(format!("/tmp/dovecote-test-{name}-{}", std::process::id()));
    let (pop3, pop3s) = (free_port(), free_port());
    let location = match format {
        "maildir" => "maildir:~/Maildir".to_string(),
        "sdbox" => "sdbox:~/sdbox".to_string(),
        _ => format!("mbox:~/mail:INBOX={}/spool/%u", dir.display()),
    };
    let body = format!(
        "protocols = pop3\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = {location}\n{extra}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = {pop3}\n }}\n inet_listener pop3s {{\n port = {pop3s}\n }}\n}}\n",
        d = dir.display()
    );
    let dovecot = Instance::start(name, &body);
    let home = dir.join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    std::fs::write(dir.join("passwd"), "alice:{PLAIN}Secr3t::::::\n").unwrap();

    // Fill INBOX through our storage, then hand everything to vmail.
    let vars = MailVars {
        user: Some("alice".into()),
        home: Some(home.display().to_string()),
        ..MailVars::default()
    };
    let parsed = MailLocation::parse(&location, &vars, Some(&home.display().to_string())).unwrap();
    let user = User::with_location("alice", parsed);
    let mut inbox = user.open("INBOX").unwrap();
    let mut uids = Vec::new();
    for m in MESSAGES {
        let saved = inbox
            .save(&NewMessage { data: m.as_bytes().to_vec(), flags: Flags::empty(), ..NewMessage::default() })
            .unwrap();
        uids.push(saved.uid);
    }
    let uid_validity = inbox.status().uid_validity;
    let sizes: Vec<usize> = inbox.messages().map(|m| m.virtual_size as usize).collect();
    drop(inbox);
    if format != "mbox" {
        // mbox ends the last message with a newline; elsewhere the size is
        // the message's own, with CRLF line endings.
        assert_eq!(sizes, MESSAGES.iter().map(|m| crlf_size(m)).collect::<Vec<_>>());
    }
    for path in [dir.join("home"), dir.join("spool")] {
        let st = Command::new("chown").args(["-R", "vmail:vmail"]).arg(&path).status().unwrap();
        assert!(st.success());
    }
    dovecot.wait_sockets(&["auth-master", "login/login", "login/pop3"]);
    Setup { dovecot, pop3, pop3s, uid_validity, uids, sizes, location, home }
}

/// Runs a poplib script (`p` is logged in) and returns its output lines.
fn poplib(s: &Setup, body: &str) -> Vec<String> {
    let script = format!(
        "import poplib, sys\n\
         p = poplib.POP3('127.0.0.1', {port}, timeout=30)\n\
         p.user('alice'); print(p.pass_('Secr3t').decode())\n\
         {body}\n",
        port = s.pop3
    );
    let out = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\n--- log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.dovecot.log_text()
    );
    text.lines().map(str::to_owned).collect()
}

/// CRLF size as POP3 counts it.
fn crlf_size(m: &str) -> usize {
    m.len() + m.matches('\n').count()
}

fn expected_uidl(s: &Setup, i: usize) -> String {
    // pop3_uidl_format = %08Xu%08Xv, computed here independently (Dovecot
    // 2.3.19 prints %X in lowercase: 000000016b065a88).
    format!("{:08x}{:08x}", s.uids[i], s.uid_validity)
}

fn full_session(format: &str) {
    let s = start(&format!("pop3-{format}"), format, "");
    let sizes = s.sizes.clone();
    let total: usize = sizes.iter().sum();

    let out = poplib(
        &s,
        "print(p.stat())\n\
         r, lines, _ = p.list(); print(r.decode(), [l.decode() for l in lines])\n\
         r, lines, _ = p.uidl(); print(r.decode(), [l.decode() for l in lines])\n\
         r, lines, _ = p.retr(1); print(r.decode(), [l.decode() for l in lines])\n\
         r, lines, _ = p.top(2, 0); print(r.decode(), [l.decode() for l in lines])\n\
         r, lines, _ = p.retr(3); print([l.decode() for l in lines])\n\
         print(p.dele(1).decode()); print(p.stat())\n\
         print(p.rset().decode()); print(p.stat())\n\
         print(p.dele(2).decode()); print(p.stat())\n\
         r, lines, _ = p.retr(3); print(r.decode())\n\
         print(p.quit().decode())",
    );
    let list: Vec<String> = sizes.iter().enumerate().map(|(i, n)| format!("'{} {n}'", i + 1)).collect();
    let uidls: Vec<String> = (0..3).map(|i| format!("'{} {}'", i + 1, expected_uidl(&s, i))).collect();
    assert_eq!(
        out,
        [
            "+OK Logged in.".to_string(),
            format!("(3, {total})"),
            format!("+OK 3 messages: [{}]", list.join(", ")),
            format!("+OK [{}]", uidls.join(", ")),
            format!(
                "+OK {} octets ['From: a@example.com', 'Subject: one', '', 'first body', '.dotted line', 'last']",
                sizes[0]
            ),
            "+OK ['From: b@example.com', 'Subject: two', '']".to_string(),
            "['From: c@example.com', 'Subject: three', '', 'third', 'no newline']".to_string(),
            "+OK Marked to be deleted.".to_string(),
            format!("(2, {})", total - sizes[0]),
            "+OK".to_string(),
            format!("(3, {total})"),
            "+OK Marked to be deleted.".to_string(),
            format!("(2, {})", total - sizes[1]),
            format!("+OK {} octets", sizes[2]),
            "+OK Logging out, messages deleted.".to_string(),
        ],
        "{format}\n{}",
        s.dovecot.log_text()
    );
    assert!(
        s.dovecot.wait_log(
            &format!(
                "Disconnected: Logged out top=1/{}, retr=3/",
                "+OK\r\nFrom: b@example.com\r\nSubject: two\r\n\r\n".len()
            ),
            Duration::from_secs(5)
        ),
        "{}",
        s.dovecot.log_text()
    );
    assert!(s.dovecot.log_text().contains(&format!("del=1/3, size={total}")), "{}", s.dovecot.log_text());

    // Second session: message 2 is gone, the others keep their UIDLs.
    let out = poplib(
        &s,
        "r, lines, _ = p.uidl(); print([l.decode() for l in lines])\n\
         print(p.uidl(2).decode())\n\
         print(p.dele(1).decode())\n\
         p.sock.close()",
    );
    assert_eq!(
        out,
        [
            "+OK Logged in.".to_string(),
            format!("['1 {}', '2 {}']", expected_uidl(&s, 0), expected_uidl(&s, 2)),
            format!("+OK 2 {}", expected_uidl(&s, 2)),
            "+OK Marked to be deleted.".to_string(),
        ],
        "{format}"
    );
    // That session ended without QUIT: nothing was deleted.
    assert!(
        s.dovecot.wait_log("Disconnected: Connection closed", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
    let out =
        poplib(&s, "print(p.stat())\nr, lines, _ = p.uidl(); print([l.decode() for l in lines])\np.quit()");
    assert_eq!(
        out,
        [
            "+OK Logged in.".to_string(),
            format!("(2, {})", total - sizes[1]),
            format!("['1 {}', '2 {}']", expected_uidl(&s, 0), expected_uidl(&s, 2)),
        ],
        "{format}"
    );

    // The storage agrees: message 2 expunged; RSET forgot the first RETRs,
    // so only message 3 (read again after it) is \Seen.
    let vars = MailVars {
        user: Some("alice".into()),
        home: Some(s.home.display().to_string()),
        ..MailVars::default()
    };
    let parsed = MailLocation::parse(&s.location, &vars, Some(&s.home.display().to_string())).unwrap();
    let user = User::with_location("alice", parsed);
    let inbox = user.open("INBOX").unwrap();
    let left: Vec<(u32, bool)> = inbox.messages().map(|m| (m.uid, m.flags.contains(Flags::SEEN))).collect();
    assert_eq!(left, [(s.uids[0], false), (s.uids[2], true)], "{format}");
}

#[test]
fn poplib_session_on_maildir() {
    full_session("maildir");
}

#[test]
fn poplib_session_on_sdbox() {
    full_session("sdbox");
}

#[test]
fn poplib_session_on_mbox_spool() {
    full_session("mbox");
}

/// Logs in over a raw socket; returns the stream after `+OK Logged in.`.
fn raw_login(port: u16) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(read_reply(&mut c, 1).starts_with("+OK"));
    c.write_all(b"USER alice\r\nPASS Secr3t\r\n").unwrap();
    let r = read_reply(&mut c, 2);
    assert!(r.ends_with("+OK Logged in.\r\n"), "{r:?}");
    c
}

/// Reads until `lines` CRLF-terminated lines arrived (or EOF/timeout).
fn read_reply(c: &mut TcpStream, lines: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(2).filter(|w| w == b"\r\n").count() < lines {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn is_closed(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(c.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn bad_input_gets_err_replies_and_the_session_goes_on() {
    let s = start("pop3-badinput", "maildir", "");
    let mut c = raw_login(s.pop3);
    // Not UTF-8, control bytes: the name is echoed back uppercased.
    c.write_all(b"\x01\x02garbage \xff\xfe\r\n").unwrap();
    assert_eq!(read_reply(&mut c, 1), "-ERR Unknown command: \x01\x02GARBAGE\r\n");
    c.write_all(b"LIST 1\0junk\r\nNO\0OP\r\n\r\nRETR x\r\nTOP 1\r\nLIST 99\r\nSTAT\r\n").unwrap();
    let r = read_reply(&mut c, 7);
    let size = s.sizes[0];
    assert_eq!(
        r,
        format!(
            "+OK 1 {size}\r\n-ERR Unknown command: NO\r\n-ERR Unknown command.\r\n-ERR Invalid message number: x\r\n\
             -ERR Noise after message number: \r\n-ERR There's no message 99.\r\n+OK 3 {}\r\n",
            s.sizes.iter().sum::<usize>()
        )
    );
    // Dovecot's limit is a 2048-byte line: longer ones end the session.
    let mut long = vec![b'A'; 3000];
    long.extend_from_slice(b"\r\n");
    c.write_all(&long).unwrap();
    assert_eq!(read_reply(&mut c, 1), "-ERR Input line too long.\r\n");
    assert!(is_closed(&mut c));
    assert!(s.dovecot.wait_log("Disconnected: Input line too long top=0/0", Duration::from_secs(5)));

    // 21 bad commands in a row end a session, as in Dovecot.
    let mut c = raw_login(s.pop3);
    for _ in 0..21 {
        c.write_all(b"XYZZY\r\n").unwrap();
    }
    let r = read_reply(&mut c, 22);
    assert_eq!(r, "-ERR Unknown command: XYZZY\r\n".repeat(21) + "-ERR Too many bad commands.\r\n");
    assert!(is_closed(&mut c));
    // The service still serves.
    let mut c = raw_login(s.pop3);
    c.write_all(b"NOOP\r\nQUIT\r\n").unwrap();
    assert_eq!(read_reply(&mut c, 2), "+OK\r\n+OK Logging out.\r\n");
}

#[test]
fn lock_session_refuses_a_second_session() {
    let s = start("pop3-lock", "maildir", "pop3_lock_session = yes");
    let mut first = raw_login(s.pop3);
    first.write_all(b"STAT\r\n").unwrap();
    assert!(read_reply(&mut first, 1).starts_with("+OK 3 "));
    let mut second = TcpStream::connect(("127.0.0.1", s.pop3)).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert!(read_reply(&mut second, 1).starts_with("+OK"));
    let t = Instant::now();
    second.write_all(b"USER alice\r\nPASS Secr3t\r\n").unwrap();
    let r = read_reply(&mut second, 2);
    assert!(r.ends_with("-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"), "{r:?}");
    assert!(t.elapsed() >= Duration::from_secs(9), "waited {:?}", t.elapsed());
    second.write_all(b"STAT\r\n").unwrap();
    assert!(is_closed(&mut second));
    // Once the first one quits, the next session gets in.
    first.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(read_reply(&mut first, 1), "+OK Logging out.\r\n");
    assert!(wait_for(Duration::from_secs(5), || !s.home.join("Maildir/dovecot-pop3-session.lock").exists()));
    let mut third = raw_login(s.pop3);
    third.write_all(b"STAT\r\nQUIT\r\n").unwrap();
    assert!(read_reply(&mut third, 2).starts_with("+OK 3 "));
}

fn make_cert(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem"])
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pop3s_greets_like_dovecot() {
    let certs = PathBuf::from(format!("/tmp/dovecote-test-pop3s-certs-{}", std::process::id()));
    make_cert(&certs);
    let extra = format!("ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n", d = certs.display());
    let s = start("pop3-pop3s", "maildir", &extra);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", s.pop3s), "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n") {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(String::from_utf8_lossy(&got), "+OK Dovecot ready.\r\n");
    // The TLS session then logs in and is served by our pop3.
    stdin.write_all(b"USER alice\r\nPASS Secr3t\r\nSTAT\r\nQUIT\r\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let _ = child.wait();
    let total: usize = s.sizes.iter().sum();
    assert_eq!(rest, format!("+OK\r\n+OK Logged in.\r\n+OK 3 {total}\r\n+OK Logging out.\r\n"));
    let _ = std::fs::remove_dir_all(&certs);
}
