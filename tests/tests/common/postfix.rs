//! A private Postfix instance for the tests that need the real MTA (SASL
//! via our auth, delivery via our lmtp): its own config, queue and data
//! directories under a test dir, smtpd on a free port, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{uid_of, wait_for};

pub struct Postfix {
    etc: PathBuf,
    child: Child,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.etc).arg("stop").output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs Postfix when the machine lacks it (the README's test command
/// installs it up front; this keeps a single test runnable on its own).
pub fn ensure_postfix() {
    if !Path::new("/usr/sbin/postfix").exists() {
        let ok = Command::new("apt-get")
            .args(["install", "-y", "postfix"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get");
        assert!(ok.success(), "installing postfix failed");
    }
}

/// Starts Postfix in the foreground with the common settings plus
/// `extra_main_cf`, smtpd listening on 127.0.0.1:`smtp_port`; returns once
/// smtpd accepts connections. Its log is `dir/postfix.log`; its queue is
/// `dir/spool` (so `dir/spool/private` is where Postfix expects sockets).
pub fn start_postfix(dir: &Path, smtp_port: u16, hostname: &str, extra_main_cf: &str) -> Postfix {
    ensure_postfix();
    let etc = dir.join("etc");
    let data = dir.join("data");
    for d in [&etc, &data, &dir.join("spool")] {
        std::fs::create_dir_all(d).unwrap();
    }
    nix::unistd::chown(&data, Some(nix::unistd::Uid::from_raw(uid_of("postfix"))), None).unwrap();
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/spool\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
             myhostname = {hostname}\nmydestination =\nmaillog_file = /dev/stdout\n{extra_main_cf}",
            d = dir.display()
        ),
    )
    .unwrap();
    let stock = std::fs::read_to_string("/etc/postfix/master.cf").expect("Debian's /etc/postfix/master.cf");
    let master: String = stock
        .lines()
        .map(|l| {
            if l.starts_with("smtp ") && l.contains(" inet ") {
                format!("{smtp_port} inet n - n - - smtpd")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(etc.join("master.cf"), master + "\n").unwrap();
    let child = Command::new("postfix")
        .arg("-c")
        .arg(&etc)
        .arg("start-fg")
        .stdout(std::fs::File::create(dir.join("postfix.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("postfix start-fg");
    let postfix = Postfix { etc, child };
    assert!(
        wait_for(Duration::from_secs(15), || std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_ok()),
        "postfix did not listen; log:\n{}",
        std::fs::read_to_string(dir.join("postfix.log")).unwrap_or_default()
    );
    postfix
}
