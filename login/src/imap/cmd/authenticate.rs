//! AUTHENTICATE mechanism [initial-response] (SASL-IR, RFC 4959; `=` is an
//! empty response). Continuations are handled by the state machine.

use super::Outcome;
use crate::imap::ImapLogin;
use crate::sasl::check_begin;

pub(super) fn run(client: &mut ImapLogin, tag: &str, raw: &[u8]) -> Outcome {
    let (mech, initial) = match raw.iter().position(|b| *b == b' ') {
        Some(p) => (&raw[..p], Some(&raw[p + 1..])),
        None => (raw, None),
    };
    if mech.is_empty() || !mech.iter().all(|b| b.is_ascii_graphic()) {
        return Outcome::Bad;
    }
    let mech = String::from_utf8_lossy(mech).into_owned();
    let mech = match check_begin(&client.settings, &client.security, &client.mechanisms, &mech, false) {
        Ok(m) => m.name.clone(),
        Err((result, text)) => {
            client.auth_result(tag, result, text);
            return Outcome::Done;
        }
    };
    // The initial response goes to auth as sent; auth refuses bad base64
    // (`FAIL code=invalid_base64`, delayed like any failure), as in Dovecot.
    let initial = match initial {
        None => None,
        Some(b"=") => Some(String::new()),
        Some(ir) => Some(String::from_utf8_lossy(ir).into_owned()),
    };
    client.begin_auth(tag, &mech, initial);
    Outcome::Done
}
