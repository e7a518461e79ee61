//! File descriptors: the standard streams' files, putting them on fds 0, 1 and 2, and what
//! becomes of the other descriptors the daemon inherited.
//!
//! Those are marked close-on-exec (`cloexec_inherited_fds`), or, where no Rust owner of one of
//! them can run again, closed (`close_inherited_fds`, an `unsafe fn`): closing a descriptor a
//! live `File` or `OwnedFd` holds makes it later use or close whatever reuses the number.
//! Both use `close_range(2)` on the gaps between the descriptors to keep: a handful of system
//! calls whatever `RLIMIT_NOFILE` is. Where the kernel lacks it (closing before Linux 5.9,
//! marking before 5.11), the open descriptors are listed from `/proc/self/fd` with
//! `getdents64(2)` into a stack buffer. Never a loop of `close(2)` up to the limit.
//!
//! The functions that run in the daemon (`close_inherited_fds`, `redirect_std_streams`) are
//! async-signal-safe: raw system calls on data prepared before the fork. The raw calls are in
//! [`crate::sys::fd`].
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{self, FcntlArg, OFlag};

use crate::error::{Error, Step};
use crate::sys::fd;

/// Where a standard stream of the daemon goes.
///
/// [`crate::DaemonContext::stdin`], `stdout` and `stderr` take a path (`&str`, `String`,
/// `&Path`, `PathBuf`, and references to those: appended to), an open `File` or `OwnedFd`, or
/// a `Stream`, just as [`crate::DaemonContext::pidfile`] takes any path:
///
/// ```
/// use std::path::{Path, PathBuf};
/// use daemonctx::{DaemonContext, Stream};
///
/// let log = String::from("/var/log/app.log");
/// let file = std::fs::File::open("/dev/null")?;
/// let _context = DaemonContext::new()
///     .pidfile(String::from("/run/app.pid"))
///     .stdout(&log)
///     .stderr(log.as_str())
///     .stdout(log)
///     .stdout(PathBuf::from("/var/log/app.out"))
///     .stdout(&PathBuf::from("/var/log/app.out"))
///     .stderr(Path::new("/var/log/app.err"))
///     .stdin(file)
///     .stdout(Stream::Inherit)
///     .stderr(Stream::Truncate("/var/log/app.err".into()));
/// # Ok::<(), std::io::Error>(())
/// ```
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
    /// Opened with [`crate::safe_open::open`]: no symbolic link is followed in a directory that
    /// users other than root and the caller can write.
    Append(std::path::PathBuf),
    /// A file opened before the fork: created if missing, truncated (for stdin: read).
    Truncate(std::path::PathBuf),
    /// For stderr only: the open file description stdout gets (`fcntl(2)` `F_DUPFD_CLOEXEC`
    /// of it), as a shell's `>F 2>&1`. Two descriptions of one file, each with its own
    /// offset, would write over each other's lines unless both append. Refused for stdin and
    /// stdout ([`Step::OpenStream`], `EINVAL`).
    ///
    /// ```
    /// use daemonctx::{DaemonContext, Stream};
    ///
    /// let context = DaemonContext::new()
    ///     .stdout(Stream::Truncate("/var/log/app.log".into()))
    ///     .stderr(Stream::SameAsStdout);
    /// # drop(context);
    /// ```
    SameAsStdout,
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

impl From<String> for Stream {
    fn from(path: String) -> Stream {
        Stream::Append(path.into())
    }
}

impl From<&String> for Stream {
    fn from(path: &String) -> Stream {
        Stream::Append(path.into())
    }
}

impl From<&std::path::PathBuf> for Stream {
    fn from(path: &std::path::PathBuf) -> Stream {
        Stream::Append(path.clone())
    }
}

impl From<&str> for Stream {
    fn from(path: &str) -> Stream {
        Stream::Append(path.into())
    }
}

impl Stream {
    /// Opens the stream's file in the original process, where errors can still be shown:
    /// `open(2)` with `O_CLOEXEC` (`/dev/null` read-write, checked by `fstat(2)` to be the null
    /// device; for `input` (stdin) a path is opened read-only, otherwise write-only, created
    /// with mode 0644).
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
                return duplicate_std_stream(target)
                    .map_err(|e| Error::os_nopath(Step::OpenStream, e));
            }
            Stream::SameAsStdout => {
                let e = io::Error::from_raw_os_error(libc::EINVAL);
                return Err(Error::os_nopath(Step::OpenStream, e));
            }
            Stream::Null => {
                return open_dev_null().map_err(|e| Error::os(Step::OpenStream, "/dev/null", e));
            }
            Stream::Append(path) | Stream::Truncate(path) if input => (path, OFlag::O_RDONLY),
            Stream::Append(path) => (path, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND),
            Stream::Truncate(path) => (path, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC),
        };
        open_file(&path, flags).map_err(|e| Error::os(Step::OpenStream, &path, e))
    }
}

/// Stderr's source for [`Stream::SameAsStdout`]: a copy of `stdout`'s (the opened stdout
/// stream), sharing its open file description: `fcntl(2)` `F_DUPFD_CLOEXEC`.
pub(crate) fn same_as_stdout(stdout: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    duplicate_above_std_streams(stdout).map_err(|e| Error::os_nopath(Step::OpenStream, e))
}

/// A copy of the invoker's standard stream `target` (0, 1 or 2) at 3 or above, as std borrows
/// it (`fcntl(2)` `F_DUPFD_CLOEXEC`).
fn duplicate_std_stream(target: RawFd) -> io::Result<OwnedFd> {
    match target {
        0 => duplicate_above_std_streams(std::io::stdin().as_fd()),
        1 => duplicate_above_std_streams(std::io::stdout().as_fd()),
        _ => duplicate_above_std_streams(std::io::stderr().as_fd()),
    }
}

/// Opens with [`crate::safe_open::open`] (no symbolic or hard link planted by another user
/// can redirect it) and `O_NONBLOCK`, so a FIFO without a reader fails (`ENXIO`) instead of
/// blocking the start; the flag is cleared again (`fcntl(2)` `F_SETFL`) for the daemon.
fn open_file(path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let fd = crate::safe_open::open(path, (flags | OFlag::O_NONBLOCK).bits(), 0o644)?;
    // F_SETFL ignores O_CLOEXEC, O_CREAT and O_TRUNC.
    fcntl::fcntl(&fd, FcntlArg::F_SETFL(flags))?;
    above_std_streams(fd)
}

/// `/dev/null`, read-write: one `open(2)` (`O_NOFOLLOW`), then `fstat(2)`: it must be the null
/// character device (major 1, minor 3), else `ENODEV`. No walk from `/` as [`open_file`] makes
/// (three system calls a directory): the device number says which file it is, whatever the
/// path went through, and nobody but root can make a character device.
fn open_dev_null() -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW;
    let fd = fcntl::open("/dev/null", flags, nix::sys::stat::Mode::empty())?;
    let meta = nix::sys::stat::fstat(&fd)?;
    let is_char_device = meta.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_char_device || meta.st_rdev != libc::makedev(1, 3) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    above_std_streams(fd)
}

/// Moves a descriptor to 3 or above, close-on-exec (`fcntl(2)` `F_DUPFD_CLOEXEC`).
fn above_std_streams(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    duplicate_above_std_streams(fd.as_fd())
}

/// A close-on-exec copy of `fd` at 3 or above (`fcntl(2)` `F_DUPFD_CLOEXEC`).
fn duplicate_above_std_streams(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd::duplicate_from(fd, 3)
}

/// Puts `sources[i]` on descriptor `i` for 0, 1, 2 with `dup2(2)` (the copies are not
/// close-on-exec). Async-signal-safe; returns the errno on failure.
pub(crate) fn redirect_std_streams(sources: [BorrowedFd<'_>; 3]) -> Result<(), i32> {
    for (target, source) in sources.into_iter().enumerate() {
        fd::dup2_std(source, target as RawFd)?;
    }
    Ok(())
}

/// Closes every descriptor from 3 up except those in `keep` (sorted ascending, all ≥ 3):
/// `close_range(2)` over the gaps, or where the kernel lacks it, `close(2)` of each one listed
/// in `/proc/self/fd`. Async-signal-safe; returns the errno on failure.
///
/// # Safety
/// No live owner (`OwnedFd`, `File`, socket, ...) of a descriptor that is closed is used or
/// dropped afterwards (see [`fd::close_range`]).
pub(crate) unsafe fn close_inherited_fds(keep: &[RawFd]) -> Result<(), i32> {
    // SAFETY: the caller's promise covers every descriptor not kept.
    match for_each_gap(keep, |first, last| unsafe { fd::close_range(first, last) }) {
        // SAFETY: as above.
        Err(libc::ENOSYS) | Err(libc::EINVAL) => unsafe { close_listed_fds(keep) },
        other => other,
    }
}

/// The fallback of [`close_inherited_fds`]: `close(2)` of every descriptor above 2 listed in
/// `/proc/self/fd` and not in `keep` (sorted). Async-signal-safe.
///
/// # Safety
/// As [`close_inherited_fds`].
unsafe fn close_listed_fds(keep: &[RawFd]) -> Result<(), i32> {
    fd::for_each_open_fd(|n| {
        if n > 2 && keep.binary_search(&n).is_err() {
            // SAFETY: the caller's promise covers every descriptor not kept.
            unsafe { fd::close(n) };
        }
    })
}

/// Marks every descriptor from 3 up except those in `keep` (sorted ascending, all ≥ 3)
/// close-on-exec, closing none: `close_range(2)` with `CLOSE_RANGE_CLOEXEC` over the gaps, or
/// where the kernel lacks it (before Linux 5.11), `fcntl(2)` `F_SETFD` on each one listed in
/// `/proc/self/fd`. Async-signal-safe; returns the errno on failure.
///
/// Whoever owns one of them keeps an open descriptor; only a program the process executes
/// does not inherit it.
pub(crate) fn cloexec_inherited_fds(keep: &[RawFd]) -> Result<(), i32> {
    match for_each_gap(keep, fd::cloexec_range) {
        Err(libc::ENOSYS) | Err(libc::EINVAL) => fd::for_each_open_fd(|n| {
            if n > 2 && keep.binary_search(&n).is_err() {
                let _ = fd::set_cloexec(n, true);
            }
        }),
        other => other,
    }
}

/// Calls `f(first, last)` for each range of descriptors from 3 up that `keep` (sorted) leaves.
fn for_each_gap(keep: &[RawFd], mut f: impl FnMut(u32, u32) -> Result<(), i32>) -> Result<(), i32> {
    let mut first: u32 = 3;
    for &fd in keep {
        let fd = fd as u32;
        if fd > first {
            f(first, fd - 1)?;
        }
        first = first.max(fd + 1);
    }
    f(first, u32::MAX)
}

/// Checks that `fd` is open (`fcntl(2)` `F_GETFD`), before the fork: preserving a closed
/// number would hand the daemon whatever is opened there next.
///
/// # Errors
/// [`Error::Os`] with [`Step::PreserveFd`], naming `/proc/self/fd/N`.
pub(crate) fn check_open(fd: RawFd) -> Result<(), Error> {
    let result = if fd < 0 { Err(libc::EBADF) } else { fd::check_open(fd) };
    result.map_err(|errno| {
        let e = io::Error::from_raw_os_error(errno);
        Error::os(Step::PreserveFd, format!("/proc/self/fd/{fd}"), e)
    })
}

/// Whether `fd` is open: `fcntl(2)` `F_GETFD`.
pub(crate) fn is_open(fd: RawFd) -> bool {
    fd >= 0 && fd::check_open(fd).is_ok()
}

/// Clears `FD_CLOEXEC` on `fd` so it survives `execve(2)`: `fcntl(2)` `F_SETFD`.
/// Async-signal-safe; returns the errno on failure.
pub(crate) fn keep_across_exec(fd: RawFd) -> Result<(), i32> {
    fd::set_cloexec(fd, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_stdout_shares_stdouts_description_and_is_refused_elsewhere() {
        for target in [0, 1] {
            let refused = Stream::SameAsStdout.open(target).unwrap_err();
            assert_eq!(refused.raw_os_error(), Some(libc::EINVAL), "target {target}");
        }
        let stdout = Stream::Null.open(1).unwrap();
        let stderr = same_as_stdout(stdout.as_fd()).unwrap();
        assert!(stderr.as_raw_fd() > 2 && stderr.as_raw_fd() != stdout.as_raw_fd());
        // One open file description: a flag set through one copy shows through the other.
        let flags = fcntl::fcntl(&stdout, FcntlArg::F_GETFL).unwrap();
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_APPEND;
        fcntl::fcntl(&stdout, FcntlArg::F_SETFL(flags)).unwrap();
        let shared = OFlag::from_bits_truncate(fcntl::fcntl(&stderr, FcntlArg::F_GETFL).unwrap());
        assert!(shared.contains(OFlag::O_APPEND));
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
            // SAFETY: this copy of the test binary runs only this test; the descriptors it
            // opened were turned into raw numbers, and nothing else it runs owns one above 2.
            unsafe { close_listed_fds(&keep) }.unwrap();
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
}
