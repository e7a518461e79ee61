//! The original process's side: `fork(2)`, wait for the daemon's report, reap.
//!
//! The original process becomes a child subreaper (`prctl(2)` `PR_SET_CHILD_SUBREAPER`) for the
//! length of the start, so the daemon, orphaned when the intermediate child exits, is adopted by
//! the original process: a daemon that dies before it is ready can be reaped and its exit status
//! reported. The previous subreaper setting is restored afterwards.
//!
//! The report is read with `poll(2)` and `read(2)` until a final record, end of file or the
//! deadline; on failure the daemon is reaped (`pidfd_open(2)`, `poll(2)`, `waitpid(2)`),
//! killed first if it still runs, and the pidfile removed.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::prctl;

use crate::error::{Error, Step};
use crate::process;
use crate::start::child;
use crate::start::plan::{FdPolicy, Prepared, refuse_threads};
use crate::start::report::{self, Outcome};

/// How long the original process waits for a failed daemon to end before reaping it.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a daemon that closed the report channel unready may take to end before it is
/// killed as alive.
const EXIT_AFTER_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the original process waits, after `Ready`, for the daemon to close its end of the
/// report channel (it does so at once; a child it forked meanwhile may hold a copy).
const READY_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Which process came back from [`fork_with_report`].
pub(crate) enum Detached {
    /// The daemon, with the report channel's write end.
    Daemon(OwnedFd),
    /// The original process, with the read end and the intermediate child's pid.
    Original { read_end: OwnedFd, intermediate: libc::pid_t, subreaper: Subreaper },
}

/// Step 2: the report channel, then `fork(2)`, `setsid(2)`, `fork(2)`. The thread count is
/// checked again right before the fork (lookups and opens since the first check could have
/// started one, through a library).
///
/// # Safety
/// With [`FdPolicy::Close`], the safety contract of [`child::setup`] holds for the daemon.
pub(crate) unsafe fn fork_with_report(prepared: &mut Prepared) -> Result<Detached, Error> {
    let (read_end, write_end) = report::report_pipe().map_err(|e| prepared.abandon(e))?;
    let keep = &mut prepared.plan.keep;
    let at = keep.partition_point(|fd| *fd < write_end.as_raw_fd());
    keep.insert(at, write_end.as_raw_fd());
    refuse_threads().map_err(|e| prepared.abandon(e))?;
    // Everything the daemon still needs sits at or below this number: when descriptors are
    // closed anyway, the intermediate child closes the rest, so the second fork copies no more
    // descriptor table than that.
    let highest = [read_end.as_raw_fd(), write_end.as_raw_fd()]
        .into_iter()
        .chain(prepared.plan.keep.iter().copied())
        .chain(prepared.streams.iter().map(|s| s.as_raw_fd()))
        .max()
        .unwrap_or(2);
    let highest = (prepared.plan.fds == FdPolicy::Close).then_some(highest);
    let subreaper = Subreaper::become_one();
    // SAFETY: refuse_threads just counted one thread, and nothing since started one; the
    // descriptor promise is the caller's.
    match unsafe { double_fork(write_end.as_fd(), highest) } {
        Err(e) => Err(prepared.abandon(e)),
        Ok(None) => {
            std::mem::forget(subreaper); // the flag is not inherited; nothing to restore
            drop(read_end); // close(2)
            Ok(Detached::Daemon(write_end))
        }
        Ok(Some(intermediate)) => {
            drop(write_end);
            Ok(Detached::Original { read_end, intermediate, subreaper })
        }
    }
}

/// `fork(2)`; the child runs [`child::intermediate_child`]. `Some(intermediate child's pid)`
/// in the original process, `None` in the daemon.
///
/// # Errors
/// [`Error::Os`] with [`Step::Fork`] when the first fork fails. Failures in the intermediate
/// child arrive over the report channel.
///
/// # Safety
/// The calling process has a single thread; with `highest`, the contract of
/// [`child::intermediate_child`] holds.
unsafe fn double_fork(
    report: std::os::fd::BorrowedFd<'_>,
    highest: Option<RawFd>,
) -> Result<Option<libc::pid_t>, Error> {
    // SAFETY: the caller guarantees a single thread; the child only makes async-signal-safe
    // calls (intermediate_child) before it forks again or exits.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(Error::os_nopath(Step::Fork, e.into())),
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: this is the child of a fork of a single-threaded process; the descriptor
            // promise is the caller's.
            unsafe { child::intermediate_child(report, highest) };
            Ok(None)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Some(child.as_raw())),
    }
}

/// Step 4 in the original process: wait for the report, then clean up on failure.
/// Returns the daemon's pid when it is ready, or when it exec'd its command.
pub(crate) fn await_daemon(
    prepared: &mut Prepared,
    read_end: &OwnedFd,
    intermediate: libc::pid_t,
) -> Result<u32, Error> {
    let outcome = report::await_report(read_end, prepared.timeout);
    let intermediate_status = process::reap(intermediate, REAP_TIMEOUT);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // A read error, not end of file (the kernel does not produce one on a healthy
        // socketpair): nothing more can be learned, so clean up and say what broke.
        Err(e) => return Err(prepared.abandon(e)),
    };
    match outcome {
        Outcome::Ready(pid) => {
            // The daemon closes its end right after the record: once that is seen, the
            // daemon holds no descriptor but its own when the caller looks.
            report::await_close(read_end, READY_CLOSE_TIMEOUT);
            Ok(pid)
        }
        Outcome::Executed(pid) => Ok(pid),
        Outcome::Failed { step, errno, daemon } => {
            if let Some(pid) = daemon {
                process::reap(pid as libc::pid_t, REAP_TIMEOUT);
            }
            Err(prepared.failure(step, errno))
        }
        Outcome::DaemonFailed { failure, daemon } => {
            let pid = daemon.unwrap_or(intermediate as u32);
            // The daemon exits right after it reported (Daemon::fail never returns).
            process::reap(pid as libc::pid_t, REAP_TIMEOUT);
            let source = failure.source();
            Err(prepared.abandon(Error::DaemonFailed { pid, message: failure.message, source }))
        }
        Outcome::Closed { daemon: Some(pid) } => {
            // A dying daemon closes its descriptors just before it ends: a short grace.
            let error = match process::reap(pid as libc::pid_t, EXIT_AFTER_CLOSE_TIMEOUT) {
                Some(status) => Error::DaemonDied { pid, status: Some(status) },
                None => {
                    // Alive, but it let go of the report channel without being ready
                    // (dropped its guard, or exec'd): nobody was told it runs.
                    kill_and_reap(pid as libc::pid_t);
                    Error::ReportAbandoned { pid }
                }
            };
            Err(prepared.abandon(error))
        }
        Outcome::Closed { daemon: None } => {
            let pid = intermediate as u32;
            Err(prepared.abandon(Error::DaemonDied { pid, status: intermediate_status }))
        }
        Outcome::TimedOut { daemon } => {
            let pid = daemon.unwrap_or(intermediate as u32);
            // An intermediate child reaped above is gone: its pid may name another process now.
            if daemon.is_some() || intermediate_status.is_none() {
                kill_and_reap(pid as libc::pid_t);
            }
            let seconds = prepared.timeout.unwrap_or_default().as_secs_f64();
            Err(prepared.abandon(Error::ReadyTimeout { pid, seconds }))
        }
    }
}

/// Makes this process a child subreaper until dropped, then restores the previous setting:
/// `prctl(2)` `PR_GET_CHILD_SUBREAPER` / `PR_SET_CHILD_SUBREAPER`.
pub(crate) struct Subreaper {
    was: bool,
}

impl Subreaper {
    pub(crate) fn become_one() -> Subreaper {
        let was = prctl::get_child_subreaper().unwrap_or(false);
        let _ = prctl::set_child_subreaper(true);
        Subreaper { was }
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let _ = prctl::set_child_subreaper(self.was);
    }
}

/// `SIGKILL` to everything `pid` started (a supervisor's COMMAND runs in a group of its own)
/// and to `pid`, through pidfds ([`process::signal_descendants`]), then [`process::reap`].
fn kill_and_reap(pid: libc::pid_t) -> Option<std::process::ExitStatus> {
    // pid is our own child, not yet reaped: its pid cannot have been reused.
    if let Ok(child) = process::Pinned::open(pid as u32) {
        process::signal_descendants(&child, libc::SIGKILL);
        let _ = child.signal(libc::SIGKILL);
    }
    process::reap(pid, REAP_TIMEOUT)
}
