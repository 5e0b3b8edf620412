//! The auth penalty (Dovecot's `auth-penalty.c`, observable behaviour):
//! each failed login from a client IP raises that IP's penalty in anvil;
//! the next AUTH from the IP is started only after `2 · 2^(penalty-1)`
//! seconds, at most 15 s. Penalties fade: for every `2^k` seconds since
//! the last raise (k from 4 down) one step is dropped, and anvil forgets
//! an IP 29 s after its last update. A success resets the IP to 0, a
//! repeat of the same user+password does not escalate, and requests with
//! `no-penalty` or without a remote IP are never delayed.
//!
//! anvil is reached over `anvil-auth-penalty`, a connection the master
//! opened for this process (see `dovecote_anvil`). Without it no request
//! is delayed, as in Dovecot when anvil is unreachable.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dovecote_anvil::AnvilClient;

/// `AUTH_PENALTY_INIT_SECS`.
const INIT_SECS: u64 = 2;
/// `AUTH_PENALTY_MAX_SECS`.
const MAX_SECS: u64 = 15;
/// `AUTH_PENALTY_MAX_PENALTY`.
pub const MAX_PENALTY: u32 = 4;
/// `AUTH_PENALTY_TIMEOUT`: anvil forgets an IP after this.
const EXPIRE_SECS: u32 = (MAX_SECS * 2 - 1) as u32;
/// IPv6 clients are penalised per /48 so one host can't flood the table.
const IPV6_MASK_BITS: usize = 48;

pub struct Penalty {
    anvil: Option<AnvilClient>,
}

/// Delay for a penalty value.
pub fn penalty_to_secs(penalty: u32) -> u64 {
    let secs = INIT_SECS.saturating_mul(1u64 << penalty.min(32));
    secs.min(MAX_SECS)
}

/// The anvil ident for a remote IP (IPv6 masked to /48); `None` for no IP.
pub fn ident(remote_ip: Option<&str>) -> Option<String> {
    let ip: IpAddr = remote_ip?.parse().ok()?;
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            for b in octets.iter_mut().skip(IPV6_MASK_BITS / 8) {
                *b = 0;
            }
            std::net::Ipv6Addr::from(octets).to_string()
        }
    })
}

/// A non-zero checksum of user+password: retries of the same pair don't
/// escalate (FNV-1a; only anvil compares it, nothing else sees it).
pub fn userpass_checksum(password: Option<&str>, user: &str) -> u32 {
    let Some(password) = password else { return 0 };
    let mut h: u32 = 0x811c_9dc5;
    for b in password.bytes().chain([0u8]).chain(user.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// Penalty still in force `elapsed` seconds after the last raise.
pub fn effective_penalty(mut penalty: u32, elapsed: u64) -> u32 {
    let mut drop = MAX_PENALTY;
    while penalty > 0 {
        if elapsed < penalty_to_secs(drop) {
            break;
        }
        drop = drop.saturating_sub(1);
        penalty -= 1;
    }
    penalty
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Penalty {
    /// Adopts the master's anvil connection, if any.
    pub fn from_master(log: &slog::Logger) -> Penalty {
        let anvil = match AnvilClient::from_master() {
            Some(Ok(mut c)) => match c.penalty_set_expire_secs(EXPIRE_SECS) {
                Ok(()) => Some(c),
                Err(e) => {
                    slog::error!(log, "anvil-auth-penalty: {}", e);
                    None
                }
            },
            Some(Err(e)) => {
                slog::error!(log, "anvil-auth-penalty: {}", e);
                None
            }
            None => None,
        };
        Penalty { anvil }
    }

    /// The current penalty of `ident` and how long to hold its AUTH.
    pub fn lookup(&mut self, log: &slog::Logger, ident: &str) -> (u32, Option<Duration>) {
        let Some(anvil) = self.anvil.as_mut() else { return (0, None) };
        match anvil.penalty_get(ident) {
            Ok((penalty, last)) => {
                let now = unix_now();
                let penalty = effective_penalty(penalty, now.saturating_sub(last.min(now)));
                let delay = (penalty > 0).then(|| Duration::from_secs(penalty_to_secs(penalty)));
                (penalty, delay)
            }
            Err(e) => {
                slog::error!(log, "anvil-auth-penalty: PENALTY-GET failed: {}", e);
                self.anvil = None;
                (0, None)
            }
        }
    }

    /// Records the outcome: `value` 0 resets (success), otherwise the new
    /// penalty (capped) with the user+password checksum.
    pub fn update(&mut self, log: &slog::Logger, ident: &str, checksum: u32, value: u32) {
        let Some(anvil) = self.anvil.as_mut() else { return };
        let (checksum, value) = if value == 0 { (0, 0) } else { (checksum, value.min(MAX_PENALTY)) };
        if let Err(e) = anvil.penalty_inc(ident, checksum, value) {
            slog::error!(log, "anvil-auth-penalty: PENALTY-INC failed: {}", e);
            self.anvil = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_15_seconds() {
        assert_eq!(penalty_to_secs(0), 2);
        assert_eq!(penalty_to_secs(1), 4);
        assert_eq!(penalty_to_secs(2), 8);
        assert_eq!(penalty_to_secs(3), 15);
        assert_eq!(penalty_to_secs(40), 15);
    }

    #[test]
    fn penalties_fade_with_time() {
        assert_eq!(effective_penalty(2, 0), 2);
        assert_eq!(effective_penalty(2, 14), 2);
        // 15 s (penalty_to_secs(4)) drops one, 15 s (…(3)) drops the next.
        assert_eq!(effective_penalty(2, 15), 0);
        assert_eq!(effective_penalty(4, 10), 4);
        assert_eq!(effective_penalty(0, 100), 0);
    }

    #[test]
    fn idents_mask_ipv6() {
        assert_eq!(ident(Some("192.0.2.7")).as_deref(), Some("192.0.2.7"));
        assert_eq!(ident(Some("2001:db8:1:2:3::4")).as_deref(), Some("2001:db8:1::"));
        assert_eq!(ident(None), None);
        assert_eq!(ident(Some("")), None);
    }

    #[test]
    fn checksums_are_nonzero_and_differ() {
        assert_eq!(userpass_checksum(None, "u"), 0);
        let a = userpass_checksum(Some("p1"), "u");
        assert_ne!(a, 0);
        assert_ne!(a, userpass_checksum(Some("p2"), "u"));
        assert_eq!(a, userpass_checksum(Some("p1"), "u"));
    }
}
