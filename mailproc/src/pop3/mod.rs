//! POP3 after login (RFC 1939, RFC 2449 CAPA) as Dovecot 2.3 speaks it:
//! the command-line grammar ([`command`]), the sans-I/O session state
//! machine over the storage ([`session`], [`maildrop`]), RETR/TOP output
//! encoding ([`fetch`]), UIDLs ([`uidl`]), the `pop3_*` settings
//! ([`settings`]) and `pop3_lock_session` ([`lock`]). The `pop3` binary
//! glues these to the post-login bootstrap.

pub mod command;
pub mod fetch;
pub mod fuzzing;
pub mod lock;
pub mod maildrop;
pub mod memory;
pub mod session;
pub mod settings;
pub mod uidl;

pub use maildrop::{MailboxDrop, Maildrop};
pub use session::{Output, Session};
pub use settings::Pop3Settings;
