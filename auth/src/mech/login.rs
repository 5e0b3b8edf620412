//! LOGIN (draft-murchison-sasl-login): the server asks `Username:` then
//! `Password:`; an initial response is taken as the user name.

use super::{user_name, Identity, Mechanism, Step};

/// Server state.
#[derive(Debug, Default)]
pub struct Login {
    identity: Identity,
}

impl Mechanism for Login {
    fn name(&self) -> &'static str {
        "LOGIN"
    }

    fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            Some(data) if !data.is_empty() => self.input(data),
            _ => Step::Continue(b"Username:".to_vec()),
        }
    }

    fn input(&mut self, data: &[u8]) -> Step {
        if self.identity.user.is_none() {
            match user_name(data) {
                Ok(user) if !user.is_empty() => {
                    self.identity.user = Some(user);
                    Step::Continue(b"Password:".to_vec())
                }
                Ok(_) => Step::Fail(super::Failure::Protocol("Invalid username".into())),
                Err(e) => Step::Fail(e),
            }
        } else {
            Step::VerifyPlain { password: data.to_vec() }
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
    fn conversation() {
        let mut db = TablePassdb(vec![("tim", "{PLAIN}pw")]);
        let mut m = Login::default();
        assert_eq!(m.start(None), Step::Continue(b"Username:".to_vec()));
        assert_eq!(m.input(b"tim"), Step::Continue(b"Password:".to_vec()));
        let step = m.input(b"pw");
        assert_eq!(drive(&mut m, step, &mut db), Step::Success { final_data: None });

        let mut m = Login::default();
        assert_eq!(m.start(Some(b"tim")), Step::Continue(b"Password:".to_vec()));
    }
}
