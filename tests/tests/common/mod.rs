//! Shared harness for the whole-system tests: a real `dovecot -F` master
//! started as root on a temp base_dir with free 127.0.0.1 ports, real
//! users, the test-only `echo-service`, a NOTIFY_SOCKET to watch systemd
//! notifications, and helpers that poll instead of sleeping.
#![allow(dead_code)]

pub mod certs;
pub mod imap;
pub mod postfix;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();
static USERS: Once = Once::new();

/// The directory holding our binaries (`dovecot`, `doveadm`, `echo-service`).
pub fn bin_dir() -> PathBuf {
    let echo = PathBuf::from(env!("CARGO_BIN_EXE_echo-service"));
    let dir = echo.parent().expect("binary has a directory").to_path_buf();
    BUILD.call_once(|| {
        {
            // `cargo test -p dovecote-tests` alone does not build (or
            // rebuild) other packages' binaries; make sure they are current,
            // with the same profile. One `--workspace` build for every test
            // file: per-file package sets would resolve features
            // differently and rebuild TLS/SQL/LDAP crates each time.
            // A no-op when they are current.
            let release = dir.ends_with("release");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "--workspace", "--bins"]);
            // Cargo gives this test process the package's own variables
            // (CARGO_MANIFEST_DIR, CARGO_PKG_NAME...). Build scripts such as
            // ring's rerun when those change, so passing them on made
            // every test run rebuild ring and all that depends on it, and
            // the next `cargo test` rebuild it back.
            for (key, _) in std::env::vars_os() {
                let name = key.to_string_lossy();
                let per_package = name.starts_with("CARGO_PKG_")
                    || name.starts_with("CARGO_BIN_")
                    || matches!(
                        name.as_ref(),
                        "CARGO_MANIFEST_DIR"
                            | "CARGO_MANIFEST_PATH"
                            | "CARGO_MANIFEST_LINKS"
                            | "CARGO_CRATE_NAME"
                            | "CARGO_PRIMARY_PACKAGE"
                            | "CARGO_TARGET_TMPDIR"
                            | "CARGO_RUSTC_CURRENT_DIR"
                    );
                if per_package {
                    cmd.env_remove(&key);
                }
            }
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building the service binaries failed");
        }
    });
    dir
}

pub fn dovecot() -> PathBuf {
    bin_dir().join("dovecot")
}

pub fn doveadm() -> PathBuf {
    bin_dir().join("doveadm")
}

/// These tests need root: privilege separation, chroot and chown are what
/// they check. They fail (never skip) without it.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "the dovecote integration tests must run as root");
    USERS.call_once(|| {
        for user in ["dovecot", "dovenull", "vmail", "postfix"] {
            if nix::unistd::User::from_name(user).ok().flatten().is_none() {
                let status = Command::new("useradd")
                    .args([
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        user,
                    ])
                    .status()
                    .expect("run useradd");
                assert!(status.success(), "useradd {user} failed");
            }
        }
    });
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().expect("local addr").port()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
// A test thread has no event loop to block; polling is the point here.
#[allow(clippy::disallowed_methods)]
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn uid_of(name: &str) -> u32 {
    nix::unistd::User::from_name(name).unwrap().unwrap().uid.as_raw()
}

pub fn gid_of(name: &str) -> u32 {
    nix::unistd::Group::from_name(name).unwrap().unwrap().gid.as_raw()
}

/// `/proc/PID/stat` fields after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().map(String::as_str) != Some("Z"))
}

pub fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() {
            if ppid(p) == Some(pid) && alive(p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

pub fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Children of the master running `title` (e.g. `dovecot/echo-service`)
/// for a given service are told apart by uid or chroot in the tests; this
/// lists all children whose cmdline starts with the title.
pub fn children_titled(master: u32, title: &str) -> Vec<u32> {
    children(master).into_iter().filter(|p| cmdline(*p).starts_with(title)).collect()
}

pub struct Instance {
    pub dir: PathBuf,
    pub base_dir: PathBuf,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub master: Child,
    pub notify: UnixDatagram,
    pub notifications: Vec<String>,
    /// Every child pid ever seen, for the cleanup.
    seen: Vec<u32>,
}

/// The settings every test instance shares; `body` adds the services.
pub fn config_text(dir: &Path, body: &str) -> String {
    format!(
        "base_dir = {dir}/run\nlog_path = {dir}/dovecot.log\nlisten = 127.0.0.1\nssl = no\nprotocols = none\n\
         libexec_dir = {dir}/libexec\nlog_timestamp = \"%H:%M:%S \"\n{body}\n",
        dir = dir.display()
    )
}

pub fn test_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/dovecote-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Instance {
    /// Starts `dovecot -F` and waits for READY=1 on the notify socket.
    pub fn start(name: &str, body: &str) -> Instance {
        let instance = Instance::spawn(name, body, |_| {});
        let mut instance = instance;
        assert!(
            // Generous: a debug build under the whole suite's load can
            // take seconds to start; a healthy start returns at once.
            instance.wait_notify("READY=1", Duration::from_secs(30)),
            "no READY=1; log:\n{}",
            instance.log_text()
        );
        instance
    }

    /// Starts the master without waiting; `adjust` may change the command.
    pub fn spawn(name: &str, body: &str, adjust: impl FnOnce(&mut Command)) -> Instance {
        require_root();
        let dir = test_dir(name);
        let conf = dir.join("dovecot.conf");
        std::fs::write(&conf, config_text(&dir, body)).unwrap();
        let notify_path = dir.join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut cmd = Command::new(dovecot());
        cmd.arg("-F")
            .arg("-c")
            .arg(&conf)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
        adjust(&mut cmd);
        let master = cmd.spawn().expect("start dovecot");
        Instance {
            base_dir: dir.join("run"),
            log: dir.join("dovecot.log"),
            conf,
            dir,
            master,
            notify,
            notifications: Vec::new(),
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.master.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log_text().contains(needle))
    }

    /// Reads notifications until one contains `needle` (searching those
    /// received earlier too, then forgetting everything up to it).
    pub fn wait_notify(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.notifications.iter().position(|n| n.contains(needle)) {
                self.notifications.drain(..=pos);
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.notifications.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    pub fn children(&mut self) -> Vec<u32> {
        let c = children(self.pid());
        for p in &c {
            if !self.seen.contains(p) {
                self.seen.push(*p);
            }
        }
        c
    }

    pub fn children_running_as(&mut self, user: &str) -> Vec<u32> {
        let uid = uid_of(user).to_string();
        self.children()
            .into_iter()
            .filter(|p| status_field(*p, "Uid").split_whitespace().next() == Some(uid.as_str()))
            .collect()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    pub fn rewrite_config(&self, body: &str) {
        std::fs::write(&self.conf, config_text(&self.dir, body)).unwrap();
    }

    pub fn doveadm(&self, args: &[&str]) -> std::process::Output {
        Command::new(doveadm()).arg("-c").arg(&self.conf).args(args).output().expect("run doveadm")
    }

    /// Waits for the master to exit and returns its exit code.
    #[allow(clippy::disallowed_methods)] // a test thread, not an event loop
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.master.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn remember(&mut self, pids: &[u32]) {
        for p in pids {
            if !self.seen.contains(p) {
                self.seen.push(*p);
            }
        }
    }

    pub fn seen(&self) -> Vec<u32> {
        self.seen.clone()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.children();
        let _ = self.master.kill();
        let _ = self.master.wait();
        for p in &self.seen {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if std::env::var_os("DOVECOTE_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Connects to 127.0.0.1:port and reads the serving process's pid.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

pub fn ask(stream: &mut TcpStream, line: &str) -> String {
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    read_line(stream)
}

pub fn read_line<R: Read>(stream: &mut R) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = stream.read(&mut byte) {
        if byte[0] == b'\n' {
            break;
        }
        out.push(byte[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn served_by(stream: &mut TcpStream) -> u32 {
    ask(stream, "PID").parse().expect("a pid")
}

/// Lines of `ss -ltnp` for a port.
pub fn ss_lines(port: u16) -> Vec<String> {
    let out = Command::new("ss").args(["-ltnpH"]).output().expect("run ss");
    let suffix = format!(":{port}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(3).is_some_and(|a| a.ends_with(&suffix)))
        .map(str::to_owned)
        .collect()
}

pub fn lines_of(text: &str) -> Vec<String> {
    BufReader::new(text.as_bytes()).lines().map_while(Result::ok).collect()
}

/// Creates `dir/home` owned by vmail (where the static userdb puts the
/// users' homes) and writes `dir/passwd` for the passwd-file passdb.
pub fn vmail_homes_and_passwd(dir: &Path, passwd: &str) -> PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("create the homes directory");
    nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(uid_of("vmail"))), None).expect("chown homes");
    std::fs::write(dir.join("passwd"), passwd).expect("write passwd");
    home
}

impl Instance {
    /// Waits until each named socket (relative to base_dir) exists.
    pub fn wait_sockets(&self, sockets: &[&str]) {
        for socket in sockets {
            let path = self.base_dir.join(socket);
            assert!(wait_for(Duration::from_secs(5), || path.exists()), "{} missing", path.display());
        }
    }
}
