//! Errors from reading a configuration, worded as Dovecot words them.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The main file could not be opened (`open(path) failed: reason`).
    #[error("{0}")]
    Open(String),
    /// A line of some file is wrong.
    #[error("Error in configuration file {path} line {line}: {reason}")]
    Line { path: String, line: u32, reason: String },
    /// The configuration as a whole is wrong (checked after parsing).
    #[error("Error in configuration file {path}: {reason}")]
    File { path: String, reason: String },
}
