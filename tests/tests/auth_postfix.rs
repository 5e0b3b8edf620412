//! S19: a real Postfix smtpd with `smtpd_sasl_type = dovecot` and
//! `smtpd_sasl_path` pointing at an extra auth listener
//! (`service auth { unix_listener … { user = postfix … } }`) accepts AUTH
//! with the right password and rejects a wrong one (Python smtplib).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A Postfix instance with its own config and queue directories, stopped
/// on drop.
struct Postfix {
    etc: std::path::PathBuf,
    child: Child,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.etc).arg("stop").output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_postfix() {
    if !std::path::Path::new("/usr/sbin/postfix").exists() {
        let ok = Command::new("apt-get")
            .args(["install", "-y", "postfix"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get");
        assert!(ok.success(), "installing postfix failed");
    }
}

fn start_postfix(dir: &std::path::Path, port: u16, sasl_path: &std::path::Path) -> Postfix {
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
             myhostname = localhost.localdomain\nmydestination =\nmaillog_file = /dev/stdout\n\
             smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {s}\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
            d = dir.display(),
            s = sasl_path.display()
        ),
    )
    .unwrap();
    let stock = std::fs::read_to_string("/etc/postfix/master.cf").expect("Debian's /etc/postfix/master.cf");
    let master: String = stock
        .lines()
        .map(|l| {
            if l.starts_with("smtp ") && l.contains(" inet ") {
                format!("{port} inet n - n - - smtpd")
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
        wait_for(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "postfix did not listen; log:\n{}",
        std::fs::read_to_string(dir.join("postfix.log")).unwrap_or_default()
    );
    postfix
}

const SMTP_LOGIN: &str = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo('client.example')
print('AUTH' + s.esmtp_features.get('auth', ''))
try:
    code, _ = s.login(sys.argv[2], sys.argv[3])
    print(code)
except smtplib.SMTPAuthenticationError as e:
    print(e.smtp_code)
s.quit()
"#;

fn smtp_login(port: u16, user: &str, password: &str) -> String {
    let out =
        Command::new("python3").args(["-c", SMTP_LOGIN, &port.to_string(), user, password]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn postfix_smtp_auth_through_our_socket() {
    require_root();
    ensure_postfix();
    let data = test_dir("auth-postfix-data");
    let passwd = data.join("passwd");
    std::fs::write(&passwd, "tim:{PLAIN}tanstaaf::::::\n").unwrap();
    let sasl = data.join("private-auth");
    let body = format!(
        "auth_mechanisms = plain login\nauth_failure_delay = 0\n\
         passdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home=/var/vmail/%u\n}}\n\
         service auth {{\n  unix_listener {s} {{\n    mode = 0660\n    user = postfix\n    group = postfix\n  }}\n}}\n",
        p = passwd.display(),
        s = sasl.display()
    );
    let dir = test_dir("auth-postfix");
    let _ = std::fs::remove_dir_all(&dir);
    let dovecot = {
        // The auth binary must exist next to dovecot.
        bin_dir();
        Instance::start("auth-postfix", &body)
    };
    assert!(wait_for(Duration::from_secs(5), || sasl.exists()));
    let port = free_port();
    let _postfix = start_postfix(&data.join("postfix"), port, &sasl);
    let ok = smtp_login(port, "tim", "tanstaaf");
    assert!(ok.contains("PLAIN") && ok.trim_end().ends_with("235"), "{ok}");
    let bad = smtp_login(port, "tim", "wrong");
    assert!(bad.trim_end().ends_with("535"), "{bad}");
    drop(dovecot);
    let _ = std::fs::remove_dir_all(data);
}
