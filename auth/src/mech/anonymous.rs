//! ANONYMOUS (RFC 4505): the client's trace string is ignored and the user
//! becomes `auth_anonymous_username`; no passdb is consulted.

use super::{Identity, Mechanism, Step};

/// Server state.
#[derive(Debug)]
pub struct Anonymous {
    identity: Identity,
}

impl Anonymous {
    /// `username` is `auth_anonymous_username`.
    pub fn new(username: &str) -> Self {
        Anonymous { identity: Identity { user: Some(username.to_string()), login_user: None } }
    }
}

impl Mechanism for Anonymous {
    fn name(&self) -> &'static str {
        "ANONYMOUS"
    }

    fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            Some(data) => self.input(data),
            None => Step::Continue(Vec::new()),
        }
    }

    fn input(&mut self, _trace: &[u8]) -> Step {
        Step::Success { final_data: None }
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous() {
        let mut m = Anonymous::new("anonymous");
        assert_eq!(m.start(Some(b"sirhc")), Step::Success { final_data: None });
        assert_eq!(m.identity().user.as_deref(), Some("anonymous"));
    }
}
