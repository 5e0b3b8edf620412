//! `base_dir` as the master prepares it at startup (reference §1.4):
//! the directory itself (0755), `login/` and `token-login/` (root, group of
//! `default_login_user`, 0750: the chroots of login processes, which must
//! reach the sockets inside but not list them to others), `empty/` (root,
//! 0755, the chroot of anvil and friends), `master.pid` and the
//! `dovecot.conf` symlink to the configuration in use.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::{chown, Gid, Pid, Uid};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BaseDirError {
    #[error("mkdir({path}) failed: {source}")]
    Mkdir { path: String, source: io::Error },
    #[error("chown({path}) failed: {}", .source.desc())]
    Chown { path: String, source: nix::Error },
    #[error("chmod({path}) failed: {source}")]
    Chmod { path: String, source: io::Error },
    #[error("Dovecot is already running with PID {pid} (read from {path})")]
    AlreadyRunning { pid: i32, path: String },
    #[error("write({path}) failed: {source}")]
    PidFile { path: String, source: io::Error },
}

fn mkdir(path: &Path, mode: u32, gid: Option<u32>) -> Result<(), BaseDirError> {
    let shown = path.display().to_string();
    if !path.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|source| BaseDirError::Mkdir { path: shown.clone(), source })?;
    }
    // Only root can give the directories away; an unprivileged master keeps
    // them as its own.
    if nix::unistd::geteuid().is_root() {
        chown(path, Some(Uid::from_raw(0)), Some(Gid::from_raw(gid.unwrap_or(0))))
            .map_err(|source| BaseDirError::Chown { path: shown.clone(), source })?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|source| BaseDirError::Chmod { path: shown, source })
}

pub fn pid_file(base_dir: &Path) -> PathBuf {
    base_dir.join("master.pid")
}

/// Refuses when `master.pid` names a live process.
pub fn check_not_running(base_dir: &Path) -> Result<(), BaseDirError> {
    let path = pid_file(base_dir);
    let Ok(text) = fs::read_to_string(&path) else { return Ok(()) };
    let Ok(pid) = text.trim().parse::<i32>() else { return Ok(()) };
    if pid > 0 && pid != std::process::id() as i32 && kill(Pid::from_raw(pid), None).is_ok() {
        return Err(BaseDirError::AlreadyRunning { pid, path: path.display().to_string() });
    }
    Ok(())
}

pub fn prepare(base_dir: &Path, login_gid: Option<u32>) -> Result<(), BaseDirError> {
    mkdir(base_dir, 0o755, None)?;
    mkdir(&base_dir.join("login"), 0o750, login_gid)?;
    mkdir(&base_dir.join("token-login"), 0o750, login_gid)?;
    mkdir(&base_dir.join("empty"), 0o755, None)?;
    Ok(())
}

pub fn write_pid_and_symlink(base_dir: &Path, config_path: &str) -> Result<(), BaseDirError> {
    let path = pid_file(base_dir);
    fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|source| BaseDirError::PidFile { path: path.display().to_string(), source })?;
    let link = base_dir.join("dovecot.conf");
    let target = fs::canonicalize(config_path).unwrap_or_else(|_| PathBuf::from(config_path));
    let _ = fs::remove_file(&link);
    // Only informational (doveadm finds the config through it): a failure
    // is not worth refusing to start over.
    let _ = std::os::unix::fs::symlink(target, link);
    Ok(())
}
