//! SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), server side, without
//! channel binding (as Dovecot 2.3: gs2 flags `n` and `y` only).
//!
//! client-first `gs2-header n=user,r=cnonce` → credentials lookup in the
//! SCRAM scheme → server-first `r=cnonce+snonce,s=salt,i=iter` →
//! client-final `c=base64(gs2-header),r=nonce,p=proof` → proof check →
//! success with server-final `v=signature`.

use super::{Failure, Identity, Mechanism, PassdbResult, Step};
use crate::scheme::scram::{Credentials, Hash};
use crate::scheme::{base64_decode, base64_encode, constant_time_eq, SchemeError};

/// Server nonce length (printable characters), as Dovecot.
const SERVER_NONCE_LEN: usize = 64;

#[derive(Debug)]
enum State {
    ClientFirst,
    Lookup { gs2_header: String, cnonce: String, client_first_bare: String },
    ClientFinal { gs2_header: String, nonce: String, auth_prefix: String, credentials: Credentials },
    Done,
}

/// Server state.
#[derive(Debug)]
pub struct Scram {
    hash: Hash,
    snonce: String,
    state: State,
    identity: Identity,
}

impl Scram {
    /// A new exchange with a random server nonce.
    pub fn new(hash: Hash) -> Result<Self, SchemeError> {
        let snonce = crate::scheme::random_bytes(SERVER_NONCE_LEN)?
            .iter()
            .map(|b| match b % (b'~' - b'!') + b'!' {
                b',' => '~',
                c => char::from(c),
            })
            .collect();
        Ok(Self::with_nonce(hash, snonce))
    }

    /// A fixed server nonce (test vectors).
    pub fn with_nonce(hash: Hash, snonce: String) -> Self {
        Scram { hash, snonce, state: State::ClientFirst, identity: Identity::default() }
    }

    fn scheme(&self) -> &'static str {
        match self.hash {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn client_first(&mut self, msg: &str) -> Result<Step, &'static str> {
        // gs2-header = cbind-flag "," [authzid] ","
        let mut parts = msg.splitn(3, ',');
        let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("Invalid initial SCRAM message");
        };
        match cbind {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err("Channel binding not supported"),
            _ => return Err("Invalid GS2 header"),
        }
        let login_user = match authzid {
            "" => None,
            a => Some(a.strip_prefix("a=").and_then(unescape).ok_or("Invalid authzid field")?),
        };
        let mut fields = bare.split(',');
        let user = fields.next().and_then(|f| f.strip_prefix("n=")).ok_or("Invalid username field")?;
        let user = unescape(user).filter(|u| !u.is_empty()).ok_or("Username escaping is invalid")?;
        let cnonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or("Invalid client nonce")?;
        if cnonce.is_empty() || !cnonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
            return Err("Invalid client nonce");
        }
        if bare.starts_with("m=") {
            return Err("Mandatory extension not supported");
        }
        self.identity.login_user = login_user.filter(|l| *l != user);
        self.identity.user = Some(user);
        let gs2_header = format!("{cbind},{authzid},");
        self.state =
            State::Lookup { gs2_header, cnonce: cnonce.to_string(), client_first_bare: bare.to_string() };
        Ok(Step::LookupCredentials { scheme: self.scheme() })
    }

    fn client_final(&mut self, msg: &str) -> Result<Step, Failure> {
        let protocol = |m: &str| Failure::Protocol(m.to_string());
        let State::ClientFinal { gs2_header, nonce, auth_prefix, credentials } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(protocol("unexpected input"));
        };
        let (without_proof, proof) =
            msg.rsplit_once(",p=").ok_or_else(|| protocol("Invalid final client message"))?;
        let mut fields = without_proof.split(',');
        let cbind =
            fields.next().and_then(|f| f.strip_prefix("c=")).ok_or_else(|| protocol("Invalid GS2 header"))?;
        if base64_decode(cbind).as_deref() != Some(gs2_header.as_bytes()) {
            return Err(protocol("Invalid channel binding data"));
        }
        let got_nonce =
            fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| protocol("Wrong nonce"))?;
        if got_nonce != nonce {
            return Err(protocol("Wrong nonce"));
        }
        let proof = base64_decode(proof)
            .filter(|p| p.len() == self.hash.digest_len())
            .ok_or_else(|| protocol("Invalid base64 encoding"))?;
        let auth_message = format!("{auth_prefix},{without_proof}");
        let client_signature = self.hash.hmac(&credentials.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&self.hash.digest(&client_key), &credentials.stored_key) {
            return Err(Failure::Mismatch);
        }
        let server_signature = self.hash.hmac(&credentials.server_key, auth_message.as_bytes());
        Ok(Step::Success { final_data: Some(format!("v={}", base64_encode(&server_signature)).into_bytes()) })
    }
}

impl Mechanism for Scram {
    fn name(&self) -> &'static str {
        self.scheme()
    }

    fn input(&mut self, data: &[u8]) -> Step {
        let Ok(msg) = std::str::from_utf8(data) else {
            return Step::Fail(Failure::Protocol("Invalid UTF-8".into()));
        };
        match self.state {
            State::ClientFirst => self.client_first(msg).unwrap_or_else(|e| {
                self.state = State::Done;
                Step::Fail(Failure::Protocol(e.into()))
            }),
            State::ClientFinal { .. } => self.client_final(msg).unwrap_or_else(Step::Fail),
            State::Lookup { .. } | State::Done => Step::Fail(Failure::Protocol("unexpected input".into())),
        }
    }

    fn credentials(&mut self, result: Result<Vec<u8>, PassdbResult>) -> Step {
        let State::Lookup { gs2_header, cnonce, client_first_bare } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Step::Fail(Failure::Protocol("unexpected credentials".into()));
        };
        let raw = match result {
            Ok(raw) => raw,
            Err(r) => return Step::Fail(Failure::Passdb(r)),
        };
        let Ok(credentials) = Credentials::parse(self.hash, &raw) else {
            return Step::Fail(Failure::Passdb(PassdbResult::InternalFailure));
        };
        let nonce = format!("{cnonce}{}", self.snonce);
        let server_first =
            format!("r={nonce},s={},i={}", base64_encode(&credentials.salt), credentials.iterations);
        let auth_prefix = format!("{client_first_bare},{server_first}");
        self.state = State::ClientFinal { gs2_header, nonce, auth_prefix, credentials };
        Step::Continue(server_first.into_bytes())
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// SCRAM `saslname` unescaping: `=2C` → `,`, `=3D` → `=`; other `=` invalid.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let code = rest.get(pos + 1..pos + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::drive;
    use super::super::testing::TablePassdb;
    use super::*;

    fn stored(hash: Hash, salt_b64: &str) -> &'static str {
        let salt = base64_decode(salt_b64).unwrap();
        let text = Credentials::derive(hash, b"pencil", &salt, 4096).to_text();
        let name = if hash == Hash::Sha1 { "SCRAM-SHA-1" } else { "SCRAM-SHA-256" };
        Box::leak(format!("{{{name}}}{text}").into_boxed_str())
    }

    fn run(hash: Hash, snonce: &str, salt: &str, first: &str, server_first: &str, fin: &str, v: &str) {
        for db_pw in [stored(hash, salt), "{PLAIN}pencil"] {
            let mut db = TablePassdb(vec![("user", db_pw)]);
            let mut m = Scram::with_nonce(hash, snonce.into());
            if db_pw.starts_with("{PLAIN}") {
                // Plaintext passdb: credentials are generated with a fresh
                // salt, so only check that the exchange is well formed.
                let step = m.start(Some(first.as_bytes()));
                let Step::Continue(sf) = drive(&mut m, step, &mut db) else { panic!() };
                assert!(String::from_utf8(sf).unwrap().starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
                continue;
            }
            let step = m.start(Some(first.as_bytes()));
            assert_eq!(drive(&mut m, step, &mut db), Step::Continue(server_first.as_bytes().to_vec()));
            let step = m.input(fin.as_bytes());
            assert_eq!(step, Step::Success { final_data: Some(v.as_bytes().to_vec()) });
            assert_eq!(m.identity().user.as_deref(), Some("user"));
        }
    }

    #[test]
    fn rfc5802_sha1_vector() {
        run(
            Hash::Sha1,
            "3rfcNHYJY1ZVvWVs7j",
            "QSXCR+Q6sek8bf92",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let mut m = Scram::with_nonce(Hash::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let mut db = TablePassdb(vec![("user", stored(Hash::Sha256, "W22ZaJ0SNY7soEsUEjb6gQ=="))]);
        let step = m.start(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
        assert_eq!(
            drive(&mut m, step, &mut db),
            Step::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let fin = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            m.input(fin.as_bytes()),
            Step::Success { final_data: Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()) }
        );
    }

    #[test]
    fn wrong_proof_and_bad_input() {
        let mut db = TablePassdb(vec![("user", stored(Hash::Sha1, "QSXCR+Q6sek8bf92"))]);
        let mut m = Scram::with_nonce(Hash::Sha1, "3rfcNHYJY1ZVvWVs7j".into());
        let step = m.start(Some(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
        drive(&mut m, step, &mut db);
        let fin = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        assert_eq!(m.input(fin.as_bytes()), Step::Fail(Failure::Mismatch));
        for bad in ["", "p=tls,,n=user,r=x", "n,,n=us=er,r=x", "n,,r=x", "n,,n=user", "x,,n=user,r=a"] {
            let mut m = Scram::with_nonce(Hash::Sha1, "s".into());
            assert!(matches!(m.input(bad.as_bytes()), Step::Fail(Failure::Protocol(_))), "{bad}");
        }
        assert_eq!(unescape("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    }
}
