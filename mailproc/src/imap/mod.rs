//! IMAP building blocks shared by the post-login `imap` binary and other
//! users of the storage (doveadm fetch/search later): the parsed argument
//! tree and sequence sets ([`args`]), the message view SEARCH/SORT/THREAD
//! evaluate ([`message`]), and the renderers and evaluators that must match
//! Dovecot byte for byte: ENVELOPE ([`envelope`]), BODY/BODYSTRUCTURE
//! ([`bodystructure`]), SEARCH ([`search`]), SORT ([`sort`]), THREAD
//! ([`thread`]) with their helpers (RFC 822 tokens, addresses, MIME parts,
//! IMAP quoting, charsets, base subjects).

pub mod address;
pub mod args;
pub mod binary;
pub mod bodystructure;
pub mod charset;
pub mod date;
pub mod envelope;
pub mod header;
pub mod message;
pub mod parser;
pub mod parts;
pub mod quote;
pub mod rfc822;
pub mod search;
pub mod snippet;
pub mod sort;
pub mod subject;
pub mod text;
pub mod thread;
