//! Mail storage for dovecote: users, namespaces, mailboxes and messages on
//! sdbox, Maildir and mbox, with self-healing indexes and the change log that
//! CONDSTORE/QRESYNC and replication read.

pub mod calendar;
pub mod imap;
pub mod pop3;
pub mod postlogin;
pub mod storage;
