//! PLAIN (RFC 4616): `authzid NUL authcid NUL password` in one response. A
//! non-empty authzid that differs from authcid requests a master-user login.

use super::{user_name, Failure, Identity, Mechanism, Step};

/// Server state.
#[derive(Debug, Default)]
pub struct Plain {
    identity: Identity,
}

impl Mechanism for Plain {
    fn name(&self) -> &'static str {
        "PLAIN"
    }

    fn input(&mut self, data: &[u8]) -> Step {
        let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
        let [authzid, authcid, password] = parts[..] else {
            return Step::Fail(Failure::Protocol("invalid input".into()));
        };
        let (authzid, authcid) = match (user_name(authzid), user_name(authcid)) {
            (Ok(z), Ok(c)) => (z, c),
            (Err(e), _) | (_, Err(e)) => return Step::Fail(e),
        };
        if authcid.is_empty() {
            return Step::Fail(Failure::Protocol("Invalid username".into()));
        }
        self.identity.login_user = (!authzid.is_empty() && authzid != authcid).then_some(authzid);
        self.identity.user = Some(authcid);
        Step::VerifyPlain { password: password.to_vec() }
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::TablePassdb;
    use super::super::{drive, PassdbResult};
    use super::*;

    #[test]
    fn plain_ok_fail_and_authzid() {
        let mut db = TablePassdb(vec![("tim", "{PLAIN}tanstaaftanstaaf")]);
        let mut m = Plain::default();
        assert_eq!(m.start(None), Step::Continue(vec![]));
        let step = m.input(b"\0tim\0tanstaaftanstaaf");
        assert_eq!(drive(&mut m, step, &mut db), Step::Success { final_data: None });
        assert_eq!(m.identity().user.as_deref(), Some("tim"));

        let mut m = Plain::default();
        let step = m.start(Some(b"bob\0tim\0wrong"));
        assert_eq!(drive(&mut m, step, &mut db), Step::Fail(Failure::Passdb(PassdbResult::PasswordMismatch)));
        assert_eq!(m.identity().login_user.as_deref(), Some("bob"));

        for bad in [&b"tim\0pw"[..], b"\0\0pw", b"a\0b\0c\0d", b"\0\xff\0pw"] {
            assert!(matches!(Plain::default().input(bad), Step::Fail(Failure::Protocol(_))));
        }
    }
}
