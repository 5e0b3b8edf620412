//! mbsync (isync, issue 7 acceptance): a 1,000-message mailbox tree on
//! the real server is synced to a local Maildir, both sides are changed,
//! and mbsync must make them converge, twice, with no errors and with a
//! final pass that finds nothing to do; on Maildir, sdbox and mbox.
//!
//! The IMAP and Maildir work (filling the server through pipelined
//! MULTIAPPENDs, changing either side, comparing Message-ID, body, flags
//! and INTERNALDATE (`CopyArrivalDate`: the Maildir file's mtime) per
//! folder, and every message against the bytes it was written with) is
//! `tests/imap/mbsync.py`; this file runs the server and mbsync and checks
//! what mbsync itself says and sends.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::imap::{start_imap, ImapServer};

/// A special-use folder from the configuration, as Debian's
/// 15-mailboxes.conf has it.
const NAMESPACE: &str = "namespace inbox {\n inbox = yes\n \
     mailbox Sent {\n  special_use = \\Sent\n  auto = subscribe\n }\n \
     mailbox Trash {\n  special_use = \\Trash\n }\n}\n";

fn script() -> String {
    format!("{}/tests/imap/mbsync.py", env!("CARGO_MANIFEST_DIR"))
}

fn python(server: &ImapServer, args: &[&str]) -> String {
    let out = Command::new("python3").arg(script()).args(args).output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mbsync.py {args:?}:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.dovecot.log_text()
    );
    stdout
}

/// What one mbsync run did on the wire.
struct Run {
    /// The IMAP commands mbsync sent, without tags or arguments (`UID
    /// FETCH`, `APPEND`...).
    commands: Vec<String>,
    stdout: String,
}

impl Run {
    fn sent(&self, verb: &str) -> usize {
        self.commands.iter().filter(|c| *c == verb).count()
    }
}

/// Runs `mbsync -Dn -c rc -a` (`-Dn` shows the IMAP exchange on stdout,
/// literals elided). It must exit 0 with nothing on stderr, and the
/// server must have answered every command OK. The output is kept in the
/// test directory as `name.log`.
fn mbsync(server: &ImapServer, rc: &Path, name: &str) -> Run {
    let out = Command::new("mbsync").arg("-Dn").arg("-c").arg(rc).arg("-a").output().expect("run mbsync");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::write(rc.with_file_name(format!("{name}.log")), &stdout);
    let tail: String =
        stdout.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{name}: mbsync exited {:?}\nstdout (end):\n{tail}\nstderr:\n{stderr}\nserver log:\n{}",
        out.status,
        server.dovecot.log_text()
    );
    let mut commands = Vec::new();
    for line in stdout.lines() {
        if let Some(sent) = line.strip_prefix(">>> ") {
            let words: Vec<&str> = sent.split_whitespace().skip(1).take(2).collect();
            let verb = match words.as_slice() {
                ["UID", second, ..] => format!("UID {second}"),
                [first, ..] => first.to_string(),
                [] => String::new(),
            };
            commands.push(verb.to_ascii_uppercase());
        }
        let mut words = line.split_whitespace();
        let tagged = words.next().is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
        if let (true, Some(status @ ("NO" | "BAD"))) = (tagged, words.next()) {
            panic!("{name}: the server answered {status}: {line}\nstdout (end):\n{tail}");
        }
    }
    Run { commands, stdout }
}

/// Every file name under the local Maildir root: a run that changes
/// nothing locally leaves this list as it was.
fn local_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn write_rc(dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let root = dir.join("local");
    std::fs::create_dir_all(&root).expect("create the local Maildir root");
    let rc = dir.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount server\nHost 127.0.0.1\nPort {port}\nUser alice\nPass Secr3t\n\
             SSLType None\nAuthMechs LOGIN PLAIN\n\n\
             IMAPStore far\nAccount server\n\n\
             MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\n\
             SyncState *\nSync All\nCopyArrivalDate yes\n",
            root = root.display()
        ),
    )
    .expect("write mbsyncrc");
    (rc, root)
}

fn round_trip(name: &str, location: &str, folders: &str) {
    let started = Instant::now();
    let server = start_imap(name, location, NAMESPACE);
    let port = server.imap.to_string();
    let dir = server.dovecot.dir.join("mbsync");
    let (rc, root) = write_rc(&dir, server.imap);
    let root_text = root.display().to_string();
    let populated = dir.join("populated.json").display().to_string();
    python(&server, &["populate", &port, folders, &populated]);
    let filled = started.elapsed();

    // Pass 1: everything comes down.
    let first = mbsync(&server, &rc, "pass1");
    assert!(first.sent("UID FETCH") >= 10, "pass 1 fetched nothing:\n{}", first.stdout);
    let same = python(&server, &["compare", &port, &root_text, "--content", &populated]);
    assert!(same.contains("SAME "), "{same}");

    for round in 1..=2 {
        let server_done = dir.join(format!("server-{round}.json"));
        let local_done = dir.join(format!("local-{round}.json"));
        let round_text = round.to_string();
        python(&server, &["mutate-server", &port, &round_text, &server_done.display().to_string()]);
        python(&server, &["mutate-local", &root_text, &round_text, &local_done.display().to_string()]);
        // Pass 2: both sides' changes cross over.
        let changed = mbsync(&server, &rc, &format!("round{round}-sync"));
        for verb in ["APPEND", "UID STORE", "CREATE"] {
            assert!(changed.sent(verb) > 0, "round {round}: no {verb}:\n{}", changed.stdout);
        }
        let same = python(
            &server,
            &[
                "compare",
                &port,
                &root_text,
                &server_done.display().to_string(),
                &local_done.display().to_string(),
                "--content",
                &populated,
            ],
        );
        assert!(same.contains("SAME "), "{same}");
        // Pass 3: nothing left to do on either side.
        let before = local_files(&root);
        let idle = mbsync(&server, &rc, &format!("round{round}-idle"));
        let quiet = [
            "AUTHENTICATE",
            "LOGIN",
            "CAPABILITY",
            "NAMESPACE",
            "LIST",
            "SELECT",
            "UID FETCH",
            "CLOSE",
            "LOGOUT",
        ];
        let busy: Vec<&String> = idle.commands.iter().filter(|c| !quiet.contains(&c.as_str())).collect();
        assert!(busy.is_empty(), "round {round}: a pass with nothing to do sent {busy:?}:\n{}", idle.stdout);
        let after = local_files(&root);
        let changed_files: Vec<&String> =
            after.iter().filter(|f| !before.contains(f) && !f.ends_with(".mbsyncstate")).collect();
        assert!(
            changed_files.is_empty(),
            "round {round}: a pass with nothing to do changed {changed_files:?}"
        );
        let again = python(&server, &["compare", &port, &root_text, "--content", &populated]);
        assert_eq!(same, again, "round {round}: the idle pass changed the folders");
    }
    eprintln!("{name}: filled in {filled:?}, done in {:?}", started.elapsed());
}

/// A folder with both messages and children, where the format allows it.
const TREE: &str = "INBOX=450,Archive=100,Archive/2023=100,Archive/2024=150,Sent=100,Lists/dev=100";
/// mbox folders hold messages or children, never both.
const MBOX_TREE: &str = "INBOX=450,Archive/2023=200,Archive/2024=150,Sent=100,Lists/dev=100";

#[test]
fn mbsync_round_trips_on_maildir() {
    round_trip("mbsync-maildir", "maildir:~/Maildir", TREE);
}

#[test]
fn mbsync_round_trips_on_sdbox() {
    round_trip("mbsync-sdbox", "sdbox:~/sdbox", TREE);
}

#[test]
fn mbsync_round_trips_on_mbox() {
    round_trip("mbsync-mbox", "mbox:~/mail:INBOX=~/mail/inbox", MBOX_TREE);
}
