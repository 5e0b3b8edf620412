//! Supervision: service_count, client_limit, process_limit, respawn,
//! throttling and the master's death (issue 3 acceptance).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn echo_service(name: &str, port: u16, extra: &str) -> String {
    format!(
        "service {name} {{\n  executable = echo-service\n  {extra}\n  inet_listener echo {{\n    port = {port}\n  }}\n}}\n"
    )
}

#[test]
fn service_count_1_serves_each_connection_in_a_new_process() {
    let port = free_port();
    let dovecot = Instance::start("count1", &echo_service("echo", port, "service_count = 1"));
    let mut first = connect(port);
    let first_pid = served_by(&mut first);
    let mut second = connect(port);
    let second_pid = served_by(&mut second);
    assert_ne!(first_pid, second_pid);
    first.write_all(b"QUIT\n").unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || !alive(first_pid)),
        "first process exits after its one client"
    );
    assert_eq!(ask(&mut second, "still"), "still");
    drop(dovecot);
}

#[test]
fn client_limit_50_shares_one_process() {
    let port = free_port();
    let dovecot = Instance::start(
        "limit50",
        &echo_service("echo", port, "service_count = 0\n  client_limit = 50\n  process_min_avail = 1"),
    );
    let mut clients: Vec<_> = (0..50).map(|_| connect(port)).collect();
    let pids: std::collections::BTreeSet<u32> = clients.iter_mut().map(served_by).collect();
    assert_eq!(pids.len(), 1, "all 50 clients in one process: {pids:?}");
    drop(dovecot);
}

/// Dovecot's behaviour at process_limit: the master logs the warning (at
/// most once a second) and connections wait in the listen backlog; when a
/// process frees up they are served. Only if the service stays full for
/// 10 s are the waiting connections accepted and closed.
#[test]
fn process_limit_reached_is_logged_and_connections_wait() {
    let port = free_port();
    let dovecot = Instance::start(
        "plimit",
        &echo_service("echo-limit", port, "service_count = 1\n  process_limit = 2"),
    );
    let mut a = connect(port);
    served_by(&mut a);
    let mut b = connect(port);
    served_by(&mut b);
    let mut c = connect(port);
    c.write_all(b"PID\n").unwrap();
    assert!(
        dovecot.wait_log(
            "service(echo-limit): process_limit (2) reached, client connections are being dropped",
            Duration::from_secs(3)
        ),
        "{}",
        dovecot.log_text()
    );
    a.write_all(b"QUIT\n").unwrap();
    let pid: u32 = read_line(&mut c).parse().expect("the waiting client is served once a slot frees");
    assert!(pid > 0);
}

/// The service's children other than anvil (which runs from start, as in
/// Dovecot, and is not what these tests are about).
fn service_children(dovecot: &mut Instance) -> Vec<u32> {
    dovecot.children().into_iter().filter(|p| cmdline(*p) != "dovecot/anvil").collect()
}

#[test]
fn killed_child_is_replaced_within_a_second() {
    let port = free_port();
    let mut dovecot = Instance::start("respawn", &echo_service("echo", port, "process_min_avail = 2"));
    assert!(wait_for(Duration::from_secs(2), || service_children(&mut dovecot).len() == 2));
    let before = service_children(&mut dovecot);
    kill(Pid::from_raw(before[0] as i32), Signal::SIGKILL).unwrap();
    let start = Instant::now();
    assert!(
        wait_for(Duration::from_secs(1), || {
            let now = service_children(&mut dovecot);
            now.len() == 2 && !now.contains(&before[0])
        }),
        "replacement within 1 s"
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(dovecot.wait_log(
        &format!("echo: Fatal: master: service(echo): child {} killed with signal 9", before[0]),
        Duration::from_secs(2)
    ));
    let out = String::from_utf8_lossy(&dovecot.doveadm(&["service", "status", "echo"]).stdout).into_owned();
    assert!(out.contains("process_avail: 2\n"), "{out}");
}

#[test]
fn binary_that_exits_at_once_is_throttled_and_master_stays_up() {
    let port = free_port();
    let body = format!(
        "service broken {{\n  executable = /bin/false\n  process_min_avail = 1\n}}\n{}",
        echo_service("echo", port, "")
    );
    let mut dovecot = Instance::spawn("throttle", &body, |_| {});
    assert!(
        dovecot.wait_log(
            "master: Error: service(broken): command startup failed, throttling for 2.000 secs",
            Duration::from_secs(3)
        ),
        "{}",
        dovecot.log_text()
    );
    assert!(dovecot.log_text().contains("service(broken): child"));
    assert!(dovecot.log_text().contains("returned error 1"));
    // Back-off doubles.
    assert!(dovecot.wait_log("throttling for 4.000 secs", Duration::from_secs(4)), "{}", dovecot.log_text());
    assert!(dovecot.master.try_wait().unwrap().is_none(), "master still running");
    let mut client = connect(port);
    assert_eq!(ask(&mut client, "alive"), "alive");
}

#[test]
fn after_master_sigkill_children_release_ports_and_finish() {
    let port = free_port();
    let mut dovecot = Instance::start(
        "masterkill",
        &echo_service("echo", port, "process_min_avail = 2\n  client_limit = 1"),
    );
    assert!(wait_for(Duration::from_secs(2), || service_children(&mut dovecot).len() == 2));
    let mut busy_client = connect(port);
    let busy = served_by(&mut busy_client);
    let children = dovecot.children();
    dovecot.remember(&children);
    let idle: Vec<u32> = children.iter().copied().filter(|p| *p != busy).collect();
    dovecot.master.kill().unwrap();
    dovecot.master.wait().unwrap();
    // The port can be bound again at once: every child closed its listener.
    assert!(
        wait_for(Duration::from_secs(1), || TcpListener::bind(("127.0.0.1", port)).is_ok()),
        "listeners closed: {:?}",
        ss_lines(port)
    );
    assert!(wait_for(Duration::from_secs(5), || idle.iter().all(|p| !alive(*p))), "idle children exit");
    // The busy one keeps its client until it is done.
    assert!(alive(busy));
    assert_eq!(ask(&mut busy_client, "still here"), "still here");
    busy_client.write_all(b"QUIT\n").unwrap();
    assert!(wait_for(Duration::from_secs(2), || !alive(busy)));
}
