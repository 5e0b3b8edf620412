//! `doveconf -n` of dovecote against the output of Debian's real doveconf
//! 2.3.19 for every configuration under `tests/corpus/` (see its README for
//! how the fixtures were made and the documented known differences).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn doveconf(dir: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_doveconf"))
        .args(args)
        .current_dir(dir)
        .env_remove("DOVECOT_CONFIG")
        .output()
        .expect("run doveconf");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The output without the leading `# ...` header comment.
fn body(output: &str) -> String {
    let mut lines = output.lines().peekable();
    while lines.peek().is_some_and(|l| l.starts_with("# ")) {
        lines.next();
    }
    lines.map(|l| format!("{l}\n")).collect()
}

/// Every non-comment line of a case's files, to see what the case itself sets.
fn case_text(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("expected")) {
                let content = fs::read_to_string(&path).unwrap_or_default();
                for line in content.lines().filter(|l| !l.trim_start().starts_with('#')) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    text
}

/// Applies the case's `known-differences.txt` for `fixture` (sections start
/// with `@ <fixture file>`; `- theirs` then `+ ours` replaces a line, a `-`
/// line without a `+` removes it) and drops the Pigeonhole capability lines
/// the case does not set itself.
fn expected_for_us(dir: &Path, fixture: &str, expected: &str) -> String {
    let own_text = case_text(dir);
    let mut lines: Vec<String> = expected
        .lines()
        .filter(|l| {
            let key = l.trim_start().split(" = ").next().unwrap_or("");
            let engine_line = key == "managesieve_sieve_capability" || key == "managesieve_notify_capability";
            !engine_line || own_text.contains(key)
        })
        .map(str::to_owned)
        .collect();
    let Ok(diff) = fs::read_to_string(dir.join("known-differences.txt")) else {
        return lines.into_iter().map(|l| format!("{l}\n")).collect();
    };
    let mut section = String::new();
    let mut pending: Option<String> = None;
    let mut edits: Vec<(String, Option<String>)> = Vec::new();
    for line in diff.lines() {
        if let Some(file) = line.strip_prefix("@ ") {
            if let Some(t) = pending.take() {
                edits.push((t, None));
            }
            section = file.trim().to_owned();
            continue;
        }
        if section != fixture {
            continue;
        }
        if let Some(theirs) = line.strip_prefix("- ") {
            if let Some(t) = pending.replace(theirs.to_owned()) {
                edits.push((t, None));
            }
        } else if let Some(ours) = line.strip_prefix("+ ") {
            if let Some(t) = pending.take() {
                edits.push((t, Some(ours.to_owned())));
            }
        }
    }
    if let Some(t) = pending.take() {
        edits.push((t, None));
    }
    for (theirs, ours) in edits {
        let Some(i) = lines.iter().position(|l| *l == theirs) else {
            panic!("{}: known difference `{theirs}` not found in {fixture}", dir.display());
        };
        match ours {
            Some(o) => lines[i] = o,
            None => {
                lines.remove(i);
            }
        }
    }
    lines.into_iter().map(|l| format!("{l}\n")).collect()
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("expected-n.txt").exists())
        .collect();
    cases.sort();
    cases
}

fn first_difference(ours: &str, theirs: &str) -> String {
    for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
        if a != b {
            return format!("line {}: ours `{a}` / expected `{b}`", i + 1);
        }
    }
    format!("lengths differ: ours {} lines, expected {} lines", ours.lines().count(), theirs.lines().count())
}

#[test]
fn corpus_has_enough_cases() {
    assert!(cases().len() >= 25, "only {} corpus cases", cases().len());
}

#[test]
fn doveconf_n_matches_dovecot_for_every_case() {
    let mut failures = Vec::new();
    for dir in cases() {
        let expected = fs::read_to_string(dir.join("expected-n.txt")).expect("fixture");
        let (stdout, stderr, code) = doveconf(&dir, &["-n", "-c", "dovecot.conf"]);
        let ours = body(&stdout);
        let theirs = expected_for_us(&dir, "expected-n.txt", &body(&expected));
        if code != 0 || ours != theirs {
            failures.push(format!(
                "{}: exit {code} {}\n{}",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                stderr.trim(),
                first_difference(&ours, &theirs)
            ));
        }
    }
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn doveconf_a_protocols_matches_dovecot() {
    let mut failures = Vec::new();
    for dir in cases() {
        let Ok(expected) = fs::read_to_string(dir.join("expected-a-protocols.txt")) else { continue };
        let (stdout, _, _) = doveconf(&dir, &["-a", "-c", "dovecot.conf"]);
        let ours: String =
            stdout.lines().filter(|l| l.starts_with("protocols")).map(|l| format!("{l}\n")).collect();
        let theirs = expected_for_us(&dir, "expected-a-protocols.txt", &expected);
        if ours != theirs {
            failures.push(format!("{}: ours {ours:?} expected {theirs:?}", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
