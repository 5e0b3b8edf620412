//! anvil under the real master (issue 5): `mail_max_userip_connections`
//! refuses a login past the limit with Dovecot's reply and log line,
//! counts per service, frees a slot when a session logs out or its imap
//! process is killed; and the auth penalty delays repeated failures from
//! one IP and is reset by a success.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

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
    vmail_homes_and_passwd(&dir, "alice:{PLAIN}Secr3t::::::\nbob:{PLAIN}B0b::::::\n");
    dovecot.wait_sockets(&[
        "auth-master",
        "login/login",
        "login/imap",
        "login/pop3",
        "anvil",
        "anvil-auth-penalty",
    ]);
    Setup { dovecot, imap, pop3 }
}

/// Connects, reads the greeting, sends LOGIN; returns the stream, the
/// tagged reply and how long the reply took.
fn imap_login(port: u16, user: &str, pass: &str) -> (TcpStream, String, Duration) {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let greeting = read_line(&mut s);
    assert!(greeting.starts_with("* OK"), "{greeting:?}");
    let started = Instant::now();
    s.write_all(format!("a LOGIN {user} {pass}\r\n").as_bytes()).unwrap();
    let mut line = read_line(&mut s);
    while line.starts_with('*') {
        line = read_line(&mut s);
    }
    (s, line.trim_end().to_owned(), started.elapsed())
}

fn pop3_login(port: u16, user: &str, pass: &str) -> (TcpStream, String) {
    let mut s = connect(port);
    let greeting = read_line(&mut s);
    assert!(greeting.starts_with("+OK"), "{greeting:?}");
    let ok = ask(&mut s, &format!("USER {user}\r"));
    assert!(ok.starts_with("+OK"), "{ok:?}");
    let reply = ask(&mut s, &format!("PASS {pass}\r"));
    (s, reply.trim_end().to_owned())
}

fn logout(mut s: TcpStream) {
    let _ = s.write_all(b"z LOGOUT\r\n");
    let mut line = read_line(&mut s);
    while line.starts_with('*') {
        line = read_line(&mut s);
    }
    assert!(line.starts_with("z OK"), "{line:?}");
}

/// Whether the peer closed the connection (EOF within the timeout).
fn closed(s: &mut TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0))
}

const LIMIT_REPLY: &str =
    "a NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)";

/// Logs in until a login succeeds (the previous session's DISCONNECT
/// reaches anvil asynchronously).
fn login_eventually(port: u16, user: &str, pass: &str) -> TcpStream {
    let mut session = None;
    let ok = wait_for(Duration::from_secs(10), || {
        let (s, reply, _) = imap_login(port, user, pass);
        if reply.starts_with("a OK") {
            session = Some(s);
            return true;
        }
        assert_eq!(reply, LIMIT_REPLY);
        false
    });
    assert!(ok, "the slot was never freed");
    session.expect("logged in")
}

#[test]
fn max_userip_connections_refuses_the_third_and_frees_slots() {
    let s = start("login-anvil-limit", "mail_max_userip_connections = 2\n");
    let (first, r1, _) = imap_login(s.imap, "alice", "Secr3t");
    assert!(r1.starts_with("a OK"), "{r1}\n{}", s.dovecot.log_text());
    let (second, r2, _) = imap_login(s.imap, "alice", "Secr3t");
    assert!(r2.starts_with("a OK"), "{r2}");

    // Third: refused with Dovecot's reply, then disconnected and logged.
    let (mut third, r3, _) = imap_login(s.imap, "alice", "Secr3t");
    assert_eq!(r3, LIMIT_REPLY, "{}", s.dovecot.log_text());
    assert!(closed(&mut third), "connection left open after the limit reply");
    assert!(
        s.dovecot.wait_log(
            "imap-login: Info: Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2): user=<alice>",
            Duration::from_secs(5)
        ),
        "{}",
        s.dovecot.log_text()
    );

    // Another user, and the same user over POP3, are counted separately.
    let (bob, rb, _) = imap_login(s.imap, "bob", "B0b");
    assert!(rb.starts_with("a OK"), "{rb}");
    let (pop, rp) = pop3_login(s.pop3, "alice", "Secr3t");
    assert!(rp.starts_with("+OK"), "{rp}");

    // One logs out: the third login is allowed again.
    logout(first);
    let again = login_eventually(s.imap, "alice", "Secr3t");
    let (_, r4, _) = imap_login(s.imap, "alice", "Secr3t");
    assert_eq!(r4, LIMIT_REPLY);

    // A crashed imap process gives its session back too: SIGKILL the
    // process serving `again` (the newest dovecot/imap child).
    let mut d = s.dovecot;
    let before: Vec<u32> = d
        .children()
        .into_iter()
        .filter(|p| cmdline(*p).split(['\0', ' ']).next() == Some("dovecot/imap"))
        .collect();
    assert!(before.len() >= 3, "one imap process per session: {before:?}");
    let newest = *before.iter().max().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(newest as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let replacement = login_eventually(s.imap, "alice", "Secr3t");
    drop((second, bob, pop, again, replacement));
}

#[test]
fn auth_penalty_delays_repeated_failures_and_a_success_resets_it() {
    let s = start("login-anvil-penalty", "auth_failure_delay = 0\n");
    let failed = "a NO [AUTHENTICATIONFAILED] Authentication failed.";
    // First failure: no penalty yet.
    let (_, r1, t1) = imap_login(s.imap, "alice", "wrong1");
    assert_eq!(r1, failed, "{}", s.dovecot.log_text());
    assert!(t1 < Duration::from_millis(1500), "first failure took {t1:?}");
    // Second (another password): penalty 1 → held 4 s.
    let (_, r2, t2) = imap_login(s.imap, "alice", "wrong2");
    assert_eq!(r2, failed);
    assert!(t2 >= Duration::from_millis(3500) && t2 < Duration::from_secs(7), "second failure took {t2:?}");
    // A success from the same IP is held too (penalty 2 → 8 s) ...
    let (ok, r3, t3) = imap_login(s.imap, "alice", "Secr3t");
    assert!(r3.starts_with("a OK"), "{r3}");
    assert!(t3 >= Duration::from_millis(7500), "login after two failures took {t3:?}");
    logout(ok);
    // ... and resets the penalty: the next failure is immediate again.
    let (_, r4, t4) = imap_login(s.imap, "alice", "wrong3");
    assert_eq!(r4, failed);
    assert!(t4 < Duration::from_millis(1500), "failure after a success took {t4:?}");
}
