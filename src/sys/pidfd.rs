//! pidfd calls nix does not wrap: `pidfd_open(2)` and `pidfd_send_signal(2)` (with any signal
//! number: nix's `Signal` has no real-time signals, and signal 0 only checks).
//!
//! A pidfd refers to one process for as long as it is open, even once its pid is reused: a
//! signal sent through it never reaches a later process with the same number.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `pidfd_open(2)` of `pid`, no flags: a close-on-exec descriptor owned by the caller.
///
/// # Errors
/// `ESRCH` when there is no such process; other OS errors of `pidfd_open(2)` (`ENOSYS` before
/// Linux 5.3).
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and a flag word, touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(2)` of `signal` (any number, 0 to check) to the process `pidfd` refers
/// to, with no `siginfo` (as `kill(2)` sends it).
///
/// # Errors
/// The OS error: `ESRCH` once the process has been reaped, `EPERM`, `EINVAL`.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    let no_info: *const libc::siginfo_t = std::ptr::null();
    // SAFETY: pidfd is borrowed, so open for the call; a null siginfo is allowed and reads no
    // memory; the flags are 0.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, no_info, 0u32)
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
