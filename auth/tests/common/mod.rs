//! Helpers for tests that need Debian's Dovecot and independent hash tools.
//! Missing tools are installed (apt-get / pip, as root); a tool that cannot
//! be had fails the test rather than skipping it.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::Once;

static SETUP: Once = Once::new();

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} {args:?} failed: {status}");
}

/// Makes sure doveadm, dovecot, mkpasswd and python3 with passlib and
/// argon2-cffi are available.
pub fn ensure_tools() {
    SETUP.call_once(|| {
        let need_apt = !have("/usr/bin/doveadm", &["pw", "-l"]) || !have("mkpasswd", &["--version"]);
        if need_apt {
            run("apt-get", &["update", "-q"]);
            run("apt-get", &["install", "-y", "-q", "dovecot-core", "whois"]);
        }
        if !have("python3", &["-c", "import passlib.hash, argon2"]) {
            run("python3", &["-m", "pip", "install", "-q", "passlib", "argon2-cffi"]);
        }
        assert!(have("/usr/bin/doveadm", &["pw", "-l"]), "doveadm unavailable");
        assert!(have("mkpasswd", &["--version"]), "mkpasswd unavailable");
        assert!(have("python3", &["-c", "import passlib.hash, argon2"]), "passlib/argon2-cffi unavailable");
    });
}

/// Runs a command and returns its output; panics if it cannot start.
pub fn output(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// stdout of a successful command, trimmed.
pub fn stdout(cmd: &str, args: &[&str]) -> String {
    let out = output(cmd, args);
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
