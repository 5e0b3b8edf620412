//! `anvil`: the service process (see `dovecote_anvil`). Serves both
//! listeners (`anvil`, `anvil-auth-penalty`) with the same protocol; the
//! connection tables live here, the protocol and tables in the library.

use std::collections::HashSet;
use std::io::{self, Read};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dovecote_anvil::connections::{ConnId, ConnectTable};
use dovecote_anvil::penalty::PenaltyTable;
use dovecote_anvil::protocol::{is_handshake, Command, MAX_LINE};
use dovecote_master::runtime::{Client, Clients, Context, Progress, Service};

/// How often expired penalty records are swept.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

struct Session {
    conn: ConnId,
    input: Vec<u8>,
    handshaken: bool,
}

struct Anvil {
    log: slog::Logger,
    connections: ConnectTable,
    penalty: PenaltyTable,
    /// Connections with a session table entry, by runtime client id, to
    /// release sessions of clients the runtime dropped by itself.
    live: HashSet<ConnId>,
    next_sweep: Instant,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Anvil {
    fn new(ctx: &Context) -> Anvil {
        if std::env::var_os("ANVIL_RESTARTED").is_some() {
            slog::warn!(ctx.log, "Anvil restarted: connection counts start from zero");
        }
        Anvil {
            log: ctx.log.clone(),
            connections: ConnectTable::default(),
            penalty: PenaltyTable::default(),
            live: HashSet::new(),
            next_sweep: Instant::now() + SWEEP_INTERVAL,
        }
    }

    /// Runs one line; `Err` closes the connection after logging.
    fn line(&mut self, client: &mut Client, session: &mut Session, line: &str) -> Result<(), String> {
        if !session.handshaken {
            if !is_handshake(line) {
                return Err(
                    "Anvil client not compatible with this server (mixed old and new binaries?)".into()
                );
            }
            session.handshaken = true;
            return Ok(());
        }
        let command = Command::parse(line).map_err(|e| e.to_string())?;
        let now = unix_now();
        match command {
            Command::Connect { pid, ident } => self.connections.connect(session.conn, pid, &ident),
            Command::Disconnect { pid, ident } => {
                if !self.connections.disconnect(session.conn, pid, &ident) {
                    slog::error!(self.log, "DISCONNECT: pid {} ident {} not found", pid, ident);
                }
            }
            Command::Kill { pid } => self.connections.kill(pid),
            Command::Lookup { ident } => {
                client.send(format!("{}\n", self.connections.lookup(&ident)).as_bytes());
            }
            Command::ConnectDump => {
                let mut out = String::new();
                for (ident, pid, count) in self.connections.dump() {
                    out.push_str(&format!(
                        "{}\t{pid}\t{count}\n",
                        dovecote_anvil::protocol::tab_escape(&ident)
                    ));
                }
                out.push('\n');
                client.send(out.as_bytes());
            }
            Command::PenaltyGet { ident } => {
                let (penalty, last) = self.penalty.get(&ident, now);
                client.send(format!("{penalty} {last}\n").as_bytes());
            }
            Command::PenaltyInc { ident, checksum, value } => self.penalty.inc(&ident, checksum, value, now),
            Command::PenaltySetExpireSecs { secs } => self.penalty.set_expire_secs(u64::from(secs)),
            Command::PenaltyDump => {
                let mut out = String::new();
                for (ident, penalty, last, update) in self.penalty.dump(now) {
                    out.push_str(&format!(
                        "{}\t{penalty}\t{last}\t{update}\n",
                        dovecote_anvil::protocol::tab_escape(&ident)
                    ));
                }
                out.push('\n');
                client.send(out.as_bytes());
            }
        }
        Ok(())
    }

    fn closed(&mut self, session: &Session) {
        self.live.remove(&session.conn);
        self.connections.connection_closed(session.conn);
    }
}

impl Service for Anvil {
    type Session = Session;

    fn connected(&mut self, client: &mut Client) -> Option<Session> {
        let conn = client.id();
        self.live.insert(conn);
        Some(Session { conn, input: Vec::new(), handshaken: false })
    }

    fn readable(&mut self, client: &mut Client, session: &mut Session) -> Progress {
        let mut buf = [0u8; 8192];
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed(session);
                    return Progress::Close;
                }
                Ok(n) => session.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed(session);
                    return Progress::Close;
                }
            }
        }
        while let Some(pos) = session.input.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = session.input.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw[..pos]).into_owned();
            if let Err(e) = self.line(client, session, &line) {
                slog::error!(self.log, "{}", e);
                self.closed(session);
                return Progress::Close;
            }
        }
        if session.input.len() > MAX_LINE {
            slog::error!(self.log, "Anvil client sent an over-long line");
            self.closed(session);
            return Progress::Close;
        }
        Progress::Continue
    }

    fn shutting_down(&mut self, _client: &mut Client, session: &mut Session) {
        self.closed(session);
    }

    fn next_deadline(&self) -> Option<Instant> {
        Some(self.next_sweep)
    }

    fn tick(&mut self, clients: &mut Clients<'_, Session>) {
        // A client the runtime dropped on its own (write error) never
        // reached `closed`: release its sessions here.
        let gone: Vec<ConnId> = self.live.iter().copied().filter(|id| !clients.contains(*id)).collect();
        for conn in gone {
            self.live.remove(&conn);
            self.connections.connection_closed(conn);
        }
        let now = Instant::now();
        if now >= self.next_sweep {
            self.penalty.expire(unix_now());
            self.next_sweep = now + SWEEP_INTERVAL;
        }
    }
}

fn main() {
    dovecote_master::runtime::run(Anvil::new)
}
