//! `auth`: Dovecot 2.3's auth service, and with `-w` its auth-worker
//! (the same executable, so that SELinux runs both in `dovecot_auth_t`,
//! where PAM works). Both run on the master's service runtime.
#![deny(unsafe_code)]

mod cache;
mod penalty;
mod request;
mod server;
mod settings;
mod worker;
mod worker_proto;
mod workers;

use dovecote_master::contract::{Level, EXIT_FATAL};
use dovecote_master::runtime::log_line;

fn fatal(text: &str) -> ! {
    log_line(Level::Fatal, text);
    std::process::exit(EXIT_FATAL)
}

fn main() {
    let worker_mode = std::env::args().skip(1).any(|a| a == "-w");
    if worker_mode {
        dovecote_master::run(|ctx| match settings::AuthSettings::from_config(&ctx.config) {
            Ok(set) => worker::Worker::new(set, ctx.log.clone()),
            Err(e) => fatal(&e.to_string()),
        })
    } else {
        dovecote_master::run(|ctx| {
            let set = match settings::AuthSettings::from_config(&ctx.config) {
                Ok(set) => set,
                Err(e) => fatal(&e.to_string()),
            };
            if set.passdbs.is_empty() {
                fatal(&settings::SettingsError::NoPassdbs.to_string());
            }
            match server::AuthServer::new(set, &ctx.config, ctx.log.clone()) {
                Ok(server) => server,
                Err(e) => fatal(&format!("auth-worker pool: {e}")),
            }
        })
    }
}
