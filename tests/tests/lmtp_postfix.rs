//! S17/S18: a real Postfix delivers to two virtual users through our lmtp —
//! one domain via `lmtp:unix:private/dovecot-lmtp` (the socket our master
//! creates inside Postfix's queue directory with `user = postfix`,
//! `mode = 0600`), the other via `lmtp:inet:127.0.0.1:PORT` — and the
//! messages land in the users' Maildirs, owned by vmail, with Dovecot's
//! Return-Path/Delivered-To/Received headers.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::postfix::{start_postfix, Postfix};
use common::*;

fn start_lmtp_postfix(dir: &Path, smtp_port: u16, lmtp_port: u16) -> Postfix {
    start_postfix(
        dir,
        smtp_port,
        "mta.test",
        &format!(
            "mynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks, reject\n\
             smtpd_reject_unlisted_recipient = no\nvirtual_mailbox_domains = unix.test, inet.test\n\
             transport_maps = inline:{{ unix.test=lmtp:unix:private/dovecot-lmtp, inet.test=lmtp:inet:127.0.0.1:{lmtp_port} }}\n"
        ),
    )
}

fn new_mail(home: &Path, user: &str) -> Vec<PathBuf> {
    std::fs::read_dir(home.join(user).join("Maildir/new"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn postfix_delivers_over_the_unix_socket_and_tcp() {
    let files = PathBuf::from(format!("/tmp/dovecote-test-lmtp-postfix-{}-files", std::process::id()));
    let _ = std::fs::remove_dir_all(&files);
    let home = files.join("home");
    std::fs::create_dir_all(&home).unwrap();
    nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(uid_of("vmail"))), None).unwrap();
    let (vuid, vgid) = (uid_of("vmail"), gid_of("vmail"));
    std::fs::write(
        files.join("users"),
        format!(
            "alice@unix.test:{{PLAIN}}pw:{vuid}:{vgid}::{h}/alice::\nbob@inet.test:{{PLAIN}}pw:{vuid}:{vgid}::{h}/bob::\n",
            h = home.display()
        ),
    )
    .unwrap();
    let (smtp_port, lmtp_port) = (free_port(), free_port());
    let (imap_port, pop3_port) = (free_port(), free_port());
    // Postfix first: it creates the queue's private/ directory our socket goes in.
    let postfix = start_lmtp_postfix(&files.join("postfix"), smtp_port, lmtp_port);
    let private = files.join("postfix/spool/private");
    assert!(wait_for(Duration::from_secs(10), || private.exists()));
    bin_dir();
    let body = format!(
        "protocols = lmtp imap pop3\nhostname = mx.test\n\
         passdb {{\n  driver = passwd-file\n  args = {f}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {f}/users\n}}\n\
         mail_location = maildir:~/Maildir\n\
         service lmtp {{\n  unix_listener {p}/dovecot-lmtp {{\n    user = postfix\n    group = postfix\n    mode = 0600\n  }}\n\
           inet_listener lmtp {{\n    port = {lmtp_port}\n  }}\n}}\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap_port}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = {pop3_port}\n }}\n inet_listener pop3s {{\n port = 0\n }}\n}}\n",
        f = files.display(),
        p = private.display()
    );
    let dovecot = Instance::start("lmtp-postfix", &body);
    let socket = private.join("dovecot-lmtp");
    assert!(wait_for(Duration::from_secs(5), || socket.exists()), "{}", dovecot.log_text());
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid_of("postfix"), 0o600));
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import smtplib\n\
             s = smtplib.SMTP('127.0.0.1', {smtp_port}, timeout=20)\n\
             print(s.sendmail('sender@example.org', ['alice@unix.test'], 'Subject: via unix\\r\\n\\r\\nhello alice\\r\\n'))\n\
             print(s.sendmail('sender@example.org', ['bob@inet.test'], 'Subject: via inet\\r\\n\\r\\nhello bob\\r\\n'))\n\
             s.quit()\n"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let postfix_log = || std::fs::read_to_string(files.join("postfix/postfix.log")).unwrap_or_default();
    for (user, subject, via) in [("alice", "via unix", "unix"), ("bob", "via inet", "inet")] {
        assert!(
            wait_for(Duration::from_secs(30), || new_mail(&home, user).len() == 1),
            "no mail for {user}; postfix log:\n{}\ndovecot log:\n{}",
            postfix_log(),
            dovecot.log_text()
        );
        let path = &new_mail(&home, user)[0];
        assert_eq!(std::fs::metadata(path).unwrap().uid(), uid_of("vmail"));
        let text = std::fs::read_to_string(path).unwrap();
        let addr = format!("{user}@{via}.test");
        assert!(
            text.starts_with(&format!(
                "Return-Path: <sender@example.org>\nDelivered-To: {addr}\nReceived: from mta.test"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("\n\tfor <{addr}>; ")), "{text}");
        assert!(text.contains(&format!("Subject: {subject}\n")), "{text}");
    }
    // The delivered mail, with the headers Dovecot adds, as the users'
    // clients see it: alice over IMAP, bob over POP3.
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import imaplib, poplib\n\
             i = imaplib.IMAP4('127.0.0.1', {imap_port})\n\
             i.login('alice@unix.test', 'pw')\n\
             i.select('INBOX')\n\
             typ, data = i.fetch('1', '(BODY.PEEK[HEADER.FIELDS (RETURN-PATH DELIVERED-TO SUBJECT)])')\n\
             print(data[0][1].decode())\n\
             i.logout()\n\
             p = poplib.POP3('127.0.0.1', {pop3_port})\n\
             p.user('bob@inet.test')\n\
             p.pass_('pw')\n\
             print(b'\\n'.join(p.retr(1)[1]).decode())\n\
             p.quit()\n"
        ))
        .output()
        .unwrap();
    let clients = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), dovecot.log_text());
    assert!(
        clients.contains(
            "Return-Path: <sender@example.org>\r\nDelivered-To: alice@unix.test\r\nSubject: via unix\r\n"
        ),
        "{clients}"
    );
    assert!(
        clients.contains(
            "Return-Path: <sender@example.org>\nDelivered-To: bob@inet.test\nReceived: from mta.test"
        ),
        "{clients}"
    );
    assert!(clients.contains("Subject: via inet\n") && clients.contains("\n\nhello bob"), "{clients}");
    assert!(
        wait_for(Duration::from_secs(10), || postfix_log().matches("status=sent").count() >= 2),
        "{}",
        postfix_log()
    );
    let log = postfix_log();
    assert!(
        log.contains("relay=mx.test[private/dovecot-lmtp]") || log.contains("private/dovecot-lmtp"),
        "{log}"
    );
    assert!(log.contains(&format!("127.0.0.1]:{lmtp_port}")), "{log}");
    drop(postfix);
    let _ = std::fs::remove_dir_all(&files);
}
