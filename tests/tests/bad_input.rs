//! Bad configurations fail at startup with one fatal line naming the
//! cause, a non-zero exit, and nothing left running (issue 3 acceptance).

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;

/// Starts the master on `body`, expects it to fail, and returns its stderr.
fn start_fails(name: &str, body: &str) -> (String, String) {
    let mut dovecot = Instance::spawn(name, body, |_| {});
    let master = dovecot.pid();
    let code = dovecot.wait_exit(Duration::from_secs(5));
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    assert!(children(master).is_empty(), "nothing left running");
    let conf = dovecot.conf.display().to_string();
    let leftovers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| alive(*p) && cmdline(*p).contains(&conf))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!dovecot.base_dir.join("master.pid").exists());
    (dovecot.stderr_text(), dovecot.log_text())
}

fn one_fatal_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(lines[0].starts_with("Fatal: "), "{stderr:?}");
    lines[0]
}

#[test]
fn unknown_unix_listener_user_is_fatal() {
    let (stderr, log) = start_fails(
        "nouser",
        "service echo {\n  executable = echo-service\n  unix_listener echo {\n    user = nosuchuser\n  }\n}\n",
    );
    let line = one_fatal_line(&stderr);
    assert!(
        line.contains("service(echo) User doesn't exist: nosuchuser (See service echo { unix_listener "),
        "{line}"
    );
    assert!(log.contains("master: Fatal: service(echo) User doesn't exist: nosuchuser"), "{log}");
}

#[test]
fn port_in_use_is_fatal() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let (stderr, _) = start_fails(
        "portbusy",
        &format!("service echo {{\n  executable = echo-service\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n"),
    );
    let line = one_fatal_line(&stderr);
    assert_eq!(
        line,
        format!("Fatal: Failed to start listeners: service(echo): listen(127.0.0.1, {port}) failed: Address already in use")
    );
    drop(holder);
}

#[test]
fn unreadable_ssl_key_is_fatal() {
    let dir = test_dir("sslkey-files");
    let key = dir.join("missing-key.pem");
    let (stderr, _) = start_fails(
        "sslkey",
        &format!(
            "ssl = yes\nssl_cert = </etc/hostname\nssl_key = <{}\nservice echo {{\n  executable = echo-service\n}}\n",
            key.display()
        ),
    );
    let line = one_fatal_line(&stderr);
    assert!(
        line.contains(&format!("ssl_key: Can't open file {}: No such file or directory", key.display())),
        "{line}"
    );
    assert!(line.contains("dovecot.conf line 10"), "names file and line: {line}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_master_on_the_same_base_dir_is_refused() {
    let port = free_port();
    let body = format!("service echo {{\n  executable = echo-service\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n");
    let first = Instance::start("twice", &body);
    let out = std::process::Command::new(dovecot()).arg("-F").arg("-c").arg(&first.conf).output().unwrap();
    assert_eq!(out.status.code(), Some(89));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "Fatal: Dovecot is already running with PID {} (read from {}/master.pid)",
            first.pid(),
            first.base_dir.display()
        )
    );
}
