//! Login log lines (issue 5): `login_log_format_elements` and
//! `login_log_format` as Dovecot expands them — the default `Login:` and
//! `Disconnected (auth failed, …)` lines, empty elements left out, and an
//! admin's own format.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

/// Every service binary, built once for all test files (common::bin_dir).
fn build_services() {
    bin_dir();
}

fn start(name: &str, extra: &str) -> (Instance, u16) {
    build_services();
    let dir = std::path::PathBuf::from(format!("/tmp/dovecote-test-{name}-{}", std::process::id()));
    let imap = free_port();
    let body = format!(
        "protocols = imap\nauth_failure_delay = 0\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = maildir:~/Maildir\n{extra}\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n",
        d = dir.display()
    );
    let dovecot = Instance::start(name, &body);
    vmail_homes_and_passwd(&dir, "alice:{PLAIN}Secr3t::::::\n");
    dovecot.wait_sockets(&["auth-master", "login/login", "login/imap"]);
    (dovecot, imap)
}

/// LOGIN as alice, then LOGOUT; returns the LOGIN reply.
fn login(port: u16, pass: &str) -> String {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_line(&mut s);
    s.write_all(format!("a LOGIN alice {pass}\r\n").as_bytes()).unwrap();
    let mut line = read_line(&mut s);
    while line.starts_with('*') {
        line = read_line(&mut s);
    }
    let _ = s.write_all(b"b LOGOUT\r\n");
    let _ = read_line(&mut s);
    line.trim_end().to_owned()
}

/// The log line containing `needle`, once it appears.
fn log_line(dovecot: &Instance, needle: &str) -> String {
    assert!(dovecot.wait_log(needle, Duration::from_secs(10)), "no {needle:?} in:\n{}", dovecot.log_text());
    dovecot.log_text().lines().find(|l| l.contains(needle)).unwrap_or_default().to_owned()
}

/// `session=<…>`: Dovecot's 16-character base64 session id.
fn session_ok(line: &str) -> bool {
    line.split("session=<").nth(1).and_then(|r| r.split('>').next()).is_some_and(|id| id.len() == 16)
}

#[test]
fn default_format_login_and_failed_auth_lines() {
    let (dovecot, port) = start("login-log-default", "");
    let reply = login(port, "Secr3t");
    assert!(reply.starts_with("a OK"), "{reply}");
    let line = log_line(&dovecot, "imap-login: Info: Login: ");
    let rest = line.split("imap-login: Info: ").nth(1).unwrap();
    let mpid: String =
        rest.split("mpid=").nth(1).unwrap_or_default().chars().take_while(char::is_ascii_digit).collect();
    assert!(!mpid.is_empty(), "{line}");
    assert!(
        rest.starts_with(&format!(
            "Login: user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid={mpid}, secured, session=<"
        )),
        "{line}"
    );
    assert!(session_ok(rest), "{line}");
    let reply = login(port, "wrong");
    assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] Authentication failed.");
    let line = log_line(&dovecot, "(auth failed, 1 attempts in ");
    let rest = line.split("imap-login: Info: ").nth(1).unwrap();
    assert!(
        rest.starts_with("Aborted login by logging out (auth failed, 1 attempts in ")
            && rest.contains(
                " secs): user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, secured, session=<"
            ),
        "{line}"
    );
    // No mpid= element: its variable is empty, so Dovecot leaves it out.
    assert!(!rest.contains("mpid="), "{line}");
}

#[test]
fn admin_format_and_elements() {
    let (dovecot, port) = start(
        "login-log-custom",
        "login_log_format = %s -- %$\nlogin_log_format_elements = who=%Lu from=%r %{session} port=%a\n",
    );
    let reply = login(port, "Secr3t");
    assert!(reply.starts_with("a OK"), "{reply}");
    let line = log_line(&dovecot, " -- Login");
    let rest = line.split("imap-login: Info: ").nth(1).unwrap();
    let fields: Vec<&str> = rest.trim_end_matches(" -- Login").split(", ").collect();
    assert_eq!(fields.len(), 4, "{line}");
    assert_eq!(fields[0], "who=alice");
    assert_eq!(fields[1], "from=127.0.0.1");
    assert_eq!(fields[2].len(), 16, "{line}");
    assert_eq!(fields[3], format!("port={port}"));
}
