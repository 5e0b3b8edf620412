//! Message bodies: the DATA dot-stuffing decoder (RFC 5321 §4.5.2) and
//! the conversion to the LF line endings Dovecot stores (`mail_save_crlf
//! = no`). The decoder is incremental: it is fed whatever arrived and says
//! how much it consumed, so a body split across reads, and commands
//! pipelined after the terminating dot, are handled alike. Bare LFs end
//! lines as CRLF does (Dovecot accepts them); NULs are kept.

/// Where the decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.\r` at the start of a line.
    DotCr,
    InLine,
}

/// Decodes a DATA body.
#[derive(Debug, Clone)]
pub struct DotDecoder {
    state: State,
}

/// The result of one [`DotDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input used (all of it unless `done`).
    pub consumed: usize,
    /// The terminating `.` line was seen.
    pub done: bool,
}

impl Default for DotDecoder {
    fn default() -> Self {
        DotDecoder { state: State::LineStart }
    }
}

impl DotDecoder {
    /// Appends the decoded bytes of `input` to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Fed {
        for (i, &b) in input.iter().enumerate() {
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot | State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return Fed { consumed: i + 1, done: true };
                }
                (State::Dot, b'\r') => State::DotCr,
                // A stuffed dot: drop it, keep what follows.
                (State::Dot, other) => {
                    out.push(other);
                    State::InLine
                }
                (State::DotCr, other) => {
                    out.push(b'\r');
                    out.push(other);
                    State::InLine
                }
                (_, b'\n') => {
                    out.push(b'\n');
                    State::LineStart
                }
                (_, other) => {
                    out.push(other);
                    State::InLine
                }
            };
        }
        Fed { consumed: input.len(), done: false }
    }
}

/// CRLF → LF, in place; bare CRs stay.
pub fn to_lf(data: &mut Vec<u8>) {
    let mut w = 0;
    for r in 0..data.len() {
        let b = data[r];
        if b == b'\r' && data.get(r + 1) == Some(&b'\n') {
            continue;
        }
        data[w] = b;
        w += 1;
    }
    data.truncate(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
        let mut d = DotDecoder::default();
        let mut out = Vec::new();
        for (n, c) in chunks.iter().enumerate() {
            let fed = d.feed(c, &mut out);
            if fed.done {
                return (out, Some(n * 1000 + fed.consumed));
            }
        }
        (out, None)
    }

    #[test]
    fn terminator_stuffing_and_split_reads() {
        let (out, end) = decode_all(&[b"Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n"]);
        assert_eq!(out, b"Subject: x\r\n\r\n.dot\r\n");
        assert_eq!(end, Some(24));
        // The same body one byte at a time.
        let body = b"a\r\n..b\r\n.\r\n";
        let chunks: Vec<&[u8]> = body.chunks(1).collect();
        let (out, end) = decode_all(&chunks);
        assert_eq!(out, b"a\r\n.b\r\n");
        assert!(end.is_some());
        // Bare LF lines, NUL bytes, and an empty message.
        assert_eq!(decode_all(&[b"x\0y\n.\n"]).0, b"x\0y\n");
        assert_eq!(decode_all(&[b".\r\n"]), (Vec::new(), Some(3)));
        // A dot in mid-line is data, and no terminator means not done.
        assert_eq!(decode_all(&[b"a.\r\n.x"]), (b"a.\r\nx".to_vec(), None));
    }

    #[test]
    fn crlf_to_lf() {
        let mut v = b"a\r\nb\rc\n\r\n".to_vec();
        to_lf(&mut v);
        assert_eq!(v, b"a\nb\rc\n\n");
    }
}
