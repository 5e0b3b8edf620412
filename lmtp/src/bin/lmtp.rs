//! `lmtp`: the LMTP delivery service. The protocol is
//! [`dovecote_lmtp::Session`] (sans-IO); this driver moves bytes between
//! the runtime's client streams and the session, wraps them in TLS
//! (STARTTLS, or LMTPS on `ssl = yes` listeners) with the login crate's
//! [`TlsLayer`], and delivers through [`LocalDelivery`]. One process
//! serves its clients one event at a time; deliveries block the loop for
//! the length of a save, as in Dovecot (`client_limit = 1` by default).

use std::io::{self, Read};
use std::sync::Arc;

use dovecote_lmtp::delivery::LocalDelivery;
use dovecote_lmtp::session::{new_session_id, LogEvent, LogLevel};
use dovecote_lmtp::{LmtpSettings, Session, SessionOutput};
use dovecote_login::proxy::TlsLayer;
use dovecote_login::tls::build_server_config;
use dovecote_master::runtime::{Client, Context, Progress, Service};
use rustls::ServerConfig;

struct Lmtp {
    settings: LmtpSettings,
    backend: LocalDelivery,
    tls: Option<Arc<ServerConfig>>,
    log: slog::Logger,
}

struct Conn {
    session: Session,
    tls: Option<TlsLayer>,
    /// `127.0.0.1` or `local`, for the log.
    peer: String,
}

impl Lmtp {
    fn new(ctx: &Context) -> Lmtp {
        let mut settings = LmtpSettings::from_config(&ctx.config);
        let view = LmtpSettings::lmtp_view(&ctx.config);
        let tls = if view.text("ssl") == "no" {
            None
        } else {
            match build_server_config(&ctx.config, "lmtp") {
                Ok(built) => {
                    for notice in &built.notices {
                        slog::info!(ctx.log, "{}", notice);
                    }
                    Some(built.config)
                }
                Err(e) => {
                    slog::error!(ctx.log, "TLS disabled: {}", e);
                    None
                }
            }
        };
        settings.starttls = tls.is_some();
        let auth_path = std::path::PathBuf::from(ctx.config.text("base_dir")).join("auth-userdb");
        Lmtp {
            settings,
            backend: LocalDelivery::new(&ctx.config, auth_path, "lmtp"),
            tls,
            log: ctx.log.clone(),
        }
    }

    fn log(&self, events: &[LogEvent]) {
        for e in events {
            let user = e.user.clone().unwrap_or_default();
            let session = e.session.clone().unwrap_or_default();
            match e.level {
                LogLevel::Info => slog::info!(self.log, "{}", e.text; "user" => user, "session" => session),
                LogLevel::Error => slog::error!(self.log, "{}", e.text; "user" => user, "session" => session),
            }
        }
    }

    /// Sends session output (through TLS when active); starts TLS if asked.
    fn send(&self, client: &mut Client, conn: &mut Conn, out: &SessionOutput) {
        write_out(client, conn, &out.reply);
        if out.start_tls {
            match self.tls.clone().map(TlsLayer::new) {
                Some(Ok(layer)) => {
                    conn.tls = Some(layer);
                    conn.session.tls_started();
                }
                _ => slog::error!(self.log, "STARTTLS: TLS setup failed"),
            }
        }
    }
}

fn write_out(client: &mut Client, conn: &mut Conn, data: &[u8]) {
    match conn.tls.as_mut() {
        Some(tls) => {
            if !data.is_empty() {
                tls.write_plaintext(data);
            }
            let cipher = tls.take_output();
            if !cipher.is_empty() {
                client.send(&cipher);
            }
        }
        None if !data.is_empty() => client.send(data),
        None => {}
    }
}

impl Service for Lmtp {
    type Session = Conn;

    fn connected(&mut self, client: &mut Client) -> Option<Conn> {
        let remote_ip = client.remote.map(|a| a.ip());
        let peer = remote_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "local".to_string());
        let implicit_tls = client.listener.ssl;
        let tls = match (implicit_tls, &self.tls) {
            (false, _) => None,
            (true, Some(cfg)) => match TlsLayer::new(cfg.clone()) {
                Ok(l) => Some(l),
                Err(e) => {
                    slog::error!(self.log, "TLS setup failed: {}", e);
                    return None;
                }
            },
            (true, None) => {
                slog::error!(self.log, "{}: ssl listener but TLS is not configured", client.listener.name);
                return None;
            }
        };
        slog::info!(self.log, "Connect from {}", peer);
        let session = Session::new(self.settings.clone(), new_session_id(), remote_ip, implicit_tls);
        let greeting = session.greeting();
        let mut conn = Conn { session, tls, peer };
        write_out(client, &mut conn, &greeting);
        Some(conn)
    }

    fn readable(&mut self, client: &mut Client, conn: &mut Conn) -> Progress {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client.stream.read(&mut buf) {
                Ok(0) => {
                    slog::info!(
                        self.log,
                        "Disconnect from {}: Connection closed (state={})",
                        conn.peer,
                        conn.session.state_name()
                    );
                    return Progress::Close;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Continue,
                Err(e) => {
                    slog::info!(
                        self.log,
                        "Disconnect from {}: Connection closed: {} (state={})",
                        conn.peer,
                        e,
                        conn.session.state_name()
                    );
                    return Progress::Close;
                }
            };
            let plaintext = match conn.tls.as_mut() {
                Some(tls) => {
                    let result = tls.input(&buf[..n]);
                    let handshake = tls.take_output();
                    if !handshake.is_empty() {
                        client.send(&handshake);
                    }
                    if let Some(err) = result.error {
                        slog::info!(self.log, "Disconnect from {}: TLS error: {}", conn.peer, err);
                        return Progress::Close;
                    }
                    if result.closed && result.plaintext.is_empty() {
                        slog::info!(
                            self.log,
                            "Disconnect from {}: Connection closed (state={})",
                            conn.peer,
                            conn.session.state_name()
                        );
                        return Progress::Close;
                    }
                    result.plaintext
                }
                None => buf[..n].to_vec(),
            };
            if plaintext.is_empty() {
                continue;
            }
            let out = conn.session.input(&plaintext, &mut self.backend);
            self.log(&out.logs);
            self.send(client, conn, &out);
            if out.close {
                slog::info!(
                    self.log,
                    "Disconnect from {}: Logged out (state={})",
                    conn.peer,
                    conn.session.state_name()
                );
                if let Some(tls) = conn.tls.as_mut() {
                    tls.send_close_notify();
                }
                write_out(client, conn, &[]);
                return Progress::Close;
            }
        }
    }

    fn shutting_down(&mut self, client: &mut Client, conn: &mut Conn) {
        write_out(client, conn, b"421 4.3.2 Server shutting down\r\n");
    }
}

fn main() {
    dovecote_master::run(Lmtp::new)
}
