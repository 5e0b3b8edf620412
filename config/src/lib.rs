//! dovecote's configuration: the dovecot.conf language of Dovecot 2.3, the
//! settings model with 2.3's defaults, `%` variable expansion, and the
//! printing behind `doveconf`.
//!
//! Reading goes `source` (files, includes, comments, continuations) →
//! `syntax` (one line, pest grammar) → `parser` (sections, filters, typed
//! values) → [`Config`]. [`print`] turns a [`Config`] back into text exactly
//! as `doveconf -n`/`-a` would.
#![forbid(unsafe_code)]

pub mod catalog;
mod check;
mod error;
pub mod model;
mod obsolete;
mod parser;
pub mod print;
mod source;
pub mod syntax;
pub mod value;
pub mod var_expand;
pub mod wire;

pub use error::ConfigError;
pub use model::{Config, Filter, FilterBlock, Net, Section, SectionKind};
pub use parser::{load, parse_str, LoadOptions};
pub use value::Value;

/// The Dovecot release whose configuration language and defaults we follow.
pub const DOVECOT_VERSION: &str = "2.3.19";

/// The default configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dovecot/dovecot.conf";
