//! Client side of PLAIN and LOGIN, for our login processes and tests.

/// The single PLAIN response: `authzid NUL authcid NUL password`.
pub fn plain_response(authzid: &str, authcid: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    out.extend_from_slice(authzid.as_bytes());
    out.push(0);
    out.extend_from_slice(authcid.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// LOGIN client: answers the first challenge with the user name and the
/// second with the password, whatever their text.
#[derive(Debug, Clone)]
pub struct LoginClient {
    user: String,
    password: String,
    answered: u8,
}

impl LoginClient {
    /// A client for `user` / `password`.
    pub fn new(user: &str, password: &str) -> Self {
        LoginClient { user: user.into(), password: password.into(), answered: 0 }
    }

    /// The response to the next server challenge; `None` after both were
    /// answered (the server is misbehaving).
    pub fn respond(&mut self, _challenge: &[u8]) -> Option<Vec<u8>> {
        self.answered += 1;
        match self.answered {
            1 => Some(self.user.as_bytes().to_vec()),
            2 => Some(self.password.as_bytes().to_vec()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(plain_response("", "tim", "pw"), b"\0tim\0pw");
        let mut c = LoginClient::new("tim", "pw");
        assert_eq!(c.respond(b"Username:").unwrap(), b"tim");
        assert_eq!(c.respond(b"Password:").unwrap(), b"pw");
        assert_eq!(c.respond(b"?"), None);
    }
}
