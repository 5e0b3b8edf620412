//! LOGIN user password: PLAIN through auth, refused with an alert when
//! plaintext authentication is not allowed on this connection.

use super::Outcome;
use crate::imap::parser::Arg;
use crate::imap::ImapLogin;
use crate::policy::plaintext_allowed;
use crate::sasl::{check_begin, plain_response, PLAINTEXT_DISABLED_MSG, PLAINTEXT_EXPOSED_ALERT};

pub(super) fn run(client: &mut ImapLogin, tag: &str, args: &[Arg]) -> Outcome {
    let [user, pass] = args else { return Outcome::Bad };
    let (Some(user), Some(pass)) = (user.astring(), pass.astring()) else { return Outcome::Bad };
    if !plaintext_allowed(&client.settings, &client.security) {
        client.send(format!("* BAD [ALERT] {PLAINTEXT_EXPOSED_ALERT}\r\n"));
        client.tagged(tag, &format!("NO [PRIVACYREQUIRED] {PLAINTEXT_DISABLED_MSG}"));
        return Outcome::Done;
    }
    let response = plain_response(user, pass);
    match check_begin(&client.settings, &client.security, &client.mechanisms, "PLAIN", true) {
        Ok(_) => client.begin_auth(tag, "PLAIN", Some(response)),
        Err((result, text)) => client.auth_result(tag, result, text),
    }
    Outcome::Done
}
