//! The master's log output: its own messages (`master: `) and the lines its
//! children write to their log pipes, prefixed as Dovecot prefixes them
//! (`imap-login: `, `imap(user)<pid><session>: `), stamped with
//! `log_timestamp`, and routed by level to `log_path` / `info_log_path` /
//! `debug_log_path`, to syslog (`syslog_facility`), or to stderr when a
//! path is `/dev/stderr` (journald under systemd).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{SystemTime, UNIX_EPOCH};

use dovecote_config::Config;
use dovecote_master::contract::{Level, LogLine};
use dovecote_master::sys;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("Can't open log file {path}: {source}")]
    Open { path: String, source: io::Error },
}

enum Sink {
    File(File),
    Stderr,
    Syslog(Option<UnixDatagram>),
}

impl Sink {
    fn open(path: &str) -> Result<Sink, LogError> {
        match path {
            "syslog" => {
                let socket = UnixDatagram::unbound().ok().filter(|s| s.connect("/dev/log").is_ok());
                Ok(Sink::Syslog(socket))
            }
            // The descriptor itself: under systemd it is a socket, which
            // open("/dev/stderr") refuses.
            "/dev/stderr" | "" => Ok(Sink::Stderr),
            path => OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map(Sink::File)
                .map_err(|source| LogError::Open { path: path.to_owned(), source }),
        }
    }
}

pub struct MasterLog {
    error: Sink,
    info: Option<Sink>,
    debug: Option<Sink>,
    timestamp: String,
    ident: String,
    facility: u8,
}

fn facility_code(name: &str) -> u8 {
    match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => 2,
    }
}

impl MasterLog {
    pub fn open(config: &Config) -> Result<MasterLog, LogError> {
        let log_path = config.text("log_path");
        let info_path = config.text("info_log_path");
        let debug_path = config.text("debug_log_path");
        let error = Sink::open(&log_path)?;
        let info =
            if info_path.is_empty() || info_path == log_path { None } else { Some(Sink::open(&info_path)?) };
        let effective_info = if info_path.is_empty() { log_path.clone() } else { info_path.clone() };
        let debug = if debug_path.is_empty() || debug_path == effective_info {
            None
        } else {
            Some(Sink::open(&debug_path)?)
        };
        Ok(MasterLog {
            error,
            info,
            debug,
            timestamp: config.text("log_timestamp"),
            ident: config.text("instance_name"),
            facility: facility_code(&config.text("syslog_facility")),
        })
    }

    pub fn master(&mut self, level: Level, text: &str) {
        self.write("master: ", level, text);
    }

    /// A line a child wrote, with Dovecot's prefix for it.
    pub fn child(&mut self, service: &str, pid: u32, line: &LogLine) {
        let prefix = match &line.user {
            Some(user) => {
                let session = line.session.as_deref().map(|s| format!("<{s}>")).unwrap_or_default();
                format!("{service}({user})<{pid}>{session}: ")
            }
            None => format!("{service}: "),
        };
        self.write(&prefix, line.level, &line.text);
    }

    pub fn write(&mut self, prefix: &str, level: Level, text: &str) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let info_sink = self.info.as_mut();
        let sink = match level {
            Level::Debug => match (self.debug.as_mut(), info_sink) {
                (Some(d), _) => d,
                (None, Some(i)) => i,
                (None, None) => &mut self.error,
            },
            Level::Info => match info_sink {
                Some(i) => i,
                None => &mut self.error,
            },
            _ => &mut self.error,
        };
        match sink {
            Sink::Syslog(socket) => {
                let severity = match level {
                    Level::Debug => 7,
                    Level::Info => 6,
                    Level::Warning => 4,
                    Level::Error => 3,
                    Level::Fatal | Level::Panic => 2,
                };
                let label = if level == Level::Info { "" } else { level.label() };
                let pri = u32::from(self.facility) * 8 + severity;
                let stamp = sys::format_local_time("%b %e %H:%M:%S", now);
                let msg =
                    format!("<{pri}>{stamp} {}[{}]: {prefix}{label}{text}", self.ident, std::process::id());
                let sent = socket.as_ref().is_some_and(|s| s.send(msg.as_bytes()).is_ok());
                if !sent {
                    let _ = writeln!(io::stderr(), "{prefix}{}{text}", level.label());
                }
            }
            Sink::Stderr => {
                let stamp = if self.timestamp.is_empty() {
                    String::new()
                } else {
                    sys::format_local_time(&self.timestamp, now)
                };
                let _ =
                    io::stderr().write_all(format!("{stamp}{prefix}{}{text}\n", level.label()).as_bytes());
            }
            Sink::File(f) => {
                let stamp = if self.timestamp.is_empty() {
                    String::new()
                } else {
                    sys::format_local_time(&self.timestamp, now)
                };
                let _ = f.write_all(format!("{stamp}{prefix}{}{text}\n", level.label()).as_bytes());
            }
        }
    }
}
