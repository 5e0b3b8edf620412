//! The pre-auth POP3 state machine of `pop3-login` (Dovecot 2.3's
//! `pop3-login/`): greeting (with an APOP challenge when auth offers
//! APOP), CAPA, STLS, USER/PASS, AUTH (SASL-IR, continuations, the
//! Outlook-style mechanism list), APOP and QUIT. Sans-IO like
//! [`crate::imap`]; one file per command under `cmd/`.

mod cmd;

use crate::backend::wants_proxy;
use crate::policy::Security;
use crate::sasl::{failure_result, nologin_result, AuthReply, AuthResult, Mechanism};
use crate::settings::LoginSettings;
use crate::{Action, CLIENT_MAX_BAD_COMMANDS, LOGIN_MAX_INBUF_SIZE};

/// Longest SASL response line.
pub const MAX_AUTH_RESPONSE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Commands,
    Authenticating {
        client_turn: bool,
    },
    StartingTls,
    /// Logging in to a proxy backend (see [`crate::backend`]).
    Proxying,
    Done,
}

/// One client's pre-auth POP3 session.
pub struct Pop3Login {
    settings: LoginSettings,
    security: Security,
    mechanisms: Vec<Mechanism>,
    input: Vec<u8>,
    bad_commands: u32,
    state: State,
    actions: Vec<Action>,
    /// Set by USER.
    user: Option<Vec<u8>>,
    /// The APOP challenge from the greeting, when APOP is offered.
    apop_challenge: Option<String>,
}

impl Pop3Login {
    pub fn new(settings: LoginSettings, security: Security, mechanisms: Vec<Mechanism>) -> Pop3Login {
        Pop3Login {
            settings,
            security,
            mechanisms,
            input: Vec::new(),
            bad_commands: 0,
            state: State::Commands,
            actions: Vec::new(),
            user: None,
            apop_challenge: None,
        }
    }

    /// Offers APOP with this challenge (`<…@host>`); call before [`Self::greeting`].
    pub fn set_apop_challenge(&mut self, challenge: Option<String>) {
        self.apop_challenge = challenge;
    }

    /// `+OK [XCLIENT] <login_greeting>[ <apop challenge>]`, the
    /// `[XCLIENT]` only to `login_trusted_networks` (a Dovecot proxy saves
    /// a CAPA round trip with it).
    pub fn greeting(&mut self) -> Vec<Action> {
        let xclient = if self.security.trusted { "[XCLIENT] " } else { "" };
        let line = match &self.apop_challenge {
            Some(c) => format!("+OK {xclient}{} {c}\r\n", self.settings.login_greeting),
            None => format!("+OK {xclient}{}\r\n", self.settings.login_greeting),
        };
        vec![Action::Send(line.into_bytes())]
    }

    pub fn security(&self) -> Security {
        self.security
    }

    pub fn set_mechanisms(&mut self, mechanisms: Vec<Mechanism>) {
        self.mechanisms = mechanisms;
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn input(&mut self, data: &[u8]) -> Vec<Action> {
        if self.state != State::Done && self.state != State::StartingTls {
            self.input.extend_from_slice(data);
            self.process();
        }
        std::mem::take(&mut self.actions)
    }

    pub fn tls_started(&mut self) -> Vec<Action> {
        self.security.tls_started();
        if self.state == State::StartingTls {
            self.state = State::Commands;
        }
        self.input.clear();
        std::mem::take(&mut self.actions)
    }

    pub fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        if !matches!(self.state, State::Authenticating { .. }) {
            return Vec::new();
        }
        match reply {
            AuthReply::Continue(challenge) => {
                self.send(format!("+ {challenge}\r\n"));
                self.state = State::Authenticating { client_turn: true };
            }
            AuthReply::Success { user, fields } => {
                if wants_proxy(&fields) {
                    self.state = State::Proxying;
                    self.actions.push(Action::Proxy { user, fields, tag: String::new() });
                    return std::mem::take(&mut self.actions);
                }
                if let Some((result, text)) = nologin_result(&fields) {
                    self.state = State::Commands;
                    self.auth_result(result, &text);
                } else {
                    self.state = State::Done;
                    let client_input = std::mem::take(&mut self.input);
                    self.actions.push(Action::Handoff { user, prefix: Vec::new(), client_input });
                    return std::mem::take(&mut self.actions);
                }
            }
            AuthReply::Failure { code, reason, temporary } => {
                self.state = State::Commands;
                let (result, text) = failure_result(code.as_deref(), reason.as_deref(), temporary);
                self.auth_result(result, &text);
            }
            AuthReply::Unavailable => {
                self.state = State::Commands;
                self.auth_result(
                    AuthResult::TempFail,
                    "Internal login failure. Refer to server log for more information.",
                );
            }
        }
        self.process();
        std::mem::take(&mut self.actions)
    }

    /// Proxying failed (the client was told): back to reading commands.
    pub fn proxy_failed(&mut self) -> Vec<Action> {
        if self.state == State::Proxying {
            self.state = State::Commands;
            self.process();
        }
        std::mem::take(&mut self.actions)
    }

    /// Input the client sent after its login command.
    pub fn take_input(&mut self) -> Vec<u8> {
        self.state = State::Done;
        std::mem::take(&mut self.input)
    }

    pub fn pending_input(&self) -> usize {
        self.input.len()
    }

    pub fn disconnected(&mut self) -> Vec<Action> {
        if matches!(self.state, State::Authenticating { .. }) {
            self.actions.push(Action::AuthCancel);
        }
        self.state = State::Done;
        std::mem::take(&mut self.actions)
    }

    pub fn shutdown(&mut self) -> Vec<Action> {
        self.send("-ERR [SYS/TEMP] Server shutting down.\r\n".into());
        self.close("Disconnected: Shutting down");
        std::mem::take(&mut self.actions)
    }

    fn send(&mut self, text: String) {
        if let Some(Action::Send(buf)) = self.actions.last_mut() {
            buf.extend_from_slice(text.as_bytes());
        } else {
            self.actions.push(Action::Send(text.into_bytes()));
        }
    }

    fn close(&mut self, reason: &str) {
        self.state = State::Done;
        self.actions.push(Action::Close { reason: reason.to_owned() });
    }

    /// Takes the next line (without its terminator), or closes the
    /// connection when the client sends more than fits.
    fn next_line(&mut self, limit: usize) -> Option<Vec<u8>> {
        let Some(lf) = self.input.iter().position(|b| *b == b'\n') else {
            if self.input.len() > limit {
                self.send("-ERR Input buffer full, aborting\r\n".into());
                self.close("Disconnected: Input buffer full");
            }
            return None;
        };
        if lf > limit + 3 {
            self.send("-ERR Input buffer full, aborting\r\n".into());
            self.close("Disconnected: Input buffer full");
            return None;
        }
        let mut line: Vec<u8> = self.input.drain(..=lf).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    fn process(&mut self) {
        loop {
            match self.state {
                State::Commands => {
                    let Some(line) = self.next_line(LOGIN_MAX_INBUF_SIZE) else { return };
                    let (name, args) = match line.iter().position(|b| *b == b' ') {
                        Some(p) => (&line[..p], &line[p + 1..]),
                        None => (&line[..], &[][..]),
                    };
                    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
                    if cmd::run(self, &name, args) {
                        self.bad_commands = 0;
                    } else {
                        self.send("-ERR Unknown command.\r\n".into());
                        self.bad_commands += 1;
                        if self.bad_commands >= CLIENT_MAX_BAD_COMMANDS {
                            self.send("-ERR Too many invalid bad commands.\r\n".into());
                            self.close("Disconnected: Too many bad commands");
                        }
                    }
                }
                State::Authenticating { client_turn: true } => {
                    let Some(line) = self.next_line(MAX_AUTH_RESPONSE) else { return };
                    if line == b"*" {
                        self.actions.push(Action::AuthCancel);
                        self.state = State::Commands;
                        self.auth_result(AuthResult::Aborted, "Authentication aborted by client.");
                    } else if !crate::sasl::is_base64(&line) {
                        self.actions.push(Action::AuthCancel);
                        self.state = State::Commands;
                        self.auth_result(AuthResult::AuthFailedReason, "Invalid base64 in response");
                    } else {
                        self.state = State::Authenticating { client_turn: false };
                        self.actions.push(Action::AuthContinue(String::from_utf8_lossy(&line).into_owned()));
                    }
                }
                _ => return,
            }
        }
    }

    /// Words an authentication result as Dovecot's pop3-login does.
    fn auth_result(&mut self, result: AuthResult, text: &str) {
        let line = match result {
            AuthResult::TempFail => format!("-ERR [SYS/TEMP] {text}\r\n"),
            AuthResult::Aborted => format!("-ERR {text}\r\n"),
            _ => format!("-ERR [AUTH] {text}\r\n"),
        };
        self.send(line);
    }

    fn begin_auth(&mut self, mechanism: &str, initial_response: Option<String>) {
        self.state = State::Authenticating { client_turn: false };
        self.actions.push(Action::AuthBegin { mechanism: mechanism.to_owned(), initial_response });
    }
}

#[cfg(test)]
mod tests;
