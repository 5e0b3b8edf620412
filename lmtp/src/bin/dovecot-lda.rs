//! `dovecot-lda`: the local delivery agent an MTA (or a script, e.g. the
//! quota-warning one) runs per message. Reads dovecot.conf itself (with
//! `-o key=value` overrides, in the `protocol lda` view), looks the user up
//! over auth-userdb, reads the message from stdin and saves it with the
//! same [`LocalDelivery`] the lmtp service uses — as the target user
//! (switching effective ids when started as root). Exit codes are
//! sendmail's: 0 delivered, 64 usage, 67 EX_NOUSER, 75 EX_TEMPFAIL,
//! 89 configuration error.

use std::io::Read;
use std::process::ExitCode;

use dovecote_config::model::ConnectionInfo;
use dovecote_config::{parse_str, LoadOptions, DEFAULT_CONFIG_PATH};
use dovecote_lmtp::data::to_lf;
use dovecote_lmtp::delivery::LocalDelivery;
use dovecote_lmtp::session::{new_session_id, Backend, DeliverError, DeliveryRequest, Lookup};

const EX_USAGE: u8 = 64;
const EX_NOUSER: u8 = 67;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 89;

#[derive(Debug, Default)]
struct Args {
    config: Option<String>,
    user: Option<String>,
    mailbox: Option<String>,
    overrides: Vec<(String, String)>,
}

fn usage() -> ExitCode {
    eprintln!(
        "Usage: dovecot-lda [-c <config file>] [-d <username>] [-p <path>] [-m <mailbox>] [-e] [-k] \
         [-f <envelope sender>] [-a <original envelope recipient>] [-r <final envelope recipient>]"
    );
    ExitCode::from(EX_USAGE)
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Option<Args> {
    let mut args = Args::default();
    while let Some(arg) = argv.next() {
        let flag = arg.strip_prefix('-').filter(|f| !f.is_empty())?;
        let (letter, inline) = flag.split_at(1);
        let mut value = || if inline.is_empty() { argv.next() } else { Some(inline.to_string()) };
        match letter {
            "c" => args.config = Some(value()?),
            "d" => args.user = Some(value()?),
            // The envelope sender/recipients are Sieve's inputs (not built
            // yet); the stored message is what the MTA gave, as with
            // Dovecot's lda (the MTA writes Return-Path/Delivered-To).
            "f" | "a" | "r" | "p" => {
                value()?;
            }
            "m" => args.mailbox = Some(value()?),
            "o" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=')?;
                args.overrides.push((k.trim().to_string(), v.trim().to_string()));
            }
            // -e (rejections to stderr) and -k (keep environment): without
            // Sieve nothing is rejected, and the environment is not used.
            "e" | "k" => {}
            _ => return None,
        }
    }
    Some(args)
}

fn fail(user: &str, text: &str, code: u8) -> ExitCode {
    eprintln!("lda({user}): Error: {text}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let Some(args) = parse_args(std::env::args().skip(1)) else { return usage() };
    let path = args.config.clone().unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_string());
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return fail("", &format!("Failed to read config file {path}: {e}"), EX_CONFIG),
    };
    for (k, v) in &args.overrides {
        // Appended at top level, after everything: -o wins, as in Dovecot.
        text.push_str(&format!("\n{k} = {v}\n"));
    }
    let config = match parse_str(&path, &text, LoadOptions { expand_values: true }) {
        Ok(c) => {
            c.for_connection(&ConnectionInfo { protocol: Some("lda".into()), ..ConnectionInfo::default() })
        }
        Err(e) => return fail("", &e.to_string(), EX_CONFIG),
    };
    let user = match args.user.clone().or_else(|| std::env::var("USER").ok()) {
        Some(u) if !u.is_empty() => u,
        _ => match nix::unistd::User::from_uid(nix::unistd::getuid()) {
            Ok(Some(u)) => u.name,
            _ => return fail("", "Couldn't lookup our username", EX_TEMPFAIL),
        },
    };
    let mut message = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut message) {
        return fail(&user, &format!("read(stdin) failed: {e}"), EX_TEMPFAIL);
    }
    // An mbox `From ` separator line from the MTA is not part of the message.
    if message.starts_with(b"From ") {
        let end = message.iter().position(|&b| b == b'\n').map_or(message.len(), |p| p + 1);
        message.drain(..end);
    }
    to_lf(&mut message);
    let base_dir = std::path::PathBuf::from(config.text("base_dir"));
    let socket = match config.text("auth_socket_path") {
        p if p.starts_with('/') => std::path::PathBuf::from(p),
        p if p.is_empty() || p == "auth-master" => base_dir.join("auth-userdb"),
        p => base_dir.join(p),
    };
    let mut backend = LocalDelivery::new(&config, socket, "lda");
    let session = new_session_id();
    let recipient = match backend.lookup(&user, &session) {
        Lookup::Found(r) => r,
        Lookup::NotFound => return fail(&user, &format!("User {user} doesn't exist"), EX_NOUSER),
        Lookup::TempFail(reason) => {
            return fail(&user, &format!("userdb lookup failed: {reason}"), EX_TEMPFAIL)
        }
    };
    let mailbox = args.mailbox.clone().unwrap_or_else(|| "INBOX".to_string());
    let request = DeliveryRequest {
        user: &recipient,
        mailbox: &mailbox,
        message: &message,
        session_id: &session,
        same_as_previous: false,
    };
    match backend.deliver(&request) {
        Ok(saved_to) => {
            if config.root.bool("mail_debug") {
                eprintln!("lda({}): Info: saved mail to {saved_to}", recipient.name);
            }
            ExitCode::SUCCESS
        }
        Err(DeliverError::Temporary(reason)) => {
            fail(&recipient.name, &format!("save failed to {mailbox}: {reason}"), EX_TEMPFAIL)
        }
    }
}
