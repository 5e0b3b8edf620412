//! Deleting or corrupting the index files of a 5,000-message mailbox: it
//! opens, is rebuilt from the mail files with UIDs, UIDVALIDITY, UIDNEXT,
//! flags and keywords preserved, and a warning is logged.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{
    warnings, FlagOp, FlagUpdate, Flags, Keywords, MailLocation, NewMessage, User,
};

type Snapshot = (u32, u32, BTreeMap<u32, (Flags, Keywords, String)>);

fn user(location: &str) -> User {
    let mut user =
        User::with_location("rebuild", MailLocation::parse(location, &MailVars::default(), None).unwrap());
    user.fsync = false;
    user
}

fn snapshot(user: &User) -> Snapshot {
    let inbox = user.open("INBOX").unwrap();
    let st = inbox.status();
    let messages = inbox.messages().map(|m| (m.uid, (m.flags, m.keywords.clone(), m.guid.clone()))).collect();
    (st.uid_validity, st.uid_next, messages)
}

fn fill(user: &User) -> Snapshot {
    let mut inbox = user.open("INBOX").unwrap();
    for batch in 0..10 {
        let messages: Vec<NewMessage> = (0..500)
            .map(|i| {
                let n = batch * 500 + i;
                NewMessage {
                    data: format!("Subject: {n}\n\n{}\n", "x".repeat(n % 200)).into_bytes(),
                    flags: Flags((n % 32) as u8),
                    keywords: Keywords::new(),
                    received: Some(1_600_000_000 + n as i64),
                }
            })
            .collect();
        inbox.save_many(&messages).unwrap();
    }
    let kw: Keywords = ["$Label1".to_string(), "project x".to_string()].into_iter().collect();
    let some: Vec<u32> = (1..=5000).step_by(7).collect();
    inbox
        .store_flags(
            &some,
            &FlagUpdate { op: FlagOp::Add, flags: Flags::FLAGGED, keywords: kw, unchanged_since: None },
        )
        .unwrap();
    inbox.expunge(&[10, 20, 4999, 5000]).unwrap();
    drop(inbox);
    let snap = snapshot(user);
    assert_eq!(snap.2.len(), 4996);
    assert_eq!(snap.1, 5001);
    snap
}

fn expect_rebuilt(user: &User, before: &Snapshot, index_dir: &Path, what: &str) {
    let dir = index_dir.display().to_string();
    let count = || warnings().iter().filter(|w| w.contains("rebuilding index") && w.contains(&dir)).count();
    let seen = count();
    let after = snapshot(user);
    assert_eq!(after.0, before.0, "{what}: UIDVALIDITY");
    assert_eq!(after.1, before.1, "{what}: UIDNEXT");
    assert!(after.2 == before.2, "{what}: messages, flags, keywords or GUIDs differ");
    assert_eq!(count(), seen + 1, "{what}: no rebuild warning for {dir}");
}

fn damage_all(user: &User, before: &Snapshot, index_dir: &Path) {
    let index = index_dir.join("dovecote.index");
    let log = index_dir.join("dovecote.log");
    fs::remove_file(&index).unwrap();
    fs::remove_file(&log).unwrap();
    expect_rebuilt(user, before, index_dir, "deleted index and log");

    let data = fs::read(&index).unwrap();
    fs::write(&index, &data[..data.len() / 2]).unwrap();
    expect_rebuilt(user, before, index_dir, "truncated index");

    let mut data = fs::read(&index).unwrap();
    let mid = data.len() / 2;
    data[mid..mid + 64].fill(b'#');
    fs::write(&index, &data).unwrap();
    expect_rebuilt(user, before, index_dir, "garbage in index");

    fs::write(&log, b"garbage").unwrap();
    expect_rebuilt(user, before, index_dir, "garbage log header");

    fs::remove_file(&index).unwrap();
    expect_rebuilt(user, before, index_dir, "deleted index only");
}

#[test]
fn maildir_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let user = user(&format!("maildir:{}/Maildir:INDEX={}/idx", dir.path().display(), dir.path().display()));
    let before = fill(&user);
    damage_all(&user, &before, &dir.path().join("idx"));
}

#[test]
fn sdbox_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let user = user(&format!("sdbox:{}/mail", dir.path().display()));
    let before = fill(&user);
    damage_all(&user, &before, &dir.path().join("mail/mailboxes/INBOX/dbox-Mails"));
}
