//! `imap`: the post-login IMAP process. The bootstrap (handoff, auth-master
//! REQUEST, uid checks, privilege drop, storage) is
//! [`dovecote_mailproc::postlogin`]; this binary is the IMAP side: input
//! through the streaming parser ([`dovecote_mailproc::imap::parser`]),
//! dispatch ([`dispatch`]), one module per command family, untagged
//! updates and IDLE ([`session`]).

mod catenate;
mod cmd_append;
mod cmd_fetch;
mod cmd_mailbox;
mod cmd_misc;
mod cmd_search;
mod cmd_select;
mod cmd_sort;
mod cmd_store;
mod dispatch;
mod esearch;
mod response;
mod session;

use std::time::{Duration, Instant};

use dovecote_config::model::ConnectionInfo;
use dovecote_config::var_expand::{self, Variable};
use dovecote_config::{Config, SectionKind};
use dovecote_mailproc::imap::parser::Event;
use dovecote_mailproc::postlogin::deflate;
use dovecote_mailproc::postlogin::{Flow, LoggedIn, MailProtocol, PostLogin, Reply, OUTPUT_LIMIT};

use session::{Session, SyncKind};

/// Dovecot 2.3's post-login `CAPABILITY_STRING` (imap-common.h), the order
/// we advertise in:
/// `IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY
/// THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND
/// URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED
/// I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN
/// CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY
/// PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY`; SPECIAL-USE is added
/// after it (and after `imap_capability`) only when some configured mailbox
/// has a `special_use`, as Dovecot's imap does.
const DOVECOT_CAPABILITY: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
     THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT \
     CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES \
     WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE \
     SAVEDATE LITERAL+ NOTIFY";

/// What this process implements (SASL-IR and LOGIN-REFERRALS are facts
/// about the login half, kept as Dovecot does).
const IMPLEMENTED: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
     THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN \
     NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE \
     SAVEDATE LITERAL+";

/// `imap_idle_notify_interval` default: `* OK Still here` while idling.
const IDLE_NOTIFY: Duration = Duration::from_secs(120);

/// The capability string: Dovecot's order, only what is implemented.
fn default_capability() -> String {
    let have: Vec<&str> = IMPLEMENTED.split_whitespace().collect();
    DOVECOT_CAPABILITY.split_whitespace().filter(|c| have.contains(c)).collect::<Vec<_>>().join(" ")
}

/// Whether any namespace's `mailbox { special_use = … }` is set: only
/// then does Dovecot advertise SPECIAL-USE.
fn has_special_use_mailboxes(config: &Config) -> bool {
    config.root.children_of(SectionKind::Namespace).any(|ns| {
        ns.children_of(SectionKind::Mailbox).any(|mailbox| !mailbox.text("special_use").trim().is_empty())
    })
}

pub struct Imap {
    capability: String,
    max_line: usize,
    /// `imap_logout_format`: the statistics on the disconnect log line.
    logout_format: String,
    /// `mail_plugins` has `imap_zlib`: COMPRESS=DEFLATE at this level.
    pub compress: Option<u32>,
}

impl Imap {
    fn new(config: &Config, max_line: usize) -> Imap {
        let base = default_capability();
        let capability = match config.text("imap_capability").trim() {
            "" => base,
            extra if extra.starts_with('+') => format!("{base} {}", extra[1..].trim()),
            own => own.to_string(),
        };
        let mut imap =
            Imap { capability, max_line, logout_format: config.text("imap_logout_format"), compress: None };
        if has_special_use_mailboxes(config) {
            imap.capability.push_str(" SPECIAL-USE");
        }
        // As Dovecot: COMPRESS exists only with the imap_zlib plugin, which
        // appends its capability to whatever the string is.
        if config.text("mail_plugins").split_whitespace().any(|p| p == "imap_zlib") {
            let level = config
                .plugin("imap_zlib_compress_level")
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|l| (1..=9).contains(l))
                .unwrap_or(deflate::DEFAULT_LEVEL);
            imap.compress = Some(level);
            imap.capability.push_str(" COMPRESS=DEFLATE");
        }
        imap
    }

    /// `imap_logout_format` expanded with Dovecot's variables.
    fn logout_stats(&self, login: &LoggedIn, session: &Session, input: u64, output: u64) -> String {
        let s = &session.stats;
        let vars = [
            Variable::new('i', "input", input.to_string()),
            Variable::new('o', "output", output.to_string()),
            Variable::long("session", login.record.session_id.as_str()),
            Variable::long("fetch_hdr_count", s.hdr_count.to_string()),
            Variable::long("fetch_hdr_bytes", s.hdr_bytes.to_string()),
            Variable::long("fetch_body_count", s.body_count.to_string()),
            Variable::long("fetch_body_bytes", s.body_bytes.to_string()),
            Variable::long("deleted", s.deleted.to_string()),
            Variable::long("expunged", s.expunged.to_string()),
            Variable::long("trashed", s.trashed.to_string()),
            Variable::long("appended", s.appended.to_string()),
        ];
        match var_expand::expand(&self.logout_format, &vars) {
            Ok(text) => text,
            Err(e) => e.partial,
        }
    }
}

/// Runs one parsed event; `Some(flow)` ends the input loop.
fn handle_event(
    imap: &Imap,
    login: &LoggedIn,
    session: &mut Session,
    event: Event,
    out: &mut Vec<u8>,
) -> Option<Flow> {
    let started = Instant::now();
    match event {
        Event::Continue => out.extend_from_slice(b"+ OK\r\n"),
        Event::Bad { tag, text } => {
            out.extend_from_slice(format!("{tag} BAD {text} {}.\r\n", response::timing(started)).as_bytes());
        }
        Event::Fatal(text) => {
            out.extend_from_slice(format!("* BYE {text}\r\n").as_bytes());
            session.close_reason = Some(text);
            return Some(Flow::Close);
        }
        Event::Command(cmd) => {
            let flow = dispatch::run(imap, login, session, cmd, out);
            if flow != Flow::Continue {
                return Some(flow);
            }
        }
    }
    None
}

/// While idling, input is raw lines: `DONE` ends the IDLE.
fn idle_input(session: &mut Session, input: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
    let Some(pos) = memchr::memchr(b'\n', input) else {
        if input.len() > 1024 {
            input.clear();
        }
        return false;
    };
    let line: Vec<u8> = input.drain(..=pos).collect();
    let Some(idle) = session.idle.take() else { return true };
    let text = String::from_utf8_lossy(&line);
    session.sync(SyncKind::Full, out);
    if text.trim().eq_ignore_ascii_case("DONE") {
        out.extend_from_slice(
            format!("{} OK Idle completed {}.\r\n", idle.tag, response::timing(idle.started)).as_bytes(),
        );
    } else {
        out.extend_from_slice(format!("{} BAD Expected DONE.\r\n", idle.tag).as_bytes());
    }
    session.last_command = Some(("IDLE".into(), Instant::now()));
    true
}

impl MailProtocol for Imap {
    type Session = Session;
    const SERVICE: &'static str = "imap";

    fn start(&self, login: &LoggedIn) -> Result<(Session, Vec<u8>), String> {
        // Prefix: `0` + tag (send the capability in the tagged OK) or
        // `1` + tag (the client ignores response codes: untagged line).
        let prefix = &login.record.prefix;
        let (mode, tag) = match prefix.split_first() {
            Some((m, t)) => (*m, String::from_utf8_lossy(t).into_owned()),
            None => (b'0', String::new()),
        };
        let mut out = String::new();
        if !tag.is_empty() {
            if mode == b'1' {
                out.push_str(&format!("* CAPABILITY {}\r\n{tag} OK Logged in\r\n", self.capability));
            } else {
                out.push_str(&format!("{tag} OK [CAPABILITY {}] Logged in\r\n", self.capability));
            }
        } else {
            // imap-master / preauth: untagged greeting.
            out.push_str(&format!(
                "* PREAUTH [CAPABILITY {}] Logged in as {}\r\n",
                self.capability, login.name
            ));
        }
        Ok((Session::new(self.max_line), out.into_bytes()))
    }

    fn command(&self, login: &LoggedIn, session: &mut Session, line: &[u8]) -> Reply {
        // Not used: IMAP overrides `input`. Kept correct for completeness.
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n");
        let mut output = Vec::new();
        let flow = self.input(login, session, &mut input, &mut output);
        Reply { output, close: flow != Flow::Continue }
    }

    fn input(
        &self,
        login: &LoggedIn,
        session: &mut Session,
        input: &mut Vec<u8>,
        output: &mut Vec<u8>,
    ) -> Flow {
        loop {
            if output.len() > OUTPUT_LIMIT {
                return Flow::Continue;
            }
            if session.idle.is_some() {
                if !idle_input(session, input, output) {
                    return Flow::Continue;
                }
                continue;
            }
            let Some(event) = session.parser.next(input) else { return Flow::Continue };
            if let Some(flow) = handle_event(self, login, session, event, output) {
                return flow;
            }
        }
    }

    fn deadline(&self, session: &Session) -> Option<Instant> {
        session.idle.as_ref().map(|i| i.next_check)
    }

    fn on_timer(&self, _login: &LoggedIn, session: &mut Session, output: &mut Vec<u8>) -> Flow {
        session.sync(SyncKind::Full, output);
        if let Some(idle) = session.idle.as_mut() {
            let now = Instant::now();
            if now.duration_since(idle.last_notify) >= IDLE_NOTIFY {
                output.extend_from_slice(b"* OK Still here\r\n");
                idle.last_notify = now;
            }
            idle.next_check = now + session::IDLE_CHECK;
        }
        Flow::Continue
    }

    fn disconnect_text(
        &self,
        login: &LoggedIn,
        session: &Session,
        logged_out: bool,
        input: u64,
        output: u64,
    ) -> String {
        let stats = self.logout_stats(login, session, input, output);
        if logged_out {
            return format!("Disconnected: Logged out {stats}");
        }
        if let Some(reason) = &session.close_reason {
            return format!("Disconnected: {reason} {stats}");
        }
        let why = if session.idle.is_some() {
            "IDLE running".to_string()
        } else if session.parser.in_command() {
            "while reading a command".to_string()
        } else {
            match &session.last_command {
                Some((name, at)) => {
                    let ms = at.elapsed().as_millis();
                    format!("{name} finished {}.{:03} secs ago", ms / 1000, ms % 1000)
                }
                None => "No commands sent".to_string(),
            }
        };
        format!("Disconnected: Connection closed ({why}) {stats}")
    }

    fn shutdown_text(&self) -> &'static [u8] {
        b"* BYE Server shutting down.\r\n"
    }
}

fn main() {
    dovecote_master::run(|ctx| {
        // `protocol imap { }` settings apply to this whole process.
        let imap_config = ctx
            .config
            .for_connection(&ConnectionInfo { protocol: Some("imap".into()), ..Default::default() });
        let max_line = imap_config
            .value("imap_max_line_length")
            .and_then(|v| v.as_u64())
            .filter(|n| *n > 0)
            .map_or(64 * 1024, |n| n as usize);
        let imap = Imap::new(&imap_config, max_line);
        match PostLogin::new(ctx, imap) {
            Ok(service) => service,
            Err(e) => {
                slog::crit!(ctx.log, "Fatal: epoll_create() failed: {}", e);
                std::process::exit(dovecote_master::contract::EXIT_FATAL)
            }
        }
    })
}
