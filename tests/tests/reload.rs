//! Reload, stop, systemd notification and socket activation (issue 3
//! acceptance).

mod common;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

fn echo(port: u16, extra: &str) -> String {
    format!(
        "service echo {{\n  executable = echo-service\n  process_min_avail = 1\n  inet_listener echo {{\n    port = {port}\n  }}\n{extra}}}\n"
    )
}

fn reload_and_wait(dovecot: &mut Instance) {
    dovecot.signal(Signal::SIGHUP);
    assert!(dovecot.wait_notify("RELOADING=1", Duration::from_secs(3)), "RELOADING=1");
    assert!(dovecot.wait_notify("READY=1", Duration::from_secs(3)), "READY=1 after reload");
}

#[test]
fn sighup_adds_a_listener_and_shutdown_clients_no_keeps_sessions() {
    let (p1, p2) = (free_port(), free_port());
    let mut dovecot = Instance::start("reload-add", &format!("shutdown_clients = no\n{}", echo(p1, "")));
    let mut old = connect(p1);
    let old_pid = served_by(&mut old);
    dovecot.rewrite_config(&format!(
        "shutdown_clients = no\n{}",
        echo(p1, &format!("  inet_listener echo2 {{\n    port = {p2}\n  }}\n"))
    ));
    reload_and_wait(&mut dovecot);
    assert!(dovecot.log_text().contains("master: Warning: SIGHUP received - reloading configuration"));
    let mut new = connect(p2);
    let new_pid = served_by(&mut new);
    assert_ne!(new_pid, old_pid, "new processes use the new config");
    // The session opened before the reload still works, and keeps working.
    assert_eq!(ask(&mut old, "after reload"), "after reload");
    // A moment later it still works (nothing ends it in the background).
    assert!(!wait_for(Duration::from_millis(300), || !alive(old_pid)));
    assert_eq!(ask(&mut old, "still"), "still");
    // Its process takes no new clients: p1 now goes to a new process.
    let mut again = connect(p1);
    assert_ne!(served_by(&mut again), old_pid);
}

/// Dovecot's timeline with shutdown_clients = yes (reference §2.12): old
/// processes stop accepting at once; the master sends SIGTERM to those
/// still alive 6 s after the reload (their clients get the protocol's
/// goodbye, here `BYE`), SIGKILL 6 s later.
#[test]
fn reload_with_default_shutdown_clients_ends_old_sessions() {
    let port = free_port();
    let mut dovecot = Instance::start("reload-end", &echo(port, ""));
    let mut old = connect(port);
    let old_pid = served_by(&mut old);
    let reloaded = Instant::now();
    reload_and_wait(&mut dovecot);
    assert_eq!(ask(&mut old, "still served"), "still served");
    old.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let bye = read_line(&mut old);
    let waited = reloaded.elapsed();
    assert_eq!(bye, "BYE");
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(9), "ended after {waited:?}");
    assert!(wait_for(Duration::from_secs(2), || !alive(old_pid)));
    assert!(dovecot.log_text().contains("Processes aren't dying after reload"));
}

#[test]
fn no_connection_is_refused_during_20_reloads() {
    let port = free_port();
    let mut dovecot = Instance::start("reload-loop", &echo(port, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (stop, refused, made) = (stop.clone(), refused.clone(), made.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => {
                        drop(s);
                        made.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("connect: {e}"),
                }
            }
        })
    };
    for _ in 0..20 {
        reload_and_wait(&mut dovecot);
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(made.load(Ordering::Relaxed) > 20);
    assert_eq!(refused.load(Ordering::Relaxed), 0, "refused connections during reloads");
    let mut client = connect(port);
    assert_eq!(ask(&mut client, "ok"), "ok");
}

#[test]
fn reload_with_a_syntax_error_keeps_the_old_config() {
    let port = free_port();
    let mut dovecot = Instance::start("reload-bad", &echo(port, ""));
    let mut client = connect(port);
    let pid = served_by(&mut client);
    dovecot.rewrite_config(&format!("{}service broken {{\n  process_min_avail = 1 {{\n", echo(port, "")));
    reload_and_wait(&mut dovecot);
    let log = dovecot.log_text();
    let line = log.lines().find(|l| l.contains("Config reload failed:")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!(
            "master: Error: Config reload failed: Error in configuration file {} line ",
            dovecot.conf.display()
        )),
        "{line}"
    );
    // Same processes, same listeners.
    assert_eq!(ask(&mut client, "old config"), "old config");
    let mut again = connect(port);
    assert_eq!(ask(&mut again, "x"), "x");
    assert!(alive(pid));
}

#[test]
fn sigterm_stops_within_2s_leaving_nothing() {
    let port = free_port();
    let mut dovecot = Instance::start("stop", &echo(port, "  process_min_avail = 3\n"));
    let mut client = connect(port);
    served_by(&mut client);
    let children = dovecot.children();
    assert!(children.len() >= 3);
    let pid_file = dovecot.base_dir.join("master.pid");
    assert!(pid_file.exists());
    let started = Instant::now();
    dovecot.signal(Signal::SIGTERM);
    let code = dovecot.wait_exit(Duration::from_secs(2));
    assert_eq!(code, Some(0), "exit 0 within 2 s");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(children.iter().all(|p| !alive(*p)), "no descendant left: {children:?}");
    assert!(!pid_file.exists(), "pid file removed");
    assert!(dovecot.wait_notify("STOPPING=1", Duration::from_secs(1)));
    assert!(dovecot.log_text().contains("master: Warning: Killed with signal 15 (by pid="));
}

#[test]
fn doveadm_stop_and_dovecot_reload_use_the_master() {
    let port = free_port();
    let mut dovecot = Instance::start("cli", &echo(port, ""));
    let out = Command::new(common::dovecot()).arg("-c").arg(&dovecot.conf).arg("reload").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dovecot.wait_notify("RELOADING=1", Duration::from_secs(3)));
    assert!(dovecot.wait_notify("READY=1", Duration::from_secs(3)));
    let out = dovecot.doveadm(&["stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dovecot.wait_exit(Duration::from_secs(2)), Some(0));
    let out = dovecot.doveadm(&["reload"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Fatal: Dovecot is not running (read from "));
}

#[test]
fn notify_socket_gets_ready_with_mainpid_and_status() {
    let port = free_port();
    let mut dovecot = Instance::spawn("notify", &echo(port, ""), |_| {});
    assert!(dovecot.wait_notify("READY=1", Duration::from_secs(5)));
    let pid = dovecot.pid();
    dovecot.signal(Signal::SIGHUP);
    assert!(dovecot.wait_notify("RELOADING=1", Duration::from_secs(3)));
    assert!(dovecot.wait_notify(&format!("MAINPID={pid}"), Duration::from_secs(3)));
    dovecot.signal(Signal::SIGTERM);
    assert!(dovecot.wait_notify("STOPPING=1", Duration::from_secs(2)));
    assert_eq!(dovecot.wait_exit(Duration::from_secs(2)), Some(0));
}

#[test]
fn ready_datagram_carries_mainpid_status_and_reload_carries_monotonic_usec() {
    let port = free_port();
    let dovecot = Instance::spawn("notify2", &echo(port, ""), |_| {});
    let mut ready = None;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while ready.is_none() && Instant::now() < deadline {
        if let Ok(n) = dovecot.notify.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains("READY=1") {
                ready = Some(text);
            }
        }
    }
    let ready = ready.expect("READY=1");
    assert!(ready.contains(&format!("MAINPID={}", dovecot.pid())), "{ready}");
    assert!(ready.contains("STATUS="), "{ready}");
    dovecot.signal(Signal::SIGHUP);
    let mut reloading = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while reloading.is_none() && Instant::now() < deadline {
        if let Ok(n) = dovecot.notify.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains("RELOADING=1") {
                reloading = Some(text);
            }
        }
    }
    assert!(reloading.expect("RELOADING=1").contains("MONOTONIC_USEC="));
}

#[test]
fn listen_fds_from_systemd_are_adopted() {
    let port = free_port();
    let dir = test_dir("activation");
    let conf = dir.join("dovecot.conf");
    std::fs::write(&conf, config_text(&dir, &echo(port, ""))).unwrap();
    require_root();
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--fdname=echo")
        .arg(dovecot())
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    // The activator listens first and starts the master on the first
    // connection; that connection waits in the passed socket's backlog.
    assert!(wait_for(Duration::from_secs(3), || !ss_lines(port).is_empty()));
    let mut client = connect(port);
    let answer = ask(&mut client, "activated");
    let log = std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default();
    let _ = activator.kill();
    let _ = activator.wait();
    assert_eq!(
        answer,
        "activated",
        "log:\n{log}\nstderr:\n{}",
        std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    );
    // Only the adopted socket listens: no second bind happened.
    assert!(!log.contains("Failed to start listeners"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
