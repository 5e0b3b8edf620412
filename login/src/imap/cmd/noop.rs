//! NOOP.

use super::Outcome;
use crate::imap::ImapLogin;

pub(super) fn run(client: &mut ImapLogin, tag: &str) -> Outcome {
    client.tagged(tag, "OK NOOP completed.");
    Outcome::Done
}
