//! Authentication for dovecote: the auth-client and auth-master protocols
//! (types and clients other binaries link), and, for the `auth` binary, SASL
//! mechanisms, password schemes and passdb/userdb drivers.
#![forbid(unsafe_code)]
