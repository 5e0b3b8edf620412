//! Feeds arbitrary bytes to the dovecot.conf parser as a configuration file;
//! whatever it accepts must print (`-n`, `-a`) and survive the wire format
//! the master uses, all without panicking.
#![no_main]

use dovecote_config::print::{render, PrintOptions, Scope};
use dovecote_config::{parse_str, wire, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Includes are relative to a directory that does not exist, so the
    // fuzzer cannot wander the file system.
    let Ok(config) = parse_str("/nonexistent-fuzz-dir/dovecot.conf", &text, LoadOptions::default()) else {
        return;
    };
    for scope in [Scope::Changed, Scope::All] {
        let _ = render(&config, PrintOptions { scope, show_secrets: false });
    }
    let encoded = wire::encode(&config, &[]);
    let _ = wire::decode("fuzz", &encoded);
});
