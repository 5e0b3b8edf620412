//! Arbitrary client bytes, split at arbitrary points, into an LMTP
//! session with an in-memory backend. Properties: no panic, every reply
//! is CRLF-terminated lines of `NNN` codes, and a delivered copy always
//! begins with the trace headers.
#![no_main]

use dovecote_lmtp::session::{Backend, DeliverError, DeliveryRequest, Lookup, RecipientUser};
use dovecote_lmtp::settings::HdrDeliveryAddress;
use dovecote_lmtp::{LmtpSettings, Session};
use libfuzzer_sys::fuzz_target;

struct Memory;

impl Backend for Memory {
    fn lookup(&mut self, user: &str, _session_id: &str) -> Lookup {
        match user.len() % 3 {
            0 => Lookup::Found(RecipientUser { name: user.to_string(), fields: Vec::new() }),
            1 => Lookup::NotFound,
            _ => Lookup::TempFail("x".into()),
        }
    }
    fn deliver(&mut self, r: &DeliveryRequest<'_>) -> Result<String, DeliverError> {
        assert!(r.message.starts_with(b"Return-Path: <"));
        if r.message.len() % 5 == 0 {
            return Err(DeliverError::Temporary("x".into()));
        }
        Ok(r.mailbox.to_string())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let settings = LmtpSettings {
        hostname: "h".into(),
        recipient_delimiter: "+-".into(),
        save_to_detail_mailbox: flags & 1 != 0,
        add_received_header: flags & 2 != 0,
        hdr_delivery_address: HdrDeliveryAddress::Final,
        max_mail_size: (flags & 4 != 0).then_some(64),
        starttls: flags & 8 != 0,
        postmaster_address: "p@h".into(),
    };
    let mut session = Session::new(settings, "S".into(), None, false);
    let mut backend = Memory;
    // The low bits of each byte after a 0xFE marker pick split points.
    for chunk in rest.split(|&b| b == 0xFE) {
        let out = session.input(chunk, &mut backend);
        if out.start_tls {
            session.tls_started();
        }
        if !out.reply.is_empty() {
            assert!(out.reply.ends_with(b"\r\n"));
            for line in out.reply.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
            }
        }
        if out.close {
            break;
        }
    }
});
