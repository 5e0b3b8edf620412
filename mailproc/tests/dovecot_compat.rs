//! Compatibility with Debian's real Dovecot 2.3 (`/usr/bin/doveadm`): a
//! Maildir that Dovecot wrote (deliver, flag, keyword, expunge) opens here
//! with identical UIDs, UIDVALIDITY, flags, keywords and GUIDs; after we
//! change it, Dovecot reads back what we wrote. Also sdbox files Dovecot
//! wrote are read with their GUIDs and contents.
//!
//! Dovecot refuses to run mail access as root, so the mail belongs to
//! `nobody` (65534) and the test chowns our writes back to it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{FlagOp, FlagUpdate, Flags, Keywords, MailLocation, NewMessage, User};

const DOVEADM: &str = "/usr/bin/doveadm";

struct Dovecot {
    conf: String,
    home: String,
}

impl Dovecot {
    fn new(dir: &Path, location: &str) -> Dovecot {
        assert!(
            Path::new(DOVEADM).exists(),
            "Debian's Dovecot is needed for this test: apt-get install dovecot-core"
        );
        let conf = dir.join("dovecot.conf");
        std::fs::write(&conf, format!("mail_location = {location}\nmail_uid = 65534\nmail_gid = 65534\n"))
            .unwrap();
        chown_nobody(dir);
        Dovecot { conf: conf.display().to_string(), home: dir.display().to_string() }
    }

    fn run(&self, args: &[&str], input: Option<&[u8]>) -> String {
        // Files we (root) created must be Dovecot's user's.
        chown_nobody(Path::new(&self.home));
        let mut child = Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .env("HOME", &self.home)
            .env("USER", "nobody")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(data) = input {
            child.stdin.take().unwrap().write_all(data).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "doveadm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// uid → (flags without \Recent, guid).
    fn fetch(&self, mailbox: &str) -> BTreeMap<u32, (Vec<String>, String)> {
        let out = self.run(&["fetch", "uid flags guid", "mailbox", mailbox], None);
        let mut result = BTreeMap::new();
        for block in out.split('\x0c').filter(|b| !b.trim().is_empty()) {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            let mut flags: Vec<String> =
                field("flags").split_whitespace().filter(|f| *f != "\\Recent").map(str::to_string).collect();
            flags.sort();
            result.insert(field("uid").parse().unwrap(), (flags, field("guid")));
        }
        result
    }

    fn status(&self, mailbox: &str, item: &str) -> u64 {
        let out = self.run(&["-f", "flow", "mailbox", "status", item, mailbox], None);
        out.trim().rsplit('=').next().unwrap().parse().unwrap()
    }
}

fn chown_nobody(dir: &Path) {
    let ok = Command::new("chown").args(["-R", "65534:65534"]).arg(dir).status().unwrap().success();
    assert!(ok, "chown failed");
}

fn ours(user: &User, mailbox: &str) -> BTreeMap<u32, (Vec<String>, String)> {
    let mb = user.open(mailbox).unwrap();
    mb.messages()
        .map(|m| {
            let mut flags: Vec<String> = m.flags.names().into_iter().map(str::to_string).collect();
            flags.extend(m.keywords.iter().cloned());
            flags.sort();
            (m.uid, (flags, m.guid.clone()))
        })
        .collect()
}

#[test]
fn maildir_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("maildir:{}/Maildir", dir.path().display());
    let dovecot = Dovecot::new(dir.path(), &location);
    for i in 1..=4 {
        dovecot.run(&["save"], Some(format!("From: a@b\nSubject: {i}\n\nbody {i}\n").as_bytes()));
    }
    dovecot.run(&["flags", "add", "\\Seen $Forwarded foo", "mailbox", "INBOX", "uid", "1"], None);
    dovecot.run(&["flags", "add", "\\Flagged bar", "mailbox", "INBOX", "uid", "2"], None);
    dovecot.run(&["flags", "add", "\\Answered \\Draft", "mailbox", "INBOX", "uid", "4"], None);
    dovecot.run(&["flags", "remove", "foo", "mailbox", "INBOX", "uid", "1"], None);
    dovecot.run(&["expunge", "mailbox", "INBOX", "uid", "3"], None);
    dovecot.run(&["mailbox", "create", "Sent"], None);
    dovecot.run(&["save", "-m", "Sent"], Some(b"Subject: sent\n\nx\n"));

    let user =
        User::with_location("nobody", MailLocation::parse(&location, &MailVars::default(), None).unwrap());
    let theirs = dovecot.fetch("INBOX");
    assert_eq!(theirs.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
    assert_eq!(ours(&user, "INBOX"), theirs, "Dovecot-written INBOX as we read it");
    assert_eq!(ours(&user, "Sent"), dovecot.fetch("Sent"));
    let status = user.status("INBOX").unwrap();
    assert_eq!(status.uid_validity as u64, dovecot.status("INBOX", "uidvalidity"));
    assert_eq!(status.uid_next as u64, dovecot.status("INBOX", "uidnext"));

    // Now we change it and Dovecot must see the same.
    {
        let mut inbox = user.open("INBOX").unwrap();
        let kw: Keywords = ["ours".to_string()].into_iter().collect();
        let saved = inbox
            .save(&NewMessage {
                data: b"Subject: ours\n\nhello\n".to_vec(),
                flags: Flags::ANSWERED,
                keywords: kw.clone(),
                received: Some(1_700_000_000),
            })
            .unwrap();
        assert_eq!(saved.uid, 5);
        inbox
            .store_flags(
                &[1],
                &FlagUpdate { op: FlagOp::Add, flags: Flags::DELETED, keywords: kw, unchanged_since: None },
            )
            .unwrap();
        let remove: Keywords = ["$Forwarded".to_string()].into_iter().collect();
        inbox
            .store_flags(
                &[1],
                &FlagUpdate {
                    op: FlagOp::Remove,
                    flags: Flags::SEEN,
                    keywords: remove,
                    unchanged_since: None,
                },
            )
            .unwrap();
        inbox.expunge(&[2]).unwrap();
        let mut sent = user.open("Sent").unwrap();
        inbox.copy_to(&[4], &mut sent).unwrap();
    }
    user.create("Archive").unwrap();
    user.subscribe("Archive", true).unwrap();
    chown_nobody(dir.path());
    let theirs = dovecot.fetch("INBOX");
    assert_eq!(theirs.keys().copied().collect::<Vec<_>>(), vec![1, 4, 5]);
    assert_eq!(theirs, ours(&user, "INBOX"), "dovecote-written INBOX as Dovecot reads it");
    assert_eq!(dovecot.fetch("Sent"), ours(&user, "Sent"));
    assert_eq!(dovecot.status("INBOX", "uidvalidity"), user.status("INBOX").unwrap().uid_validity as u64);
    let body = dovecot.run(&["fetch", "text", "mailbox", "INBOX", "uid", "5"], None);
    assert!(body.contains("hello"), "Dovecot reads our message body: {body}");
    let listed = dovecot.run(&["mailbox", "list", "-s"], None);
    assert!(listed.lines().any(|l| l == "Archive"), "Dovecot sees our subscription: {listed}");
    // And Dovecot's next save continues after our UIDs.
    dovecot.run(&["save"], Some(b"Subject: after\n\nx\n"));
    assert_eq!(ours(&user, "INBOX").keys().copied().collect::<Vec<_>>(), vec![1, 4, 5, 6]);
}

#[test]
fn sdbox_written_by_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sdbox:{}/mail", dir.path().display());
    let dovecot = Dovecot::new(dir.path(), &location);
    for i in 1..=3 {
        dovecot.run(&["save"], Some(format!("Subject: {i}\n\nbody {i}\n").as_bytes()));
    }
    dovecot.run(&["expunge", "mailbox", "INBOX", "uid", "2"], None);
    let theirs = dovecot.fetch("INBOX");
    // Dovecot's own index is not ours: we rebuild from its dbox files.
    let user =
        User::with_location("nobody", MailLocation::parse(&location, &MailVars::default(), None).unwrap());
    let mut inbox = user.open("INBOX").unwrap();
    let got: BTreeMap<u32, String> = inbox.messages().map(|m| (m.uid, m.guid.clone())).collect();
    let want: BTreeMap<u32, String> = theirs.into_iter().map(|(uid, (_, guid))| (uid, guid)).collect();
    assert_eq!(got, want);
    assert_eq!(inbox.read_message(3).unwrap(), b"Subject: 3\n\nbody 3\n");
}
