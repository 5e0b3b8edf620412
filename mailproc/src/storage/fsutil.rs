//! File-system primitives with the durability rules of DESIGN §4.4: write a
//! temp file, fsync it, rename it into place, fsync the directory. Also the
//! two lock kinds: `flock` on our own lock files and Dovecot's dotlocks
//! (`dovecot-uidlist.lock`) where Dovecot must see our lock.
//!
//! [`PendingSyncs`] carries the fsyncs a transaction owes past its locks:
//! the records are written under the lock, flushed after it is released,
//! and the call returns only then. Concurrent writers' flushes overlap
//! instead of queueing behind the lock one after another (group commit).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::error::{Result, StorageError};

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| StorageError::io("open", dir, e))?;
    f.sync_all().map_err(|e| StorageError::io("fsync", dir, e))
}

/// Flushes a transaction owes before it may report success, run after its
/// locks are released (see the module doc).
///
/// Running them late is safe because every file involved only grows or
/// gains entries under the lock: a later writer's flush of the same file or
/// directory covers our part too, and until our own flush returns nothing
/// has been promised to anyone.
#[derive(Debug, Default)]
pub struct PendingSyncs {
    items: Vec<(File, PathBuf, bool)>,
}

impl PendingSyncs {
    /// A directory whose entries must become durable (fsync).
    pub fn dir(&mut self, dir: &Path) -> Result<()> {
        if self.items.iter().any(|(_, p, _)| p == dir) {
            return Ok(());
        }
        let f = File::open(dir).map_err(|e| StorageError::io("open", dir, e))?;
        self.items.push((f, dir.to_path_buf(), true));
        Ok(())
    }

    /// A file whose written data must become durable (fdatasync).
    pub fn data(&mut self, file: File, path: &Path) {
        self.items.push((file, path.to_path_buf(), false));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Flushes everything. Several flushes are issued at once from helper
    /// threads: each one mostly waits for the device, and flushes in flight
    /// together are served together, so the wait is about one flush's
    /// rather than the sum.
    pub fn run(self) -> Result<()> {
        let sync = |(f, path, all): &(File, PathBuf, bool)| {
            if *all {
                f.sync_all().map_err(|e| StorageError::io("fsync", path, e))
            } else {
                f.sync_data().map_err(|e| StorageError::io("fdatasync", path, e))
            }
        };
        let Some((first, rest)) = self.items.split_first() else { return Ok(()) };
        if rest.is_empty() {
            return sync(first);
        }
        std::thread::scope(|scope| {
            let helpers: Vec<_> = rest.iter().map(|item| scope.spawn(move || sync(item))).collect();
            let mut result = sync(first);
            for h in helpers {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(StorageError::NotPossible("fsync thread panicked".into())));
                result = result.and(r);
            }
            result
        })
    }
}

/// Creates a directory and its parents (mode 0700 like Dovecot's defaults).
pub fn mkdir_all(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode_0700()
        .create(dir)
        .map_err(|e| StorageError::io("mkdir", dir, e))
}

trait DirBuilderExt {
    fn mode_0700(&mut self) -> &mut Self;
}

impl DirBuilderExt for fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// Writes `data` to `path` atomically and durably: a reader sees either the
/// old file or the complete new one, before and after a crash.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(path);
    write_synced(&tmp, data)?;
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", path, e))?;
    fsync_dir(dir)
}

/// Creates `path` exclusively with `data`, fsynced (not the directory).
pub fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    f.write_all(data).map_err(|e| StorageError::io("write", path, e))?;
    f.sync_all().map_err(|e| StorageError::io("fsync", path, e))
}

fn write_unsynced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    f.write_all(data).map_err(|e| StorageError::io("write", path, e))
}

/// A unique temp name next to `path`.
pub fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp.{}.{}", std::process::id(), unique_counter()));
    path.with_file_name(name)
}

/// A per-process counter for unique names.
pub fn unique_counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path, e)),
    }
}

/// An exclusive or shared `flock` held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is held.
    pub fn acquire(path: &Path, exclusive: bool) -> Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StorageError::io("open", path, e))?;
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        loop {
            // SAFETY: flock on a file descriptor we own; no memory involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(StorageError::io("flock", path, err));
            }
        }
    }
}

/// A Dovecot-style dotlock (`<file>.lock` created with O_EXCL), removed
/// when dropped. Locks older than `stale` are taken over, as Dovecot does.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
}

impl DotLock {
    pub fn acquire(target: &Path, timeout: Duration, stale: Duration) -> Result<DotLock> {
        let path = lock_path_of(target);
        let start = Instant::now();
        loop {
            // The lock appears with its content in one step (link of a
            // complete temp file), so a crash never leaves an empty lock.
            let tmp = temp_name(&path);
            write_unsynced(&tmp, lock_content().as_bytes())?;
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(DotLock { path }),
                Err(e) => wait_for_dotlock(&path, e, start, timeout, stale)?,
            }
        }
    }
}

/// `<file>.lock`.
fn lock_path_of(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    target.with_file_name(name)
}

/// What a dotlock holds: `<pid>:<host>`, as Dovecot writes it.
fn lock_content() -> String {
    format!("{}:{}", std::process::id(), host_name())
}

/// After a failed link onto `path`: removes a stale lock, or waits a
/// little, or gives up after `timeout`. `Ok` means "try again".
fn wait_for_dotlock(
    path: &Path,
    e: io::Error,
    start: Instant,
    timeout: Duration,
    stale: Duration,
) -> Result<()> {
    if e.kind() != io::ErrorKind::AlreadyExists {
        return Err(StorageError::io("open", path, e));
    }
    let old = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > stale);
    if old || holder_is_dead(path) {
        let _ = fs::remove_file(path);
        return Ok(());
    }
    if start.elapsed() > timeout {
        return Err(StorageError::LockTimeout(path.to_path_buf()));
    }
    // A dotlock has no fd to wait on; Dovecot polls the same way. Held
    // only for the few ms of a uidlist update.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_millis(5));
    Ok(())
}

/// Takes one dotlock again and again (a mailbox handle's uidlist lock)
/// from a source file kept between locks: each lock is a hard link to it
/// and each unlock removes only that link, so no inode is created or freed
/// per lock. (A file created and deleted per delivery made every later
/// file creation slower on ext4 without a journal, which skips inodes freed
/// in the last minutes, and cost a temp file per lock everywhere.)
///
/// The source is `<file>.lock.tmp.<pid>.<n>` holding `<pid>:<host>`, like
/// the one-shot temp file of [`DotLock::acquire`]; it is removed when this
/// is dropped, and sources left by processes that died are removed when a
/// new one is made.
#[derive(Debug, Default)]
pub struct DotLockSource {
    source: std::sync::Mutex<Option<(PathBuf, File)>>,
}

impl DotLockSource {
    pub fn acquire(&self, target: &Path, timeout: Duration, stale: Duration) -> Result<DotLock> {
        let path = lock_path_of(target);
        let mut source = self.source.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = Instant::now();
        loop {
            if source.is_none() {
                remove_dead_sources(&path);
                let src = temp_name(&path);
                write_unsynced(&src, lock_content().as_bytes())?;
                let file =
                    File::options().write(true).open(&src).map_err(|e| StorageError::io("open", &src, e))?;
                *source = Some((src, file));
            }
            let Some((src, file)) = source.as_ref() else { continue };
            // A fresh mtime: waiters (Dovecot too) judge staleness by the
            // lock's age.
            file.set_modified(SystemTime::now()).map_err(|e| StorageError::io("futimens", src, e))?;
            match fs::hard_link(src, &path) {
                Ok(()) => return Ok(DotLock { path }),
                // Removed behind our back: make a new one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => *source = None,
                Err(e) => wait_for_dotlock(&path, e, start, timeout, stale)?,
            }
        }
    }
}

impl Drop for DotLockSource {
    fn drop(&mut self) {
        let source = self.source.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((src, _)) = source.take() {
            let _ = fs::remove_file(src);
        }
    }
}

/// Removes the lock sources (`<lock>.tmp.*`) of dead processes of this host.
fn remove_dead_sources(lock: &Path) {
    let (Some(dir), Some(name)) = (lock.parent(), lock.file_name()) else { return };
    let mut prefix = name.to_os_string();
    prefix.push(".tmp.");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) && holder_is_dead(&entry.path()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// This host's name, as written into dotlocks.
pub fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

/// Whether a dotlock (`<pid>:<host>`, Dovecot's content) was left by a
/// process of this host that no longer runs.
fn holder_is_dead(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else { return false };
    let (pid, host) = text.trim().split_once(':').unwrap_or((text.trim(), ""));
    let Ok(pid) = pid.parse::<i32>() else { return false };
    if pid <= 0 || (!host.is_empty() && host != host_name()) {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// mtime in nanoseconds and size of a path, or zeros when missing.
pub fn stat_stamp(path: &Path) -> (i128, u64) {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(path) {
        Ok(m) => (m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128, m.size()),
        Err(_) => (0, 0),
    }
}

/// A fresh random 128-bit GUID as 32 hex digits.
pub fn new_guid() -> String {
    let mut bytes = [0u8; 16];
    let filled = File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes));
    if filled.is_err() {
        // Fall back to time + pid + counter: unique enough for a GUID.
        let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes[..16].copy_from_slice(
            &(t ^ ((std::process::id() as u128) << 64) ^ unique_counter() as u128).to_le_bytes(),
        );
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
