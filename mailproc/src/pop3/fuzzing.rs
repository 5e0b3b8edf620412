//! The checks the `pop3_session` fuzz target runs on one input, shared with
//! a unit test that feeds it generated inputs, so the invariants are also
//! exercised by `cargo test`: nothing panics, every reply is CRLF lines,
//! RETR/TOP output has no bare LF, every `.` line start (but the
//! message's first byte, as in Dovecot) is stuffed, and it ends in `.\r\n`.

use super::fetch::{encode, OutputWorkarounds};
use super::memory::MemoryDrop;
use super::settings::{DeleteType, Pop3Settings, UidlDuplicates};
use super::{command, Session};

/// Panics if `out` is not a well-formed multi-line body.
pub fn check_encoded(out: &[u8]) {
    assert!(out.ends_with(b".\r\n"), "no terminator");
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
        }
    }
    let body = &out[..out.len() - 3];
    for line in body.split(|&b| b == b'\n').skip(1) {
        if line.first() == Some(&b'.') {
            assert!(line.starts_with(b".."), "unstuffed dot line");
        }
    }
}

/// One fuzz input: the first byte picks settings, the rest is both a
/// message and a stream of command lines.
pub fn exercise(input: &[u8]) {
    let flags = input.first().copied().unwrap_or(0);
    let data = input.get(1..).unwrap_or_default();
    let w = OutputWorkarounds { outlook_no_nuls: flags & 1 != 0, oe_ns_eoh: flags & 2 != 0 };
    for top in [None, Some(0), Some(u64::from(flags >> 4))] {
        let mut out = Vec::new();
        encode(data, top, w, &mut out);
        check_encoded(&out);
    }
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
        assert!(out.bytes.is_empty() || out.bytes.ends_with(b"\r\n"), "reply not CRLF-terminated");
        if out.close {
            break;
        }
    }
    let _ = session.log_line(1, 2);
}

#[cfg(test)]
mod tests {
    /// Generated inputs from POP3-ish tokens (a cheap stand-in for the
    /// fuzzer in `cargo test`).
    #[test]
    fn generated_inputs_hold_the_invariants() {
        const TOKENS: &[&[u8]] = &[
            b"RETR ",
            b"TOP ",
            b"LIST",
            b"UIDL",
            b"DELE ",
            b"RSET",
            b"STAT",
            b"LAST",
            b"QUIT",
            b"CAPA",
            b"NOOP",
            b"1",
            b"2",
            b"3",
            b"0",
            b"99999999999",
            b" ",
            b"\r\n",
            b"\n",
            b"\r",
            b"\0",
            b".",
            b"..",
            b"X-UIDL: a",
            b"Subject: x",
            b"\n\n",
            b"\xff",
            b"a",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let mut input = vec![next() as u8];
            for _ in 0..(next() % 40) {
                input.extend_from_slice(TOKENS[(next() % TOKENS.len() as u64) as usize]);
            }
            super::exercise(&input);
        }
    }
}
