//! PLAIN, CLEAR, CLEARTEXT (the password itself) and PLAIN-TRUNC
//! (`<length>-<password>`, accepting longer input whose prefix matches a
//! password truncated to that length).

use super::constant_time_eq;

/// Verifies PLAIN-TRUNC data.
pub fn verify_trunc(plain: &[u8], raw: &[u8]) -> bool {
    let digits = raw.iter().take_while(|b| b.is_ascii_digit()).count();
    if raw.get(digits) != Some(&b'-') {
        return false;
    }
    let trunc_len: usize =
        std::str::from_utf8(&raw[..digits]).ok().and_then(|d| d.parse().ok()).unwrap_or(usize::MAX);
    let stored = &raw[digits + 1..];
    if stored.len() == trunc_len && plain.len() >= trunc_len {
        return constant_time_eq(&plain[..trunc_len], stored);
    }
    constant_time_eq(plain, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunc() {
        assert!(verify_trunc(b"secretlong", b"6-secret"));
        assert!(verify_trunc(b"sec", b"8-sec"));
        assert!(!verify_trunc(b"secre", b"6-secret"));
        assert!(!verify_trunc(b"secret", b"secret"));
    }
}
