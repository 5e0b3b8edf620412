//! Unsalted digests (SHA, SHA1, SHA256, SHA512, PLAIN-MD4, PLAIN-MD5,
//! LDAP-MD5, DIGEST-MD5) and salted ones (SMD5, SSHA, SSHA256, SSHA512:
//! `digest(password || salt) || salt`, 4 random salt bytes when generated).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::SchemeError;

/// Salt length Dovecot generates for the salted schemes.
const SALT_LEN: usize = 4;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD4 (PLAIN-MD4).
    Md4,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md4 | Algorithm::Md5 => 16,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

/// Digest of the concatenation of `parts`.
pub fn hash(alg: Algorithm, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    match alg {
        Algorithm::Md4 => run::<md4::Md4>(parts),
        Algorithm::Md5 => run::<Md5>(parts),
        Algorithm::Sha1 => run::<Sha1>(parts),
        Algorithm::Sha256 => run::<Sha256>(parts),
        Algorithm::Sha512 => run::<Sha512>(parts),
    }
}

/// `digest(plain || salt) || salt` with a fresh salt.
pub fn generate_salted(alg: Algorithm, plain: &[u8]) -> Result<Vec<u8>, SchemeError> {
    let salt = super::random_bytes(SALT_LEN)?;
    let mut out = hash(alg, &[plain, &salt]);
    out.extend_from_slice(&salt);
    Ok(out)
}

/// Verifies a salted digest; any salt length is accepted as in Dovecot.
pub fn verify_salted(alg: Algorithm, plain: &[u8], raw: &[u8], scheme: &str) -> Result<bool, SchemeError> {
    if raw.len() <= alg.digest_len() {
        return Err(SchemeError::InvalidData {
            scheme: scheme.to_string(),
            reason: format!("{scheme} password is too short"),
        });
    }
    let (digest, salt) = raw.split_at(alg.digest_len());
    Ok(super::constant_time_eq(&hash(alg, &[plain, salt]), digest))
}

/// DIGEST-MD5's stored secret: MD5 of `user:realm:password`, where the realm
/// is what follows the last `@` of the user name.
pub fn digest_md5(user: &str, plain: &[u8]) -> Vec<u8> {
    let (name, realm) = user.rsplit_once('@').unwrap_or((user, ""));
    hash(Algorithm::Md5, &[name.as_bytes(), b":", realm.as_bytes(), b":", plain])
}
