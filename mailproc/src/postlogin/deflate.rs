//! The COMPRESS=DEFLATE layer (RFC 4978) of a post-login connection: raw
//! deflate (no zlib header) both ways once the protocol said `OK Begin
//! compression`. Output is compressed with a sync flush each time the
//! session writes, so every response (IDLE updates too) reaches the client
//! at once; input is inflated only as far as the caller's buffer limit, so
//! a small compressed input cannot blow up into unbounded memory.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use thiserror::Error;

/// Dovecot's `IMAP_COMPRESS_DEFAULT_LEVEL`.
pub const DEFAULT_LEVEL: u32 = 6;

#[derive(Debug, Error)]
pub enum DeflateError {
    #[error("deflate: {0}")]
    Compress(#[from] flate2::CompressError),
    #[error("inflate: {0}")]
    Decompress(#[from] flate2::DecompressError),
    /// The client ended its deflate stream: nothing may follow.
    #[error("inflate: data after the end of the compressed stream")]
    Ended,
}

/// Both directions' state, plus the compressed client bytes not yet
/// inflated.
pub struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// Compressed client input waiting for room in the plaintext buffer.
    pub raw_in: Vec<u8>,
    ended: bool,
    /// The last inflate filled its output: more may be buffered inside.
    full: bool,
}

impl Deflate {
    pub fn new(level: u32) -> Deflate {
        Deflate {
            compress: Compress::new(Compression::new(level.clamp(1, 9)), false),
            decompress: Decompress::new(false),
            raw_in: Vec::new(),
            ended: false,
            full: false,
        }
    }

    /// Compresses all of `plain` onto `wire` and sync-flushes.
    pub fn compress(&mut self, plain: &[u8], wire: &mut Vec<u8>) -> Result<(), DeflateError> {
        let mut done = 0usize;
        loop {
            wire.reserve((plain.len() - done) / 2 + 64);
            let before = self.compress.total_in();
            self.compress.compress_vec(&plain[done..], wire, FlushCompress::Sync)?;
            done += (self.compress.total_in() - before) as usize;
            // The flush is complete once the input is used up and zlib
            // left room in the output.
            if done >= plain.len() && wire.len() < wire.capacity() {
                return Ok(());
            }
        }
    }

    /// Inflates `raw_in` onto `plain` until the input is used up or `plain`
    /// holds `limit` bytes. Returns how many plaintext bytes it added.
    pub fn inflate(&mut self, plain: &mut Vec<u8>, limit: usize) -> Result<usize, DeflateError> {
        let mut added = 0;
        let mut buf = [0u8; 8192];
        while plain.len() < limit && self.has_pending() {
            if self.ended {
                return Err(DeflateError::Ended);
            }
            let room = (limit - plain.len()).min(buf.len());
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self.decompress.decompress(&self.raw_in, &mut buf[..room], FlushDecompress::None)?;
            let used = (self.decompress.total_in() - in_before) as usize;
            let made = (self.decompress.total_out() - out_before) as usize;
            self.raw_in.drain(..used);
            plain.extend_from_slice(&buf[..made]);
            added += made;
            // A full output buffer may leave output inside the inflater.
            self.full = made == room;
            if status == Status::StreamEnd {
                self.ended = true;
                self.full = false;
            } else if used == 0 && made == 0 {
                // Needs more input than a partial block gives.
                break;
            }
        }
        Ok(added)
    }

    /// Whether inflating may produce more without new client bytes.
    pub fn has_pending(&self) -> bool {
        !self.raw_in.is_empty() || self.full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(d: &mut Deflate, wire: &[u8]) -> Vec<u8> {
        d.raw_in.extend_from_slice(wire);
        let mut out = Vec::new();
        d.inflate(&mut out, usize::MAX).unwrap();
        out
    }

    #[test]
    fn round_trips_with_a_sync_flush_per_write() {
        let mut a = Deflate::new(DEFAULT_LEVEL);
        let mut b = Deflate::new(DEFAULT_LEVEL);
        for text in [&b"a NOOP\r\n"[..], b"", &b"x".repeat(200_000), b"* 3 EXISTS\r\n"] {
            let mut wire = Vec::new();
            a.compress(text, &mut wire).unwrap();
            // A sync flush ends in the empty stored block 00 00 ff ff, so
            // the peer can decode everything sent so far.
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "{wire:?}");
            assert_eq!(inflate_all(&mut b, &wire), text);
        }
    }

    #[test]
    fn inflate_stops_at_the_limit_and_resumes() {
        let mut a = Deflate::new(DEFAULT_LEVEL);
        let mut wire = Vec::new();
        let big = b"y".repeat(1_000_000);
        a.compress(&big, &mut wire).unwrap();
        assert!(wire.len() < 10_000);
        let mut b = Deflate::new(DEFAULT_LEVEL);
        b.raw_in = wire;
        let mut plain = Vec::new();
        b.inflate(&mut plain, 100_000).unwrap();
        assert_eq!(plain.len(), 100_000);
        let mut total = plain.len();
        while b.has_pending() {
            plain.clear();
            total += b.inflate(&mut plain, 100_000).unwrap();
        }
        assert_eq!(total, big.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut b = Deflate::new(DEFAULT_LEVEL);
        b.raw_in = vec![0xff; 64];
        assert!(b.inflate(&mut Vec::new(), 1 << 20).is_err());
    }
}
