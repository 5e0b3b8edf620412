//! LOGOUT: `* BYE Logging out`, the tagged OK, then close.

use super::Outcome;
use crate::imap::ImapLogin;

pub(super) fn run(client: &mut ImapLogin, tag: &str) -> Outcome {
    client.send("* BYE Logging out\r\n".into());
    client.tagged(tag, "OK Logout completed.");
    client.close("Aborted login by logging out");
    Outcome::Done
}
