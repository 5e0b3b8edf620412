//! Login proxying (Dovecot 2.3's `login-proxy.c`, `client-common-auth.c`,
//! `imap-proxy.c`, `pop3-proxy.c`): when the passdb answers with
//! `proxy host=… [port=…] [ssl=yes|any-cert] [starttls=…] [destuser=…]
//! [proxy_timeout=…] [master=…] [proxy_mech=plain]` (and auth adds
//! `pass=`), the login process does not hand the client to a local mail
//! process: it connects to the backend itself, logs in there with the same
//! credentials, relays the backend's success line to the client and then
//! shuttles bytes both ways until one side closes.
//!
//! This module owns the protocol-neutral parts, sans-IO:
//! * [`ProxyRequest`]: the passdb fields, checked as Dovecot checks them;
//! * [`Step`]: what a backend login state machine ([`imap::ImapBackend`],
//!   [`pop3::Pop3Backend`]) wants done;
//! * [`is_ourself`]: the `Proxying loops to itself` rule.
//!
//! [`conn::BackendConn`] is the non-blocking socket (plain or TLS) to the
//! backend; the event-loop glue is in `crate::service`.

pub mod conn;
pub mod imap;
pub mod pop3;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;

/// `LOGIN_PROXY_FAILURE_MSG`: the client's reply when the backend can't
/// be reached or misbehaves.
pub const PROXY_FAILURE_MSG: &str = "Account is temporarily unavailable.";
/// `LOGIN_PROXY_TTL`: how many proxy hops an `x-proxy-ttl` allows.
pub const PROXY_TTL: u32 = 5;
/// `PROXY_CONNECT_RETRY_MSECS`: wait between connect attempts.
pub const CONNECT_RETRY: Duration = Duration::from_millis(1000);
/// Longest backend line kept while logging in (`MAX_PROXY_INPUT_SIZE`).
pub const MAX_BACKEND_LINE: usize = 4096;

/// `ssl=` / `starttls=` of the passdb reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SslFlags {
    /// TLS to the backend at all.
    pub yes: bool,
    /// After STARTTLS/STLS instead of at connect.
    pub starttls: bool,
    /// Don't verify the backend's certificate (`any-cert`).
    pub any_cert: bool,
}

/// What the passdb said about where and how to proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `host` as given (logged), and the address connected to
    /// (`hostip`, else `host` itself, which must then be an IP).
    pub host: String,
    pub ip: IpAddr,
    pub port: u16,
    /// `destuser`, else the login name.
    pub user: String,
    pub password: String,
    /// `master`: log in as this master user for `user` (SASL PLAIN).
    pub master_user: Option<String>,
    /// SASL PLAIN instead of IMAP LOGIN / POP3 USER+PASS.
    pub sasl_plain: bool,
    pub ssl: SslFlags,
    /// `proxy_timeout` (secs), else `login_proxy_timeout`.
    pub timeout: Option<Duration>,
    /// `proxy_not_trusted`: don't send ID/XCLIENT with the client's address.
    pub not_trusted: bool,
}

/// Why a proxy request can't start; the text is logged after `proxy(<user>): `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("password not given")]
    NoPassword,
    #[error("host not given")]
    NoHost,
    #[error("host {0} is not an IP (auth should have changed it)")]
    NotAnIp(String),
    #[error("Auth service returned invalid {key} value: {value}")]
    Invalid { key: &'static str, value: String },
    #[error("Unsupported SASL mechanism {0}")]
    Mechanism(String),
}

/// Whether the passdb reply asks for proxying.
pub fn wants_proxy(fields: &[(String, String)]) -> bool {
    fields.iter().any(|(k, _)| k == "proxy" || k == "proxy_maybe")
}

impl ProxyRequest {
    /// Reads the auth reply's fields; `login_user` is the name the client
    /// logged in as, `default_port`/`default_ssl_port` the protocol's.
    pub fn from_fields(
        fields: &[(String, String)],
        login_user: &str,
        default_port: u16,
        default_ssl_port: u16,
    ) -> Result<ProxyRequest, RequestError> {
        let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let mut ssl = SslFlags::default();
        if let Some(v) = get("ssl") {
            if v != "no" {
                ssl.yes = true;
                ssl.any_cert = v == "any-cert";
            }
        }
        if let Some(v) = get("starttls") {
            if v != "no" {
                ssl.yes = true;
                ssl.starttls = true;
                ssl.any_cert |= v == "any-cert";
            }
        }
        let port = match get("port") {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| RequestError::Invalid { key: "port", value: p.to_owned() })?,
            None if ssl.yes && !ssl.starttls => default_ssl_port,
            None => default_port,
        };
        let timeout = match get("proxy_timeout") {
            Some(t) => {
                let secs = t
                    .parse::<u64>()
                    .map_err(|_| RequestError::Invalid { key: "proxy_timeout", value: t.to_owned() })?;
                (secs > 0).then(|| Duration::from_secs(secs))
            }
            None => None,
        };
        let password = get("pass").ok_or(RequestError::NoPassword)?.to_owned();
        let host = get("host").filter(|h| !h.is_empty()).ok_or(RequestError::NoHost)?.to_owned();
        let ip = get("hostip")
            .and_then(|h| h.parse().ok())
            .or_else(|| host.parse().ok())
            .ok_or_else(|| RequestError::NotAnIp(host.clone()))?;
        let master_user = get("master").filter(|m| !m.is_empty()).map(str::to_owned);
        let sasl_plain = match get("proxy_mech") {
            Some(m) if m.eq_ignore_ascii_case("plain") => true,
            Some(m) => return Err(RequestError::Mechanism(m.to_owned())),
            // A master user login needs PLAIN's separate authzid.
            None => master_user.is_some(),
        };
        Ok(ProxyRequest {
            host,
            ip,
            port,
            user: get("destuser").filter(|u| !u.is_empty()).unwrap_or(login_user).to_owned(),
            password,
            master_user,
            sasl_plain,
            ssl,
            timeout,
            not_trusted: get("proxy_not_trusted").is_some(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// PLAIN's initial response: `authzid \0 authcid \0 password`, with
    /// an empty authzid unless a master user logs in for `user`.
    pub fn plain_response(&self) -> String {
        let (authzid, authcid) = match &self.master_user {
            Some(master) => (self.user.as_str(), master.as_str()),
            None => ("", self.user.as_str()),
        };
        let raw = format!("{authzid}\0{authcid}\0{}", self.password);
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// `login_proxy_is_ourself`: the destination is the very address and port
/// the client connected to, for the same user.
pub fn is_ourself(request: &ProxyRequest, local: Option<SocketAddr>, login_user: &str) -> bool {
    local.is_some_and(|l| {
        l.port() == request.port
            && crate::settings::canonical(&l.ip()) == crate::settings::canonical(&request.ip)
    }) && request.user == login_user
}

/// Dovecot's `login_proxy_failure_type`: decides the client's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// connect() failed or the backend disconnected.
    Connect,
    Internal,
    /// A backend command failed unexpectedly (STARTTLS…).
    Remote,
    /// The backend lacks something the passdb asked for.
    RemoteConfig,
    /// The backend violates the protocol.
    Protocol,
    /// The backend refused the login; the reply was already sent.
    Auth,
}

/// What a backend login state machine wants done, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    ToBackend(Vec<u8>),
    ToClient(Vec<u8>),
    /// The backend accepted STARTTLS/STLS: start TLS on the backend
    /// connection, then call the machine's `tls_started`.
    StartTls,
    /// Logged in: the success line went out with a `ToClient` before;
    /// from now on bytes are relayed untouched.
    LoggedIn,
    /// Proxying failed; `log` (if any) is logged as an error after
    /// `proxy(<user>): `. For [`FailureKind::Auth`] the client's reply was
    /// already queued and `log` is the backend's reason (logged at info
    /// with `auth_verbose`).
    Failed {
        kind: FailureKind,
        log: Option<String>,
    },
}

/// Splits complete lines (without CRLF) off `buf`.
pub fn take_lines(buf: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(lf) = buf.iter().position(|b| *b == b'\n') {
        let mut line: Vec<u8> = buf.drain(..=lf).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    lines
}

/// `str_sanitize(line, 160)` for log lines.
pub fn sanitize(line: &str) -> String {
    let clean: String = line.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() > 160 {
        let cut: String = clean.chars().take(157).collect();
        format!("{cut}...")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn reads_passdb_fields() {
        let f = fields(&[("proxy", ""), ("host", "127.0.0.1"), ("port", "1430"), ("pass", "pw")]);
        let r = ProxyRequest::from_fields(&f, "alice", 143, 993).unwrap();
        assert_eq!(r.addr(), "127.0.0.1:1430".parse().unwrap());
        assert_eq!((r.user.as_str(), r.password.as_str(), r.sasl_plain), ("alice", "pw", false));
        assert_eq!(r.plain_response(), "AGFsaWNlAHB3");

        let f = fields(&[
            ("proxy", ""),
            ("host", "::1"),
            ("ssl", "any-cert"),
            ("pass", "pw"),
            ("destuser", "bob"),
        ]);
        let r = ProxyRequest::from_fields(&f, "alice", 143, 993).unwrap();
        assert_eq!((r.port, r.ssl.yes, r.ssl.any_cert, r.ssl.starttls), (993, true, true, false));
        assert_eq!(r.user, "bob");

        let f = fields(&[
            ("proxy", ""),
            ("host", "10.0.0.1"),
            ("starttls", "yes"),
            ("pass", "p"),
            ("proxy_timeout", "5"),
        ]);
        let r = ProxyRequest::from_fields(&f, "a", 110, 995).unwrap();
        assert_eq!((r.port, r.ssl.starttls, r.timeout), (110, true, Some(Duration::from_secs(5))));

        let f = fields(&[("proxy", ""), ("host", "10.0.0.1"), ("pass", "p"), ("master", "admin")]);
        let r = ProxyRequest::from_fields(&f, "a", 110, 995).unwrap();
        assert!(r.sasl_plain);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(r.plain_response()).unwrap(),
            b"a\0admin\0p"
        );
    }

    #[test]
    fn refuses_incomplete_requests() {
        let err =
            |list: &[(&str, &str)]| ProxyRequest::from_fields(&fields(list), "a", 143, 993).unwrap_err();
        assert_eq!(err(&[("proxy", ""), ("host", "1.2.3.4")]), RequestError::NoPassword);
        assert_eq!(err(&[("proxy", ""), ("pass", "x")]), RequestError::NoHost);
        assert_eq!(
            err(&[("host", "mail.example"), ("pass", "x")]),
            RequestError::NotAnIp("mail.example".into())
        );
        assert!(matches!(
            err(&[("host", "1.2.3.4"), ("pass", "x"), ("port", "0")]),
            RequestError::Invalid { .. }
        ));
        assert!(matches!(
            err(&[("host", "1.2.3.4"), ("pass", "x"), ("proxy_mech", "GSSAPI")]),
            RequestError::Mechanism(_)
        ));
    }

    #[test]
    fn detects_loops_to_itself() {
        let f = fields(&[("host", "127.0.0.1"), ("port", "143"), ("pass", "x")]);
        let r = ProxyRequest::from_fields(&f, "alice", 143, 993).unwrap();
        assert!(is_ourself(&r, Some("127.0.0.1:143".parse().unwrap()), "alice"));
        assert!(!is_ourself(&r, Some("127.0.0.1:144".parse().unwrap()), "alice"));
        assert!(!is_ourself(&r, Some("127.0.0.1:143".parse().unwrap()), "bob"));
    }

    #[test]
    fn lines_and_sanitizing() {
        let mut buf = b"* OK hi\r\nL OK done\npartial".to_vec();
        assert_eq!(take_lines(&mut buf), vec!["* OK hi".to_owned(), "L OK done".to_owned()]);
        assert_eq!(buf, b"partial");
        assert_eq!(sanitize("a\x07b"), "a?b");
        assert_eq!(sanitize(&"x".repeat(200)).len(), 160);
    }
}
