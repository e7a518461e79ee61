//! Step 1 of becoming a daemon, in the original process, where errors can still be shown:
//! everything before the fork.
//!
//! The order: decide whether to detach (`getppid(2)`, `fstat(2)` of stdin), count threads
//! (`/proc/self/task`), check the preserved descriptors (`fcntl(2)`), look users up
//! (`getpwnam_r(3)`, `getgrnam_r(3)`), check the directories (`stat(2)`), resolve the command on
//! `PATH`, lock the pidfile and the lock file (`open(2)`, `fcntl(2)` `F_OFD_SETLK`), open the
//! stream files (`open(2)`). Checks without side effects come first; once the pidfile is
//! locked, every failure removes it again ([`Prepared::abandon`]).
//!
//! The result is a [`Prepared`] start: a [`Plan`] (every string, id and table the daemon's
//! setup needs, so that it runs on raw system calls without allocating) and the resources the
//! original process cleans up on failure.

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::activation::{self, ListenFds};
use crate::command::{Command, ExecImage};
use crate::creds::{self, Credentials, GroupSpec, UserSpec};
use crate::error::{Error, Step};
use crate::fds::{self, Stream};
use crate::pidfile::{Pidfile, path_to_cstring};
use crate::signals::{self, Dispositions, SignalAction, SignalMap, TerminateTarget};

/// The options of [`crate::DaemonContext`], as its builder methods set them.
#[derive(Debug)]
pub(crate) struct Options {
    pub chroot_directory: Option<PathBuf>,
    pub working_directory: PathBuf,
    pub umask: u32,
    pub user: Option<UserSpec>,
    pub group: Option<GroupSpec>,
    pub initgroups: bool,
    pub effective_uid_only: bool,
    pub prevent_core: bool,
    pub detach_process: Option<bool>,
    pub files_preserve: Vec<RawFd>,
    pub pidfile: Option<PathBuf>,
    pub pidfile_mode: u32,
    pub lock_file: Option<PathBuf>,
    pub streams: [Stream; 3],
    pub signal_map: SignalMap,
    pub ready_on_open: bool,
    pub ready_timeout: Option<Duration>,
    /// The caller promised that nothing owns the inherited descriptors: close them.
    pub close_inherited: bool,
}

/// What happens to the descriptors above 2 that the daemon inherited and does not keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdPolicy {
    /// `close_range(2)`: closed. Only where no Rust owner of one of them runs again (a detached
    /// daemon about to `execve(2)`), or where the caller promised that nothing owns them
    /// ([`crate::DaemonContext::close_inherited_fds`]).
    Close,
    /// `close_range(2)` with `CLOSE_RANGE_CLOEXEC`: left open, but no program the daemon
    /// executes inherits them. Sound whoever owns them: `open()` returns into the caller's
    /// program, whose `File`s and sockets (copied by `fork(2)`) still hold these numbers.
    CloseOnExec,
}

/// What the daemon needs, built before the fork: the setup is raw system calls on this
/// (`start/child.rs`).
#[derive(Debug)]
pub(crate) struct Plan {
    pub chroot: Option<CString>,
    pub workdir: CString,
    pub umask: nix::sys::stat::Mode,
    pub prevent_core: bool,
    pub creds: Credentials,
    pub dispositions: Dispositions,
    /// Descriptors above 2 that stay open, sorted: `inherited` plus the report channel.
    pub keep: Vec<RawFd>,
    /// Descriptors an exec'd command inherits: preserved ones, the pidfile's, the lock file's.
    pub inherited: Vec<RawFd>,
    /// What becomes of the other descriptors above 2.
    pub fds: FdPolicy,
}

/// The outcome of step 1: the plan, and the resources the original process must clean up.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub plan: Plan,
    /// The opened stream files for descriptors 0, 1 and 2, at 3 or above.
    pub streams: Vec<OwnedFd>,
    /// The command to execute, in exec mode.
    pub image: Option<ExecImage>,
    pub pidfile: Option<Pidfile>,
    /// In exec mode, a read-only description of the pidfile that the command gets in its place
    /// (with the lock: [`Pidfile::hand_over_to`]); `None` where `/proc` cannot reopen it.
    pub pidfile_reader: Option<OwnedFd>,
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
    pub ready_on_open: bool,
    pub timeout: Option<Duration>,
}

/// Step 1: everything that can fail before the fork; checks without side effects first.
pub(crate) fn prepare(options: Options, command: Option<&Command>) -> Result<Prepared, Error> {
    let o = options;
    if let Some(signal) = signals::terminate_that_would_not_end(&o.signal_map) {
        let reason = "mapped to Terminate, but its default action does not end the process";
        return Err(Error::BadSignalMap { signal, reason });
    }
    if let Some(signal) = signals::deliver_that_cannot_be_caught(&o.signal_map) {
        let reason = "mapped to Deliver, but it cannot be caught";
        return Err(Error::BadSignalMap { signal, reason });
    }
    let detach = o.detach_process.unwrap_or_else(should_detach);
    if detach {
        refuse_threads()?;
    }
    for fd in &o.files_preserve {
        fds::check_open(*fd)?;
    }
    let mut creds = creds::resolve(o.user.as_ref(), o.group.as_ref(), o.initgroups)?;
    creds.effective_only = o.effective_uid_only;
    let root = o.chroot_directory.as_deref();
    let chroot = root.map(check_chroot).transpose()?;
    let workdir = check_workdir(&o.working_directory, root)?;
    // Socket activation meant for this process passes through; meant for another, the
    // variables are dropped and the descriptors closed like any other. The same for the
    // watchdog's variables.
    let activation = ListenFds::from_env();
    let image = command
        .map(|c| {
            let mut c = c.clone();
            if activation.is_none() {
                c.remove_activation();
            }
            if !activation::watchdog_is_ours() {
                c.remove_watchdog();
            }
            c.prepare(root)
        })
        .transpose()?;
    let user = creds.uid;
    let pidfile =
        o.pidfile.as_ref().map(|p| Pidfile::lock_for(p, o.pidfile_mode, user)).transpose()?;
    let pidfile_in_daemon = pidfile.as_ref().and_then(|p| match root {
        Some(root) => p.path_inside_root(root),
        None => Some(p.path().to_path_buf()),
    });
    // A detached exec never returns to the caller's code; in place, a failed execve(2) does.
    let fds = match (command.is_some() && detach) || o.close_inherited {
        true => FdPolicy::Close,
        false => FdPolicy::CloseOnExec,
    };
    let mut prepared = Prepared {
        plan: Plan {
            chroot,
            workdir,
            umask: nix::sys::stat::Mode::from_bits_truncate(o.umask as libc::mode_t),
            prevent_core: o.prevent_core,
            creds,
            dispositions: Dispositions::new(&o.signal_map, command.is_some()),
            keep: Vec::new(),
            inherited: Vec::new(),
            fds,
        },
        streams: Vec::new(),
        image,
        pidfile_reader: pidfile.as_ref().filter(|_| command.is_some()).and_then(reader),
        pidfile,
        lock: None,
        chroot_directory: o.chroot_directory,
        working_directory: o.working_directory,
        delivered: signals::delivered(&o.signal_map),
        terminate_pidfile: None,
        pidfile_in_daemon,
        detach,
        ready_on_open: o.ready_on_open,
        timeout: o.ready_timeout,
    };
    let terminates = o.signal_map.values().any(|a| matches!(a, SignalAction::Terminate));
    let target = match (&prepared.pidfile, terminates) {
        (Some(pidfile), true) => {
            Some(terminate_target(pidfile, prepared.pidfile_in_daemon.as_deref()))
        }
        _ => None,
    };
    prepared.terminate_pidfile = target.transpose().map_err(|e| prepared.abandon(e))?;
    lock_lock_file(&mut prepared, o.lock_file, o.pidfile_mode)?;
    // Listed before the stream files are opened, which could take a closed number.
    let mut kept = o.files_preserve;
    kept.extend(activation.iter().flat_map(ListenFds::fds).filter(|fd| fds::is_open(*fd)));
    open_streams(&mut prepared, o.streams)?;
    list_kept_fds(&mut prepared, kept);
    Ok(prepared)
}

/// PEP 3143's rule for `detach_process` left unset: do not detach when started by init (the
/// parent is PID 1) or by a superserver (stdin is a socket): `getppid(2)`, `fstat(2)`.
pub(crate) fn should_detach() -> bool {
    let parent_is_init = nix::unistd::getppid().as_raw() == 1;
    let stdin_is_socket = nix::sys::stat::fstat(std::io::stdin().as_fd())
        .is_ok_and(|meta| meta.st_mode & libc::S_IFMT == libc::S_IFSOCK);
    !(parent_is_init || stdin_is_socket)
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

/// Locks the lock file, unless it is the pidfile itself (`-p F -l F`), whose lock covers it.
fn lock_lock_file(prepared: &mut Prepared, path: Option<PathBuf>, mode: u32) -> Result<(), Error> {
    let path = path.filter(|path| !prepared.pidfile.as_ref().is_some_and(|p| is_file(path, p)));
    if let Some(path) = &path {
        let user = prepared.plan.creds.uid;
        let lock = Pidfile::lock_file_for(path, mode, user).map_err(|e| prepared.abandon(e))?;
        prepared.lock = Some(lock);
    }
    Ok(())
}

/// Opens the three stream files, removing the pidfile if one cannot be opened.
fn open_streams(prepared: &mut Prepared, streams: [Stream; 3]) -> Result<(), Error> {
    let mut null: Option<usize> = None;
    for (i, stream) in streams.into_iter().enumerate() {
        // /dev/null is opened once; the other streams that go there get a copy (`fcntl(2)`
        // `F_DUPFD_CLOEXEC`), not another walk from `/` (three system calls each).
        let is_null = matches!(stream, Stream::Null);
        let opened = match (&stream, prepared.streams.get(1), null) {
            (Stream::SameAsStdout, Some(stdout), _) if i == 2 => {
                fds::same_as_stdout(stdout.as_fd())
            }
            (Stream::Null, _, Some(first)) => prepared.streams[first]
                .try_clone()
                .map_err(|e| Error::os(Step::OpenStream, "/dev/null", e)),
            _ => stream.open(i as RawFd),
        };
        let fd = opened.map_err(|e| prepared.abandon(e))?;
        if is_null {
            null.get_or_insert(prepared.streams.len());
        }
        prepared.streams.push(fd);
    }
    Ok(())
}

/// The read-only description of the pidfile an exec'd command gets; `None` (the command then
/// keeps the writable one) where it cannot be opened.
fn reader(pidfile: &Pidfile) -> Option<OwnedFd> {
    pidfile.reopen_read_only().ok()
}

/// The descriptors that survive the setup (and an exec): preserved ones, pidfile, lock file;
/// sorted and without duplicates, as `close_range(2)` over the gaps needs them. The pidfile's
/// read-only description survives the setup only (it is put on the pidfile's number).
fn list_kept_fds(prepared: &mut Prepared, preserved: Vec<RawFd>) {
    let mut kept: Vec<RawFd> = preserved.into_iter().filter(|fd| *fd > 2).collect();
    kept.extend(prepared.pidfile.as_ref().map(|p| p.as_raw_fd()));
    kept.extend(prepared.lock.as_ref().map(|p| p.as_raw_fd()));
    kept.sort_unstable();
    kept.dedup();
    prepared.plan.inherited = kept.clone();
    kept.extend(prepared.pidfile_reader.as_ref().map(|r| r.as_raw_fd()));
    kept.sort_unstable();
    prepared.plan.keep = kept;
}

/// What the `Terminate` handler needs to remove the pidfile: the path the daemon sees it at
/// (`seen`; the outside path when it lies outside the chroot, which the handler then cannot
/// find, so it empties the file instead), device, inode, descriptor.
fn terminate_target(pidfile: &Pidfile, seen: Option<&Path>) -> Result<TerminateTarget, Error> {
    let (dev, ino) = pidfile.identity();
    let path = match seen.filter(|seen| *seen != pidfile.path()) {
        Some(seen) => {
            path_to_cstring(seen).map_err(|e| Error::os(Step::OpenPidfile, pidfile.path(), e))?
        }
        None => pidfile.resolved_path().clone(),
    };
    Ok(TerminateTarget { path, dev, ino, fd: pidfile.as_raw_fd() })
}

/// Whether `path` names the locked pidfile (`stat(2)`: same device and inode).
fn is_file(path: &Path, pidfile: &Pidfile) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == pidfile.identity())
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

impl Prepared {
    /// Removes the pidfile after a failure, and passes the error on.
    pub(crate) fn abandon(&mut self, error: Error) -> Error {
        signals::disarm_terminate();
        // The start is given up: close what it opened first, so that the removal has the
        // descriptor it needs even when the failure was running out of them (EMFILE).
        self.pidfile_reader.take();
        self.streams.clear();
        if let Some(pidfile) = self.pidfile.take() {
            let _ = pidfile.remove();
        }
        error
    }

    /// The error for `step` failing with `errno` (the pidfile removed): names the path the
    /// step worked on.
    pub(crate) fn failure(&mut self, step: Step, errno: i32) -> Error {
        let path = self.path_of(step);
        let error = Error::Os { step, path, source: io::Error::from_raw_os_error(errno) };
        self.abandon(error)
    }

    /// The path a failed step worked on, for the error message.
    fn path_of(&self, step: Step) -> Option<PathBuf> {
        match step {
            Step::Chroot => self.chroot_directory.clone(),
            Step::Chdir => Some(self.working_directory.clone()),
            Step::WritePidfile => self.pidfile.as_ref().map(|p| p.path().to_path_buf()),
            Step::Exec => self.image.as_ref().map(|c| c.shown().to_path_buf()),
            _ => None,
        }
    }

    /// Tells the `Terminate` handler which pidfile to remove: before the setup installs the
    /// handler and writes the pid, so no SIGTERM can find the pidfile written but not armed.
    pub(crate) fn arm_terminate(&mut self) {
        if let Some(target) = self.terminate_pidfile.take() {
            signals::arm_terminate(target);
        }
    }
}
