//! [`DaemonContext`]: the PEP 3143 option set, and step 1 of becoming a daemon.
//!
//! The order matters and is fixed:
//! 1. Here, in the original process, where errors can still be shown: count threads, resolve
//!    users, check the directories, lock the pidfile, open the standard streams' files, build
//!    every string and table the daemon needs (a [`Prepared`] plan).
//! 2. to 4. Fork and detach, set up in the daemon, report: [`crate::launch`].

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::activation::ListenFds;
use crate::command::Command;
use crate::creds::{self, GroupSpec, UserSpec};
use crate::daemon::Daemon;
use crate::detach;
use crate::error::{Error, Step};
use crate::fds::{self, Stream};
use crate::launch::{Plan, Prepared};
use crate::pidfile::{self, Pidfile, path_to_cstring};
use crate::signals::{self, Dispositions, SignalAction, SignalMap, TerminateTarget};

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
    ///
    /// A pidfile inside `dir` is removed at the end as usual; one outside it is out of the
    /// daemon's reach, so [`Daemon::close`] and the `Terminate` action empty it instead (it then
    /// reads as stale, naming no pid).
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

    /// Keeps these descriptors open in the daemon (everything else above 2 is closed); in
    /// [`DaemonContext::exec`] the command inherits them. They are borrowed: the files must stay
    /// open until `open()` or `exec()` (pass `file.as_fd()`).
    pub fn files_preserve<'a, I>(mut self, files: I) -> Self
    where
        I: IntoIterator<Item = BorrowedFd<'a>>,
    {
        self.files_preserve.extend(files.into_iter().map(|f| f.as_raw_fd()));
        self
    }

    /// Keeps the raw descriptor `fd` open in the daemon (and in an exec'd command).
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

    /// Standard input of the daemon: a file, a path (opened read-only with `open(2)` before the
    /// fork), or `/dev/null` (default); put on fd 0 with `dup2(2)`.
    pub fn stdin(mut self, stream: impl Into<Stream>) -> Self {
        self.streams[0] = stream.into();
        self
    }

    /// Standard output of the daemon: a file, a path (appended to; `open(2)` before the fork),
    /// the invoker's ([`Stream::Inherit`]), or `/dev/null` (default); put on fd 1 with `dup2(2)`.
    pub fn stdout(mut self, stream: impl Into<Stream>) -> Self {
        self.streams[1] = stream.into();
        self
    }

    /// Standard error of the daemon: a file, a path (appended to; `open(2)` before the fork),
    /// or `/dev/null` (default); put on fd 2 with `dup2(2)`.
    pub fn stderr(mut self, stream: impl Into<Stream>) -> Self {
        self.streams[2] = stream.into();
        self
    }

    /// Replaces the whole signal map, which the daemon installs with `sigaction(2)` after
    /// resetting every disposition to `SIG_DFL` and emptying the mask (`sigprocmask(2)`).
    pub fn signal_map(mut self, map: SignalMap) -> Self {
        self.signal_map = map;
        self
    }

    /// Sets one entry of the signal map (installed with `sigaction(2)` in the daemon).
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

    /// How long the original process waits for the daemon to be ready (`poll(2)` on the report
    /// channel); then it kills the daemon (`kill(2)`, `waitpid(2)`) and fails. `None` waits for
    /// ever. Default 90 s.
    pub fn ready_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ready_timeout = timeout;
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
    /// As PEP 3143 asks, every descriptor above 2 is closed in the daemon except the preserved
    /// ones and the pidfile's. A `File`, socket or other owner of a descriptor that is neither
    /// dropped before `open()` nor listed in [`DaemonContext::files_preserve`] is left holding a
    /// closed number, which the daemon's next `open(2)` may reuse: drop or preserve it.
    ///
    /// Sockets passed by socket activation ([`crate::activation`]: `LISTEN_PID` names this
    /// process) are kept too. The daemon's pid differs from the one `LISTEN_PID` names, so
    /// read [`crate::activation::ListenFds::from_env`] before `open()`; [`DaemonContext::exec`]
    /// rewrites `LISTEN_PID` for the command itself.
    ///
    /// # Signals
    /// Every disposition is reset to `SIG_DFL` before the signal map is installed, including
    /// `SIGPIPE`, which the Rust runtime ignores at start-up: a daemon that writes to pipes and
    /// wants `EPIPE` instead of death maps it with `.signal(libc::SIGPIPE, SignalAction::Ignore)`
    /// (sockets are unaffected: std sends with `MSG_NOSIGNAL`).
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
    ///
    /// # Errors
    /// As [`DaemonContext::open`]; a failed `execve(2)` is [`Error::Os`] with [`Step::Exec`].
    pub fn exec(self, command: &Command) -> Result<u32, Error> {
        self.prepare(Some(command))?.exec_as_daemon()
    }

    /// Step 1: everything that can fail before the fork; checks without side effects first.
    fn prepare(self, command: Option<&Command>) -> Result<Prepared, Error> {
        let detach = self.detach_process.unwrap_or_else(detach::should_detach);
        if detach {
            refuse_threads()?;
        }
        for fd in &self.files_preserve {
            fds::check_open(*fd)?;
        }
        let creds = creds::resolve(self.user.as_ref(), self.group.as_ref(), self.initgroups)?;
        let chroot = self.chroot_directory.as_deref().map(check_chroot).transpose()?;
        let workdir = check_workdir(&self.working_directory, self.chroot_directory.as_deref())?;
        // Socket activation meant for this process passes through; meant for another, the
        // variables are dropped and the descriptors closed like any other.
        let activation = ListenFds::from_env();
        let image = command
            .map(|c| match activation {
                Some(_) => c.prepare(self.chroot_directory.as_deref()),
                None => {
                    let mut c = c.clone();
                    c.remove_activation();
                    c.prepare(self.chroot_directory.as_deref())
                }
            })
            .transpose()?;
        let pidfile =
            self.pidfile.as_ref().map(|p| Pidfile::lock(p, self.pidfile_mode)).transpose()?;
        let pidfile_in_daemon = pidfile.as_ref().map(|p| match &self.chroot_directory {
            Some(root) => pidfile::path_inside_root(p.path(), root),
            None => Some(p.path().to_path_buf()),
        });
        let terminate_pidfile = match (&pidfile, self.terminates()) {
            (Some(pidfile), true) => {
                let seen = pidfile_in_daemon.clone().flatten();
                Some(terminate_target(pidfile, seen.as_deref())?)
            }
            _ => None,
        };
        let mut prepared = Prepared {
            plan: Plan {
                chroot,
                workdir,
                umask: self.umask as libc::mode_t,
                prevent_core: self.prevent_core,
                creds,
                dispositions: Dispositions::new(&self.signal_map, command.is_some()),
                keep: Vec::new(),
                inherited: Vec::new(),
                stream_fds: [-1; 3],
                pidfile_fd: pidfile.as_ref().map(|p| p.as_raw_fd()),
                for_exec: command.is_some(),
            },
            streams: Vec::new(),
            image,
            pidfile,
            lock: None,
            chroot_directory: self.chroot_directory,
            working_directory: self.working_directory,
            delivered: signals::delivered(&self.signal_map),
            terminate_pidfile,
            pidfile_in_daemon: pidfile_in_daemon.flatten(),
            detach,
            timeout: self.ready_timeout,
        };
        // The pidfile's own lock already covers a lock file that is the same file (`-p F -l F`).
        let lock_file = self
            .lock_file
            .filter(|path| !prepared.pidfile.as_ref().is_some_and(|p| is_file(path, p)));
        if let Some(path) = &lock_file {
            let lock =
                Pidfile::lock_file(path, self.pidfile_mode).map_err(|e| prepared.abandon(e))?;
            prepared.lock = Some(lock);
        }
        // Listed before the stream files are opened, which could take a closed number.
        let mut kept = self.files_preserve;
        kept.extend(activation.iter().flat_map(ListenFds::fds).filter(|fd| fds::is_open(*fd)));
        open_streams(&mut prepared, self.streams)?;
        list_kept_fds(&mut prepared, kept);
        Ok(prepared)
    }

    fn terminates(&self) -> bool {
        self.signal_map.values().any(|a| matches!(a, SignalAction::Terminate))
    }
}

/// Opens the three stream files (step 1), removing the pidfile if one cannot be opened.
fn open_streams(prepared: &mut Prepared, streams: [Stream; 3]) -> Result<(), Error> {
    for (i, stream) in streams.into_iter().enumerate() {
        let fd = stream.open(i as RawFd).map_err(|e| prepared.abandon(e))?;
        prepared.plan.stream_fds[i] = fd.as_raw_fd();
        prepared.streams.push(fd);
    }
    Ok(())
}

/// The descriptors that survive the setup (and an exec): preserved ones, pidfile, lock file;
/// sorted and without duplicates, as `close_range(2)` over the gaps needs them.
fn list_kept_fds(prepared: &mut Prepared, preserved: Vec<RawFd>) {
    let mut kept: Vec<RawFd> = preserved.into_iter().filter(|fd| *fd > 2).collect();
    kept.extend(prepared.pidfile.as_ref().map(|p| p.as_raw_fd()));
    kept.extend(prepared.lock.as_ref().map(|p| p.as_raw_fd()));
    kept.sort_unstable();
    kept.dedup();
    prepared.plan.inherited = kept.clone();
    prepared.plan.keep = kept;
}

/// What the `Terminate` handler needs to remove the pidfile: the path the daemon sees it at
/// (`seen`; the outside path when it lies outside the chroot, which the handler then cannot
/// find, so it empties the file instead), device, inode, descriptor.
fn terminate_target(pidfile: &Pidfile, seen: Option<&Path>) -> Result<TerminateTarget, Error> {
    let (dev, ino) = pidfile.identity();
    let path = path_to_cstring(seen.unwrap_or(pidfile.path()))
        .map_err(|e| Error::os(Step::OpenPidfile, pidfile.path(), e))?;
    Ok(TerminateTarget { path, dev, ino, fd: pidfile.as_raw_fd() })
}

/// Whether `path` names the locked pidfile (`stat(2)`: same device and inode).
fn is_file(path: &Path, pidfile: &Pidfile) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == pidfile.identity())
}

/// Refuses to fork a multi-threaded process: counts `/proc/self/task`.
pub(crate) fn refuse_threads() -> Result<(), Error> {
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
