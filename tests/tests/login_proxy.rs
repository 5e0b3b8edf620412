//! Login proxying under two real masters (issue 5, scope 5): a backend
//! with real mail users and a front-end whose passwd-file passdb answers
//! `proxy=y host=127.0.0.1 port=<backend>`. Python's imaplib and poplib
//! log in to the front-end and read mail only the backend has; the
//! front-end refuses a wrong password itself, words a backend refusal as
//! Dovecot does, answers `NO [UNAVAILABLE] Account is temporarily
//! unavailable.` / `-ERR Account is temporarily unavailable.` when the
//! backend is down or the destination is itself, and logs Dovecot's
//! `proxy(user): …` lines. TLS to the backend works at connect
//! (`ssl=any-cert`) and after STARTTLS (`starttls=any-cert`).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const MESSAGE: &str = "From: sender@example.com\r\nTo: alice@example.com\r\nSubject: only on the backend\r\n\r\nproxied body line\r\n";

struct Pair {
    backend: Instance,
    front: Instance,
    front_dir: PathBuf,
    imap: u16,
    pop3: u16,
    backend_imap: u16,
}

fn config(dir: &Path, passwd: &str, imap: u16, pop3: u16) -> String {
    format!(
        "protocols = imap pop3\nauth_verbose = yes\nlogin_trusted_networks = 127.0.0.0/8\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/{passwd}\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = maildir:~/Maildir\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = {pop3}\n }}\n inet_listener pop3s {{\n port = 0\n }}\n}}\n",
        d = dir.display()
    )
}

/// Puts MESSAGE into `home/alice/Maildir/new`, owned by vmail.
fn seed_mail(home: &Path) {
    seed_message(home, "alice", MESSAGE);
}

/// Puts one message into `home/<user>/Maildir/new`, owned by vmail.
fn seed_message(home: &Path, user: &str, message: &str) {
    let maildir = home.join(user).join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let file = maildir.join("new/1700000000.M1P1.backend");
    std::fs::write(&file, message).unwrap();
    let vmail = nix::unistd::Uid::from_raw(uid_of("vmail"));
    let group = nix::unistd::Gid::from_raw(gid_of("vmail"));
    for p in [
        home.join(user),
        maildir.clone(),
        maildir.join("cur"),
        maildir.join("new"),
        maildir.join("tmp"),
        file,
    ] {
        nix::unistd::chown(&p, Some(vmail), Some(group)).unwrap();
    }
}

fn start(name: &str) -> Pair {
    bin_dir();
    let (backend_imap, backend_pop3) = (free_port(), free_port());
    let backend_dir = PathBuf::from(format!("/tmp/dovecote-test-{name}-backend-{}", std::process::id()));
    let backend = Instance::start(
        &format!("{name}-backend"),
        &config(&backend_dir, "passwd", backend_imap, backend_pop3),
    );
    let home =
        vmail_homes_and_passwd(&backend_dir, "alice:{PLAIN}Secr3t::::::\ncarol:{PLAIN}backend-only::::::\n");
    seed_mail(&home);
    backend.wait_sockets(&["login/login", "login/imap", "login/pop3"]);

    let (imap, pop3) = (free_port(), free_port());
    let dead = free_port();
    let front_dir = PathBuf::from(format!("/tmp/dovecote-test-{name}-front-{}", std::process::id()));
    let front = Instance::start(&format!("{name}-front"), &config(&front_dir, "passwd.%s", imap, pop3));
    // One passwd file per protocol (`%s`): the backend port differs.
    for (service, port, own) in [("imap", backend_imap, imap), ("pop3", backend_pop3, pop3)] {
        let passwd = format!(
            "alice:{{PLAIN}}Secr3t::::::proxy=y host=127.0.0.1 port={port}\n\
             carol:{{PLAIN}}Fr0nt::::::proxy=y host=127.0.0.1 port={port}\n\
             dave:{{PLAIN}}D4ve::::::proxy=y host=127.0.0.1 port={dead} proxy_timeout=10\n\
             erin:{{PLAIN}}Er1n::::::proxy=y host=127.0.0.1 port={own}\n\
             frank:{{PLAIN}}Fr4nk::::::nologin reason=Moved\n"
        );
        std::fs::write(front_dir.join(format!("passwd.{service}")), passwd).unwrap();
    }
    front.wait_sockets(&["login/login", "login/imap", "login/pop3"]);
    Pair { backend, front, front_dir, imap, pop3, backend_imap }
}

const CLIENT: &str = r#"
import imaplib, poplib, sys
imap_port, pop3_port = int(sys.argv[1]), int(sys.argv[2])
c = imaplib.IMAP4('127.0.0.1', imap_port)
print('GREETING', c.welcome.decode())
typ, data = c.login('alice', 'Secr3t')
print('LOGIN', typ, data[0].decode())
typ, data = c.select('INBOX')
print('SELECT', typ, data[0].decode())
typ, data = c.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])')
print('FETCH', typ, repr(data))
typ, data = c.list()
print('LIST', typ, repr(data))
print('LOGOUT', c.logout()[0])
p = poplib.POP3('127.0.0.1', pop3_port)
print('POPGREETING', p.getwelcome().decode())
p.user('alice')
print('PASS', p.pass_('Secr3t').decode())
print('STAT', p.stat())
resp, lines, octets = p.retr(1)
print('RETR', resp.decode(), repr(lines))
print('QUIT', p.quit().decode())
"#;

fn imap_reply(port: u16, command: &str) -> String {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let greeting = read_line(&mut s);
    assert!(greeting.starts_with("* OK"), "{greeting:?}");
    s.write_all(command.as_bytes()).unwrap();
    let mut line = read_line(&mut s);
    while line.starts_with('*') {
        line = read_line(&mut s);
    }
    line.trim_end().to_owned()
}

fn pop3_reply(port: u16, user: &str, pass: &str) -> String {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let greeting = read_line(&mut s);
    assert!(greeting.starts_with("+OK"), "{greeting:?}");
    let ok = ask(&mut s, &format!("USER {user}\r"));
    assert!(ok.starts_with("+OK"), "{ok:?}");
    ask(&mut s, &format!("PASS {pass}\r")).trim_end().to_owned()
}

#[test]
fn clients_reach_the_backends_mail_through_the_front_end() {
    let p = start("login-proxy");
    let out = Command::new("python3")
        .args(["-c", CLIENT, &p.imap.to_string(), &p.pop3.to_string()])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}\nfront:\n{}\nbackend:\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.front.log_text(),
        p.backend.log_text()
    );
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key}: {text}"))
            .to_owned()
    };
    // The backend's own tagged OK, with its post-login capabilities.
    let login = line("LOGIN");
    assert!(login.starts_with("LOGIN OK [CAPABILITY IMAP4rev1 "), "{login}");
    assert!(login.ends_with("] Logged in"), "{login}");
    assert_eq!(line("SELECT"), "SELECT OK 1");
    let fetch = line("FETCH");
    assert!(fetch.contains("Subject: only on the backend") && fetch.contains("proxied body line"), "{fetch}");
    assert!(line("LIST").contains("INBOX"), "{text}");
    assert_eq!(line("LOGOUT"), "LOGOUT BYE");
    assert_eq!(line("PASS"), "PASS +OK Logged in.");
    assert!(line("STAT").starts_with("STAT (1, "), "{text}");
    let retr = line("RETR");
    assert!(retr.contains("b'proxied body line'"), "{retr}");
    assert!(line("QUIT").starts_with("QUIT +OK"), "{text}");

    // Dovecot's log lines on the front-end; the backend saw real logins.
    let started = format!(
        "imap-login: Info: proxy(alice): started proxying to 127.0.0.1:{}: user=<alice>",
        p.backend_imap
    );
    assert!(p.front.wait_log(&started, Duration::from_secs(5)), "{}", p.front.log_text());
    assert!(
        p.front.wait_log(
            "pop3-login: Info: proxy(alice): started proxying to 127.0.0.1:",
            Duration::from_secs(5)
        ),
        "{}",
        p.front.log_text()
    );
    assert!(
        p.front.wait_log(
            "imap-login: Info: proxy(alice): disconnecting 127.0.0.1 (Disconnected by ",
            Duration::from_secs(5)
        ),
        "{}",
        p.front.log_text()
    );
    assert!(
        p.backend.wait_log("imap-login: Info: Login: user=<alice>", Duration::from_secs(5)),
        "{}",
        p.backend.log_text()
    );
    assert!(
        p.backend.wait_log("pop3-login: Info: Login: user=<alice>", Duration::from_secs(5)),
        "{}",
        p.backend.log_text()
    );
    // The backend trusts the front-end (login_trusted_networks), so the
    // ID command's x-session-id carries the session on.
    assert!(p.front.wait_log("pop3-login: Info: proxy(alice): started proxying", Duration::from_secs(5)));
    let front_log = p.front.log_text();
    let started_line = front_log.lines().find(|l| l.contains(&started)).unwrap().to_owned();
    let session =
        started_line.rsplit_once("session=<").map(|(_, s)| s.trim_end_matches('>')).unwrap().to_owned();
    assert!(
        p.backend.log_text().lines().any(|l| l.contains("imap-login: Info: Login: user=<alice>")
            && l.contains(&format!("session=<{session}>"))),
        "{session}\n{}",
        p.backend.log_text()
    );
    // POP3 does the same with XCLIENT (announced as [XCLIENT] to trusted
    // networks).
    let pop3_started = front_log
        .lines()
        .find(|l| l.contains("pop3-login: Info: proxy(alice): started proxying"))
        .unwrap()
        .to_owned();
    let session =
        pop3_started.rsplit_once("session=<").map(|(_, s)| s.trim_end_matches('>')).unwrap().to_owned();
    assert!(
        p.backend.log_text().lines().any(|l| l.contains("pop3-login: Info: Login: user=<alice>")
            && l.contains(&format!("session=<{session}>"))),
        "{session}\n{}",
        p.backend.log_text()
    );
    // No mail process ever ran on the front-end for alice.
    assert!(!p.front.log_text().contains("imap-login: Info: Login: user=<alice>"), "{}", p.front.log_text());

    // A client that just goes away: "Disconnected by client", with the
    // byte counts; pipelined input after LOGIN reaches the backend.
    let mut s = connect(p.imap);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    read_line(&mut s);
    s.write_all(b"a LOGIN alice Secr3t\r\nb SELECT INBOX\r\n").unwrap();
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !got.contains("b OK") && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(got.contains("a OK [CAPABILITY") && got.contains("* 1 EXISTS") && got.contains("b OK"), "{got}");
    drop(s);
    assert!(
        p.front.wait_log(
            "proxy(alice): disconnecting 127.0.0.1 (Disconnected by client (",
            Duration::from_secs(5)
        ),
        "{}",
        p.front.log_text()
    );
}

#[test]
fn refusals_and_failures_are_worded_as_dovecot() {
    let p = start("login-proxy-fail");
    // The front-end checks the password itself.
    assert_eq!(
        imap_reply(p.imap, "a LOGIN alice wrong\r\n"),
        "a NO [AUTHENTICATIONFAILED] Authentication failed."
    );
    assert_eq!(pop3_reply(p.pop3, "alice", "wrong"), "-ERR [AUTH] Authentication failed.");
    // Accepted here, refused by the backend: Dovecot's generic reply.
    assert_eq!(
        imap_reply(p.imap, "a LOGIN carol Fr0nt\r\n"),
        "a NO [AUTHENTICATIONFAILED] Authentication failed."
    );
    assert!(
        p.front
            .wait_log("imap-login: Info: proxy(carol): Login failed to 127.0.0.1:", Duration::from_secs(5)),
        "{}",
        p.front.log_text()
    );
    assert_eq!(pop3_reply(p.pop3, "carol", "Fr0nt"), "-ERR [AUTH] Authentication failed.");

    // The backend is down: three reconnects a second apart, then the
    // client is told and the connect failure logged.
    let started = Instant::now();
    assert_eq!(
        imap_reply(p.imap, "a LOGIN dave D4ve\r\n"),
        "a NO [UNAVAILABLE] Account is temporarily unavailable."
    );
    assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
    // Logged through the master, so it may show up a moment later.
    let logged = wait_for(Duration::from_secs(5), || {
        p.front.log_text().lines().any(|l| {
            l.contains("imap-login: Error: proxy(dave): connect(127.0.0.1, ")
                && l.contains(") failed: Connection refused (after ")
                && l.contains(" secs, 3 reconnects, local=127.0.0.1:")
        })
    });
    assert!(logged, "{}", p.front.log_text());
    assert_eq!(pop3_reply(p.pop3, "dave", "D4ve"), "-ERR Account is temporarily unavailable.");

    // Proxying to the very listener the client used.
    assert_eq!(
        imap_reply(p.imap, "a LOGIN erin Er1n\r\n"),
        "a NO [UNAVAILABLE] Account is temporarily unavailable."
    );
    assert!(p
        .front
        .wait_log("imap-login: Error: proxy(erin): Proxying loops to itself", Duration::from_secs(5)));

    // nologin without proxy: the reason, and no session.
    assert_eq!(imap_reply(p.imap, "a LOGIN frank Fr4nk\r\n"), "a NO [ALERT] Moved");
    assert_eq!(pop3_reply(p.pop3, "frank", "Fr4nk"), "-ERR [AUTH] Moved");

    // After a failed proxy attempt the connection takes commands again.
    let mut s = connect(p.imap);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    read_line(&mut s);
    let reply = ask(&mut s, "a LOGIN erin Er1n\r");
    assert!(reply.starts_with("a NO [UNAVAILABLE]"), "{reply}");
    s.write_all(b"b LOGIN alice Secr3t\r\n").unwrap();
    let mut line = read_line(&mut s);
    while line.starts_with('*') {
        line = read_line(&mut s);
    }
    assert!(line.starts_with("b OK [CAPABILITY"), "{line}\n{}", p.front.log_text());
    let _ = p.front_dir;
}

const TLS_CLIENT: &str = r#"
import hashlib, imaplib, sys
port = int(sys.argv[1])
for user, pw in (('alice', 'Secr3t'), ('bob', 'B0b')):
    c = imaplib.IMAP4('127.0.0.1', port)
    typ, data = c.login(user, pw)
    print('LOGIN', user, typ, data[0].decode())
    typ, data = c.select('INBOX')
    print('SELECT', user, typ, data[0].decode())
    if user == 'bob':
        # Megabytes both ways through the relay.
        typ, data = c.fetch('1', '(BODY.PEEK[])')
        body = data[0][1]
        print('BIGFETCH', typ, len(body), hashlib.sha256(body).hexdigest())
        big = b'Subject: upload\r\n\r\n' + b''.join(b'%07d upload line through the proxy\r\n' % i for i in range(60000))
        typ, data = c.append('INBOX', None, None, big)
        print('APPEND', typ)
        typ, data = c.fetch('2', '(BODY.PEEK[])')
        print('ROUNDTRIP', typ, data[0][1] == big)
    c.logout()
"#;

#[test]
fn tls_to_the_backend_at_connect_and_after_starttls() {
    bin_dir();
    let id = std::process::id();
    let backend_dir = PathBuf::from(format!("/tmp/dovecote-test-login-proxy-tls-backend-{id}"));
    let certs = PathBuf::from(format!("/tmp/dovecote-test-login-proxy-tls-certs-{id}"));
    let _ = std::fs::remove_dir_all(&certs);
    certs::make_certs(&certs);
    let (b_imap, b_imaps) = (free_port(), free_port());
    let body = format!(
        "protocols = imap\nssl = yes\nssl_cert = <{c}/cert.pem\nssl_key = <{c}/key.pem\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = maildir:~/Maildir\n\
         service imap-login {{\n inet_listener imap {{\n port = {b_imap}\n }}\n inet_listener imaps {{\n port = {b_imaps}\n }}\n}}\n",
        c = certs.display(),
        d = backend_dir.display()
    );
    let backend = Instance::start("login-proxy-tls-backend", &body);
    let home = vmail_homes_and_passwd(&backend_dir, "alice:{PLAIN}Secr3t::::::\nbob:{PLAIN}B0b::::::\n");
    seed_mail(&home);
    let big: String =
        (0..80000).map(|i| format!("{i:07} a line of the big message on the backend\r\n")).collect();
    let big = format!("Subject: big\r\n\r\n{big}");
    seed_message(&home, "bob", &big);
    backend.wait_sockets(&["login/login", "login/imap"]);

    let (imap, pop3) = (free_port(), free_port());
    let front_dir = PathBuf::from(format!("/tmp/dovecote-test-login-proxy-tls-front-{id}"));
    let front = Instance::start("login-proxy-tls-front", &config(&front_dir, "passwd.%s", imap, pop3));
    std::fs::write(
        front_dir.join("passwd.imap"),
        format!(
            "alice:{{PLAIN}}Secr3t::::::proxy=y host=127.0.0.1 port={b_imaps} ssl=any-cert\n\
             bob:{{PLAIN}}B0b::::::proxy=y host=127.0.0.1 port={b_imap} starttls=any-cert\n"
        ),
    )
    .unwrap();
    front.wait_sockets(&["login/login", "login/imap"]);

    let out = Command::new("python3").args(["-c", TLS_CLIENT, &imap.to_string()]).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}\nfront:\n{}\nbackend:\n{}",
        String::from_utf8_lossy(&out.stderr),
        front.log_text(),
        backend.log_text()
    );
    for user in ["alice", "bob"] {
        assert!(text.contains(&format!("LOGIN {user} OK [CAPABILITY IMAP4rev1 ")), "{text}");
    }
    assert!(text.contains("SELECT alice OK 1") && text.contains("SELECT bob OK 1"), "{text}");
    let digest = {
        let out = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = out;
        child.stdin.take().unwrap().write_all(big.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_owned()
    };
    assert!(text.contains(&format!("BIGFETCH OK {} {digest}", big.len())), "{text}");
    assert!(text.contains("APPEND OK") && text.contains("ROUNDTRIP OK True"), "{text}");
    // The backend saw both logins arrive over TLS.
    let log = backend.log_text();
    let tls_logins =
        log.lines().filter(|l| l.contains("imap-login: Info: Login: user=<") && l.contains(", TLS")).count();
    assert_eq!(tls_logins, 2, "{log}");
    assert!(front.log_text().contains(&format!("proxy(alice): started proxying to 127.0.0.1:{b_imaps}")));
    assert!(front.log_text().contains(&format!("proxy(bob): started proxying to 127.0.0.1:{b_imap}")));
}
