//! Becoming a daemon, step by step; each step lives in one module:
//!
//! 1. [`plan`], in the original process: checks, lookups, the pidfile lock, the stream files,
//!    and a [`plan::Plan`] of everything the daemon needs.
//! 2. [`parent`]: the report channel (`socketpair(2)`), `fork(2)`; [`child`]: `setsid(2)`,
//!    `fork(2)` in the intermediate child.
//! 3. [`child`], in the daemon: the setup, async-signal-safe calls only, then a record on the
//!    report channel ([`report`]).
//! 4. [`parent`], in the original process: wait for the report, reap, clean up on failure.
//!
//! In place (not detached) step 3 runs in the calling process and errors return directly.
#![allow(unsafe_code)]

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::command::Command;
use crate::daemon::Daemon;
use crate::error::{Error, Step};
use crate::signals;

pub(crate) mod child;
pub(crate) mod parent;
pub(crate) mod plan;
pub(crate) mod report;

use parent::Detached;
use plan::{FdPolicy, Options, Prepared};
use report::Record;

/// Whether this process has started to become a daemon: set by `open()` or `exec()`, given
/// back only where the process stays as it was: when step 1 failed, and in the original process
/// of a detached start once the wait is over (a detached `exec()` returns there, and may start
/// another daemon). A daemon inherits it set.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Refuses a second start in this process: the `Terminate` handler, the signal map and the
/// descriptors are set up once, for one daemon.
fn claim_start() -> Result<(), Error> {
    match STARTED.swap(true, Ordering::SeqCst) {
        true => Err(Error::AlreadyOpened),
        false => Ok(()),
    }
}

/// Step 1 after [`claim_start`], giving the claim back when it fails (nothing changed yet).
fn prepare(options: Options, command: Option<&Command>) -> Result<Prepared, Error> {
    claim_start()?;
    plan::prepare(options, command).inspect_err(|_| STARTED.store(false, Ordering::SeqCst))
}

/// The original process's side of a detached start: the report. Either way the process is as
/// it was, and may start again.
fn await_daemon(
    prepared: &mut Prepared,
    read_end: &std::os::fd::OwnedFd,
    intermediate: libc::pid_t,
) -> Result<u32, Error> {
    let result = parent::await_daemon(prepared, read_end, intermediate);
    STARTED.store(false, Ordering::SeqCst);
    result
}

/// [`crate::DaemonContext::open`]: `Some(daemon)` in the daemon, `None` in the original process
/// once the daemon is ready.
pub(crate) fn open(options: Options) -> Result<Option<Daemon>, Error> {
    let mut prepared = prepare(options, None)?;
    if !prepared.detach {
        setup_in_place(&mut prepared)?;
        return into_daemon(prepared).map(Some);
    }
    // SAFETY: for open(), the plan closes descriptors (FdPolicy::Close) only when the caller
    // promised, through the unsafe DaemonContext::close_inherited_fds, that nothing owns them.
    match unsafe { parent::fork_with_report(&mut prepared) }? {
        Detached::Daemon(report) => {
            // SAFETY: as above.
            unsafe { child::setup_daemon(&mut prepared, report.as_fd()) };
            let ready_on_open = prepared.ready_on_open;
            let mut daemon = match into_daemon(prepared) {
                Ok(daemon) => daemon,
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    child::fail(report.as_fd(), e.step().unwrap_or(Step::Signals), errno)
                }
            };
            daemon.set_report(report);
            if ready_on_open && daemon.ready().is_err() {
                // The original process is gone: nobody was told this daemon runs.
                drop(daemon);
                child::exit_now(child::EXIT_SETUP_FAILED);
            }
            Ok(Some(daemon))
        }
        Detached::Original { read_end, intermediate, subreaper } => {
            let result = await_daemon(&mut prepared, &read_end, intermediate);
            drop(subreaper);
            result.map(|_| None)
        }
    }
}

/// [`crate::DaemonContext::exec`]: the daemon's pid, in the original process, once
/// `execve(2)` succeeded.
pub(crate) fn exec(options: Options, command: &Command) -> Result<u32, Error> {
    let mut prepared = prepare(options, Some(command))?;
    if !prepared.detach {
        setup_in_place(&mut prepared)?;
        let errno = execve(&mut prepared);
        return Err(prepared.failure(Step::Exec, errno));
    }
    // SAFETY: a detached daemon in exec mode replaces its image or _exit()s: nothing owning a
    // closed descriptor runs again in it.
    match unsafe { parent::fork_with_report(&mut prepared) }? {
        Detached::Daemon(report) => {
            // SAFETY: as above.
            unsafe { child::setup_daemon(&mut prepared, report.as_fd()) };
            let pid = nix::unistd::getpid().as_raw() as u32;
            if report::send(report.as_fd(), Record::Executing(pid)).is_err() {
                child::exit_now(child::EXIT_SETUP_FAILED); // the original process is gone
            }
            let errno = execve(&mut prepared);
            child::fail(report.as_fd(), Step::Exec, errno)
        }
        Detached::Original { read_end, intermediate, subreaper } => {
            let result = await_daemon(&mut prepared, &read_end, intermediate);
            drop(subreaper);
            result
        }
    }
}

/// `execve(2)` of the prepared image; returns only on failure, with the errno.
fn execve(prepared: &mut Prepared) -> i32 {
    match &mut prepared.image {
        Some(image) => image.execve(),
        None => libc::EINVAL,
    }
}

/// The setup in the calling process itself. The stream files are dropped (closed) here once
/// they are on 0 to 2; but when the setup closed descriptors and reached `close_range(2)`,
/// they are closed already and are forgotten instead.
fn setup_in_place(prepared: &mut Prepared) -> Result<(), Error> {
    prepared.arm_terminate();
    // SAFETY: in place, the plan closes descriptors (FdPolicy::Close) only when the caller
    // promised, through the unsafe DaemonContext::close_inherited_fds, that nothing owns them.
    let result = unsafe { child::setup(prepared) };
    let streams = std::mem::take(&mut prepared.streams);
    match (prepared.plan.fds, result) {
        (FdPolicy::Close, Ok(()) | Err((Step::CloseFds | Step::WritePidfile, _))) => {
            std::mem::forget(streams)
        }
        _ => drop(streams),
    }
    result.map_err(|(step, e)| prepared.failure(step, e))
}

/// After setup: register delivered signals and hand out the guard. On failure the pidfile
/// (which names this process now) is removed and the `Terminate` handler disarmed.
fn into_daemon(mut prepared: Prepared) -> Result<Daemon, Error> {
    let streams = std::mem::take(&mut prepared.streams);
    match prepared.plan.fds {
        // Step 3 closed their descriptors: the numbers may be reused, so they are forgotten.
        FdPolicy::Close => std::mem::forget(streams),
        FdPolicy::CloseOnExec => drop(streams), // close(2): they are on 0 to 2 now
    }
    let signals = match prepared.delivered.is_empty() {
        true => None,
        false => Some(
            signals::deliver(&prepared.delivered)
                .map_err(|e| prepared.abandon(Error::os_nopath(Step::Signals, e)))?,
        ),
    };
    let mut pidfile = prepared.pidfile.take();
    if let (Some(pidfile), Some(seen)) = (&mut pidfile, prepared.pidfile_in_daemon.take()) {
        pidfile.rename_as_seen(seen);
    }
    Ok(Daemon::new(pidfile, prepared.lock.take(), signals))
}
