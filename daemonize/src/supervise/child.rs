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

#![allow(unsafe_code)] // one block: the pre_exec hook

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use daemonctx::{process, signals};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};

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
/// supervisor handles but `SIGTERM` (it stops), `SIGCHLD` (it reaps), and `SIGHUP` when the
/// supervisor holds log files (it reopens them). (`daemonize --send`'s carrier, `SIGRTMIN`
/// with a queued value, is told apart by that value: a plain `SIGRTMIN` is passed on.)
pub fn default_forwarded(has_log_files: bool) -> Vec<i32> {
    let own = [libc::SIGTERM, libc::SIGCHLD];
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
        // (sigprocmask, tcsetpgrp, getpgrp, rt_sigaction, fcntl, dup2, getresuid, setresuid,
        // setuid, getpid, execve) on data prepared before the fork; the errors it returns are
        // io::Error values made from an errno, which allocate nothing.
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

    /// The program as a start failure names it, as in the other modes: `argv[0]` as given
    /// when it is a path (`./app`), else where the `PATH` lookup found it.
    pub fn shown(&self) -> &std::path::Path {
        let given = std::path::Path::new(&self.argv[0]);
        match given.as_os_str().as_encoded_bytes().contains(&b'/') {
            true => given,
            false => &self.path,
        }
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
        // The pid is our unreaped child, and the group the one it leads, created at spawn.
        let _ = match group {
            true => process::signal_group(self.pid, signal),
            false => process::signal_unreaped_child(self.pid, signal),
        };
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

/// How long after a stop signal reached COMMAND's process group the supervisor waits for its
/// tree to empty before it looks in `/proc` for descendants outside the group: at most this, and
/// at most half of `--kill-after`, so that every descendant gets the signal before `SIGKILL`.
pub const SWEEP_AFTER: Duration = Duration::from_millis(500);

/// Sends a stop signal to everything the supervisor started, scanning `/proc` only when
/// something is left (see the module docs of [`super`]).
///
/// The first step needs no scan: `kill(2)` to COMMAND's process group, while COMMAND is not
/// reaped (its zombie keeps the group's number). In the common case that empties the tree, and
/// the supervisor learns it from `waitpid(2)` (`ECHILD`). A descendant outside the group (it
/// called `setsid(2)` or `setpgid(2)`) is found by a scan ([`process::signal_descendants`]:
/// pinned with pidfds), which is owed until the tree is empty and made when the first of these
/// comes: the deadline ([`SWEEP_AFTER`], at most half of `--kill-after`) passes with children
/// left; or COMMAND was reaped, its group is empty and children are left (orphans re-parented
/// to the supervisor). `SIGKILL`, and a signal once COMMAND is gone, scan at once if any
/// child is left.
#[derive(Debug, Default)]
pub struct Sweep {
    /// The signal a scan is owed for, when, and COMMAND's group.
    owed: Option<(i32, Instant, u32)>,
}

impl Sweep {
    /// Sends `signal` to COMMAND's group (while `child` is running or unreaped), and owes a
    /// scan for it or makes one now.
    pub fn signal(&mut self, child: Option<&Child>, signal: i32, kill_after: Duration) {
        let Some(child) = child else {
            self.owed = None;
            sweep_if_children_left(signal, None);
            return;
        };
        // COMMAND's group, created at spawn; COMMAND is not reaped, so the number is its group's.
        let _ = process::signal_group(child.pid, signal);
        let delay = if signal == libc::SIGKILL { Duration::ZERO } else { SWEEP_AFTER };
        self.owed = Some((signal, Instant::now() + delay.min(kill_after / 2), child.pid));
        if delay.is_zero() {
            self.due(Instant::now());
        }
    }

    /// Children were reaped and some are left: when COMMAND is gone (`command_reaped`) and its
    /// group is empty, what is left lies outside it, and the owed scan is made now.
    pub fn children_left(&mut self, command_reaped: bool) {
        if let Some((_, _, group)) = self.owed
            && command_reaped
            && !process::group_exists(group)
        {
            self.due(Instant::now());
        }
    }

    /// No child is left: nothing is owed.
    pub fn all_gone(&mut self) {
        self.owed = None;
    }

    /// Makes the owed scan once its deadline has passed (`now`), if children are left.
    pub fn due(&mut self, now: Instant) {
        if let Some((signal, at, group)) = self.owed
            && now >= at
        {
            self.owed = None;
            // The group got this signal already: its members must not get it twice (a second
            // SIGTERM can cut short a graceful stop).
            sweep_if_children_left(signal, Some(group));
        }
    }

    /// When the owed scan is due, if one is owed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.owed.map(|(_, at, _)| at)
    }
}

/// [`process::signal_descendants`] of the supervisor (a scan of `/proc`), when it has a child
/// left ([`has_children`]); COMMAND's group `signalled`, which got `signal` already, left out.
fn sweep_if_children_left(signal: i32, signalled: Option<u32>) {
    if has_children()
        && let Ok(me) = process::Pinned::open(std::process::id())
    {
        match signalled {
            Some(group) => process::signal_descendants_outside_group(&me, signal, group),
            None => process::signal_descendants(&me, signal),
        }
    }
}

/// Whether the supervisor has any child, running or not yet reaped: `waitid(2)` `P_ALL` with
/// `WEXITED | WSTOPPED | WNOHANG | WNOWAIT` (nothing is reaped), `ECHILD` when none. As a child
/// subreaper, no child means no descendant: an orphan is re-parented to the supervisor.
pub fn has_children() -> bool {
    use nix::sys::wait::{Id, waitid};
    let flags =
        WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::All, flags) {
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => return false,
            _ => return true,
        }
    }
}

/// `waitpid(2)` until nothing more has changed: the reaped (pid, status) and the stopped ones
/// (`WUNTRACED`: a status whose `stopped_signal()` is set), and whether no child at all is
/// left (`ECHILD`).
pub fn reap_all() -> (Vec<(u32, ExitStatus)>, bool) {
    let mut exited = Vec::new();
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::StillAlive) => return (exited, false),
            Ok(status) => exited.extend(process::exit_status(status)),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return (exited, true), // ECHILD
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
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}

/// `SIGPIPE` ignored: a log FIFO whose reader went away is an `EPIPE` to handle, not death.
/// (COMMAND gets the default back in `pre_exec`.)
pub fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: SIG_IGN runs no handler code, so nothing needs to be async-signal-safe.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Blocks every catchable asynchronous signal ([`handled_signals`]) and returns a
/// `signalfd(2)` that delivers them: `sigprocmask(2)`, `signalfd(2)` (`SFD_CLOEXEC |
/// SFD_NONBLOCK`). Children started with std's `Command` get an empty mask again.
///
/// The set is the full one (`sigfillset(3)`: every signal but the two real-time ones glibc
/// keeps for itself) less [`signals::SYNCHRONOUS_OR_UNCATCHABLE`]: [`handled_signals`], as
/// nix's `SigSet` can name real-time signals only that way.
pub fn signalfd() -> io::Result<SignalFd> {
    let mut set = SigSet::all();
    for signal in signals::SYNCHRONOUS_OR_UNCATCHABLE {
        if let Ok(signal) = Signal::try_from(signal) {
            set.remove(signal);
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    Ok(SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?)
}

/// Reads one pending signal from the signalfd (`read(2)`), if any.
pub fn read_signal(fd: &SignalFd) -> Option<Received> {
    let info = fd.read_signal().ok()??;
    Some(Received {
        signal: info.ssi_signo as i32,
        queued: (info.ssi_code == libc::SI_QUEUE).then_some(info.ssi_int),
        own: info.ssi_pid == std::process::id() && info.ssi_code != libc::SI_QUEUE,
    })
}
