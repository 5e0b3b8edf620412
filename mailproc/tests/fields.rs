//! Cached fields: envelope, body structure and sizes are parsed once per
//! message and served from the mailbox's field cache afterwards, also to a
//! new session; IMAP sections come out right for every format.

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{MailLocation, NewMessage, User};

const MESSAGE: &[u8] = b"Subject: outer\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\
Content-Type: multipart/mixed; boundary=AA\n\n--AA\nContent-Type: text/plain\n\nhello\n\
--AA\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--AA--\n";

fn check(location: &str) {
    let dir = tempfile::tempdir().unwrap();
    let location = location.replace('~', &dir.path().display().to_string());
    let user = User::with_location("t", MailLocation::parse(&location, &MailVars::default(), None).unwrap());
    let mut inbox = user.open("INBOX").unwrap();
    let uid = inbox
        .save(&NewMessage { data: MESSAGE.to_vec(), received: Some(5), ..Default::default() })
        .unwrap()
        .uid;
    let f = inbox.fields(uid).unwrap();
    assert_eq!(f.date, Some(1_795_428_000));
    assert_eq!(f.envelope.get("Subject").unwrap(), b"outer");
    assert_eq!(f.physical_size, MESSAGE.len() as u64);
    assert_eq!(f.virtual_size, inbox.message(uid).unwrap().virtual_size);
    assert_eq!(inbox.read_section(uid, "1").unwrap().unwrap(), b"hello");
    assert_eq!(inbox.read_section(uid, "2.HEADER").unwrap().unwrap(), b"Subject: inner\n\n");
    assert_eq!(inbox.read_section(uid, "2.TEXT").unwrap().unwrap(), b"inner body");
    assert_eq!(inbox.read_section(uid, "4").unwrap(), None);
    assert_eq!(inbox.parse_count(), 1, "parsed once for all accesses");
    drop(inbox);
    let mut again = user.open("INBOX").unwrap();
    assert_eq!(*again.fields(uid).unwrap(), *f);
    assert_eq!(again.read_section(uid, "1.MIME").unwrap().unwrap(), b"Content-Type: text/plain\n\n");
    assert_eq!(again.parse_count(), 0, "a new session reads the cache, not the message");
}

#[test]
fn cached_fields_maildir() {
    check("maildir:~/Maildir");
}

#[test]
fn cached_fields_sdbox() {
    check("sdbox:~/sdbox");
}

#[test]
fn cached_fields_mbox() {
    check("mbox:~/mail:INBOX=~/spool");
}
