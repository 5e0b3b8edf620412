//! The master admin socket, `<base_dir>/master` (mode 0600, root only):
//! Dovecot's master-client protocol as `doveadm` 2.3 speaks it, plus our
//! own `LISTENER-STATUS`. Line based, fields separated by TAB, every
//! request one line, input limited to 1024 bytes.
//!
//! ```text
//! C: VERSION\tmaster-client\t1\t0
//! S: VERSION\tmaster-server\t1\t0
//! C: SERVICE-STATUS
//! S: <one line per service: SERVICE_STATUS_FIELDS>   then an empty line
//! C: PROCESS-STATUS[\t<service>...]
//! S: <one line per process: PROCESS_STATUS_FIELDS>   then an empty line
//! C: LISTENER-STATUS[\t<service>...]
//! S: <one line per listener: LISTENER_STATUS_FIELDS> then an empty line
//! C: STOP\t<service>...
//! S: +            or   -Unknown service: <name>
//! ```
//!
//! `SERVICE-STATUS` rows carry Dovecot's thirteen fields in Dovecot's order,
//! followed by three counters of ours (processes spawned, died abnormally,
//! times throttled since the master started). Times are UNIX seconds.
//! `STOP` makes the master stop monitoring the named services and close
//! their listeners (`doveadm service stop`).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

pub const CLIENT_HANDSHAKE: &str = "VERSION\tmaster-client\t1\t0";
pub const SERVER_HANDSHAKE: &str = "VERSION\tmaster-server\t1\t0";
/// Longest request line the master reads.
pub const MAX_REQUEST: usize = 1024;

pub const SERVICE_STATUS_FIELDS: &[&str] = &[
    "name",
    "process_count",
    "process_avail",
    "process_limit",
    "client_limit",
    "throttle_secs",
    "exit_failure_last",
    "exit_failures_in_sec",
    "last_drop_warning",
    "listen_pending",
    "listening",
    "doveadm_stop",
    "process_total",
    "spawned",
    "died",
    "throttled",
];

pub const PROCESS_STATUS_FIELDS: &[&str] =
    &["name", "pid", "available_count", "total_count", "idle_start", "last_status_update", "last_kill_sent"];

/// `address` is `ip:port` (`[ip]:port` for IPv6) or the socket path as
/// created; `user`/`group` are the owner names; `mode` is octal (`-` for
/// inet); `ssl`/`haproxy` are `y`/`n`.
pub const LISTENER_STATUS_FIELDS: &[&str] =
    &["service", "kind", "name", "address", "user", "group", "mode", "ssl", "haproxy"];

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("net_connect_unix({path}) failed: {source}")]
    Connect { path: String, source: io::Error },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: unexpected handshake {line:?}")]
    Handshake { path: String, line: String },
    #[error("{0}")]
    Refused(String),
}

/// A blocking client for doveadm.
pub struct AdminClient {
    path: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl AdminClient {
    pub fn connect(path: &Path) -> Result<AdminClient, AdminError> {
        let shown = path.display().to_string();
        let stream = UnixStream::connect(path)
            .map_err(|source| AdminError::Connect { path: shown.clone(), source })?;
        let io_err = |source| AdminError::Io { path: shown.clone(), source };
        // As doveadm does: don't hang forever on a stuck master.
        stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut client = AdminClient { path: shown, reader: BufReader::new(stream), writer };
        client.send(CLIENT_HANDSHAKE)?;
        let line = client.read_line()?;
        if line.split('\t').take(2).collect::<Vec<_>>() != ["VERSION", "master-server"] {
            return Err(AdminError::Handshake { path: client.path.clone(), line });
        }
        Ok(client)
    }

    fn send(&mut self, line: &str) -> Result<(), AdminError> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|source| AdminError::Io { path: self.path.clone(), source })
    }

    fn read_line(&mut self) -> Result<String, AdminError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| AdminError::Io { path: self.path.clone(), source })?;
        if n == 0 {
            return Err(AdminError::Io {
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "master closed the connection"),
            });
        }
        Ok(line.trim_end_matches('\n').to_owned())
    }

    /// Sends `command` with `args` and reads rows until the empty line.
    pub fn table(&mut self, command: &str, args: &[String]) -> Result<Vec<Vec<String>>, AdminError> {
        let mut request = command.to_owned();
        for a in args {
            request.push('\t');
            request.push_str(a);
        }
        self.send(&request)?;
        let mut rows = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(rows);
            }
            rows.push(line.split('\t').map(str::to_owned).collect());
        }
    }

    /// `STOP` and the like: one `+` or `-reason` line.
    pub fn command(&mut self, command: &str, args: &[String]) -> Result<(), AdminError> {
        let mut request = command.to_owned();
        for a in args {
            request.push('\t');
            request.push_str(a);
        }
        self.send(&request)?;
        let line = self.read_line()?;
        match line.strip_prefix('-') {
            Some(reason) => Err(AdminError::Refused(reason.to_owned())),
            None => Ok(()),
        }
    }
}
