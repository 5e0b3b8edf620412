//! LMTP under the real master (issue 8, scope 2): Python's smtplib.LMTP
//! over the unix socket and TCP, per-recipient replies, the LHLO text of
//! Dovecot 2.3, STARTTLS then delivery, the stored message with Dovecot's
//! added headers and owned by vmail, and bad input (garbage, DATA without
//! RCPT, bare LF and NUL bytes, a client dropping mid-DATA, SIZE, a 100 MB
//! message over the size limit).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Every service binary, built once for all test files (common::bin_dir).
fn build_services() {
    bin_dir();
}

/// The exact LHLO reply of Debian's Dovecot 2.3.19 lmtp (ssl = no),
/// captured from `/usr/lib/dovecot/lmtp` with `hostname = mx.test`.
const DOVECOT_LHLO: &str =
    "250-mx.test\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n";

pub struct Setup {
    pub dovecot: Instance,
    pub port: u16,
    pub files: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.files);
    }
}

fn make_certs(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mx.test",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts dovecot with lmtp on the unix socket and a TCP port; users
/// alice and bob (vmail) in a passwd-file userdb, homes under `files`.
pub fn start(name: &str, extra: &str) -> Setup {
    build_services();
    let files = PathBuf::from(format!("/tmp/dovecote-test-{name}-{}-files", std::process::id()));
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(files.join("home")).unwrap();
    make_certs(&files);
    let (vuid, vgid) = (uid_of("vmail"), gid_of("vmail"));
    nix::unistd::chown(&files.join("home"), Some(nix::unistd::Uid::from_raw(vuid)), None).unwrap();
    let h = files.join("home");
    std::fs::write(
        files.join("users"),
        format!(
            "alice:{{PLAIN}}pw:{vuid}:{vgid}::{h}/alice::\nbob:{{PLAIN}}pw:{vuid}:{vgid}::{h}/bob::\n\
             root:{{PLAIN}}pw:0:0::{h}/root::\n",
            h = h.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let body = format!(
        "protocols = lmtp\nhostname = mx.test\n\
         passdb {{\n  driver = passwd-file\n  args = {f}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {f}/users\n}}\n\
         mail_location = maildir:~/Maildir\nfirst_valid_uid = 100\n{extra}\n\
         service lmtp {{\n  inet_listener lmtp {{\n    port = {port}\n  }}\n}}\n",
        f = files.display()
    );
    let dovecot = Instance::start(name, &body);
    dovecot.wait_sockets(&["auth-userdb", "lmtp"]);
    Setup { dovecot, port, files }
}

impl Setup {
    pub fn new_mail(&self, user: &str) -> Vec<PathBuf> {
        let dir = self.files.join("home").join(user).join("Maildir/new");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn socket(&self) -> PathBuf {
        self.dovecot.base_dir.join("lmtp")
    }
}

pub fn python(script: &str) -> String {
    let out = Command::new("python3").arg("-c").arg(script).output().expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Talks raw LMTP over TCP: sends `input`, reads until `replies` lines
/// arrived after the greeting.
pub fn converse(port: u16, input: &[u8], replies: usize) -> String {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let greeting = read_line(&mut s);
    assert_eq!(greeting.trim_end(), "220 mx.test Dovecot ready.");
    s.write_all(input).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches("\r\n").count() < replies {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn smtplib_over_the_unix_socket_two_recipients_one_unknown() {
    let s = start("lmtp-unix", "");
    let out = python(&format!(
        "import smtplib\n\
         c = smtplib.LMTP({sock:?})\n\
         code, msg = c.ehlo_or_helo_if_needed() or (0, b'')\n\
         print('LHLO', c.ehlo_resp.decode().replace(chr(10), '|'))\n\
         refused = c.sendmail('sender@example.org', ['alice', 'nobody'], 'Subject: hello\\r\\nMessage-ID: <m1@x>\\r\\n\\r\\nbody line\\r\\n.dot\\r\\n')\n\
         print('REFUSED', refused)\n\
         print('QUIT', c.quit())\n",
        sock = s.socket().display().to_string()
    ));
    assert!(out.contains("LHLO mx.test|8BITMIME|CHUNKING|ENHANCEDSTATUSCODES|PIPELINING\n"), "{out}");
    assert!(
        out.contains("REFUSED {'nobody': (550, b\"5.1.1 <nobody> User doesn't exist: nobody\")}"),
        "{out}"
    );
    assert!(out.contains("QUIT (221, b'2.0.0 Bye')"), "{out}");
    let mail = s.new_mail("alice");
    assert_eq!(mail.len(), 1, "exactly one copy for alice");
    let meta = std::fs::metadata(&mail[0]).unwrap();
    assert_eq!(meta.uid(), uid_of("vmail"), "written as the recipient's uid");
    assert_eq!(meta.gid(), gid_of("vmail"));
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    let prefix = "Return-Path: <sender@example.org>\nDelivered-To: alice\nReceived: from ";
    assert!(text.starts_with(prefix), "{text}");
    assert!(text.contains("\n\tby mx.test with LMTP\n\tid "), "{text}");
    assert!(text.contains("\n\t(envelope-from <sender@example.org>)\n\tfor <alice>; "), "{text}");
    assert!(text.ends_with("Subject: hello\nMessage-ID: <m1@x>\n\nbody line\n.dot\n"), "{text}");
    assert!(s.dovecot.wait_log("lmtp(alice)", Duration::from_secs(5)));
    let log = s.dovecot.log_text();
    assert!(log.contains("msgid=<m1@x>: saved mail to INBOX"), "{log}");
    assert!(log.contains("Connect from local"), "{log}");
    // The index knows the message: dovecot-uidlist lists it.
    let uidlist =
        std::fs::read_to_string(s.files.join("home/alice/Maildir/dovecot-uidlist")).unwrap_or_default();
    let base = mail[0].file_name().unwrap().to_string_lossy().split(':').next().unwrap().to_string();
    assert!(uidlist.contains(&base), "uidlist:\n{uidlist}");
}

#[test]
fn tcp_pipelined_two_recipients_lhlo_and_bdat() {
    let s = start("lmtp-tcp", "");
    let lhlo = converse(s.port, b"LHLO client.example\r\n", 5);
    assert_eq!(lhlo, DOVECOT_LHLO);
    let out = converse(
        s.port,
        b"LHLO client.example\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n\
          Subject: two\r\n\r\nhi\r\n.\r\nQUIT\r\n",
        5 + 5 + 2 + 1,
    );
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(&lines[5..8], &["250 2.1.0 OK", "250 2.1.5 OK", "250 2.1.5 OK"], "{out}");
    assert_eq!(lines[8], "354 OK");
    assert!(lines[9].starts_with("250 2.0.0 <alice> ") && lines[9].ends_with(" Saved"), "{out}");
    assert!(lines[10].starts_with("250 2.0.0 <bob> ") && lines[10].ends_with(":R2 Saved"), "{out}");
    assert_eq!(lines[11], "221 2.0.0 Bye");
    for user in ["alice", "bob"] {
        let mail = s.new_mail(user);
        assert_eq!(mail.len(), 1, "{user}");
        let text = std::fs::read_to_string(&mail[0]).unwrap();
        // Several recipients: no Delivered-To and no `for`, as Dovecot.
        assert!(
            text.starts_with("Return-Path: <s@x>\nReceived: from client.example ([127.0.0.1])\n"),
            "{text}"
        );
        assert!(!text.contains("Delivered-To"), "{text}");
        assert!(text.ends_with("Subject: two\n\nhi\n"), "{text}");
        // The same bytes for both (same uid): bob's copy is a hard link to
        // alice's, as Dovecot's lmtp makes it.
        assert_eq!(std::fs::metadata(&mail[0]).unwrap().nlink(), 2, "{user}: linked copy");
    }
    let out = converse(s.port, b"MAIL FROM:<>\r\nRCPT TO:<bob>\r\nBDAT 6\r\nline\r\nBDAT 4 LAST\r\nend\n", 4);
    assert!(out.contains("250 2.0.0 Added 6 octets\r\n250 2.0.0 <bob> "), "{out}");
    assert_eq!(s.new_mail("bob").len(), 2);
}

#[test]
fn starttls_then_delivery() {
    let s_dir_extra = "ssl = yes\nssl_cert = <FILES/cert.pem\nssl_key = <FILES/key.pem\n";
    // The cert files live in the files dir, which `start` creates first.
    let name = "lmtp-tls";
    let files = format!("/tmp/dovecote-test-{name}-{}-files", std::process::id());
    let s = start(name, &s_dir_extra.replace("FILES", &files));
    let out = python(&format!(
        "import smtplib, ssl\n\
         c = smtplib.LMTP('127.0.0.1', {port})\n\
         c.ehlo_or_helo_if_needed()\n\
         print('HAS', c.has_extn('starttls'))\n\
         ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         print('TLS', c.starttls(context=ctx))\n\
         c.ehlo_or_helo_if_needed()\n\
         print('AFTER', c.has_extn('starttls'))\n\
         print('REFUSED', c.sendmail('a@b', ['bob'], 'Subject: secret\\r\\n\\r\\nover tls\\r\\n'))\n\
         c.quit()\n",
        port = s.port
    ));
    assert!(out.contains("HAS True"), "{out}");
    assert!(out.contains("TLS (220, b'2.0.0 Begin TLS negotiation now.')"), "{out}");
    assert!(out.contains("AFTER False"), "{out}");
    assert!(out.contains("REFUSED {}"), "{out}");
    let mail = s.new_mail("bob");
    assert_eq!(mail.len(), 1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("\tby mx.test with LMTPS\n"), "{text}");
    assert!(text.ends_with("Subject: secret\n\nover tls\n"), "{text}");
}

#[test]
fn bad_input_is_answered_and_nothing_half_delivered() {
    let s = start("lmtp-bad", "plugin {\n  quota_max_mail_size = 1k\n}\n");
    let out = converse(
        s.port,
        b"\x00\xff garbage\r\nEHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\nRCPT TO:<nobody>\r\nDATA\r\nRSET\r\n",
        7,
    );
    assert_eq!(
        out,
        "500 5.5.1 Unknown command\r\n500 5.5.1 Unknown command\r\n250 2.1.0 OK\r\n503 5.5.0 No valid recipients\r\n\
         550 5.1.1 <nobody> User doesn't exist: nobody\r\n503 5.5.0 No valid recipients\r\n250 2.0.0 OK\r\n"
    );
    // A client that drops in mid-DATA: nothing is delivered.
    {
        let mut c = connect(s.port);
        read_line(&mut c);
        c.write_all(b"MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nSubject: cut\r\n\r\nhalf a mess")
            .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..3 {
            read_line(&mut c);
        }
    }
    // Bare LF line ends and a NUL byte are stored (LF-terminated), not refused.
    let out = converse(s.port, b"MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nX: y\n\nnul\0here\n.\r\n", 4);
    assert!(out.ends_with(" Saved\r\n"), "{out}");
    // Over quota_max_mail_size: SIZE refused up front, or 552 after DATA.
    let lhlo = converse(s.port, b"LHLO x\r\n", 6);
    assert!(lhlo.contains("250 SIZE 1024\r\n"), "{lhlo}");
    let out = converse(s.port, b"MAIL FROM:<a@b> SIZE=2000\r\n", 1);
    assert_eq!(out, "552 5.3.4 Message size exceeds administrative limit\r\n");
    let mut big = b"MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\n".to_vec();
    big.extend(
        std::iter::repeat_n(b"0123456789012345678901234567890123456789\r\n".as_slice(), 100).flatten(),
    );
    big.extend_from_slice(b".\r\nNOOP\r\n");
    let out = converse(s.port, &big, 5);
    assert!(
        out.ends_with("552 5.2.3 <alice> Message size exceeds administrative limit\r\n250 2.0.0 OK\r\n"),
        "{out}"
    );
    let mail = s.new_mail("alice");
    assert_eq!(mail.len(), 1, "only the NUL message was delivered");
    let text = std::fs::read(&mail[0]).unwrap();
    assert!(text.ends_with(b"X: y\n\nnul\0here\n"));
    // tmp/ holds no leftovers from the dropped or refused messages.
    let tmp = s.files.join("home/alice/Maildir/tmp");
    assert_eq!(std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0), 0);
    // The service still serves.
    assert_eq!(converse(s.port, b"NOOP\r\n", 1), "250 2.0.0 OK\r\n");
}

/// A 100 MB message over `quota_max_mail_size`, streamed with DATA and no
/// SIZE parameter: lmtp reads it to the final dot without keeping it (its
/// peak memory stays far below the message), answers `552 5.2.3` for each
/// recipient, delivers nothing and goes on serving the connection.
#[test]
fn a_100_mb_message_over_the_size_limit_is_refused_without_being_buffered() {
    let s = start("lmtp-huge", "plugin {\n  quota_max_mail_size = 1M\n}\n");
    let mut c = connect(s.port);
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    assert_eq!(read_line(&mut c).trim_end(), "220 mx.test Dovecot ready.");
    c.write_all(b"MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n").unwrap();
    let replies: Vec<String> = (0..4).map(|_| read_line(&mut c).trim_end().to_string()).collect();
    assert_eq!(replies, ["250 2.1.0 OK", "250 2.1.5 OK", "250 2.1.5 OK", "354 OK"]);
    let lmtp: Vec<u32> = children(s.dovecot.pid()).into_iter().filter(|p| comm(*p) == "lmtp").collect();
    assert!(!lmtp.is_empty(), "an lmtp process serves the connection");
    let mut megabyte = Vec::with_capacity(1 << 20);
    megabyte.extend_from_slice(b"Subject: huge\r\n\r\n");
    while megabyte.len() + 1000 <= 1 << 20 {
        megabyte.extend(std::iter::repeat_n(b'x', 998));
        megabyte.extend_from_slice(b"\r\n");
    }
    for _ in 0..100 {
        c.write_all(&megabyte).unwrap();
    }
    c.write_all(b".\r\nNOOP\r\n").unwrap();
    let replies: Vec<String> = (0..3).map(|_| read_line(&mut c).trim_end().to_string()).collect();
    assert_eq!(
        replies,
        [
            "552 5.2.3 <alice> Message size exceeds administrative limit",
            "552 5.2.3 <bob> Message size exceeds administrative limit",
            "250 2.0.0 OK",
        ]
    );
    // Peak resident memory of the serving process(es): the limit (1 MB)
    // plus read buffers and the program, nowhere near 100 MB.
    for pid in &lmtp {
        let peak_kb: u64 = status_field(*pid, "VmHWM").trim_end_matches(" kB").parse().unwrap_or(0);
        assert!(peak_kb > 0 && peak_kb < 48 * 1024, "lmtp {pid} peaked at {peak_kb} kB");
    }
    for user in ["alice", "bob"] {
        assert!(s.new_mail(user).is_empty(), "{user}: nothing delivered");
        let tmp = s.files.join("home").join(user).join("Maildir/tmp");
        assert_eq!(std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0), 0, "{user}: no leftovers");
    }
    // The same connection still delivers.
    c.write_all(b"MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nSubject: small\r\n\r\nok\r\n.\r\n").unwrap();
    let replies: Vec<String> = (0..4).map(|_| read_line(&mut c).trim_end().to_string()).collect();
    assert!(replies[3].starts_with("250 2.0.0 <alice> ") && replies[3].ends_with(" Saved"), "{replies:?}");
    assert_eq!(s.new_mail("alice").len(), 1);
}

#[test]
fn uid_below_first_valid_uid_is_a_temporary_failure() {
    let s = start("lmtp-uid", "");
    let out = converse(s.port, b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\n", 2);
    assert_eq!(out, "250 2.1.0 OK\r\n451 4.3.0 <root> Temporary internal error\r\n");
    assert!(s.dovecot.wait_log("first_valid_uid", Duration::from_secs(5)), "{}", s.dovecot.log_text());
}

fn lda(s: &Setup, args: &[&str], message: &[u8]) -> (i32, String) {
    use std::process::Stdio;
    let mut child = Command::new(bin_dir().join("dovecot-lda"))
        .arg("-c")
        .arg(&s.dovecot.conf)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dovecot-lda");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn dovecot_lda_delivers_and_exits_with_sendmail_codes() {
    let s = start("lmtp-lda", "");
    let (code, err) = lda(
        &s,
        &["-d", "alice", "-f", "s@x"],
        b"From s@x  Wed Nov 25 03:00:00 2026\r\nSubject: lda\r\n\r\nvia lda\r\n",
    );
    assert_eq!(code, 0, "{err}");
    let mail = s.new_mail("alice");
    assert_eq!(mail.len(), 1);
    assert_eq!(std::fs::metadata(&mail[0]).unwrap().uid(), uid_of("vmail"));
    assert_eq!(std::fs::read_to_string(&mail[0]).unwrap(), "Subject: lda\n\nvia lda\n");
    // -m into a mailbox that does not exist falls back to INBOX; with
    // lda_mailbox_autocreate it is created.
    let (code, err) =
        lda(&s, &["-d", "alice", "-m", "Lists", "-o", "lda_mailbox_autocreate=yes"], b"Subject: m\n\nx\n");
    assert_eq!(code, 0, "{err}");
    let lists = s.files.join("home/alice/Maildir/.Lists/new");
    assert_eq!(std::fs::read_dir(&lists).map(|d| d.count()).unwrap_or(0), 1, "{}", lists.display());
    let (code, err) = lda(&s, &["-d", "nobody"], b"Subject: x\n\nx\n");
    assert_eq!(code, 67, "EX_NOUSER: {err}");
    assert!(err.contains("User nobody doesn't exist"), "{err}");
    let (code, err) = lda(&s, &["-d", "alice", "-o", "base_dir=/nonexistent-dovecote"], b"Subject: x\n\nx\n");
    assert_eq!(code, 75, "EX_TEMPFAIL when auth is unreachable: {err}");
    let (code, _) = lda(&s, &["-z"], b"");
    assert_eq!(code, 64);
    assert_eq!(s.new_mail("alice").len(), 1, "failed runs delivered nothing");
}
