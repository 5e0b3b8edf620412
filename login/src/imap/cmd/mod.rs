//! One file per pre-auth IMAP command; [`run`] dispatches by name.

mod authenticate;
mod capability;
mod enable;
mod id;
mod login;
mod logout;
mod noop;
mod starttls;

use super::parser::{Arg, Command};
use super::ImapLogin;

/// What a command made of its line.
pub(super) enum Outcome {
    /// Replied (OK, NO or a BAD that does not count as a bad command).
    Done,
    /// Syntax error: `BAD Error in IMAP command received by server.`, counted.
    Bad,
    /// No such command before login.
    Unknown,
}

pub(super) fn run(client: &mut ImapLogin, command: &Command, args: &[Arg]) -> Outcome {
    let tag = command.tag.as_str();
    match command.name.as_str() {
        "CAPABILITY" => capability::run(client, tag),
        "NOOP" => noop::run(client, tag),
        "LOGOUT" => logout::run(client, tag),
        "ID" => id::run(client, tag, args),
        "ENABLE" => enable::run(client, tag),
        "STARTTLS" => starttls::run(client, tag),
        "LOGIN" => login::run(client, tag, args),
        "AUTHENTICATE" => authenticate::run(client, tag, &command.raw_args),
        _ => Outcome::Unknown,
    }
}
