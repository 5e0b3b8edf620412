//! Crash safety: SIGKILL a saving process at random points 200 times per
//! format. Every save that returned is present afterwards with its flags and
//! content, no UID is used twice, and the index opens (or is rebuilt).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{Flags, MailLocation, User};

const RUNS: u32 = 200;

fn run(location: &str) {
    let helper = env!("CARGO_BIN_EXE_storage-save-helper");
    let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
    let mut next = 0u64;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..RUNS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(helper)
            .args([location, &next.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // A test, not an event loop: wait a random time before the kill.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_micros(2_000 + seed % 50_000));
        let _ = child.kill();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let _ = child.wait();
        for line in out.lines() {
            let mut f = line.split(' ').skip(1);
            let (Some(uid), Some(n)) = (f.next(), f.next()) else { continue };
            let (uid, n): (u32, u64) = (uid.parse().unwrap(), n.parse().unwrap());
            assert!(acked.insert(uid, n).is_none(), "UID {uid} acknowledged twice");
            next = next.max(n + 1);
        }
        next += 1;
    }
    assert!(acked.len() > 50, "the helper saved too little ({}) to test anything", acked.len());
    let loc = MailLocation::parse(location, &MailVars::default(), None).unwrap();
    let mut inbox = User::with_location("crash", loc).open("INBOX").unwrap();
    let uids: Vec<u32> = inbox.messages().map(|m| m.uid).collect();
    let guids: std::collections::BTreeSet<String> = inbox.messages().map(|m| m.guid.clone()).collect();
    assert_eq!(guids.len(), uids.len(), "duplicate GUIDs");
    for (uid, n) in &acked {
        let m = inbox
            .message(*uid)
            .unwrap_or_else(|| panic!("acknowledged UID {uid} (message {n}) lost"))
            .clone();
        assert_eq!(m.flags.contains(Flags::SEEN), n % 2 == 0, "flags of UID {uid}");
        assert_eq!(m.keywords.contains("crash"), n % 3 == 0, "keywords of UID {uid}");
        let body = inbox.read_message(*uid).unwrap();
        assert_eq!(body, format!("Subject: {n}\n\nmessage {n}\n").into_bytes());
    }
}

#[test]
fn maildir_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    run(&format!("maildir:{}/Maildir", dir.path().display()));
}

#[test]
fn sdbox_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    run(&format!("sdbox:{}/sdbox", dir.path().display()));
}

#[test]
fn mbox_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    run(&format!("mbox:{0}/mail:INBOX={0}/spool", dir.path().display()));
}
