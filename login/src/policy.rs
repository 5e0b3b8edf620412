//! Dovecot 2.3's rules for which connections are *secured* and what may
//! authenticate on them (`login-common/client-common.c`, `sasl-server.c`):
//!
//! * secured = TLS is active, or the remote IP is in
//!   `login_trusted_networks`, or the (real) remote IP equals the (real)
//!   local IP (e.g. 127.0.0.1 → 127.0.0.1);
//! * `disable_plaintext_auth = yes` hides plaintext mechanisms (PLAIN,
//!   LOGIN) and refuses IMAP LOGIN / POP3 USER unless secured;
//! * `ssl = required` refuses all authentication unless secured — so
//!   trusted networks and same-IP connections satisfy it too.

use std::net::IpAddr;

use crate::sasl::Mechanism;
use crate::settings::{canonical, in_networks, LoginSettings, SslMode};

/// What the login process knows about a connection's security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Security {
    /// TLS is active (implicit or after STARTTLS).
    pub tls: bool,
    /// Secured by Dovecot's rule (TLS, trusted network or same IP).
    pub secured: bool,
    /// The remote IP is in `login_trusted_networks`.
    pub trusted: bool,
}

impl Security {
    /// Classifies a connection from its real addresses (before any HAProxy
    /// header rewrote them).
    pub fn classify(
        settings: &LoginSettings,
        remote: Option<IpAddr>,
        local: Option<IpAddr>,
        tls: bool,
    ) -> Security {
        let trusted = remote.is_some_and(|ip| in_networks(&settings.login_trusted_networks, &ip));
        let same_ip = match (remote, local) {
            (Some(r), Some(l)) => canonical(&r) == canonical(&l),
            // A unix socket client is local.
            (None, _) => true,
            _ => false,
        };
        Security { tls, secured: tls || trusted || same_ip, trusted }
    }

    /// TLS has just been established on this connection.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.secured = true;
    }
}

/// Whether plaintext authentication (IMAP LOGIN, POP3 USER/PASS, PLAIN and
/// LOGIN mechanisms) is allowed (`client_check_plaintext_auth`).
pub fn plaintext_allowed(settings: &LoginSettings, sec: &Security) -> bool {
    sec.secured || (!settings.disable_plaintext_auth && settings.ssl != SslMode::Required)
}

/// The mechanisms to advertise (CAPABILITY `AUTH=`, POP3 `SASL`).
pub fn advertised<'a>(
    settings: &LoginSettings,
    sec: &Security,
    mechs: &'a [Mechanism],
) -> Vec<&'a Mechanism> {
    if settings.ssl == SslMode::Required && !sec.secured {
        return Vec::new();
    }
    mechs
        .iter()
        .filter(|m| !m.private)
        .filter(|m| !m.plaintext || !settings.disable_plaintext_auth || sec.secured)
        .collect()
}

/// Whether STARTTLS/STLS is offered.
pub fn starttls_offered(settings: &LoginSettings, sec: &Security) -> bool {
    settings.ssl != SslMode::No && !sec.tls
}
