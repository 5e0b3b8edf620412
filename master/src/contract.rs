//! The contract between the master and every service process (DESIGN §4.1):
//! the fd layout at exec, the environment, the status record, the control
//! commands, the log line format and the per-service limits both sides
//! derive from the same configuration. Anything either side relies on about
//! the other is written down here, once.
//!
//! fd layout when a service's `main` starts:
//!
//! | fd | what | direction |
//! | --- | --- | --- |
//! | 0 | `/dev/null` | — |
//! | 1, 2 | this process's log pipe (write end), lines as in [`LogLine`] | child → master |
//! | 3 | config pipe (read end): [`dovecote_config::wire`] text until EOF | master → child |
//! | 4 | status pipe (write end, shared by the service's processes): [`StatusRecord`]s | child → master |
//! | 5 | control socket (this process's own stream socket): [`ControlCommand`] lines; EOF = master gone | master → child |
//! | 6.. | listeners in config order (unix, fifo, inet as configured), named by `DOVECOTE_LISTENERS` | — |
//! | after the listeners | login, imap/pop3 and `auth` only: a connection to anvil, named by [`ENV_ANVIL_FD`] | both ways |

use std::os::fd::RawFd;

use dovecote_config::{Config, Section};
use thiserror::Error;

pub const FD_NULL: RawFd = 0;
pub const FD_STDOUT_LOG: RawFd = 1;
pub const FD_LOG: RawFd = 2;
pub const FD_CONFIG: RawFd = 3;
pub const FD_STATUS: RawFd = 4;
pub const FD_CONTROL: RawFd = 5;
pub const FD_FIRST_LISTENER: RawFd = 6;

/// `name:kind[:ssl][:haproxy],...`, one entry per listener fd from fd 6 on.
pub const ENV_LISTENERS: &str = "DOVECOTE_LISTENERS";
/// The service name (`imap-login`), as in `service imap-login {}`.
pub const ENV_SERVICE: &str = "DOVECOTE_SERVICE";
/// The master's configuration generation this process was started with;
/// echoed in every [`StatusRecord`].
pub const ENV_GENERATION: &str = "DOVECOTE_GENERATION";
/// Set only for chrooted services: the privilege drop the runtime must do
/// itself right after exec (see [`Restrict`]).
pub const ENV_RESTRICT: &str = "DOVECOTE_RESTRICT";
/// The fd number of the anvil connection the master opened for this
/// process (login services: `anvil`; `auth`: `anvil-auth-penalty`). The
/// sockets are root-only and these processes are restricted before their
/// own code runs, so the master connects on their behalf (dovecote_anvil).
pub const ENV_ANVIL_FD: &str = "DOVECOTE_ANVIL_FD";
/// The master's RLIMIT_CORE soft limit, re-applied after exec because an
/// exec that changes SELinux domain resets rlimits.
pub const ENV_CORE_LIMIT: &str = "DOVECOTE_CORE_LIMIT";

/// Exit codes with the meaning Dovecot gives them (`failures.h`).
pub const EXIT_OUT_OF_MEMORY: i32 = 83;
pub const EXIT_EXEC_FAILED: i32 = 84;
pub const EXIT_FATAL: i32 = 89;

/// Dovecot's wording for the exit codes above, as the master logs them.
pub fn exit_code_meaning(code: i32) -> Option<&'static str> {
    match code {
        80 => Some("Can't open log file"),
        81 => Some("Can't write to log file"),
        82 => Some("Internal logging error"),
        EXIT_OUT_OF_MEMORY => Some("Out of memory"),
        EXIT_EXEC_FAILED => Some("exec() failed"),
        EXIT_FATAL => Some("Fatal failure"),
        _ => None,
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ContractError {
    #[error("invalid {ENV_LISTENERS} entry {entry:?}")]
    ListenerEntry { entry: String },
    #[error("invalid {ENV_RESTRICT} value {value:?}")]
    Restrict { value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    Unix,
    Fifo,
    Inet,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Unix => "unix",
            ListenerKind::Fifo => "fifo",
            ListenerKind::Inet => "inet",
        }
    }

    fn parse(word: &str) -> Option<ListenerKind> {
        match word {
            "unix" => Some(ListenerKind::Unix),
            "fifo" => Some(ListenerKind::Fifo),
            "inet" => Some(ListenerKind::Inet),
            _ => None,
        }
    }
}

/// How a child knows what the listener fd at `FD_FIRST_LISTENER + index` is:
/// for unix and fifo listeners the basename of the path (`login/imap` →
/// `imap`), for inet ones the `inet_listener` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerName {
    pub name: String,
    pub kind: ListenerKind,
    pub ssl: bool,
    pub haproxy: bool,
}

/// Builds the `DOVECOTE_LISTENERS` value. Names never contain `,` or `:`
/// in practice; if one does, it is replaced so the list stays parseable.
pub fn encode_listeners(listeners: &[ListenerName]) -> String {
    let entries: Vec<String> = listeners
        .iter()
        .map(|l| {
            let mut entry = l.name.replace([',', ':'], "_");
            entry.push(':');
            entry.push_str(l.kind.as_str());
            if l.ssl {
                entry.push_str(":ssl");
            }
            if l.haproxy {
                entry.push_str(":haproxy");
            }
            entry
        })
        .collect();
    entries.join(",")
}

pub fn decode_listeners(value: &str) -> Result<Vec<ListenerName>, ContractError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|entry| {
            let bad = || ContractError::ListenerEntry { entry: entry.to_owned() };
            let mut parts = entry.split(':');
            let name = parts.next().ok_or_else(bad)?.to_owned();
            let kind = parts.next().and_then(ListenerKind::parse).ok_or_else(bad)?;
            let mut listener = ListenerName { name, kind, ssl: false, haproxy: false };
            for flag in parts {
                match flag {
                    "ssl" => listener.ssl = true,
                    "haproxy" => listener.haproxy = true,
                    _ => return Err(bad()),
                }
            }
            Ok(listener)
        })
        .collect()
}

/// What a child tells the master about itself, whenever the number of
/// clients it can still take changes. Native-endian, fixed size, so that a
/// write is atomic on the shared pipe (far below PIPE_BUF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRecord {
    pub pid: u32,
    pub available_client_slots: u32,
    pub generation: u32,
}

impl StatusRecord {
    pub const SIZE: usize = 12;

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[0..4].copy_from_slice(&self.pid.to_ne_bytes());
        out[4..8].copy_from_slice(&self.available_client_slots.to_ne_bytes());
        out[8..12].copy_from_slice(&self.generation.to_ne_bytes());
        out
    }

    pub fn from_bytes(bytes: [u8; Self::SIZE]) -> StatusRecord {
        let word = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        StatusRecord { pid: word(0), available_client_slots: word(4), generation: word(8) }
    }
}

/// Commands the master writes to a child's control socket, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlCommand {
    /// Stop accepting, finish the current clients, exit.
    StopAccepting,
    /// End every client now (with the protocol's goodbye) and exit.
    Shutdown,
    /// Disconnect the sessions of this user.
    Kick(String),
}

impl ControlCommand {
    pub fn to_line(&self) -> String {
        match self {
            ControlCommand::StopAccepting => "STOP\n".to_owned(),
            ControlCommand::Shutdown => "SHUTDOWN\n".to_owned(),
            ControlCommand::Kick(user) => format!("KICK\t{user}\n"),
        }
    }

    /// `None` for lines this version does not know (ignored by the child).
    pub fn parse(line: &str) -> Option<ControlCommand> {
        let line = line.trim_end_matches(['\r', '\n']);
        match line.split_once('\t') {
            Some(("KICK", user)) => Some(ControlCommand::Kick(user.to_owned())),
            None if line == "STOP" => Some(ControlCommand::StopAccepting),
            None if line == "SHUTDOWN" => Some(ControlCommand::Shutdown),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
    Panic,
}

impl Level {
    pub fn tag(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
            Level::Panic => "PANIC",
        }
    }

    /// As Dovecot writes the level in a log file (`Info: `).
    pub fn label(self) -> &'static str {
        match self {
            Level::Debug => "Debug: ",
            Level::Info => "Info: ",
            Level::Warning => "Warning: ",
            Level::Error => "Error: ",
            Level::Fatal => "Fatal: ",
            Level::Panic => "Panic: ",
        }
    }

    fn parse(tag: &str) -> Option<Level> {
        [Level::Debug, Level::Info, Level::Warning, Level::Error, Level::Fatal, Level::Panic]
            .into_iter()
            .find(|l| l.tag() == tag)
    }
}

/// One line a child writes to its log pipe:
/// `LEVEL[(user)][<session>]\ttext\n`. With a user the master prefixes
/// `service(user)<pid><session>: `, without one `service: `, as Dovecot does.
/// A line that does not parse is logged as an error, verbatim (e.g. output
/// of a library writing to stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub user: Option<String>,
    pub session: Option<String>,
    pub text: String,
}

/// A single write of at most this many bytes to a pipe is atomic, so lines
/// from one process never interleave with another's. Longer texts are cut.
pub const MAX_LOG_LINE: usize = 4096;

impl LogLine {
    pub fn to_line(&self) -> String {
        let mut out = String::from(self.level.tag());
        if let Some(user) = &self.user {
            out.push('(');
            out.push_str(&clean(user));
            out.push(')');
        }
        if let Some(session) = &self.session {
            out.push('<');
            out.push_str(&clean(session));
            out.push('>');
        }
        out.push('\t');
        out.push_str(&self.text.replace('\n', "\\n"));
        truncate_at_char(&mut out, MAX_LOG_LINE - 1);
        out.push('\n');
        out
    }

    pub fn parse(line: &str) -> LogLine {
        let verbatim = || LogLine { level: Level::Error, user: None, session: None, text: line.to_owned() };
        let Some((head, text)) = line.split_once('\t') else { return verbatim() };
        let tag_end = head.find(['(', '<']).unwrap_or(head.len());
        let Some(level) = Level::parse(&head[..tag_end]) else { return verbatim() };
        let mut rest = &head[tag_end..];
        let mut user = None;
        let mut session = None;
        if let Some(after) = rest.strip_prefix('(') {
            let Some((u, r)) = after.split_once(')') else { return verbatim() };
            user = Some(u.to_owned());
            rest = r;
        }
        if let Some(after) = rest.strip_prefix('<') {
            let Some((s, r)) = after.split_once('>') else { return verbatim() };
            session = Some(s.to_owned());
            rest = r;
        }
        if !rest.is_empty() {
            return verbatim();
        }
        LogLine { level, user, session, text: text.to_owned() }
    }
}

fn clean(field: &str) -> String {
    field.chars().map(|c| if matches!(c, '\t' | '\n' | '(' | ')' | '<' | '>') { '_' } else { c }).collect()
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The privilege drop a chrooted service finishes itself right after exec
/// (see the master's `spawn` module for why it can't happen before exec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restrict {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub no_new_privs: bool,
    pub chroot: String,
}

impl Restrict {
    pub fn encode(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        format!(
            "{}:{}:{}:{}:{}",
            self.uid,
            self.gid,
            groups.join(","),
            u8::from(self.no_new_privs),
            self.chroot
        )
    }

    pub fn decode(value: &str) -> Result<Restrict, ContractError> {
        let bad = || ContractError::Restrict { value: value.to_owned() };
        let mut parts = value.splitn(5, ':');
        let mut next = || parts.next().ok_or_else(bad);
        let uid = next()?.parse().map_err(|_| bad())?;
        let gid = next()?.parse().map_err(|_| bad())?;
        let groups_text = next()?;
        let groups = if groups_text.is_empty() {
            Vec::new()
        } else {
            groups_text.split(',').map(|g| g.parse().map_err(|_| bad())).collect::<Result<_, _>>()?
        };
        let no_new_privs = next()? == "1";
        let chroot = next()?.to_owned();
        Ok(Restrict { uid, gid, groups, no_new_privs, chroot })
    }
}

/// A service's process and client limits after Dovecot's rules for `0`
/// ("use the default_* setting") and for `service_count` capping
/// `client_limit`. Master and runtime both derive them from the config so
/// they agree without passing them separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    pub process_min_avail: u32,
    pub process_limit: u32,
    pub client_limit: u32,
    /// 0 = unlimited.
    pub service_count: u32,
    /// Seconds; `None` = never (`idle_kill = 4294967295`).
    pub idle_kill: Option<u64>,
    /// Bytes; `None` = unlimited (`0`).
    pub vsz_limit: Option<u64>,
}

impl ServiceLimits {
    pub fn of(config: &Config, service: &Section) -> ServiceLimits {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let process_limit = match service.number("process_limit") {
            0 => clamp(config.root.number("default_process_limit")),
            n => clamp(n),
        };
        let service_count = clamp(service.number("service_count"));
        let mut client_limit = match service.number("client_limit") {
            0 => clamp(config.root.number("default_client_limit")),
            n => clamp(n),
        };
        if service_count > 0 && client_limit > service_count {
            client_limit = service_count;
        }
        let idle_kill = match service.number("idle_kill") {
            0 => Some(config.root.number("default_idle_kill")),
            n if n >= u64::from(u32::MAX) => None,
            n => Some(n),
        };
        let vsz_limit = match service.number("vsz_limit") {
            u64::MAX => config.root.number("default_vsz_limit"),
            n => n,
        };
        ServiceLimits {
            process_min_avail: clamp(service.number("process_min_avail")).min(process_limit),
            process_limit: process_limit.max(1),
            client_limit: client_limit.max(1),
            service_count,
            idle_kill,
            vsz_limit: (vsz_limit != 0).then_some(vsz_limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_round_trip() {
        let listeners = vec![
            ListenerName { name: "imap".into(), kind: ListenerKind::Inet, ssl: false, haproxy: false },
            ListenerName { name: "imaps".into(), kind: ListenerKind::Inet, ssl: true, haproxy: true },
            ListenerName { name: "login".into(), kind: ListenerKind::Unix, ssl: false, haproxy: false },
        ];
        let text = encode_listeners(&listeners);
        assert_eq!(text, "imap:inet,imaps:inet:ssl:haproxy,login:unix");
        assert_eq!(decode_listeners(&text).unwrap(), listeners);
        assert!(decode_listeners("x:bogus").is_err());
        assert_eq!(decode_listeners("").unwrap(), vec![]);
    }

    #[test]
    fn status_record_is_twelve_native_bytes() {
        let r = StatusRecord { pid: 1234, available_client_slots: 7, generation: 3 };
        assert_eq!(StatusRecord::from_bytes(r.to_bytes()), r);
    }

    #[test]
    fn log_lines_round_trip_and_garbage_is_an_error() {
        let l = LogLine {
            level: Level::Info,
            user: Some("alice".into()),
            session: Some("abc".into()),
            text: "Logged in".into(),
        };
        assert_eq!(l.to_line(), "INFO(alice)<abc>\tLogged in\n");
        assert_eq!(LogLine::parse("INFO(alice)<abc>\tLogged in"), l);
        let plain = LogLine::parse("WARNING\tdisk full");
        assert_eq!((plain.level, plain.user, plain.text.as_str()), (Level::Warning, None, "disk full"));
        let junk = LogLine::parse("thread 'main' panicked");
        assert_eq!((junk.level, junk.text.as_str()), (Level::Error, "thread 'main' panicked"));
    }

    #[test]
    fn restrict_round_trips_with_colons_in_chroot() {
        let r = Restrict { uid: 5, gid: 6, groups: vec![6, 7], no_new_privs: true, chroot: "/a:b".into() };
        assert_eq!(Restrict::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn control_commands_parse() {
        for c in [ControlCommand::StopAccepting, ControlCommand::Shutdown, ControlCommand::Kick("bob".into())]
        {
            assert_eq!(ControlCommand::parse(&c.to_line()), Some(c));
        }
        assert_eq!(ControlCommand::parse("NOPE"), None);
    }

    #[test]
    fn limits_follow_dovecot_defaults() {
        let config = dovecote_config::parse_str(
            "t.conf",
            "service imap-login {\n  service_count = 1\n}\nservice anvil {\n}\n",
            dovecote_config::LoadOptions::default(),
        )
        .unwrap();
        let login = ServiceLimits::of(&config, config.service("imap-login").unwrap());
        assert_eq!((login.process_limit, login.client_limit, login.service_count), (100, 1, 1));
        assert_eq!(login.idle_kill, Some(60));
        assert_eq!(login.vsz_limit, Some(256 * 1024 * 1024));
        let anvil = ServiceLimits::of(&config, config.service("anvil").unwrap());
        assert_eq!(anvil.idle_kill, None);
    }
}
