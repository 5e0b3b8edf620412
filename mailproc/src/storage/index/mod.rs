//! Per-mailbox index and change log: the record codec, the pure state they
//! build, and the files that hold them.

pub mod fields;
pub mod record;
pub mod state;
pub mod store;

pub use record::Record;
pub use state::MailboxState;
pub use store::{IndexStore, LoadOutcome};
