//! The post-login IMAP server (issue 7) under a real master: every command
//! through Python's imaplib on Maildir, sdbox and mbox; IDLE and two
//! sessions seeing each other's changes; a CONDSTORE/QRESYNC flow on a
//! raw socket; bad input (Dovecot's wording, a 10 MB literal, 1,000
//! pipelined commands, a client that never reads).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn start(name: &str, mail_location: &str) -> imap::ImapServer {
    imap::start_imap(name, mail_location, "")
}

fn start_with(name: &str, mail_location: &str, extra: &str) -> imap::ImapServer {
    imap::start_imap(name, mail_location, extra)
}

fn script(name: &str) -> String {
    format!("{}/tests/imap/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a Python client script against the server; it prints `ALL OK`.
fn run_script(s: &imap::ImapServer, file: &str) {
    let out = Command::new("python3").arg(script(file)).arg(s.imap.to_string()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.dovecot.log_text()
    );
}

fn run_commands(name: &str, location: &str) {
    let s = start(name, location);
    run_script(&s, "commands.py");
    assert!(
        s.dovecot.wait_log("Disconnected: Logged out in=", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
    let log = s.dovecot.log_text();
    // MOVE to Archive, EXPUNGE in it, MOVE within it.
    assert!(log.contains("expunged=3"), "logout counters: {log}");
}

/// SPECIAL-USE is advertised only when a configured mailbox has a
/// `special_use` (the server of the other tests has none), and then after
/// the rest of the string, before plugin capabilities, as Dovecot does.
#[test]
fn special_use_is_advertised_with_special_use_mailboxes() {
    let s = start_with(
        "imap-special-use-cap",
        "maildir:~/Maildir",
        "mail_plugins = imap_zlib\nnamespace inbox {\n inbox = yes\n mailbox Junk {\n  special_use = \\Junk\n  auto = create\n }\n}\n",
    );
    let mut c = Raw::login(s.imap);
    let caps = c.cmd("C", "CAPABILITY");
    let line = caps.lines().find(|l| l.starts_with("* CAPABILITY ")).unwrap_or_default();
    assert!(line.trim_end().ends_with(" LITERAL+ SPECIAL-USE COMPRESS=DEFLATE"), "{caps}");
    let list = c.cmd("L", "LIST \"\" Junk RETURN (SPECIAL-USE)");
    assert!(list.contains("\\Junk"), "{list}");
    c.cmd("Z", "LOGOUT");
}

#[test]
fn imap_logout_format_is_honoured() {
    let s = start_with(
        "imap-logout-format",
        "maildir:~/Maildir",
        "imap_logout_format = bytes=%i/%o appended=%{appended} hdr=%{fetch_hdr_count} session=<%{session}>",
    );
    let mut c = Raw::login(s.imap);
    c.append("A1", "INBOX", MSG);
    c.append("A2", "INBOX", MSG);
    c.cmd("S", "SELECT INBOX");
    c.cmd("F", "FETCH 1:2 BODY.PEEK[HEADER]");
    c.cmd("Z", "LOGOUT");
    assert!(
        s.dovecot.wait_log("Disconnected: Logged out bytes=", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
    let log = s.dovecot.log_text();
    let line = log.lines().find(|l| l.contains("Disconnected: Logged out bytes=")).unwrap_or_default();
    assert!(line.contains(" appended=2 hdr=2 session=<"), "{line}");
    assert!(!line.contains("deleted="), "{line}");
}

#[test]
fn imaplib_commands_on_maildir() {
    run_commands("imap-cmd-maildir", "maildir:~/Maildir");
}

#[test]
fn imaplib_commands_on_sdbox() {
    run_commands("imap-cmd-sdbox", "sdbox:~/sdbox");
}

#[test]
fn imaplib_commands_on_mbox() {
    run_commands("imap-cmd-mbox", "mbox:~/mail:INBOX=~/mail/inbox");
}

/// COMPRESS=DEFLATE with Dovecot's imap_zlib plugin configured: errors,
/// a pipelined command after COMPRESS, big literals both ways, IDLE.
#[test]
fn compress_deflate() {
    let s = start_with(
        "imap-compress",
        "maildir:~/Maildir",
        "protocol imap {\n mail_plugins = $mail_plugins zlib imap_zlib\n}\n",
    );
    run_script(&s, "compress.py");
    assert!(
        s.dovecot.wait_log("Disconnected: Logged out in=", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
}

/// BINARY: decoded parts, literal8 both ways, Dovecot's errors.
#[test]
fn binary_fetch_and_append() {
    let s = start("imap-binary", "maildir:~/Maildir");
    run_script(&s, "binary.py");
}

/// ESORT and the ESEARCH return options (PARTIAL, SAVE, order of items).
#[test]
fn esort_and_return_options() {
    let s = start("imap-esort", "sdbox:~/sdbox");
    run_script(&s, "esort.py");
}

/// WITHIN (YOUNGER/OLDER) and I18NLEVEL=1 comparisons.
#[test]
fn within_and_i18nlevel() {
    let s = start("imap-within", "maildir:~/Maildir");
    run_script(&s, "within.py");
}

/// SNIPPET (FUZZY) and PREVIEW: Dovecot's preview text and modifiers.
#[test]
fn snippet_and_preview() {
    let s = start("imap-preview", "mbox:~/mail:INBOX=~/mail/inbox");
    run_script(&s, "preview.py");
}

/// CATENATE with URL-PARTIAL: TEXT and URL parts, Dovecot's BADURL errors.
#[test]
fn catenate_and_url_partial() {
    let s = start("imap-catenate", "sdbox:~/sdbox");
    run_script(&s, "catenate.py");
}

/// Without imap_zlib there is no COMPRESS, as in Dovecot.
#[test]
fn compress_needs_the_imap_zlib_plugin() {
    let s = start("imap-nocompress", "maildir:~/Maildir");
    let mut c = Raw::login(s.imap);
    let caps = c.cmd("c", "CAPABILITY");
    assert!(!caps.contains("COMPRESS"), "{caps}");
    let got = c.cmd("z", "COMPRESS DEFLATE");
    assert!(got.contains("z BAD Error in IMAP command COMPRESS: Unknown command"), "{got}");
}

/// A raw logged-in IMAP connection.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn login(port: u16) -> Raw {
        let stream = connect(port);
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw { stream, buf: Vec::new() };
        raw.until("* OK");
        raw.send("L LOGIN alice Secr3t\r\n");
        let text = raw.until("L OK");
        assert!(text.contains("L OK"), "{text}");
        raw
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// Reads until `needle` appears at the start of a line; returns
    /// everything up to and including that line.
    fn until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            let found =
                text.find(&format!("\n{needle}")).map(|i| i + 1).or(text.starts_with(needle).then_some(0));
            if let Some(start) = found {
                if let Some(end) = text[start..].find("\r\n") {
                    let upto = start + end + 2;
                    self.buf.drain(..upto);
                    return text[..upto].to_string();
                }
            }
            if Instant::now() > deadline {
                panic!("no {needle:?} in {text:?}");
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed waiting for {needle:?}: {text:?}"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn cmd(&mut self, tag: &str, text: &str) -> String {
        self.send(&format!("{tag} {text}\r\n"));
        self.until(&format!("{tag} "))
    }

    fn append(&mut self, tag: &str, mailbox: &str, msg: &str) -> String {
        self.send(&format!("{tag} APPEND {mailbox} {{{}+}}\r\n{msg}\r\n", msg.len()));
        self.until(&format!("{tag} "))
    }
}

const MSG: &str = "From: a@example.com\r\nSubject: test\r\n\r\nhello\r\n";

#[test]
fn idle_sees_other_sessions_and_expunges_wait_for_noop() {
    let s = start("imap-idle", "maildir:~/Maildir");
    let mut a = Raw::login(s.imap);
    let mut b = Raw::login(s.imap);
    a.append("A1", "INBOX", MSG);
    a.append("A2", "INBOX", MSG);
    let sel = a.cmd("A3", "SELECT INBOX");
    assert!(sel.contains("* 2 EXISTS"), "{sel}");
    b.cmd("B1", "SELECT INBOX");

    // IDLE: another session's APPEND shows up within a few seconds.
    a.send("A4 IDLE\r\n");
    a.until("+ idling");
    let started = Instant::now();
    b.append("B2", "INBOX", MSG);
    let text = a.until("* 3 EXISTS");
    assert!(started.elapsed() < Duration::from_secs(5), "{text}");
    // Flag changes from B arrive in IDLE too.
    b.cmd("B3", "STORE 1 +FLAGS (\\Flagged)");
    let text = a.until("* 1 FETCH");
    assert!(text.contains("\\Flagged"), "{text}");
    a.send("DONE\r\n");
    let done = a.until("A4 ");
    assert!(done.contains("A4 OK Idle completed"), "{done}");

    // B expunges message 2: A's FETCH must not report it (RFC 3501
    // §7.4.1), A's NOOP does, and then the numbers shift.
    b.cmd("B4", "STORE 2 +FLAGS (\\Deleted)");
    let e = b.cmd("B5", "EXPUNGE");
    assert!(e.contains("* 2 EXPUNGE"), "{e}");
    let f = a.cmd("A5", "FETCH 1:3 (UID)");
    assert!(!f.contains("EXPUNGE"), "EXPUNGE during FETCH: {f}");
    let n = a.cmd("A6", "NOOP");
    assert!(n.contains("* 2 EXPUNGE"), "{n}");
    let f = a.cmd("A7", "FETCH 1:* (UID)");
    assert!(f.contains("* 2 FETCH (UID 3)") && !f.contains("* 3 FETCH"), "{f}");
    a.cmd("A8", "LOGOUT");
}

#[test]
fn condstore_and_qresync_flow() {
    let s = start("imap-qresync", "sdbox:~/sdbox");
    let mut c = Raw::login(s.imap);
    for i in 0..5 {
        c.append(&format!("P{i}"), "INBOX", MSG);
    }
    let e = c.cmd("E1", "ENABLE QRESYNC");
    assert!(e.contains("* ENABLED QRESYNC"), "{e}");
    let sel = c.cmd("S1", "SELECT INBOX (CONDSTORE)");
    let validity: u32 = sel
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{sel}"));
    let modseq: u64 = sel
        .split("[HIGHESTMODSEQ ")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{sel}"));
    // Changes after that modseq: a flag change on UID 2, UIDs 3 and 4 gone.
    let st = c.cmd("C1", "UID STORE 2 +FLAGS.SILENT (\\Seen)");
    assert!(st.contains("C1 OK"), "{st}");
    // UNCHANGEDSINCE with an old modseq fails for the changed message.
    let st = c.cmd("C2", &format!("UID STORE 2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)"));
    assert!(st.contains("C2 OK [MODIFIED 2]"), "{st}");
    c.cmd("C3", "UID STORE 3:4 +FLAGS (\\Deleted)");
    let x = c.cmd("C4", "UID EXPUNGE 3:4");
    assert!(x.contains("* VANISHED 3:4"), "{x}");
    c.cmd("C5", "UNSELECT");
    let sel = c.cmd("S2", &format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:5))"));
    assert!(sel.contains("* VANISHED (EARLIER) 3:4"), "{sel}");
    assert!(sel.contains("FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("), "{sel}");
    assert!(!sel.contains("UID 1 FLAGS"), "unchanged message reported: {sel}");
    let f = c.cmd("F1", &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"));
    assert!(f.contains("* VANISHED (EARLIER) 3:4") && f.contains("UID 2"), "{f}");
    // A UIDVALIDITY past 32 bits is invalid, not its truncation.
    let wrapped = u64::from(validity) + (1 << 32);
    let bad = c.cmd("S3", &format!("SELECT INBOX (QRESYNC ({wrapped} {modseq} 1:5))"));
    assert!(bad.contains("S3 BAD Error in IMAP command SELECT: Invalid QRESYNC parameters"), "{bad}");
    c.cmd("Z", "LOGOUT");
}

#[test]
fn bad_input_has_dovecots_wording() {
    let s = start("imap-bad", "maildir:~/Maildir");
    let mut c = Raw::login(s.imap);
    let cases = [
        ("b1", "SELECT", "b1 BAD Error in IMAP command SELECT: Invalid arguments"),
        ("b2", "FETCH 1 FLAGS", "b2 BAD No mailbox selected"),
        ("b3", "LIST", "b3 BAD Error in IMAP command LIST: Invalid reference"),
        ("b4", "STATUS INBOX", "b4 BAD Error in IMAP command STATUS: Missing arguments"),
        ("b5", "STATUS INBOX (FOO)", "b5 BAD Error in IMAP command STATUS: Invalid status item FOO"),
        ("b6", "UID FOO", "b6 BAD Error in IMAP command UID FOO: Unknown command"),
        ("b7", "SELECT (", "b7 BAD Error in IMAP command SELECT: Missing ')'"),
        ("b8", "SELECT \"abc", "b8 BAD Error in IMAP command SELECT: Missing '\"'"),
        ("b9", "DELETE Nope", "b9 NO [NONEXISTENT] Mailbox doesn't exist: Nope"),
    ];
    for (tag, cmd, want) in cases {
        let got = c.cmd(tag, cmd);
        assert!(got.contains(want), "{cmd}: {got}");
    }
    c.cmd("s", "SELECT INBOX");
    let got = c.cmd("f", "FETCH x FLAGS");
    assert!(got.contains("f BAD Error in IMAP command FETCH: Invalid messageset"), "{got}");
    let got = c.cmd("g", "SEARCH FOO");
    assert!(got.contains("g BAD Error in IMAP command SEARCH: Unknown argument FOO"), "{got}");
    c.send("* NOOP\r\n");
    let got = c.until("* BAD");
    assert!(got.contains("* BAD Error in IMAP tag: Invalid tag"), "{got}");
    let long = format!("t SELECT {}\r\n", "x".repeat(70_000));
    c.send(&long);
    let got = c.until("t ");
    assert!(got.contains("t BAD Error in IMAP command SELECT: Too long argument"), "{got}");

    // 1,000 pipelined commands, answered in order.
    let mut batch = String::new();
    for i in 0..1000 {
        batch.push_str(&format!("p{i} NOOP\r\n"));
    }
    c.send(&batch);
    let text = c.until("p999 ");
    let tags: Vec<&str> =
        text.lines().filter(|l| l.starts_with('p')).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(tags.len(), 1000);
    assert!(tags.iter().enumerate().all(|(i, t)| *t == format!("p{i}")), "out of order");
}

#[test]
fn huge_literal_outside_append_is_refused() {
    let s = start("imap-biglit", "maildir:~/Maildir");
    let mut c = Raw::login(s.imap);
    c.send("a SELECT {10485760+}\r\n");
    let got = c.until("* BYE");
    assert!(got.contains("* BYE Literal size too large"), "{got}");
    assert!(
        s.dovecot.wait_log("Disconnected: Literal size too large", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
}

fn vm_rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS").split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn a_client_that_never_reads_stays_bounded() {
    let mut s = start("imap-noread", "maildir:~/Maildir");
    let mut c = Raw::login(s.imap);
    let body = "x".repeat(100_000);
    let msg = format!("Subject: big\r\n\r\n{body}\r\n");
    c.append("a", "INBOX", &msg);
    c.cmd("s", "SELECT INBOX");
    let pid = s
        .dovecot
        .children()
        .into_iter()
        .find(|p| cmdline(*p).starts_with("dovecot/imap\0") || cmdline(*p).starts_with("dovecot/imap "))
        .or_else(|| {
            s.dovecot
                .children()
                .into_iter()
                .find(|p| cmdline(*p).starts_with("dovecot/imap") && !cmdline(*p).contains("login"))
        })
        .expect("imap process");
    let before = vm_rss_kb(pid);
    // 2,000 FETCHes of 100 KB each (200 MB of output) that are never read.
    c.stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let one = "f FETCH 1 BODY.PEEK[]\r\n".repeat(100);
    for _ in 0..20 {
        if c.stream.write_all(one.as_bytes()).is_err() {
            break;
        }
    }
    // Watch the process for a while: it must never grow by 20 MB.
    let grew = wait_for(Duration::from_secs(3), || vm_rss_kb(pid) > before + 20_000);
    let after = vm_rss_kb(pid);
    assert!(!grew, "VmRSS grew from {before} kB to {after} kB");
    assert!(alive(pid));
}

/// curl's IMAP client (issue 7 acceptance): APPEND by upload, LIST,
/// FETCH by UID and SEARCH through imap:// URLs.
#[test]
fn curl_appends_lists_fetches_and_searches() {
    let s = start("imap-curl", "maildir:~/Maildir");
    let base = format!("imap://127.0.0.1:{}", s.imap);
    let curl = |args: &[&str]| -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-u", "alice:Secr3t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.dovecot.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir = std::path::PathBuf::from(format!("/tmp/dovecote-test-imap-curl-{}-msgs", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, subject) in ["first note", "curl target", "last note"].iter().enumerate() {
        let file = dir.join(format!("m{i}"));
        std::fs::write(&file, format!("From: bob@example.org\r\nSubject: {subject}\r\n\r\nbody {i}\r\n"))
            .unwrap();
        curl(&["-T", file.to_str().unwrap(), &format!("{base}/INBOX")]);
    }
    let list = curl(&[&format!("{base}/")]);
    assert!(list.contains("INBOX"), "{list}");
    let fetched = curl(&[&format!("{base}/INBOX;UID=2")]);
    assert!(fetched.contains("Subject: curl target") && fetched.contains("body 1"), "{fetched}");
    let found = curl(&[&format!("{base}/INBOX?SUBJECT%20target")]);
    assert!(found.trim_end().ends_with("* SEARCH 2"), "{found}");
    let all = curl(&[&format!("{base}/INBOX?ALL")]);
    assert!(all.trim_end().ends_with("* SEARCH 1 2 3"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
