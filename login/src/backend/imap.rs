//! Logging in to an IMAP backend (Dovecot 2.3's `imap-proxy.c`), sans-IO.
//!
//! After the backend's banner: `I ID (…x-session-id, x-originating-ip…)`
//! when it announces ID (unless `proxy_not_trusted`), `S STARTTLS` with
//! `starttls=`, `C CAPABILITY` when its banner carried no capabilities (or
//! the client asked for CAPABILITY itself), then `L LOGIN user pass` — or
//! `L AUTHENTICATE PLAIN` (SASL-IR when offered) with a master user or
//! `proxy_mech=plain`. The backend's `L OK` goes to the client under the
//! client's tag, with the backend's capabilities as Dovecot adds them; a
//! `L NO` becomes Dovecot's own `NO [AUTHENTICATIONFAILED] Authentication
//! failed.` unless it carries another resp-code.

use super::{sanitize, FailureKind, ProxyRequest, Step, PROXY_TTL};

/// The client-side facts the ID command forwards.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub session_id: String,
    pub remote_ip: String,
    pub remote_port: u16,
    pub local_ip: String,
    pub local_port: u16,
}

/// One proxied login's conversation with the backend.
pub struct ImapBackend {
    request: ProxyRequest,
    info: ClientInfo,
    /// The client's tag of its LOGIN/AUTHENTICATE.
    tag: String,
    /// The client sent CAPABILITY itself, so it may ignore resp-codes.
    client_ignores_capability_resp_code: bool,
    seen_banner: bool,
    capability: Option<String>,
    sasl_ir: bool,
    logindisabled: bool,
    capability_request_sent: bool,
    /// PLAIN's response is owed on the next `+`.
    sasl_pending: bool,
    /// For the `state=` of log lines.
    state: &'static str,
    steps: Vec<Step>,
}

impl ImapBackend {
    pub fn new(
        request: ProxyRequest,
        info: ClientInfo,
        tag: &str,
        client_used_capability: bool,
    ) -> ImapBackend {
        ImapBackend {
            request,
            info,
            tag: tag.to_owned(),
            client_ignores_capability_resp_code: client_used_capability,
            seen_banner: false,
            capability: None,
            sasl_ir: false,
            logindisabled: false,
            capability_request_sent: false,
            sasl_pending: false,
            state: "banner",
            steps: Vec::new(),
        }
    }

    /// Where the login is, for `Login timed out in state=…` and the like.
    pub fn state(&self) -> &'static str {
        self.state
    }

    /// One line (without CRLF) from the backend.
    pub fn line(&mut self, line: &str) -> Vec<Step> {
        if !self.seen_banner {
            self.seen_banner = true;
            self.banner(line);
        } else if line.starts_with('+') {
            // A continuation: PLAIN's turn, or a literal's (ignored).
            if self.sasl_pending {
                self.sasl_pending = false;
                let response = format!("{}\r\n", self.request.plain_response());
                self.queue_backend(response);
            }
        } else if let Some(rest) = line.strip_prefix("S ") {
            if rest.starts_with("OK") {
                self.state = "starttls";
                self.steps.push(Step::StartTls);
            } else {
                self.fail(FailureKind::Remote, format!("Remote STARTTLS failed: {}", sanitize(rest)));
            }
        } else if let Some(rest) = line.strip_prefix("L OK ") {
            self.login_succeeded(rest);
        } else if let Some(rest) = line.strip_prefix("L ") {
            self.login_failed(rest);
        } else if line.len() >= 13 && line[..13].eq_ignore_ascii_case("* CAPABILITY ") {
            self.capability = Some(line[13..].to_owned());
        } else if line.starts_with("C ") || line.starts_with("I ") || line.starts_with("* ID ") {
            // Replies to our CAPABILITY and ID: nothing to do.
        } else if line.starts_with("* ") {
            // Other untagged replies reach the client as they are.
            self.steps.push(Step::ToClient(format!("{line}\r\n").into_bytes()));
        } else {
            // Dovecot logs and ignores an unexpected tagged reply; so do we,
            // without a log line per byte of a misbehaving server.
        }
        std::mem::take(&mut self.steps)
    }

    /// TLS to the backend is up after `S OK`: log in over it.
    pub fn tls_started(&mut self) -> Vec<Step> {
        self.write_login();
        std::mem::take(&mut self.steps)
    }

    fn queue_backend(&mut self, text: String) {
        if let Some(Step::ToBackend(buf)) = self.steps.last_mut() {
            buf.extend_from_slice(text.as_bytes());
        } else {
            self.steps.push(Step::ToBackend(text.into_bytes()));
        }
    }

    fn fail(&mut self, kind: FailureKind, log: String) {
        self.state = "failed";
        self.steps.push(Step::Failed { kind, log: Some(log) });
    }

    fn banner(&mut self, line: &str) {
        let Some(text) = line.strip_prefix("* OK ") else {
            self.fail(FailureKind::Protocol, format!("Remote returned invalid banner: {}", sanitize(line)));
            return;
        };
        if let Some(caps) = text.strip_prefix("[CAPABILITY ") {
            let caps = caps.split(']').next().unwrap_or("").to_owned();
            self.note_capability(&caps);
            if has_word(&caps, "ID") && !self.request.not_trusted {
                let id = self.id_command();
                self.queue_backend(id);
            }
        }
        if self.request.ssl.starttls {
            if self.capability.as_deref().is_some_and(|c| !has_word(c, "STARTTLS")) {
                self.fail(FailureKind::RemoteConfig, "Remote doesn't support STARTTLS".into());
                return;
            }
            self.queue_backend("S STARTTLS\r\n".into());
            self.state = "starttls";
            return;
        }
        self.write_login();
    }

    fn note_capability(&mut self, caps: &str) {
        self.sasl_ir = has_word(caps, "SASL-IR");
        self.logindisabled = has_word(caps, "LOGINDISABLED");
        self.capability = Some(caps.to_owned());
    }

    fn id_command(&self) -> String {
        let i = &self.info;
        format!(
            "I ID (\"x-session-id\" {} \"x-originating-ip\" {} \"x-originating-port\" \"{}\" \"x-connected-ip\" {} \"x-connected-port\" \"{}\" \"x-proxy-ttl\" \"{}\")\r\n",
            quote(&i.session_id),
            quote(&i.remote_ip),
            i.remote_port,
            quote(&i.local_ip),
            i.local_port,
            PROXY_TTL - 1
        )
    }

    fn write_login(&mut self) {
        if !self.capability_request_sent
            && (self.capability.is_none() || self.client_ignores_capability_resp_code)
        {
            self.capability_request_sent = true;
            self.queue_backend("C CAPABILITY\r\n".into());
        }
        self.state = "login";
        if !self.request.sasl_plain {
            if self.logindisabled && !self.request.ssl.yes {
                self.fail(
                    FailureKind::RemoteConfig,
                    "Remote advertised LOGINDISABLED and SSL/TLS not enabled".into(),
                );
                return;
            }
            let line = format!(
                "L LOGIN {} {}\r\n",
                imap_string(&self.request.user),
                imap_string(&self.request.password)
            );
            self.queue_backend(line);
            return;
        }
        if self.sasl_ir {
            let line = format!("L AUTHENTICATE PLAIN {}\r\n", self.request.plain_response());
            self.queue_backend(line);
        } else {
            self.sasl_pending = true;
            self.queue_backend("L AUTHENTICATE PLAIN\r\n".into());
        }
    }

    /// Dovecot's `client_send_login_reply`.
    fn login_succeeded(&mut self, rest: &str) {
        let tagged_capability = rest.len() >= 12 && rest[..12].eq_ignore_ascii_case("[CAPABILITY ");
        let capability = if tagged_capability {
            Some(rest[12..].split(']').next().unwrap_or("").to_owned())
        } else {
            self.capability.clone()
        };
        let mut out = String::new();
        if self.client_ignores_capability_resp_code {
            if let Some(caps) = &capability {
                out.push_str(&format!("* CAPABILITY {caps}\r\n"));
            }
        }
        out.push_str(&self.tag);
        out.push_str(" OK ");
        let mut text = rest;
        if !self.client_ignores_capability_resp_code && !tagged_capability {
            if let Some(caps) = &capability {
                out.push_str(&format!("[CAPABILITY {caps}] "));
                if text.starts_with('[') {
                    // Replace the backend's resp-code with the capabilities.
                    text = text.find(']').map_or("", |end| text[end + 1..].trim_start_matches(' '));
                }
            }
        }
        out.push_str(text);
        out.push_str("\r\n");
        self.state = "logged-in";
        self.steps.push(Step::ToClient(out.into_bytes()));
        self.steps.push(Step::LoggedIn);
    }

    fn login_failed(&mut self, rest: &str) {
        let reply = if rest.starts_with("NO [AUTHENTICATIONFAILED]") || !rest.starts_with("NO [") {
            // Our own words, so the backend's can't tell which users exist.
            format!("{} NO [AUTHENTICATIONFAILED] {}\r\n", self.tag, crate::sasl::AUTH_FAILED_MSG)
        } else {
            format!("{} {rest}\r\n", self.tag)
        };
        let reason = rest.strip_prefix("NO ").unwrap_or(rest).to_owned();
        self.state = "failed";
        self.steps.push(Step::ToClient(reply.into_bytes()));
        self.steps.push(Step::Failed { kind: FailureKind::Auth, log: Some(reason) });
    }
}

fn has_word(list: &str, word: &str) -> bool {
    list.split(' ').any(|w| w.eq_ignore_ascii_case(word))
}

/// An IMAP quoted string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `imap_append_string`: quoted when it can be, else a literal.
fn imap_string(text: &str) -> String {
    if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0 || b >= 0x80) {
        format!("{{{}}}\r\n{text}", text.len())
    } else {
        quote(text)
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
            port: 1430,
            user: "alice".into(),
            password: "se\"cret".into(),
            master_user: None,
            sasl_plain: sasl,
            ssl: SslFlags { yes: starttls, starttls, any_cert: false },
            timeout: None,
            not_trusted: false,
        }
    }

    fn info() -> ClientInfo {
        ClientInfo {
            session_id: "abc".into(),
            remote_ip: "10.0.0.9".into(),
            remote_port: 5555,
            local_ip: "10.0.0.1".into(),
            local_port: 143,
        }
    }

    fn backend_bytes(steps: &[Step]) -> String {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::ToBackend(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn logs_in_with_id_and_login_and_relays_the_ok() {
        let mut b = ImapBackend::new(request(false, false), info(), "a1", false);
        let steps = b.line("* OK [CAPABILITY IMAP4rev1 SASL-IR ID ENABLE] Dovecot ready.");
        assert_eq!(
            backend_bytes(&steps),
            "I ID (\"x-session-id\" \"abc\" \"x-originating-ip\" \"10.0.0.9\" \"x-originating-port\" \"5555\" \"x-connected-ip\" \"10.0.0.1\" \"x-connected-port\" \"143\" \"x-proxy-ttl\" \"4\")\r\nL LOGIN \"alice\" \"se\\\"cret\"\r\n"
        );
        assert!(b.line("* ID NIL").is_empty());
        assert!(b.line("I OK ID completed.").is_empty());
        let steps = b.line("L OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in");
        assert_eq!(
            steps,
            vec![
                Step::ToClient(b"a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n".to_vec()),
                Step::LoggedIn
            ]
        );
    }

    #[test]
    fn adds_capabilities_when_the_backend_did_not() {
        let mut b = ImapBackend::new(request(false, false), info(), "x", false);
        let steps = b.line("* OK ready");
        assert_eq!(backend_bytes(&steps), "C CAPABILITY\r\nL LOGIN \"alice\" \"se\\\"cret\"\r\n");
        b.line("* CAPABILITY IMAP4rev1 LITERAL+");
        b.line("C OK done");
        let steps = b.line("L OK [SOMETHING] Logged in");
        assert_eq!(steps[0], Step::ToClient(b"x OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n".to_vec()));

        // A client that asked CAPABILITY itself gets it untagged instead.
        let mut b = ImapBackend::new(request(false, false), info(), "x", true);
        let steps = b.line("* OK [CAPABILITY IMAP4rev1] ready");
        assert!(backend_bytes(&steps).starts_with("C CAPABILITY\r\n"));
        b.line("* CAPABILITY IMAP4rev1 IDLE");
        let steps = b.line("L OK Logged in");
        assert_eq!(steps[0], Step::ToClient(b"* CAPABILITY IMAP4rev1 IDLE\r\nx OK Logged in\r\n".to_vec()));
    }

    #[test]
    fn sasl_plain_with_and_without_sasl_ir() {
        let mut b = ImapBackend::new(request(true, false), info(), "t", false);
        let steps = b.line("* OK [CAPABILITY IMAP4rev1 SASL-IR] hi");
        assert_eq!(backend_bytes(&steps), "L AUTHENTICATE PLAIN AGFsaWNlAHNlImNyZXQ=\r\n");
        let mut b = ImapBackend::new(request(true, false), info(), "t", false);
        let steps = b.line("* OK [CAPABILITY IMAP4rev1] hi");
        assert_eq!(backend_bytes(&steps), "L AUTHENTICATE PLAIN\r\n");
        assert_eq!(backend_bytes(&b.line("+ ")), "AGFsaWNlAHNlImNyZXQ=\r\n");
    }

    #[test]
    fn failures_are_worded_as_dovecot() {
        let mut b = ImapBackend::new(request(false, false), info(), "t", false);
        b.line("* OK [CAPABILITY IMAP4rev1] hi");
        let steps = b.line("L NO [AUTHENTICATIONFAILED] Wrong password for alice.");
        assert_eq!(
            steps[0],
            Step::ToClient(b"t NO [AUTHENTICATIONFAILED] Authentication failed.\r\n".to_vec())
        );
        assert!(matches!(steps[1], Step::Failed { kind: FailureKind::Auth, .. }));

        let mut b = ImapBackend::new(request(false, false), info(), "t", false);
        b.line("* OK [CAPABILITY IMAP4rev1] hi");
        let steps = b.line("L NO [UNAVAILABLE] Maintenance");
        assert_eq!(steps[0], Step::ToClient(b"t NO [UNAVAILABLE] Maintenance\r\n".to_vec()));

        let mut b = ImapBackend::new(request(false, false), info(), "t", false);
        let steps = b.line("HELLO");
        assert!(
            matches!(&steps[0], Step::Failed { kind: FailureKind::Protocol, log: Some(l) } if l.contains("invalid banner"))
        );

        let mut b = ImapBackend::new(request(false, true), info(), "t", false);
        let steps = b.line("* OK [CAPABILITY IMAP4rev1] hi");
        assert!(matches!(&steps[0], Step::Failed { kind: FailureKind::RemoteConfig, .. }));
    }

    #[test]
    fn starttls_then_login() {
        let mut b = ImapBackend::new(request(false, true), info(), "t", false);
        let steps = b.line("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi");
        assert_eq!(backend_bytes(&steps), "S STARTTLS\r\n");
        assert_eq!(b.line("S OK Begin TLS negotiation now."), vec![Step::StartTls]);
        let steps = b.tls_started();
        assert_eq!(backend_bytes(&steps), "L LOGIN \"alice\" \"se\\\"cret\"\r\n");
        let mut b = ImapBackend::new(request(false, true), info(), "t", false);
        b.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi");
        assert!(matches!(&b.line("S NO nope")[0], Step::Failed { kind: FailureKind::Remote, .. }));
    }

    #[test]
    fn literal_for_unquotable_passwords() {
        assert_eq!(imap_string("p\u{e4}ss"), "{5}\r\np\u{e4}ss");
        assert_eq!(imap_string("plain"), "\"plain\"");
    }
}
