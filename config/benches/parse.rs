//! Parsing speed: Debian's whole /etc/dovecot tree (from the test corpus)
//! plus 100 included files, as a running server would load it.

use std::fs;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use dovecote_config::{load, LoadOptions};

/// Copies the corpus' Debian tree to a temp dir and adds 100 small included
/// files, each with a few settings and a service block.
fn prepare_tree() -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/16-debian-tree");
    let dir = std::env::temp_dir().join(format!("dovecote-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    copy_dir(&source, &dir);
    let extra = dir.join("extra.d");
    fs::create_dir_all(&extra).expect("mkdir extra.d");
    for i in 0..100 {
        fs::write(
            extra.join(format!("{i:03}.conf")),
            format!(
                "# extra include {i}\nmail_max_userip_connections = {}\nplugin {{\n  key{i} = value {i}\n}}\n\
                 service imap-login {{\n  process_min_avail = {}\n}}\n",
                10 + i,
                i % 4
            ),
        )
        .expect("write include");
    }
    let mut main = fs::read_to_string(dir.join("dovecot.conf")).expect("read dovecot.conf");
    main.push_str("!include extra.d/*.conf\n");
    fs::write(dir.join("dovecot.conf"), main).expect("write dovecot.conf");
    dir
}

fn copy_dir(from: &PathBuf, to: &PathBuf) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy");
        }
    }
}

fn bench_parse(c: &mut Criterion) {
    let dir = prepare_tree();
    let path = dir.join("dovecot.conf").to_string_lossy().into_owned();
    // Fail loudly if the tree does not parse: a benchmark of an error path is worthless.
    load(&path, LoadOptions { expand_values: true }).expect("tree parses");
    c.bench_function("debian tree + 100 includes", |b| {
        b.iter(|| load(&path, LoadOptions { expand_values: true }).expect("parse"))
    });
    let _ = fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
