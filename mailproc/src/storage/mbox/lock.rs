//! mbox locking: `mbox_read_locks` / `mbox_write_locks` (dotlock,
//! dotlock_try, fcntl, flock, lockf) in the configured order, all within
//! `mbox_lock_timeout`.
//!
//! fcntl and lockf locks are taken as Linux open-file-description locks
//! (`F_OFD_SETLK`): they conflict with the classic fcntl locks Postfix,
//! procmail and Dovecot take, but belong to our file handle rather than
//! the whole process, so closing another handle on the same spool cannot
//! silently drop them (the classic POSIX pitfall), and two sessions in one
//! process exclude each other too.
//!
//! A dotlock in `/var/mail` needs write access to that directory, which is
//! usually `root:mail 2775`: with `mail_privileged_group = mail` the group is
//! switched on just for creating and removing the lock, as Dovecot does.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::storage::error::{Result, StorageError};
use crate::storage::fsutil::DotLock;

/// One lock method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMethod {
    Dotlock,
    /// A dotlock where one can be created; no error where it can't.
    DotlockTry,
    Fcntl,
    Flock,
    Lockf,
}

/// The mbox settings of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxSettings {
    pub read_locks: Vec<LockMethod>,
    pub write_locks: Vec<LockMethod>,
    pub lock_timeout: Duration,
    /// A dotlock not modified for this long is stale and taken over.
    pub dotlock_change_timeout: Duration,
    /// `mail_privileged_group` (name or number), for dotlocks in /var/mail.
    pub privileged_group: Option<String>,
}

impl Default for MboxSettings {
    fn default() -> Self {
        MboxSettings {
            read_locks: vec![LockMethod::Fcntl],
            write_locks: vec![LockMethod::Dotlock, LockMethod::Fcntl],
            lock_timeout: Duration::from_secs(300),
            dotlock_change_timeout: Duration::from_secs(120),
            privileged_group: None,
        }
    }
}

/// Parses `mbox_read_locks`/`mbox_write_locks`.
pub fn parse_methods(text: &str) -> std::result::Result<Vec<LockMethod>, String> {
    text.split_whitespace()
        .map(|word| match word {
            "dotlock" => Ok(LockMethod::Dotlock),
            "dotlock_try" => Ok(LockMethod::DotlockTry),
            "fcntl" => Ok(LockMethod::Fcntl),
            "flock" => Ok(LockMethod::Flock),
            "lockf" => Ok(LockMethod::Lockf),
            other => Err(format!("Invalid mbox lock method: {other}")),
        })
        .collect()
}

/// Locks held on a spool; released when dropped (the fd-based ones go
/// with the file handle, which the holder keeps open as long as this).
#[derive(Debug)]
pub struct HeldLocks {
    dotlock: Option<DotLock>,
    privileged_gid: Option<u32>,
    dotlock_path: Option<PathBuf>,
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        // Removing the dotlock may need the privileged group as well.
        if let (Some(gid), Some(_)) = (self.privileged_gid, &self.dotlock_path) {
            let dotlock = self.dotlock.take();
            let _ = with_group(gid, || {
                drop(dotlock);
                Ok(())
            });
        }
    }
}

/// Takes `methods` on `file` (opened from `path`) within the timeout.
pub fn acquire(
    file: &File,
    path: &Path,
    methods: &[LockMethod],
    exclusive: bool,
    settings: &MboxSettings,
) -> Result<HeldLocks> {
    let deadline = Instant::now() + settings.lock_timeout;
    let mut held = HeldLocks { dotlock: None, privileged_gid: None, dotlock_path: None };
    for method in methods {
        match method {
            LockMethod::Dotlock | LockMethod::DotlockTry => {
                if held.dotlock.is_some() {
                    continue;
                }
                let timeout = deadline.saturating_duration_since(Instant::now());
                let attempt = || DotLock::acquire(path, timeout, settings.dotlock_change_timeout);
                match attempt() {
                    Ok(lock) => held.dotlock = Some(lock),
                    Err(e) if e.is_io_kind(io::ErrorKind::PermissionDenied) => {
                        let gid = privileged_gid(settings);
                        match gid.map(|g| (g, with_group(g, attempt))) {
                            Some((g, Ok(lock))) => {
                                held.dotlock = Some(lock);
                                held.privileged_gid = Some(g);
                            }
                            _ if *method == LockMethod::DotlockTry => {}
                            _ => return Err(dotlock_denied(path, settings)),
                        }
                    }
                    Err(e) => return Err(e),
                }
                held.dotlock_path = Some(path.to_path_buf());
            }
            LockMethod::Fcntl | LockMethod::Lockf => {
                poll(deadline, path, || ofd_lock(file, exclusive))?;
            }
            LockMethod::Flock => {
                poll(deadline, path, || flock(file, exclusive))?;
            }
        }
    }
    Ok(held)
}

fn dotlock_denied(path: &Path, settings: &MboxSettings) -> StorageError {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let fix = match &settings.privileged_group {
        Some(g) => format!(
            "mail_privileged_group = {g} is set but this process can't use that group; \
             give it write access to {} or use mbox_write_locks = fcntl",
            dir.display()
        ),
        None => format!(
            "set mail_privileged_group = mail (the group that may write {}) or use \
             mbox_write_locks = fcntl",
            dir.display()
        ),
    };
    StorageError::Permission {
        path: path.with_extension("lock"),
        reason: format!("can't create a dotlock: {}", super::access_detail(dir, true)),
        fix,
    }
}

fn privileged_gid(settings: &MboxSettings) -> Option<u32> {
    let name = settings.privileged_group.as_deref()?;
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

/// Runs `f` with the effective group switched to `gid` (which must be the
/// real or saved group, or we are root).
fn with_group<T>(gid: u32, f: impl FnOnce() -> Result<T>) -> Result<T> {
    // SAFETY: getegid/setegid only read or change this process's
    // credentials; the old group is restored before returning.
    let old = unsafe { libc::getegid() };
    if old == gid {
        return f();
    }
    if unsafe { libc::setegid(gid) } != 0 {
        return Err(StorageError::io("setegid", PathBuf::from(gid.to_string()), io::Error::last_os_error()));
    }
    let result = f();
    // SAFETY: as above.
    unsafe { libc::setegid(old) };
    result
}

fn poll(deadline: Instant, path: &Path, mut try_lock: impl FnMut() -> io::Result<bool>) -> Result<()> {
    let mut wait = Duration::from_millis(1);
    loop {
        match try_lock() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(StorageError::io("fcntl", path, e)),
        }
        if Instant::now() >= deadline {
            return Err(StorageError::LockTimeout(path.to_path_buf()));
        }
        // Lock waits poll, as Dovecot's do, so mbox_lock_timeout holds.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(50));
    }
}

/// One non-blocking attempt at an open-file-description lock.
fn ofd_lock(file: &File, exclusive: bool) -> io::Result<bool> {
    // SAFETY: a zeroed flock is a valid value; the fd is owned by `file`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if exclusive { libc::F_WRLCK } else { libc::F_RDLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl with a pointer to a valid flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) | Some(libc::EINTR) => Ok(false),
        _ => Err(err),
    }
}

fn flock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH } | libc::LOCK_NB;
    // SAFETY: flock on an fd owned by `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse() {
        assert_eq!(parse_methods("fcntl dotlock").unwrap(), [LockMethod::Fcntl, LockMethod::Dotlock]);
        assert!(parse_methods("fcntl nosuch").unwrap_err().contains("nosuch"));
    }

    #[test]
    fn fcntl_locks_exclude_each_other_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        std::fs::write(&path, b"").unwrap();
        let a = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let b = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let settings = MboxSettings { lock_timeout: Duration::from_millis(50), ..MboxSettings::default() };
        let _held = acquire(&a, &path, &[LockMethod::Fcntl, LockMethod::Dotlock], true, &settings).unwrap();
        let err = acquire(&b, &path, &[LockMethod::Fcntl], false, &settings).unwrap_err();
        assert!(matches!(err, StorageError::LockTimeout(_)), "{err}");
        assert!(dir.path().join("mbox.lock").exists());
    }
}
