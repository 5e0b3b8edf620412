//! RETR/TOP output: the stored message turned into a POP3 multi-line
//! response body the way Dovecot 2.3 sends it — bare LF becomes CRLF, a
//! `.` starting a line is doubled, TOP stops after the header and N body
//! lines, the workarounds `outlook-no-nuls` (NUL → 0x80) and `oe-ns-eoh`
//! (a missing end-of-header line is added), a final CRLF if the message
//! lacks one, and the terminating `.` line.
//!
//! [`Encoder`] is fed chunks, so a message can be streamed through it; it
//! copies whole line runs at a time (memchr), never byte by byte.

/// Client workarounds that change the message output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputWorkarounds {
    pub outlook_no_nuls: bool,
    pub oe_ns_eoh: bool,
}

/// Converts one message; create with [`Encoder::new`], [`Encoder::feed`]
/// chunks until it says it is done (or the message ends), then
/// [`Encoder::finish`].
#[derive(Debug, Clone)]
pub struct Encoder {
    /// Body lines still wanted (TOP counts the header/body separator line
    /// too, as Dovecot does); `None` for the whole message.
    lines_left: Option<u64>,
    in_body: bool,
    /// The last byte written (what Dovecot's test for line starts looks at).
    last: u8,
    /// Nothing written yet: a leading `.` or CR/LF is judged against "no
    /// previous byte".
    at_start: bool,
    workarounds: OutputWorkarounds,
}

impl Encoder {
    /// `top_lines`: `Some(n)` for `TOP msg n`, `None` for RETR.
    pub fn new(top_lines: Option<u64>, workarounds: OutputWorkarounds) -> Encoder {
        Encoder {
            lines_left: top_lines.map(|n| n.saturating_add(1)),
            in_body: false,
            last: 0,
            at_start: true,
            workarounds,
        }
    }

    /// Whether TOP has all the lines it wants.
    pub fn done(&self) -> bool {
        self.in_body && self.lines_left == Some(0)
    }

    /// Encodes `data` into `out`; returns how many input bytes were used
    /// (fewer than `data.len()` only when [`Encoder::done`]).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        while pos < data.len() && !self.done() {
            let b = data[pos];
            if self.at_start || self.last == b'\n' {
                if !self.in_body && (b == b'\r' || b == b'\n') {
                    // An empty line (or none at all before it): the body starts.
                    self.in_body = true;
                }
                if b == b'.' && !self.at_start {
                    out.push(b'.');
                    self.last = b'.';
                }
            }
            if b == b'\n' {
                if self.last != b'\r' {
                    out.push(b'\r');
                }
                out.push(b'\n');
                self.last = b'\n';
                self.at_start = false;
                pos += 1;
                if self.in_body {
                    if let Some(n) = &mut self.lines_left {
                        *n = n.saturating_sub(1);
                    }
                }
                continue;
            }
            // The rest of the line up to (not including) its LF: nothing in
            // it is special except NULs under outlook-no-nuls.
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            let run = &data[pos..end];
            if self.workarounds.outlook_no_nuls {
                out.extend(run.iter().map(|&c| if c == 0 { 0x80 } else { c }));
            } else {
                out.extend_from_slice(run);
            }
            self.last = match out.last() {
                Some(&c) => c,
                None => 0,
            };
            self.at_start = false;
            pos = end;
        }
        pos
    }

    /// The end of the response: a missing final CRLF, the `oe-ns-eoh`
    /// empty line, and the `.` line. Returns the length of the part that
    /// Dovecot counts as message bytes (all but the `.` line).
    pub fn finish(self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        if self.last != b'\n' {
            out.extend_from_slice(b"\r\n");
        }
        if !self.in_body && self.workarounds.oe_ns_eoh {
            out.extend_from_slice(b"\r\n");
        }
        let counted = out.len() - start;
        out.extend_from_slice(b".\r\n");
        counted
    }
}

/// Encodes a whole message in one go; returns the bytes counted (as
/// [`Encoder::finish`], plus everything fed).
pub fn encode(
    data: &[u8],
    top_lines: Option<u64>,
    workarounds: OutputWorkarounds,
    out: &mut Vec<u8>,
) -> usize {
    let start = out.len();
    let mut enc = Encoder::new(top_lines, workarounds);
    enc.feed(data, out);
    let fed = out.len() - start;
    fed + enc.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8], top: Option<u64>, w: OutputWorkarounds) -> String {
        let mut out = Vec::new();
        encode(data, top, w, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    const MSG: &[u8] = b"From: a@b\nSubject: hi\n\nline1\n.dot\nline3\n";

    #[test]
    fn retr_converts_line_endings_and_stuffs_dots() {
        assert_eq!(
            run(MSG, None, OutputWorkarounds::default()),
            "From: a@b\r\nSubject: hi\r\n\r\nline1\r\n..dot\r\nline3\r\n.\r\n"
        );
        // CRLF input is left alone, a missing final newline is added.
        assert_eq!(run(b"A: b\r\n\r\nx", None, OutputWorkarounds::default()), "A: b\r\n\r\nx\r\n.\r\n");
        assert_eq!(run(b"", None, OutputWorkarounds::default()), "\r\n.\r\n");
        // A leading dot of the very first line is not doubled (as Dovecot).
        assert_eq!(run(b".x\n", None, OutputWorkarounds::default()), ".x\r\n.\r\n");
    }

    #[test]
    fn top_counts_lines_after_the_header() {
        let w = OutputWorkarounds::default();
        assert_eq!(run(MSG, Some(0), w), "From: a@b\r\nSubject: hi\r\n\r\n.\r\n");
        assert_eq!(run(MSG, Some(1), w), "From: a@b\r\nSubject: hi\r\n\r\nline1\r\n.\r\n");
        assert_eq!(run(MSG, Some(2), w), "From: a@b\r\nSubject: hi\r\n\r\nline1\r\n..dot\r\n.\r\n");
        assert_eq!(run(MSG, Some(99), w), run(MSG, None, w));
        // No body at all.
        assert_eq!(run(b"A: b\n", Some(0), w), "A: b\r\n.\r\n");
    }

    #[test]
    fn workarounds() {
        let w = OutputWorkarounds { outlook_no_nuls: true, oe_ns_eoh: true };
        assert_eq!(run(b"A: b\n", None, w).as_bytes(), b"A: b\r\n\r\n.\r\n");
        let mut out = Vec::new();
        encode(b"A: b\n\nx\0y\n", None, w, &mut out);
        assert_eq!(out, b"A: b\r\n\r\nx\x80y\r\n.\r\n");
        let mut out = Vec::new();
        encode(b"A: b\n\nx\0y\n", None, OutputWorkarounds::default(), &mut out);
        assert_eq!(out, b"A: b\r\n\r\nx\0y\r\n.\r\n");
    }

    #[test]
    fn chunked_feeding_gives_the_same_bytes() {
        let data = b"H: 1\r\nX: 2\n\r\n.a\n\n.\n..b\r\nend";
        for top in [None, Some(0), Some(1), Some(3)] {
            let whole = run(data, top, OutputWorkarounds::default());
            for split in 0..data.len() {
                let mut out = Vec::new();
                let mut enc = Encoder::new(top, OutputWorkarounds::default());
                let used = enc.feed(&data[..split], &mut out);
                if used == split {
                    enc.feed(&data[split..], &mut out);
                }
                enc.finish(&mut out);
                assert_eq!(String::from_utf8_lossy(&out), whole, "split {split} top {top:?}");
            }
        }
    }
}
