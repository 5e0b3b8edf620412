//! The login → post-login handoff under a real master (issue 5, scope 3):
//! our imap-login/pop3-login hand the client to our `imap`/`pop3`, which
//! check the login with auth-master, drop to vmail and open the Maildir.
//! Python's imaplib and poplib, pipelining after LOGIN, a forged handoff
//! straight to `login/imap`, and a uid below first_valid_uid.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use dovecote_auth::protocol::master_conn::AuthMasterConnection;
use dovecote_login::handoff::{self, HandoffRecord};

/// Every service binary, built once for all test files (common::bin_dir).
fn build_services() {
    bin_dir();
}

struct Setup {
    dovecot: Instance,
    imap: u16,
    pop3: u16,
}

fn start(name: &str, extra: &str) -> Setup {
    build_services();
    // Instance::start recreates the directory: same path, files after.
    let dir = std::path::PathBuf::from(format!("/tmp/dovecote-test-{name}-{}", std::process::id()));
    let (imap, pop3) = (free_port(), free_port());
    let body = format!(
        "protocols = imap pop3\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = maildir:~/Maildir\n{extra}\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = {pop3}\n }}\n inet_listener pop3s {{\n port = 0\n }}\n}}\n",
        d = dir.display()
    );
    let dovecot = Instance::start(name, &body);
    vmail_homes_and_passwd(&dir, "alice:{PLAIN}Secr3t::::::\n");
    dovecot.wait_sockets(&["auth-master", "login/login", "login/imap", "login/pop3"]);
    // Have the auth process up (and answering) before the first login.
    let mut auth = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            auth = AuthMasterConnection::connect(&dovecot.base_dir.join("auth-master")).ok();
            auth.is_some()
        }),
        "auth-master not answering"
    );
    Setup { dovecot, imap, pop3 }
}

/// Mail processes (`dovecot/imap`, `dovecot/pop3`, not the login ones).
fn mail_processes(dovecot: &mut Instance, title: &str) -> Vec<u32> {
    dovecot
        .children()
        .into_iter()
        .filter(|p| {
            let c = cmdline(*p);
            c.split(['\0', ' ']).next() == Some(title)
        })
        .collect()
}

fn read_until(stream: &mut std::net::TcpStream, needle: &str) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn imaplib_login_runs_as_vmail_and_the_login_process_is_gone() {
    let mut s = start("postlogin-imap", "");
    let script = format!(
        "import imaplib, sys\n\
         c = imaplib.IMAP4('127.0.0.1', {port})\n\
         typ, data = c.login('alice', 'Secr3t'); print(typ, data[0].decode())\n\
         print(c.noop()[0]); sys.stdout.flush()\n\
         sys.stdin.readline()\n\
         print(c.logout()[0])\n",
        port = s.imap
    );
    let mut py = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK ") && line.contains("Logged in"), "{line:?}\n{}", s.dovecot.log_text());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "OK");

    let imap = mail_processes(&mut s.dovecot, "dovecot/imap");
    assert_eq!(imap.len(), 1, "one imap process: {imap:?}");
    let (uid, gid) = (uid_of("vmail").to_string(), gid_of("vmail").to_string());
    let uids: Vec<String> = status_field(imap[0], "Uid").split_whitespace().map(str::to_owned).collect();
    let gids: Vec<String> = status_field(imap[0], "Gid").split_whitespace().map(str::to_owned).collect();
    assert!(uids.iter().all(|u| *u == uid), "Uid: {uids:?}");
    assert!(gids.iter().all(|g| *g == gid), "Gid: {gids:?}");
    // Plain connection: the (service_count = 1) login process has exited.
    assert!(
        wait_for(Duration::from_secs(5), || mail_processes(&mut s.dovecot, "dovecot/imap-login").is_empty()),
        "imap-login still running"
    );
    assert!(s.dovecot.dir.join("home/alice/Maildir").is_dir(), "Maildir created");

    py.stdin.take().unwrap().write_all(b"\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "BYE");
    assert!(py.wait().unwrap().success());
    assert!(s.dovecot.wait_log("imap(alice)", Duration::from_secs(5)));
    assert!(
        s.dovecot.wait_log("Disconnected: Logged out in=", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
}

#[test]
fn pipelined_commands_after_login_are_answered() {
    let s = start("postlogin-pipe", "");
    let mut c = connect(s.imap);
    let greeting = read_until(&mut c, "\r\n");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    c.write_all(b"a LOGIN alice Secr3t\r\nb NOOP\r\nc FOO\r\nd CAPABILITY\r\n").unwrap();
    let text = read_until(&mut c, "d OK");
    assert!(text.contains("a OK [CAPABILITY IMAP4rev1"), "{text}");
    assert!(text.contains("] Logged in\r\n"), "{text}");
    assert!(text.contains("b OK NOOP completed"), "{text}");
    assert!(text.contains("c BAD Error in IMAP command FOO: Unknown command ("), "{text}");
    assert!(text.contains("* CAPABILITY IMAP4rev1"), "{text}");
    c.write_all(b"e LOGOUT\r\n").unwrap();
    let text = read_until(&mut c, "e OK");
    assert!(text.contains("* BYE Logging out\r\ne OK Logout completed"), "{text}");
}

#[test]
fn poplib_login_stat_quit() {
    let s = start("postlogin-pop3", "");
    // Two messages in the INBOX beforehand (CRLF sizes: 23 + 29).
    let maildir = s.dovecot.dir.join("home/alice/Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("new/1.M1P1.host"), "Subject: one\n\nhello\n").unwrap();
    std::fs::write(maildir.join("new/2.M2P2.host"), "Subject: two\n\nhello again\n").unwrap();
    Command::new("chown").args(["-R", "vmail:vmail"]).arg(s.dovecot.dir.join("home")).status().unwrap();
    let script = format!(
        "import poplib\n\
         p = poplib.POP3('127.0.0.1', {port})\n\
         p.user('alice'); print(p.pass_('Secr3t').decode())\n\
         print(p.stat())\n\
         print(p.quit().decode())\n",
        port = s.pop3
    );
    let out = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}\n{}", String::from_utf8_lossy(&out.stderr), s.dovecot.log_text());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["+OK Logged in.", "(2, 52)", "+OK Logging out."], "{}", s.dovecot.log_text());
    assert!(s.dovecot.wait_log("pop3(alice)", Duration::from_secs(5)));
}

#[test]
fn forged_handoff_is_refused_and_logged() {
    let s = start("postlogin-forged", "");
    let spid = AuthMasterConnection::connect(&s.dovecot.base_dir.join("auth-master")).unwrap().spid();
    let (mine, theirs) = UnixStream::pair().unwrap();
    let record = HandoffRecord {
        auth_pid: spid,
        auth_id: 1,
        cookie: *b"not-a-real-cooki",
        login_pid: std::process::id(),
        remote: Some("192.0.2.7:51234".parse().unwrap()),
        local: Some("127.0.0.1:143".parse().unwrap()),
        flags: 0,
        user: "alice".into(),
        session_id: "forgedsession123".into(),
        prefix: b"0a".to_vec(),
        client_input: b"b NOOP\r\n".to_vec(),
    };
    let conn = handoff::send(
        &s.dovecot.base_dir.join("login/imap"),
        &record,
        theirs.as_fd(),
        Duration::from_secs(10),
    )
    .unwrap();
    drop(theirs);
    let mut reply = String::new();
    BufReader::new(&conn).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("FAIL\t"), "{reply:?}");
    // Nothing reached the client.
    mine.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!((&mine).read(&mut buf), Ok(0)), "client got data");
    assert!(s.dovecot.wait_log("Internal auth failure", Duration::from_secs(5)), "{}", s.dovecot.log_text());
}

#[test]
fn uid_below_first_valid_uid_is_refused() {
    let vmail = uid_of("vmail");
    let s = start("postlogin-uid", &format!("first_valid_uid = {}\n", vmail + 1));
    let mut c = connect(s.imap);
    read_until(&mut c, "\r\n");
    c.write_all(b"a LOGIN alice Secr3t\r\n").unwrap();
    let text = read_until(&mut c, "\r\n");
    assert!(!text.contains("Logged in"), "{text}");
    let needle = format!(
        "Mail access for users with UID {vmail} not permitted, see first_valid_uid in config file (uid from userdb lookup)."
    );
    assert!(s.dovecot.wait_log(&needle, Duration::from_secs(5)), "{}", s.dovecot.log_text());
}
