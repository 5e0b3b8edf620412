//! Test helper for the crash-safety test: saves numbered messages into
//! INBOX of `mail_location` forever, printing `OK <uid> <n>` after each save
//! has returned (that is, after it is durable). The test SIGKILLs it.

use std::io::Write;

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::storage::{Flags, MailLocation, NewMessage, User};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(location), Some(start)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok())) else {
        eprintln!("usage: storage-save-helper MAIL_LOCATION START_NUMBER");
        std::process::exit(64);
    };
    let location = match MailLocation::parse(location, &MailVars::default(), None) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let user = User::with_location("crash", location);
    let mut inbox = match user.open("INBOX") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    for n in start.. {
        let message = NewMessage {
            data: format!("Subject: {n}\n\nmessage {n}\n").into_bytes(),
            flags: if n % 2 == 0 { Flags::SEEN } else { Flags::empty() },
            keywords: if n % 3 == 0 {
                ["crash".to_string()].into_iter().collect()
            } else {
                Default::default()
            },
            received: None,
        };
        match inbox.save(&message) {
            Ok(saved) => {
                let _ = writeln!(out, "OK {} {n}", saved.uid);
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("save: {e}");
                std::process::exit(1);
            }
        }
    }
}
