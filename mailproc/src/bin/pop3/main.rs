//! `pop3`: the post-login POP3 process. The bootstrap is
//! [`dovecote_mailproc::postlogin`]; until the POP3 issue lands this
//! answers STAT, NOOP and QUIT only.

use dovecote_mailproc::postlogin::{LoggedIn, MailProtocol, PostLogin, Reply};

struct Pop3;

struct Session {
    messages: u64,
    size: u64,
}

impl MailProtocol for Pop3 {
    type Session = Session;
    const SERVICE: &'static str = "pop3";

    fn start(&self, login: &LoggedIn) -> Result<(Session, Vec<u8>), String> {
        let inbox = login.user.open("INBOX").map_err(|e| format!("Couldn't open INBOX: {e}"))?;
        let (messages, size) = inbox.messages().fold((0u64, 0u64), |(n, s), m| (n + 1, s + m.virtual_size));
        Ok((Session { messages, size }, b"+OK Logged in.\r\n".to_vec()))
    }

    fn command(&self, _login: &LoggedIn, session: &mut Session, line: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(line);
        let name = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let output = match name.as_str() {
            "QUIT" => return Reply { output: b"+OK Logging out.\r\n".to_vec(), close: true },
            "NOOP" => "+OK\r\n".to_string(),
            "STAT" => format!("+OK {} {}\r\n", session.messages, session.size),
            "" => "-ERR Unknown command: \r\n".to_string(),
            other => format!("-ERR Unknown command: {other}\r\n"),
        };
        Reply { output: output.into_bytes(), close: false }
    }

    fn disconnect_text(&self, session: &Session, logged_out: bool, _input: u64, _output: u64) -> String {
        let stats = format!("top=0/0, retr=0/0, del=0/{}, size={}", session.messages, session.size);
        if logged_out {
            format!("Disconnected: Logged out {stats}")
        } else {
            format!("Disconnected: Connection closed {stats}")
        }
    }

    fn shutdown_text(&self) -> &'static [u8] {
        b"-ERR Server shutting down.\r\n"
    }
}

fn main() {
    dovecote_master::run(|ctx| match PostLogin::new(ctx, Pop3) {
        Ok(service) => service,
        Err(e) => {
            slog::crit!(ctx.log, "Fatal: epoll_create() failed: {}", e);
            std::process::exit(dovecote_master::contract::EXIT_FATAL)
        }
    })
}
