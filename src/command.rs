//! A command to run as a daemon, and its `execve(2)` image prepared before the fork: program
//! resolved on `PATH`, argument and environment arrays built as NUL-terminated pointer arrays,
//! so the daemon only makes the call.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString, c_char};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::activation::{self, LISTEN_FDS, LISTEN_PID, PID_DIGITS, WATCHDOG_PID, WATCHDOG_USEC};
use crate::error::{Error, Step};

/// A program, its arguments and its environment, for [`crate::DaemonContext::exec`].
#[derive(Clone, Debug)]
pub struct Command {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// The file to execute, when not `argv[0]` looked up.
    program: Option<PathBuf>,
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
        Command { argv, env, program: None }
    }

    /// Executes `path` instead of looking `argv[0]` up (`argv[0]` stays as given): a path
    /// resolved once by the caller, say before a `chdir(2)`. A bare name is still looked up on
    /// `PATH`.
    ///
    /// ```
    /// use daemonctx::Command;
    ///
    /// let command = Command::new(vec!["server".into()], vec![]).program("/usr/sbin/server");
    /// # drop(command);
    /// ```
    pub fn program(mut self, path: impl Into<PathBuf>) -> Command {
        self.program = Some(path.into());
        self
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
        let name = self.program.as_ref().map_or(name.as_os_str(), |p| p.as_os_str());
        resolve_program(name, self.env_value("PATH"), root)
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
            .filter(|(k, _)| k != LISTEN_PID && k != WATCHDOG_PID)
            .map(|(k, v)| {
                let mut pair = k.clone().into_vec();
                pair.push(b'=');
                pair.extend_from_slice(v.as_bytes());
                CString::new(pair).map_err(|_| invalid(k))
            })
            .collect::<Result<_, _>>()?;
        let argv_ptrs = null_terminated(&argv);
        let mut envp_ptrs = null_terminated(&envp);
        let listen_pid = self.has_env(LISTEN_PID).then(|| PidSlot::new(LISTEN_PID));
        let watchdog_pid = self.has_env(WATCHDOG_PID).then(|| PidSlot::new(WATCHDOG_PID));
        for slot in [&listen_pid, &watchdog_pid].into_iter().flatten() {
            envp_ptrs.insert(0, slot.entry.cast_const().cast());
        }
        let listen_fds = match listen_pid {
            // Bounded as for this process: execve() walks 3..3+N between fork and exec, where
            // an overflowing sum would panic and a huge N would take minutes.
            Some(_) => {
                self.env_value(LISTEN_FDS).and_then(|n| activation::parse_count(n.to_str()?))
            }
            None => None,
        };
        // Messages name the program as the user wrote it when it is a path (`./x`), else where
        // the PATH lookup found it.
        let shown = match self.argv[0].as_bytes().contains(&b'/') {
            true => PathBuf::from(&self.argv[0]),
            false => program,
        };
        Ok(ExecImage {
            shown,
            c_program,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            listen_pid,
            listen_fds: listen_fds.unwrap_or(0),
            watchdog_pid,
        })
    }

    /// Builds what `execve(2)` needs now, for a child started by other means (a `pre_exec`
    /// hook of [`std::process::Command`]): the program resolved on `PATH` (`stat(2)`), the
    /// argument and environment arrays, and the `LISTEN_PID` entry left for
    /// [`Executable::exec`] to fill in.
    ///
    /// # Errors
    /// As [`crate::DaemonContext::exec`]'s lookup: [`Error::Os`] with [`Step::Exec`].
    ///
    /// ```
    /// use daemonctx::Command;
    ///
    /// let command = Command::new(vec!["true".into()], vec![("PATH".into(), "/bin:/usr/bin".into())]);
    /// let executable = command.executable()?;
    /// // in a child, between fork and exec: let error = executable.exec();
    /// # drop(executable);
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn executable(&self) -> Result<Executable, Error> {
        self.prepare(None).map(Executable)
    }

    /// Removes the socket activation variables (`LISTEN_PID`, `LISTEN_FDS`,
    /// `LISTEN_FDNAMES`): for a command the sockets are not passed to.
    ///
    /// ```
    /// use daemonctx::Command;
    ///
    /// let mut command = Command::new(vec!["app".into()], vec![("LISTEN_FDS".into(), "1".into())]);
    /// command.remove_activation();
    /// assert!(command.env().is_empty());
    /// ```
    pub fn remove_activation(&mut self) {
        self.env.retain(|(name, _)| !activation::is_activation_variable(name.as_bytes()));
    }

    fn env_value(&self, name: &str) -> Option<&OsStr> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_os_str())
    }

    /// Removes the watchdog variables (`WATCHDOG_PID`, `WATCHDOG_USEC`): for a command the
    /// service manager's watchdog is not meant for.
    ///
    /// ```
    /// use daemonctx::Command;
    ///
    /// let mut command = Command::new(vec!["app".into()], vec![("WATCHDOG_USEC".into(), "1".into())]);
    /// command.remove_watchdog();
    /// assert!(command.env().is_empty());
    /// ```
    pub fn remove_watchdog(&mut self) {
        self.env.retain(|(name, _)| name != WATCHDOG_PID && name != WATCHDOG_USEC);
    }

    fn has_env(&self, name: &str) -> bool {
        self.env_value(name).is_some()
    }
}

/// A `NAME=pid` environment entry (`LISTEN_PID=`, `WATCHDOG_PID=`), with room for any pid's
/// digits and the NUL: allocated before the fork, written in place by the process about to call
/// `execve(2)`.
#[derive(Debug)]
struct PidSlot {
    /// The entry's first byte; owned (a leaked `Box<[u8]>` of `len` bytes, freed by `Drop`).
    /// Only ever used through this raw pointer, so writes through it never alias a reference.
    entry: *mut u8,
    /// Where the digits start: after `NAME=`.
    digits_at: usize,
    len: usize,
}

impl PidSlot {
    fn new(name: &str) -> PidSlot {
        let digits_at = name.len() + 1;
        let len = digits_at + PID_DIGITS + 1;
        let mut bytes = vec![0u8; len].into_boxed_slice();
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        bytes[name.len()] = b'=';
        activation::write_pid(&mut bytes[digits_at..], std::process::id());
        PidSlot { entry: Box::into_raw(bytes).cast(), digits_at, len }
    }

    /// Writes `pid` into the entry. Async-signal-safe.
    fn fill(&mut self, pid: u32) {
        // SAFETY: entry points to len bytes this slot owns, of which the last PID_DIGITS + 1
        // start at digits_at; no reference to them exists, and &mut self makes this the only
        // writer.
        let digits = unsafe {
            std::slice::from_raw_parts_mut(self.entry.add(self.digits_at), PID_DIGITS + 1)
        };
        activation::write_pid(digits, pid);
    }
}

impl Drop for PidSlot {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.entry, self.len);
        // SAFETY: entry came from Box::into_raw of a boxed slice of len bytes, freed only here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// A command ready for `execve(2)` ([`Command::executable`]), to be run by a child that some
/// other code forked, such as a `pre_exec` hook of [`std::process::Command`].
#[derive(Debug)]
pub struct Executable(ExecImage);

// SAFETY: the raw pointers in ExecImage point only into buffers the image owns (CStrings, the
// pid slots); nothing is shared with another owner, and the slots are written only through
// &mut self.
unsafe impl Send for Executable {}
// SAFETY: as for Send; &self gives no way to write.
unsafe impl Sync for Executable {}

impl Executable {
    /// In the child: sets `LISTEN_PID` and `WATCHDOG_PID`, when the environment has them, to
    /// this process's pid (`getpid(2)`), makes the passed sockets inheritable (`fcntl(2)`
    /// `F_SETFD`) when socket activation is passed on, then `execve(2)`. Returns only on failure, with the OS error.
    /// Async-signal-safe: no allocation after the fork.
    ///
    /// ```no_run
    /// use std::os::unix::process::CommandExt;
    ///
    /// let command = daemonctx::Command::new(vec!["app".into()], std::env::vars_os().collect());
    /// let mut executable = command.executable()?;
    /// let mut spawner = std::process::Command::new("app");
    /// // SAFETY: exec() only makes async-signal-safe calls on data built before the fork.
    /// unsafe { spawner.pre_exec(move || Err(executable.exec())) };
    /// let child = spawner.spawn()?; // LISTEN_PID, if passed on, names the child
    /// # drop(child);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exec(&mut self) -> io::Error {
        io::Error::from_raw_os_error(self.0.execve())
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
    /// The `LISTEN_PID=` entry when socket activation is passed on, and the number of sockets.
    listen_pid: Option<PidSlot>,
    listen_fds: u32,
    /// The `WATCHDOG_PID=` entry when the service manager's watchdog is passed on.
    watchdog_pid: Option<PidSlot>,
}

impl ExecImage {
    /// The program as error messages name it: as given when it is a path, else as found.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// `execve(2)`: returns only on failure, with the errno. Async-signal-safe. `WATCHDOG_PID`
    /// becomes this process's pid (`getpid(2)`); when socket activation is passed on, so does
    /// `LISTEN_PID`, and the sockets lose `FD_CLOEXEC` first.
    pub(crate) fn execve(&mut self) -> i32 {
        let pid = nix::unistd::getpid().as_raw() as u32;
        if let Some(slot) = &mut self.watchdog_pid {
            slot.fill(pid);
        }
        if let Some(slot) = &mut self.listen_pid {
            slot.fill(pid);
            for fd in
                activation::LISTEN_FDS_START..activation::LISTEN_FDS_START + self.listen_fds as i32
            {
                let _ = crate::sys::fd::set_cloexec(fd, false); // a closed number: EBADF
            }
        }
        // SAFETY: all three pointers come from CStrings and null-terminated pointer arrays that
        // self owns and that live until the call replaces the process image.
        unsafe {
            libc::execve(self.c_program.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr())
        };
        crate::error::errno()
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
    if !path.is_relative() || root.is_some() {
        return path.to_path_buf(); // no getcwd(2) for the usual absolute PATH entries
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
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
    fn listen_pid_is_rewritten_in_place_and_foreign_variables_removed() {
        let env = vec![
            (OsString::from("PATH"), OsString::from("/bin")),
            (OsString::from("LISTEN_PID"), OsString::from("1")),
            (OsString::from("LISTEN_FDS"), OsString::from("2")),
        ];
        let mut image = Command::new(vec!["sh".into()], env.clone()).prepare(None).unwrap();
        let entry = |image: &ExecImage| {
            // SAFETY: envp_ptrs[0] points to the NUL-terminated LISTEN_PID entry image owns.
            unsafe { std::ffi::CStr::from_ptr(image.envp_ptrs[0]) }.to_str().unwrap().to_string()
        };
        assert_eq!(entry(&image), format!("LISTEN_PID={}", std::process::id()));
        assert_eq!(image.listen_fds, 2);
        image.listen_pid.as_mut().unwrap().fill(4194304);
        assert_eq!(entry(&image), "LISTEN_PID=4194304");
        // One LISTEN_PID entry only: the given one is replaced, not kept beside it.
        assert_eq!(image.envp_ptrs.len(), env.len() + 1);
        // A garbled count (3 + N past i32::MAX) is no socket: none is made inheritable.
        let mut garbled = env.clone();
        garbled[2].1 = OsString::from(i32::MAX.to_string());
        assert_eq!(Command::new(vec!["sh".into()], garbled).prepare(None).unwrap().listen_fds, 0);
        let mut foreign = Command::new(vec!["sh".into()], env);
        foreign.remove_activation();
        assert_eq!(foreign.env().len(), 1);
        assert!(foreign.prepare(None).unwrap().listen_pid.is_none());
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
