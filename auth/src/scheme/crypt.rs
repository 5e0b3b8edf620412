//! crypt(3)-based schemes: CRYPT (any format the system's libxcrypt knows,
//! including yescrypt from /etc/shadow), MD5-CRYPT, DES-CRYPT, SHA256-CRYPT,
//! SHA512-CRYPT and BLF-CRYPT, plus the MD5 scheme (MD5-CRYPT or PLAIN-MD5).
//!
//! Generation follows Dovecot 2.3.19: MD5-CRYPT `$1$` + 8 salt characters,
//! SHA-crypt `$5$`/`$6$` + 16 characters (with `rounds=N$` only when not the
//! default 5000), BLF-CRYPT and CRYPT `$2y$05$`, DES-CRYPT 2 characters.

use super::{constant_time_eq, random_bytes, random_salt, sys_crypt, SchemeError};

/// Which crypt(3) method a scheme generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// CRYPT: verifies any format; generates bcrypt like Dovecot 2.3.
    Any,
    /// Traditional DES.
    Des,
    /// `$1$`.
    Md5,
    /// `$5$`.
    Sha256,
    /// `$6$`.
    Sha512,
    /// `$2y$`.
    Blowfish,
}

/// Default SHA-crypt rounds.
const SHA_CRYPT_ROUNDS: u32 = 5000;
/// Default bcrypt cost.
const BLF_COST: u32 = 5;

/// Hashes `plain` with a fresh salt.
pub fn generate(method: Method, plain: &[u8], rounds: Option<u32>) -> Result<String, SchemeError> {
    let setting = match method {
        Method::Md5 => format!("$1${}", random_salt(8)?),
        Method::Des => random_salt(2)?,
        Method::Sha256 | Method::Sha512 => {
            let id = if method == Method::Sha256 { 5 } else { 6 };
            match rounds.unwrap_or(SHA_CRYPT_ROUNDS) {
                SHA_CRYPT_ROUNDS => format!("${id}${}", random_salt(16)?),
                r => format!("${id}$rounds={r}${}", random_salt(16)?),
            }
        }
        Method::Blowfish | Method::Any => {
            let cost = rounds.unwrap_or(BLF_COST).clamp(4, 31);
            sys_crypt::gensalt("$2y$", cost, &random_bytes(16)?)
                .ok_or_else(|| SchemeError::Crypt("BLF-CRYPT".into()))?
        }
    };
    sys_crypt::crypt(plain, &setting).ok_or_else(|| SchemeError::Crypt(format!("{method:?}")))
}

/// Verifies `plain` against a crypt string; empty or unsupported stored data
/// never matches.
pub fn verify(plain: &[u8], raw: &[u8]) -> bool {
    let Ok(stored) = std::str::from_utf8(raw) else { return false };
    if stored.is_empty() {
        return false;
    }
    match sys_crypt::crypt(plain, stored) {
        Some(hash) => constant_time_eq(hash.as_bytes(), stored.as_bytes()),
        None => false,
    }
}

/// The MD5 scheme: `$1$` data is MD5-CRYPT, anything else PLAIN-MD5.
pub fn verify_md5_any(plain: &[u8], raw: &[u8]) -> Result<bool, SchemeError> {
    if raw.starts_with(b"$1$") {
        return Ok(verify(plain, raw));
    }
    let text = std::str::from_utf8(raw).map_err(|_| SchemeError::InvalidData {
        scheme: "MD5".into(),
        reason: "Not a valid MD5-CRYPT or PLAIN-MD5 password".into(),
    })?;
    let md5 = super::decode(text, "PLAIN-MD5").map_err(|_| SchemeError::InvalidData {
        scheme: "MD5".into(),
        reason: "Not a valid MD5-CRYPT or PLAIN-MD5 password".into(),
    })?;
    super::verify_raw(plain, "PLAIN-MD5", &md5, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(generate(Method::Md5, b"x", None).unwrap().starts_with("$1$"));
        let sha = generate(Method::Sha512, b"x", None).unwrap();
        assert_eq!(sha.split('$').nth(2).unwrap().len(), 16);
        assert!(generate(Method::Sha256, b"x", Some(6000)).unwrap().starts_with("$5$rounds=6000$"));
        assert!(generate(Method::Blowfish, b"x", None).unwrap().starts_with("$2y$05$"));
        assert!(verify(b"x", generate(Method::Des, b"x", None).unwrap().as_bytes()));
    }

    #[test]
    fn shadow_style_hashes() {
        // yescrypt, as Debian 12 writes to /etc/shadow (mkpasswd -m yescrypt secret).
        let y = "$y$j9T$.l1zvdFsyxmnvQimEOl82.$EdILuQx1DoSAALDHbfrg5FK79CFGQcXD7aWBZaZchR2";
        assert!(verify(b"secret", y.as_bytes()));
        assert!(!verify(b"secret", b""));
        assert!(!verify(b"secret", b"!locked"));
    }
}
