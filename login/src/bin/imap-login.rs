//! `imap-login`: the pre-authentication IMAP front end (see `dovecote_login`).

use dovecote_login::service::{LoginService, Protocol};

fn main() {
    dovecote_master::runtime::run(|ctx| match LoginService::new(ctx, Protocol::Imap) {
        Ok(service) => service,
        Err(e) => {
            dovecote_master::runtime::log_line(dovecote_master::contract::Level::Fatal, &e);
            std::process::exit(dovecote_master::contract::EXIT_FATAL)
        }
    })
}
