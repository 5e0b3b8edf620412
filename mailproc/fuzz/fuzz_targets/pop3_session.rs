//! Feeds arbitrary bytes to the POP3 command parser and session state
//! machine (over an in-memory maildrop), and to the RETR/TOP encoder; the
//! checks are `dovecote_mailproc::pop3::fuzzing::exercise`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dovecote_mailproc::pop3::fuzzing::exercise(data);
});
