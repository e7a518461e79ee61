//! [`DaemonContext`]: the PEP 3143 option set, and the two ways to apply it, [`DaemonContext::open`]
//! and [`DaemonContext::exec`]. The steps themselves are in [`crate::start`].

use std::ffi::c_int;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::command::Command;
use crate::creds::{GroupSpec, UserSpec};
use crate::daemon::Daemon;
use crate::error::Error;
use crate::fds::Stream;
use crate::pidfile;
use crate::signals::{self, SignalAction, SignalMap};
use crate::start::{self, plan::Options};
use nix::sys::signal::Signal;

/// How long the original process waits for the daemon's report unless told otherwise
/// (systemd's default start timeout).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The options of a daemon, with PEP 3143's defaults; [`DaemonContext::open`] applies them.
///
/// ```no_run
/// use daemonctx::DaemonContext;
///
/// let mut daemon = DaemonContext::new()
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
    options: Options,
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
    ///
    /// ```
    /// use daemonctx::DaemonContext;
    ///
    /// let context = DaemonContext::new(); // DaemonContext::default() is the same
    /// # drop(context);
    /// ```
    pub fn new() -> DaemonContext {
        let options = Options {
            chroot_directory: None,
            working_directory: PathBuf::from("/"),
            umask: 0,
            user: None,
            group: None,
            initgroups: false,
            effective_uid_only: false,
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
            close_inherited: false,
        };
        DaemonContext { options }
    }

    /// `chroot(2)` to `dir` in the daemon, after the pidfile is locked and files are opened.
    ///
    /// A pidfile inside `dir` is removed at the end as usual; one outside it is out of the
    /// daemon's reach, so [`Daemon::close`] and the `Terminate` action empty it instead (it then
    /// reads as not running: [`crate::Status::Absent`]).
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new()
    ///     .chroot_directory("/var/lib/myserver/root")
    ///     .working_directory("/"); // inside the new root
    /// # drop(context);
    /// ```
    pub fn chroot_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.chroot_directory = Some(dir.into());
        self
    }

    /// `chdir(2)` to `dir` in the daemon (inside the chroot, if any). Default `/`.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().working_directory("/var/lib/myserver");
    /// # drop(context);
    /// ```
    pub fn working_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.working_directory = dir.into();
        self
    }

    /// `umask(2)` of the daemon. Default 0 (PEP 3143: the program chooses its file modes).
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().umask(0o027); // files: rw-r-----
    /// # drop(context);
    /// ```
    pub fn umask(mut self, mask: u32) -> Self {
        self.options.umask = mask;
        self
    }

    /// `setuid(2)` to this user id in the daemon.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().uid(65534).gid(65534);
    /// # drop(context);
    /// ```
    pub fn uid(mut self, uid: u32) -> Self {
        self.options.user = Some(UserSpec::Id(uid));
        self
    }

    /// `setgid(2)` to this group id in the daemon.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().uid(65534).gid(65534);
    /// # drop(context);
    /// ```
    pub fn gid(mut self, gid: u32) -> Self {
        self.options.group = Some(GroupSpec::Id(gid));
        self
    }

    /// Runs as the user `name` (looked up before the fork with `getpwnam_r(3)`), with its
    /// primary group unless [`DaemonContext::group`] or [`DaemonContext::gid`] says otherwise.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().user("nobody"); // and its primary group
    /// # drop(context);
    /// ```
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.options.user = Some(UserSpec::Name(name.into()));
        self
    }

    /// Runs with the group `name` (looked up before the fork with `getgrnam_r(3)`).
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().user("nobody").group("nogroup");
    /// # drop(context);
    /// ```
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.options.group = Some(GroupSpec::Name(name.into()));
        self
    }

    /// Sets the user's supplementary groups (`getgrouplist(3)`, `setgroups(2)`) instead of
    /// clearing them. Default false.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().user("www-data").initgroups(true);
    /// # drop(context);
    /// ```
    pub fn initgroups(mut self, on: bool) -> Self {
        self.options.initgroups = on;
        self
    }

    /// Changes only the effective user id to the [`DaemonContext::user`] (`seteuid(2)`): the
    /// real and saved ids stay the caller's (root), so processes running as that user cannot
    /// signal (`kill(2)`) or trace (`ptrace(2)`) the daemon, and the kernel marks it not
    /// dumpable. The daemon can regain root: this is for a supervisor, which must finish the
    /// drop (`setresuid(2)` to the effective id, three times) in each command it starts.
    /// Groups are changed in full as usual. Default false.
    ///
    /// ```no_run
    /// # use daemonctx::DaemonContext;
    /// let supervisor = DaemonContext::new().user("www-data").effective_uid_only(true).open();
    /// ```
    pub fn effective_uid_only(mut self, on: bool) -> Self {
        self.options.effective_uid_only = on;
        self
    }

    /// Sets `RLIMIT_CORE` to 0 (`setrlimit(2)`) so a crash cannot dump memory. Default true.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().prevent_core(false); // allow core dumps
    /// # drop(context);
    /// ```
    pub fn prevent_core(mut self, on: bool) -> Self {
        self.options.prevent_core = on;
        self
    }

    /// Whether to fork and leave the session. Default: true, unless the parent is PID 1 or
    /// stdin is a socket (started by init or a superserver), as PEP 3143 specifies.
    ///
    /// ```
    /// // Run in place, under a supervisor that wants its child in the foreground.
    /// let context = daemonctx::DaemonContext::new().detach_process(false);
    /// # drop(context);
    /// ```
    pub fn detach_process(mut self, on: bool) -> Self {
        self.options.detach_process = Some(on);
        self
    }

    /// Keeps these descriptors as they are in the daemon (every other one above 2 is marked
    /// close-on-exec, or closed: see [`DaemonContext::open`]); in [`DaemonContext::exec`] the
    /// command inherits them. They are borrowed: the files must stay open until `open()` or
    /// `exec()` (pass `file.as_fd()`).
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let context = daemonctx::DaemonContext::new().files_preserve([listener.as_fd()]);
    /// # drop(context);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn files_preserve<'a, I>(mut self, files: I) -> Self
    where
        I: IntoIterator<Item = BorrowedFd<'a>>,
    {
        self.options.files_preserve.extend(files.into_iter().map(|f| f.as_raw_fd()));
        self
    }

    /// Keeps the raw descriptor `fd` open in the daemon (and in an exec'd command).
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let context = daemonctx::DaemonContext::new().preserve_fd(listener.as_raw_fd());
    /// # drop(context);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn preserve_fd(mut self, fd: RawFd) -> Self {
        self.options.files_preserve.push(fd);
        self
    }

    /// Closes every descriptor above 2 that is not kept (preserved, the pidfile's, the lock
    /// file's) in the daemon with `close_range(2)`, as PEP 3143 does, instead of marking it
    /// close-on-exec ([`DaemonContext::open`] says why that is the default).
    ///
    /// ```no_run
    /// use daemonctx::DaemonContext;
    ///
    /// // SAFETY: this program owns no descriptor above 2 at this point: it opened none, and
    /// // the libraries it called keep none open.
    /// let context = unsafe { DaemonContext::new().close_inherited_fds() };
    /// let daemon = context.pidfile("/run/myserver.pid").open()?;
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    ///
    /// # Safety
    /// No live owner in the calling process (a `File`, `TcpListener`, `OwnedFd`, a library's
    /// socket or cache) holds a descriptor above 2 that is neither preserved nor the pidfile's
    /// or lock file's, unless it is never used or dropped after `open()` or `exec()` (leaked
    /// with `std::mem::forget`, or the process ends without running its destructor). Otherwise
    /// that owner later reads, writes or closes whatever file reuses the number.
    #[allow(unsafe_code)] // unsafe to call: the caller makes the promise above
    pub unsafe fn close_inherited_fds(mut self) -> Self {
        self.options.close_inherited = true;
        self
    }

    /// Locks `path` before the fork and writes the daemon's pid into it ([`crate::pidfile`]).
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().pidfile("/run/myserver.pid");
    /// # drop(context);
    /// ```
    pub fn pidfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.pidfile = Some(path.into());
        self
    }

    /// The mode a newly created pidfile gets, exactly. Default 0644.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().pidfile("/run/myserver.pid").pidfile_mode(0o600);
    /// # drop(context);
    /// ```
    pub fn pidfile_mode(mut self, mode: u32) -> Self {
        self.options.pidfile_mode = mode;
        self
    }

    /// Also locks `path` before the fork, like the pidfile but without writing or removing it
    /// (the `-l` lock file of daemonize(1)); the daemon holds the lock for its life.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().lock_file("/run/lock/myserver.lock");
    /// # drop(context);
    /// ```
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.lock_file = Some(path.into());
        self
    }

    /// Standard input of the daemon: a file, a path (opened read-only with `open(2)` before the
    /// fork), or `/dev/null` (default); put on fd 0 with `dup2(2)`.
    ///
    /// ```
    /// let context = daemonctx::DaemonContext::new().stdin("/etc/myserver/input");
    /// # drop(context);
    /// ```
    pub fn stdin(mut self, stream: impl Into<Stream>) -> Self {
        self.options.streams[0] = stream.into();
        self
    }

    /// Standard output of the daemon: a file, a path (appended to; `open(2)` before the fork),
    /// the invoker's ([`Stream::Inherit`]), or `/dev/null` (default); put on fd 1 with `dup2(2)`.
    ///
    /// ```
    /// use daemonctx::{DaemonContext, Stream};
    ///
    /// let context = DaemonContext::new().stdout("/var/log/myserver.log");
    /// let context = DaemonContext::new().stdout(Stream::Inherit); // the invoker's stdout
    /// # drop(context);
    /// ```
    pub fn stdout(mut self, stream: impl Into<Stream>) -> Self {
        self.options.streams[1] = stream.into();
        self
    }

    /// Standard error of the daemon: a file, a path (appended to; `open(2)` before the fork),
    /// stdout's own open file ([`Stream::SameAsStdout`], as a shell's `2>&1`), or `/dev/null`
    /// (default); put on fd 2 with `dup2(2)`.
    ///
    /// ```
    /// use daemonctx::{DaemonContext, Stream};
    ///
    /// let log = String::from("/var/log/myserver.log");
    /// let context = DaemonContext::new().stdout(&log).stderr(Stream::SameAsStdout);
    /// # drop(context);
    /// ```
    pub fn stderr(mut self, stream: impl Into<Stream>) -> Self {
        self.options.streams[2] = stream.into();
        self
    }

    /// Replaces the whole signal map, which the daemon installs with `sigaction(2)` after
    /// resetting every disposition to `SIG_DFL` and emptying the mask (`sigprocmask(2)`).
    ///
    /// ```
    /// use daemonctx::{DaemonContext, Signal, SignalAction, SignalMap};
    ///
    /// let mut map = SignalMap::new(); // nothing mapped: every signal has its default action
    /// map.insert(Signal::SIGHUP as i32, SignalAction::Ignore);
    /// map.insert(libc::SIGRTMIN() + 1, SignalAction::Ignore); // a real-time signal, by number
    /// let context = DaemonContext::new().signal_map(map);
    /// # drop(context);
    /// ```
    pub fn signal_map(mut self, map: SignalMap) -> Self {
        self.options.signal_map = map;
        self
    }

    /// Sets one entry of the signal map (installed with `sigaction(2)` in the daemon). A
    /// real-time signal, which has no name, goes in through [`DaemonContext::signal_map`].
    ///
    /// ```
    /// use daemonctx::{DaemonContext, Signal, SignalAction};
    ///
    /// let context = DaemonContext::new()
    ///     .signal(Signal::SIGTERM, SignalAction::Deliver) // for Daemon::signals
    ///     .signal(Signal::SIGHUP, SignalAction::Ignore);
    /// # drop(context);
    /// ```
    pub fn signal(mut self, signal: Signal, action: SignalAction) -> Self {
        self.options.signal_map.insert(signal as c_int, action);
        self
    }

    /// With `false`, the original process keeps waiting after setup until the daemon calls
    /// [`Daemon::ready`] (after binding its socket, say), or dies. Default true.
    ///
    /// ```no_run
    /// let mut daemon = daemonctx::DaemonContext::new().ready_on_open(false).open()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:7201");
    /// // ... daemon.fail(...) if it failed ...
    /// daemon.ready()?; // now the original process exits 0
    /// # drop(listener);
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn ready_on_open(mut self, on: bool) -> Self {
        self.options.ready_on_open = on;
        self
    }

    /// How long the original process waits for the daemon to be ready (`poll(2)` on the report
    /// channel); then it kills the daemon and what it started (`pidfd_send_signal(2)`,
    /// `waitpid(2)`) and fails. `None` waits for
    /// ever. Default 90 s.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let context = daemonctx::DaemonContext::new()
    ///     .ready_on_open(false)
    ///     .ready_timeout(Some(Duration::from_secs(10)));
    /// # drop(context);
    /// ```
    pub fn ready_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.ready_timeout = timeout;
        self
    }

    /// Becomes the daemon. In the original process this returns only on failure: once the daemon
    /// reports ready, the original process exits with status 0 (`exit(3)`). In the daemon (or
    /// in place, without detaching) it returns the [`Daemon`] guard.
    ///
    /// The sequence, and its system calls:
    /// 1. In the original process: count threads (`/proc/self/task`), look users up
    ///    (`getpwnam_r(3)`), check directories (`stat(2)`), lock the pidfile (`open(2)`,
    ///    `fcntl(2)` `F_OFD_SETLK`), open the stream files (`open(2)`).
    /// 2. `socketpair(2)` for the report channel, `fork(2)`, `setsid(2)`, `fork(2)`.
    /// 3. In the daemon: `chroot(2)`, `setrlimit(2)`, `umask(2)`, `chdir(2)`, `setgroups(2)`,
    ///    `setgid(2)`, `setuid(2)`, `sigprocmask(2)`, `sigaction(2)`, `dup2(2)`,
    ///    `close_range(2)`, `pwrite(2)` of the pid, then `send(2)` of the report.
    /// 4. In the original process: `poll(2)`, `read(2)`; on failure `waitpid(2)` and `unlink(2)`.
    ///
    /// # Descriptors
    /// Every descriptor above 2 except the preserved ones, the pidfile's and the lock file's is
    /// marked close-on-exec in the daemon (`close_range(2)` `CLOSE_RANGE_CLOEXEC`), not closed:
    /// `open()` returns into this program, whose `File`s and sockets (copied by `fork(2)`)
    /// still own those numbers, but no program the daemon executes inherits them. Drop what the
    /// daemon does not need before `open()`; to close them as PEP 3143 does, see the `unsafe`
    /// [`DaemonContext::close_inherited_fds`].
    ///
    /// Sockets passed by socket activation ([`crate::activation`]: `LISTEN_PID` names this
    /// process) are kept too. The daemon's pid differs from the one `LISTEN_PID` names, so
    /// read [`crate::activation::ListenFds::from_env`] before `open()`; [`DaemonContext::exec`]
    /// rewrites `LISTEN_PID` for the command itself.
    ///
    /// # Signals
    /// Every disposition is reset to `SIG_DFL` before the signal map is installed, including
    /// `SIGPIPE`, which the Rust runtime ignores at start-up: a daemon that writes to pipes and
    /// wants `EPIPE` instead of death maps it with `.signal(Signal::SIGPIPE, SignalAction::Ignore)`
    /// (sockets are unaffected: std sends with `MSG_NOSIGNAL`).
    ///
    /// # Errors
    /// Every [`Error`] variant, always in the original process, after it removed the pidfile and
    /// reaped the daemon; among them [`Error::AlreadyOpened`] when this process already became a
    /// daemon (or is becoming one: a process is set up once), and [`Error::BadSignalMap`] for
    /// `Terminate` on a signal whose default action does not end the process, or `Deliver` on
    /// one that cannot be caught.
    ///
    /// ```no_run
    /// let daemon = match daemonctx::DaemonContext::new().pidfile("/run/myserver.pid").open() {
    ///     Ok(daemon) => daemon, // in the daemon
    ///     Err(e) => {
    ///         eprintln!("myserver: {}", daemonctx::error::chain(&e)); // in the original process
    ///         std::process::exit(1);
    ///     }
    /// };
    /// # drop(daemon);
    /// ```
    pub fn open(self) -> Result<Daemon, Error> {
        match start::open(self.options)? {
            Some(daemon) => Ok(daemon),
            None => std::process::exit(0),
        }
    }

    /// Becomes a daemon running `command`: the daemon `execve(2)`s it after setup, with the
    /// pidfile's descriptor (and so its lock) and the preserved descriptors inherited.
    ///
    /// Detached, this returns the command's pid in the original process once `execve(2)`
    /// succeeded and the pidfile holds that pid. The command is then a child of the calling
    /// process (adopted so that a failure could be reaped): exit soon, or reap it. In place
    /// (not detached), the process becomes the command and this returns only on failure.
    ///
    /// Socket activation ([`crate::activation`]) passes through: when `LISTEN_PID` names the
    /// calling process, descriptors 3..3+`LISTEN_FDS`-1 stay open and inheritable, and the
    /// command's `LISTEN_PID` (if its environment has one) is set to the pid that calls
    /// `execve(2)`, written in place with no allocation after the fork; `LISTEN_FDS` and
    /// `LISTEN_FDNAMES` pass as they are. When `LISTEN_PID` names another process, the three
    /// variables are removed from the command's environment and the descriptors are closed.
    /// `WATCHDOG_PID` (the service manager's watchdog) is rewritten the same way when it names
    /// the calling process, and removed with `WATCHDOG_USEC` when it names another.
    ///
    /// # Errors
    /// As [`DaemonContext::open`]; a failed `execve(2)` is [`Error::Os`] with [`crate::Step::Exec`].
    ///
    /// ```no_run
    /// use daemonctx::{Command, DaemonContext};
    ///
    /// let argv = vec!["sleep".into(), "1000".into()];
    /// let command = Command::new(argv, vec![("PATH".into(), "/usr/bin:/bin".into())]);
    /// let pid = DaemonContext::new().pidfile("/run/sleep.pid").exec(&command)?;
    /// println!("started pid {pid}");
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn exec(self, command: &Command) -> Result<u32, Error> {
        start::exec(self.options, command)
    }
}
