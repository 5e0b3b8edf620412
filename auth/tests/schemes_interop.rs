//! Password schemes against independent implementations: Debian's Dovecot
//! 2.3 (`doveadm pw`), Python passlib / hashlib / argon2-cffi, and
//! `mkpasswd`. Both directions: their hashes verify here, ours verify in
//! `doveadm pw -t`.

mod common;

use common::{ensure_tools, output, stdout};
use dovecote_auth::scheme::{self, GenerateParams};

/// The schemes issue 4 requires, plus the aliases Dovecot registers.
const SCHEMES: &[&str] = &[
    "PLAIN",
    "CLEARTEXT",
    "CLEAR",
    "CRYPT",
    "MD5-CRYPT",
    "SHA256-CRYPT",
    "SHA512-CRYPT",
    "BLF-CRYPT",
    "DES-CRYPT",
    "ARGON2I",
    "ARGON2ID",
    "PBKDF2",
    "SSHA",
    "SSHA256",
    "SSHA512",
    "SMD5",
    "SHA",
    "SHA1",
    "SHA256",
    "SHA512",
    "PLAIN-MD4",
    "PLAIN-MD5",
    "LDAP-MD5",
    "MD5",
    "CRAM-MD5",
    "HMAC-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
];

const PASSWORDS: &[&str] = &["secret", "pässwörd with spaces", "x"];

/// Argon2 is slow in debug builds: one password is enough for it.
fn passwords_for(scheme: &str) -> &'static [&'static str] {
    if scheme.starts_with("ARGON2") {
        &PASSWORDS[..1]
    } else {
        PASSWORDS
    }
}

fn ours_verifies(stored: &str, password: &str) {
    assert!(scheme::verify(password.as_bytes(), stored, "PLAIN", "user").unwrap(), "{stored} / {password}");
    assert!(!scheme::verify(b"wrong", stored, "PLAIN", "user").unwrap(), "{stored} accepts a wrong password");
}

#[test]
fn doveadm_hashes_verify_here() {
    ensure_tools();
    for scheme in SCHEMES {
        for password in passwords_for(scheme) {
            let stored = stdout("/usr/bin/doveadm", &["pw", "-s", scheme, "-p", password]);
            ours_verifies(&stored, password);
        }
    }
    // Encoding suffixes as Dovecot writes them.
    for scheme in ["SHA256.HEX", "SHA512.b64", "PLAIN-MD5.b64", "CRAM-MD5.b64", "SSHA.hex"] {
        let stored = stdout("/usr/bin/doveadm", &["pw", "-s", scheme, "-p", "secret"]);
        ours_verifies(&stored, "secret");
    }
    // Non-default rounds.
    for (scheme, rounds) in [("SHA512-CRYPT", "6000"), ("BLF-CRYPT", "6"), ("PBKDF2", "1000")] {
        let stored = stdout("/usr/bin/doveadm", &["pw", "-s", scheme, "-r", rounds, "-p", "secret"]);
        ours_verifies(&stored, "secret");
    }
}

#[test]
fn our_hashes_verify_in_doveadm() {
    ensure_tools();
    for name in SCHEMES.iter().chain(["SHA256.HEX", "SSHA512.hex", "PLAIN-MD5.b64"].iter()) {
        for password in passwords_for(name) {
            let params = GenerateParams { user: "user".into(), rounds: None };
            let stored = scheme::generate_prefixed(name, password.as_bytes(), &params).unwrap();
            let out = output("/usr/bin/doveadm", &["pw", "-t", &stored, "-p", password]);
            assert!(
                out.status.success(),
                "doveadm pw -t {stored}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let bad = output("/usr/bin/doveadm", &["pw", "-t", &stored, "-p", "wrong"]);
            assert!(!bad.status.success(), "doveadm accepts a wrong password for {stored}");
        }
    }
}

#[test]
fn our_generated_formats_match_dovecot() {
    // Same shape as doveadm's output: same prefix, same field layout.
    ensure_tools();
    for name in SCHEMES {
        let theirs = stdout("/usr/bin/doveadm", &["pw", "-s", name, "-p", "secret"]);
        let ours = scheme::generate_prefixed(name, b"secret", &GenerateParams::default()).unwrap();
        let shape = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || "./+=".contains(c) { 'x' } else { c }).collect()
        };
        // Parameter fields ($2y$05, $5000, m=..,t=..) must be equal; salts
        // and hashes only as long.
        let params = |s: &str| -> Vec<String> {
            s.split('$')
                .map(|f| if f.len() <= 4 || f.contains('=') { f.to_string() } else { f.len().to_string() })
                .collect()
        };
        assert_eq!(shape(&theirs).len(), shape(&ours).len(), "{theirs} vs {ours}");
        if theirs.contains('$') {
            assert_eq!(params(&theirs), params(&ours), "{theirs} vs {ours}");
        }
    }
}

fn python(code: &str, password: &str) -> String {
    stdout("python3", &["-c", code, password])
}

#[test]
fn passlib_and_python_hashes_verify_here() {
    ensure_tools();
    let passlib = |expr: &str, password: &str| {
        python(
            &format!("import sys; from passlib import hash as h; print({expr}.hash(sys.argv[1]))"),
            password,
        )
    };
    for password in PASSWORDS {
        let cases = [
            passlib("h.ldap_salted_sha1", password),                                      // {SSHA}
            passlib("h.ldap_salted_md5", password),                                       // {SMD5}
            passlib("h.ldap_sha1", password),                                             // {SHA}
            passlib("h.ldap_salted_sha256", password),                                    // {SSHA256}
            passlib("h.ldap_salted_sha512", password),                                    // {SSHA512}
            passlib("h.ldap_md5", password).replacen("{MD5}", "{LDAP-MD5}", 1),           // base64 MD5
            format!("{{PLAIN-MD5}}{}", passlib("h.hex_md5", password)),                   // hex MD5
            format!("{{SHA256.HEX}}{}", passlib("h.hex_sha256", password)),               // hex SHA-256
            format!("{{MD5-CRYPT}}{}", passlib("h.md5_crypt", password)),
            format!("{{SHA256-CRYPT}}{}", passlib("h.sha256_crypt.using(rounds=5000)", password)),
            format!("{{SHA512-CRYPT}}{}", passlib("h.sha512_crypt", password)),
            format!("{{BLF-CRYPT}}{}", passlib("h.bcrypt.using(ident='2y', rounds=5)", password)),
            format!("{{CRYPT}}{}", passlib("h.bcrypt", password)),
            format!("{{DES-CRYPT}}{}", passlib("h.des_crypt", password)),
            // argon2-cffi, default parameters (argon2id) and argon2i.
            format!(
                "{{ARGON2ID}}{}",
                python("import sys, argon2; print(argon2.PasswordHasher().hash(sys.argv[1]))", password)
            ),
            format!(
                "{{ARGON2I}}{}",
                python(
                    "import sys, argon2; print(argon2.PasswordHasher(type=argon2.Type.I).hash(sys.argv[1]))",
                    password
                )
            ),
            // Dovecot's PBKDF2 layout from hashlib.
            format!(
                "{{PBKDF2}}{}",
                python(
                    "import sys, hashlib; s='abcdefghijklmnop'; \
                     print('$1$%s$5000$%s' % (s, hashlib.pbkdf2_hmac('sha1', sys.argv[1].encode(), s.encode(), 5000).hex()))",
                    password
                )
            ),
        ];
        for stored in cases {
            ours_verifies(&stored, password);
        }
        for (name, h) in [("SCRAM-SHA-1", "sha1"), ("SCRAM-SHA-256", "sha256")] {
            // RFC 5802 §3 from hmac/hashlib.
            let code = format!(
                "import sys, hashlib, hmac, base64, os\n\
                 pw = sys.argv[1].encode(); salt = os.urandom(12)\n\
                 sp = hashlib.pbkdf2_hmac('{h}', pw, salt, 4096)\n\
                 ck = hmac.new(sp, b'Client Key', '{h}').digest()\n\
                 sk = hmac.new(sp, b'Server Key', '{h}').digest()\n\
                 b = lambda x: base64.b64encode(x).decode()\n\
                 print('4096,%s,%s,%s' % (b(salt), b(hashlib.new('{h}', ck).digest()), b(sk)))"
            );
            ours_verifies(&format!("{{{name}}}{}", python(&code, password)), password);
        }
    }
}

#[test]
fn mkpasswd_hashes_verify_here() {
    ensure_tools();
    for method in ["yescrypt", "sha512crypt", "sha256crypt", "md5crypt", "bcrypt", "descrypt"] {
        let hash = stdout("mkpasswd", &["-m", method, "secret"]);
        // As in /etc/shadow: no prefix, default scheme CRYPT.
        assert!(scheme::verify(b"secret", &hash, "CRYPT", "").unwrap(), "{method}: {hash}");
        assert!(!scheme::verify(b"Secret", &hash, "CRYPT", "").unwrap(), "{method}: {hash}");
        let prefixed = format!("{{CRYPT}}{hash}");
        assert!(scheme::verify(b"secret", &prefixed, "PLAIN", "").unwrap(), "{method}: {prefixed}");
    }
}
