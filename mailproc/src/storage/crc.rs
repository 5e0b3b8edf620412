//! CRC-32 (IEEE) for framing index and log records, so torn or corrupted
//! records are detected rather than misread.

/// The CRC-32 of `data` (crc32fast: SIMD where the CPU has it, since
/// every index load checks every record).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
