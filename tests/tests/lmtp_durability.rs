//! Durability (issue 8 acceptance): 500 deliveries over LMTP while the
//! lmtp process is SIGKILLed at random moments. Every message that got a
//! `250` must be in the Maildir exactly once and complete; a message that
//! did not get one may be absent or present once, but never partial.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const MESSAGES: usize = 500;

const CLIENT: &str = r#"
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = f = None
def body(i):
    return ("Subject: msg-%d\r\nMessage-ID: <%d@t>\r\n\r\n" % (i, i)) + ("x" * 70 + "\r\n") * 50 + ("end-%d\r\n" % i)
def expect(prefix):
    r = f.readline()
    if not r.startswith(prefix):
        raise Exception(r)
for i in range(n):
    try:
        if s is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            f = s.makefile("rb")
            expect(b"220 ")
        s.sendall(b"MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        expect(b"250 "); expect(b"250 "); expect(b"354 ")
        s.sendall(body(i).encode() + b".\r\n")
        expect(b"250 2.0.0 <alice> ")
        print("ACK", i, flush=True)
    except Exception as e:
        print("LOST", i, repr(e), flush=True)
        try:
            s.close()
        except Exception:
            pass
        s = None
print("DONE", flush=True)
"#;

#[test]
fn sigkill_during_500_deliveries_loses_nothing_acknowledged() {
    let files = PathBuf::from(format!("/tmp/dovecote-test-lmtp-durability-{}-files", std::process::id()));
    let _ = std::fs::remove_dir_all(&files);
    let home = files.join("home");
    std::fs::create_dir_all(&home).unwrap();
    nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(uid_of("vmail"))), None).unwrap();
    std::fs::write(
        files.join("users"),
        format!("alice:{{PLAIN}}pw:{}:{}::{}/alice::\n", uid_of("vmail"), gid_of("vmail"), home.display()),
    )
    .unwrap();
    bin_dir();
    let port = free_port();
    let body = format!(
        "protocols = lmtp\nhostname = mx.test\n\
         passdb {{\n  driver = passwd-file\n  args = {f}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {f}/users\n}}\n\
         mail_location = maildir:~/Maildir\n\
         service lmtp {{\n  inet_listener lmtp {{\n    port = {port}\n  }}\n}}\n",
        f = files.display()
    );
    let dovecot = Instance::start("lmtp-durability", &body);
    let master = dovecot.pid();
    // The client gives up on a refused connection: start it once the
    // listener is up (on a loaded machine that can take a moment).
    assert!(
        wait_for(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "lmtp listener not up: {}",
        dovecot.log_text()
    );
    let mut client = Command::new("python3")
        .args(["-c", CLIENT, &port.to_string(), &MESSAGES.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = client.stdout.take().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Kills start with the first acknowledged delivery: a kill while the
    // very first lmtp process is still starting up makes the master
    // throttle the service (as Dovecot's does), and the client then loses
    // everything at once instead of testing deliveries cut mid-way.
    let started = Arc::new(AtomicBool::new(false));
    // The killer is a plain thread pacing itself, not an event loop.
    #[allow(clippy::disallowed_methods)]
    let killer = {
        let done = done.clone();
        let started = started.clone();
        std::thread::spawn(move || {
            // A small LCG: random enough pauses, no extra crates.
            let mut seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
            let mut kills = 0;
            while !done.load(Ordering::Relaxed) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 180));
                if !started.load(Ordering::Relaxed) {
                    continue;
                }
                for pid in children_titled(master, "dovecot/lmtp") {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::SIGKILL,
                    );
                    kills += 1;
                }
            }
            kills
        })
    };
    let mut acked = HashSet::new();
    let mut lost = 0;
    let mut first_lost = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let mut words = line.split(' ');
        match (words.next(), words.next().and_then(|n| n.parse::<usize>().ok())) {
            (Some("ACK"), Some(n)) => {
                started.store(true, Ordering::Relaxed);
                acked.insert(n);
            }
            (Some("LOST"), Some(_)) => {
                if lost == 0 {
                    first_lost = line.clone();
                }
                lost += 1
            }
            _ => {}
        }
    }
    done.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    assert!(client.wait().unwrap().success());
    assert!(
        kills > 5 && lost > 0,
        "the test must actually kill deliveries (kills {kills}, lost {lost}, first: {first_lost})\n{}",
        dovecot.log_text()
    );
    assert!(acked.len() > MESSAGES / 4, "too few deliveries got through: {}", acked.len());
    // Every visible message is complete; acked ones exactly once.
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(home.join("alice/Maildir").join(sub)).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let n: usize = text
                .split("Subject: msg-")
                .nth(1)
                .and_then(|r| r.split('\n').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unparseable message {}:\n{text}", entry.path().display()));
            let expected_body = format!("{}end-{n}\n", format!("{}\n", "x".repeat(70)).repeat(50));
            assert!(text.ends_with(&expected_body), "partial message {n} at {}", entry.path().display());
            *seen.entry(n).or_default() += 1;
        }
    }
    for n in &acked {
        assert_eq!(seen.get(n), Some(&1), "acknowledged message {n} must be present exactly once");
    }
    for (n, count) in &seen {
        assert_eq!(*count, 1, "message {n} stored {count} times");
    }
    eprintln!("durability: {} acked, {lost} lost, {kills} kills, {} stored", acked.len(), seen.len());
    let _ = std::fs::remove_dir_all(&files);
}
