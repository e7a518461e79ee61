//! Pidfiles whose ownership is a lock, not the file's existence.
//!
//! The owner holds an exclusive open-file-description lock (`fcntl(2)` `F_OFD_SETLK`) on the
//! open pidfile for its whole life; the lock follows the open file description across `fork(2)`
//! and `execve(2)` and dies with the last descriptor. A pidfile that exists but is not locked is
//! stale, whatever pid it names, so a recycled pid never fools [`Pidfile::status`]. A pidfile
//! that exists, unlocked and empty, names nothing and reads as not running: that is what a
//! daemon leaves when it cannot `unlink(2)` its pidfile (after dropping privileges, or out of
//! reach of its `chroot(2)`) and empties it through its descriptor instead.
//!
//! Why OFD locks and not `flock(2)` (std's `File::try_lock`): both follow the open file
//! description, but only `fcntl(2)` can *ask* whether a lock is held without taking it
//! (`F_OFD_GETLK`). A status check that took the lock, even for a moment, could make a
//! concurrent start fail with "already running"; ours never does.
//!
//! The sequence: the directory is opened with [`crate::safe_open::open_dir`] (no symbolic link
//! followed in a directory other users can write), the file in it with `openat(2)`
//! `O_NOFOLLOW | O_CLOEXEC` (a symlink as the last component is refused), `fstat(2)` (an
//! existing file must be regular, not world-writable, have one link and belong to the caller or
//! the daemon's user), lock, `fstatat(2)` in the directory to check that the name still names
//! the locked inode (else retry), `ftruncate(2)`.
//! The pid is written with `pwrite(2)` into the locked file, never renamed over it, and not
//! `fsync(2)`ed: a pidfile is run-time state (on a tmpfs such as `/run` on most systems), its
//! lock, not its bytes, says who runs, and after a crash of the machine no lock is held, so a
//! pid that did not reach the disk misleads nobody. start-stop-daemon(8) and FreeBSD's
//! pidfile(3) do not sync either; the sync cost a device flush on every start from a disk.
#![allow(unsafe_code)] // one block: Pidfile::hand_over_to's dup2(2) over its own number

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use crate::error::{Error, Step};
use crate::sys;

/// The mode a new pidfile gets (exactly: the umask does not apply).
pub const DEFAULT_MODE: u32 = 0o644;

/// How long a reader waits for the holder of a fresh lock to write its pid.
const HOLDER_PID_WAIT: Duration = Duration::from_secs(1);

/// The most a pidfile is read: a pid and a newline fit many times over.
const READ_LIMIT: u64 = 64;

/// A locked pidfile: the lock is held as long as this value (or a descriptor duplicated from it,
/// in a forked or exec'd process) is open.
#[derive(Debug)]
pub struct Pidfile {
    fd: OwnedFd,
    path: PathBuf,
    /// The path to unlink it by: its directory as the kernel resolved it when it was locked
    /// (`/proc/self/fd`), with no symbolic link in it; `path` when that is not known.
    resolved: CString,
    dev: u64,
    ino: u64,
}

/// The outcome of trying to lock a pidfile: a busy lock is an outcome, not an error.
#[derive(Debug)]
pub enum Acquire {
    /// The lock is ours; the file is empty, waiting for a pid.
    Locked(Pidfile),
    /// Another process holds the lock; the pid it wrote, if it could be read.
    HeldBy(Option<u32>),
}

/// What a pidfile says about its daemon, judged by the lock.
#[derive(Debug)]
pub enum Status {
    /// The lock is held: the daemon runs. The pid written in the file, if readable.
    Running(Option<u32>),
    /// The file exists, is not empty, and nobody holds the lock: the daemon died. The pid it
    /// names, if any.
    Stale(Option<u32>),
    /// There is no pidfile, or an empty one that nobody holds: not running. A daemon that
    /// cannot remove its pidfile at the end (it dropped privileges, or entered a `chroot(2)`)
    /// empties it instead, so its clean exit leaves nothing that reads as a dead daemon.
    Absent,
    /// The pidfile could not be inspected (permissions, a symlink, not a regular file).
    Unknown(io::Error),
}

impl Pidfile {
    /// Opens (creating it with `mode` if needed) and locks the pidfile at `path`, then empties it.
    ///
    /// System calls: the directory's walk ([`crate::safe_open::open_dir`]), `openat(2)`
    /// (`O_NOFOLLOW | O_CLOEXEC`), `fstat(2)`, `fchmod(2)` on a file it created, `fcntl(2)`
    /// `F_OFD_SETLK`, `fstatat(2)`, `ftruncate(2)`.
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::OpenPidfile`] or [`Step::LockPidfile`];
    /// [`Error::UnsafePidfile`] for an existing world-writable or non-regular file.
    pub fn acquire(path: impl AsRef<Path>, mode: u32) -> Result<Acquire, Error> {
        acquire(path.as_ref(), mode, true, None)
    }

    /// Like [`Pidfile::acquire`], for a daemon that will run as `user`: an existing file owned
    /// by `user` is accepted as well as one owned by the caller.
    ///
    /// # Errors
    /// As [`Pidfile::acquire`].
    pub fn acquire_for(
        path: impl AsRef<Path>,
        mode: u32,
        user: Option<u32>,
    ) -> Result<Acquire, Error> {
        acquire(path.as_ref(), mode, true, user)
    }

    /// Locks `path` like a pidfile but leaves its content alone: a lock file (the `-l` of
    /// daemonize(1)), held as long as the daemon lives, and never removed.
    ///
    /// # Errors
    /// As [`Pidfile::lock`].
    pub fn lock_file(path: impl AsRef<Path>, mode: u32) -> Result<Pidfile, Error> {
        Pidfile::lock_file_for(path, mode, None)
    }

    /// [`Pidfile::lock_file`] for a daemon that will run as `user` (see
    /// [`Pidfile::acquire_for`]).
    ///
    /// # Errors
    /// As [`Pidfile::lock`].
    pub fn lock_file_for(
        path: impl AsRef<Path>,
        mode: u32,
        user: Option<u32>,
    ) -> Result<Pidfile, Error> {
        let path = path.as_ref();
        match acquire(path, mode, false, user)? {
            Acquire::Locked(file) => Ok(file),
            Acquire::HeldBy(pid) => Err(Error::AlreadyRunning { pidfile: path.to_path_buf(), pid }),
        }
    }
}

/// The sequence behind [`Pidfile::acquire`] and [`Pidfile::lock_file`].
fn acquire(path: &Path, mode: u32, empty_it: bool, user: Option<u32>) -> Result<Acquire, Error> {
    if mode & !0o777 != 0 || mode & 0o002 != 0 {
        let reason = "its mode would let anyone rewrite it (world-writable or special bits)";
        return Err(Error::UnsafePidfile { pidfile: path.to_path_buf(), reason });
    }
    // Absolute, so that the daemon, once in `/`, still names the file it locked.
    let path = &std::path::absolute(path).map_err(|e| Error::os(Step::OpenPidfile, path, e))?;
    let (dir, name) = open_parent(path).map_err(|e| Error::os(Step::OpenPidfile, path, e))?;
    let acquired = lock_in(dir.as_fd(), &name, path, mode, empty_it, user)?;
    drop(dir);
    Ok(match acquired {
        Acquire::Locked(mut pidfile) => {
            pidfile.fd = lowest_number(pidfile.fd);
            Acquire::Locked(pidfile)
        }
        held => held,
    })
}

/// The same open file description on the lowest free descriptor number when that is lower
/// (`fcntl(2)` `F_DUPFD_CLOEXEC`): where `open(2)` would have put it had the directory not been
/// open meanwhile. `fd` itself when nothing lower is free.
fn lowest_number(fd: OwnedFd) -> OwnedFd {
    match sys::fd::duplicate_from(fd.as_fd(), 0) {
        Ok(copy) if copy.as_raw_fd() < fd.as_raw_fd() => copy,
        _ => fd,
    }
}

/// Opens or creates `name` in `dir`, checks it, locks it, and (for a pidfile) empties it.
fn lock_in(
    dir: BorrowedFd<'_>,
    name: &CString,
    path: &Path,
    mode: u32,
    empty_it: bool,
    user: Option<u32>,
) -> Result<Acquire, Error> {
    loop {
        let (fd, created) = open_or_create(dir, name, mode).map_err(|e| open_error(path, e))?;
        // A file this call created is removed again if anything below fails.
        let undo = |error: Error| {
            if created {
                let _ = unlink(dir, name);
            }
            error
        };
        let meta = fstat(fd.as_fd()).map_err(|e| undo(Error::os(Step::OpenPidfile, path, e)))?;
        check_safe(path, &meta, created, user).map_err(undo)?;
        match lock_exclusive(fd.as_fd()) {
            Ok(true) => {}
            Ok(false) => return Ok(Acquire::HeldBy(read_holder_pid(fd.as_fd()))),
            Err(e) => return Err(undo(Error::os(Step::LockPidfile, path, e))),
        }
        if !named_in(dir, name, meta.st_dev, meta.st_ino) {
            continue; // replaced or removed between open and lock: lock the new one
        }
        if empty_it {
            truncate(fd.as_fd()).map_err(|e| undo(Error::os(Step::LockPidfile, path, e)))?;
        }
        return Ok(Acquire::Locked(Pidfile {
            fd,
            path: path.to_path_buf(),
            resolved: resolved_path(dir, name, path),
            dev: meta.st_dev,
            ino: meta.st_ino,
        }));
    }
}

/// `path` with its directory as the kernel resolved `dir` (`readlink(2)` of
/// `/proc/self/fd/N`): no symbolic link on the way, so [`crate::safe_open::unlink_if_named`]
/// can walk it without following any. `path` itself when `/proc` cannot tell.
fn resolved_path(dir: BorrowedFd<'_>, name: &CString, path: &Path) -> CString {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let resolved = match link {
        Ok(dir) if dir.is_absolute() && !dir.as_os_str().as_bytes().ends_with(b" (deleted)") => {
            dir.join(std::ffi::OsStr::from_bytes(name.as_bytes()))
        }
        _ => path.to_path_buf(),
    };
    path_to_cstring(&resolved).unwrap_or_else(|_| name.clone())
}

/// The directory of `path`, opened with [`crate::safe_open::open_dir`] (no symbolic link is
/// followed in a directory other users can write), and the file's name in it.
fn open_parent(path: &Path) -> io::Result<(OwnedFd, CString)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file path"));
    };
    Ok((crate::safe_open::open_dir(parent)?, path_to_cstring(Path::new(name))?))
}

impl Pidfile {
    /// Like [`Pidfile::acquire`], but a held lock is an [`Error::AlreadyRunning`].
    ///
    /// # Errors
    /// As [`Pidfile::acquire`], plus [`Error::AlreadyRunning`] naming the holder's pid.
    pub fn lock(path: impl AsRef<Path>, mode: u32) -> Result<Pidfile, Error> {
        Pidfile::lock_for(path, mode, None)
    }

    /// Like [`Pidfile::lock`], for a daemon that will run as `user` (see
    /// [`Pidfile::acquire_for`]).
    ///
    /// # Errors
    /// As [`Pidfile::lock`].
    ///
    /// ```no_run
    /// // A pidfile that an earlier run left owned by uid 33 is accepted for a daemon of uid 33.
    /// let pidfile = daemonctx::Pidfile::lock_for("/run/app.pid", 0o644, Some(33))?;
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn lock_for(
        path: impl AsRef<Path>,
        mode: u32,
        user: Option<u32>,
    ) -> Result<Pidfile, Error> {
        match Pidfile::acquire_for(path.as_ref(), mode, user)? {
            Acquire::Locked(pidfile) => Ok(pidfile),
            Acquire::HeldBy(pid) => {
                Err(Error::AlreadyRunning { pidfile: path.as_ref().to_path_buf(), pid })
            }
        }
    }

    /// Writes `pid` and a newline into the locked file: `ftruncate(2)`, `pwrite(2)` (no
    /// `fsync(2)`: see the module docs).
    ///
    /// Async-signal-safe: no allocation, so the daemon calls it between `fork(2)` and `execve(2)`.
    ///
    /// # Errors
    /// The OS error of the first call that failed.
    pub fn write_pid(&self, pid: u32) -> io::Result<()> {
        write_pid_fd(self.fd.as_fd(), pid).map_err(io::Error::from_raw_os_error)
    }

    /// Empties the file (`ftruncate(2)`): locked, but naming no process for now.
    ///
    /// # Errors
    /// The OS error of `ftruncate(2)`.
    pub fn clear(&self) -> io::Result<()> {
        truncate(self.fd.as_fd())
    }

    /// Removes the file if the path still names the locked inode, then releases the lock.
    /// When it does not (the file was replaced, or lies outside a `chroot(2)` the daemon
    /// entered), or when `unlink(2)` is refused (a daemon that dropped privileges may not write
    /// the directory: `EACCES`), the locked file is emptied through the descriptor instead, so
    /// that it names no process: once the lock is released, [`Pidfile::status`] reads an empty
    /// unlocked file as [`Status::Absent`], not running.
    ///
    /// The path is not looked up twice: its directory, as resolved when the file was locked,
    /// is opened without following any symbolic link on the way, and the check and the unlink
    /// are made in the directory held open (`fstatat(2)`, then `unlinkat(2)`), so another
    /// user who swaps a directory on the way for a link between the two cannot turn the
    /// unlink onto another file.
    ///
    /// System calls: `openat2(2)` (`RESOLVE_NO_SYMLINKS`), `fstatat(2)`, `unlinkat(2)` and,
    /// when it is not done, `ftruncate(2)`; `close(2)`.
    ///
    /// ```no_run
    /// let pidfile = daemonctx::Pidfile::lock("/run/app.pid", daemonctx::pidfile::DEFAULT_MODE)?;
    /// pidfile.write_pid(std::process::id())?;
    /// // ... run ...
    /// pidfile.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::RemovePidfile`] when the file could be neither removed nor
    /// emptied (the error of `unlink(2)` if it was tried, else that of `ftruncate(2)`).
    pub fn remove(self) -> Result<(), Error> {
        let failed = |e| Error::os(Step::RemovePidfile, &self.path, e);
        match crate::safe_open::unlink_if_named(&self.resolved, self.dev, self.ino) {
            Ok(true) => Ok(()),
            Ok(false) => truncate(self.fd.as_fd()).map_err(failed),
            Err(refused) => {
                truncate(self.fd.as_fd()).map_err(|_| failed(io::Error::from_raw_os_error(refused)))
            }
        }
    }

    /// The path [`Pidfile::remove`] and the `Terminate` handler unlink it by (see
    /// [`crate::safe_open::unlink_if_named`]).
    pub(crate) fn resolved_path(&self) -> &CString {
        &self.resolved
    }

    /// A second open file description of the locked file, read-only: `open(2)` of
    /// `/proc/self/fd/N` (no lookup of the path again), checked with `fstat(2)` to be the same
    /// inode. What an exec'd command gets in place of this one ([`Pidfile::hand_over_to`]).
    ///
    /// # Errors
    /// The OS error of `open(2)` or `fstat(2)`; `InvalidData` for another inode.
    pub(crate) fn reopen_read_only(&self) -> io::Result<OwnedFd> {
        let proc_path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        // Not openat_raw: /proc/self/fd/N is a link to follow, to this very file.
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        let fd = nix::fcntl::open(proc_path.as_str(), flags, Mode::empty())?;
        let meta = fstat(fd.as_fd())?;
        if (meta.st_dev, meta.st_ino) != (self.dev, self.ino) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "another file"));
        }
        Ok(fd)
    }

    /// Moves the lock onto `reader`, a read-only description of the same file
    /// ([`Pidfile::reopen_read_only`]), and puts `reader` on this pidfile's descriptor number,
    /// so that an exec'd command inherits the lock but cannot write the file. Async-signal-safe.
    ///
    /// A write lock needs a writable description (`F_WRLCK` on a read-only one is `EBADF`), so
    /// the command gets a read lock, which keeps every other start out all the same (they ask
    /// for a write lock). The lock is never released on the way: `fcntl(2)` `F_OFD_SETLK`
    /// `F_RDLCK` on this description turns its write lock into a read lock, then `reader` takes a
    /// read lock of its own, then `dup2(2)` puts `reader` on this number (the writable
    /// description's lock goes with its last descriptor, in the original process).
    ///
    /// # Errors
    /// The errno of the `fcntl(2)` or `dup2(2)` that failed.
    pub(crate) fn hand_over_to(&self, reader: BorrowedFd<'_>) -> Result<(), i32> {
        for fd in [self.fd.as_fd(), reader] {
            sys::lock::set(fd, libc::F_RDLCK).map_err(|e| e as i32)?;
        }
        // SAFETY: self owns the target number; from here on it refers to the reader's
        // description, which the caller execs with: no code uses it as the writable one again.
        unsafe { sys::fd::dup2_over(reader, self.fd.as_fd()) }
    }

    /// Where the daemon will see this file once it has entered `root` with `chroot(2)`: the
    /// part of its resolved path (its directory as the kernel resolved it when the file was
    /// locked, see [`Pidfile::resolved_path`]; the path is not looked up again) below `root`
    /// (with symbolic links resolved), or `None` when it lies outside.
    pub(crate) fn path_inside_root(&self, root: &Path) -> Option<PathBuf> {
        let root = std::fs::canonicalize(root).ok()?;
        let resolved = Path::new(std::ffi::OsStr::from_bytes(self.resolved.as_bytes()));
        let below = resolved.strip_prefix(&root).ok()?;
        Some(Path::new("/").join(below))
    }

    /// Names the file by `path` from now on: where the daemon sees it after `chroot(2)`. A
    /// path other than the one it was opened at is made of resolved directories
    /// ([`Pidfile::path_inside_root`]), so it is also the path to unlink it by.
    pub(crate) fn rename_as_seen(&mut self, path: PathBuf) {
        if path != self.path
            && let Ok(resolved) = path_to_cstring(&path)
        {
            self.resolved = resolved;
        }
        self.path = path;
    }

    /// Removes the pidfile at `path` if nobody holds it (a daemon that died and left it):
    /// [`Inspected::open`], then [`Inspected::remove_if_stale`]. `Ok(false)` when a live daemon
    /// holds it, or there is none.
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::OpenPidfile`], [`Step::LockPidfile`] or
    /// [`Step::RemovePidfile`].
    pub fn remove_stale(path: impl AsRef<Path>) -> Result<bool, Error> {
        let path = path.as_ref();
        match Inspected::open(path) {
            Ok(inspected) => inspected.remove_if_stale(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::os(Step::OpenPidfile, path, e)),
        }
    }

    /// The path this pidfile was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device and inode numbers of the locked file, as `fstat(2)` gave them.
    pub fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Judges the pidfile at `path` by its lock, without taking it: [`Inspected::open`], then
    /// [`Inspected::status`].
    ///
    /// Never disturbs a concurrent [`Pidfile::acquire`]: it only asks whether the lock is held.
    pub fn status(path: impl AsRef<Path>) -> Status {
        match Inspected::open(path.as_ref()) {
            Ok(inspected) => inspected.status(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Status::Absent,
            Err(e) => Status::Unknown(e),
        }
    }
}

/// A pidfile opened once, read-only, to be judged and acted on through its descriptors: what
/// [`crate::stop::stop`] and `--status` work on. The path is looked up once, in
/// [`Inspected::open`]; every later question (is it locked, which pid does it name, who holds
/// it, may it be removed) goes to the open file or to its directory's descriptor, so renaming
/// another file or a symbolic link over the path meanwhile changes nothing.
///
/// ```no_run
/// use daemonctx::pidfile::Inspected;
/// use daemonctx::Status;
/// let pidfile = Inspected::open("/run/app.pid".as_ref())?;
/// if let Status::Stale(_) = pidfile.status() {
///     pidfile.remove_if_stale().expect("removable"); // unlinkat(2) in the same directory
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Inspected {
    dir: OwnedFd,
    name: CString,
    fd: OwnedFd,
    dev: u64,
    ino: u64,
    path: PathBuf,
}

impl Inspected {
    /// Opens the directory of `path` ([`crate::safe_open::open_dir`]: no symbolic link is
    /// followed in a directory other users can write), then the file in it (`openat(2)`
    /// `O_RDONLY | O_NOFOLLOW | O_NONBLOCK`), and checks that it is a regular file (`fstat(2)`).
    ///
    /// # Errors
    /// `NotFound` when there is no pidfile; `ELOOP` for a symbolic link; `InvalidInput` for a
    /// file that is not a regular one; other OS errors of the calls.
    ///
    /// ```no_run
    /// let inspected = daemonctx::pidfile::Inspected::open("/run/app.pid".as_ref())?;
    /// println!("{:?}", inspected.status());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(path: &Path) -> io::Result<Inspected> {
        let path = std::path::absolute(path)?;
        let (dir, name) = open_parent(&path)?;
        let fd = openat_raw(dir.as_fd(), &name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let meta = fstat(fd.as_fd())?;
        if meta.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(Inspected { dir, name, fd, dev: meta.st_dev, ino: meta.st_ino, path })
    }

    /// Running or stale, judged by the lock (`fcntl(2)` `F_OFD_GETLK` on the open file); the
    /// pid written in it (`pread(2)`; an empty locked file is read again for up to a second,
    /// as its holder writes right after locking).
    ///
    /// An unlocked empty file reads as [`Status::Absent`]: a daemon that could not unlink it
    /// (after a privilege drop or a chroot) empties it instead.
    pub fn status(&self) -> Status {
        match self.is_locked() {
            Ok(true) => Status::Running(read_holder_pid(self.fd.as_fd())),
            Ok(false) => match read_content(self.fd.as_fd()) {
                Ok(content) if content.is_empty() => Status::Absent,
                content => Status::Stale(content.ok().and_then(|c| parse_pid(&c))),
            },
            Err(e) => Status::Unknown(e),
        }
    }

    /// Whether any process holds a lock on the open file (`fcntl(2)` `F_OFD_GETLK`), now.
    ///
    /// # Errors
    /// The OS error of `fcntl(2)`.
    pub fn is_locked(&self) -> io::Result<bool> {
        is_locked(self.fd.as_fd())
    }

    /// The device and inode numbers of the open file, as `fstat(2)` gave them.
    pub fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if nobody holds its lock and its name in the directory still names
    /// it: `openat(2)` read-write (the same inode, by `fstat(2)`), `fcntl(2)` `F_OFD_SETLK`,
    /// `fstatat(2)` and `unlinkat(2)` in the directory opened at first (when another file has
    /// taken the name, this one is emptied with `ftruncate(2)` instead). `Ok(false)` when a
    /// process holds the lock, or the name now names another file.
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::OpenPidfile`], [`Step::LockPidfile`] or
    /// [`Step::RemovePidfile`].
    pub fn remove_if_stale(&self) -> Result<bool, Error> {
        let failed = |step, e| Error::os(step, &self.path, e);
        let fd = match openat_raw(self.dir.as_fd(), &self.name, OFlag::O_RDWR | OFlag::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(failed(Step::OpenPidfile, e)),
        };
        let meta = fstat(fd.as_fd()).map_err(|e| failed(Step::OpenPidfile, e))?;
        if (meta.st_dev, meta.st_ino) != (self.dev, self.ino) {
            return Ok(false);
        }
        if !lock_exclusive(fd.as_fd()).map_err(|e| failed(Step::LockPidfile, e))? {
            return Ok(false);
        }
        if !named_in(self.dir.as_fd(), &self.name, self.dev, self.ino) {
            truncate(fd.as_fd()).map_err(|e| failed(Step::RemovePidfile, e))?;
            return Ok(false);
        }
        unlink(self.dir.as_fd(), &self.name).map_err(|e| failed(Step::RemovePidfile, e))?;
        Ok(true)
    }
}

impl AsFd for Inspected {
    /// The open pidfile (read-only).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for Pidfile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Pidfile {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Writes `pid` into the pidfile at `path` of a running daemon, for a daemon whose main
/// process changed (`MAINPID=`): opened with [`crate::safe_open::open`] (no link another user
/// planted is followed), `fstat(2)` (a regular file), `fcntl(2)` `F_OFD_GETLK` (the lock must
/// be held by the daemon), then `ftruncate(2)`, `pwrite(2)`.
///
/// # Errors
/// The OS error of a failed call; `NotFound` when nobody holds the lock; `InvalidInput` for a
/// file that is not a regular one.
pub fn replace_pid(path: &Path, pid: u32) -> io::Result<()> {
    let fd = crate::safe_open::open(path, libc::O_WRONLY | libc::O_NONBLOCK, 0)?;
    if fstat(fd.as_fd())?.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if !is_locked(fd.as_fd())? {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no daemon holds the pidfile"));
    }
    write_pid_fd(fd.as_fd(), pid).map_err(io::Error::from_raw_os_error)
}

/// Parses a pidfile's content: decimal digits of a pid greater than zero (no leading zero),
/// then an optional newline, and nothing else: exactly what [`Pidfile::write_pid`] writes.
pub fn parse_pid(content: &[u8]) -> Option<u32> {
    let digits = content.strip_suffix(b"\n").unwrap_or(content);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' {
        return None;
    }
    let pid: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    // pid_max is at most 2^22; anything that does not fit a pid_t is garbage.
    u32::try_from(pid).ok().filter(|pid| *pid > 0 && *pid <= i32::MAX as u32)
}

/// Reads the pid a lock holder wrote. A holder writes right after it locks, so an empty file is
/// read again for up to [`HOLDER_PID_WAIT`]; content that is not a pid is not waited for.
fn read_holder_pid(fd: BorrowedFd<'_>) -> Option<u32> {
    let deadline = Instant::now() + HOLDER_PID_WAIT;
    loop {
        match read_content(fd) {
            Ok(content) if content.is_empty() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(content) => return parse_pid(&content),
            Err(_) => return None,
        }
    }
}

/// Reads at most [`READ_LIMIT`] bytes from the start of the file (`pread(2)`).
fn read_content(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let file = File::from(fd.try_clone_to_owned()?);
    let mut content = Vec::new();
    let mut reader = PositionedReader { file: &file, offset: 0 }.take(READ_LIMIT);
    reader.read_to_end(&mut content)?;
    Ok(content)
}

/// Reads with `pread(2)`, leaving the shared file offset alone.
struct PositionedReader<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// `ftruncate(2)`, `pwrite(2)` of `PID\n` (nix's wrappers, which neither allocate nor lock):
/// async-signal-safe, the errno on failure. No `fsync(2)`: a pidfile is run-time state (module
/// docs).
fn write_pid_fd(fd: BorrowedFd<'_>, pid: u32) -> Result<(), i32> {
    let mut buf = [0u8; 12];
    let text = format_pid(pid, &mut buf);
    nix::unistd::ftruncate(fd, 0).map_err(|e| e as i32)?;
    match nix::sys::uio::pwrite(fd, text, 0) {
        Ok(written) if written == text.len() => {}
        Ok(_) => return Err(libc::EIO),
        Err(e) => return Err(e as i32),
    }
    Ok(())
}

/// Formats `pid` and a newline into `buf` without allocating; returns the used part.
fn format_pid(mut pid: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut start = buf.len() - 1;
    buf[start] = b'\n';
    loop {
        start -= 1;
        buf[start] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    &buf[start..]
}

fn open_error(path: &Path, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return Error::UnsafePidfile {
            pidfile: path.to_path_buf(),
            reason: "it is a symbolic link",
        };
    }
    Error::os(Step::OpenPidfile, path, e)
}

/// Refuses what a pidfile must not be: not a regular file, or (when it already existed)
/// world-writable, linked from elsewhere (`st_nlink > 1`: a hard link to another file, which
/// truncating would destroy), or owned by someone other than the caller or `user`.
fn check_safe(
    path: &Path,
    meta: &libc::stat,
    created: bool,
    user: Option<u32>,
) -> Result<(), Error> {
    let unsafe_because = |reason| Err(Error::UnsafePidfile { pidfile: path.to_path_buf(), reason });
    if meta.st_mode & libc::S_IFMT != libc::S_IFREG {
        return unsafe_because("it is not a regular file");
    }
    if created {
        return Ok(());
    }
    if meta.st_mode & 0o002 != 0 {
        return unsafe_because("it is world-writable, anyone could make it name another process");
    }
    if meta.st_nlink > 1 {
        return unsafe_because("it has other hard links, it may be another file");
    }
    let owner = meta.st_uid;
    if owner != nix::unistd::geteuid().as_raw() && Some(owner) != user {
        return unsafe_because("it belongs to another user");
    }
    Ok(())
}

/// Opens an existing pidfile `name` in `dir` or creates a new one (`openat(2)` with `O_EXCL`,
/// then `fchmod(2)` to `mode`).
fn open_or_create(dir: BorrowedFd<'_>, name: &CString, mode: u32) -> io::Result<(OwnedFd, bool)> {
    loop {
        match openat_create(dir, name, mode) {
            Ok(fd) => {
                if let Err(e) = nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode)) {
                    let _ = unlink(dir, name); // the file just created
                    return Err(e.into());
                }
                return Ok((fd, true));
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        match openat_raw(dir, name, OFlag::O_RDWR) {
            Ok(fd) => return Ok((fd, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
            Err(e) => return Err(e),
        }
    }
}

/// `openat(2)` with `O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY` and `mode`.
fn openat_create(dir: BorrowedFd<'_>, name: &CString, mode: u32) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
    Ok(nix::fcntl::openat(
        dir,
        name.as_c_str(),
        with_safe_flags(flags),
        Mode::from_bits_truncate(mode),
    )?)
}

/// `openat(2)` of `name` in `dir` with `O_NOFOLLOW | O_CLOEXEC | O_NOCTTY` added to `flags`.
fn openat_raw(dir: BorrowedFd<'_>, name: &CString, flags: OFlag) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(dir, name.as_c_str(), with_safe_flags(flags), Mode::empty())?)
}

fn with_safe_flags(flags: OFlag) -> OFlag {
    flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY
}

/// `unlinkat(2)` of `name` in `dir`.
fn unlink(dir: BorrowedFd<'_>, name: &CString) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir)?)
}

/// Whether `name` in `dir` names the inode `(dev, ino)` (`fstatat(2)`, not following a link).
fn named_in(dir: BorrowedFd<'_>, name: &CString, dev: u64, ino: u64) -> bool {
    let flags = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    nix::sys::stat::fstatat(dir, name.as_c_str(), flags)
        .is_ok_and(|meta| meta.st_dev == dev && meta.st_ino == ino)
}

/// `fstat(2)`.
fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    Ok(nix::sys::stat::fstat(fd)?)
}

/// `F_OFD_SETLK` for writing: `Ok(false)` when another open file description holds a lock.
fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match sys::lock::set(fd, libc::F_WRLCK) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `F_OFD_GETLK`: whether any other open file description holds a lock, without taking one.
fn is_locked(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(sys::lock::is_held(fd)?)
}

/// `ftruncate(2)` to 0.
fn truncate(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::unistd::ftruncate(fd, 0)?)
}

pub(crate) fn path_to_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pid_accepts_only_a_pid_and_a_newline() {
        assert_eq!(parse_pid(b"4242\n"), Some(4242));
        assert_eq!(parse_pid(b"4242"), Some(4242));
        for garbage in [
            &b""[..],
            b"\n",
            b"0\n",
            b"-5\n",
            b"12a\n",
            b" 12\n",
            b"12\n\n",
            b"99999999999\n",
            b"042\n",
        ] {
            assert_eq!(parse_pid(garbage), None, "{:?}", String::from_utf8_lossy(garbage));
        }
    }

    /// The fuzz target's property (see fuzz/), over a deterministic stream of inputs: never a
    /// panic, and only canonical `PID\n` (or `PID`) accepted.
    #[test]
    fn parse_pid_accepts_only_canonical_content_of_random_bytes() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"0123456789\n -+xa\0";
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 14) as usize;
            let content: Vec<u8> = (0..len)
                .map(|i| alphabet[((state >> (i * 4)) % alphabet.len() as u64) as usize])
                .collect();
            if let Some(pid) = parse_pid(&content) {
                let canonical = format!("{pid}\n");
                let bare = &canonical.as_bytes()[..canonical.len() - 1];
                assert!(content == canonical.as_bytes() || content == bare, "{content:?}");
            }
        }
    }

    #[test]
    fn format_pid_writes_decimal_and_newline() {
        let mut buf = [0u8; 12];
        assert_eq!(format_pid(0, &mut buf), b"0\n");
        assert_eq!(format_pid(4_194_304, &mut buf), b"4194304\n");
        assert_eq!(format_pid(u32::MAX, &mut buf), b"4294967295\n");
    }

    #[test]
    fn second_lock_in_same_process_sees_holder_and_status_does_not_interfere() {
        let dir = std::env::temp_dir().join(format!("daemonctx-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.pid");
        let first = Pidfile::lock(&path, DEFAULT_MODE).unwrap();
        first.write_pid(77).unwrap();
        assert!(matches!(Pidfile::status(&path), Status::Running(Some(77))));
        assert!(matches!(
            Pidfile::acquire(&path, DEFAULT_MODE).unwrap(),
            Acquire::HeldBy(Some(77))
        ));
        first.remove().unwrap();
        assert!(matches!(Pidfile::status(&path), Status::Absent));
        std::fs::write(&path, b"77\n").unwrap();
        assert!(matches!(Pidfile::status(&path), Status::Stale(Some(77))));
        // Emptied (by a daemon that could not unlink it) and unlocked: not running.
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(Pidfile::status(&path), Status::Absent));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
