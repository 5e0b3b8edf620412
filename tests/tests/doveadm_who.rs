//! `doveadm who` and `doveadm kick` under the real master: sessions that
//! real clients (python imaplib and poplib) hold open are listed from
//! anvil in Dovecot 2.3's table, filtered by user mask, one per line with
//! `-1`; `doveadm kick alice` ends alice's IMAP and POP3 sessions (the
//! client sees `* BYE Server shutting down.` and the close) while bob's
//! session keeps working.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Logs in alice (IMAP), bob (IMAP) and alice (POP3), prints `READY`,
/// waits for a line on stdin, then reports what each session sees.
const CLIENTS: &str = r#"
import imaplib, poplib, sys
port, pop3port = int(sys.argv[1]), int(sys.argv[2])
a = imaplib.IMAP4('127.0.0.1', port); a.login('alice', 'Secr3t')
b = imaplib.IMAP4('127.0.0.1', port); b.login('bob', 'B0b')
p = poplib.POP3('127.0.0.1', pop3port); p.user('alice'); p.pass_('Secr3t')
print('READY', flush=True)
sys.stdin.readline()
a.sock.settimeout(10)
print('alice-imap', repr(a.readline()), repr(a.readline()), flush=True)
p.sock.settimeout(10)
print('alice-pop3', repr(p.file.readline()), repr(p.file.readline()), flush=True)
print('bob-imap', b.noop()[0], flush=True)
b.logout()
"#;

#[test]
fn who_lists_sessions_and_kick_ends_only_the_matching_ones() {
    bin_dir();
    let dir = std::path::PathBuf::from(format!("/tmp/dovecote-test-doveadm-who-{}", std::process::id()));
    let (imap, pop3) = (free_port(), free_port());
    let body = format!(
        "protocols = imap pop3\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = maildir:~/Maildir\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = {pop3}\n }}\n inet_listener pop3s {{\n port = 0\n }}\n}}\n",
        d = dir.display()
    );
    let dovecot = Instance::start("doveadm-who", &body);
    vmail_homes_and_passwd(&dir, "alice:{PLAIN}Secr3t::::::\nbob:{PLAIN}B0b::::::\n");
    dovecot.wait_sockets(&["login/login", "login/imap", "login/pop3", "anvil"]);

    let mut clients = Command::new("python3")
        .args(["-c", CLIENTS, &imap.to_string(), &pop3.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(clients.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "{}", dovecot.log_text());

    // The sessions register with anvil as their processes start.
    let mut who = String::new();
    let complete = wait_for(Duration::from_secs(10), || {
        let o = dovecot.doveadm(&["who"]);
        who = String::from_utf8_lossy(&o.stdout).into_owned();
        who.lines().count() == 3
    });
    assert!(complete, "who: {who:?}\n{}", dovecot.log_text());
    let o = dovecot.doveadm(&["who"]);
    assert!(o.status.success());
    let titles = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(titles.starts_with("username # proto (pids) "), "{titles:?}");
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    let row = |user: &str, proto: &str| {
        rows.iter()
            .find(|r| r[0] == user && r[2] == proto)
            .unwrap_or_else(|| panic!("{user}/{proto}: {rows:?}"))
    };
    let alice_imap = row("alice", "imap");
    assert_eq!(alice_imap[1], "1");
    assert_eq!(alice_imap[4], "(127.0.0.1)");
    let alice_imap_pid: u32 = alice_imap[3].trim_matches(['(', ')']).parse().unwrap();
    assert!(cmdline(alice_imap_pid).contains("imap"), "{}", cmdline(alice_imap_pid));
    let alice_pop3_pid: u32 = row("alice", "pop3")[3].trim_matches(['(', ')']).parse().unwrap();
    let bob_pid: u32 = row("bob", "imap")[3].trim_matches(['(', ')']).parse().unwrap();
    // Columns as Dovecot's table formatter aligns them: "#" right-justified.
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.lines().all(|l| l.starts_with("alice    1 ") || l.starts_with("bob      1 ")), "{text}");

    // A user mask, and one line per connection with -1.
    let o = dovecot.doveadm(&["who", "b*"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("bob      1 imap  ({bob_pid}) (127.0.0.1)")), "{text:?}");
    let o = dovecot.doveadm(&["who", "-1", "alice"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    lines.sort();
    let (ip, pid_a, pid_p) = ("127.0.0.1", alice_imap_pid.to_string(), alice_pop3_pid.to_string());
    assert_eq!(
        lines,
        vec![vec!["alice", "imap", pid_a.as_str(), ip], vec!["alice", "pop3", pid_p.as_str(), ip]]
    );
    let titles = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        titles.starts_with("username ")
            && titles.contains(" proto pid")
            && titles.trim_end().ends_with(" ip"),
        "{titles:?}"
    );

    // Nobody matches: Dovecot's answer and exit code.
    let o = dovecot.doveadm(&["kick", "nobody"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "no users kicked\n");
    assert_eq!(o.status.code(), Some(67));

    let o = dovecot.doveadm(&["kick", "alice"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "kicked connections from the following users:\nalice \n");
    clients.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let mut report = String::new();
    for _ in 0..3 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        report.push_str(&l);
    }
    let status = clients.wait().unwrap();
    assert!(status.success(), "{report}");
    assert!(report.contains("alice-imap b'* BYE Server shutting down.\\r\\n' b''"), "{report}");
    assert!(
        report.contains("alice-pop3 b'-ERR [SYS/TEMP] Server shutting down.\\r\\n' b''")
            || report.contains("alice-pop3 b''"),
        "{report}"
    );
    assert!(report.contains("bob-imap OK"), "{report}");
    assert!(wait_for(Duration::from_secs(5), || !alive(alice_imap_pid) && !alive(alice_pop3_pid)));
    // bob logged out; anvil's list is empty again.
    assert!(wait_for(Duration::from_secs(10), || dovecot.doveadm(&["who"]).stdout.is_empty()));
}
