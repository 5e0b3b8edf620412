//! CAPABILITY: the pre-login list; arguments are ignored, as in Dovecot.

use super::Outcome;
use crate::imap::ImapLogin;

pub(super) fn run(client: &mut ImapLogin, tag: &str) -> Outcome {
    client.capability_requested = true;
    let caps = client.capability();
    client.send(format!("* CAPABILITY {caps}\r\n"));
    client.tagged(tag, "OK Pre-login capabilities listed, post-login capabilities have more.");
    Outcome::Done
}
