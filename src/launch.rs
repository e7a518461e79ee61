//! Steps 2 to 4 of becoming a daemon, on a [`Prepared`] plan: fork and detach, set up in the
//! daemon, and wait in the original process for the report.
//!
//! - In place (no detach): the setup runs in the calling process; errors return directly.
//! - Detached: `socketpair(2)` for the report channel, `fork(2)`, `setsid(2)`, `fork(2)`
//!   ([`crate::detach`]). The daemon first sends its own pid, then runs the setup with
//!   async-signal-safe calls only ([`Plan::setup`]) and reports `Ready` or `Failed(step, errno)`.
//!   The original process, a child subreaper for the length of the start, reads the report,
//!   reaps what failed, removes the pidfile on failure, and kills a daemon that missed its
//!   deadline.

#![allow(unsafe_code)]

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::command::ExecImage;
use crate::creds::{self, Credentials};
use crate::daemon::Daemon;
use crate::detach::{self, Branch, Subreaper};
use crate::error::{Error, Step, errno};
use crate::fds;
use crate::pidfile::{self, Pidfile};
use crate::ready::{self, Outcome, Record};
use crate::signals::{self, Dispositions, TerminateTarget};

/// How long the original process waits for a failed daemon to end before reaping it.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a daemon that closed the report channel unready may take to end before it is
/// killed as alive.
const EXIT_AFTER_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the original process waits, after `Ready`, for the daemon to close its end of the
/// report channel (it does so at once; a child it forked meanwhile may hold a copy).
const READY_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the daemon needs, built before the fork: the setup is raw system calls on this.
#[derive(Debug)]
pub(crate) struct Plan {
    pub chroot: Option<CString>,
    pub workdir: CString,
    pub umask: libc::mode_t,
    pub prevent_core: bool,
    pub creds: Credentials,
    pub dispositions: Dispositions,
    /// Descriptors above 2 that stay open, sorted: `inherited` plus the report channel.
    pub keep: Vec<RawFd>,
    /// Descriptors an exec'd command inherits: preserved ones, the pidfile's, the lock file's.
    pub inherited: Vec<RawFd>,
    pub stream_fds: [RawFd; 3],
    pub pidfile_fd: Option<RawFd>,
    pub for_exec: bool,
}

impl Plan {
    /// Step 3, in the daemon: async-signal-safe calls only. The failed step and errno on failure.
    fn setup(&self) -> Result<(), (Step, i32)> {
        if let Some(dir) = &self.chroot {
            creds::change_root(dir).map_err(|e| (Step::Chroot, e))?;
        }
        if self.prevent_core {
            set_core_limit_zero().map_err(|e| (Step::PreventCore, e))?;
        }
        // SAFETY: umask cannot fail and has no memory preconditions.
        unsafe { libc::umask(self.umask) };
        // SAFETY: workdir is NUL-terminated.
        if unsafe { libc::chdir(self.workdir.as_ptr()) } != 0 {
            return Err((Step::Chdir, errno()));
        }
        creds::drop_privileges(&self.creds)?;
        signals::reset_and_install(&self.dispositions).map_err(|e| (Step::Signals, e))?;
        fds::redirect_std_streams(&self.stream_fds).map_err(|e| (Step::Redirect, e))?;
        // From here on the stream files are closed: setup_in_place relies on every later
        // failure being CloseFds or WritePidfile.
        fds::close_inherited_fds(&self.keep).map_err(|e| (Step::CloseFds, e))?;
        if self.for_exec {
            for fd in &self.inherited {
                fds::keep_across_exec(*fd).map_err(|e| (Step::CloseFds, e))?;
            }
        }
        if let Some(fd) = self.pidfile_fd {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() } as u32;
            // Past RLIMIT_FSIZE, EFBIG (reported) rather than death by SIGXFSZ (silent).
            signals::with_sigxfsz_ignored(|| pidfile::write_pid_fd(fd, pid))
                .and_then(|written| written)
                .map_err(|e| (Step::WritePidfile, e))?;
        }
        Ok(())
    }
}

/// The outcome of step 1: the plan, and the resources the original process must clean up.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub plan: Plan,
    /// The opened stream files; `close_range(2)` closes them during the setup.
    pub streams: Vec<OwnedFd>,
    /// The command to execute, in exec mode.
    pub image: Option<ExecImage>,
    pub pidfile: Option<Pidfile>,
    /// The lock file, held (never removed) by the daemon.
    pub lock: Option<Pidfile>,
    pub chroot_directory: Option<PathBuf>,
    pub working_directory: PathBuf,
    pub delivered: Vec<c_int>,
    /// For the `Terminate` handler: the pidfile as the daemon sees it, and its identity.
    pub terminate_pidfile: Option<TerminateTarget>,
    /// The pidfile's path as the daemon sees it after `chroot(2)`; `None` when it lies outside.
    pub pidfile_in_daemon: Option<PathBuf>,
    pub detach: bool,
    pub timeout: Option<Duration>,
}

/// Which process came back from [`Prepared::fork_with_report`].
enum Detached {
    /// The daemon, with the report channel's write end.
    Daemon(OwnedFd),
    /// The original process, with the read end and the intermediate child's pid.
    Original { read_end: OwnedFd, intermediate: libc::pid_t, subreaper: Subreaper },
}

impl Prepared {
    /// Steps 2 to 4 for [`crate::DaemonContext::open`]: `Some(daemon)` in the daemon, `None` in
    /// the original process once the daemon is ready.
    pub(crate) fn become_daemon(mut self, ready_on_open: bool) -> Result<Option<Daemon>, Error> {
        if !self.detach {
            self.setup_in_place(None)?;
            return self.into_daemon().map(Some);
        }
        match self.fork_with_report()? {
            Detached::Daemon(report) => {
                self.setup_daemon(&report);
                let mut daemon = match self.into_daemon() {
                    Ok(daemon) => daemon,
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(libc::EIO);
                        detach::fail(report.as_raw_fd(), e.step().unwrap_or(Step::Signals), errno)
                    }
                };
                daemon.set_report(report);
                if ready_on_open && daemon.ready().is_err() {
                    // The original process is gone: nobody was told this daemon runs.
                    drop(daemon);
                    detach::exit_now(detach::EXIT_SETUP_FAILED);
                }
                Ok(Some(daemon))
            }
            Detached::Original { read_end, intermediate, subreaper } => {
                let result = self.await_daemon(&read_end, intermediate, None);
                drop(subreaper);
                result.map(|_| None)
            }
        }
    }

    /// Steps 2 to 4 for [`crate::DaemonContext::exec`]: the daemon's pid, in the original
    /// process, once `execve(2)` succeeded.
    pub(crate) fn exec_as_daemon(mut self) -> Result<u32, Error> {
        let mut image = self.image.take().expect("prepare(Some(command)) builds the exec image");
        if !self.detach {
            self.setup_in_place(Some(&image))?;
            let errno = image.execve();
            return Err(self.failure(Step::Exec, errno, Some(&image)));
        }
        match self.fork_with_report()? {
            Detached::Daemon(report) => {
                self.setup_daemon(&report);
                // SAFETY: getpid has no preconditions.
                let pid = unsafe { libc::getpid() } as u32;
                if ready::send(report.as_raw_fd(), Record::Executing(pid)).is_err() {
                    detach::exit_now(detach::EXIT_SETUP_FAILED); // the original process is gone
                }
                let errno = image.execve();
                detach::fail(report.as_raw_fd(), Step::Exec, errno)
            }
            Detached::Original { read_end, intermediate, subreaper } => {
                let result = self.await_daemon(&read_end, intermediate, Some(&image));
                drop(subreaper);
                result
            }
        }
    }

    /// The setup in the calling process itself. Once the setup reached `close_range(2)`, the
    /// stream files are closed already and are forgotten; a step that failed before it leaves
    /// them open, and they are dropped (closed) here.
    fn setup_in_place(&mut self, command: Option<&ExecImage>) -> Result<(), Error> {
        self.arm_terminate();
        let result = self.plan.setup();
        let streams = std::mem::take(&mut self.streams);
        match result {
            Ok(()) | Err((Step::CloseFds | Step::WritePidfile, _)) => std::mem::forget(streams),
            Err(_) => drop(streams),
        }
        result.map_err(|(step, e)| self.failure(step, e, command))
    }

    /// Step 2: the report channel, then `fork(2)`, `setsid(2)`, `fork(2)`. The thread count is
    /// checked again right before the fork (lookups and opens since the first check could have
    /// started one, through a library).
    fn fork_with_report(&mut self) -> Result<Detached, Error> {
        let (read_end, write_end) = ready::report_pipe().map_err(|e| self.abandon(e))?;
        let at = self.plan.keep.partition_point(|fd| *fd < write_end.as_raw_fd());
        self.plan.keep.insert(at, write_end.as_raw_fd());
        crate::context::refuse_threads().map_err(|e| self.abandon(e))?;
        // Everything the daemon still needs sits at or below this number: the intermediate
        // child closes the rest, so the second fork copies no more descriptor table than that.
        let highest = [read_end.as_raw_fd(), write_end.as_raw_fd()]
            .into_iter()
            .chain(self.plan.keep.iter().copied())
            .chain(self.plan.stream_fds)
            .max()
            .unwrap_or(2);
        let subreaper = Subreaper::become_one();
        match detach::double_fork(write_end.as_raw_fd(), highest) {
            Err(e) => Err(self.abandon(e)),
            Ok(Branch::Daemon) => {
                std::mem::forget(subreaper); // the flag is not inherited; nothing to restore
                drop(read_end); // close(2)
                Ok(Detached::Daemon(write_end))
            }
            Ok(Branch::Original { intermediate }) => {
                drop(write_end);
                Ok(Detached::Original { read_end, intermediate, subreaper })
            }
        }
    }

    /// Step 3 in the daemon: announce our pid, then set up; a failure is reported and ends the
    /// daemon with `_exit(2)`. Async-signal-safe up to the return.
    fn setup_daemon(&mut self, report: &OwnedFd) {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        if ready::send(report.as_raw_fd(), Record::Forked(pid)).is_err() {
            detach::exit_now(detach::EXIT_SETUP_FAILED); // the original process is gone
        }
        self.arm_terminate();
        if let Err((step, errno)) = self.plan.setup() {
            detach::fail(report.as_raw_fd(), step, errno);
        }
        // close_range(2) closed them. The whole Vec is forgotten, so nothing is freed before
        // execve(2).
        std::mem::forget(std::mem::take(&mut self.streams));
    }

    /// Step 4 in the original process: wait for the report, then clean up on failure.
    /// Returns the daemon's pid when it is ready, or when it exec'd `command`.
    fn await_daemon(
        &mut self,
        read_end: &OwnedFd,
        intermediate: libc::pid_t,
        command: Option<&ExecImage>,
    ) -> Result<u32, Error> {
        let outcome = ready::await_report(read_end, self.timeout);
        let intermediate_status = detach::reap(intermediate, REAP_TIMEOUT);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // A read error, not end of file (the kernel does not produce one on a healthy
            // socketpair): nothing more can be learned, so clean up and say what broke.
            Err(e) => return Err(self.abandon(e)),
        };
        match outcome {
            Outcome::Ready(pid) => {
                // The daemon closes its end right after the record: once that is seen, the
                // daemon holds no descriptor but its own when the caller looks.
                ready::await_close(read_end, READY_CLOSE_TIMEOUT);
                Ok(pid)
            }
            Outcome::Executed(pid) => Ok(pid),
            Outcome::Failed { step, errno, daemon } => {
                if let Some(pid) = daemon {
                    detach::reap(pid as libc::pid_t, REAP_TIMEOUT);
                }
                Err(self.failure(step, errno, command))
            }
            Outcome::Closed { daemon: Some(pid) } => {
                // A dying daemon closes its descriptors just before it ends: a short grace.
                let error = match detach::reap(pid as libc::pid_t, EXIT_AFTER_CLOSE_TIMEOUT) {
                    Some(status) => Error::DaemonDied { pid, status: Some(status) },
                    None => {
                        // Alive, but it let go of the report channel without being ready
                        // (dropped its guard, or exec'd): nobody was told it runs.
                        detach::kill_and_reap(pid as libc::pid_t);
                        Error::ReportAbandoned { pid }
                    }
                };
                Err(self.abandon(error))
            }
            Outcome::Closed { daemon: None } => {
                let pid = intermediate as u32;
                Err(self.abandon(Error::DaemonDied { pid, status: intermediate_status }))
            }
            Outcome::TimedOut { daemon } => {
                let pid = daemon.unwrap_or(intermediate as u32);
                detach::kill_and_reap(pid as libc::pid_t);
                let seconds = self.timeout.unwrap_or_default().as_secs_f64();
                Err(self.abandon(Error::ReadyTimeout { pid, seconds }))
            }
        }
    }

    /// Removes the pidfile after a failure, and passes the error on.
    pub(crate) fn abandon(&mut self, error: Error) -> Error {
        signals::disarm_terminate();
        if let Some(pidfile) = self.pidfile.take() {
            let _ = pidfile.remove();
        }
        error
    }

    /// The path a failed step worked on, for the error message.
    fn path_of(&self, step: Step, command: Option<&ExecImage>) -> Option<PathBuf> {
        match step {
            Step::Chroot => self.chroot_directory.clone(),
            Step::Chdir => Some(self.working_directory.clone()),
            Step::WritePidfile => self.pidfile.as_ref().map(|p| p.path().to_path_buf()),
            Step::Exec => command.map(|c| c.shown().to_path_buf()),
            _ => None,
        }
    }

    fn failure(&mut self, step: Step, errno: i32, command: Option<&ExecImage>) -> Error {
        let path = self.path_of(step, command);
        let error = Error::Os { step, path, source: io::Error::from_raw_os_error(errno) };
        self.abandon(error)
    }

    /// Tells the `Terminate` handler which pidfile to remove: before the setup installs the
    /// handler and writes the pid, so no SIGTERM can find the pidfile written but not armed.
    fn arm_terminate(&mut self) {
        if let Some(target) = self.terminate_pidfile.take() {
            signals::arm_terminate(target);
        }
    }

    /// After setup: register delivered signals and hand out the guard.
    fn into_daemon(mut self) -> Result<Daemon, Error> {
        let signals = match self.delivered.is_empty() {
            true => None,
            false => Some(
                signals::deliver(&self.delivered)
                    .map_err(|e| Error::os_nopath(Step::Signals, e))?,
            ),
        };
        let mut pidfile = self.pidfile.take();
        if let (Some(pidfile), Some(seen)) = (&mut pidfile, self.pidfile_in_daemon.take()) {
            pidfile.rename_as_seen(seen);
        }
        Ok(Daemon::new(pidfile, self.lock.take(), signals))
    }
}

/// `setrlimit(2)` `RLIMIT_CORE` to 0 (soft and hard). Async-signal-safe.
fn set_core_limit_zero() -> Result<(), i32> {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: zero is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(errno());
    }
    Ok(())
}
