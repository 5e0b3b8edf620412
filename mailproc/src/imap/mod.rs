//! IMAP building blocks shared by the post-login `imap` binary and other
//! users of the storage (doveadm fetch/search later): the parsed argument
//! tree and sequence sets ([`args`]). Rendering (ENVELOPE, BODYSTRUCTURE),
//! SEARCH/SORT/THREAD evaluation live in sibling modules.

pub mod args;
pub mod message;
pub mod parser;
