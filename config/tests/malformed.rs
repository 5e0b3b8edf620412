//! Malformed configurations: dovecote's `doveconf` must fail with the same
//! message and exit code as Debian's real doveconf 2.3.19 (recorded in each
//! `<name>.expected`: the message, then `exit N`).

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn every_malformed_config_fails_like_dovecot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("malformed dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".expected")).map(str::to_owned))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "only {} malformed cases", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let expected = fs::read_to_string(dir.join(format!("{name}.expected"))).expect("fixture");
        let mut lines = expected.lines();
        let message = lines.next().unwrap_or_default();
        let exit: i32 = lines
            .next()
            .and_then(|l| l.strip_prefix("exit "))
            .and_then(|n| n.trim().parse().ok())
            .expect("exit line");
        let out = Command::new(env!("CARGO_BIN_EXE_doveconf"))
            .args(["-n", "-c", &format!("{name}.conf")])
            .current_dir(&dir)
            .output()
            .expect("run doveconf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        let wanted = format!("doveconf: Fatal: {message}");
        if code != exit || !stderr.lines().any(|l| l == wanted) {
            failures.push(format!(
                "{name}: exit {code} (want {exit})\n  got:  {}\n  want: {wanted}",
                stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
}
