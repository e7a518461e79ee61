//! The one error type: which step of becoming a daemon failed, on what, and the OS error.
//!
//! A [`Step`] crosses the report pipe from the daemon to the original process as one byte,
//! together with the `errno`; the original process, which still holds the paths, turns the
//! pair into an [`Error`] with [`Error::os`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// A step of becoming a daemon. Crosses the report pipe as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Step {
    /// Inspecting the calling process before the fork (`/proc/self/task`).
    Preflight = 1,
    /// Opening the pidfile: `open(2)` with `O_NOFOLLOW`, `fstat(2)`.
    OpenPidfile,
    /// Locking the pidfile: `fcntl(2)` `F_OFD_SETLK`.
    LockPidfile,
    /// Writing the daemon's pid into the pidfile: `ftruncate(2)`, `pwrite(2)`.
    WritePidfile,
    /// Removing the pidfile: `unlink(2)`.
    RemovePidfile,
    /// Opening a file for a standard stream: `open(2)`.
    OpenStream,
    /// Creating the report channel: `socketpair(2)`.
    Pipe,
    /// Forking: `fork(2)`.
    Fork,
    /// Starting a new session: `setsid(2)`.
    Setsid,
    /// Changing the root directory: `chroot(2)`.
    Chroot,
    /// Setting `RLIMIT_CORE` to zero: `setrlimit(2)`.
    PreventCore,
    /// Changing the working directory: `chdir(2)`.
    Chdir,
    /// Looking up a user or a group: `getpwnam_r(3)`, `getgrnam_r(3)`, `getgrouplist(3)`.
    LookupUser,
    /// Setting the supplementary groups: `setgroups(2)`.
    SetGroups,
    /// Setting the group id: `setgid(2)`.
    SetGid,
    /// Setting the user id: `setuid(2)`, then checking that `setuid(0)` fails.
    SetUid,
    /// Resetting signal dispositions and the mask, installing the signal map: `sigaction(2)`.
    Signals,
    /// Closing inherited file descriptors: `close_range(2)` or `/proc/self/fd`.
    CloseFds,
    /// Checking that a descriptor to preserve is open: `fcntl(2)` `F_GETFD`.
    PreserveFd,
    /// Putting files on fds 0, 1 and 2: `dup2(2)`.
    Redirect,
    /// Reporting to the original process: `send(2)` on the report channel; `poll(2)`, `read(2)`.
    Report,
    /// Running the command: `execve(2)`.
    Exec,
    /// Starting the supervisor: `prctl(2)` `PR_SET_CHILD_SUBREAPER`, `signalfd(2)`.
    Supervise,
    /// Waiting for the command to say it is ready (`READY=1`, or a newline on the ready fd).
    WaitReady,
}

impl Step {
    const ALL: [Step; 24] = [
        Step::Preflight,
        Step::OpenPidfile,
        Step::LockPidfile,
        Step::WritePidfile,
        Step::RemovePidfile,
        Step::OpenStream,
        Step::Pipe,
        Step::Fork,
        Step::Setsid,
        Step::Chroot,
        Step::PreventCore,
        Step::Chdir,
        Step::LookupUser,
        Step::SetGroups,
        Step::SetGid,
        Step::SetUid,
        Step::Signals,
        Step::CloseFds,
        Step::PreserveFd,
        Step::Redirect,
        Step::Report,
        Step::Exec,
        Step::Supervise,
        Step::WaitReady,
    ];

    /// The step whose byte is `byte`, as sent over the report pipe.
    pub(crate) fn from_byte(byte: u8) -> Option<Step> {
        Step::ALL.iter().copied().find(|step| *step as u8 == byte)
    }

    /// What could not be done, as the start of a sentence: "cannot change directory to".
    fn action(self) -> &'static str {
        match self {
            Step::Preflight => "cannot inspect the calling process",
            Step::OpenPidfile => "cannot open pidfile",
            Step::LockPidfile => "cannot lock pidfile",
            Step::WritePidfile => "cannot write pidfile",
            Step::RemovePidfile => "cannot remove pidfile",
            Step::OpenStream => "cannot open output file",
            Step::Pipe => "cannot create the report channel",
            Step::Fork => "cannot fork",
            Step::Setsid => "cannot start a new session",
            Step::Chroot => "cannot change root to",
            Step::PreventCore => "cannot disable core dumps",
            Step::Chdir => "cannot change directory to",
            Step::LookupUser => "cannot look up",
            Step::SetGroups => "cannot set supplementary groups",
            Step::SetGid => "cannot set group id",
            Step::SetUid => "cannot set user id",
            Step::Signals => "cannot reset signal handling",
            Step::CloseFds => "cannot close inherited file descriptors",
            Step::PreserveFd => "cannot preserve file descriptor",
            Step::Redirect => "cannot redirect standard streams",
            Step::Report => "cannot report to the original process",
            Step::Exec => "cannot execute",
            Step::Supervise => "cannot start the supervisor",
            Step::WaitReady => "the command did not report ready in time",
        }
    }
}

/// Everything that can go wrong while becoming a daemon.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed during `step`; `path` is the file involved, if any.
    Os {
        /// The step that failed.
        step: Step,
        /// The file or directory the step worked on, if any.
        path: Option<PathBuf>,
        /// The OS error.
        source: io::Error,
    },
    /// Another live process holds the pidfile lock.
    AlreadyRunning {
        /// The pidfile.
        pidfile: PathBuf,
        /// The pid written in it, if it could be read.
        pid: Option<u32>,
    },
    /// The pidfile exists and is unsafe to use (not a regular file, or world-writable).
    UnsafePidfile {
        /// The pidfile.
        pidfile: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The user or group name is unknown.
    UnknownUser {
        /// "user" or "group".
        kind: &'static str,
        /// The name that was looked up.
        name: String,
    },
    /// The calling process has more than one thread: forking it would copy locks held by
    /// threads that do not exist in the child.
    MultiThreaded {
        /// How many threads were counted in `/proc/self/task`.
        threads: usize,
    },
    /// The daemon died before it reported ready.
    DaemonDied {
        /// The daemon's pid.
        pid: u32,
        /// How it ended, when it could be reaped.
        status: Option<ExitStatus>,
    },
    /// COMMAND, run by a supervisor (`daemonize --supervise`), ended before it said it was
    /// ready, and the supervisor exited with its status.
    CommandDied {
        /// COMMAND, as it was given.
        command: PathBuf,
        /// How COMMAND ended.
        status: ExitStatus,
    },
    /// The daemon closed its end of the report channel without reporting ready or failed (it
    /// dropped its [`crate::Daemon`] guard, or exec'd, before [`crate::Daemon::ready`]); it was
    /// killed.
    ReportAbandoned {
        /// The daemon's pid.
        pid: u32,
    },
    /// The signal map cannot be applied as given (for example `Terminate` on a signal whose
    /// default action does not end the process, such as `SIGCHLD`: the daemon would remove its
    /// pidfile and run on).
    BadSignalMap {
        /// The signal number.
        signal: i32,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A [`crate::DaemonContext`] was already opened (or executed) in this process: a process
    /// becomes a daemon once.
    AlreadyOpened,
    /// The daemon itself gave up before it was ready, with [`crate::Daemon::fail`] (it could not
    /// bind its socket, say): its own message and error, shown as `message: error`. The daemon
    /// has exited (status 1) and its pidfile is gone.
    ///
    /// A program calling [`crate::DaemonContext::open`] should give this case an exit status of
    /// its own, distinct from a failed setup: the examples exit 3 for it and 1 for every other
    /// error, so a script can tell "the service refused to start" from "it could not become a
    /// daemon".
    DaemonFailed {
        /// The daemon's pid.
        pid: u32,
        /// What the daemon could not do, as it said it: `cannot bind 127.0.0.1:7201`.
        message: String,
        /// The daemon's error: the OS error when it had one (`Address already in use`), else
        /// its text.
        source: io::Error,
    },
    /// The daemon did not report ready in time; it was killed.
    ReadyTimeout {
        /// The daemon's pid.
        pid: u32,
        /// The time waited, in seconds.
        seconds: f64,
    },
}

impl Error {
    /// An OS error during `step`, on `path`. No system call.
    ///
    /// ```
    /// use daemonctx::{Error, Step};
    ///
    /// let e = std::io::Error::from_raw_os_error(libc::EACCES);
    /// let error = Error::os(Step::Chdir, "/srv/app", e);
    /// assert_eq!(error.step(), Some(Step::Chdir));
    /// assert_eq!(error.raw_os_error(), Some(libc::EACCES));
    /// ```
    pub fn os(step: Step, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Os { step, path: Some(path.as_ref().to_path_buf()), source }
    }

    /// An OS error during `step`, with no path involved. No system call.
    ///
    /// ```
    /// use daemonctx::{Error, Step};
    ///
    /// let error = Error::os_nopath(Step::Fork, std::io::Error::from_raw_os_error(libc::EAGAIN));
    /// assert_eq!(error.step(), Some(Step::Fork));
    /// ```
    pub fn os_nopath(step: Step, source: io::Error) -> Error {
        Error::Os { step, path: None, source }
    }

    /// The step that failed, for errors that come from one. No system call.
    ///
    /// ```
    /// use daemonctx::{Error, Step};
    ///
    /// assert_eq!(Error::AlreadyOpened.step(), Some(Step::Preflight));
    /// ```
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Os { step, .. } => Some(*step),
            Error::AlreadyRunning { .. } => Some(Step::LockPidfile),
            Error::UnsafePidfile { .. } => Some(Step::OpenPidfile),
            Error::UnknownUser { .. } => Some(Step::LookupUser),
            Error::MultiThreaded { .. } => Some(Step::Preflight),
            Error::DaemonDied { .. }
            | Error::ReportAbandoned { .. }
            | Error::ReadyTimeout { .. } => Some(Step::Report),
            Error::CommandDied { .. } => Some(Step::WaitReady),
            Error::BadSignalMap { .. } => Some(Step::Signals),
            Error::AlreadyOpened => Some(Step::Preflight),
            Error::DaemonFailed { .. } => None,
        }
    }

    /// Fills in the path of an [`Error::Os`] that has none (the daemon reports only the step and
    /// the errno; the caller may know the file). No system call.
    ///
    /// ```
    /// use daemonctx::{Error, Step};
    ///
    /// let e = std::io::Error::from_raw_os_error(libc::ENOENT);
    /// let error = Error::os_nopath(Step::Chdir, e).with_path("/srv/app");
    /// assert!(error.to_string().contains("/srv/app"));
    /// ```
    pub fn with_path(self, path: impl AsRef<Path>) -> Error {
        match self {
            Error::Os { step, path: None, source } => {
                Error::Os { step, path: Some(path.as_ref().to_path_buf()), source }
            }
            other => other,
        }
    }

    /// The OS error number, for [`Error::Os`] and [`Error::DaemonFailed`]. No system call.
    ///
    /// ```
    /// use daemonctx::{Error, Step};
    ///
    /// let e = std::io::Error::from_raw_os_error(libc::EPERM);
    /// assert_eq!(Error::os_nopath(Step::SetUid, e).raw_os_error(), Some(libc::EPERM));
    /// assert_eq!(Error::AlreadyOpened.raw_os_error(), None);
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } | Error::DaemonFailed { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { step: Step::WaitReady, path: Some(path), .. } => {
                write!(f, "{} did not report ready in time", path.display())
            }
            Error::Os { step, path: Some(path), .. } => {
                write!(f, "{} {}", step.action(), path.display())
            }
            Error::Os { step, path: None, .. } => f.write_str(step.action()),
            Error::AlreadyRunning { pidfile, pid: Some(pid) } => {
                write!(f, "already running (pid {pid}), pidfile {} is locked", pidfile.display())
            }
            Error::AlreadyRunning { pidfile, pid: None } => {
                write!(f, "already running (pid unknown), pidfile {} is locked", pidfile.display())
            }
            Error::UnsafePidfile { pidfile, reason } => {
                write!(f, "refusing pidfile {}: {reason}", pidfile.display())
            }
            Error::UnknownUser { kind, name } => write!(f, "unknown {kind} {name:?}"),
            Error::MultiThreaded { threads } => write!(
                f,
                "refusing to fork a process with {threads} threads (daemonize before starting threads)"
            ),
            Error::DaemonDied { pid, status: Some(status) } => {
                write!(f, "daemon (pid {pid}) exited before it was ready: {status}")
            }
            Error::DaemonDied { pid, status: None } => {
                write!(f, "daemon (pid {pid}) exited before it was ready")
            }
            Error::CommandDied { command, status } => {
                write!(f, "{} exited before it was ready: {status}", command.display())
            }
            Error::ReportAbandoned { pid } => write!(
                f,
                "daemon (pid {pid}) closed its report channel without reporting ready; killed it"
            ),
            Error::BadSignalMap { signal, reason } => {
                write!(f, "refusing signal {signal} in the signal map: {reason}")
            }
            Error::AlreadyOpened => {
                f.write_str("refusing to open a daemon context a second time in this process")
            }
            Error::ReadyTimeout { pid, seconds } => {
                write!(f, "daemon (pid {pid}) was not ready after {seconds} s; killed it")
            }
            Error::DaemonFailed { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } | Error::DaemonFailed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The calling thread's `errno`, for async-signal-safe code that reports it raw.
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Formats an error and its sources on one line: `what: why: why`. No system call.
///
/// ```
/// use daemonctx::{Error, Step, error::chain};
///
/// let e = std::io::Error::from_raw_os_error(libc::ENOENT);
/// let line = chain(&Error::os(Step::Chdir, "/srv/app", e));
/// assert!(line.contains("/srv/app") && line.contains("No such file or directory"), "{line}");
/// ```
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_survives_the_report_pipe() {
        for step in Step::ALL {
            assert_eq!(Step::from_byte(step as u8), Some(step));
        }
        assert_eq!(Step::from_byte(0), None);
        assert_eq!(Step::from_byte(200), None);
    }

    #[test]
    fn chain_names_step_path_and_os_error() {
        let error = Error::os(Step::Chdir, "/nonexistent", io::Error::from_raw_os_error(2));
        assert_eq!(
            chain(&error),
            "cannot change directory to /nonexistent: No such file or directory (os error 2)"
        );
    }
}
