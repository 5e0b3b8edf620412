//! EXTERNAL (RFC 4422 appendix A): the identity comes from the verified TLS
//! client certificate (`cert_username`); the response is an optional
//! authorization identity. The passdb is asked only whether the user may log
//! in (credentials lookup with an empty scheme).

use super::{user_name, Failure, Identity, Mechanism, PassdbResult, Step};

/// Server state.
#[derive(Debug)]
pub struct External {
    cert_username: Option<String>,
    identity: Identity,
}

impl External {
    /// `cert_username` is `None` when the client presented no valid
    /// certificate.
    pub fn new(cert_username: Option<String>) -> Self {
        External { cert_username, identity: Identity::default() }
    }
}

impl Mechanism for External {
    fn name(&self) -> &'static str {
        "EXTERNAL"
    }

    fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            Some(data) => self.input(data),
            None => Step::Continue(Vec::new()),
        }
    }

    fn input(&mut self, authzid: &[u8]) -> Step {
        let Some(cert_user) = self.cert_username.clone() else {
            return Step::Fail(Failure::Protocol("Client didn't present valid SSL certificate".into()));
        };
        let authzid = match user_name(authzid) {
            Ok(a) => a,
            Err(e) => return Step::Fail(e),
        };
        self.identity.login_user = (!authzid.is_empty() && authzid != cert_user).then_some(authzid);
        self.identity.user = Some(cert_user);
        Step::LookupCredentials { scheme: "" }
    }

    fn credentials(&mut self, result: Result<Vec<u8>, PassdbResult>) -> Step {
        match result {
            Ok(_) => Step::Success { final_data: None },
            Err(r) => Step::Fail(Failure::Passdb(r)),
        }
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external() {
        let mut m = External::new(Some("tim".into()));
        assert_eq!(m.start(Some(b"")), Step::LookupCredentials { scheme: "" });
        assert_eq!(m.credentials(Ok(vec![])), Step::Success { final_data: None });
        assert_eq!(m.identity().user.as_deref(), Some("tim"));
        let mut m = External::new(None);
        assert!(matches!(m.start(Some(b"")), Step::Fail(Failure::Protocol(_))));
    }
}
