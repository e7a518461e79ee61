//! Opening a file whose path runs through directories other users can write, so that none of
//! them can redirect the open: what root needs for `-o`/`-e` files in a service's directory.
//!
//! The path is walked from `/` one component at a time, each directory held open
//! (`openat(2)` with `O_PATH | O_NOFOLLOW`), never looked up again by name. A directory is
//! *trusted* when it belongs to root or to the caller and neither its group nor others may
//! write it (`fstat(2)`). A symbolic link is followed only when it lies in a trusted directory
//! (nobody else could have planted it; read with `readlinkat(2)`); in any other directory it
//! is refused, as the last component or as a directory on the way
//! (`/var/log/app/sub -> /root-only`). The last component is opened with `O_NOFOLLOW`; in an
//! untrusted directory an existing file must be a regular file with one link (or a FIFO), and
//! truncation waits until that is checked (`ftruncate(2)` after the check, never `O_TRUNC`).
//!
//! Hard links: a user who can write the directory could link a file it cannot read there. The
//! link count check refuses one that is still linked; the kernel's `fs.protected_hardlinks`
//! (on by default) keeps such links from being made at all, and closes the moment between the
//! link's removal and the check.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

/// The most symbolic links followed in one walk, as the kernel's own limit (`ELOOP`).
const MAX_LINKS: usize = 40;

/// Opens `path` with `open(2)` `flags` (`O_CREAT` creates with `mode`), walking it from `/`
/// so that a symbolic link or hard link planted by another user cannot redirect the open (see
/// the module documentation). `O_NOFOLLOW | O_CLOEXEC | O_NOCTTY` are added; `O_TRUNC` is
/// applied with `ftruncate(2)` once the file is checked.
///
/// System calls: `open(2)` of `/`, then per component `openat(2)` (`O_PATH | O_NOFOLLOW`),
/// `fstat(2)`, and `readlinkat(2)` for a link in a trusted directory; `openat(2)` of the last
/// component, `fstat(2)`, `ftruncate(2)`.
///
/// # Errors
/// `PermissionDenied` naming the rule for a symbolic link in an untrusted directory, or an
/// existing file there that is not a single-link regular file or FIFO; the OS error of a
/// failed call (`ENOENT`, `ENOTDIR`, `ELOOP` after 40 links, …).
///
/// ```no_run
/// let log = daemonctx::safe_open::open(
///     "/var/log/app/out.log".as_ref(),
///     libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
///     0o644,
/// )?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    walk(path, Some((flags, mode)))
}

/// Opens the directory `path` (`O_PATH`), walking it from `/` as [`open`] does: a symbolic link
/// on the way is followed only in a directory that only root or the caller can write.
///
/// # Errors
/// As [`open`]; `ENOTDIR` when `path` is not a directory.
///
/// ```
/// let etc = daemonctx::safe_open::open_dir("/etc".as_ref())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    walk(path, None)
}

/// Unlinks `path` if it names the inode `(dev, ino)`: `path`, absolute and with no symbolic
/// link in it (a resolved path, as the kernel gives in `/proc/self/fd`), has its directory
/// opened with `openat2(2)` `RESOLVE_NO_SYMLINKS` (a directory on the way swapped for a symbolic
/// link is refused, never followed), then `fstatat(2)` (`AT_SYMLINK_NOFOLLOW`) and
/// `unlinkat(2)` in that directory: the check and the unlink are about one and the same
/// directory. One descriptor, so it works where few are left (a start failing with `EMFILE`).
///
/// Async-signal-safe (no allocation): the `Terminate` signal handler calls it.
///
/// # Errors
/// The errno of a failed call: `ELOOP` for a symbolic link on the way, `EINVAL` for a relative
/// path, `ENAMETOOLONG` past `PATH_MAX`, `ENOSYS` before Linux 5.6 (no `openat2(2)`).
/// `Ok(false)` when the name is missing or names another file.
pub(crate) fn unlink_if_named(path: &CStr, dev: u64, ino: u64) -> Result<bool, i32> {
    let bytes = path.to_bytes();
    let Some(slash) = bytes.iter().rposition(|b| *b == b'/') else { return Err(libc::EINVAL) };
    if bytes[0] != b'/' || slash + 1 == bytes.len() {
        return Err(libc::EINVAL);
    }
    let mut buf = [0u8; libc::PATH_MAX as usize];
    let parent = if slash == 0 { &b"/"[..] } else { &bytes[..slash] };
    if parent.len() >= buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    buf[..parent.len()].copy_from_slice(parent);
    buf[parent.len()] = 0;
    // nix passes a &CStr on as it is: no copy, no allocation (a &Path or &[u8] would be).
    let parent = CStr::from_bytes_until_nul(&buf).map_err(|_| libc::EINVAL)?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    let dir = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, parent, how).map_err(|e| e as i32)?;
    // The tail of a CStr after its last '/': NUL-terminated, with no '/' in it.
    let name = CStr::from_bytes_with_nul(&path.to_bytes_with_nul()[slash + 1..])
        .map_err(|_| libc::EINVAL)?;
    let Ok(meta) = nix::sys::stat::fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return Ok(false);
    };
    if (meta.st_dev, meta.st_ino) != (dev, ino) {
        return Ok(false);
    }
    nix::unistd::unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir).map_err(|e| e as i32)?;
    Ok(true)
}

/// The walk behind [`open`] (`last`: the flags and mode of the last component's open) and
/// [`open_dir`] (`None`: every component is a directory to hold).
fn walk(path: &Path, last: Option<(i32, u32)>) -> io::Result<OwnedFd> {
    let path = std::path::absolute(path)?;
    let mut pending: VecDeque<OsString> = components(&path);
    let mut dir = open_root()?;
    let mut trusted = is_trusted(&fstat(dir.as_fd())?);
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        let name = cstring(&name)?;
        if let Some((flags, mode)) = last
            && pending.is_empty()
            && name.as_bytes() != b".."
        {
            match open_last(dir.as_fd(), &name, trusted, flags, mode) {
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) && !trusted => {
                    return Err(untrusted("a symbolic link"));
                }
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {} // followed below
                other => return other,
            }
        }
        let next = openat(dir.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let meta = fstat(next.as_fd())?;
        match meta.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                trusted = is_trusted(&meta);
                dir = next;
            }
            libc::S_IFLNK if !trusted => return Err(untrusted("a symbolic link")),
            libc::S_IFLNK => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = readlink(next.as_fd())?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    dir = open_root()?;
                    trusted = is_trusted(&fstat(dir.as_fd())?);
                }
                for component in components(target).into_iter().rev() {
                    pending.push_front(component);
                }
            }
            _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }
    match last {
        // The path ended in a directory (`/`, `..`): open it as asked, which fails for writing.
        Some((flags, _)) => openat(dir.as_fd(), c".", flags & !libc::O_CREAT, 0),
        None => Ok(dir),
    }
}

/// The components to look up: names and `..`; `/` and `.` are dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Opens the last component with `O_NOFOLLOW`, without `O_TRUNC`; checks it (in an untrusted
/// directory), then truncates if asked.
fn open_last(
    dir: BorrowedFd<'_>,
    name: &CStr,
    trusted: bool,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    let fd = openat(dir, name, (flags & !libc::O_TRUNC) | libc::O_NOFOLLOW, mode)?;
    if !trusted {
        let meta = fstat(fd.as_fd())?;
        let kind = meta.st_mode & libc::S_IFMT;
        if kind != libc::S_IFREG && kind != libc::S_IFIFO {
            return Err(untrusted("a file that is neither a regular file nor a FIFO"));
        }
        if kind == libc::S_IFREG && meta.st_nlink > 1 {
            return Err(untrusted("a file with other hard links"));
        }
    }
    if flags & libc::O_TRUNC != 0 && flags & libc::O_ACCMODE != libc::O_RDONLY {
        truncate(fd.as_fd())?;
    }
    Ok(fd)
}

/// Trusted: belongs to root or the caller, and neither group nor others may write it.
fn is_trusted(meta: &libc::stat) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    (meta.st_uid == 0 || meta.st_uid == me) && meta.st_mode & 0o022 == 0
}

fn untrusted(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing {what} in a directory that users other than root and the caller can \
             write"
        ),
    )
}

fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `open(2)` of `/` with `O_PATH | O_DIRECTORY | O_CLOEXEC`: where every walk starts.
fn open_root() -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::open(c"/", flags, Mode::empty())?)
}

/// `openat(2)` with `O_CLOEXEC | O_NOCTTY` added; `mode` is used only with `O_CREAT`.
fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    Ok(nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(mode))?)
}

/// `fstat(2)`.
fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    Ok(nix::sys::stat::fstat(fd)?)
}

/// `readlinkat(2)` of the link `fd` (opened with `O_PATH | O_NOFOLLOW`) itself: an empty path
/// reads that link.
fn readlink(fd: BorrowedFd<'_>) -> io::Result<OsString> {
    Ok(nix::fcntl::readlinkat(fd, c"")?)
}

/// `ftruncate(2)` to 0.
fn truncate(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::unistd::ftruncate(fd, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_symlink_is_followed_and_dot_dot_works() {
        let dir = std::env::temp_dir().join(format!("daemonctx-safe-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let file = dir.join("link/../link/out.log");
        // The temporary directory itself may be untrusted (/tmp is world-writable), but `dir`
        // is ours with mode 0755 under the umask of tests: the link lies in a trusted place.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        drop(open(&file, flags, 0o600).unwrap());
        assert!(dir.join("real/out.log").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_in_a_directory_others_can_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("daemonctx-untrusted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("shared")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let shared = dir.join("shared");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.join("target"), "keep\n").unwrap();
        std::os::unix::fs::symlink(dir.join("target"), shared.join("link")).unwrap();
        std::os::unix::fs::symlink(&dir, shared.join("up")).unwrap();
        std::fs::hard_link(dir.join("target"), shared.join("hard")).unwrap();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        for name in ["link", "up/target", "hard"] {
            let e = open(&shared.join(name), flags, 0o644).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{name}: {e}");
        }
        assert_eq!(std::fs::read_to_string(dir.join("target")).unwrap(), "keep\n");
        drop(open(&shared.join("plain.log"), flags, 0o644).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
