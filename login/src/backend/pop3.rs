//! Logging in to a POP3 backend (Dovecot 2.3's `pop3-proxy.c`), sans-IO.
//!
//! After the `+OK` banner: `XCLIENT ADDR=… PORT=… SESSION=… TTL=…` when
//! the banner starts `+OK [XCLIENT]` (unless `proxy_not_trusted`), `STLS`
//! with `starttls=`, then `USER`/`PASS` — or `AUTH PLAIN <initial
//! response>` with a master user or `proxy_mech=plain`. The backend's
//! final `+OK` line goes to the client as it is. A refusal is passed on as
//! the backend worded it (a line that isn't `-ERR …` becomes `-ERR
//! Authentication failed.`), as Dovecot does.

use super::imap::ClientInfo;
use super::{sanitize, FailureKind, ProxyRequest, Step, PROXY_TTL};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Banner,
    StartTls,
    Xclient,
    /// USER sent, waiting to send PASS.
    Login1,
    /// PASS or AUTH sent.
    Login2,
    Done,
}

pub struct Pop3Backend {
    request: ProxyRequest,
    info: ClientInfo,
    state: State,
    xclient: bool,
    steps: Vec<Step>,
}

impl Pop3Backend {
    pub fn new(request: ProxyRequest, info: ClientInfo) -> Pop3Backend {
        Pop3Backend { request, info, state: State::Banner, xclient: false, steps: Vec::new() }
    }

    /// Dovecot's state names, for log lines.
    pub fn state(&self) -> &'static str {
        match self.state {
            State::Banner => "banner",
            State::StartTls => "starttls",
            State::Xclient => "xclient",
            State::Login1 => "login1",
            State::Login2 | State::Done => "login2",
        }
    }

    fn queue_backend(&mut self, text: String) {
        if let Some(Step::ToBackend(buf)) = self.steps.last_mut() {
            buf.extend_from_slice(text.as_bytes());
        } else {
            self.steps.push(Step::ToBackend(text.into_bytes()));
        }
    }

    fn fail(&mut self, kind: FailureKind, log: String) {
        self.state = State::Done;
        self.steps.push(Step::Failed { kind, log: Some(log) });
    }

    pub fn line(&mut self, line: &str) -> Vec<Step> {
        match self.state {
            State::Banner => {
                if !line.starts_with("+OK") {
                    self.fail(
                        FailureKind::Protocol,
                        format!("Remote returned invalid banner: {}", sanitize(line)),
                    );
                } else {
                    self.xclient = line[3..].starts_with(" [XCLIENT]");
                    if self.request.ssl.starttls {
                        self.queue_backend("STLS\r\n".into());
                        self.state = State::StartTls;
                    } else {
                        self.send_login();
                    }
                }
            }
            State::StartTls => {
                if line.starts_with("+OK") {
                    self.steps.push(Step::StartTls);
                } else {
                    self.fail(FailureKind::Remote, format!("Remote STLS failed: {}", sanitize(line)));
                }
            }
            State::Xclient => {
                if line.starts_with("+OK") {
                    self.state = if self.request.sasl_plain { State::Login2 } else { State::Login1 };
                } else {
                    self.fail(FailureKind::Remote, format!("Remote XCLIENT failed: {}", sanitize(line)));
                }
            }
            State::Login1 if line.starts_with("+OK") => {
                let pass = format!("PASS {}\r\n", self.request.password);
                self.queue_backend(pass);
                self.state = State::Login2;
            }
            State::Login2 if line.starts_with("+OK") => {
                self.state = State::Done;
                self.steps.push(Step::ToClient(format!("{line}\r\n").into_bytes()));
                self.steps.push(Step::LoggedIn);
            }
            State::Login1 | State::Login2 => self.login_failed(line),
            State::Done => {}
        }
        std::mem::take(&mut self.steps)
    }

    /// TLS to the backend is up after `STLS`.
    pub fn tls_started(&mut self) -> Vec<Step> {
        self.send_login();
        std::mem::take(&mut self.steps)
    }

    fn send_login(&mut self) {
        if self.xclient && !self.request.not_trusted {
            let i = &self.info;
            let line = format!(
                "XCLIENT ADDR={} PORT={} SESSION={} TTL={}\r\n",
                i.remote_ip,
                i.remote_port,
                i.session_id,
                PROXY_TTL - 1
            );
            self.queue_backend(line);
            self.state = State::Xclient;
        } else {
            self.state = if self.request.sasl_plain { State::Login2 } else { State::Login1 };
        }
        let line = if self.request.sasl_plain {
            format!("AUTH PLAIN {}\r\n", self.request.plain_response())
        } else {
            format!("USER {}\r\n", self.request.user)
        };
        self.queue_backend(line);
    }

    fn login_failed(&mut self, line: &str) {
        self.state = State::Done;
        let reply = if line.starts_with("-ERR ") {
            format!("{line}\r\n")
        } else {
            format!("-ERR {}\r\n", crate::sasl::AUTH_FAILED_MSG)
        };
        let reason = line.strip_prefix("-ERR ").unwrap_or(line).to_owned();
        self.steps.push(Step::ToClient(reply.into_bytes()));
        self.steps.push(Step::Failed { kind: FailureKind::Auth, log: Some(reason) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SslFlags;

    fn request(sasl: bool, starttls: bool) -> ProxyRequest {
        ProxyRequest {
            host: "127.0.0.1".into(),
            ip: "127.0.0.1".parse().unwrap(),
            port: 1100,
            user: "alice".into(),
            password: "pw".into(),
            master_user: None,
            sasl_plain: sasl,
            ssl: SslFlags { yes: starttls, starttls, any_cert: false },
            timeout: None,
            not_trusted: false,
        }
    }

    fn info() -> ClientInfo {
        ClientInfo {
            session_id: "s1".into(),
            remote_ip: "10.0.0.9".into(),
            remote_port: 4000,
            ..ClientInfo::default()
        }
    }

    #[test]
    fn user_pass_and_the_ok_line() {
        let mut b = Pop3Backend::new(request(false, false), info());
        assert_eq!(b.line("+OK Dovecot ready."), vec![Step::ToBackend(b"USER alice\r\n".to_vec())]);
        assert_eq!(b.line("+OK"), vec![Step::ToBackend(b"PASS pw\r\n".to_vec())]);
        assert_eq!(
            b.line("+OK Logged in."),
            vec![Step::ToClient(b"+OK Logged in.\r\n".to_vec()), Step::LoggedIn]
        );
    }

    #[test]
    fn xclient_sasl_and_starttls() {
        let mut b = Pop3Backend::new(request(true, false), info());
        let steps = b.line("+OK [XCLIENT] Dovecot ready.");
        assert_eq!(
            steps,
            vec![Step::ToBackend(
                b"XCLIENT ADDR=10.0.0.9 PORT=4000 SESSION=s1 TTL=4\r\nAUTH PLAIN AGFsaWNlAHB3\r\n".to_vec()
            )]
        );
        assert!(b.line("+OK").is_empty());
        assert_eq!(b.line("+OK Logged in.")[1], Step::LoggedIn);

        let mut b = Pop3Backend::new(request(false, true), info());
        assert_eq!(b.line("+OK hi"), vec![Step::ToBackend(b"STLS\r\n".to_vec())]);
        assert_eq!(b.line("+OK Begin TLS negotiation now."), vec![Step::StartTls]);
        assert_eq!(b.tls_started(), vec![Step::ToBackend(b"USER alice\r\n".to_vec())]);
    }

    #[test]
    fn refusals_pass_through() {
        let mut b = Pop3Backend::new(request(false, false), info());
        b.line("+OK hi");
        b.line("+OK");
        let steps = b.line("-ERR [AUTH] Authentication failed.");
        assert_eq!(steps[0], Step::ToClient(b"-ERR [AUTH] Authentication failed.\r\n".to_vec()));
        assert!(matches!(steps[1], Step::Failed { kind: FailureKind::Auth, .. }));
        let mut b = Pop3Backend::new(request(false, false), info());
        b.line("+OK hi");
        assert_eq!(b.line("weird")[0], Step::ToClient(b"-ERR Authentication failed.\r\n".to_vec()));
        let mut b = Pop3Backend::new(request(false, false), info());
        assert!(matches!(&b.line("* OK imap?")[0], Step::Failed { kind: FailureKind::Protocol, .. }));
    }
}
