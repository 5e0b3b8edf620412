//! The storage error type: every variant names the path or mailbox involved.

use std::io;
use std::path::PathBuf;

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op}({path}) failed: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Invalid mail_location '{location}': {reason}")]
    Location { location: String, reason: String },
    #[error("Mailbox doesn't exist: {0}")]
    NotFound(String),
    #[error("Mailbox already exists: {0}")]
    AlreadyExists(String),
    #[error("Invalid mailbox name '{name}': {reason}")]
    InvalidName { name: String, reason: String },
    #[error("Message UID {uid} doesn't exist in {mailbox}")]
    NoSuchMessage { mailbox: String, uid: u32 },
    #[error("Corrupted {what} {path}: {reason}")]
    Corrupted { what: &'static str, path: PathBuf, reason: String },
    #[error("Timeout while waiting for lock {0}")]
    LockTimeout(PathBuf),
    #[error("{0}")]
    NotPossible(String),
    /// The S13 pitfall: a spool or directory with the wrong owner or mode.
    #[error("{path}: {reason}; fix: {fix}")]
    Permission { path: PathBuf, reason: String, fix: String },
}

impl StorageError {
    /// Wraps an I/O error with the syscall name and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io { op, path: path.into(), source }
    }

    /// Whether this is an I/O error of the given kind (e.g. NotFound).
    pub fn is_io_kind(&self, kind: io::ErrorKind) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.kind() == kind)
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;
