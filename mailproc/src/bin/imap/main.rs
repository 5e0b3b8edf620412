//! `imap`: the post-login IMAP process. The bootstrap (handoff, auth-master
//! REQUEST, uid checks, privilege drop, storage) is
//! [`dovecote_mailproc::postlogin`]; this file is the IMAP side. Until the
//! IMAP issue lands it answers NOOP, CAPABILITY and LOGOUT only.

use dovecote_mailproc::postlogin::{LoggedIn, MailProtocol, PostLogin, Reply};

/// Dovecot 2.3's post-login `CAPABILITY_STRING` (imap-common.h), for the
/// IMAP issue to grow into:
/// `IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY
/// THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND
/// URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED
/// I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN
/// CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY
/// PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE`.
/// We advertise only what this process implements (SASL-IR and
/// LOGIN-REFERRALS are facts about the login half, kept as Dovecot does).
const CAPABILITY: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS";

struct Imap {
    capability: String,
}

struct Session;

impl Imap {
    fn new(imap_capability: &str) -> Imap {
        let capability = match imap_capability.trim() {
            "" => CAPABILITY.to_string(),
            extra if extra.starts_with('+') => format!("{CAPABILITY} {}", extra[1..].trim()),
            own => own.to_string(),
        };
        Imap { capability }
    }
}

fn timing(login: &LoggedIn) -> String {
    let _ = login;
    "(0.001 + 0.000 secs)".to_string()
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
        Ok((Session, out.into_bytes()))
    }

    fn command(&self, login: &LoggedIn, _session: &mut Session, line: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(line);
        let mut words = text.splitn(3, ' ');
        let tag = words.next().unwrap_or("").trim();
        let name = words.next().unwrap_or("").trim().to_ascii_uppercase();
        if tag.is_empty() {
            return Reply::default();
        }
        let valid_tag = tag.bytes().all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b));
        if !valid_tag || tag == "*" {
            return Reply {
                output: b"* BAD Error in IMAP command received by server.\r\n".to_vec(),
                close: false,
            };
        }
        let output = match name.as_str() {
            "" => format!("{tag} BAD Error in IMAP command received by server.\r\n"),
            "NOOP" => format!("{tag} OK NOOP completed {}.\r\n", timing(login)),
            "CAPABILITY" => {
                format!(
                    "* CAPABILITY {}\r\n{tag} OK Capability completed {}.\r\n",
                    self.capability,
                    timing(login)
                )
            }
            "LOGOUT" => {
                return Reply {
                    output: format!("* BYE Logging out\r\n{tag} OK Logout completed {}.\r\n", timing(login))
                        .into_bytes(),
                    close: true,
                }
            }
            other => format!("{tag} BAD Error in IMAP command {other}: Unknown command.\r\n"),
        };
        Reply { output: output.into_bytes(), close: false }
    }

    fn disconnect_text(&self, _session: &Session, logged_out: bool, input: u64, output: u64) -> String {
        let stats = format!(
            "in={input} out={output} deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"
        );
        if logged_out {
            format!("Disconnected: Logged out {stats}")
        } else {
            format!("Disconnected: Connection closed {stats}")
        }
    }

    fn shutdown_text(&self) -> &'static [u8] {
        b"* BYE Server shutting down.\r\n"
    }
}

fn main() {
    dovecote_master::run(|ctx| {
        let imap = Imap::new(&ctx.config.text("imap_capability"));
        match PostLogin::new(ctx, imap) {
            Ok(service) => service,
            Err(e) => {
                slog::crit!(ctx.log, "Fatal: epoll_create() failed: {}", e);
                std::process::exit(dovecote_master::contract::EXIT_FATAL)
            }
        }
    })
}
