//! Authentication for dovecote: the auth-client and auth-master protocols
//! (types and clients other binaries link), and, for the `auth` binary, SASL
//! mechanisms, password schemes and passdb/userdb drivers.
//!
//! Everything here is sans-IO except [`protocol::client_conn`] and
//! [`protocol::master_conn`] (small blocking clients over a Unix socket) and
//! [`db::passwd_file`] (reads its file). The only `unsafe` code is the
//! crypt(3) binding in `scheme::sys_crypt` and the getspnam_r/libpam
//! bindings in [`db::sys`].
#![deny(unsafe_code)]

pub mod db;
pub mod mech;
pub mod protocol;
pub mod scheme;
