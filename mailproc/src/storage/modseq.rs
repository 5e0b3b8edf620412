//! `dovecote-modseq`: the modseq ceiling of a mailbox, kept next to the mail
//! files (not in the index directory) so that HIGHESTMODSEQ never goes
//! backwards when the index is rebuilt (DESIGN §4.4: clients and replicas
//! ask "what changed since modseq N").
//!
//! The file holds a number that is at least every modseq ever handed out.
//! It is raised in steps of [`STEP`] before a transaction would pass it, so
//! it is written once per 65,536 changes, not per change; a rebuild starts
//! above it. Modseqs must grow, not be dense, so the jump is harmless.

use std::path::Path;

use super::error::Result;
use super::fsutil;

pub const MODSEQ_FILE: &str = "dovecote-modseq";
/// How far ahead of the current highest modseq the ceiling is put.
pub const STEP: u64 = 1 << 16;

/// The stored ceiling (0 when there is none or it is unreadable).
pub fn read_ceiling(dir: &Path) -> Result<u64> {
    let data = fsutil::read_optional(&dir.join(MODSEQ_FILE))?;
    Ok(data.and_then(|d| String::from_utf8_lossy(&d).trim().parse().ok()).unwrap_or(0))
}

/// Makes sure the stored ceiling is at least `highest`; returns the
/// ceiling now in force. Call under the mailbox's exclusive lock.
pub fn raise_ceiling(dir: &Path, known: u64, highest: u64) -> Result<u64> {
    if highest <= known {
        return Ok(known);
    }
    // Another process may have raised it since we read it.
    let stored = read_ceiling(dir)?;
    if highest <= stored {
        return Ok(stored);
    }
    let ceiling = (highest / STEP + 1) * STEP;
    fsutil::mkdir_all(dir)?;
    fsutil::write_atomic(&dir.join(MODSEQ_FILE), format!("{ceiling}\n").as_bytes())?;
    Ok(ceiling)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ceiling_rises_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(super::read_ceiling(dir.path()).unwrap(), 0);
        let c = super::raise_ceiling(dir.path(), 0, 5).unwrap();
        assert_eq!(c, super::STEP);
        assert_eq!(super::raise_ceiling(dir.path(), c, 6).unwrap(), c);
        assert_eq!(super::raise_ceiling(dir.path(), 0, 7).unwrap(), c, "re-read before writing");
        let c2 = super::raise_ceiling(dir.path(), c, c + 1).unwrap();
        assert_eq!(c2, 2 * super::STEP);
        assert_eq!(super::read_ceiling(dir.path()).unwrap(), c2);
    }
}
