//! Open-file-description locks over the whole file, through nix's `fcntl(2)` wrapper
//! (`F_OFD_SETLK`, `F_OFD_GETLK`): only the `struct flock` is built here, as all-zero fields
//! and a lock type (its layout has padding or extra fields on some architectures, so it is not
//! written as a literal).
//!
//! Async-signal-safe: no allocation; the daemon calls [`set`] between `fork(2)` and
//! `execve(2)`.

use std::os::fd::BorrowedFd;

use nix::fcntl::{FcntlArg, fcntl};

/// A lock kind: `F_RDLCK` (shared) or `F_WRLCK` (exclusive).
pub(crate) type Kind = libc::c_int;

/// A `struct flock` over the whole file (`l_whence` `SEEK_SET`, `l_start` and `l_len` 0) of
/// `kind`, with `l_pid` 0 as `F_OFD_*` require.
fn whole_file(kind: Kind) -> libc::flock {
    // SAFETY: flock is plain old data (integers only); all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

/// `fcntl(2)` `F_OFD_SETLK` of `kind` over the whole file, without waiting (`EAGAIN` or
/// `EACCES` when another open file description holds a conflicting lock).
pub(crate) fn set(fd: BorrowedFd<'_>, kind: Kind) -> nix::Result<()> {
    fcntl(fd, FcntlArg::F_OFD_SETLK(&whole_file(kind))).map(drop)
}

/// `fcntl(2)` `F_OFD_GETLK` for a write lock over the whole file: whether any other open file
/// description holds a lock on it now, without taking one.
pub(crate) fn is_held(fd: BorrowedFd<'_>) -> nix::Result<bool> {
    let mut lock = whole_file(libc::F_WRLCK);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut lock))?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}
