//! SCRAM-SHA-1 and SCRAM-SHA-256 stored credentials (RFC 5802 §3):
//! `<iterations>,<base64 salt>,<base64 StoredKey>,<base64 ServerKey>`,
//! generated with 4096 iterations and a 16-byte salt as Dovecot does.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{base64_decode, base64_encode, constant_time_eq, random_bytes, SchemeError};

/// Default iteration count.
pub const DEFAULT_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;

/// The hash a SCRAM variant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
}

impl Hash {
    /// Digest length.
    pub fn digest_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// `H(data)`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        match self {
            Hash::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Hash::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// `Hi(password, salt, i)` = PBKDF2 with HMAC of this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_len()];
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        }
        out
    }
}

/// Parsed stored credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Iteration count.
    pub iterations: u32,
    /// Salt (raw).
    pub salt: Vec<u8>,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl Credentials {
    /// Derives credentials from a password.
    pub fn derive(hash: Hash, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = hash.salted_password(password, salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        Credentials {
            iterations,
            salt: salt.to_vec(),
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// Parses `iter,salt,storedkey,serverkey`.
    pub fn parse(hash: Hash, raw: &[u8]) -> Result<Self, SchemeError> {
        let name = match hash {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        };
        let invalid = |reason: &str| SchemeError::InvalidData { scheme: name.into(), reason: reason.into() };
        let text = std::str::from_utf8(raw).map_err(|_| invalid("Invalid SCRAM credentials"))?;
        let fields: Vec<&str> = text.split(',').collect();
        let [iter, salt, stored, server] = fields[..] else {
            return Err(invalid("Invalid SCRAM credentials"));
        };
        let iterations =
            iter.parse::<u32>().ok().filter(|i| *i > 0).ok_or_else(|| invalid("Invalid iteration count"))?;
        let salt = base64_decode(salt).ok_or_else(|| invalid("Invalid salt"))?;
        let stored_key = base64_decode(stored).filter(|k| k.len() == hash.digest_len());
        let server_key = base64_decode(server).filter(|k| k.len() == hash.digest_len());
        match (stored_key, server_key) {
            (Some(stored_key), Some(server_key)) => {
                Ok(Credentials { iterations, salt, stored_key, server_key })
            }
            _ => Err(invalid("Invalid StoredKey or ServerKey")),
        }
    }

    /// The stored text form.
    pub fn to_text(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            base64_encode(&self.salt),
            base64_encode(&self.stored_key),
            base64_encode(&self.server_key)
        )
    }
}

/// Generates stored credentials with a fresh salt.
pub fn generate(hash: Hash, plain: &[u8], rounds: Option<u32>) -> Result<String, SchemeError> {
    let salt = random_bytes(SALT_LEN)?;
    Ok(Credentials::derive(hash, plain, &salt, rounds.unwrap_or(DEFAULT_ITERATIONS)).to_text())
}

/// Verifies a plaintext password against stored credentials.
pub fn verify(hash: Hash, plain: &[u8], raw: &[u8]) -> Result<bool, SchemeError> {
    let creds = Credentials::parse(hash, raw)?;
    let derived = Credentials::derive(hash, plain, &creds.salt, creds.iterations);
    Ok(constant_time_eq(&derived.stored_key, &creds.stored_key))
}
