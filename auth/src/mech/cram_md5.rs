//! CRAM-MD5 (RFC 2195): the server sends `<random.time@hostname>`, the
//! client answers `user SP hex(HMAC-MD5(password, challenge))`; the server
//! checks it with the CRAM-MD5 credentials (the stored HMAC context).

use super::{user_name, Failure, Identity, Mechanism, PassdbResult, Step};
use crate::scheme::{cram_md5, hex_decode, SchemeError};

/// Server state.
#[derive(Debug)]
pub struct CramMd5 {
    challenge: String,
    response: Option<[u8; 16]>,
    identity: Identity,
}

impl CramMd5 {
    /// A fresh challenge for `hostname`.
    pub fn new(hostname: &str) -> Result<Self, SchemeError> {
        let random = crate::scheme::random_bytes(8)?;
        let mut n = [0u8; 8];
        n.copy_from_slice(&random);
        let time =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(Self::with_challenge(format!("<{}.{time}@{hostname}>", u64::from_le_bytes(n))))
    }

    /// A fixed challenge (tests).
    pub fn with_challenge(challenge: String) -> Self {
        CramMd5 { challenge, response: None, identity: Identity::default() }
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &'static str {
        "CRAM-MD5"
    }

    fn start(&mut self, _initial: Option<&[u8]>) -> Step {
        // Server-first mechanism: an initial response is not allowed, and
        // Dovecot ignores one.
        Step::Continue(self.challenge.as_bytes().to_vec())
    }

    fn input(&mut self, data: &[u8]) -> Step {
        if self.response.is_some() {
            return Step::Fail(Failure::Protocol("unexpected input".into()));
        }
        let Some(space) = data.iter().rposition(|b| *b == b' ') else {
            return Step::Fail(Failure::Protocol("missing digest".into()));
        };
        let user = match user_name(&data[..space]) {
            Ok(u) if !u.is_empty() => u,
            Ok(_) => return Step::Fail(Failure::Protocol("Invalid username".into())),
            Err(e) => return Step::Fail(e),
        };
        let digest = std::str::from_utf8(&data[space + 1..]).ok().and_then(hex_decode);
        let Some(Ok(digest)) = digest.map(<[u8; 16]>::try_from) else {
            return Step::Fail(Failure::Protocol("invalid digest".into()));
        };
        self.response = Some(digest);
        self.identity.user = Some(user);
        Step::LookupCredentials { scheme: "CRAM-MD5" }
    }

    fn credentials(&mut self, result: Result<Vec<u8>, PassdbResult>) -> Step {
        let context = match result {
            Ok(c) => c,
            Err(r) => return Step::Fail(Failure::Passdb(r)),
        };
        let (Some(expected), Some(got)) =
            (cram_md5::hmac_from_context(&context, self.challenge.as_bytes()), self.response)
        else {
            return Step::Fail(Failure::Passdb(PassdbResult::InternalFailure));
        };
        if crate::scheme::constant_time_eq(&expected, &got) {
            Step::Success { final_data: None }
        } else {
            Step::Fail(Failure::Mismatch)
        }
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::super::drive;
    use super::super::testing::TablePassdb;
    use super::*;

    #[test]
    fn rfc2195_vector() {
        let mut db = TablePassdb(vec![("tim", "{PLAIN}tanstaaftanstaaf")]);
        let mut m = CramMd5::with_challenge("<1896.697170952@postoffice.reston.mci.net>".into());
        assert_eq!(m.start(None), Step::Continue(b"<1896.697170952@postoffice.reston.mci.net>".to_vec()));
        let step = m.input(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(step, Step::LookupCredentials { scheme: "CRAM-MD5" });
        assert_eq!(drive(&mut m, step, &mut db), Step::Success { final_data: None });

        let mut m = CramMd5::with_challenge("<1896.697170952@postoffice.reston.mci.net>".into());
        m.start(None);
        let step = m.input(b"tim b913a602c7eda7a495b4e6e7334d3891");
        assert_eq!(drive(&mut m, step, &mut db), Step::Fail(Failure::Mismatch));
        // Stored as CRAM-MD5 context works too.
        let ctx =
            crate::scheme::generate_prefixed("CRAM-MD5", b"tanstaaftanstaaf", &Default::default()).unwrap();
        let stored: &'static str = Box::leak(ctx.into_boxed_str());
        let mut db = TablePassdb(vec![("tim", stored)]);
        let mut m = CramMd5::with_challenge("<1896.697170952@postoffice.reston.mci.net>".into());
        m.start(None);
        let step = m.input(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(drive(&mut m, step, &mut db), Step::Success { final_data: None });
        assert!(matches!(CramMd5::with_challenge("<x>".into()).input(b"tim zz"), Step::Fail(_)));
    }
}
