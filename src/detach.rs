//! Detaching: `fork(2)`, `setsid(2)`, `fork(2)`, and reaping what the original process forked.
//!
//! The original process becomes a child subreaper (`prctl(2)` `PR_SET_CHILD_SUBREAPER`) for the
//! length of the start, so the daemon, orphaned when the intermediate child exits, is adopted by
//! the original process: a daemon that dies before it is ready can be reaped and its exit status
//! reported. The previous subreaper setting is restored afterwards.
//!
//! The intermediate child runs between `fork(2)` and `_exit(2)`: raw system calls only.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::error::{Error, Step, errno};
use crate::ready::{self, Record};

/// The exit status of an intermediate child or daemon whose setup failed.
pub(crate) const EXIT_SETUP_FAILED: i32 = 1;

/// Which process returned from [`double_fork`].
#[derive(Debug)]
pub(crate) enum Branch {
    /// The caller, with the pid of the intermediate child.
    Original { intermediate: libc::pid_t },
    /// The daemon: a new session's member that is not its leader.
    Daemon,
}

/// `fork(2)`; the child calls `setsid(2)`, closes every descriptor above `highest`
/// (`close_range(2)`: a large inherited table would otherwise be copied again), calls `fork(2)`
/// again and exits (reporting on `report` only if one of those fails). Returns in the original
/// process and in the daemon, which announces its own pid, so that its records arrive in order.
///
/// # Errors
/// [`Error::Os`] with [`Step::Fork`] when the first fork fails. Failures in the intermediate
/// child arrive over the report pipe.
pub(crate) fn double_fork(report: RawFd, highest: RawFd) -> Result<Branch, Error> {
    // SAFETY: the caller checked that this process has a single thread, and the child only
    // makes async-signal-safe calls before it forks again or exits.
    match unsafe { libc::fork() } {
        -1 => Err(Error::os_nopath(Step::Fork, io::Error::last_os_error())),
        0 => Ok(intermediate_child(report, highest)),
        pid => Ok(Branch::Original { intermediate: pid }),
    }
}

/// Child of the first fork, between `fork(2)` and `_exit(2)`: async-signal-safe calls only.
/// Returns only in the daemon.
fn intermediate_child(report: RawFd, highest: RawFd) -> Branch {
    // SAFETY: setsid has no preconditions.
    if unsafe { libc::setsid() } < 0 {
        fail(report, Step::Setsid, errno());
    }
    // Only shrinks what the daemon inherits; the daemon closes what is left over either way.
    // SAFETY: close_range takes plain integers; nothing in this process owns those numbers.
    unsafe { libc::syscall(libc::SYS_close_range, highest as u32 + 1, u32::MAX, 0u32) };
    // SAFETY: as in double_fork: single-threaded, async-signal-safe calls until exit.
    match unsafe { libc::fork() } {
        -1 => fail(report, Step::Fork, errno()),
        0 => Branch::Daemon,
        _ => exit_now(0),
    }
}

/// Reports `step` failed with `errno`, then `_exit(2)`s. Async-signal-safe.
pub(crate) fn fail(report: RawFd, step: Step, errno: i32) -> ! {
    let _ = ready::send(report, Record::Failed(step, errno));
    exit_now(EXIT_SETUP_FAILED)
}

/// `_exit(2)`: leave at once, without atexit handlers or destructors.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and is async-signal-safe (signal-safety(7)).
    unsafe { libc::_exit(code) }
}

/// PEP 3143's rule for `detach_process` left unset: do not detach when started by init (the
/// parent is PID 1) or by a superserver (stdin is a socket): `getppid(2)`, `fstat(2)`.
pub fn should_detach() -> bool {
    // SAFETY: getppid has no preconditions.
    let parent_is_init = unsafe { libc::getppid() } == 1;
    let mut meta = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: meta is a valid out-pointer for one struct stat.
    let stdin_is_socket = unsafe { libc::fstat(0, meta.as_mut_ptr()) } == 0
        // SAFETY: fstat succeeded, so meta is initialised.
        && unsafe { meta.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFSOCK;
    !(parent_is_init || stdin_is_socket)
}

/// Makes this process a child subreaper until dropped, then restores the previous setting:
/// `prctl(2)` `PR_GET_CHILD_SUBREAPER` / `PR_SET_CHILD_SUBREAPER`.
pub(crate) struct Subreaper {
    was: bool,
}

impl Subreaper {
    pub(crate) fn become_one() -> Subreaper {
        let mut was: libc::c_int = 0;
        // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer.
        unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut was as *mut libc::c_int) };
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
        Subreaper { was: was != 0 }
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, self.was as libc::c_ulong) };
    }
}

/// Waits up to `timeout` for the child `pid` to end and reaps it: `pidfd_open(2)`, `poll(2)`,
/// `waitpid(2)`. `None` if it is not our child or still runs.
pub fn reap(pid: libc::pid_t, timeout: Duration) -> Option<ExitStatus> {
    crate::process::wait_pid_exit(pid as u32, std::time::Instant::now() + timeout);
    let mut status = 0;
    // SAFETY: status is a valid out-pointer; WNOHANG never blocks.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        n if n == pid => Some(ExitStatus::from_raw(status)),
        _ => None,
    }
}

/// `SIGKILL` to everything `pid` started (a supervisor's COMMAND runs in a group of its own)
/// and to `pid`, through pidfds ([`crate::process::signal_descendants`]), then [`reap`].
pub(crate) fn kill_and_reap(pid: libc::pid_t) -> Option<ExitStatus> {
    // Our unreaped child: its pid cannot be reused before we reap it.
    if let Ok(child) = crate::process::Pinned::open(pid as u32) {
        crate::process::signal_descendants(&child, libc::SIGKILL);
        let _ = child.signal(libc::SIGKILL);
    }
    reap(pid, Duration::from_secs(5))
}
