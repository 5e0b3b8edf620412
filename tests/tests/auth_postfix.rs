//! S19: a real Postfix smtpd with `smtpd_sasl_type = dovecot` and
//! `smtpd_sasl_path` pointing at an extra auth listener
//! (`service auth { unix_listener … { user = postfix … } }`) accepts AUTH
//! with the right password and rejects a wrong one (Python smtplib).

mod common;

use std::process::Command;
use std::time::Duration;

use common::postfix::{start_postfix, Postfix};
use common::*;

fn start_sasl_postfix(dir: &std::path::Path, port: u16, sasl_path: &std::path::Path) -> Postfix {
    start_postfix(
        dir,
        port,
        "localhost.localdomain",
        &format!(
            "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {s}\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
            s = sasl_path.display()
        ),
    )
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
    // The auth listener below is owned by the postfix user.
    common::postfix::ensure_postfix();
    require_root();
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
    let _postfix = start_sasl_postfix(&data.join("postfix"), port, &sasl);
    let ok = smtp_login(port, "tim", "tanstaaf");
    assert!(ok.contains("PLAIN") && ok.trim_end().ends_with("235"), "{ok}");
    let bad = smtp_login(port, "tim", "wrong");
    assert!(bad.trim_end().ends_with("535"), "{bad}");
    drop(dovecot);
    let _ = std::fs::remove_dir_all(data);
}
