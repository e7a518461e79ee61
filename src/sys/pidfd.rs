//! pidfd calls nix does not wrap: `pidfd_open(2)` and `pidfd_send_signal(2)` (with any signal
//! number: nix's `Signal` has no real-time signals, and signal 0 only checks), also with a
//! queued value as `sigqueue(3)` sends it.
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

/// The fields of a `siginfo_t` that `SI_QUEUE` uses (the kernel's `_rt` member), laid out as
/// the kernel's: the union starts after three ints, aligned as a pointer.
#[repr(C)]
#[derive(Clone, Copy)]
struct QueuedInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    rt: QueuedFields,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct QueuedFields {
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: SigVal,
}

/// C's `union sigval` with both members (libc's `sigval` has only `sival_ptr`): the receiver
/// reads `sival_int` (`ssi_int` from a signalfd), so the value is stored through that member.
/// Stored as a pointer-sized integer instead, it would land in the high half on a 64-bit
/// big-endian machine and be read as 0.
#[repr(C)]
#[derive(Clone, Copy)]
union SigVal {
    sival_int: libc::c_int,
    sival_ptr: *mut libc::c_void,
}

/// A whole `siginfo_t`-sized buffer (128 bytes), the queued fields at its start.
#[repr(C)]
union SigInfo {
    queued: QueuedInfo,
    whole: libc::siginfo_t,
}

/// `pidfd_send_signal(2)` with a `siginfo_t` as `sigqueue(3)` fills it (nix wraps neither):
/// `SI_QUEUE`, this process's pid and real uid, and `value` as the integer the receiver reads
/// (`si_int`; `ssi_int` from a signalfd).
///
/// # Errors
/// The OS error: `ESRCH` once the process has been reaped, `EPERM`, `EINVAL`.
pub(crate) fn send_queued(pidfd: BorrowedFd<'_>, signal: i32, value: i32) -> io::Result<()> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value of the whole union.
    let mut info: SigInfo = unsafe { std::mem::zeroed() };
    info.queued = QueuedInfo {
        signo: signal,
        errno: 0,
        code: libc::SI_QUEUE,
        rt: QueuedFields {
            pid: std::process::id() as libc::pid_t,
            uid: nix::unistd::getuid().as_raw(),
            value: sigval_int(value),
        },
    };
    // SAFETY: info is a siginfo_t-sized, initialised buffer that outlives the call; pidfd is
    // borrowed, so open. The kernel copies the buffer and accepts SI_QUEUE from another process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            &info as *const SigInfo,
            0,
        )
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A `union sigval` holding `value` as its `sival_int`, the rest zero, as `sigqueue(3)` with
/// `sival_int` fills it.
fn sigval_int(value: i32) -> SigVal {
    let mut sigval = SigVal { sival_ptr: std::ptr::null_mut() };
    sigval.sival_int = value;
    sigval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_fields_sit_where_the_kernel_reads_them() {
        assert_eq!(std::mem::size_of::<SigInfo>(), 128);
        let rt = std::mem::offset_of!(QueuedInfo, rt);
        let expected = if std::mem::size_of::<usize>() == 8 { 16 } else { 12 };
        assert_eq!(rt, expected);
    }

    /// The kernel's `si_int` (what a signalfd gives as `ssi_int`) is the first `int` of the
    /// `sigval`, after `si_pid` and `si_uid`, in native byte order: the queued value must read
    /// back from there on either byte order (storing it as a pointer-sized integer did so only
    /// on little-endian machines).
    #[test]
    fn queued_value_reads_back_as_the_kernels_si_int() {
        let value = 0x0102_0304;
        let fields = QueuedFields { pid: 1, uid: 2, value: sigval_int(value) };
        let at = std::mem::offset_of!(QueuedFields, value);
        assert_eq!(at, 8);
        // SAFETY: QueuedFields is plain old data with no padding before `value`'s int and its
        // size covers `at + 4` bytes; it lives for the whole borrow.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&fields as *const QueuedFields).cast::<u8>(),
                std::mem::size_of::<QueuedFields>(),
            )
        };
        let si_int = i32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(si_int, value);
    }
}
