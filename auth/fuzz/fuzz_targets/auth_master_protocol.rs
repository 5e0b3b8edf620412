//! auth-master lines, both directions: parsing never panics, and whatever
//! parses serialises to a line that parses to the same value.
#![no_main]

use dovecote_auth::protocol::master::{MasterReply, MasterRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        if let Ok(parsed) = MasterRequest::parse(line) {
            let bytes = parsed.to_bytes();
            assert_eq!(MasterRequest::parse(&bytes[..bytes.len() - 1]).as_ref(), Ok(&parsed));
        }
        if let Ok(parsed) = MasterReply::parse(line) {
            let bytes = parsed.to_bytes();
            assert_eq!(MasterReply::parse(&bytes[..bytes.len() - 1]).as_ref(), Ok(&parsed));
        }
    }
});
