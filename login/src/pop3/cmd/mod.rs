//! One file per pre-auth POP3 command; [`run`] dispatches by name and
//! says whether the command was known (unknown ones count as bad).

mod apop;
mod auth;
mod capa;
mod pass;
mod quit;
mod stls;
mod user;
mod xclient;

use super::Pop3Login;

pub(super) fn run(client: &mut Pop3Login, name: &str, args: &[u8]) -> bool {
    match name {
        "CAPA" => capa::run(client),
        "USER" => user::run(client, args),
        "PASS" => pass::run(client, args),
        "AUTH" => auth::run(client, args),
        "APOP" => apop::run(client, args),
        "STLS" => stls::run(client),
        "QUIT" => quit::run(client),
        "XCLIENT" => xclient::run(client, args),
        _ => return false,
    }
    true
}
