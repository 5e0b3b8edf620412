//! The process tree, listeners and doveadm views match the configuration
//! (issue 3 acceptance: process tree, min_avail, owners/modes, ss, listen).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

use common::*;

fn rlimit_as(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_owned()
}

#[test]
fn process_tree_matches_the_config() {
    let port = free_port();
    let body = format!(
        "service echo-login {{\n  type = login\n  executable = echo-service\n  user = $default_login_user\n  chroot = login\n  \
         vsz_limit = 128M\n  process_min_avail = 3\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n\
         service echo-internal {{\n  executable = echo-service\n  user = $default_internal_user\n  process_min_avail = 1\n  \
         unix_listener echo-internal {{\n    mode = 0600\n  }}\n}}\n"
    );
    let mut dovecot = Instance::start("tree", &body);
    let master = dovecot.pid();
    assert_eq!(comm(master), "dovecot");
    assert_eq!(status_field(master, "Uid").split_whitespace().next(), Some("0"));

    // process_min_avail = 3: three idle login processes within 2 s of READY.
    assert!(wait_for(Duration::from_secs(2), || dovecot.children_running_as("dovenull").len() == 3));
    let login_root = std::fs::canonicalize(dovecot.base_dir.join("login")).unwrap();
    for pid in dovecot.children_running_as("dovenull") {
        assert_eq!(cmdline(pid), "dovecot/echo-service");
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
            login_root,
            "chrooted to login/"
        );
        assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
        assert_eq!(status_field(pid, "CapPrm"), "0000000000000000");
        assert_eq!(status_field(pid, "NoNewPrivs"), "1");
        assert_eq!(rlimit_as(pid), (128 * 1024 * 1024).to_string(), "vsz_limit is RLIMIT_AS");
        let gid = gid_of("dovenull").to_string();
        assert_eq!(status_field(pid, "Gid").split_whitespace().next(), Some(gid.as_str()));
    }
    // The internal service runs as $default_internal_user, not chrooted;
    // so does anvil (process_min_avail = 1, as in Dovecot), chrooted to empty/.
    let (anvil, internal): (Vec<u32>, Vec<u32>) =
        dovecot.children_running_as("dovecot").into_iter().partition(|p| cmdline(*p) == "dovecot/anvil");
    assert_eq!(anvil.len(), 1, "one anvil");
    let empty_root = std::fs::canonicalize(dovecot.base_dir.join("empty")).unwrap();
    assert_eq!(std::fs::read_link(format!("/proc/{}/root", anvil[0])).unwrap(), empty_root);
    assert_eq!(internal.len(), 1);
    assert_eq!(std::fs::read_link(format!("/proc/{}/root", internal[0])).unwrap().to_str(), Some("/"));
    assert_eq!(status_field(internal[0], "NoNewPrivs"), "1");
    // A client is served by one of the login processes.
    let mut client = connect(port);
    let pid = served_by(&mut client);
    assert!(dovecot.children_running_as("dovenull").contains(&pid));
}

#[test]
fn listeners_have_exactly_the_configured_owners_and_modes() {
    let outside = test_dir("abs-spool");
    let absolute = outside.join("auth");
    let body = format!(
        "service echo-internal {{\n  executable = echo-service\n  \
         unix_listener postfix-auth {{\n    user = postfix\n    group = postfix\n    mode = 0600\n  }}\n  \
         fifo_listener echo-fifo {{\n    user = vmail\n    mode = 0600\n  }}\n  \
         unix_listener {abs} {{\n    user = postfix\n    group = vmail\n    mode = 0660\n  }}\n}}\n",
        abs = absolute.display()
    );
    let dovecot = Instance::start("owners", &body);
    let unix = std::fs::symlink_metadata(dovecot.base_dir.join("postfix-auth")).unwrap();
    assert!(unix.file_type().is_socket());
    assert_eq!((unix.uid(), unix.gid(), unix.mode() & 0o7777), (uid_of("postfix"), gid_of("postfix"), 0o600));
    let fifo = std::fs::symlink_metadata(dovecot.base_dir.join("echo-fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!((fifo.uid(), fifo.gid(), fifo.mode() & 0o7777), (uid_of("vmail"), 0, 0o600));
    // An absolute path outside base_dir (S17).
    let abs = std::fs::symlink_metadata(&absolute).unwrap();
    assert!(abs.file_type().is_socket());
    assert_eq!((abs.uid(), abs.gid(), abs.mode() & 0o7777), (uid_of("postfix"), gid_of("vmail"), 0o660));
    // base_dir layout as Dovecot makes it.
    let login = std::fs::metadata(dovecot.base_dir.join("login")).unwrap();
    assert_eq!((login.uid(), login.gid(), login.mode() & 0o7777), (0, gid_of("dovenull"), 0o750));
    let empty = std::fs::metadata(dovecot.base_dir.join("empty")).unwrap();
    assert_eq!((empty.uid(), empty.mode() & 0o7777), (0, 0o755));
    let master = std::fs::symlink_metadata(dovecot.base_dir.join("master")).unwrap();
    assert_eq!(master.mode() & 0o7777, 0o600);
    // doveadm service status shows them with owners and modes.
    let out = dovecot.doveadm(&["service", "status", "echo-internal"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("listener: unix postfix-auth"), "{text}");
    assert!(text.contains("postfix:postfix 0600"), "{text}");
    assert!(text.contains("listener: fifo echo-fifo"), "{text}");
    assert!(text.contains("vmail:root 0600"), "{text}");
    assert!(text.contains(&format!("{} postfix:vmail 0660", absolute.display())), "{text}");
    drop(dovecot);
    let _ = std::fs::remove_dir_all(outside);
}

#[test]
fn inet_listeners_belong_to_dovecot_and_listen_binds_exactly_the_list() {
    let port = free_port();
    let body = format!(
        "listen = 127.0.0.1, ::1\nservice echo {{\n  executable = echo-service\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n"
    );
    let dovecot = Instance::start("ss", &body);
    let lines = ss_lines(port);
    let locals: Vec<String> = lines.iter().map(|l| l.split_whitespace().nth(3).unwrap().to_owned()).collect();
    let mut sorted = locals.clone();
    sorted.sort();
    assert_eq!(sorted, vec![format!("127.0.0.1:{port}"), format!("[::1]:{port}")], "{lines:?}");
    let owner = format!("(\"dovecot\",pid={},", dovecot.pid());
    assert!(lines.iter().all(|l| l.contains(&owner)), "{lines:?}");
    // Both addresses serve.
    let mut v6 = std::net::TcpStream::connect(("::1", port)).unwrap();
    v6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ask_any(&mut v6, "ping"), "ping");
    let mut v4 = connect(port);
    assert_eq!(ask(&mut v4, "ping"), "ping");
}

fn ask_any(s: &mut std::net::TcpStream, line: &str) -> String {
    use std::io::Write;
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    read_line(s)
}

#[test]
fn doveadm_prints_every_service_process_and_listener() {
    let port = free_port();
    let body = format!(
        "service echo {{\n  executable = echo-service\n  process_min_avail = 2\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n\
         service echo-unix {{\n  executable = echo-service\n  process_min_avail = 1\n  unix_listener echo-unix {{\n    mode = 0666\n  }}\n}}\n"
    );
    let mut dovecot = Instance::start("doveadm", &body);
    // The echo processes, and anvil (always running, as in Dovecot).
    let mut pids = Vec::new();
    assert!(wait_for(Duration::from_secs(2), || {
        pids = dovecot.children();
        pids.len() == 4
    }));
    assert_eq!(pids.iter().filter(|p| cmdline(**p) == "dovecot/anvil").count(), 1);
    let out = dovecot.doveadm(&["process", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let lines = lines_of(&text);
    // Dovecot's header row; columns aligned with single-space gaps.
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "name",
            "pid",
            "available_count",
            "total_count",
            "idle_start",
            "last_status_update",
            "last_kill_sent"
        ]
    );
    for pid in &pids {
        assert!(lines.iter().any(|l| l.split_whitespace().nth(1) == Some(&pid.to_string())), "{text}");
    }
    let pid_column = lines[0].find(" pid").unwrap() + 1;
    assert!(lines[1..].iter().all(|l| l.as_bytes()[pid_column - 1] == b' '), "aligned:\n{text}");
    // Filter by service.
    let only =
        String::from_utf8_lossy(&dovecot.doveadm(&["process", "status", "echo-unix"]).stdout).into_owned();
    assert_eq!(lines_of(&only).len(), 2, "{only}");
    // Service status: Dovecot's pager format plus listeners.
    let out = dovecot.doveadm(&["service", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("name: echo\nprocess_count: 2\nprocess_avail: 2\n"), "{text}");
    assert!(text.contains("\x0c\nname: echo-unix\n"), "{text}");
    assert!(text.contains(&format!("listener: inet echo 127.0.0.1:{port} root:root -")), "{text}");
    assert!(
        text.contains(&format!(
            "listener: unix echo-unix {}/echo-unix root:root 0666",
            dovecot.base_dir.display()
        )),
        "{text}"
    );
    assert!(text.contains("spawned: 2\ndied: 0\nthrottled: 0\n"), "{text}");
}

#[test]
fn verbose_proctitle_and_child_log_lines_carry_service_user_and_pid() {
    let port = free_port();
    let body = format!(
        "verbose_proctitle = yes\nservice echo-login {{\n  type = login\n  executable = echo-service\n  \
         user = $default_login_user\n  chroot = login\n  process_min_avail = 1\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n"
    );
    let mut dovecot = Instance::start("title", &body);
    let mut client = connect(port);
    assert_eq!(ask(&mut client, "USER alice"), "OK");
    let pid = served_by(&mut client);
    assert!(
        wait_for(Duration::from_secs(2), || cmdline(pid) == "dovecot/echo-service [alice 127.0.0.1 echoing]"),
        "title: {:?}",
        cmdline(pid)
    );
    // A line logged with a user gets Dovecot's `service(user)<pid>: ` prefix.
    assert!(dovecot.wait_log(&format!("echo-login(alice)<{pid}>: Info: user set"), Duration::from_secs(2)));
    // A panic is logged under the service's name, its exit with the pid.
    use std::io::Write;
    client.write_all(b"PANIC\n").unwrap();
    assert!(
        dovecot.wait_log("echo-login: Panic: panicked at", Duration::from_secs(2)),
        "{}",
        dovecot.log_text()
    );
    assert!(dovecot.wait_log(
        &format!("echo-login: Fatal: master: service(echo-login): child {pid} returned error 101"),
        Duration::from_secs(2)
    ));
    let _ = dovecot.children();
}
