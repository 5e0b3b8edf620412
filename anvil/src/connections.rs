//! Session counts per ident (`imap/<ip>/<user>`), owned by the anvil
//! connection that registered them. A closed connection (its process
//! exited or crashed) gives its sessions back at once, which is what
//! Dovecot's master achieves with `KILL <pid>` after a crash.

use std::collections::HashMap;

/// Which anvil client connection registered a session.
pub type ConnId = usize;

#[derive(Debug, Default)]
pub struct ConnectTable {
    totals: HashMap<String, u32>,
    /// conn → (pid, ident) → sessions.
    owned: HashMap<ConnId, HashMap<(u32, String), u32>>,
}

impl ConnectTable {
    pub fn connect(&mut self, conn: ConnId, pid: u32, ident: &str) {
        *self.totals.entry(ident.to_owned()).or_insert(0) += 1;
        *self.owned.entry(conn).or_default().entry((pid, ident.to_owned())).or_insert(0) += 1;
    }

    /// Ends one session; `false` when `conn` had none for `pid`/`ident`
    /// (Dovecot logs that as an error and carries on).
    pub fn disconnect(&mut self, conn: ConnId, pid: u32, ident: &str) -> bool {
        let Some(sessions) = self.owned.get_mut(&conn) else { return false };
        let key = (pid, ident.to_owned());
        match sessions.get_mut(&key) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                sessions.remove(&key);
            }
            None => return false,
        }
        self.release(ident, 1);
        true
    }

    /// Forgets every session `conn` registered.
    pub fn connection_closed(&mut self, conn: ConnId) {
        if let Some(sessions) = self.owned.remove(&conn) {
            for ((_, ident), n) in sessions {
                self.release(&ident, n);
            }
        }
    }

    /// Forgets every session of process `pid`, whichever connection
    /// registered it.
    pub fn kill(&mut self, pid: u32) {
        let mut released = Vec::new();
        for sessions in self.owned.values_mut() {
            sessions.retain(|(p, ident), n| {
                if *p == pid {
                    released.push((ident.clone(), *n));
                    false
                } else {
                    true
                }
            });
        }
        for (ident, n) in released {
            self.release(&ident, n);
        }
    }

    pub fn lookup(&self, ident: &str) -> u32 {
        self.totals.get(ident).copied().unwrap_or(0)
    }

    /// `(ident, pid, count)` for every registered session group.
    pub fn dump(&self) -> Vec<(String, u32, u32)> {
        let mut rows: Vec<_> = self
            .owned
            .values()
            .flat_map(|s| s.iter().map(|((pid, ident), n)| (ident.clone(), *pid, *n)))
            .collect();
        rows.sort();
        rows
    }

    fn release(&mut self, ident: &str, n: u32) {
        if let Some(total) = self.totals.get_mut(ident) {
            *total = total.saturating_sub(n);
            if *total == 0 {
                self.totals.remove(ident);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_connect_and_disconnect() {
        let mut t = ConnectTable::default();
        t.connect(1, 100, "imap/1.2.3.4/a");
        t.connect(1, 100, "imap/1.2.3.4/a");
        t.connect(2, 200, "imap/1.2.3.4/a");
        assert_eq!(t.lookup("imap/1.2.3.4/a"), 3);
        assert!(t.disconnect(1, 100, "imap/1.2.3.4/a"));
        assert_eq!(t.lookup("imap/1.2.3.4/a"), 2);
        // Another connection can't end sessions it does not own.
        assert!(!t.disconnect(2, 100, "imap/1.2.3.4/a"));
        assert_eq!(t.lookup("imap/1.2.3.4/a"), 2);
    }

    #[test]
    fn closing_a_connection_releases_its_sessions_only() {
        let mut t = ConnectTable::default();
        t.connect(1, 100, "imap/ip/a");
        t.connect(1, 100, "pop3/ip/a");
        t.connect(2, 200, "imap/ip/a");
        t.connection_closed(1);
        assert_eq!(t.lookup("imap/ip/a"), 1);
        assert_eq!(t.lookup("pop3/ip/a"), 0);
        assert_eq!(t.dump(), vec![("imap/ip/a".to_owned(), 200, 1)]);
    }

    #[test]
    fn kill_forgets_a_pid_everywhere() {
        let mut t = ConnectTable::default();
        t.connect(1, 100, "imap/ip/a");
        t.connect(2, 100, "imap/ip/a");
        t.connect(2, 300, "imap/ip/a");
        t.kill(100);
        assert_eq!(t.lookup("imap/ip/a"), 1);
    }
}
