//! dovecote's LMTP side: the RFC 2033 protocol as a sans-IO state machine
//! ([`session`], fed bytes, answering bytes), its command parser
//! ([`command`], [`address`]), the DATA/BDAT body decoding ([`data`]), the
//! trace headers Dovecot 2.3 adds ([`headers`]), and the local delivery
//! backend that looks recipients up in auth-userdb and saves into their
//! mail storage as their uid ([`delivery`]). The `lmtp` and `dovecot-lda`
//! binaries are thin drivers around these. Without the `delivery` feature
//! the crate is the protocol alone (what the fuzz target builds).

pub mod address;
pub mod command;
pub mod data;
pub mod date;
#[cfg(feature = "delivery")]
pub mod delivery;
pub mod headers;
pub mod session;
pub mod settings;

pub use session::{Session, SessionOutput};
pub use settings::LmtpSettings;
