//! PASS password: PLAIN through auth with the name from USER.

use crate::policy::plaintext_allowed;
use crate::pop3::Pop3Login;
use crate::sasl::{check_begin, plain_response, PLAINTEXT_DISABLED_MSG};

pub(super) fn run(client: &mut Pop3Login, args: &[u8]) {
    if !plaintext_allowed(&client.settings, &client.security) {
        client.send(format!("-ERR [AUTH] {PLAINTEXT_DISABLED_MSG}\r\n"));
        return;
    }
    let Some(user) = client.user.take() else {
        client.send("-ERR No username given.\r\n".into());
        return;
    };
    let response = plain_response(&user, args);
    match check_begin(&client.settings, &client.security, &client.mechanisms, "PLAIN", true) {
        Ok(_) => client.begin_auth("PLAIN", Some(response)),
        Err((result, text)) => client.auth_result(result, text),
    }
}
