//! POP3 pre-auth: see `dovecote_login::fuzzing::pop3`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dovecote_login::fuzzing::pop3(data));
