//! The pre-auth IMAP state machine of `imap-login` (Dovecot 2.3's
//! `imap-login/`): greeting, CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE
//! (SASL-IR and continuations), ID, NOOP, LOGOUT and ENABLE, with
//! Dovecot's wording. Sans-IO: feed client bytes to [`ImapLogin::input`]
//! and auth replies to [`ImapLogin::auth_reply`]; both return
//! [`Action`]s. Each command lives in its own file under `cmd/`.

mod cmd;
pub mod parser;

use crate::backend::wants_proxy;
use crate::policy::{advertised, plaintext_allowed, starttls_offered, Security};
use crate::sasl::{failure_result, nologin_result, AuthReply, AuthResult, Mechanism};
use crate::settings::LoginSettings;
use crate::{Action, CLIENT_MAX_BAD_COMMANDS, LOGIN_MAX_INBUF_SIZE};
use parser::{parse, Parse};

/// The pre-login capabilities every Dovecot 2.3 imap-login announces.
pub const CAPABILITY_BANNER: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE";
/// Longest SASL response line a client may send (`LOGIN_MAX_AUTH_BUF_SIZE`).
pub const MAX_AUTH_RESPONSE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading commands.
    Commands,
    /// A SASL exchange is running for `tag`; `client_turn` when the client
    /// owes the next response line.
    Authenticating { tag: String, client_turn: bool },
    /// STARTTLS was accepted; waiting for the I/O layer to finish TLS.
    StartingTls,
    /// Auth said `proxy`: the I/O layer is logging in to the backend.
    /// Client input is kept, not parsed, until [`ImapLogin::proxy_failed`].
    Proxying { tag: String },
    /// Handed off or closed: nothing more to do.
    Done,
}

/// One client's pre-auth IMAP session.
pub struct ImapLogin {
    settings: LoginSettings,
    security: Security,
    mechanisms: Vec<Mechanism>,
    input: Vec<u8>,
    bad_commands: u32,
    literals_acked: usize,
    state: State,
    actions: Vec<Action>,
    /// The client ran CAPABILITY (so it may ignore capability resp-codes).
    capability_requested: bool,
}

impl ImapLogin {
    pub fn new(settings: LoginSettings, security: Security, mechanisms: Vec<Mechanism>) -> ImapLogin {
        ImapLogin {
            settings,
            security,
            mechanisms,
            input: Vec::new(),
            bad_commands: 0,
            literals_acked: 0,
            state: State::Commands,
            actions: Vec::new(),
            capability_requested: false,
        }
    }

    /// `* OK [CAPABILITY …] <login_greeting>`.
    pub fn greeting(&mut self) -> Vec<Action> {
        let line = format!("* OK [CAPABILITY {}] {}\r\n", self.capability(), self.settings.login_greeting);
        vec![Action::Send(line.into_bytes())]
    }

    pub fn security(&self) -> Security {
        self.security
    }

    /// The auth service announced (or re-announced) its mechanisms.
    pub fn set_mechanisms(&mut self, mechanisms: Vec<Mechanism>) {
        self.mechanisms = mechanisms;
    }

    /// Whether the session is over (handed off or closing).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The pre-login capability list for this connection.
    pub fn capability(&self) -> String {
        let literal = if self.settings.imap_literal_minus { " LITERAL-" } else { " LITERAL+" };
        let configured = self.settings.imap_capability.as_str();
        let mut caps = if configured.is_empty() {
            format!("{CAPABILITY_BANNER}{literal}")
        } else if let Some(extra) = configured.strip_prefix('+') {
            format!("{CAPABILITY_BANNER}{literal} {}", extra.trim())
        } else {
            configured.to_owned()
        };
        if starttls_offered(&self.settings, &self.security) {
            caps.push_str(" STARTTLS");
        }
        if !plaintext_allowed(&self.settings, &self.security) {
            caps.push_str(" LOGINDISABLED");
        }
        for mech in advertised(&self.settings, &self.security, &self.mechanisms) {
            caps.push_str(" AUTH=");
            caps.push_str(&mech.name);
        }
        caps
    }

    /// Client bytes arrived (decrypted, if TLS is on).
    pub fn input(&mut self, data: &[u8]) -> Vec<Action> {
        if self.state != State::Done && self.state != State::StartingTls {
            self.input.extend_from_slice(data);
            self.process();
        }
        std::mem::take(&mut self.actions)
    }

    /// TLS is now established (after [`Action::StartTls`]).
    pub fn tls_started(&mut self) -> Vec<Action> {
        self.security.tls_started();
        if self.state == State::StartingTls {
            self.state = State::Commands;
        }
        self.input.clear();
        std::mem::take(&mut self.actions)
    }

    /// The auth service answered.
    pub fn auth_reply(&mut self, reply: AuthReply) -> Vec<Action> {
        let State::Authenticating { tag, .. } = self.state.clone() else {
            return Vec::new();
        };
        match reply {
            AuthReply::Continue(challenge) => {
                self.send(format!("+ {challenge}\r\n"));
                self.state = State::Authenticating { tag, client_turn: true };
            }
            AuthReply::Success { user, fields } => {
                if wants_proxy(&fields) {
                    self.state = State::Proxying { tag: tag.clone() };
                    self.actions.push(Action::Proxy { user, fields, tag });
                    return std::mem::take(&mut self.actions);
                }
                if let Some((result, text)) = nologin_result(&fields) {
                    self.state = State::Commands;
                    self.auth_result(&tag, result, &text);
                } else {
                    self.state = State::Done;
                    let mut prefix = b"0".to_vec();
                    prefix.extend_from_slice(tag.as_bytes());
                    let client_input = std::mem::take(&mut self.input);
                    self.actions.push(Action::Handoff { user, prefix, client_input });
                    return std::mem::take(&mut self.actions);
                }
            }
            AuthReply::Failure { code, reason, temporary } => {
                self.state = State::Commands;
                let (result, text) = failure_result(code.as_deref(), reason.as_deref(), temporary);
                self.auth_result(&tag, result, &text);
            }
            AuthReply::Unavailable => {
                self.state = State::Commands;
                self.auth_result(
                    &tag,
                    AuthResult::TempFail,
                    "Internal login failure. Refer to server log for more information.",
                );
            }
        }
        self.process();
        std::mem::take(&mut self.actions)
    }

    /// Proxying failed (the I/O layer already told the client why): back
    /// to reading commands, including any the client sent meanwhile.
    pub fn proxy_failed(&mut self) -> Vec<Action> {
        if matches!(self.state, State::Proxying { .. }) {
            self.state = State::Commands;
            self.process();
        }
        std::mem::take(&mut self.actions)
    }

    /// Input the client sent after its login command (relayed to the
    /// backend once proxying starts, or handed off).
    pub fn take_input(&mut self) -> Vec<u8> {
        self.state = State::Done;
        std::mem::take(&mut self.input)
    }

    /// Bytes of client input waiting.
    pub fn pending_input(&self) -> usize {
        self.input.len()
    }

    /// Whether the client ran CAPABILITY before logging in.
    pub fn capability_requested(&self) -> bool {
        self.capability_requested
    }

    /// The client went away mid-exchange: cancel a running auth request.
    pub fn disconnected(&mut self) -> Vec<Action> {
        if matches!(self.state, State::Authenticating { .. }) {
            self.actions.push(Action::AuthCancel);
        }
        self.state = State::Done;
        std::mem::take(&mut self.actions)
    }

    /// The process is shutting down.
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.send("* BYE Server shutting down.\r\n".into());
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

    fn tagged(&mut self, tag: &str, text: &str) {
        self.send(format!("{tag} {text}\r\n"));
    }

    fn close(&mut self, reason: &str) {
        self.state = State::Done;
        self.actions.push(Action::Close { reason: reason.to_owned() });
    }

    fn process(&mut self) {
        loop {
            match self.state.clone() {
                State::Commands => {
                    if !self.next_command() {
                        return;
                    }
                }
                State::Authenticating { tag, client_turn: true } => {
                    if !self.next_auth_response(&tag) {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Handles one SASL response line; false when more input is needed.
    fn next_auth_response(&mut self, tag: &str) -> bool {
        let Some(lf) = self.input.iter().position(|b| *b == b'\n') else {
            if self.input.len() > MAX_AUTH_RESPONSE {
                self.send("* BYE Input buffer full, aborting\r\n".into());
                self.close("Disconnected: Input buffer full");
            }
            return false;
        };
        let line: Vec<u8> = self.input.drain(..=lf).collect();
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"*" {
            self.actions.push(Action::AuthCancel);
            self.state = State::Commands;
            self.auth_result(tag, AuthResult::Aborted, "Authentication aborted by client.");
        } else if !crate::sasl::is_base64(line) {
            self.actions.push(Action::AuthCancel);
            self.state = State::Commands;
            self.auth_result(tag, AuthResult::AuthFailedReason, "Invalid base64 in response");
        } else {
            self.state = State::Authenticating { tag: tag.to_owned(), client_turn: false };
            self.actions.push(Action::AuthContinue(String::from_utf8_lossy(line).into_owned()));
        }
        true
    }

    /// Parses and runs one command; false when more input is needed.
    fn next_command(&mut self) -> bool {
        match parse(&self.input) {
            Parse::Incomplete { sync_literals } => {
                while self.literals_acked < sync_literals {
                    self.literals_acked += 1;
                    self.send("+ OK\r\n".into());
                }
                false
            }
            Parse::TooLong => {
                self.send("* BYE Input buffer full, aborting\r\n".into());
                self.close("Disconnected: Input buffer full");
                false
            }
            Parse::LiteralTooLarge => {
                self.send("* BYE Literal size too large\r\n".into());
                self.close("Disconnected: Literal size too large");
                false
            }
            Parse::BadLine { tag, consumed } => {
                self.input.drain(..consumed.min(self.input.len()));
                self.literals_acked = 0;
                self.bad_command(tag.as_deref().unwrap_or("*"));
                true
            }
            Parse::Command(command) => {
                self.input.drain(..command.consumed.min(self.input.len()));
                self.literals_acked = 0;
                let outcome = match command.args.as_ref() {
                    Err(()) => cmd::Outcome::Bad,
                    Ok(args) => cmd::run(self, &command, args),
                };
                match outcome {
                    cmd::Outcome::Done => {}
                    cmd::Outcome::Bad => self.bad_command(&command.tag),
                    cmd::Outcome::Unknown if command.tag.eq_ignore_ascii_case("LOGIN") => self.tagged(
                        &command.tag,
                        "BAD First parameter in line is IMAP's command tag, not the command name. Add that before the command, like: a login user pass",
                    ),
                    cmd::Outcome::Unknown => self.bad_command(&command.tag),
                }
                true
            }
        }
    }

    fn bad_command(&mut self, tag: &str) {
        self.bad_commands += 1;
        if self.bad_commands >= CLIENT_MAX_BAD_COMMANDS {
            self.send("* BYE Too many invalid IMAP commands.\r\n".into());
            self.close("Disconnected: Too many invalid commands");
        } else {
            self.tagged(tag, "BAD Error in IMAP command received by server.");
        }
    }

    /// Words an authentication result as Dovecot's imap-login does.
    fn auth_result(&mut self, tag: &str, result: AuthResult, text: &str) {
        let line = match result {
            AuthResult::InvalidBase64 | AuthResult::Aborted => format!("BAD {text}"),
            AuthResult::AuthFailedReason | AuthResult::MechInvalid if text.starts_with('[') => {
                format!("NO {text}")
            }
            AuthResult::AuthFailedReason | AuthResult::MechInvalid => format!("NO [ALERT] {text}"),
            AuthResult::AuthzFailed => format!("NO [AUTHORIZATIONFAILED] {text}"),
            AuthResult::TempFail => format!("NO [UNAVAILABLE] {text}"),
            AuthResult::SslRequired | AuthResult::MechSslRequired => format!("NO [PRIVACYREQUIRED] {text}"),
            AuthResult::PassExpired => format!("NO [EXPIRED] {text}"),
            AuthResult::LoginDisabled => format!("NO [CONTACTADMIN] {text}"),
            AuthResult::AuthFailed => format!("NO [AUTHENTICATIONFAILED] {text}"),
        };
        self.tagged(tag, &line);
    }

    /// Starts a SASL exchange (checks already done by the caller).
    fn begin_auth(&mut self, tag: &str, mechanism: &str, initial_response: Option<String>) {
        self.state = State::Authenticating { tag: tag.to_owned(), client_turn: false };
        self.actions.push(Action::AuthBegin { mechanism: mechanism.to_owned(), initial_response });
    }
}

/// Limit used for input kept between commands (re-exported for the I/O layer).
pub const MAX_INPUT: usize = LOGIN_MAX_INBUF_SIZE;

#[cfg(test)]
mod tests;
