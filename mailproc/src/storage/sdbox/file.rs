//! The single-dbox file format (sans-IO), as Dovecot 2.3 writes `u.<uid>`:
//!
//! ```text
//! 2 M1e C<create stamp hex>\n            file header
//! \x01\x02N <8 spaces> <16 hex size>\n   message header (0x1e bytes)
//! <message, exactly size bytes>
//! \n\x01\x03\n                           metadata magic
//! R<received hex>\nV<vsize hex>\nG<guid>\n\n
//! ```

/// Size of the per-message header Dovecot writes (`M1e`).
pub const MSG_HEADER_SIZE: usize = 0x1e;
const MAGIC_PRE: &[u8] = b"\x01\x02";
const MAGIC_POST: &[u8] = b"\n\x01\x03\n";

/// Metadata of one dbox file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DboxMetadata {
    pub guid: Option<String>,
    pub received: Option<i64>,
    pub save_time: Option<i64>,
    pub virtual_size: Option<u64>,
    pub physical_size: Option<u64>,
    pub pop3_uidl: Option<String>,
}

/// A parsed file: where the message is and what the metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DboxFile {
    pub body_offset: usize,
    pub body_len: usize,
    pub metadata: DboxMetadata,
}

/// Serialises a message into a dbox file.
pub fn build(message: &[u8], created: i64, received: i64, virtual_size: u64, guid: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 160);
    out.extend_from_slice(format!("2 M{MSG_HEADER_SIZE:x} C{created:x}\n").as_bytes());
    out.extend_from_slice(MAGIC_PRE);
    out.push(b'N');
    out.extend_from_slice(b"          ");
    out.extend_from_slice(format!("{:016X}", message.len()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(message);
    out.extend_from_slice(MAGIC_POST);
    out.extend_from_slice(format!("R{received:x}\nV{virtual_size:x}\nG{guid}\n\n").as_bytes());
    out
}

/// Parses a dbox file.
pub fn parse(data: &[u8]) -> Result<DboxFile, String> {
    let (body_offset, body_len) = parse_header(data)?;
    let meta_start = body_offset.checked_add(body_len).ok_or("bad size")?;
    let tail = data.get(meta_start..).ok_or("truncated message body")?;
    Ok(DboxFile { body_offset, body_len, metadata: parse_metadata(tail)? })
}

/// How many bytes at the start of a file [`parse_header`] needs at most
/// (file header line + the message header of Dovecot's usual size).
pub const HEADER_PROBE: usize = 256;

/// Parses the file header and message header at the start of a file:
/// `(body_offset, body_len)`. `prefix` may be just the first bytes, so a
/// scan reads a few hundred bytes instead of the whole message.
pub fn parse_header(prefix: &[u8]) -> Result<(usize, usize), String> {
    let nl = prefix.iter().position(|&b| b == b'\n').ok_or("no file header")?;
    let header = std::str::from_utf8(&prefix[..nl]).map_err(|_| "file header not UTF-8")?;
    let mut fields = header.split(' ');
    if fields.next() != Some("2") {
        return Err(format!("unsupported dbox version in '{header}'"));
    }
    let mut msg_header_size = MSG_HEADER_SIZE;
    for f in fields {
        if let Some(v) = f.strip_prefix('M') {
            msg_header_size = usize::from_str_radix(v, 16).map_err(|_| "bad M field")?;
        }
    }
    let start = nl + 1;
    let mh = prefix.get(start..start + msg_header_size).ok_or("truncated message header")?;
    if !mh.starts_with(MAGIC_PRE) || mh.get(2) != Some(&b'N') || msg_header_size < 29 {
        return Err("bad message header magic".into());
    }
    let size_hex = std::str::from_utf8(&mh[13..29]).map_err(|_| "bad size")?;
    let body_len = usize::from_str_radix(size_hex.trim(), 16).map_err(|_| "bad size")?;
    Ok((start + msg_header_size, body_len))
}

/// Parses the metadata block that follows the message body (`tail`
/// starts right after the body).
pub fn parse_metadata(tail: &[u8]) -> Result<DboxMetadata, String> {
    if !tail.starts_with(MAGIC_POST) {
        return Err("metadata magic missing".into());
    }
    let mut metadata = DboxMetadata::default();
    let text = String::from_utf8_lossy(&tail[MAGIC_POST.len()..]);
    for line in text.split('\n') {
        if line.is_empty() {
            break;
        }
        // A key is one ASCII letter; anything else is not ours to read.
        let (Some(key), Some(value)) = (line.get(..1), line.get(1..)) else { continue };
        let hex = || i64::from_str_radix(value, 16).ok();
        match key {
            "G" => metadata.guid = Some(value.to_string()),
            "R" => metadata.received = hex(),
            "S" => metadata.save_time = hex(),
            "V" => metadata.virtual_size = u64::from_str_radix(value, 16).ok(),
            "Z" => metadata.physical_size = u64::from_str_radix(value, 16).ok(),
            "P" => metadata.pop3_uidl = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_written_file() {
        // Bytes as Debian's Dovecot 2.3.19 wrote them.
        let data = b"2 M1e C6b063a18\n\x01\x02N          000000000000001E\nFrom: a@b\nSubject: one\n\nbody1\n\n\x01\x03\nR6b063a18\nV22\nG8f089d21183a066b5350000083ecc375\n\n";
        let f = parse(data).unwrap();
        assert_eq!(&data[f.body_offset..f.body_offset + f.body_len], b"From: a@b\nSubject: one\n\nbody1\n");
        assert_eq!(f.metadata.guid.as_deref(), Some("8f089d21183a066b5350000083ecc375"));
        assert_eq!(f.metadata.virtual_size, Some(34));
        assert_eq!(f.metadata.received, Some(0x6b063a18));
        let ours = build(
            b"From: a@b\nSubject: one\n\nbody1\n",
            0x6b063a18,
            0x6b063a18,
            34,
            "8f089d21183a066b5350000083ecc375",
        );
        assert_eq!(ours, data.to_vec());
    }
}
