//! COMMAND as the supervisor's child: started in a process group of its own, signalled with
//! everything it started, reaped; and the supervisor's own signals, read from a `signalfd(2)`.
//!
//! A supervisor started by root with `-u` changed only its effective user id (its real and
//! saved ids stay root: COMMAND cannot signal or trace it, so it cannot escape supervision by
//! killing it); COMMAND gets the user's id as all three (`setresuid(2)`) before `execve(2)`.
//!
//! System calls: `prctl(2)` (`PR_SET_CHILD_SUBREAPER`), `sigprocmask(2)`, `signalfd(2)`,
//! `read(2)`, `fork(2)`/`execve(2)` (through std), `setpgid(2)`, `setresuid(2)`, `kill(2)`,
//! `waitpid(2)`.
//! The ordering rule: the signals are blocked before COMMAND is first started, so none is lost
//! between the start and the first `poll(2)`.

#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use daemonctx::{process, signals};

use super::readiness::{Readiness, inherit_ready_fd};
use super::relay::Output;

/// A signal read from the signalfd.
pub struct Received {
    /// The signal.
    pub signal: i32,
    /// The value queued with it (`sigqueue(3)`), when it was queued (`SI_QUEUE`).
    pub queued: Option<i32>,
    /// Whether the supervisor raised it itself (a write to a closed pipe, past the file size
    /// limit: `SIGPIPE`, `SIGXFSZ`): nobody else's business, not forwarded.
    pub own: bool,
}

/// Every catchable asynchronous signal, the realtime ones included (`SIGRTMIN(7)` to
/// `SIGRTMAX`): what the supervisor blocks and reads from its `signalfd(2)`, so that none is
/// lost. (As PID 1 of a pid namespace the kernel drops the signals it has no handler for:
/// blocked ones reach it all the same.)
pub fn handled_signals() -> Vec<i32> {
    let standard = 1..32;
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    standard.chain(realtime).filter(|s| !signals::SYNCHRONOUS_OR_UNCATCHABLE.contains(s)).collect()
}

/// The signals passed on to COMMAND unless `--forward` says otherwise: every one the
/// supervisor handles but `SIGTERM` (it stops), `SIGCHLD` (it reaps), `relay` (`daemonize
/// --send`'s carrier), and `SIGHUP` when the supervisor holds log files (it reopens them).
pub fn default_forwarded(has_log_files: bool, relay: i32) -> Vec<i32> {
    let own = [libc::SIGTERM, libc::SIGCHLD, relay];
    let hup_is_ours = |s: &i32| has_log_files && *s == libc::SIGHUP;
    handled_signals().into_iter().filter(|s| !own.contains(s) && !hup_is_ours(s)).collect()
}

/// How to start COMMAND.
#[derive(Debug)]
pub struct Program {
    /// The program: a path, or a name looked up on the `PATH` of `env` at each start.
    pub path: PathBuf,
    /// COMMAND's argument vector, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// COMMAND's whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// `/dev/null`, opened before any chroot: copies of it go to COMMAND.
    pub null: OwnedFd,
    /// Whether COMMAND gets the terminal (the supervisor runs in its foreground): as standard
    /// input, and as the foreground group's ([`super::terminal`]).
    pub terminal: bool,
}

/// A running COMMAND.
pub struct Child {
    /// Its pid, also its process group's id.
    pub pid: u32,
    /// When it started.
    pub started: Instant,
}

impl Program {
    /// Starts COMMAND in its own process group, with pipes for the captured streams and the
    /// ready descriptor, if any.
    ///
    /// std forks and sets up the streams and the group; the `pre_exec` hook then calls
    /// `execve(2)` itself on an image built here, before the fork ([`daemonctx::Executable`]),
    /// so that `LISTEN_PID` can name COMMAND's own pid (socket activation passed on) with no
    /// allocation in the child. A failed `execve(2)` returns from the hook, and std reports it.
    pub fn spawn(&self, readiness: &mut Readiness, output: &mut Output) -> io::Result<Child> {
        let mut env = self.env.clone();
        let ready_fd = readiness.prepare_start(&mut env, &self.null)?;
        let mut executable = daemonctx::Command::new(self.argv.clone(), env)
            .program(&self.path)
            .executable()
            .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EINVAL)))?;
        let (stdout, stderr) = output.stdio(&self.null)?;
        let mut command = std::process::Command::new(&self.path);
        command
            .process_group(0)
            .stdin(match self.terminal {
                true => Stdio::inherit(),
                false => Stdio::from(self.null.try_clone()?),
            })
            .stdout(stdout)
            .stderr(stderr);
        let terminal = self.terminal;
        // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
        // (rt_sigaction, sigprocmask, fcntl, dup2, getresuid, setresuid, setuid, getpid,
        // execve) on data prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                if terminal {
                    super::terminal::take_in_child()?;
                }
                become_effective_user()?;
                // COMMAND starts with every disposition at its default: the supervisor ignores
                // SIGPIPE, and an ignored signal stays ignored across execve(2). (std empties
                // the signal mask itself.)
                signals::reset_all()?;
                if let Some((source, target)) = ready_fd {
                    // inherit_ready_fd's promise (within the unsafe block above): this child
                    // execs next or exits, so no owner of target runs again.
                    inherit_ready_fd(source, target)?;
                }
                Err(executable.exec())
            });
        }
        let spawned = command.spawn();
        readiness.after_start();
        let mut child = spawned?;
        let pid = child.id();
        output.attach(pid, child.stdout.take(), child.stderr.take());
        Ok(Child { pid, started: Instant::now() })
    }

    /// COMMAND's name for messages: its `argv[0]`.
    pub fn name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }
}

impl Child {
    /// Passes a signal on to COMMAND, or with `group` to its whole process group (`kill(2)`):
    /// once either way.
    pub fn forward(&self, signal: i32, group: bool) {
        let target = if group { -(self.pid as i32) } else { self.pid as i32 };
        // SAFETY: kill takes plain integers; the pid is our unreaped child, and the group is
        // the one it leads, created at spawn.
        unsafe { libc::kill(target, signal) };
    }
}

/// In COMMAND, between fork and exec: when the supervisor's effective user id is not its real
/// one (see the module docs), makes the effective id the real and saved one too
/// (`setresuid(2)`, allowed without privilege), then checks that root cannot be regained
/// (`setuid(0)` must fail). Async-signal-safe.
fn become_effective_user() -> io::Result<()> {
    use nix::unistd::{Uid, getresuid, setresuid, setuid};
    let ids = getresuid()?;
    if ids.real == ids.effective && ids.saved == ids.effective {
        return Ok(());
    }
    setresuid(ids.effective, ids.effective, ids.effective)?;
    if !ids.effective.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// Sends `signal` once to everything the supervisor started: each process group made only of
/// its descendants (COMMAND's among them), and each descendant in no such group
/// ([`process::signal_descendants`]). Without `/proc` to scan, COMMAND's group still gets it.
pub fn signal_tree(child: Option<&Child>, signal: i32) {
    let own = std::process::id();
    if let (Some(child), None) = (child, process::stat(own)) {
        // SAFETY: kill takes plain integers; the group is COMMAND's, created at spawn.
        unsafe { libc::kill(-(child.pid as i32), signal) };
    }
    if let Ok(me) = process::Pinned::open(own) {
        process::signal_descendants(&me, signal);
    }
}

/// `waitpid(2)` until nothing more has changed: the reaped (pid, status) and the stopped ones
/// (`WUNTRACED`: a status whose `stopped_signal()` is set), and whether no child at all is
/// left (`ECHILD`).
pub fn reap_all() -> (Vec<(u32, ExitStatus)>, bool) {
    let mut exited = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer; WNOHANG never blocks.
        match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) } {
            0 => return (exited, false),
            -1 => return (exited, true),
            pid => exited.push((pid as u32, ExitStatus::from_raw(status))),
        }
    }
}

/// The status a shell gives a command it cannot start: 127 not found, 126 not executable.
pub fn exec_failure_status(errno: Option<i32>) -> i32 {
    if errno == Some(libc::ENOENT) { 127 } else { 126 }
}

/// How COMMAND ended, for the log.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("was killed by signal {signal} ({name})"),
            Err(_) => format!("was killed by signal {signal}"),
        },
        _ => "ended".to_string(),
    }
}

/// Makes the supervisor a child subreaper, so that what COMMAND orphans is re-parented to it.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIGPIPE` ignored: a log FIFO whose reader went away is an `EPIPE` to handle, not death.
/// (COMMAND gets the default back in `pre_exec`.)
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN for SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Blocks every catchable asynchronous signal ([`handled_signals`]) and returns a
/// `signalfd(2)` that delivers them.
pub fn signalfd() -> io::Result<OwnedFd> {
    // SAFETY: a sigset_t made by sigemptyset and filled by sigaddset is valid for sigprocmask
    // and signalfd; children started with std's Command get an empty mask again.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for signal in handled_signals() {
            // glibc refuses the two realtime signals it keeps for itself (EINVAL): skipped.
            libc::sigaddset(&mut set, signal);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Reads one pending signal from the signalfd, if any.
pub fn read_signal(fd: &OwnedFd) -> Option<Received> {
    // SAFETY: signalfd_siginfo is plain old data; all-zero is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: info is writable for size bytes.
    let n = unsafe {
        libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size)
    };
    (n == size as isize).then(|| Received {
        signal: info.ssi_signo as i32,
        queued: (info.ssi_code == libc::SI_QUEUE).then_some(info.ssi_int),
        own: info.ssi_pid == std::process::id() && info.ssi_code != libc::SI_QUEUE,
    })
}
