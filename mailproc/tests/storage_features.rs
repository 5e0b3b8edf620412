//! Storage features beyond the model test: `\Recent` claimed by exactly one
//! session, COPY by hard link, an index rebuild that keeps HIGHESTMODSEQ
//! and tombstones, the mailbox-list log (create/delete), the cheap
//! "changed since sync" check, APPENDLIMIT, and mbox mailboxes that are
//! files (no children, `\NoInferiors`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{
    FlagOp, FlagUpdate, Flags, Keywords, ListChangeKind, ListOptions, MailLocation, NewMessage, StorageError,
    User,
};

fn user(location: &str) -> User {
    let mut user =
        User::with_location("features", MailLocation::parse(location, &MailVars::default(), None).unwrap());
    user.fsync = false;
    user
}

fn msg(n: u32) -> NewMessage {
    NewMessage {
        data: format!("Subject: {n}\n\nbody {n}\n").into_bytes(),
        flags: Flags::empty(),
        keywords: Keywords::new(),
        received: Some(1_700_000_000),
    }
}

fn locations(dir: &Path) -> Vec<(String, PathBuf)> {
    let d = dir.display();
    vec![
        (format!("maildir:{d}/Maildir"), dir.join("Maildir")),
        (format!("sdbox:{d}/sdbox"), dir.join("sdbox/mailboxes/INBOX/dbox-Mails")),
        (format!("mbox:{d}/mail:INBOX={d}/spool"), dir.join("mail/.imap/INBOX")),
    ]
}

#[test]
fn recent_belongs_to_the_first_session_that_selects() {
    let dir = tempfile::tempdir().unwrap();
    for (location, _) in locations(dir.path()) {
        let u = user(&location);
        let mut inbox = u.open("INBOX").unwrap();
        inbox.save(&msg(1)).unwrap();
        inbox.save(&msg(2)).unwrap();
        assert_eq!(u.status("INBOX").unwrap().recent, 2, "{location}: STATUS before any SELECT");

        let mut a = u.open("INBOX").unwrap();
        a.claim_recent().unwrap();
        assert_eq!(a.recent_uids(), vec![1, 2], "{location}");
        assert!(a.is_recent(1));
        assert_eq!(a.status().recent, 2);
        let mut b = u.open("INBOX").unwrap();
        b.claim_recent().unwrap();
        assert_eq!(b.status().recent, 0, "{location}: second session gets no \\Recent");
        assert_eq!(u.status("INBOX").unwrap().recent, 0, "{location}: STATUS after SELECT");

        // A delivery while both are open: recent for whoever syncs first.
        inbox.save(&msg(3)).unwrap();
        assert_eq!(u.status("INBOX").unwrap().recent, 1);
        b.sync().unwrap();
        a.sync().unwrap();
        assert_eq!(b.recent_uids(), vec![3], "{location}");
        assert_eq!(a.recent_uids(), vec![1, 2], "{location}");
        a.expunge(&[1]).unwrap();
        a.sync().unwrap();
        assert_eq!(a.status().recent, 1, "{location}: expunged messages are not recent");

        // Survives a reopen (first recent UID is in the index).
        drop((a, b, inbox));
        let mut c = u.open("INBOX").unwrap();
        c.claim_recent().unwrap();
        assert_eq!(c.status().recent, 0, "{location}");
    }
}

#[test]
fn copy_hard_links_maildir_and_sdbox_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    for (location, mailbox_dir) in [
        (
            format!("maildir:{d}/Maildir"),
            Box::new(|l: &str| dir.path().join("Maildir/.Copy").join(l)) as Box<dyn Fn(&str) -> PathBuf>,
        ),
        (
            format!("sdbox:{d}/sdbox"),
            Box::new(|l: &str| dir.path().join("sdbox/mailboxes/Copy/dbox-Mails").join(l)),
        ),
    ] {
        let u = user(&location);
        u.create("Copy").unwrap();
        let mut inbox = u.open("INBOX").unwrap();
        let mut m = msg(1);
        m.flags = Flags::SEEN;
        inbox.save(&m).unwrap();
        let mut dest = u.open("Copy").unwrap();
        let pairs = inbox.copy_to(&[1], &mut dest).unwrap();
        assert_eq!(pairs, vec![(1, 1)]);
        let src = inbox.message(1).unwrap().clone();
        let copy = dest.message(1).unwrap().clone();
        let src_path = if location.starts_with("maildir") {
            dir.path().join("Maildir").join(&src.location)
        } else {
            dir.path().join("sdbox/mailboxes/INBOX/dbox-Mails").join(&src.location)
        };
        let copy_path = mailbox_dir(&copy.location);
        let (a, b) = (fs::metadata(&src_path).unwrap(), fs::metadata(&copy_path).unwrap());
        assert_eq!(a.ino(), b.ino(), "{location}: copy is a hard link");
        assert_eq!(a.nlink(), 2);
        assert_eq!(copy.flags, Flags::SEEN, "{location}: flags copied");
        // The copy is independent: flag it, expunge the source.
        let add = FlagUpdate {
            op: FlagOp::Add,
            flags: Flags::FLAGGED,
            keywords: Keywords::new(),
            unchanged_since: None,
        };
        dest.store_flags(&[1], &add).unwrap();
        inbox.sync().unwrap();
        assert_eq!(inbox.message(1).unwrap().flags, Flags::SEEN, "{location}: source flags untouched");
        inbox.expunge(&[1]).unwrap();
        drop((inbox, dest));
        let mut dest = u.open("Copy").unwrap();
        assert_eq!(dest.read_message(1).unwrap(), msg(1).data);
        assert_eq!(dest.message(1).unwrap().flags, Flags::SEEN.union(Flags::FLAGGED));
    }
}

#[test]
fn rebuild_keeps_modseq_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    for (location, index_dir) in locations(dir.path()) {
        let u = user(&location);
        let mut inbox = u.open("INBOX").unwrap();
        for n in 1..=6 {
            inbox.save(&msg(n)).unwrap();
        }
        let add = FlagUpdate {
            op: FlagOp::Add,
            flags: Flags::ANSWERED,
            keywords: Keywords::new(),
            unchanged_since: None,
        };
        inbox.store_flags(&[2, 3], &add).unwrap();
        inbox.expunge(&[4, 5]).unwrap();
        let before = inbox.status();
        drop(inbox);

        // Index gone, log kept: tombstones and modseqs come back from the log.
        fs::remove_file(index_dir.join("dovecote.index")).unwrap();
        let inbox = u.open("INBOX").unwrap();
        let after = inbox.status();
        assert!(after.highest_modseq > before.highest_modseq, "{location}: {after:?} vs {before:?}");
        assert_eq!(
            (after.uid_validity, after.uid_next),
            (before.uid_validity, before.uid_next),
            "{location}"
        );
        let expunged: Vec<u32> = inbox.changes_since(0).expunged.iter().map(|t| t.uid).collect();
        assert_eq!(expunged, vec![4, 5], "{location}: tombstones kept");
        assert_eq!(inbox.message(2).unwrap().flags, Flags::ANSWERED, "{location}");
        let highest = after.highest_modseq;
        drop(inbox);

        // Both gone: the modseq ceiling next to the mail still holds.
        fs::remove_file(index_dir.join("dovecote.index")).unwrap();
        fs::remove_file(index_dir.join("dovecote.log")).unwrap();
        let inbox = u.open("INBOX").unwrap();
        assert!(inbox.status().highest_modseq > highest, "{location}");
        assert_eq!(inbox.message(3).unwrap().flags, Flags::ANSWERED, "{location}");
    }
}

#[test]
fn mailbox_list_log_records_create_delete_rename_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    for (location, _) in locations(dir.path()) {
        let u = user(&location);
        let start = u.mailbox_list_modseq().unwrap();
        u.create("Work").unwrap();
        let guid = u.open("Work").unwrap().status().guid;
        u.subscribe("Work", true).unwrap();
        u.rename("Work", "Old").unwrap();
        u.delete("Old").unwrap();
        let kinds: Vec<ListChangeKind> =
            u.mailbox_list_changes(start).unwrap().into_iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ListChangeKind::Create { guid: guid.clone(), name: "Work".into() },
                ListChangeKind::Subscribe { name: "Work".into() },
                ListChangeKind::Rename { guid: guid.clone(), old: "Work".into(), new: "Old".into() },
                ListChangeKind::Delete { guid, name: "Old".into() },
            ],
            "{location}"
        );
        assert_eq!(u.mailbox_list_modseq().unwrap(), start + 4);
    }
}

#[test]
fn changed_since_sync_sees_other_sessions() {
    let dir = tempfile::tempdir().unwrap();
    for (location, index_dir) in locations(dir.path()) {
        let u = user(&location);
        let mut a = u.open("INBOX").unwrap();
        let mut b = u.open("INBOX").unwrap();
        assert!(a.notify_paths().contains(&index_dir), "{location}: {:?}", a.notify_paths());
        // Settle: our own first writes may look like news once.
        a.sync().unwrap();
        b.save(&msg(1)).unwrap();
        assert!(a.changed_since_sync(), "{location}: save by another session");
        a.sync().unwrap();
        assert_eq!(a.status().messages, 1);
        assert!(!a.changed_since_sync(), "{location}: nothing new after sync");
    }
}

#[test]
fn append_limit_refuses_larger_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut u = user(&format!("sdbox:{}/sdbox", dir.path().display()));
    assert_eq!(u.open("INBOX").unwrap().append_limit(), None);
    u.settings.append_limit = Some(40);
    let mut inbox = u.open("INBOX").unwrap();
    assert_eq!(inbox.append_limit(), Some(40));
    let big = NewMessage { data: vec![b'x'; 41], ..msg(1) };
    assert!(inbox.save(&big).is_err());
    inbox.save(&msg(1)).unwrap();
    assert_eq!(inbox.status().messages, 1);
}

#[test]
fn a_second_maildir_file_with_a_known_base_name_is_a_whole_new_message() {
    let dir = tempfile::tempdir().unwrap();
    let u = user(&format!("maildir:{}/Maildir", dir.path().display()));
    let mut inbox = u.open("INBOX").unwrap();
    inbox.save(&msg(1)).unwrap();
    let first = inbox.message(1).unwrap().clone();
    // A copy of the file under the same base name in cur/ (as `cp` by
    // hand leaves it, with a fresh mtime): its dates must come from the
    // file itself, not be taken as known from the name.
    let src = dir.path().join("Maildir").join(&first.location);
    let copy = dir.path().join("Maildir/cur").join(format!("{}:2,S", first.guid));
    fs::copy(&src, &copy).unwrap();
    let mtime = fs::metadata(&copy).unwrap().mtime();
    inbox.sync().unwrap();
    let all: Vec<_> = inbox.messages().cloned().collect();
    assert_eq!(all.len(), 2, "{all:?}");
    let second = &all[1];
    assert_eq!(second.physical_size, first.physical_size);
    assert!(second.flags.contains(Flags::SEEN));
    assert_eq!(second.received, mtime);
    assert_ne!(second.uid, first.uid);
}

/// An mbox mailbox is a file: a child of it is refused as Dovecot refuses
/// it (CREATE and RENAME used to fail in mkdir() with an internal error),
/// and LIST says `\NoInferiors` where Dovecot does; the INBOX spool,
/// outside the mail root, can have children.
#[test]
fn mbox_mailboxes_are_files_without_children() {
    let dir = tempfile::tempdir().unwrap();
    let u = user(&format!("mbox:{0}/mail:INBOX={0}/spool", dir.path().display()));
    u.open("INBOX").unwrap();
    u.create("Sent").unwrap();
    u.create("Archive/2024").unwrap();
    for result in
        [u.create("Sent/child"), u.create("Archive/2024/deeper"), u.rename("Archive/2024", "Sent/x")]
    {
        match result {
            Err(StorageError::NotPossible(text)) => {
                assert_eq!(text, "Mailbox doesn't allow inferior mailboxes")
            }
            other => panic!("a child of an mbox file: {other:?}"),
        }
    }
    u.create("INBOX/kid").unwrap();
    let list: Vec<(String, Vec<String>)> =
        u.list("*", ListOptions::default()).unwrap().into_iter().map(|e| (e.name, e.attributes)).collect();
    let attrs =
        |name: &str| list.iter().find(|(n, _)| n == name).map(|(_, a)| a.join(" ")).unwrap_or_default();
    assert_eq!(attrs("Sent"), "\\NoInferiors", "{list:?}");
    assert_eq!(attrs("Archive/2024"), "\\NoInferiors", "{list:?}");
    assert_eq!(attrs("Archive"), "\\Noselect \\HasChildren", "{list:?}");
    assert_eq!(attrs("INBOX"), "\\HasChildren", "{list:?}");
    assert_eq!(attrs("INBOX/kid"), "\\NoInferiors", "{list:?}");
}

#[test]
fn new_maildir_files_get_uids_in_file_name_order_as_in_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    // Written (and so given inodes and mtimes) in another order than their
    // names sort in, all in the same second.
    let names = ["1700000000.M300P1.host", "1700000000.M20P1.host", "1699999999.M999P1.host"];
    for (i, name) in names.iter().enumerate() {
        fs::write(maildir.join("new").join(name), format!("Subject: {i}\n\nbody\n")).unwrap();
    }
    let u = user(&format!("maildir:{}", maildir.display()));
    let inbox = u.open("INBOX").unwrap();
    let order: Vec<&str> = inbox.messages().map(|m| m.guid.as_str()).collect();
    assert_eq!(order, ["1699999999.M999P1.host", "1700000000.M20P1.host", "1700000000.M300P1.host"]);
}

/// An sdbox save changes dbox-Mails, so every save rescans it; files the
/// index already has must not be read again (that made each save cost
/// O(mailbox size)). A file of a known message overwritten with junk
/// proves it: the scan after the next save doesn't notice.
#[test]
fn sdbox_saves_do_not_reread_the_messages_the_index_has() {
    let dir = tempfile::tempdir().unwrap();
    let u = user(&format!("sdbox:{}/sdbox", dir.path().display()));
    let mut inbox = u.open("INBOX").unwrap();
    for n in 1..=3 {
        inbox.save(&msg(n)).unwrap();
    }
    let mails = dir.path().join("sdbox/mailboxes/INBOX/dbox-Mails");
    fs::write(mails.join("u.1"), b"junk, not a dbox file").unwrap();
    // Another process's save, then ours sees the directory change.
    u.open("INBOX").unwrap().save(&msg(4)).unwrap();
    inbox.save(&msg(5)).unwrap();
    let uids: Vec<u32> = inbox.messages().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 3, 4, 5]);
    assert!(
        !dovecote_mailproc::storage::warnings().iter().any(|w| w.contains("skipping broken file")),
        "{:?}",
        dovecote_mailproc::storage::warnings()
    );
}
