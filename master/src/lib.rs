//! dovecote's master↔service contract and the service runtime.
//!
//! * [`contract`]: fd layout, environment, status records, control
//!   commands, log line format, effective service limits — what the master
//!   (`dovecot`) and every service process agree on (DESIGN §4.1).
//! * [`runtime`]: what a service binary's `main` calls; it reads the
//!   config pipe, adopts listeners, runs the accept loop and talks to the
//!   master.
//! * [`logging`]: the slog drain that writes to the log pipe.
//! * [`admin`]: the master admin socket protocol (`doveadm process status`).
//! * [`sys`]: the only place with `unsafe` (fork, fd adoption, SCM_RIGHTS,
//!   strftime, process title).
#![deny(unsafe_code)]

pub mod admin;
pub mod contract;
pub mod logging;
pub mod privileges;
pub mod runtime;
pub mod sys;

pub use runtime::{run, Client, Clients, Context, Progress, Service, Stream};
