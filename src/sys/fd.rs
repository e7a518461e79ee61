//! Descriptor calls without a nix wrapper (or whose nix wrapper returns a raw number):
//! `close_range(2)` (closing, or marking close-on-exec), listing `/proc/self/fd` with
//! `getdents64(2)`, `close(2)` of a raw number, `fcntl(2)` `F_DUPFD_CLOEXEC` into an `OwnedFd`;
//! and `dup2(2)` onto the standard streams by number (nix's safe `dup2_stdout` and kin).
//!
//! Closing a descriptor by number is unsound when a live Rust owner (an `OwnedFd`, a `File`, a
//! socket) holds that number: the owner later uses or closes whatever reuses it, and a debug
//! build aborts with "IO Safety violation". So closing is `unsafe`; marking close-on-exec is
//! not (the owner's descriptor stays open, only an `execve(2)` drops it).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::errno;

/// `close_range(2)` over `first..=last` with no flags: closes every descriptor in the range.
/// Async-signal-safe; the errno on failure (`ENOSYS` before Linux 5.9).
///
/// # Safety
/// No live owner (`OwnedFd`, `File`, socket, ...) of a descriptor in the range is used or
/// dropped afterwards: the process replaces its image (`execve(2)`) or ends (`_exit(2)`)
/// without running their code, or the caller knows that nothing owns those numbers.
pub(crate) unsafe fn close_range(first: u32, last: u32) -> Result<(), i32> {
    // SAFETY: close_range takes plain integers; the caller guarantees that no live owner of a
    // descriptor in the range will use it again.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// `close_range(2)` over `first..=last` with `CLOSE_RANGE_CLOEXEC`: marks every descriptor in
/// the range close-on-exec, closing none. Async-signal-safe; the errno on failure (`EINVAL`
/// before Linux 5.11).
pub(crate) fn cloexec_range(first: u32, last: u32) -> Result<(), i32> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on open descriptors: every
    // owner keeps an open descriptor, so no owner is invalidated.
    let rc =
        unsafe { libc::syscall(libc::SYS_close_range, first, last, libc::CLOSE_RANGE_CLOEXEC) };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// `close(2)` of a raw number, ignoring the result. Async-signal-safe.
///
/// # Safety
/// As for [`close_range`]: no live owner of `fd` uses or drops it afterwards.
pub(crate) unsafe fn close(fd: RawFd) {
    // SAFETY: close takes a plain integer; the caller guarantees that nothing owns fd any more.
    unsafe { libc::close(fd) };
}

/// `fcntl(2)` `F_SETFD`: sets (`true`) or clears (`false`) `FD_CLOEXEC` on the number `fd`.
/// Async-signal-safe; the errno on failure (`EBADF` when nothing is open there).
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> Result<(), i32> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD takes an int flag set and touches no memory; changing FD_CLOEXEC keeps
    // the descriptor open, so whoever owns it still holds a valid descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 { Err(errno()) } else { Ok(()) }
}

/// `fcntl(2)` `F_DUPFD_CLOEXEC`: a close-on-exec copy of `fd` on the lowest free number from
/// `lowest` up, owned by the caller.
pub(crate) fn duplicate_from(fd: BorrowedFd<'_>, lowest: RawFd) -> std::io::Result<OwnedFd> {
    let copy = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(lowest))?;
    // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// `fcntl(2)` `F_GETFD`: whether anything is open on the number `fd`; the errno if not.
pub(crate) fn check_open(fd: RawFd) -> Result<(), i32> {
    // SAFETY: F_GETFD takes no argument and touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 { Err(errno()) } else { Ok(()) }
}

/// `dup2(2)` of `source` onto the number `target`, which then refers to `source`'s open file
/// description (the old one is released from that number). Async-signal-safe; the errno on
/// failure. (nix's `dup2` asks for `&mut OwnedFd`, which a caller holding `&self` has not.)
///
/// # Safety
/// The caller owns `target` (through a value of its own, such as [`crate::Pidfile`]'s
/// descriptor), and no code that borrowed it relies on it referring to the old description
/// afterwards.
pub(crate) unsafe fn dup2_over(source: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), i32> {
    // SAFETY: both are open descriptors; the caller vouches that replacing what target refers
    // to breaks no owner's or borrower's expectation.
    if unsafe { libc::dup2(source.as_raw_fd(), target.as_raw_fd()) } < 0 {
        return Err(errno());
    }
    Ok(())
}

/// `dup2(2)` of `source` onto the standard stream `target` (0, 1 or 2) through nix's safe
/// `dup2_stdin`, `dup2_stdout` and `dup2_stderr`; the copy is not close-on-exec.
/// Async-signal-safe (one system call, no allocation); the errno on failure.
///
/// Descriptors 0 to 2 are the process's standard streams, which std borrows for the whole run
/// (`std::io::stdout().as_fd()`) and never closes: `dup2(2)` replaces the file they refer to
/// in one step, so every borrower still holds an open descriptor.
pub(crate) fn dup2_std(source: BorrowedFd<'_>, target: RawFd) -> Result<(), i32> {
    let result = match target {
        0 => nix::unistd::dup2_stdin(source),
        1 => nix::unistd::dup2_stdout(source),
        2 => nix::unistd::dup2_stderr(source),
        _ => return Err(libc::EBADF),
    };
    result.map_err(|e| e as i32)
}

/// Calls `f` with every descriptor open in this process, listed from `/proc/self/fd` with
/// `getdents64(2)` into a stack buffer (`open(2)`, `getdents64(2)`, `close(2)`): no allocation,
/// so it is async-signal-safe. `f` is called only after each batch is read, so it may close
/// what it is given; the listing's own descriptor is never given.
pub(crate) fn for_each_open_fd(mut f: impl FnMut(RawFd)) -> Result<(), i32> {
    const PROC_SELF_FD: &CStr = c"/proc/self/fd";
    let flags =
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
    // nix passes a &CStr on without copying it.
    let dir = nix::fcntl::open(PROC_SELF_FD, flags, nix::sys::stat::Mode::empty())
        .map_err(|e| e as i32)?;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is a writable buffer of buf.len() bytes for the kernel to fill, and dir
        // is an open directory descriptor.
        let n = unsafe {
            libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len())
        };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            return Ok(());
        }
        for_each_dirent_fd(&buf[..n as usize], |fd| {
            if fd != dir.as_raw_fd() {
                f(fd);
            }
        });
    }
}

/// Calls `f` with each numeric name in a buffer of `struct linux_dirent64` records.
fn for_each_dirent_fd(buf: &[u8], mut f: impl FnMut(RawFd)) {
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    const RECLEN_AT: usize = 16;
    const NAME_AT: usize = 19;
    let mut at = 0;
    while at + NAME_AT < buf.len() {
        let reclen = u16::from_ne_bytes([buf[at + RECLEN_AT], buf[at + RECLEN_AT + 1]]) as usize;
        if reclen <= NAME_AT || at + reclen > buf.len() {
            return;
        }
        if let Some(fd) = parse_fd_name(&buf[at + NAME_AT..at + reclen]) {
            f(fd);
        }
        at += reclen;
    }
}

/// Parses a NUL-terminated decimal name; `None` for `.`, `..` and anything else.
fn parse_fd_name(name: &[u8]) -> Option<RawFd> {
    let mut value: RawFd = 0;
    let mut digits = 0;
    for &byte in name.iter().take_while(|b| **b != 0) {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(RawFd::from(byte - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fd_name_reads_only_numbers() {
        assert_eq!(parse_fd_name(b"17\0"), Some(17));
        assert_eq!(parse_fd_name(b".\0"), None);
        assert_eq!(parse_fd_name(b"..\0"), None);
        assert_eq!(parse_fd_name(b"\0"), None);
        assert_eq!(parse_fd_name(b"99999999999\0"), None);
    }

    #[test]
    fn listing_finds_every_open_fd_but_its_own() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut seen = Vec::new();
        for_each_open_fd(|fd| seen.push(fd)).unwrap();
        assert!(seen.contains(&0) && seen.contains(&file.as_raw_fd()), "{seen:?}");
    }
}
