//! Every `unsafe` block of the master and the service runtime lives here,
//! each with the reason it is sound. Callers get safe functions.
//!
//! What needs it: `fork` (sound only in a single-threaded process, which the
//! master and every service are by design), taking ownership of inherited or
//! received descriptors, `close_range`, `_exit`, `strftime` for
//! `log_timestamp`, and rewriting our own argv area for the process title.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

pub use nix::unistd::ForkResult;

/// Forks the calling process.
///
/// Callers must be single-threaded: the master and every service run one
/// event loop in one thread (DESIGN §1.3), and nothing in this crate starts
/// threads, so the child gets a consistent copy of all memory and locks.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the process is single-threaded (see above), so no lock can be
    // held by a thread that does not exist in the child.
    unsafe { nix::unistd::fork() }
}

/// Keeps glibc malloc to two arenas. Each thread that allocates otherwise
/// gets its own arena, reserving 64 MiB of address space; the storage's
/// scan threads (8) then pushed a mail process past its `vsz_limit`
/// (default 256M) on a large mailbox and the allocator aborted. The
/// services are event loops whose few helper threads are short-lived, so
/// sharing arenas costs nothing measurable.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it is called at
    // start-up before this process starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Ends the process at once, without running atexit handlers or flushing
/// stdio buffers that the forked child shares with its parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Takes ownership of a descriptor this process inherited at a fixed
/// number (the fd layout of `contract`). `None` if no such fd is open.
pub fn adopt_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    // SAFETY: the fd is open (checked above) and, by the contract, nothing
    // else in this process owns it: it was placed there by the master for
    // exactly this purpose and each number is adopted once at start-up.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Closes every descriptor from `first` up. Used in a forked child just
/// before exec so that nothing of the master leaks into a service even if
/// some fd lacked close-on-exec.
pub fn close_from(first: RawFd) {
    let Ok(first) = u32::try_from(first) else { return };
    // SAFETY: close_range only closes descriptors; the forked child owns no
    // Rust object referring to them that is used after this call (it execs
    // or _exits next).
    unsafe {
        libc::close_range(first, u32::MAX, 0);
    }
}

/// Sends `data` with `fds` attached (SCM_RIGHTS) on a unix stream or
/// datagram socket.
pub fn send_with_fds(socket: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(socket.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
}

/// Receives into `buf` and returns the byte count and the descriptors that
/// came with it (at most `max_fds`), owned and close-on-exec.
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = vec![0u8; nix::sys::socket::cmsg_space::<RawFd>() * max_fds.max(1)];
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for fd in received {
                // SAFETY: the kernel just installed this descriptor in our
                // table for this message; nothing else refers to it yet.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

/// Formats `secs` since the epoch in local time with a strftime format
/// (`log_timestamp`, e.g. `%b %d %H:%M:%S `).
pub fn format_local_time(format: &str, secs: i64) -> String {
    let Ok(cformat) = CString::new(format) else { return String::new() };
    let time: libc::time_t = secs;
    // SAFETY: all-zero is a valid `tm` (plain integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // reentrant variant and only writes into `tm`.
    if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
        return String::new();
    }
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for buf.len() bytes, the format is a valid C
    // string and tm was filled by localtime_r; strftime writes at most
    // buf.len() bytes and returns how many (0 on overflow).
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cformat.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The memory holding our argv strings, which `ps` shows as the command
/// line. Rewriting it is how a process sets its title on Linux.
pub struct ArgvArea {
    start: *mut u8,
    len: usize,
}

impl ArgvArea {
    /// Locates the argv strings. They are laid out contiguously by the
    /// kernel, immediately followed by the environment strings; so the area
    /// ends right before `environ[0]` and is as long as the arguments.
    /// Must be called before anything changes the environment, and after
    /// the arguments have been read (they are overwritten later).
    pub fn locate(args: &[OsString]) -> Option<ArgvArea> {
        use std::os::unix::ffi::OsStrExt;
        let len: usize = args.iter().map(|a| a.as_bytes().len() + 1).sum();
        if len == 0 {
            return None;
        }
        extern "C" {
            static environ: *const *const libc::c_char;
        }
        // SAFETY: `environ` is the C library's environment pointer; reading
        // the pointer value and its first element is what getenv does. The
        // process is single-threaded, so nothing modifies it concurrently.
        let first_env = unsafe {
            if environ.is_null() || (*environ).is_null() {
                return None;
            }
            *environ as *mut u8
        };
        let start = first_env.wrapping_sub(len);
        // Make sure the guess is right before we ever write: the bytes there
        // must be exactly our arguments, NUL-separated.
        let mut expected = Vec::with_capacity(len);
        for a in args {
            expected.extend_from_slice(a.as_bytes());
            expected.push(0);
        }
        // SAFETY: if the kernel's layout holds, [start, start+len) is the
        // argv area, readable; we only compare. If it did not hold, the
        // area is still inside the initial stack mapping (environ[0] sits
        // above argv, at least `len` bytes in), so the read is in bounds.
        let actual = unsafe { std::slice::from_raw_parts(start as *const u8, len) };
        (actual == expected.as_slice()).then_some(ArgvArea { start, len })
    }

    /// Writes `title` (cut to fit) and NUL-fills the rest of the area.
    pub fn set(&mut self, title: &str) {
        let bytes = title.as_bytes();
        let n = bytes.len().min(self.len - 1);
        // SAFETY: [start, start+len) is our own argv area (verified in
        // `locate`); std has copied the arguments it hands out, and nothing
        // else holds a Rust reference into this memory.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.start, n);
            std::ptr::write_bytes(self.start.add(n), 0, self.len - n);
        }
    }
}
