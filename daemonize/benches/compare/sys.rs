//! Thin wrappers over the system calls the bench makes that neither std nor
//! `daemonctx::process` offers; each `unsafe` block is one call.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// `prctl(2)` `PR_SET_CHILD_SUBREAPER`: orphaned descendants become our children.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument; no memory is passed.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(2)` `PR_SET_TIMERSLACK` to 1 ns, so that short sleeps end on time.
pub fn tighten_timer_slack() -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `poll(2)` for `POLLIN` on `fds` (negative ones ignored), at most `timeout`, retried on
/// `EINTR`. Which descriptors are readable.
///
/// # Panics
/// When poll fails otherwise.
pub fn poll_readable<const N: usize>(fds: &[RawFd; N], timeout: Duration) -> [bool; N] {
    let deadline = Instant::now() + timeout;
    let mut polled = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: polled is an array of N initialised pollfd structs, valid for the call.
        let result = unsafe { libc::poll(polled.as_mut_ptr(), N as libc::nfds_t, ms) };
        if result >= 0 {
            return polled.map(|p| p.revents != 0);
        }
        let error = io::Error::last_os_error();
        assert_eq!(error.kind(), io::ErrorKind::Interrupted, "poll: {error}");
    }
}

/// `waitpid(2)` `WNOHANG` on `pid`: reaps it if it is our child and has exited.
pub fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer for the call.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
}

/// `waitpid(2)` `-1, WNOHANG` until nothing is left to reap: the orphans that exited. Only
/// called while no `std::process::Child` of ours is unwaited.
pub fn reap_orphans() {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer for each call.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

/// `getrlimit(2)` `RLIMIT_NOFILE`: (soft, hard).
pub fn nofile_limit() -> (u64, u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: limit is a valid out-pointer for one rlimit.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(result, 0, "getrlimit: {}", io::Error::last_os_error());
    (limit.rlim_cur, limit.rlim_max)
}

/// `setrlimit(2)` `RLIMIT_NOFILE`: the soft limit to `soft`, the hard one unchanged.
pub fn set_nofile_soft(soft: u64) -> io::Result<()> {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: nofile_limit().1 };
    // SAFETY: limit is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `dup2(2)` of `/dev/null` onto `target`: the new descriptor has no `FD_CLOEXEC`, so every
/// command spawned inherits it. Closed when the returned `OwnedFd` is dropped.
///
/// # Errors
/// `EBUSY` when `target` is already open (it would belong to someone else); the errors of
/// `open(2)` and `dup2(2)`.
pub fn dup_devnull_to(target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the flags of a descriptor number; no memory is passed.
    if unsafe { libc::fcntl(target, libc::F_GETFD) } != -1 {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: null is open for the call and target was checked to be free, so dup2 closes
    // no descriptor that anything owns.
    if unsafe { libc::dup2(null.as_raw_fd(), target) } != target {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup2 just made target a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(target) })
}

/// `clock_gettime(2)` `CLOCK_MONOTONIC`, in nanoseconds: comparable across processes.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: now is a valid out-pointer for one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `fork(2)`: returns in the child; the parent leaves at once with `_exit(0)`.
///
/// # Panics
/// When fork fails (then nothing was created).
pub fn fork_and_leave_parent() {
    // SAFETY: the process has a single thread (daemon mode is entered before any thread is
    // created), so the child may go on running ordinary code.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", io::Error::last_os_error()),
        0 => {}
        _ => exit_now(0),
    }
}

/// `setsid(2)`: a new session, without a controlling terminal.
pub fn setsid() {
    // SAFETY: setsid has no memory preconditions.
    if unsafe { libc::setsid() } < 0 {
        panic!("setsid: {}", io::Error::last_os_error());
    }
}

/// `_exit(2)`: leave at once, without atexit handlers or destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}
