//! A test-only service linking the runtime: echoes every line back.
//! `PID` answers the process id, `USER <name>` sets the user shown in the
//! verbose process title and log prefix, `QUIT` closes, and a shutdown
//! says `BYE`. Not installed.
#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read};

use dovecote_master::{Client, Progress, Service};

struct Echo {
    log: slog::Logger,
}

#[derive(Default)]
struct Session {
    input: Vec<u8>,
}

impl Service for Echo {
    type Session = Session;

    fn connected(&mut self, client: &mut Client) -> Option<Session> {
        client.state = "echoing".into();
        Some(Session::default())
    }

    fn readable(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let mut buf = [0u8; 4096];
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => return Progress::Close,
                Ok(n) => session.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Progress::Close,
            }
        }
        while let Some(pos) = session.input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = session.input.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if text == "PID" {
                client.send(format!("{}\n", std::process::id()).as_bytes());
            } else if let Some(user) = text.strip_prefix("USER ") {
                client.user = Some(user.to_owned());
                slog::info!(self.log, "user set"; "user" => user);
                client.send(b"OK\n");
            } else if text == "QUIT" {
                return Progress::Close;
            } else if text == "PANIC" {
                panic!("asked to panic");
            } else {
                client.send(&line);
            }
        }
        Progress::Continue
    }

    fn shutting_down(&mut self, client: &mut Client, _session: &mut Session) {
        client.send(b"BYE\n");
    }
}

fn main() {
    dovecote_master::run(|ctx| {
        slog::debug!(ctx.log, "started"; "listeners" => ctx.listeners.len());
        Echo { log: ctx.log.clone() }
    })
}
