//! Feeds arbitrary bytes to the POP3 command parser and session state
//! machine (over an in-memory maildrop), and to the RETR/TOP encoder.
//! Nothing may panic; every reply must be CRLF-terminated lines; encoded
//! messages must have no bare LF, no unstuffed `.` line before the end,
//! and end in `.\r\n`.
#![no_main]

use dovecote_mailproc::pop3::command;
use dovecote_mailproc::pop3::fetch::{encode, OutputWorkarounds};
use dovecote_mailproc::pop3::memory::MemoryDrop;
use dovecote_mailproc::pop3::settings::{DeleteType, Pop3Settings, UidlDuplicates};
use dovecote_mailproc::pop3::Session;
use libfuzzer_sys::fuzz_target;

fn check_encoded(out: &[u8]) {
    assert!(out.ends_with(b".\r\n"), "no terminator");
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
        }
    }
    let body = &out[..out.len() - 3];
    // Every line but the first starting with '.' is stuffed (Dovecot does
    // not stuff a dot at the very start of the message).
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    for line in lines.iter().skip(1) {
        if line.first() == Some(&b'.') {
            assert!(line.starts_with(b".."), "unstuffed dot line");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let data = data.get(1..).unwrap_or_default();
    let w = OutputWorkarounds { outlook_no_nuls: flags & 1 != 0, oe_ns_eoh: flags & 2 != 0 };

    // The input as a message, whole and as TOP.
    for top in [None, Some(0), Some(u64::from(flags >> 4))] {
        let mut out = Vec::new();
        encode(data, top, w, &mut out);
        check_encoded(&out);
    }

    // The input as command lines against a small mailbox holding it.
    let settings = Pop3Settings {
        enable_last: flags & 4 != 0,
        no_flag_updates: flags & 8 != 0,
        uidl_format: if flags & 16 != 0 { "%m-%g".into() } else { "%08Xu%08Xv".into() },
        uidl_duplicates: if flags & 32 != 0 { UidlDuplicates::Rename } else { UidlDuplicates::Allow },
        reuse_xuidl: flags & 64 != 0,
        deleted_flag: if flags & 128 != 0 { "$Deleted".into() } else { String::new() },
        delete_type: if flags & 128 != 0 { DeleteType::Flag } else { DeleteType::Expunge },
        workarounds: w,
        ..Pop3Settings::default()
    };
    let drop = MemoryDrop::with(&[b"Subject: a\n\nbody\n.\n", data, b""]);
    let mut session = Session::new(settings, Box::new(drop), "fuzz");
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let _ = command::split(line);
        let out = session.command(line);
        assert!(out.bytes.is_empty() || out.bytes.ends_with(b"\r\n"));
        if out.close {
            break;
        }
    }
    let _ = session.log_line(1, 2);
});
