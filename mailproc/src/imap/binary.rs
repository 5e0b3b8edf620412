//! BINARY (RFC 3516) content: a MIME part (or the whole message) with its
//! Content-Transfer-Encoding undone, as Dovecot's binary converter makes
//! it. Leaf bodies in base64 or quoted-printable are decoded and their
//! header loses its `Content-Transfer-Encoding` field in favour of a
//! `Content-Transfer-Encoding: binary` line at the end; 7bit, 8bit and
//! binary parts stay as they are; multipart and message/rfc822 parts keep
//! their own bytes (preamble, boundaries, epilogue) around converted
//! children. Unknown encodings and undecodable data are errors the FETCH
//! reports (`NO [UNKNOWN-CTE]`, `NO [PARSE]`).
//!
//! Decoding is strict, unlike SEARCH's ([`super::text`]): Dovecot fails a
//! BINARY fetch on an invalid `=XX` escape, on base64 data after padding
//! and on base64 that stops mid-quantum (Dovecot even disconnects on the
//! last one; we answer `NO [PARSE]`).

use thiserror::Error;

use super::header;
use super::parts::{Kind, Part};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BinaryError {
    #[error("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding")]
    UnknownCte,
    #[error("[PARSE] Invalid data in MIME part")]
    InvalidData,
}

/// A converted part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub bytes: Vec<u8>,
    /// Something was decoded or the result has NULs: Dovecot answers with
    /// a literal8 (`~{n}`) then.
    pub binary: bool,
}

/// What a part's Content-Transfer-Encoding asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cte {
    Identity,
    Base64,
    QuotedPrintable,
}

/// The encoding of a leaf, from its own header: Dovecot's converter reads
/// the field in any part, MIME-Version or not.
fn cte(message: &[u8], part: &Part) -> Result<Cte, BinaryError> {
    let fields = header::fields(&message[part.header.0..part.header.1]);
    let Some(value) = header::last(&fields, "Content-Transfer-Encoding") else { return Ok(Cte::Identity) };
    let value = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
    match value.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(Cte::Identity),
        "base64" => Ok(Cte::Base64),
        "quoted-printable" => Ok(Cte::QuotedPrintable),
        _ => Err(BinaryError::UnknownCte),
    }
}

/// `part`'s body (and header first with `with_header`) converted.
pub fn convert(message: &[u8], part: &Part, with_header: bool) -> Result<Converted, BinaryError> {
    let mut out = Converted { bytes: Vec::new(), binary: false };
    write_part(message, part, with_header, &mut out)?;
    out.binary |= memchr::memchr(0, &out.bytes).is_some();
    Ok(out)
}

fn write_part(
    message: &[u8],
    part: &Part,
    with_header: bool,
    out: &mut Converted,
) -> Result<(), BinaryError> {
    let encoding = if part.kind == Kind::Leaf { cte(message, part)? } else { Cte::Identity };
    if with_header {
        let header = &message[part.header.0..part.header.1];
        if encoding == Cte::Identity {
            out.bytes.extend_from_slice(header);
        } else {
            write_header_as_binary(header, &mut out.bytes);
        }
    }
    let body = &message[part.body.0..part.body.1];
    match part.kind {
        Kind::Leaf => match encoding {
            Cte::Identity => out.bytes.extend_from_slice(body),
            Cte::Base64 => {
                out.bytes.extend_from_slice(&base64(body)?);
                out.binary = true;
            }
            Cte::QuotedPrintable => {
                out.bytes.extend_from_slice(&quoted_printable(body)?);
                out.binary = true;
            }
        },
        Kind::Multipart | Kind::Message => {
            let mut pos = part.body.0;
            for child in &part.children {
                out.bytes.extend_from_slice(&message[pos..child.header.0.max(pos)]);
                write_part(message, child, true, out)?;
                pos = child.body.1.max(pos);
            }
            out.bytes.extend_from_slice(&message[pos..part.body.1.max(pos)]);
        }
    }
    Ok(())
}

/// The header without its Content-Transfer-Encoding field(s), with
/// `Content-Transfer-Encoding: binary` before the blank line.
fn write_header_as_binary(block: &[u8], out: &mut Vec<u8>) {
    let mut skipping = false;
    let mut rest = block;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |p| p + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            let name = line.iter().position(|&b| b == b':').map_or(&line[..0], |c| &line[..c]);
            skipping = name.trim_ascii().eq_ignore_ascii_case(b"Content-Transfer-Encoding");
        }
        if !skipping {
            out.extend_from_slice(bare);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n\r\n");
}

/// Strict base64: whitespace is skipped, anything else outside the
/// alphabet, data after padding or a cut quantum is invalid.
pub fn base64(data: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut count, mut padding) = (0u32, 0usize, 0usize);
    for &c in data {
        let v = match c {
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            // Padding only ends a quantum that has two or three digits.
            b'=' if count % 4 >= 2 || padding > 0 => {
                padding += 1;
                0
            }
            _ if padding > 0 => return Err(BinaryError::InvalidData),
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(BinaryError::InvalidData),
        };
        acc = (acc << 6) | u32::from(v);
        count += 1;
        if count % 4 == 0 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
        }
    }
    if count % 4 != 0 || padding > 2 {
        return Err(BinaryError::InvalidData);
    }
    out.truncate(out.len() - padding);
    Ok(out)
}

/// Strict quoted-printable: `=XX` escapes (either case), soft line breaks,
/// trailing whitespace of a line dropped; any other `=` is invalid.
pub fn quoted_printable(data: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(data.len());
    let lines = data.split_inclusive(|&b| b == b'\n');
    for raw in lines {
        let (text, newline): (&[u8], &[u8]) = match raw.strip_suffix(b"\r\n") {
            Some(t) => (t, b"\r\n"),
            None => match raw.strip_suffix(b"\n") {
                Some(t) => (t, b"\n"),
                None => (raw, b""),
            },
        };
        let end = text.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(0, |p| p + 1);
        let text = &text[..end];
        let mut i = 0;
        let mut soft = false;
        while i < text.len() {
            if text[i] != b'=' {
                out.push(text[i]);
                i += 1;
                continue;
            }
            if i + 1 == text.len() {
                soft = true;
                break;
            }
            match (text.get(i + 1).and_then(|&c| hex(c)), text.get(i + 2).and_then(|&c| hex(c))) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(BinaryError::InvalidData),
            }
            i += 3;
        }
        if !soft {
            out.extend_from_slice(newline);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::parts;

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64(b"aGVsbG8gd29ybGQ=\r\n").unwrap(), b"hello world");
        assert_eq!(base64(b"AAEC\r\nA2hl bGxvAP8=").unwrap(), b"\0\x01\x02\x03hello\0\xff");
        assert_eq!(base64(b"aGk=").unwrap(), b"hi");
        assert_eq!(base64(b"YQ==").unwrap(), b"a");
        assert_eq!(base64(b"").unwrap(), b"");
        assert_eq!(base64(b"aGk"), Err(BinaryError::InvalidData));
        assert_eq!(base64(b"aGk=aGk="), Err(BinaryError::InvalidData));
        assert_eq!(base64(b"!!!notbase64***"), Err(BinaryError::InvalidData));
        assert_eq!(base64(b"=aGk"), Err(BinaryError::InvalidData));
    }

    #[test]
    fn quoted_printable_is_strict() {
        assert_eq!(quoted_printable(b"h=E9llo=\r\n world=3D").unwrap(), b"h\xe9llo world=");
        assert_eq!(quoted_printable(b"a=00b\r\nnext  \r\n").unwrap(), b"a\0b\r\nnext\r\n");
        assert_eq!(quoted_printable(b"lower=e9").unwrap(), b"lower\xe9");
        assert_eq!(quoted_printable(b"bad=ZZ"), Err(BinaryError::InvalidData));
        assert_eq!(quoted_printable(b"cut=4\r\n"), Err(BinaryError::InvalidData));
    }

    #[test]
    fn converts_like_dovecot() {
        // Dovecot 2.3.19's BINARY[] and BINARY[1] for this message.
        let msg = b"Subject: multi\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\npre\r\n--x\r\n\
                    Content-Transfer-Encoding: QUOTED-PRINTABLE\r\nA: b\r\n\r\na=00b\r\n--x\r\n\r\n\
                    plain\r\n--x--\r\nepi\r\n";
        let root = parts::parse(msg);
        let all = convert(msg, &root, true).unwrap();
        assert_eq!(
            all.bytes,
            b"Subject: multi\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\npre\r\n--x\r\nA: b\r\n\
              Content-Transfer-Encoding: binary\r\n\r\na\0b\r\n--x\r\n\r\nplain\r\n--x--\r\nepi\r\n"
        );
        assert!(all.binary);
        assert_eq!(convert(msg, &root.children[0], false).unwrap().bytes, b"a\0b");
        let plain = convert(msg, &root.children[1], false).unwrap();
        assert_eq!((plain.bytes.as_slice(), plain.binary), (&b"plain"[..], false));

        let single = b"Content-Transfer-Encoding: Base64\r\nSubject: first\r\nX: y\r\n\r\naGk=\r\n";
        let got = convert(single, &parts::parse(single), true).unwrap();
        assert_eq!(got.bytes, b"Subject: first\r\nX: y\r\nContent-Transfer-Encoding: binary\r\n\r\nhi");
    }

    #[test]
    fn unknown_and_broken_encodings_are_errors() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfine\r\n--b\r\n\
                    Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n--b--\r\n";
        let root = parts::parse(msg);
        assert_eq!(convert(msg, &root, true), Err(BinaryError::UnknownCte));
        assert_eq!(convert(msg, &root.children[0], false).unwrap().bytes, b"fine");
        let broken = b"Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n";
        assert_eq!(convert(broken, &parts::parse(broken), true), Err(BinaryError::InvalidData));
    }
}
