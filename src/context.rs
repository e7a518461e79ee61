//! [`DaemonContext`]: the PEP 3143 option set, and the sequence that turns the calling process
//! into a daemon.
//!
//! The order matters and is fixed here:
//! 1. In the original process, where errors can still be shown: count threads, resolve users,
//!    check the directories, lock the pidfile, open the standard streams' files, build every
//!    string and table the daemon needs.
//! 2. `fork(2)`, `setsid(2)`, `fork(2)` ([`crate::detach`]).
//! 3. In the daemon, async-signal-safe calls only: `chroot(2)`, `setrlimit(2)` `RLIMIT_CORE`,
//!    `umask(2)`, `chdir(2)`, `setgroups(2)`/`setgid(2)`/`setuid(2)`, signal mask and
//!    dispositions, `dup2(2)` onto 0/1/2, `close_range(2)`, the pid into the pidfile.
//! 4. The daemon reports over the report pipe ([`crate::ready`]); the original process exits 0
//!    on `Ready`, or returns the error, after removing the pidfile and reaping the daemon.
#![allow(unsafe_code)]

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use signal_hook::iterator::Signals;

use crate::command::{Command, ExecImage};
use crate::creds::{self, Credentials, GroupSpec, UserSpec};
use crate::detach::{self, Branch, Subreaper};
use crate::error::{Error, Step};
use crate::fds::{self, Stream};
use crate::pidfile::{self, Pidfile, path_to_cstring};
use crate::ready::{self, Outcome, Record};
use crate::signals::{self, Dispositions, SignalAction, SignalMap};

/// How long the original process waits for the daemon's report unless told otherwise
/// (systemd's default start timeout).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long the original process waits for a failed daemon to end before reaping it.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// The options of a daemon, with PEP 3143's defaults; [`DaemonContext::open`] applies them.
///
/// ```no_run
/// use daemonctx::DaemonContext;
///
/// let daemon = DaemonContext::new()
///     .pidfile("/run/myserver.pid")
///     .working_directory("/var/lib/myserver")
///     .stdout("/var/log/myserver.log")
///     .open()?; // the original process exits 0 here once the daemon is set up
/// // ... serve, as the daemon ...
/// daemon.close()?;
/// # Ok::<(), daemonctx::Error>(())
/// ```
#[derive(Debug)]
pub struct DaemonContext {
    chroot_directory: Option<PathBuf>,
    working_directory: PathBuf,
    umask: u32,
    user: Option<UserSpec>,
    group: Option<GroupSpec>,
    initgroups: bool,
    prevent_core: bool,
    detach_process: Option<bool>,
    files_preserve: Vec<RawFd>,
    pidfile: Option<PathBuf>,
    pidfile_mode: u32,
    lock_file: Option<PathBuf>,
    streams: [Stream; 3],
    signal_map: SignalMap,
    ready_on_open: bool,
    ready_timeout: Option<Duration>,
}

impl Default for DaemonContext {
    fn default() -> DaemonContext {
        DaemonContext::new()
    }
}

impl DaemonContext {
    /// A context with PEP 3143's defaults: no chroot, working directory `/`, umask 0, identity
    /// unchanged, core dumps prevented, detach unless started by init or a superserver, no
    /// pidfile, standard streams on `/dev/null`, `SIGTSTP`/`SIGTTIN`/`SIGTTOU` ignored and
    /// `SIGTERM` terminating.
    pub fn new() -> DaemonContext {
        DaemonContext {
            chroot_directory: None,
            working_directory: PathBuf::from("/"),
            umask: 0,
            user: None,
            group: None,
            initgroups: false,
            prevent_core: true,
            detach_process: None,
            files_preserve: Vec::new(),
            pidfile: None,
            pidfile_mode: pidfile::DEFAULT_MODE,
            lock_file: None,
            streams: [Stream::Null, Stream::Null, Stream::Null],
            signal_map: signals::default_signal_map(),
            ready_on_open: true,
            ready_timeout: Some(DEFAULT_READY_TIMEOUT),
        }
    }

    /// `chroot(2)` to `dir` in the daemon, after the pidfile is locked and files are opened.
    pub fn chroot_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.chroot_directory = Some(dir.into());
        self
    }

    /// `chdir(2)` to `dir` in the daemon (inside the chroot, if any). Default `/`.
    pub fn working_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_directory = dir.into();
        self
    }

    /// `umask(2)` of the daemon. Default 0 (PEP 3143: the program chooses its file modes).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = mask;
        self
    }

    /// `setuid(2)` to this user id in the daemon.
    pub fn uid(mut self, uid: u32) -> Self {
        self.user = Some(UserSpec::Id(uid));
        self
    }

    /// `setgid(2)` to this group id in the daemon.
    pub fn gid(mut self, gid: u32) -> Self {
        self.group = Some(GroupSpec::Id(gid));
        self
    }

    /// Runs as the user `name` (looked up before the fork with `getpwnam_r(3)`), with its
    /// primary group unless [`DaemonContext::group`] or [`DaemonContext::gid`] says otherwise.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = Some(UserSpec::Name(name.into()));
        self
    }

    /// Runs with the group `name` (looked up before the fork with `getgrnam_r(3)`).
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(GroupSpec::Name(name.into()));
        self
    }

    /// Sets the user's supplementary groups (`getgrouplist(3)`, `setgroups(2)`) instead of
    /// clearing them. Default false.
    pub fn initgroups(mut self, on: bool) -> Self {
        self.initgroups = on;
        self
    }

    /// Sets `RLIMIT_CORE` to 0 (`setrlimit(2)`) so a crash cannot dump memory. Default true.
    pub fn prevent_core(mut self, on: bool) -> Self {
        self.prevent_core = on;
        self
    }

    /// Whether to fork and leave the session. Default: true, unless the parent is PID 1 or
    /// stdin is a socket (started by init or a superserver), as PEP 3143 specifies.
    pub fn detach_process(mut self, on: bool) -> Self {
        self.detach_process = Some(on);
        self
    }

    /// Keeps these descriptors open in the daemon (everything else above 2 is closed).
    pub fn files_preserve<I, F>(mut self, files: I) -> Self
    where
        I: IntoIterator<Item = F>,
        F: AsRawFd,
    {
        self.files_preserve.extend(files.into_iter().map(|f| f.as_raw_fd()));
        self
    }

    /// Keeps the raw descriptor `fd` open in the daemon.
    pub fn preserve_fd(mut self, fd: RawFd) -> Self {
        self.files_preserve.push(fd);
        self
    }

    /// Locks `path` before the fork and writes the daemon's pid into it ([`crate::pidfile`]).
    pub fn pidfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.pidfile = Some(path.into());
        self
    }

    /// The mode a newly created pidfile gets, exactly. Default 0644.
    pub fn pidfile_mode(mut self, mode: u32) -> Self {
        self.pidfile_mode = mode;
        self
    }

    /// Also locks `path` before the fork, like the pidfile but without writing or removing it
    /// (the `-l` lock file of daemonize(1)); the daemon holds the lock for its life.
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_file = Some(path.into());
        self
    }

    /// Standard input of the daemon. Default `/dev/null`.
    pub fn stdin(mut self, stream: impl Into<Stream>) -> Self {
        self.streams[0] = stream.into();
        self
    }

    /// Standard output of the daemon: a file, a path (appended to), the invoker's
    /// ([`Stream::Inherit`]), or `/dev/null` (default).
    pub fn stdout(mut self, stream: impl Into<Stream>) -> Self {
        self.streams[1] = stream.into();
        self
    }

    /// Standard error of the daemon: a file, a path (appended to), or `/dev/null` (default).
    pub fn stderr(mut self, stream: impl Into<Stream>) -> Self {
        self.streams[2] = stream.into();
        self
    }

    /// Replaces the whole signal map.
    pub fn signal_map(mut self, map: SignalMap) -> Self {
        self.signal_map = map;
        self
    }

    /// Sets one entry of the signal map.
    pub fn signal(mut self, signal: c_int, action: SignalAction) -> Self {
        self.signal_map.insert(signal, action);
        self
    }

    /// With `false`, the original process keeps waiting after setup until the daemon calls
    /// [`Daemon::ready`] (after binding its socket, say), or dies. Default true.
    pub fn ready_on_open(mut self, on: bool) -> Self {
        self.ready_on_open = on;
        self
    }

    /// How long the original process waits for the daemon to be ready; then it kills the
    /// daemon and fails. `None` waits for ever. Default 90 s.
    pub fn ready_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Becomes the daemon. In the original process this returns only on failure: once the daemon
    /// reports ready, the original process exits with status 0 (`exit(3)`). In the daemon (or
    /// in place, without detaching) it returns the [`Daemon`] guard.
    ///
    /// System calls: see the module documentation.
    ///
    /// # Errors
    /// Every [`Error`] variant, always in the original process, after it removed the pidfile and
    /// reaped the daemon.
    pub fn open(self) -> Result<Daemon, Error> {
        let ready_on_open = self.ready_on_open;
        let prepared = self.prepare(None)?;
        match prepared.become_daemon(ready_on_open)? {
            Some(daemon) => Ok(daemon),
            None => std::process::exit(0),
        }
    }

    /// Becomes a daemon running `command`: the daemon `execve(2)`s it after setup, with the
    /// pidfile's descriptor (and so its lock) inherited.
    ///
    /// Detached, this returns the command's pid in the original process once `execve(2)`
    /// succeeded and the pidfile holds that pid. In place (not detached), the process becomes
    /// the command and this returns only on failure.
    ///
    /// # Errors
    /// As [`DaemonContext::open`]; a failed `execve(2)` is [`Error::Os`] with [`Step::Exec`].
    pub fn exec(self, command: &Command) -> Result<u32, Error> {
        let mut prepared = self.prepare(Some(command))?;
        let image = prepared.image.take().expect("prepare(Some) builds the exec image");
        prepared.exec_as_daemon(&image)
    }

    /// Step 1: everything that can fail before the fork, cheapest and side-effect free first.
    fn prepare(self, command: Option<&Command>) -> Result<Prepared, Error> {
        let for_exec = command.is_some();
        let detach = self.detach_process.unwrap_or_else(detach::should_detach);
        if detach {
            refuse_threads()?;
        }
        let creds = creds::resolve(self.user.as_ref(), self.group.as_ref(), self.initgroups)?;
        let chroot = self.chroot_directory.as_deref().map(check_chroot).transpose()?;
        let workdir = check_workdir(&self.working_directory, self.chroot_directory.as_deref())?;
        let image = command.map(|c| c.prepare(self.chroot_directory.as_deref())).transpose()?;
        let pidfile =
            self.pidfile.as_ref().map(|p| Pidfile::lock(p, self.pidfile_mode)).transpose()?;
        let mut prepared = Prepared {
            plan: Plan {
                chroot,
                workdir,
                umask: self.umask as libc::mode_t,
                prevent_core: self.prevent_core,
                creds,
                dispositions: Dispositions::new(&self.signal_map, for_exec),
                keep: Vec::new(),
                stream_fds: [-1; 3],
                pidfile_fd: pidfile.as_ref().map(|p| p.as_raw_fd()),
                lock_fd: None,
                for_exec,
            },
            streams: Vec::new(),
            image,
            pidfile,
            lock: None,
            chroot_directory: self.chroot_directory,
            working_directory: self.working_directory,
            delivered: signals::delivered(&self.signal_map),
            terminate_pidfile: None,
            detach,
            timeout: self.ready_timeout,
        };
        if let Some(path) = &self.lock_file {
            let lock =
                Pidfile::lock_file(path, self.pidfile_mode).map_err(|e| prepared.abandon(e))?;
            prepared.plan.lock_fd = Some(lock.as_raw_fd());
            prepared.lock = Some(lock);
        }
        for (i, stream) in self.streams.into_iter().enumerate() {
            let fd = stream.open(i as RawFd).map_err(|e| prepared.abandon(e))?;
            prepared.plan.stream_fds[i] = fd.as_raw_fd();
            prepared.streams.push(fd);
        }
        let terminates = self.signal_map.values().any(|a| matches!(a, SignalAction::Terminate));
        if let (Some(pidfile), true) = (&prepared.pidfile, terminates) {
            let (dev, ino) = pidfile.identity();
            let path = path_to_cstring(pidfile.path())
                .map_err(|e| Error::os(Step::OpenPidfile, pidfile.path(), e))?;
            prepared.terminate_pidfile = Some((path, dev, ino));
        }
        prepared.plan.keep = self.files_preserve.into_iter().filter(|fd| *fd > 2).collect();
        prepared.plan.keep.extend(prepared.plan.pidfile_fd);
        prepared.plan.keep.extend(prepared.plan.lock_fd);
        Ok(prepared)
    }
}

/// What the daemon needs, built before the fork: the setup is raw system calls on this.
#[derive(Debug)]
struct Plan {
    chroot: Option<CString>,
    workdir: CString,
    umask: libc::mode_t,
    prevent_core: bool,
    creds: Credentials,
    dispositions: Dispositions,
    /// Descriptors above 2 that stay open: sorted before the fork.
    keep: Vec<RawFd>,
    stream_fds: [RawFd; 3],
    pidfile_fd: Option<RawFd>,
    lock_fd: Option<RawFd>,
    for_exec: bool,
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
        fds::close_inherited_fds(&self.keep).map_err(|e| (Step::CloseFds, e))?;
        if let (Some(fd), true) = (self.lock_fd, self.for_exec) {
            fds::keep_across_exec(fd).map_err(|e| (Step::LockPidfile, e))?;
        }
        if let Some(fd) = self.pidfile_fd {
            if self.for_exec {
                fds::keep_across_exec(fd).map_err(|e| (Step::WritePidfile, e))?;
            }
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() } as u32;
            pidfile::write_pid_fd(fd, pid).map_err(|e| (Step::WritePidfile, e))?;
        }
        Ok(())
    }
}

/// The outcome of step 1: the plan, and the resources the original process must clean up.
struct Prepared {
    plan: Plan,
    /// The opened stream files; in the daemon they are closed by `close_range(2)`.
    streams: Vec<OwnedFd>,
    /// The command to execute, in exec mode.
    image: Option<ExecImage>,
    pidfile: Option<Pidfile>,
    /// The lock file, held (never removed) by the daemon.
    lock: Option<Pidfile>,
    chroot_directory: Option<PathBuf>,
    working_directory: PathBuf,
    delivered: Vec<c_int>,
    /// For the `Terminate` handler: the pidfile's path, device and inode.
    terminate_pidfile: Option<(CString, u64, u64)>,
    detach: bool,
    timeout: Option<Duration>,
}

impl Prepared {
    /// Removes the pidfile after a failure, and passes the error on.
    fn abandon(&mut self, error: Error) -> Error {
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
            Step::Exec => command.map(|c| c.program().to_path_buf()),
            _ => None,
        }
    }

    fn failure(&mut self, step: Step, errno: i32, command: Option<&ExecImage>) -> Error {
        let path = self.path_of(step, command);
        let error = Error::Os { step, path, source: io::Error::from_raw_os_error(errno) };
        self.abandon(error)
    }

    /// Steps 2 to 4 for [`DaemonContext::open`]: `Some(daemon)` in the daemon, `None` in the
    /// original process once the daemon is ready.
    fn become_daemon(mut self, ready_on_open: bool) -> Result<Option<Daemon>, Error> {
        if !self.detach {
            self.arm_terminate();
            self.plan.setup().map_err(|(step, e)| self.failure(step, e, None))?;
            forget_closed(std::mem::take(&mut self.streams));
            return self.into_daemon().map(Some);
        }
        let (read_end, write_end) = ready::report_pipe()?;
        self.plan.keep.push(write_end.as_raw_fd());
        self.plan.keep.sort_unstable();
        let subreaper = Subreaper::become_one();
        match detach::double_fork(write_end.as_raw_fd()) {
            Err(e) => Err(self.abandon(e)),
            Ok(Branch::Daemon) => {
                std::mem::forget(subreaper); // the flag is not inherited; nothing to restore here
                drop(read_end);
                self.arm_terminate();
                if let Err((step, errno)) = self.plan.setup() {
                    detach::fail(write_end.as_raw_fd(), step, errno);
                }
                forget_closed(std::mem::take(&mut self.streams));
                let mut daemon = match self.into_daemon() {
                    Ok(daemon) => daemon,
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(libc::EIO);
                        detach::fail(write_end.as_raw_fd(), Step::Signals, errno)
                    }
                };
                daemon.report = Some(write_end);
                if ready_on_open && daemon.ready().is_err() {
                    // The original process is gone: nobody was told this daemon runs.
                    let _ = daemon.close_inner();
                    detach::exit_now(detach::EXIT_SETUP_FAILED);
                }
                Ok(Some(daemon))
            }
            Ok(Branch::Original { intermediate }) => {
                drop(write_end);
                let result = self.await_daemon(&read_end, intermediate, false, None);
                drop(subreaper);
                result.map(|_| None)
            }
        }
    }

    /// Steps 2 to 4 for [`DaemonContext::exec`].
    fn exec_as_daemon(mut self, command: &ExecImage) -> Result<u32, Error> {
        if !self.detach {
            self.plan.setup().map_err(|(step, e)| self.failure(step, e, Some(command)))?;
            let errno = command.execve();
            return Err(self.failure(Step::Exec, errno, Some(command)));
        }
        let (read_end, write_end) = ready::report_pipe()?;
        self.plan.keep.push(write_end.as_raw_fd());
        self.plan.keep.sort_unstable();
        let subreaper = Subreaper::become_one();
        match detach::double_fork(write_end.as_raw_fd()) {
            Err(e) => Err(self.abandon(e)),
            Ok(Branch::Daemon) => {
                if let Err((step, errno)) = self.plan.setup() {
                    detach::fail(write_end.as_raw_fd(), step, errno);
                }
                let errno = command.execve();
                detach::fail(write_end.as_raw_fd(), Step::Exec, errno)
            }
            Ok(Branch::Original { intermediate }) => {
                drop(write_end);
                let result = self.await_daemon(&read_end, intermediate, true, Some(command));
                drop(subreaper);
                result
            }
        }
    }

    /// Step 4 in the original process: wait for the report, then clean up on failure.
    /// Returns the daemon's pid when it is ready (or, with `eof_is_ready`, when it exec'd).
    fn await_daemon(
        &mut self,
        read_end: &OwnedFd,
        intermediate: libc::pid_t,
        eof_is_ready: bool,
        command: Option<&ExecImage>,
    ) -> Result<u32, Error> {
        let outcome = ready::await_report(read_end, self.timeout);
        let intermediate_status = detach::reap(intermediate, REAP_TIMEOUT);
        match outcome? {
            Outcome::Ready(pid) => Ok(pid),
            Outcome::Closed { daemon: Some(pid) } if eof_is_ready => Ok(pid),
            Outcome::Failed { step, errno, daemon } => {
                if let Some(pid) = daemon {
                    detach::reap(pid as libc::pid_t, REAP_TIMEOUT);
                }
                Err(self.failure(step, errno, command))
            }
            Outcome::Closed { daemon: Some(pid) } => {
                let status = detach::reap(pid as libc::pid_t, REAP_TIMEOUT);
                Err(self.abandon(Error::DaemonDied { pid, status }))
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

    /// Tells the `Terminate` handler which pidfile to remove: before the setup installs the
    /// handler and writes the pid, so no SIGTERM can find the pidfile written but not armed.
    fn arm_terminate(&mut self) {
        if let Some((path, dev, ino)) = self.terminate_pidfile.take() {
            signals::arm_terminate(path, dev, ino);
        }
    }

    /// In the daemon, after setup: register delivered signals and hand out the guard.
    fn into_daemon(mut self) -> Result<Daemon, Error> {
        let signals = match self.delivered.is_empty() {
            true => None,
            false => Some(
                signals::deliver(&self.delivered)
                    .map_err(|e| Error::os_nopath(Step::Signals, e))?,
            ),
        };
        Ok(Daemon {
            pidfile: self.pidfile.take(),
            _lock: self.lock.take(),
            report: None,
            signals,
            open: true,
        })
    }
}

/// Forgets descriptors that `close_range(2)` already closed in this process (dropping them
/// would close the numbers again, maybe someone else's by now).
fn forget_closed(fds: Vec<OwnedFd>) {
    for fd in fds {
        std::mem::forget(fd);
    }
}

/// The daemon's side of an open [`DaemonContext`]. Dropping it closes it.
#[derive(Debug)]
pub struct Daemon {
    pidfile: Option<Pidfile>,
    _lock: Option<Pidfile>,
    report: Option<OwnedFd>,
    signals: Option<Signals>,
    open: bool,
}

impl Daemon {
    /// Tells the original process the daemon is ready (one `write(2)` on the report pipe), so it
    /// exits 0. Needed only with [`DaemonContext::ready_on_open`]`(false)`; later calls do
    /// nothing.
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::Report`] when the write fails (the original process is gone).
    pub fn ready(&mut self) -> Result<(), Error> {
        let Some(report) = self.report.take() else {
            return Ok(());
        };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        ready::send(report.as_raw_fd(), Record::Ready(pid))
            .map_err(|e| Error::os_nopath(Step::Report, io::Error::from_raw_os_error(e)))
    }

    /// Tells the original process that `step` failed with `error` (one `send(2)`), instead of
    /// being ready: its `open()` then returns [`Error::Os`] with that step and OS error. The
    /// daemon should exit afterwards. Does nothing once [`Daemon::ready`] was called.
    pub fn report_failure(&mut self, step: Step, error: &io::Error) {
        if let Some(report) = self.report.take() {
            let errno = error.raw_os_error().unwrap_or(libc::EIO);
            let _ = ready::send(report.as_raw_fd(), Record::Failed(step, errno));
        }
    }

    /// The signals mapped to [`SignalAction::Deliver`], as signal-hook's iterator: `None` when
    /// no signal is mapped so.
    ///
    /// ```no_run
    /// use daemonctx::{DaemonContext, SignalAction};
    ///
    /// let mut daemon = DaemonContext::new()
    ///     .signal(libc::SIGTERM, SignalAction::Deliver)
    ///     .open()?;
    /// if let Some(signals) = daemon.signals() {
    ///     for signal in signals.forever() {
    ///         if signal == libc::SIGTERM { break }
    ///     }
    /// }
    /// daemon.close()?; // removes the pidfile
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn signals(&mut self) -> Option<&mut Signals> {
        self.signals.as_mut()
    }

    /// The pidfile this daemon holds, if any.
    pub fn pidfile(&self) -> Option<&Path> {
        self.pidfile.as_ref().map(Pidfile::path)
    }

    /// Whether the daemon is open: true until [`Daemon::close`].
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Removes the pidfile if it is still ours and releases its lock (`lstat(2)`, `unlink(2)`,
    /// `close(2)`).
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::RemovePidfile`].
    pub fn close(mut self) -> Result<(), Error> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), Error> {
        self.open = false;
        signals::disarm_terminate();
        self.report.take();
        match self.pidfile.take() {
            Some(pidfile) => pidfile.remove(),
            None => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.open {
            let _ = self.close_inner();
        }
    }
}

/// Refuses to fork a multi-threaded process: counts `/proc/self/task`.
fn refuse_threads() -> Result<(), Error> {
    let task = Path::new("/proc/self/task");
    let threads = std::fs::read_dir(task).map_err(|e| Error::os(Step::Preflight, task, e))?.count();
    if threads > 1 {
        return Err(Error::MultiThreaded { threads });
    }
    Ok(())
}

fn check_chroot(dir: &Path) -> Result<CString, Error> {
    check_directory(dir).map_err(|e| Error::os(Step::Chroot, dir, e))?;
    path_to_cstring(dir).map_err(|e| Error::os(Step::Chroot, dir, e))
}

/// Checks the working directory as the daemon will see it (inside the chroot, if any).
fn check_workdir(dir: &Path, chroot: Option<&Path>) -> Result<CString, Error> {
    let seen = match chroot {
        Some(root) => root.join(dir.strip_prefix("/").unwrap_or(dir)),
        None => dir.to_path_buf(),
    };
    check_directory(&seen).map_err(|e| Error::os(Step::Chdir, dir, e))?;
    path_to_cstring(dir).map_err(|e| Error::os(Step::Chdir, dir, e))
}

fn check_directory(dir: &Path) -> io::Result<()> {
    if std::fs::metadata(dir)?.is_dir() {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::ENOTDIR))
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

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}
