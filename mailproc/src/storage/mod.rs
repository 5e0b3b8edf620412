//! The storage model of shared/DESIGN.md §4.4: users → namespaces →
//! mailboxes → messages, with GUIDs, UIDs, modseqs and an append-only
//! change log with tombstones; Maildir, sdbox and mbox on disk.
//!
//! Entry points: [`User`] (from the configuration or a `mail_location`),
//! [`Mailbox`] (an open mailbox of one session).

pub mod backend;
pub mod crc;
pub mod error;
pub mod fsutil;
pub mod index;
pub mod listlog;
pub mod location;
pub mod mailbox;
pub mod maildir;
pub mod mbox;
pub mod mime;
pub mod modseq;
pub mod mutf7;
pub mod namespace;
mod parallel;
pub mod pattern;
pub mod sdbox;
pub mod subscriptions;
pub mod types;
pub mod user;

use std::sync::Mutex;

pub use error::{Result, StorageError};
pub use listlog::{ListChange, ListChangeKind};
pub use location::{Format, Layout, MailLocation};
pub use mailbox::Mailbox;
pub use mbox::lock::{LockMethod, MboxSettings};
pub use namespace::{AutoMailbox, MailboxSettings, Namespace};
pub use types::*;
pub use user::{FsyncMode, ListEntry, ListOptions, StorageSettings, User};

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Logs a warning (stderr, which the master turns into a log line) and
/// keeps it for [`take_warnings`].
pub fn warn(message: &str) {
    // The service log pipe's line format (`LEVEL\ttext`): the master logs
    // it as `service: Warning: text`, not as a stray error line.
    eprintln!("WARNING\t{message}");
    if let Ok(mut w) = WARNINGS.lock() {
        w.push(message.to_string());
    }
}

/// Warnings logged so far by this process (not drained).
pub fn warnings() -> Vec<String> {
    WARNINGS.lock().map(|w| w.clone()).unwrap_or_default()
}

/// Warnings logged so far by this process (drained).
pub fn take_warnings() -> Vec<String> {
    WARNINGS.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default()
}
