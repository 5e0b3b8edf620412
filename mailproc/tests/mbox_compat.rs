//! mbox compatibility: a spool in Postfix local(8)'s delivery format reads
//! correctly; Debian's Dovecot 2.3 and dovecote agree on the UIDs and flags
//! of an mbox that each of them modified; a spool with the wrong owner
//! gives a clear error (S13), not a crash.
//!
//! Dovecot refuses mail access as root, so the files belong to `nobody`
//! and the test chowns our writes back to it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{FlagOp, FlagUpdate, Flags, Keywords, MailLocation, NewMessage, User};

const DOVEADM: &str = "/usr/bin/doveadm";

/// Two deliveries the way Postfix local(8) appends them to a spool: the
/// `From ` envelope line, Return-Path / X-Original-To / Delivered-To on
/// top, body lines starting with "From " quoted as ">From ", and an empty
/// line after each message.
const POSTFIX_SPOOL: &str = "From alice@example.org  Mon Nov 23 10:00:00 2026
Return-Path: <alice@example.org>
X-Original-To: jane
Delivered-To: jane@mail.example.org
Received: by mail.example.org (Postfix, from userid 1001)
\tid 4F0A11C0123; Mon, 23 Nov 2026 10:00:00 +0000 (UTC)
Subject: first
To: <jane@mail.example.org>
Message-Id: <20261123100000.4F0A11C0123@mail.example.org>
Date: Mon, 23 Nov 2026 10:00:00 +0000 (UTC)
From: alice@example.org

Hello Jane,
>From the minutes: nothing.

Alice

From bob@example.org  Mon Nov 23 11:30:05 2026
Return-Path: <bob@example.org>
X-Original-To: jane
Delivered-To: jane@mail.example.org
Subject: second
From: bob@example.org

>From here on
>>From quoted twice
last line

";

fn chown_nobody(path: &Path) {
    let ok = Command::new("chown").args(["-R", "65534:65534"]).arg(path).status().unwrap().success();
    assert!(ok, "chown failed");
}

struct Dovecot {
    conf: String,
    home: String,
}

impl Dovecot {
    fn new(dir: &Path, location: &str) -> Dovecot {
        assert!(Path::new(DOVEADM).exists(), "Debian's Dovecot is needed: apt-get install dovecot-core");
        let conf = dir.join("dovecot.conf");
        std::fs::write(&conf, format!("mail_location = {location}\nmail_uid = 65534\nmail_gid = 65534\n"))
            .unwrap();
        Dovecot { conf: conf.display().to_string(), home: dir.display().to_string() }
    }

    fn run(&self, args: &[&str], input: Option<&[u8]>) -> String {
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

    /// uid → sorted flags without \Recent.
    fn flags(&self, mailbox: &str) -> BTreeMap<u32, Vec<String>> {
        let out = self.run(&["fetch", "uid flags", "mailbox", mailbox], None);
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
            result.insert(field("uid").parse().unwrap(), flags);
        }
        result
    }

    fn status(&self, mailbox: &str, item: &str) -> u64 {
        let out = self.run(&["-f", "flow", "mailbox", "status", item, mailbox], None);
        out.trim().rsplit('=').next().unwrap().parse().unwrap()
    }
}

fn ours(user: &User, mailbox: &str) -> BTreeMap<u32, Vec<String>> {
    let mb = user.open(mailbox).unwrap();
    mb.messages()
        .map(|m| {
            let mut flags: Vec<String> = m.flags.names().into_iter().map(str::to_string).collect();
            flags.extend(m.keywords.iter().cloned());
            flags.sort();
            (m.uid, flags)
        })
        .collect()
}

fn user(location: &str) -> User {
    User::with_location("nobody", MailLocation::parse(location, &MailVars::default(), None).unwrap())
}

#[test]
fn postfix_local_spool_reads_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::write(&spool, POSTFIX_SPOOL).unwrap();
    let location = format!("mbox:{0}/mail:INBOX={0}/spool", dir.path().display());
    let user = user(&location);
    let mut inbox = user.open("INBOX").unwrap();
    let uids: Vec<u32> = inbox.messages().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2]);
    let first = inbox.message(1).unwrap().clone();
    assert_eq!(first.received, 1_795_428_000, "INTERNALDATE from the From_ line");
    assert_eq!(first.flags, Flags::empty());
    let text = String::from_utf8(inbox.read_message(1).unwrap()).unwrap();
    assert!(text.starts_with("Return-Path: <alice@example.org>\nX-Original-To: jane\n"), "{text}");
    assert!(text.ends_with("\nHello Jane,\n>From the minutes: nothing.\n\nAlice\n"), "{text:?}");
    assert_eq!(first.physical_size, text.len() as u64);
    assert_eq!(first.virtual_size, text.len() as u64 + text.matches('\n').count() as u64);
    let second = String::from_utf8(inbox.read_message(2).unwrap()).unwrap();
    assert!(second.ends_with("\n\n>From here on\n>>From quoted twice\nlast line\n"), "{second:?}");

    // The UIDs were written into the spool the way Dovecot keeps them ...
    let written = std::fs::read_to_string(&spool).unwrap();
    assert!(written.contains("\nX-IMAPbase: "), "{written}");
    assert!(written.contains("\nX-UID: 1\n") && written.contains("\nX-UID: 2\n"), "{written}");
    // ... and a new delivery appended by local(8) while we are open
    // arrives as UID 3.
    let mut f = std::fs::OpenOptions::new().append(true).open(&spool).unwrap();
    f.write_all(b"From carol@example.org  Mon Nov 23 12:00:00 2026\nSubject: third\n\nhi\n\n").unwrap();
    drop(f);
    inbox.sync().unwrap();
    assert_eq!(inbox.messages().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(inbox.read_message(3).unwrap(), b"Subject: third\n\nhi\n");

    // Dovecot reads the spool we wrote with the same UIDs.
    let dovecot = Dovecot::new(dir.path(), &location);
    assert_eq!(dovecot.flags("INBOX").keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn mbox_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mail")).unwrap();
    let location = format!("mbox:{0}/mail:INBOX={0}/spool", dir.path().display());
    let dovecot = Dovecot::new(dir.path(), &location);
    for i in 1..=4 {
        let body = format!("From: a@b\nSubject: {i}\n\nbody {i}\nFrom the start\n");
        dovecot.run(&["save"], Some(body.as_bytes()));
    }
    dovecot.run(&["flags", "add", "\\Seen $Forwarded foo", "mailbox", "INBOX", "uid", "1"], None);
    dovecot.run(&["flags", "add", "\\Flagged bar", "mailbox", "INBOX", "uid", "2"], None);
    dovecot.run(&["flags", "add", "\\Answered \\Draft", "mailbox", "INBOX", "uid", "4"], None);
    dovecot.run(&["flags", "remove", "foo", "mailbox", "INBOX", "uid", "1"], None);
    dovecot.run(&["expunge", "mailbox", "INBOX", "uid", "3"], None);
    dovecot.run(&["mailbox", "create", "Sent"], None);
    dovecot.run(&["save", "-m", "Sent"], Some(b"Subject: sent\n\nx\n"));

    let user = user(&location);
    let theirs = dovecot.flags("INBOX");
    assert_eq!(theirs.keys().copied().collect::<Vec<_>>(), [1, 2, 4]);
    assert_eq!(ours(&user, "INBOX"), theirs, "Dovecot-written mbox as we read it");
    assert_eq!(ours(&user, "Sent"), dovecot.flags("Sent"));
    let status = user.status("INBOX").unwrap();
    assert_eq!(status.uid_validity as u64, dovecot.status("INBOX", "uidvalidity"));
    assert_eq!(status.uid_next as u64, dovecot.status("INBOX", "uidnext"));
    {
        let mut inbox = user.open("INBOX").unwrap();
        // Dovecot does not escape, but its Content-Length keeps the
        // "From the start" line inside the body.
        assert_eq!(inbox.read_message(2).unwrap(), b"From: a@b\nSubject: 2\n\nbody 2\nFrom the start\n");
    }

    // Now we change it and Dovecot must see the same.
    {
        let mut inbox = user.open("INBOX").unwrap();
        let kw: Keywords = ["ours".to_string()].into_iter().collect();
        let saved = inbox
            .save(&NewMessage {
                data: b"Subject: ours\n\nhello\nFrom me\n".to_vec(),
                flags: Flags::ANSWERED,
                keywords: kw.clone(),
                received: Some(1_700_000_000),
            })
            .unwrap();
        assert_eq!(saved.uid, 5);
        let add = FlagUpdate { op: FlagOp::Add, flags: Flags::DELETED, keywords: kw, unchanged_since: None };
        inbox.store_flags(&[1], &add).unwrap();
        let remove: Keywords = ["$Forwarded".to_string()].into_iter().collect();
        let remove =
            FlagUpdate { op: FlagOp::Remove, flags: Flags::SEEN, keywords: remove, unchanged_since: None };
        inbox.store_flags(&[1], &remove).unwrap();
        inbox.expunge(&[2]).unwrap();
        let mut sent = user.open("Sent").unwrap();
        inbox.copy_to(&[4], &mut sent).unwrap();
    }
    user.create("Archive").unwrap();
    user.subscribe("Archive", true).unwrap();
    let theirs = dovecot.flags("INBOX");
    assert_eq!(theirs.keys().copied().collect::<Vec<_>>(), [1, 4, 5]);
    assert_eq!(theirs, ours(&user, "INBOX"), "dovecote-written mbox as Dovecot reads it");
    assert_eq!(dovecot.flags("Sent"), ours(&user, "Sent"));
    assert_eq!(dovecot.status("INBOX", "uidvalidity"), user.status("INBOX").unwrap().uid_validity as u64);
    let body = dovecot.run(&["fetch", "text", "mailbox", "INBOX", "uid", "5"], None);
    // Written unquoted, as Dovecot writes it: both read back the message
    // that was saved, not a `>From` version of it.
    assert!(body.contains("hello\nFrom me") && !body.contains(">From"), "Dovecot reads our body: {body}");
    assert_eq!(
        user.open("INBOX").unwrap().read_message(5).unwrap(),
        b"Subject: ours\n\nhello\nFrom me\n",
        "we read back what was saved"
    );
    let listed = dovecot.run(&["mailbox", "list", "-s"], None);
    assert!(listed.lines().any(|l| l == "Archive"), "Dovecot sees our subscription: {listed}");

    // Dovecot's next save continues after our UIDs, and we read its flags.
    dovecot.run(&["save"], Some(b"Subject: after\n\nx\n"));
    dovecot.run(&["flags", "add", "\\Seen", "mailbox", "INBOX", "uid", "5"], None);
    assert_eq!(ours(&user, "INBOX").keys().copied().collect::<Vec<_>>(), [1, 4, 5, 6]);
    assert_eq!(ours(&user, "INBOX"), dovecot.flags("INBOX"));

    // Expunging everything leaves Dovecot's pseudo message; UIDs go on.
    {
        let mut inbox = user.open("INBOX").unwrap();
        inbox.expunge(&[1, 4, 5, 6]).unwrap();
    }
    assert!(std::fs::read_to_string(dir.path().join("spool")).unwrap().contains("FOLDER INTERNAL DATA"));
    assert_eq!(dovecot.status("INBOX", "messages"), 0);
    assert_eq!(dovecot.status("INBOX", "uidnext"), 7);
    dovecot.run(&["save"], Some(b"Subject: seven\n\nx\n"));
    assert_eq!(ours(&user, "INBOX").keys().copied().collect::<Vec<_>>(), [7]);
}

#[test]
fn spool_owned_by_another_user_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::write(&spool, POSTFIX_SPOOL).unwrap();
    chown_nobody(dir.path());
    // The S13 pitfall: /var/mail/user owned by someone else, mode 0600.
    let ok = Command::new("chown").args(["0:0"]).arg(&spool).status().unwrap().success();
    assert!(ok);
    std::fs::set_permissions(&spool, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let location = format!("mbox:{0}/mail:INBOX={0}/spool", dir.path().display());
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_storage-save-helper"))
        .args([&location, "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a clean error exit, not a panic: {stderr}");
    assert!(stderr.contains(&spool.display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("missing +r+w perm"), "says what is missing: {stderr}");
    assert!(stderr.contains("owned by 0(root):0(root) mode=0600"), "says why: {stderr}");
    assert!(stderr.contains("euid=65534(nobody)"), "says who we are: {stderr}");
    assert!(stderr.contains(&format!("chown nobody:root {}", spool.display())), "says the fix: {stderr}");
}
