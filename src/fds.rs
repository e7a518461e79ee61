//! File descriptors: closing what the daemon inherited, and putting files on fds 0, 1 and 2.
//!
//! Closing uses `close_range(2)` on the gaps between the descriptors to keep: a handful of
//! system calls whatever `RLIMIT_NOFILE` is. Where the kernel lacks it (before Linux 5.9), the
//! open descriptors are listed from `/proc/self/fd` with `getdents64(2)` into a stack buffer.
//! Never a loop of `close(2)` up to the limit.
//!
//! The functions that run in the daemon (`close_inherited_fds`, `redirect_std_streams`) are
//! async-signal-safe: raw system calls on data prepared before the fork.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{Error, Step, errno};
use crate::pidfile::path_to_cstring;

/// Where a standard stream of the daemon goes.
#[derive(Debug, Default)]
pub enum Stream {
    /// `/dev/null` (the default).
    #[default]
    Null,
    /// What the invoking process has on that descriptor (a terminal, systemd's journal socket).
    Inherit,
    /// An open file (or socket, pipe, terminal) given by the caller.
    Fd(OwnedFd),
    /// A file opened before the fork: created if missing, appended to (for stdin: read).
    Append(std::path::PathBuf),
    /// A file opened before the fork: created if missing, truncated (for stdin: read).
    Truncate(std::path::PathBuf),
}

impl From<std::fs::File> for Stream {
    fn from(file: std::fs::File) -> Stream {
        Stream::Fd(file.into())
    }
}

impl From<OwnedFd> for Stream {
    fn from(fd: OwnedFd) -> Stream {
        Stream::Fd(fd)
    }
}

impl From<&Path> for Stream {
    fn from(path: &Path) -> Stream {
        Stream::Append(path.to_path_buf())
    }
}

impl From<std::path::PathBuf> for Stream {
    fn from(path: std::path::PathBuf) -> Stream {
        Stream::Append(path)
    }
}

impl From<&str> for Stream {
    fn from(path: &str) -> Stream {
        Stream::Append(path.into())
    }
}

impl Stream {
    /// Opens the stream's file in the original process, where errors can still be shown:
    /// `open(2)` with `O_CLOEXEC` (`/dev/null` read-write; for `input` (stdin) a path is opened
    /// read-only, otherwise write-only, created with mode 0644).
    ///
    /// The descriptor is at 3 or above (`fcntl(2)` `F_DUPFD_CLOEXEC`), so putting it on 0, 1
    /// or 2 never overwrites another stream's source.
    pub(crate) fn open(self, target: RawFd) -> Result<OwnedFd, Error> {
        let input = target == 0;
        let (path, flags) = match self {
            Stream::Fd(fd) => {
                return above_std_streams(fd).map_err(|e| Error::os_nopath(Step::OpenStream, e));
            }
            Stream::Inherit => {
                return duplicate_above_std_streams(target)
                    .map_err(|e| Error::os_nopath(Step::OpenStream, e));
            }
            Stream::Null => (std::path::PathBuf::from("/dev/null"), libc::O_RDWR),
            Stream::Append(path) | Stream::Truncate(path) if input => (path, libc::O_RDONLY),
            Stream::Append(path) => (path, libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND),
            Stream::Truncate(path) => (path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC),
        };
        open_file(&path, flags).map_err(|e| Error::os(Step::OpenStream, &path, e))
    }
}

/// `open(2)` with `O_NONBLOCK`, so a FIFO without a reader fails (`ENXIO`) instead of
/// blocking the start; the flag is cleared again (`fcntl(2)` `F_SETFL`) for the daemon.
fn open_file(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c_path = path_to_cstring(path)?;
    let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: c_path is NUL-terminated; the mode is the variadic argument.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_NONBLOCK, 0o644) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL takes an int flag set; O_CLOEXEC and O_CREAT/O_TRUNC are ignored by it.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: fd was just opened and is owned by nobody else.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // SAFETY: open just returned this descriptor; nothing else owns it.
    above_std_streams(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Moves a descriptor to 3 or above, close-on-exec (`fcntl(2)` `F_DUPFD_CLOEXEC`).
fn above_std_streams(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    duplicate_above_std_streams(fd.as_raw_fd())
}

/// A close-on-exec copy of `fd` at 3 or above (`fcntl(2)` `F_DUPFD_CLOEXEC`).
fn duplicate_above_std_streams(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new descriptor (EBADF if fd is closed).
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// Puts `sources[i]` on descriptor `i` for 0, 1, 2 with `dup2(2)` (the copies are not
/// close-on-exec). Async-signal-safe; returns the errno on failure.
pub(crate) fn redirect_std_streams(sources: &[RawFd; 3]) -> Result<(), i32> {
    for (target, source) in sources.iter().enumerate() {
        // SAFETY: both are descriptor numbers; dup2 has no memory preconditions.
        if unsafe { libc::dup2(*source, target as RawFd) } < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Closes every descriptor from 3 up except those in `keep` (sorted ascending, all ≥ 3).
/// Async-signal-safe; returns the errno on failure.
pub(crate) fn close_inherited_fds(keep: &[RawFd]) -> Result<(), i32> {
    match close_gaps(keep) {
        Err(libc::ENOSYS) | Err(libc::EINVAL) => close_listed_fds(keep),
        other => other,
    }
}

/// `close_range(2)` over each gap between the descriptors to keep.
fn close_gaps(keep: &[RawFd]) -> Result<(), i32> {
    let mut first: u32 = 3;
    for &fd in keep {
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = first.max(fd + 1);
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), i32> {
    // SAFETY: close_range takes plain integers; closing descriptors the daemon does not use is
    // its purpose, and no Rust object in the daemon owns them.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// The fallback: list `/proc/self/fd` with `getdents64(2)` into a stack buffer and close what is
/// not kept. Descriptors are only closed after each batch is read, the directory's own last.
pub(crate) fn close_listed_fds(keep: &[RawFd]) -> Result<(), i32> {
    const PROC_SELF_FD: &CStr = c"/proc/self/fd";
    // SAFETY: the path is a NUL-terminated literal.
    let dir = unsafe {
        libc::open(PROC_SELF_FD.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
    };
    if dir < 0 {
        return Err(errno());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is a writable buffer of buf.len() bytes for the kernel to fill.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            let e = errno();
            // SAFETY: dir is the descriptor opened above.
            unsafe { libc::close(dir) };
            return Err(e);
        }
        if n == 0 {
            break;
        }
        for_each_dirent_fd(&buf[..n as usize], |fd| {
            if fd > 2 && fd != dir && keep.binary_search(&fd).is_err() {
                // SAFETY: fd is an open descriptor the daemon does not keep.
                unsafe { libc::close(fd) };
            }
        });
    }
    // SAFETY: dir is the descriptor opened above.
    unsafe { libc::close(dir) };
    Ok(())
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

/// Checks that `fd` is open (`fcntl(2)` `F_GETFD`), before the fork: preserving a closed
/// number would hand the daemon whatever is opened there next.
///
/// # Errors
/// [`Error::Os`] with [`Step::PreserveFd`], naming `/proc/self/fd/N`.
pub(crate) fn check_open(fd: RawFd) -> Result<(), Error> {
    // SAFETY: F_GETFD takes no argument and touches no memory.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        let e = if fd < 0 {
            io::Error::from_raw_os_error(libc::EBADF)
        } else {
            io::Error::last_os_error()
        };
        return Err(Error::os(Step::PreserveFd, format!("/proc/self/fd/{fd}"), e));
    }
    Ok(())
}

/// Whether `fd` is open: `fcntl(2)` `F_GETFD`.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no argument and touches no memory.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Clears `FD_CLOEXEC` on `fd` so it survives `execve(2)`: `fcntl(2)` `F_SETFD`.
/// Async-signal-safe; returns the errno on failure.
pub(crate) fn keep_across_exec(fd: RawFd) -> Result<(), i32> {
    // SAFETY: F_SETFD takes an int flag set; no memory is involved.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 { Err(errno()) } else { Ok(()) }
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

    /// The `/proc/self/fd` fallback, run for real in a fresh copy of this test binary (closing
    /// descriptors in the harness itself would be unsafe): it opens descriptors, keeps two,
    /// closes the rest by listing, and prints what is left.
    #[test]
    fn listing_fallback_closes_all_but_the_kept() {
        const CHILD: &str = "DAEMONCTX_CLOSE_LISTED_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let opened: Vec<RawFd> = (0..40)
                .map(|_| std::fs::File::open("/dev/null").unwrap())
                .map(std::os::fd::IntoRawFd::into_raw_fd)
                .collect();
            let keep = [opened[7], opened[30]];
            close_listed_fds(&keep).unwrap();
            let left: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let line = format!("fallback report: {keep:?} | {left:?}\n");
            std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes()).unwrap();
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "fds::tests::listing_fallback_closes_all_but_the_kept"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        let report = stdout.split("fallback report: ").nth(1).expect("no report");
        let (kept, left) = report.lines().next().unwrap().split_once(" | ").unwrap();
        let numbers = |list: &str| -> Vec<RawFd> {
            let list = list.trim_matches(['[', ']']);
            list.split(", ").map(|n| n.trim_matches('"').parse().unwrap()).collect()
        };
        let (kept, mut left) = (numbers(kept), numbers(left));
        left.sort();
        // 0-2, the two kept, and the descriptor read_dir used to list /proc/self/fd.
        assert_eq!(left.len(), 6, "left {left:?}, kept {kept:?}");
        assert_eq!(&left[..3], &[0, 1, 2]);
        assert!(kept.iter().all(|fd| left.contains(fd)), "left {left:?}, kept {kept:?}");
    }

    #[test]
    fn dirent_walk_finds_every_open_fd() {
        // Read this process's /proc/self/fd the way the fallback does, without closing anything.
        let dir = std::fs::File::open("/proc/self/fd").unwrap();
        let mut buf = [0u8; 4096];
        // SAFETY: buf is writable for buf.len() bytes.
        let n = unsafe {
            libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len())
        };
        assert!(n > 0);
        let mut seen = Vec::new();
        for_each_dirent_fd(&buf[..n as usize], |fd| seen.push(fd));
        assert!(seen.contains(&0) && seen.contains(&dir.as_raw_fd()), "{seen:?}");
    }
}
