//! Starting one service process: pipes and sockets for the contract's fd
//! layout, fork, and in the child: new session, fd layout, privilege drop,
//! exec. Everything that allocates or can fail in an interesting way is
//! prepared before the fork; the child only makes system calls.
//!
//! Privilege drop order in the child (DESIGN §4.1): setsid, setgroups,
//! setgid, setuid, clear capabilities (effective/permitted/inheritable/
//! ambient, not the bounding set), PR_SET_NO_NEW_PRIVS except for `auth`
//! (its SELinux domain transition is refused under no_new_privs), exec.
//!
//! Chrooted services are the exception: a dynamically linked executable
//! cannot be exec'd inside an empty `login/` directory (its ELF interpreter
//! and libraries are outside), so for them the child execs as root with
//! `DOVECOTE_RESTRICT` and the runtime does chroot → setgroups → setgid →
//! setuid → capabilities → no_new_privs as its very first step, before
//! reading anything — which is also what Dovecot does for every service.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;

use dovecote_master::contract::{
    encode_listeners, Level, LogLine, Restrict, ENV_ANVIL_FD, ENV_CORE_LIMIT, ENV_GENERATION, ENV_LISTENERS,
    ENV_RESTRICT, ENV_SERVICE, EXIT_EXEC_FAILED, EXIT_FATAL, FD_FIRST_LISTENER,
};
use dovecote_master::{privileges, sys};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::SigSet;
use nix::unistd::{Gid, Uid};
use thiserror::Error;

use crate::settings::ServiceSettings;

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("service({service}): {what} failed: {}", .source.desc())]
    Setup { service: String, what: &'static str, source: Errno },
    #[error("service({service}): fork() failed: {}", .source.desc())]
    Fork { service: String, source: Errno },
    #[error("service({service}): invalid {what} (contains NUL)")]
    Nul { service: String, what: &'static str },
}

/// The master's ends of a new process's pipes.
pub struct Spawned {
    pub pid: u32,
    /// Read end of the process's log pipe (non-blocking).
    pub log: File,
    /// Write end of the config pipe (non-blocking), closed once written.
    pub config: File,
    /// The master's end of the control socket.
    pub control: UnixStream,
}

pub struct SpawnRequest<'a> {
    pub service: &'a ServiceSettings,
    pub listeners: Vec<BorrowedFd<'a>>,
    pub status: BorrowedFd<'a>,
    pub generation: u32,
    pub imported_env: &'a [(String, String)],
    pub core_limit: Option<u64>,
    pub key_password: Option<&'a str>,
}

fn pipe(service: &str, what: &'static str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| SpawnError::Setup {
        service: service.to_owned(),
        what,
        source,
    })
}

fn set_nonblocking(fd: &OwnedFd) {
    // Only fails for a bad fd, which these are not.
    let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

fn cstring(service: &str, what: &'static str, s: &[u8]) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Nul { service: service.to_owned(), what })
}

pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let service = req.service;
    let name = service.name.as_str();
    let (log_read, log_write) = pipe(name, "pipe() for the log")?;
    let (config_read, config_write) = pipe(name, "pipe() for the config")?;
    set_nonblocking(&log_read);
    set_nonblocking(&config_write);
    let (control_master, control_child) = UnixStream::pair().map_err(|e| SpawnError::Setup {
        service: name.to_owned(),
        what: "socketpair()",
        source: io_errno(&e),
    })?;
    let dev_null = File::open("/dev/null").map_err(|e| SpawnError::Setup {
        service: name.to_owned(),
        what: "open(/dev/null)",
        source: io_errno(&e),
    })?;

    let executable = cstring(name, "executable", service.executable.as_os_str().as_bytes())?;
    let argv: Vec<CString> =
        service.argv.iter().map(|a| cstring(name, "argument", a.as_bytes())).collect::<Result<_, _>>()?;
    let restrict = service.chroot.as_ref().map(|dir| Restrict {
        uid: service.uid.unwrap_or(0),
        gid: service.gid.unwrap_or(0),
        groups: service.groups.clone(),
        no_new_privs: service.no_new_privs,
        chroot: dir.display().to_string(),
    });
    let names: Vec<_> = service.listeners.iter().map(|l| l.name.clone()).collect();
    // Opened here, as root, for a process that can't open it itself.
    let anvil = service.anvil_socket.as_deref().and_then(connect_anvil);
    let mut env = vec![
        (ENV_SERVICE.to_owned(), service.name.clone()),
        (ENV_GENERATION.to_owned(), req.generation.to_string()),
        (ENV_LISTENERS.to_owned(), encode_listeners(&names)),
    ];
    if let Some(r) = &restrict {
        env.push((ENV_RESTRICT.to_owned(), r.encode()));
    }
    if let Some(core) = req.core_limit {
        env.push((ENV_CORE_LIMIT.to_owned(), core.to_string()));
    }
    if let (Some(password), true) = (req.key_password, service.receives_key_password) {
        env.push(("DOVECOTE_SSL_KEY_PASSWORD".to_owned(), password.to_owned()));
    }
    if anvil.is_some() {
        // It goes right after the listeners (see `sources` below).
        let fd = FD_FIRST_LISTENER as usize + req.listeners.len();
        env.push((ENV_ANVIL_FD.to_owned(), fd.to_string()));
    }
    env.extend(req.imported_env.iter().cloned());
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstring(name, "environment", format!("{k}={v}").as_bytes()))
        .collect::<Result<_, _>>()?;
    let exec_failed = LogLine {
        level: Level::Fatal,
        user: None,
        session: None,
        text: format!("execv({}) failed: ", service.executable.display()),
    }
    .to_line();

    // Sources for fds 0, 1, 2, 3, 4, 5, 6.. in that order.
    let mut sources: Vec<RawFd> = vec![
        dev_null.as_raw_fd(),
        log_write.as_raw_fd(),
        log_write.as_raw_fd(),
        config_read.as_raw_fd(),
        req.status.as_raw_fd(),
        control_child.as_raw_fd(),
    ];
    sources.extend(req.listeners.iter().map(|l| l.as_raw_fd()));
    debug_assert_eq!(sources.len(), FD_FIRST_LISTENER as usize + req.listeners.len());
    if let Some(anvil) = &anvil {
        sources.push(anvil.as_raw_fd());
    }

    match sys::fork() {
        Err(source) => Err(SpawnError::Fork { service: name.to_owned(), source }),
        Ok(sys::ForkResult::Child) => {
            let code = child(service, &sources, restrict.is_some(), &executable, &argv, &envp);
            // Only reached when exec failed; fd 2 is the log pipe by now.
            let errno = Errno::last();
            let _ = nix::unistd::write(
                std::io::stderr(),
                format!("{}{}\n", exec_failed.trim_end(), errno.desc()).as_bytes(),
            );
            sys::exit_now(code)
        }
        Ok(sys::ForkResult::Parent { child }) => Ok(Spawned {
            pid: child.as_raw() as u32,
            log: File::from(log_read),
            config: File::from(config_write),
            control: control_master,
        }),
    }
}

/// A non-blocking connect to an anvil listener: the master must never
/// wait on anvil. `None` (anvil's backlog full, socket gone) only means
/// this process runs without anvil, which its users tolerate as Dovecot's
/// do (no connection limit check, no penalty).
fn connect_anvil(path: &std::path::Path) -> Option<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd =
        socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
            .ok()?;
    let addr = UnixAddr::new(path).ok()?;
    connect(fd.as_raw_fd(), &addr).ok()?;
    Some(fd)
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Runs in the forked child. Returns only on failure, with the exit code.
fn child(
    service: &ServiceSettings,
    sources: &[RawFd],
    chrooted: bool,
    executable: &CString,
    argv: &[CString],
    envp: &[CString],
) -> i32 {
    let _ = nix::unistd::setsid();
    // The master blocks its signals to read them from a signalfd; a blocked
    // mask survives exec, so clear it.
    let _ = SigSet::empty().thread_set_mask();
    // Move every source above the targets first so that no dup2 clobbers a
    // source that is still needed, then put each in place.
    let base = sources.len() as RawFd + 16;
    let mut high = Vec::with_capacity(sources.len());
    for fd in sources {
        match fcntl(*fd, FcntlArg::F_DUPFD_CLOEXEC(base)) {
            Ok(h) => high.push(h),
            Err(_) => return EXIT_FATAL,
        }
    }
    for (target, h) in high.iter().enumerate() {
        if nix::unistd::dup2(*h, target as RawFd).is_err() {
            return EXIT_FATAL;
        }
    }
    sys::close_from(sources.len() as RawFd);
    let fatal = |text: String| {
        let line = LogLine { level: Level::Fatal, user: None, session: None, text }.to_line();
        let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
        EXIT_FATAL
    };
    if !chrooted {
        if let Some(gid) = service.gid {
            let groups: Vec<Gid> = service.groups.iter().map(|g| Gid::from_raw(*g)).collect();
            if let Err(e) = nix::unistd::setgroups(&groups) {
                return fatal(format!("setgroups() failed: {e}"));
            }
            if let Err(e) = nix::unistd::setgid(Gid::from_raw(gid)) {
                return fatal(format!("setgid({gid}) failed: {e}"));
            }
        } else if !service.groups.is_empty() {
            let groups: Vec<Gid> = service.groups.iter().map(|g| Gid::from_raw(*g)).collect();
            if let Err(e) = nix::unistd::setgroups(&groups) {
                return fatal(format!("setgroups() failed: {e}"));
            }
        }
        if let Some(uid) = service.uid {
            if let Err(e) = nix::unistd::setuid(Uid::from_raw(uid)) {
                return fatal(format!("setuid({uid}) failed: {e}"));
            }
            if uid != 0 {
                if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
                    return fatal("We couldn't drop root privileges".into());
                }
                if let Err(e) = privileges::clear_capabilities() {
                    return fatal(format!("clearing capabilities failed: {e}"));
                }
            }
        }
        if service.no_new_privs {
            if let Err(e) = nix::sys::prctl::set_no_new_privs() {
                return fatal(format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {e}"));
            }
        }
    }
    let _ = nix::unistd::execve(executable, argv, envp);
    EXIT_EXEC_FAILED
}
