//! Creating the sockets and fifos every service listens on. The master
//! creates all of them while still root (ports < 1024, chown), keeps them
//! open for its whole life and passes them to each child; it never accepts
//! on them itself except to drop connections while a service is throttled.
//!
//! * inet: one socket per address (`*` → 0.0.0.0, `::` → [::] with
//!   IPV6_V6ONLY so both can share a port), SO_REUSEADDR, optional
//!   SO_REUSEPORT, backlog process_limit × client_limit (min 4), or an
//!   adopted systemd socket-activation fd with the same family and port.
//! * unix: bound under a umask that yields exactly `mode`, then chowned to
//!   `user`/`group`; a stale socket (connect → ECONNREFUSED) is replaced,
//!   a live one is an error ("already running?").
//! * fifo: mkfifo with `mode`, chown, opened O_RDWR so it never sees EOF.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dovecote_master::contract::ListenerKind;
use dovecote_master::sys;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{
    bind, connect, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, UnixAddr,
};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Gid, Uid};
use thiserror::Error;

use crate::settings::ListenerSpec;

#[derive(Debug, Error)]
pub enum ListenError {
    #[error("service({service}): listen({addr}, {port}) failed: {}", .source.desc())]
    Inet { service: String, addr: String, port: u16, source: Errno },
    #[error("service({service}): unix_listener: bind({path}) failed: {}", .source.desc())]
    Unix { service: String, path: String, source: Errno },
    #[error("service({service}): Socket already exists: {path} (Dovecot is already running?)")]
    Exists { service: String, path: String },
    #[error("service({service}): fifo_listener: mkfifo({path}) failed: {}", .source.desc())]
    Fifo { service: String, path: String, source: Errno },
    #[error("service({service}): chown({path}, {uid:?}, {gid:?}) failed: {}", .source.desc())]
    Chown { service: String, path: String, uid: Option<u32>, gid: Option<u32>, source: Errno },
    #[error("service({service}): chmod({path}) failed: {source}")]
    Chmod { service: String, path: String, source: io::Error },
}

/// A created listener: the configuration it came from and the fd.
pub struct Listener {
    pub spec: ListenerSpec,
    pub fd: OwnedFd,
}

/// Sockets systemd passed us (LISTEN_FDS), waiting to be matched.
#[derive(Default)]
pub struct Activated {
    sockets: Vec<(SocketAddr, OwnedFd)>,
}

impl Activated {
    /// Takes the LISTEN_FDS sockets meant for this process. Only inet
    /// stream sockets are used, as Dovecot's dovecot.socket does.
    pub fn from_env() -> Activated {
        let mut activated = Activated::default();
        let for_us =
            std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
        let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
        if !for_us {
            return activated;
        }
        for fd_number in 3..3 + count.clamp(0, 1024) {
            let Some(fd) = sys::adopt_inherited_fd(fd_number) else { continue };
            let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
            let Ok(addr) = getsockname::<SockaddrStorage>(fd.as_raw_fd()) else { continue };
            let socket_addr = if let Some(v4) = addr.as_sockaddr_in() {
                SocketAddr::V4((*v4).into())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                SocketAddr::V6((*v6).into())
            } else {
                continue;
            };
            activated.sockets.push((socket_addr, fd));
        }
        activated
    }

    fn take(&mut self, addr: &SocketAddr) -> Option<OwnedFd> {
        let exact = self.sockets.iter().position(|(a, _)| a == addr);
        let same_port = || {
            self.sockets.iter().position(|(a, _)| a.is_ipv4() == addr.is_ipv4() && a.port() == addr.port())
        };
        let index = exact.or_else(same_port)?;
        Some(self.sockets.remove(index).1)
    }
}

pub fn create(spec: &ListenerSpec, activated: &mut Activated) -> Result<Listener, ListenError> {
    let fd = match spec.kind {
        ListenerKind::Inet => create_inet(spec, activated)?,
        ListenerKind::Unix => create_unix(spec)?,
        ListenerKind::Fifo => create_fifo(spec)?,
    };
    Ok(Listener { spec: spec.clone(), fd })
}

fn create_inet(spec: &ListenerSpec, activated: &mut Activated) -> Result<OwnedFd, ListenError> {
    let Some(addr) = spec.addr else {
        return Err(ListenError::Inet {
            service: spec.service.clone(),
            addr: String::new(),
            port: 0,
            source: Errno::EINVAL,
        });
    };
    if let Some(fd) = activated.take(&addr) {
        return Ok(fd);
    }
    let fail = |source| ListenError::Inet {
        service: spec.service.clone(),
        addr: addr.ip().to_string(),
        port: addr.port(),
        source,
    };
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
        .map_err(fail)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(fail)?;
    if spec.reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true).map_err(fail)?;
    }
    match addr {
        SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4)).map_err(fail)?,
        SocketAddr::V6(v6) => {
            // Lets `listen = *, ::` bind both families on one port.
            setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(fail)?;
            bind(fd.as_raw_fd(), &SockaddrIn6::from(v6)).map_err(fail)?
        }
    }
    listen(&fd, Backlog::new(spec.backlog).unwrap_or(Backlog::MAXCONN)).map_err(fail)?;
    Ok(fd)
}

fn create_unix(spec: &ListenerSpec) -> Result<OwnedFd, ListenError> {
    let path = spec.path.display().to_string();
    let fail = |source| ListenError::Unix { service: spec.service.clone(), path: path.clone(), source };
    let addr = UnixAddr::new(&spec.path).map_err(fail)?;
    for _ in 0..3 {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(fail)?;
        // The mode is decided at bind time; a umask of (mode ^ 0777) gives
        // exactly `mode` with no window where the socket is wider open.
        let old = umask(Mode::from_bits_truncate((spec.mode ^ 0o777) & 0o777));
        let bound = bind(fd.as_raw_fd(), &addr);
        umask(old);
        match bound {
            Ok(()) => {
                listen(&fd, Backlog::new(spec.backlog).unwrap_or(Backlog::MAXCONN)).map_err(fail)?;
                set_owner_and_mode(spec, &spec.path)?;
                return Ok(fd);
            }
            Err(Errno::EADDRINUSE) => {
                // Stale socket of a dead master, or a live one?
                let probe = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                    .map_err(fail)?;
                match connect(probe.as_raw_fd(), &addr) {
                    Err(Errno::ECONNREFUSED) | Err(Errno::ENOENT) => {
                        let _ = std::fs::remove_file(&spec.path);
                    }
                    Ok(()) => return Err(ListenError::Exists { service: spec.service.clone(), path }),
                    Err(_) => {
                        // Not a socket we can talk to (e.g. a leftover
                        // regular file): replace it.
                        let _ = std::fs::remove_file(&spec.path);
                    }
                }
            }
            Err(e) => return Err(fail(e)),
        }
    }
    Err(fail(Errno::EADDRINUSE))
}

fn create_fifo(spec: &ListenerSpec) -> Result<OwnedFd, ListenError> {
    let path = spec.path.display().to_string();
    let fail = |source| ListenError::Fifo { service: spec.service.clone(), path: path.clone(), source };
    let mode = Mode::from_bits_truncate(spec.mode & 0o7777);
    let old = umask(Mode::from_bits_truncate((spec.mode ^ 0o777) & 0o777));
    let mut made = nix::unistd::mkfifo(&spec.path, mode);
    if made == Err(Errno::EEXIST) {
        let _ = std::fs::remove_file(&spec.path);
        made = nix::unistd::mkfifo(&spec.path, mode);
    }
    umask(old);
    made.map_err(fail)?;
    set_owner_and_mode(spec, &spec.path)?;
    // O_RDWR: the fifo always has a writer (us), so readers never see EOF.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&spec.path)
        .map_err(|e| fail(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    Ok(file.into())
}

fn set_owner_and_mode(spec: &ListenerSpec, path: &Path) -> Result<(), ListenError> {
    if spec.uid.is_some() || spec.gid.is_some() {
        chown(path, spec.uid.map(Uid::from_raw), spec.gid.map(Gid::from_raw)).map_err(|source| {
            ListenError::Chown {
                service: spec.service.clone(),
                path: path.display().to_string(),
                uid: spec.uid,
                gid: spec.gid,
                source,
            }
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(spec.mode & 0o7777)).map_err(|source| {
        ListenError::Chmod { service: spec.service.clone(), path: path.display().to_string(), source }
    })
}
