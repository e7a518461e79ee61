//! A command to run as a daemon, and its `execve(2)` image prepared before the fork: program
//! resolved on `PATH`, argument and environment arrays built as NUL-terminated pointer arrays,
//! so the daemon only makes the call.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString, c_char};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Step};

/// A program, its arguments and its environment, for [`crate::DaemonContext::exec`].
#[derive(Clone, Debug)]
pub struct Command {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Command {
    /// A command to run: `argv[0]` names the program, `env` is the whole environment it gets.
    /// No system call here; the program is resolved when the daemon is started, in the
    /// original process, before any `chdir(2)`:
    ///
    /// - a name with a slash (`./server`, `bin/server`) is a path, relative to the current
    ///   directory of the process that calls [`crate::DaemonContext::exec`], not to the
    ///   daemon's working directory;
    /// - a bare name (`server`) is looked up on the `PATH` of `env` (or `/usr/bin:/bin`), as
    ///   `execvp(3)` does; relative `PATH` entries are taken from that same directory.
    ///
    /// With a chroot directory both are resolved inside the new root instead, relative to the
    /// daemon's working directory there.
    ///
    /// # Example
    /// ```
    /// use daemonctx::Command;
    ///
    /// let env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    /// let command = Command::new(vec!["./server".into(), "--port=8080".into()], env);
    /// assert_eq!(command.argv()[0], "./server"); // found next to the caller, wherever it chdirs
    /// ```
    pub fn new(argv: Vec<OsString>, env: Vec<(OsString, OsString)>) -> Command {
        Command { argv, env }
    }

    /// The argument vector, `argv[0]` included. No system call.
    ///
    /// ```
    /// let command = daemonctx::Command::new(vec!["sleep".into(), "5".into()], vec![]);
    /// assert_eq!(command.argv(), ["sleep", "5"]);
    /// ```
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }

    /// The whole environment the program gets. No system call.
    ///
    /// ```
    /// let env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    /// let command = daemonctx::Command::new(vec!["sleep".into()], env);
    /// assert_eq!(command.env().len(), 1);
    /// ```
    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// Adds (or replaces) one environment variable. No system call.
    ///
    /// ```
    /// let mut command = daemonctx::Command::new(vec!["env".into()], vec![]);
    /// command.set_env("LANG".into(), "C".into());
    /// command.set_env("LANG".into(), "C.UTF-8".into());
    /// assert_eq!(command.env().len(), 1);
    /// assert_eq!(command.env()[0].1, "C.UTF-8");
    /// ```
    pub fn set_env(&mut self, name: OsString, value: OsString) {
        self.env.retain(|(existing, _)| *existing != name);
        self.env.push((name, value));
    }

    /// Looks the program up as the daemon will (on `PATH`, inside `root` if given).
    fn resolve(&self, root: Option<&Path>) -> Result<PathBuf, Error> {
        let Some(name) = self.argv.first() else {
            return Err(Error::os_nopath(Step::Exec, io::Error::from_raw_os_error(libc::EINVAL)));
        };
        let path_var = self.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
        resolve_program(name, path_var, root)
            .ok_or_else(|| Error::os(Step::Exec, name, io::Error::from_raw_os_error(libc::ENOENT)))
    }

    /// Resolves the program and builds the arrays for `execve(2)`; `root` is the chroot.
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::Exec`]: `ENOENT` when nothing is found on `PATH`, `EINVAL` for
    /// an empty `argv` or a NUL byte inside a string.
    pub(crate) fn prepare(&self, root: Option<&Path>) -> Result<ExecImage, Error> {
        let program = self.resolve(root)?;
        let invalid =
            |what: &OsStr| Error::os(Step::Exec, what, io::Error::from_raw_os_error(libc::EINVAL));
        let to_c = |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| invalid(s));
        let c_program = to_c(program.as_os_str())?;
        let argv: Vec<CString> = self.argv.iter().map(|a| to_c(a)).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = self
            .env
            .iter()
            .map(|(k, v)| {
                let mut pair = k.clone().into_vec();
                pair.push(b'=');
                pair.extend_from_slice(v.as_bytes());
                CString::new(pair).map_err(|_| invalid(k))
            })
            .collect::<Result<_, _>>()?;
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        // Messages name the program as the user wrote it when it is a path (`./x`), else where
        // the PATH lookup found it.
        let shown = match self.argv[0].as_bytes().contains(&b'/') {
            true => PathBuf::from(&self.argv[0]),
            false => program,
        };
        Ok(ExecImage { shown, c_program, _argv: argv, _envp: envp, argv_ptrs, envp_ptrs })
    }
}

/// What `execve(2)` needs, built before the fork.
#[derive(Debug)]
pub(crate) struct ExecImage {
    shown: PathBuf,
    c_program: CString,
    // The pointer arrays point into these strings, whose heap buffers never move.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
}

impl ExecImage {
    /// The program as error messages name it: as given when it is a path, else as found.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// `execve(2)`: returns only on failure, with the errno. Async-signal-safe.
    pub(crate) fn execve(&self) -> i32 {
        // SAFETY: all three pointers come from CStrings and null-terminated pointer arrays that
        // self owns and that live until the call replaces the process image.
        unsafe {
            libc::execve(self.c_program.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr())
        };
        io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// `execvp(3)`'s search: a name with a `/` is used as is; otherwise the first executable regular
/// file named so in a `PATH` directory. When only non-executable matches exist, the first one
/// (so `execve(2)` reports `EACCES`).
fn resolve_program(name: &OsStr, path_var: Option<&OsStr>, root: Option<&Path>) -> Option<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        // Relative to where the invoker stands, not to the daemon's working directory.
        return Some(absolute_outside_chroot(Path::new(name), root));
    }
    if name.is_empty() {
        return None;
    }
    let path_var = path_var.unwrap_or(OsStr::new("/usr/bin:/bin"));
    let mut denied = None;
    for dir in std::env::split_paths(path_var) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let dir = absolute_outside_chroot(&dir, root);
        let candidate = dir.join(name);
        let seen = match root {
            Some(root) => root.join(candidate.strip_prefix("/").unwrap_or(&candidate)),
            None => candidate.clone(),
        };
        let Ok(meta) = std::fs::metadata(&seen) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            return Some(candidate);
        }
        denied.get_or_insert(candidate);
    }
    denied
}

/// A relative path made absolute against the current directory, unless a chroot is coming
/// (there the daemon's working directory inside the new root is what it is relative to).
fn absolute_outside_chroot(path: &Path, root: Option<&Path>) -> PathBuf {
    match (path.is_relative(), root, std::env::current_dir()) {
        (true, None, Ok(cwd)) => cwd.join(path),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_on_path_like_execvp() {
        let found =
            resolve_program(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin")), None).unwrap();
        assert_eq!(found, PathBuf::from("/bin/sh"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(resolve_program(OsStr::new("./x"), None, None), Some(cwd.join("./x")));
        let root = Path::new("/srv/root");
        assert_eq!(
            resolve_program(OsStr::new("./x"), None, Some(root)),
            Some(PathBuf::from("./x"))
        );
        assert_eq!(
            resolve_program(OsStr::new("no-such-program-xyz"), Some(OsStr::new("/bin")), None),
            None
        );
    }

    #[test]
    fn builds_null_terminated_arrays() {
        let argv = vec![OsString::from("sh"), OsString::from("-c"), OsString::from("true")];
        let env = vec![(OsString::from("PATH"), OsString::from("/bin"))];
        let command = Command::new(argv, env).prepare(None).unwrap();
        assert_eq!(command.argv_ptrs.len(), 4);
        assert!(command.argv_ptrs[3].is_null());
        assert_eq!(command.envp_ptrs.len(), 2);
        assert!(Command::new(vec![], vec![]).prepare(None).is_err());
    }
}
