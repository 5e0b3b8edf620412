//! Both pre-auth front ends and the handoff record decoder on the same
//! input (the first target; the per-protocol ones go deeper per run).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dovecote_login::fuzzing::imap(data);
    dovecote_login::fuzzing::pop3(data);
    let _ = dovecote_login::handoff::HandoffRecord::decode(data);
});
