//! An include the current user cannot read gives Dovecot's error. As root
//! the test drops to `nobody` with setpriv(1), since root reads anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn unreadable_include_is_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("dovecote-perm-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    fs::write(dir.join("dovecot.conf"), "!include secret.conf\n").expect("write");
    fs::set_permissions(dir.join("dovecot.conf"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(dir.join("secret.conf"), "mail_plugins = x\n").expect("write");
    fs::set_permissions(dir.join("secret.conf"), fs::Permissions::from_mode(0o000)).expect("chmod");

    let binary = env!("CARGO_BIN_EXE_doveconf");
    let is_root =
        fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let mut command = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        c
    } else {
        Command::new(binary)
    };
    let out = command.args(["-n", "-c", "dovecot.conf"]).current_dir(&dir).output().expect("run doveconf");
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(89));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "doveconf: Fatal: Error in configuration file dovecot.conf line 1: \
             Couldn't open include file secret.conf: Permission denied"
        ),
        "stderr: {stderr}"
    );
}
