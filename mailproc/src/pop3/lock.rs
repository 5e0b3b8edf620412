//! `pop3_lock_session`: one POP3 session per mailbox at a time, with the
//! dotlock Dovecot uses (`dovecot-pop3-session.lock` in the INBOX
//! namespace's index or root directory, `pid:hostname` inside). A second
//! session waits up to 10 seconds; a lock whose process is gone, or that
//! nobody refreshed for 5 minutes, is stale and taken over.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Dovecot's `POP3_LOCK_FNAME`.
pub const LOCK_FILE: &str = "dovecot-pop3-session.lock";
/// How long a second session waits for the lock.
pub const WAIT: Duration = Duration::from_secs(10);
/// A lock untouched this long is stale (and is refreshed at half of it).
pub const STALE: Duration = Duration::from_secs(5 * 60);

/// A held session lock; removed when dropped.
#[derive(Debug)]
pub struct SessionLock {
    path: PathBuf,
    touched: Instant,
}

/// Taking the lock failed.
#[derive(Debug)]
pub enum LockError {
    /// Another live session holds it (`-ERR [IN-USE] ...`).
    InUse,
    Io(io::Error),
}

fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether an existing lock file may be taken over.
fn is_stale(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else { return false };
    let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok());
    if age.is_some_and(|a| a > STALE) {
        return true;
    }
    let Ok(text) = fs::read_to_string(path) else { return false };
    let Some((pid, host)) = text.trim().split_once(':') else { return false };
    let Ok(pid) = pid.parse::<i32>() else { return false };
    if host != hostname() || pid <= 0 {
        return false;
    }
    // Same host and the process is gone: kill(0) says ESRCH.
    matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
}

impl SessionLock {
    /// Takes the lock in `dir`, waiting up to `wait`.
    pub fn acquire(dir: &Path, wait: Duration) -> Result<SessionLock, LockError> {
        fs::create_dir_all(dir).map_err(LockError::Io)?;
        let path = dir.join(LOCK_FILE);
        let deadline = Instant::now() + wait;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let content = format!("{}:{}", std::process::id(), hostname());
                    f.write_all(content.as_bytes()).map_err(LockError::Io)?;
                    return Ok(SessionLock { path, touched: Instant::now() });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(&path) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return Err(LockError::InUse);
                    }
                    // Blocking is what Dovecot does here too (file_dotlock_create
                    // waits up to 10 s), and happens before the session starts.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(LockError::Io(e)),
            }
        }
    }

    /// Keeps a long session's lock from looking stale.
    pub fn refresh(&mut self) {
        if self.touched.elapsed() < STALE / 2 {
            return;
        }
        if let Ok(f) = OpenOptions::new().write(true).open(&self.path) {
            let _ = f.set_modified(SystemTime::now());
        }
        self.touched = Instant::now();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_then_fails_and_a_dead_owner_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let first = SessionLock::acquire(dir.path(), WAIT).unwrap();
        let t = Instant::now();
        assert!(matches!(
            SessionLock::acquire(dir.path(), Duration::from_millis(300)),
            Err(LockError::InUse)
        ));
        assert!(t.elapsed() >= Duration::from_millis(300));
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A lock left by a process that no longer exists.
        fs::write(dir.path().join(LOCK_FILE), format!("999999999:{}", hostname())).unwrap();
        let again = SessionLock::acquire(dir.path(), Duration::from_millis(300)).unwrap();
        assert!(again.path().exists());
    }
}
