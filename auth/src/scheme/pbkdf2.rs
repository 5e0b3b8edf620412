//! Dovecot's PBKDF2 scheme: `$1$<salt>$<rounds>$<hex>`, PBKDF2-HMAC-SHA1 over
//! the salt text, 20-byte output, 16-character salt and 5000 rounds when
//! generated.

use sha1::Sha1;

use super::{constant_time_eq, hex_decode, hex_encode, random_salt, SchemeError};

const DEFAULT_ROUNDS: u32 = 5000;
const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 20;

/// Generates `$1$salt$rounds$hex`.
pub fn generate(plain: &[u8], rounds: Option<u32>) -> Result<String, SchemeError> {
    let salt = random_salt(SALT_LEN)?;
    let rounds = rounds.unwrap_or(DEFAULT_ROUNDS).max(1);
    Ok(format!("$1${salt}${rounds}${}", hex_encode(&derive(plain, salt.as_bytes(), rounds))))
}

/// Verifies against `$1$salt$rounds$hex`.
pub fn verify(plain: &[u8], raw: &[u8]) -> Result<bool, SchemeError> {
    let invalid = |reason: &str| SchemeError::InvalidData { scheme: "PBKDF2".into(), reason: reason.into() };
    let text = std::str::from_utf8(raw).map_err(|_| invalid("Invalid PBKDF2 data"))?;
    let fields: Vec<&str> = text.split('$').collect();
    let ["", "1", salt, rounds, hash] = fields[..] else {
        return Err(invalid("Invalid PBKDF2 data"));
    };
    let rounds =
        rounds.parse::<u32>().ok().filter(|r| *r > 0).ok_or_else(|| invalid("Invalid PBKDF2 rounds"))?;
    let expected = hex_decode(hash).ok_or_else(|| invalid("Invalid PBKDF2 hash"))?;
    if expected.is_empty() || expected.len() > 64 {
        return Err(invalid("Invalid PBKDF2 hash"));
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<Sha1>(plain, salt.as_bytes(), rounds, &mut out);
    Ok(constant_time_eq(&out, &expected))
}

fn derive(plain: &[u8], salt: &[u8], rounds: u32) -> [u8; OUTPUT_LEN] {
    let mut out = [0u8; OUTPUT_LEN];
    pbkdf2::pbkdf2_hmac::<Sha1>(plain, salt, rounds, &mut out);
    out
}
