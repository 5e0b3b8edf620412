//! anvil: the one process that knows how many sessions each
//! `service/ip/user` has open (for `mail_max_userip_connections`) and how
//! much each client IP has been penalised for failed logins (the auth
//! penalty). The library holds the wire protocol ([`protocol`]), the two
//! in-memory tables the service keeps ([`connections`], [`penalty`]) and
//! the blocking client the other processes link ([`client`]).
//!
//! How clients reach anvil: the listeners `anvil` and `anvil-auth-penalty`
//! are 0600 root sockets under base_dir, as in Dovecot. Dovecot's login and
//! auth processes connect to them while still root, before dropping
//! privileges. Ours are restricted before their `main` runs (auth by the
//! master before exec, login processes right after exec inside the
//! `login/` chroot), so the master connects on their behalf at spawn time
//! and passes the connected socket as an extra fd named by
//! `DOVECOTE_ANVIL_FD` (see `dovecote_master::contract::ENV_ANVIL_FD`):
//! login services get a connection to `anvil`, the `auth` service one to
//! `anvil-auth-penalty`. Nothing else about the sockets changes, and an
//! unprivileged process can still not open a new connection itself. The
//! post-login `imap`/`pop3` processes start as root and connect by path.
//!
//! Session counts belong to the connection that registered them: when a
//! process dies its socket closes and anvil forgets its sessions, so a
//! crashed imap process never leaves a user locked out.

// One audited `unsafe` block: adopting the fd the master passed (client.rs).
#![deny(unsafe_code)]

pub mod client;
pub mod connections;
pub mod penalty;
pub mod protocol;

pub use client::{AnvilClient, AnvilError};
