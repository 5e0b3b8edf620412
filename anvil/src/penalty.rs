//! The auth penalty table: per ident (a client IP), a penalty value, when
//! it was last raised, and the last few username+password checksums so a
//! client retrying the same wrong password (a misconfigured mail client,
//! not an attacker) does not escalate. Semantics are Dovecot's
//! (`anvil/penalty.c`); records expire `expire_secs` after their last
//! update (default 3600, auth sets 29).

use std::collections::HashMap;

/// Default expiry when no client has set one.
pub const DEFAULT_EXPIRE_SECS: u64 = 3600;
/// Checksums remembered per ident.
const CHECKSUMS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    penalty: u32,
    last_penalty: u64,
    last_update: u64,
    /// Most recent first.
    checksums: Vec<u32>,
}

#[derive(Debug)]
pub struct PenaltyTable {
    records: HashMap<String, Record>,
    expire_secs: u64,
}

impl Default for PenaltyTable {
    fn default() -> Self {
        PenaltyTable { records: HashMap::new(), expire_secs: DEFAULT_EXPIRE_SECS }
    }
}

impl PenaltyTable {
    pub fn set_expire_secs(&mut self, secs: u64) {
        self.expire_secs = secs;
    }

    /// `(penalty, last_penalty)`; `(0, 0)` for an unknown ident.
    pub fn get(&mut self, ident: &str, now: u64) -> (u32, u64) {
        self.expire(now);
        self.records.get(ident).map(|r| (r.penalty, r.last_penalty)).unwrap_or((0, 0))
    }

    /// `PENALTY-INC`: `checksum == 0` sets the value outright (0 = reset
    /// after a successful login); a checksum seen recently keeps the
    /// penalty at `value - 1` without moving `last_penalty`.
    pub fn inc(&mut self, ident: &str, checksum: u32, value: u32, now: u64) {
        self.expire(now);
        let rec = self.records.entry(ident.to_owned()).or_insert(Record {
            penalty: 0,
            last_penalty: now,
            last_update: now,
            checksums: Vec::new(),
        });
        if checksum == 0 {
            rec.penalty = value;
            rec.last_penalty = now;
        } else if let Some(pos) = rec.checksums.iter().position(|c| *c == checksum) {
            let c = rec.checksums.remove(pos);
            rec.checksums.insert(0, c);
            rec.penalty = value.saturating_sub(1);
        } else {
            rec.checksums.insert(0, checksum);
            rec.checksums.truncate(CHECKSUMS);
            rec.penalty = value;
            rec.last_penalty = now;
        }
        rec.last_update = now;
    }

    /// `(ident, penalty, last_penalty, last_update)` rows, oldest update first.
    pub fn dump(&mut self, now: u64) -> Vec<(String, u32, u64, u64)> {
        self.expire(now);
        let mut rows: Vec<_> =
            self.records.iter().map(|(i, r)| (i.clone(), r.penalty, r.last_penalty, r.last_update)).collect();
        rows.sort_by_key(|r| (r.3, r.0.clone()));
        rows
    }

    /// Drops records not updated within `expire_secs`.
    pub fn expire(&mut self, now: u64) {
        let expire = self.expire_secs;
        self.records.retain(|_, r| now.saturating_sub(r.last_update) < expire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checksums_raise_and_repeats_do_not() {
        let mut t = PenaltyTable::default();
        assert_eq!(t.get("1.2.3.4", 100), (0, 0));
        t.inc("1.2.3.4", 11, 1, 100);
        assert_eq!(t.get("1.2.3.4", 100), (1, 100));
        t.inc("1.2.3.4", 22, 2, 105);
        assert_eq!(t.get("1.2.3.4", 105), (2, 105));
        // The same user+password again: stays at value-1, time unchanged.
        t.inc("1.2.3.4", 22, 3, 110);
        assert_eq!(t.get("1.2.3.4", 110), (2, 105));
        // Success resets.
        t.inc("1.2.3.4", 0, 0, 111);
        assert_eq!(t.get("1.2.3.4", 111), (0, 111));
    }

    #[test]
    fn records_expire() {
        let mut t = PenaltyTable::default();
        t.set_expire_secs(29);
        t.inc("ip", 5, 1, 1000);
        assert_eq!(t.get("ip", 1028).0, 1);
        assert_eq!(t.get("ip", 1029), (0, 0));
        assert!(t.dump(1029).is_empty());
    }
}
