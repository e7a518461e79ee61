//! The only code that runs between `fork(2)` and `execve(2)` or `_exit(2)`: the intermediate
//! child, and the daemon's setup up to its report.
//!
//! Everything here is async-signal-safe: raw system calls (through nix's or [`crate::sys`]'s
//! thin wrappers, which neither allocate nor lock) on data built before the fork
//! ([`crate::start::plan`]). No allocation, no lock, no panic. A failure is reported as one
//! fixed-size record on the report channel ([`crate::start::report`]), then the process leaves
//! with `_exit(2)`.
//!
//! The setup's order: `chroot(2)`, `setrlimit(2)`, `umask(2)`, `chdir(2)`, `setgroups(2)`,
//! `setgid(2)`, `setuid(2)` (privileges last but one: the pidfile and streams were opened as
//! the invoker), `sigprocmask(2)` and `sigaction(2)`, `dup2(2)` onto 0 to 2, the inherited
//! descriptors (closed or marked close-on-exec: [`FdPolicy`]), and last the pid into the
//! pidfile (`pwrite(2)`), so a pidfile naming a pid always names a daemon that is set up.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, RawFd};

use nix::sys::resource::{Resource, setrlimit};

use crate::creds;
use crate::error::Step;
use crate::fds;
use crate::signals;
use crate::start::plan::{FdPolicy, Prepared};
use crate::start::report::{self, Record};

/// The exit status of an intermediate child or daemon whose setup failed.
pub(crate) const EXIT_SETUP_FAILED: i32 = 1;

/// Child of the first fork, between `fork(2)` and `_exit(2)`: `setsid(2)`, then (when
/// `highest` is given) `close_range(2)` above it, so that a large inherited table is not
/// copied again, then `fork(2)`. The intermediate child `_exit(2)`s; this returns only in the
/// daemon, a member of the new session that is not its leader.
///
/// # Safety
/// The process is the child of a `fork(2)` of a single-threaded process. With `highest`, no
/// live owner of a descriptor above it is used or dropped in this process or the daemon
/// afterwards (the daemon replaces its image or `_exit(2)`s).
pub(crate) unsafe fn intermediate_child(report: BorrowedFd<'_>, highest: Option<RawFd>) {
    if let Err(errno) = nix::unistd::setsid() {
        fail(report, Step::Setsid, errno as i32);
    }
    if let Some(highest) = highest {
        // Only shrinks what the daemon inherits; its setup deals with what is left over.
        // SAFETY: the caller guarantees that nothing owning these numbers runs again.
        let _ = unsafe { crate::sys::fd::close_range(highest as u32 + 1, u32::MAX) };
    }
    // SAFETY: this process has one thread (the caller's promise: a fork of a single-threaded
    // process has one), and each branch only makes async-signal-safe calls until it execs or
    // exits.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => fail(report, Step::Fork, errno as i32),
        Ok(nix::unistd::ForkResult::Child) => {}
        Ok(nix::unistd::ForkResult::Parent { .. }) => exit_now(0),
    }
}

/// Step 3 in the daemon: announce our pid, then set up; a failure is reported and ends the
/// daemon with `_exit(2)`. Async-signal-safe up to the return.
///
/// # Safety
/// As [`setup`].
pub(crate) unsafe fn setup_daemon(prepared: &mut Prepared, report: BorrowedFd<'_>) {
    let pid = nix::unistd::getpid().as_raw() as u32;
    if report::send(report, Record::Forked(pid)).is_err() {
        exit_now(EXIT_SETUP_FAILED); // the original process is gone
    }
    prepared.arm_terminate();
    // SAFETY: the caller's promise, passed on.
    if let Err((step, errno)) = unsafe { setup(prepared) } {
        fail(report, step, errno);
    }
}

/// Step 3: the setup, on the plan built before the fork. Async-signal-safe; the failed step
/// and errno on failure.
///
/// # Safety
/// With [`FdPolicy::Close`], no live owner of a descriptor above 2 that the plan does not keep
/// is used or dropped afterwards: the process replaces its image or `_exit(2)`s (exec mode),
/// or the caller of [`crate::DaemonContext`] promised that nothing owns those numbers.
pub(crate) unsafe fn setup(prepared: &Prepared) -> Result<(), (Step, i32)> {
    let plan = &prepared.plan;
    if let Some(dir) = &plan.chroot {
        creds::change_root(dir).map_err(|e| (Step::Chroot, e))?;
    }
    if plan.prevent_core {
        setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| (Step::PreventCore, e as i32))?;
    }
    nix::sys::stat::umask(plan.umask);
    nix::unistd::chdir(plan.workdir.as_c_str()).map_err(|e| (Step::Chdir, e as i32))?;
    creds::drop_privileges(&plan.creds)?;
    signals::reset_and_install(&plan.dispositions).map_err(|e| (Step::Signals, e))?;
    let [stdin, stdout, stderr] = &prepared.streams[..] else {
        return Err((Step::Redirect, libc::EBADF)); // step 1 opens all three
    };
    fds::redirect_std_streams([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()])
        .map_err(|e| (Step::Redirect, e))?;
    match plan.fds {
        // SAFETY: the caller's promise for FdPolicy::Close.
        FdPolicy::Close => unsafe { fds::close_inherited_fds(&plan.keep) },
        FdPolicy::CloseOnExec => fds::cloexec_inherited_fds(&plan.keep),
    }
    .map_err(|e| (Step::CloseFds, e))?;
    if prepared.image.is_some() {
        // Exec mode: the command inherits these.
        for fd in &plan.inherited {
            fds::keep_across_exec(*fd).map_err(|e| (Step::CloseFds, e))?;
        }
    }
    if let Some(pidfile) = &prepared.pidfile {
        let pid = nix::unistd::getpid().as_raw() as u32;
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        // Past RLIMIT_FSIZE, EFBIG (reported) rather than death by SIGXFSZ (silent).
        signals::with_sigxfsz_ignored(|| pidfile.write_pid(pid).map_err(errno))
            .and_then(|written| written)
            .map_err(|e| (Step::WritePidfile, e))?;
        // The command gets the lock on a read-only description: it cannot rewrite the pid.
        if let Some(reader) = &prepared.pidfile_reader {
            pidfile.hand_over_to(reader.as_fd()).map_err(|e| (Step::WritePidfile, e))?;
        }
    }
    Ok(())
}

/// Reports `step` failed with `errno`, then `_exit(2)`s. Async-signal-safe.
pub(crate) fn fail(report: BorrowedFd<'_>, step: Step, errno: i32) -> ! {
    let _ = report::send(report, Record::Failed(step, errno));
    exit_now(EXIT_SETUP_FAILED)
}

/// `_exit(2)`: leave at once, without atexit handlers or destructors.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and is async-signal-safe (signal-safety(7)).
    unsafe { libc::_exit(code) }
}
