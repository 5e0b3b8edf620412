//! ENABLE before login: Dovecot 2.3 answers an empty `* ENABLED` and
//! ignores it.

use super::Outcome;
use crate::imap::ImapLogin;

pub(super) fn run(client: &mut ImapLogin, tag: &str) -> Outcome {
    client.send("* ENABLED\r\n".into());
    client.tagged(tag, "OK ENABLE ignored in non-authenticated state.");
    Outcome::Done
}
