//! Signal calls without a usable nix wrapper: `rt_sigaction(2)` straight to the kernel (glibc's
//! `sigaction(3)` refuses its reserved signals 32 and 33), `sigaction(2)` with a raw handler
//! address, `kill(2)` of this process or of a process group with any signal number (nix's
//! `Signal` has no real-time signals).

use std::ffi::c_int;

use crate::error::errno;

/// The kernel's `struct sigaction`, as `rt_sigaction(2)` takes it (enough to set `SIG_DFL` or
/// `SIG_IGN`).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

impl KernelSigaction {
    fn plain(handler: libc::sighandler_t) -> KernelSigaction {
        KernelSigaction { handler, flags: 0, restorer: 0, mask: 0 }
    }
}

/// `rt_sigaction(2)`: sets `signal` to `SIG_DFL` or `SIG_IGN` (`plain`), returning the handler
/// it had. Async-signal-safe; the errno on failure.
pub(crate) fn set_plain(
    signal: c_int,
    plain: libc::sighandler_t,
) -> Result<libc::sighandler_t, i32> {
    if plain != libc::SIG_DFL && plain != libc::SIG_IGN {
        return Err(libc::EINVAL);
    }
    let action = KernelSigaction::plain(plain);
    let mut old = KernelSigaction::plain(libc::SIG_DFL);
    // SAFETY: action and old are valid kernel sigactions for the call's duration; the size is
    // that of the kernel's sigset_t (64 signals); SIG_DFL and SIG_IGN need no handler code.
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigaction, signal, &action, &mut old, 8usize) };
    if rc != 0 { Err(errno()) } else { Ok(old.handler) }
}

/// A signal's action as the kernel gave it back, to put back with [`restore`].
pub(crate) struct Saved {
    signal: c_int,
    action: KernelSigaction,
}

/// `rt_sigaction(2)`: sets `signal` to `SIG_IGN`, returning the whole previous action.
/// Async-signal-safe; the errno on failure.
pub(crate) fn ignore(signal: c_int) -> Result<Saved, i32> {
    let action = KernelSigaction::plain(libc::SIG_IGN);
    let mut old = KernelSigaction::plain(libc::SIG_DFL);
    // SAFETY: action and old are valid kernel sigactions for the call's duration; the size is
    // that of the kernel's sigset_t (64 signals).
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigaction, signal, &action, &mut old, 8usize) };
    if rc != 0 { Err(errno()) } else { Ok(Saved { signal, action: old }) }
}

/// `rt_sigaction(2)`: puts back an action [`ignore`] saved. Async-signal-safe.
pub(crate) fn restore(saved: Saved) -> Result<(), i32> {
    let no_old: *mut KernelSigaction = std::ptr::null_mut();
    // SAFETY: saved.action is exactly what the kernel returned for this signal, so it names a
    // handler that was installed already (or SIG_DFL/SIG_IGN); valid for the call's duration.
    let rc = unsafe {
        libc::syscall(libc::SYS_rt_sigaction, saved.signal, &saved.action, no_old, 8usize)
    };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// `rt_sigaction(2)` without a new action: the current handler of `signal` (which, unlike
/// glibc's `sigaction(3)`, answers for the reserved signals too). Async-signal-safe.
pub(crate) fn handler_of(signal: c_int) -> Result<libc::sighandler_t, i32> {
    let mut old = KernelSigaction::plain(libc::SIG_DFL);
    let no_new: *const KernelSigaction = std::ptr::null();
    // SAFETY: old is a valid, writable kernel sigaction for the call's duration; the size is
    // that of the kernel's sigset_t (64 signals).
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigaction, signal, no_new, &mut old, 8usize) };
    if rc != 0 { Err(errno()) } else { Ok(old.handler) }
}

/// `sigaction(2)` with an empty mask and `SA_RESTART`. Async-signal-safe; the errno on failure.
///
/// # Safety
/// `handler` is `SIG_DFL`, `SIG_IGN`, or the address of an `extern "C" fn(c_int)` that makes
/// only async-signal-safe calls (signal-safety(7)) and touches only data that is safe to touch
/// from any point of the program (atomics, data never freed).
pub(crate) unsafe fn install(signal: c_int, handler: libc::sighandler_t) -> Result<(), i32> {
    // SAFETY: sigaction is plain old data, valid all zero; filled in, it is a valid argument,
    // and the caller vouches for handler.
    unsafe {
        let mut action = std::mem::zeroed::<libc::sigaction>();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// `kill(2)` of the process group `pgid` (as `-pgid`) with `signal`, any number (0 only
/// checks that the group has a member). Async-signal-safe; the errno on failure (`ESRCH` for
/// an empty group, `EINVAL` for a number that is no group: 0 or past `i32::MAX`).
pub(crate) fn kill_group(pgid: u32, signal: c_int) -> Result<(), i32> {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else { return Err(libc::EINVAL) };
    if pgid == 0 {
        return Err(libc::EINVAL); // -0 would be the caller's own group
    }
    // SAFETY: kill takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(-pgid, signal) } != 0 { Err(errno()) } else { Ok(()) }
}

/// `kill(2)` of the process `pid` with `signal`, any number. Async-signal-safe; the errno on
/// failure (`EINVAL` for 0 or a number past `i32::MAX`, which would name groups).
pub(crate) fn kill_pid(pid: u32, signal: c_int) -> Result<(), i32> {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return Err(libc::EINVAL) };
    if pid == 0 {
        return Err(libc::EINVAL); // 0 would be the caller's own group
    }
    // SAFETY: kill takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 { Err(errno()) } else { Ok(()) }
}

/// `kill(2)` of this very process (`getpid(2)`) with `signal`, any number. Async-signal-safe.
pub(crate) fn kill_self(signal: c_int) -> Result<(), i32> {
    // SAFETY: getpid and kill take and return plain integers; the target is this process.
    if unsafe { libc::kill(libc::getpid(), signal) } != 0 { Err(errno()) } else { Ok(()) }
}
