//! IMAP pre-auth: see `dovecote_login::fuzzing::imap`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dovecote_login::fuzzing::imap(data));
