//! ARGON2I and ARGON2ID (libsodium's `crypto_pwhash_str` PHC strings, as
//! Dovecot writes them): generated with Dovecot 2.3's defaults — argon2i
//! m=32768,t=4,p=1 and argon2id m=65536,t=3,p=1, 16-byte salt, 32-byte hash;
//! `rounds` sets t. Verification takes the parameters from the string.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::{random_bytes, SchemeError};

/// Argon2 variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// ARGON2I.
    Argon2i,
    /// ARGON2ID.
    Argon2id,
}

/// Generates a PHC string.
pub fn generate(variant: Variant, plain: &[u8], rounds: Option<u32>) -> Result<String, SchemeError> {
    let fail =
        |e: String| SchemeError::InvalidData { scheme: format!("{variant:?}").to_uppercase(), reason: e };
    let (alg, m, t) = match variant {
        Variant::Argon2i => (Algorithm::Argon2i, 32768, 4),
        Variant::Argon2id => (Algorithm::Argon2id, 65536, 3),
    };
    let params = Params::new(m, rounds.unwrap_or(t).max(1), 1, Some(32)).map_err(|e| fail(e.to_string()))?;
    let salt = SaltString::encode_b64(&random_bytes(16)?).map_err(|e| fail(e.to_string()))?;
    let hasher = Argon2::new(alg, Version::V0x13, params);
    Ok(hasher.hash_password(plain, &salt).map_err(|e| fail(e.to_string()))?.to_string())
}

/// Verifies against a PHC string.
pub fn verify(plain: &[u8], raw: &[u8]) -> Result<bool, SchemeError> {
    let invalid = |reason: String| SchemeError::InvalidData { scheme: "ARGON2".into(), reason };
    let text = std::str::from_utf8(raw).map_err(|e| invalid(e.to_string()))?;
    let hash = PasswordHash::new(text).map_err(|e| invalid(e.to_string()))?;
    match Argon2::default().verify_password(plain, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(invalid(e.to_string())),
    }
}
