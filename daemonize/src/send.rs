//! `daemonize --send SIGNAL -p FILE`: a signal for the daemon's COMMAND (a reload, say).
//!
//! The process holding the pidfile's lock is pinned with `pidfd_open(2)`. When it is COMMAND
//! itself (exec mode) it gets SIGNAL (`pidfd_send_signal(2)`). When it is a supervisor (it blocks
//! [`relay_signal`], read from its `signalfd(2)`, and was started with `--supervise`), it gets [`relay_signal`] with SIGNAL as the
//! queued value (`SI_QUEUE`, as `sigqueue(3)` sends), and passes SIGNAL on to COMMAND, whatever
//! `--forward` says: so `--send HUP` reaches COMMAND while a plain SIGHUP to the supervisor only
//! reopens its log files. The ordering rule: /proc is read while the pidfd pins the process, and
//! trusted only if the process has not exited by then.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use daemonctx::Status;
use daemonctx::pidfile::Inspected;
use daemonctx::process::{self, Pinned};

use crate::cli::{Cli, code::send::*};
use crate::message;

/// The real-time signal that asks a supervisor to pass the queued signal on to COMMAND:
/// `SIGRTMIN`, the first one the C library leaves to programs.
pub fn relay_signal() -> i32 {
    libc::SIGRTMIN()
}

/// Sends `signal` to the COMMAND of the daemon that the `-p` pidfile names; an exit code of
/// [`crate::cli::code::send`].
pub fn send(cli: &Cli, signal: i32) -> u8 {
    let path = cli.pidfile.as_deref().expect("clap requires --pidfile with --send");
    let name = signal_name(signal);
    let daemon = match pin_daemon(path) {
        Ok(Some(pinned)) => pinned,
        Ok(None) => {
            eprintln!("daemonize: cannot send {name}: {} names no running daemon", path.display());
            return NOT_RUNNING;
        }
        Err(why) => {
            eprintln!("daemonize: cannot send {name} to the daemon of {}: {why}", path.display());
            return TROUBLE;
        }
    };
    let pid = daemon.pid();
    let supervised = is_supervisor(pid) && !daemon.has_exited();
    let sent = match supervised {
        true => queue_signal(daemon.pidfd(), relay_signal(), signal),
        false => daemon.signal(signal),
    };
    match sent {
        Ok(()) if supervised => {
            println!("sent {name} to COMMAND through its supervisor (pid {pid})");
            SENT
        }
        Ok(()) => {
            println!("sent {name} (pid {pid})");
            SENT
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            eprintln!("daemonize: cannot send {name}: pid {pid} has exited");
            NOT_RUNNING
        }
        Err(e) => {
            eprintln!("daemonize: cannot send {name} to pid {pid}: {}", message::os_text(&e));
            TROUBLE
        }
    }
}

/// The process holding the pidfile's lock, pinned by a pidfd: the pid it names if that one
/// holds the lock, else the lowest holder (a `-l` lock file names nobody). `None` when nobody
/// holds it.
fn pin_daemon(path: &Path) -> Result<Option<Pinned>, String> {
    let pidfile = match Inspected::open(path) {
        Ok(pidfile) => pidfile,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(message::os_text(&e)),
    };
    let named = match pidfile.status() {
        Status::Absent | Status::Stale(_) => return Ok(None),
        Status::Unknown(e) => return Err(message::chain(&e)),
        Status::Running(named) => named,
    };
    let (dev, ino) = pidfile.identity();
    if let Some(pid) = named
        && let Ok(pinned) = Pinned::open(pid)
        && process::holds_lock_on(pid, dev, ino) != Some(false)
        && !pinned.has_exited()
    {
        return Ok(Some(pinned));
    }
    Ok(process::pin_lock_holders(dev, ino, 1).pop())
}

/// Whether `pid` is a `daemonize --supervise`: it blocks [`relay_signal`] (it reads it from its
/// signalfd) and `--supervise` is among its arguments (`/proc/PID/cmdline`). A COMMAND that
/// happens to block the signal itself is still signalled directly.
fn is_supervisor(pid: u32) -> bool {
    let supervise_argument = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == b"--supervise"));
    supervise_argument && blocks_signal(pid, relay_signal())
}

/// Whether `pid` blocks `signal` (`SigBlk` in `/proc/PID/status`): a supervisor reads it from
/// its signalfd.
fn blocks_signal(pid: u32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    mask.is_some_and(|mask| (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0)
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

/// `pidfd_send_signal(2)` with a `siginfo_t` as `sigqueue(3)` fills it: `SI_QUEUE`, our pid
/// and uid, and `value` as the integer the receiver reads (`ssi_int` from a signalfd).
fn queue_signal(pidfd: &OwnedFd, signal: i32, value: i32) -> std::io::Result<()> {
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
    // SAFETY: info is a siginfo_t-sized, initialised buffer that outlives the call; pidfd is an
    // open pidfd. The kernel copies the buffer and accepts SI_QUEUE from another process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            &info as *const SigInfo,
            0,
        )
    };
    if rc != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// A `union sigval` holding `value` as its `sival_int`, the rest zero, as `sigqueue(3)` with
/// `sival_int` fills it.
fn sigval_int(value: i32) -> SigVal {
    let mut sigval = SigVal { sival_ptr: std::ptr::null_mut() };
    sigval.sival_int = value;
    sigval
}

/// `SIGHUP`, or `signal 40` for one without a name.
fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(name) => name.to_string(),
        Err(_) => format!("signal {signal}"),
    }
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
