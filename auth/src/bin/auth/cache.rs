//! The auth cache (`auth_cache_size`, `auth_cache_ttl`,
//! `auth_cache_negative_ttl`): results of passdb and userdb lookups of
//! drivers that have a cache key (passwd, shadow, pam with `cache_key`,
//! later sql/ldap), so repeated logins need no worker round trip.
//!
//! Password verification results are keyed by a salted SHA-256 of the
//! password (the salt is random per process), so the cache never holds a
//! password and only the very same password hits a cached "ok" or
//! "mismatch". Positive results live `auth_cache_ttl`, negative ones (user
//! unknown, password mismatch) `auth_cache_negative_ttl`; internal failures
//! are never cached. When the estimated size exceeds `auth_cache_size`, the
//! oldest entries go first. `CACHE-FLUSH` empties it (all, or some users).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use dovecote_auth::db::{ExtraFields, PassdbEntry};
use dovecote_auth::mech::PassdbResult;
use sha2::{Digest, Sha256};

/// A cached value.
#[derive(Debug, Clone)]
pub enum Cached {
    /// A passdb result.
    Passdb(PassdbResult, Option<PassdbEntry>),
    /// A userdb result: `None` = not found.
    Userdb(Option<ExtraFields>),
}

struct Entry {
    value: Cached,
    user: String,
    expires: Instant,
    size: usize,
}

/// The cache.
pub struct AuthCache {
    max_size: u64,
    ttl: Duration,
    negative_ttl: Duration,
    salt: [u8; 16],
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    size: u64,
}

impl AuthCache {
    /// A cache; `max_size` 0 disables it.
    pub fn new(max_size: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        let mut salt = [0u8; 16];
        let _ = getrandom::getrandom(&mut salt);
        AuthCache {
            max_size,
            ttl,
            negative_ttl,
            salt,
            entries: HashMap::new(),
            order: VecDeque::new(),
            size: 0,
        }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.max_size > 0
    }

    /// Key for a passdb verification of `password`.
    pub fn verify_key(&self, db: usize, key: &str, password: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(password);
        format!("P{db}\t{key}\t{}", dovecote_auth::scheme::hex_encode(&h.finalize()[..16]))
    }

    /// Key for a passdb lookup without password.
    pub fn lookup_key(db: usize, key: &str) -> String {
        format!("L{db}\t{key}")
    }

    /// Key for a userdb lookup.
    pub fn userdb_key(db: usize, key: &str) -> String {
        format!("U{db}\t{key}")
    }

    /// A live entry.
    pub fn get(&mut self, key: &str) -> Option<Cached> {
        if !self.enabled() {
            return None;
        }
        match self.entries.get(key) {
            Some(e) if e.expires > Instant::now() => Some(e.value.clone()),
            Some(_) => {
                self.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores a result (internal failures are ignored).
    pub fn put(&mut self, key: String, user: &str, value: Cached) {
        if !self.enabled() {
            return;
        }
        let ttl = match &value {
            Cached::Passdb(PassdbResult::Ok, _) | Cached::Userdb(Some(_)) => self.ttl,
            Cached::Passdb(PassdbResult::UserUnknown | PassdbResult::PasswordMismatch, _)
            | Cached::Userdb(None) => self.negative_ttl,
            Cached::Passdb(..) => return,
        };
        if ttl.is_zero() {
            return;
        }
        let size = key.len() + user.len() + 64 + format!("{value:?}").len();
        self.remove(&key);
        self.size += size as u64;
        self.order.push_back(key.clone());
        self.entries
            .insert(key, Entry { value, user: user.to_string(), expires: Instant::now() + ttl, size });
        while self.size > self.max_size {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(e) = self.entries.remove(&oldest) {
                self.size -= e.size as u64;
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.size -= e.size as u64;
            self.order.retain(|k| k != key);
        }
    }

    /// Flushes everything (`users` empty) or the entries of `users`;
    /// returns how many entries went.
    pub fn flush(&mut self, users: &[String]) -> u32 {
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| users.is_empty() || users.contains(&e.user))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            self.remove(k);
        }
        u32::try_from(keys.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_flush_and_size() {
        let mut c = AuthCache::new(10_000, Duration::from_secs(60), Duration::from_secs(60));
        let k = c.verify_key(0, "tim", b"pw");
        assert_ne!(k, c.verify_key(0, "tim", b"other"));
        assert!(!k.contains("pw"));
        c.put(k.clone(), "tim", Cached::Passdb(PassdbResult::Ok, None));
        assert!(matches!(c.get(&k), Some(Cached::Passdb(PassdbResult::Ok, None))));
        c.put("x".into(), "bob", Cached::Passdb(PassdbResult::InternalFailure, None));
        assert!(c.get("x").is_none());
        assert_eq!(c.flush(&["tim".into()]), 1);
        assert!(c.get(&k).is_none());
        let mut small = AuthCache::new(300, Duration::from_secs(60), Duration::from_secs(60));
        for i in 0..20 {
            small.put(format!("U0\tuser{i}"), "u", Cached::Userdb(None));
        }
        assert!(small.size <= 300);
        assert!(small.get("U0\tuser19").is_some());
        assert!(small.get("U0\tuser0").is_none());
        assert!(AuthCache::new(0, Duration::from_secs(1), Duration::from_secs(1)).get("a").is_none());
    }
}
