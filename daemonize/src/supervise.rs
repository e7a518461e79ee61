//! The supervisor: a daemon that runs COMMAND as its child, restarts it by policy, forwards
//! signals, relays its output, and on stop leaves nothing behind.
//!
//! The supervisor is a child subreaper (`prctl(2)` `PR_SET_CHILD_SUBREAPER`): whatever COMMAND
//! starts and orphans is re-parented to it, so a stop finds and kills every descendant, even one
//! that double-forked or left COMMAND's process group. COMMAND runs in a process group of its
//! own (`setpgid(2)`).
//!
//! It blocks in `poll(2)` on a `signalfd(2)` (the forwarded signals and `SIGCHLD`), the output
//! pipes and the readiness listener; a timeout is set only while a deadline exists (restart
//! delay, kill-after, ready timeout), so an idle supervisor never wakes up.
//!
//! Readiness (`--wait-ready`) concerns the first start only. Once it is settled (COMMAND said
//! it is ready, exited first, or ran out of time) the listener is closed: the notify socket's
//! name is free again and restarted COMMANDs get no `NOTIFY_SOCKET` (`sd_notify(3)` then does
//! nothing), and with `fd:N` they get `/dev/null` on N, which takes their newline and ignores
//! it. Nothing a stranger sends can then reach or wake the supervisor.
//!
//! A stop signals COMMAND's process group and every descendant (`kill(2)`), and, for each
//! process group made only of descendants, the whole group: a group signal also reaches a
//! process being forked right then. After `SIGKILL`, each `SIGCHLD` sends it again to whatever
//! is left, so a descendant that keeps forking (a killed process cannot fork) is gone within a
//! few rounds; [`KILL_GRACE`] bounds the wait.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use daemonctx::{Daemon, Pidfile, Step, process, signals};

use crate::notify::{Notice, ReadyListener};
use crate::output::{LineBuffer, LogFile, SyslogWriter};

/// How often held output (a full log file) is tried again.
const HELD_OUTPUT_RETRY: Duration = Duration::from_secs(1);

/// How long the supervisor waits for its descendants to go after `SIGKILL` (a process stuck in
/// the kernel, `D` state, may take its time) before it stops waiting for them.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// The furthest deadline the supervisor sets (about 31 years): longer delays and timeouts
/// count as this long, so that `Instant` arithmetic never overflows.
pub const LONGEST_WAIT: Duration = crate::cli::LONGEST;

/// The exit status of a supervisor that could not start (as a daemon's failed setup).
const EXIT_SETUP_FAILED: i32 = 1;

/// The exit status when the supervisor gives up (too many restarts) after a successful exit.
const EXIT_GAVE_UP: i32 = 1;

/// The signals passed on to COMMAND (`SIGHUP` also reopens the log files).
const FORWARDED: [i32; 7] = [
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// When COMMAND is started again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Never: the supervisor exits with COMMAND.
    No,
    /// When COMMAND exits non-zero or dies of a signal.
    OnFailure,
    /// Whenever COMMAND exits.
    Always,
}

/// Where one of COMMAND's output streams goes.
#[derive(Debug)]
pub enum Sink {
    /// `/dev/null`: COMMAND gets it directly, no pipe.
    Null,
    /// A file the supervisor holds and reopens on `SIGHUP`.
    File(LogFile),
    /// Syslog, one message per line.
    Syslog,
}

/// Everything the supervisor needs; built in the original process, where errors still show.
#[derive(Debug)]
pub struct SupervisorConfig {
    /// The program: a path, or a name looked up on the `PATH` of `env` at each start.
    pub program: PathBuf,
    /// COMMAND's argument vector, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// COMMAND's whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// The restart policy.
    pub restart: Restart,
    /// The first restart delay; it doubles at each restart up to `restart_max_delay`.
    pub restart_delay: Duration,
    /// The longest restart delay; a COMMAND that ran this long resets the delay.
    pub restart_max_delay: Duration,
    /// Give up after this many restarts within `restart_window`.
    pub max_restarts: Option<u32>,
    /// The window for `max_restarts`.
    pub restart_window: Duration,
    /// How long a stop waits after `SIGTERM` before `SIGKILL`.
    pub kill_after: Duration,
    /// A pidfile, locked by the supervisor, that names COMMAND while it runs.
    pub child_pidfile: Option<Pidfile>,
    /// How COMMAND says it is ready, if it does (first start only: closed once settled).
    pub ready: Option<ReadyListener>,
    /// How long to wait for COMMAND to be ready.
    pub ready_timeout: Option<Duration>,
    /// COMMAND's stdout.
    pub stdout: Sink,
    /// COMMAND's stderr.
    pub stderr: Sink,
    /// The syslog connection, when a sink is [`Sink::Syslog`].
    pub syslog: Option<SyslogWriter>,
}

impl SupervisorConfig {
    /// The descriptors the supervisor needs across [`crate::DaemonContext::open`]: log files,
    /// syslog socket, readiness listener. Pass them to `files_preserve`.
    pub fn descriptors(&self) -> Vec<RawFd> {
        let mut fds = Vec::new();
        for sink in [&self.stdout, &self.stderr] {
            if let Sink::File(file) = sink {
                fds.push(file.as_raw_fd());
            }
        }
        fds.extend(self.syslog.as_ref().and_then(SyslogWriter::raw_fd));
        fds.extend(self.child_pidfile.as_ref().map(Pidfile::as_raw_fd));
        if let Some(listener) = &self.ready {
            fds.extend(listener.poll_fd());
            fds.extend(listener.write_end().map(|(write, _)| write));
        }
        fds
    }
}

/// Runs the supervisor in the daemon until COMMAND is done for good; returns the exit status
/// for the supervisor: COMMAND's last one, or 128 + the signal it died of.
///
/// Reports to the original process through `daemon`: ready once COMMAND runs (or says it is
/// ready), or the step that failed.
pub fn supervise(config: SupervisorConfig, daemon: &mut Daemon) -> i32 {
    let mut supervisor = match Supervisor::new(config) {
        Ok(supervisor) => supervisor,
        Err(e) => {
            daemon.report_failure(Step::Supervise, &e);
            return EXIT_SETUP_FAILED;
        }
    };
    if let Err(e) = supervisor.spawn() {
        supervisor.reap_all(); // nothing runs, but keep the table clean
        daemon.report_failure(Step::Exec, &e);
        return exec_failure_status(&e);
    }
    if supervisor.ready.is_none() {
        supervisor.note_ready();
        let _ = daemon.ready();
    }
    let code = supervisor.run(daemon);
    supervisor.finish(daemon, code)
}

/// What happens once every child is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Restart,
    Exit,
}

/// The supervisor's state between events.
#[derive(Debug)]
enum Phase {
    /// COMMAND runs.
    Running,
    /// COMMAND is gone or being stopped; waiting for every descendant to go.
    Draining { kill: Kill, then: After },
    /// Waiting out the restart delay.
    Waiting { restart_at: Instant },
    /// Done: exit with this status.
    Done(i32),
}

/// Where a stop stands with `SIGKILL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// To be sent at this instant (`--kill-after` after `SIGTERM`).
    At(Instant),
    /// Sent; sent again on each `SIGCHLD`; waited for until this instant.
    Sent { give_up_at: Instant },
}

struct Child {
    pid: u32,
    started: Instant,
}

/// The descriptor COMMAND gets on `--wait-ready fd:N`: the ready pipe's write end at the first
/// start; at a restart (readiness is settled by then) `/dev/null`, which takes the newline a
/// restarted COMMAND writes again, and ignores it.
struct ReadyFd {
    /// What to put on `target` at the next start; `None` once the write end was handed out.
    source: Option<OwnedFd>,
    target: RawFd,
}

/// A pipe from COMMAND being read.
struct Relay {
    pipe: OwnedFd,
    stderr: bool,
    lines: LineBuffer,
}

struct Supervisor {
    config: SupervisorConfig,
    signals: OwnedFd,
    child: Option<Child>,
    last_status: Option<ExitStatus>,
    relays: Vec<Relay>,
    /// The readiness listener, while readiness is not settled.
    ready: Option<ReadyListener>,
    ready_fd: Option<ReadyFd>,
    /// `NOTIFY_SOCKET`, for the first start only.
    notify_variable: Option<OsString>,
    /// A settled ready pipe, kept open (not polled) until the COMMAND it was given exits.
    spent_ready_pipe: Option<ReadyListener>,
    ready_deadline: Option<Instant>,
    is_ready: bool,
    ready_timed_out: bool,
    /// When to try writing held output again (a log file was full).
    retry_output_at: Option<Instant>,
    phase: Phase,
    restarts: VecDeque<Instant>,
    delay: Duration,
    gave_up: bool,
}

impl Supervisor {
    /// Becomes a subreaper and routes signals to a signalfd.
    fn new(mut config: SupervisorConfig) -> io::Result<Supervisor> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let signals = signalfd()?;
        ignore_sigpipe();
        let mut ready = config.ready.take();
        let ready_fd = ready
            .as_mut()
            .and_then(ReadyListener::take_write_end)
            .map(|(write, target)| ReadyFd { source: Some(write), target });
        let notify_variable = ready.as_ref().and_then(ReadyListener::environment).map(|(k, _)| k);
        let ready_deadline = match (&ready, config.ready_timeout) {
            (Some(_), Some(timeout)) => Some(deadline_in(timeout)),
            _ => None,
        };
        let delay = config.restart_delay;
        Ok(Supervisor {
            config,
            signals,
            child: None,
            last_status: None,
            relays: Vec::new(),
            ready,
            ready_fd,
            notify_variable,
            spent_ready_pipe: None,
            ready_deadline,
            is_ready: false,
            ready_timed_out: false,
            retry_output_at: None,
            phase: Phase::Running,
            restarts: VecDeque::new(),
            delay,
            gave_up: false,
        })
    }

    /// Starts COMMAND in its own process group, with pipes for the captured streams.
    fn spawn(&mut self) -> io::Result<()> {
        let mut command = std::process::Command::new(&self.config.program);
        command
            .arg0(&self.config.argv[0])
            .args(&self.config.argv[1..])
            .env_clear()
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(pipe_unless_null(&self.config.stdout))
            .stderr(pipe_unless_null(&self.config.stderr));
        if let (None, Some(name)) = (&self.ready, &self.notify_variable) {
            command.env_remove(name); // readiness is settled: the socket is gone
        }
        let ready_fd = self.ready_fd.as_mut().map(ReadyFd::prepare).transpose()?;
        // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
        // (rt_sigaction, sigprocmask, fcntl, dup2) on data prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                // COMMAND starts with every disposition at its default: the supervisor ignores
                // SIGPIPE, and an ignored signal stays ignored across execve(2). (std empties
                // the signal mask itself.)
                signals::reset_all()?;
                if let Some((source, target)) = ready_fd {
                    inherit_ready_fd(source, target)?;
                }
                Ok(())
            });
        }
        let spawned = command.spawn();
        if let Some(ready_fd) = &mut self.ready_fd {
            ready_fd.release();
        }
        let mut child = spawned?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            self.relays.push(Relay::new(OwnedFd::from(out), false));
        }
        if let Some(err) = child.stderr.take() {
            self.relays.push(Relay::new(OwnedFd::from(err), true));
        }
        if let Some(syslog) = &mut self.config.syslog {
            syslog.set_pid(pid);
        }
        if let Some(pidfile) = &self.config.child_pidfile
            && let Err(e) = pidfile.write_pid(pid)
        {
            let message = format!("cannot write child pidfile {}: {e}", pidfile.path().display());
            self.log(&message);
        }
        self.child = Some(Child { pid, started: Instant::now() });
        self.phase = Phase::Running;
        Ok(())
    }

    /// COMMAND is ready. Readiness is settled: the listener is closed, before the original
    /// process is told (so the notify socket's name is free by the time the invoker returns).
    fn note_ready(&mut self) {
        self.is_ready = true;
        self.settle_readiness();
    }

    /// Closes the readiness listener for good (see the module docs): from now on nothing it
    /// receives matters, and nothing is read or polled there. A ready pipe's read end is kept,
    /// unpolled, while the COMMAND holding its write end runs: a second newline must not kill it
    /// with `SIGPIPE`.
    fn settle_readiness(&mut self) {
        if let Some(listener @ ReadyListener::Fd { .. }) = self.ready.take()
            && self.child.is_some()
        {
            self.spent_ready_pipe = Some(listener);
        }
        self.ready_deadline = None;
    }

    /// The event loop: returns the exit status once the phase is `Done`.
    fn run(&mut self, daemon: &mut Daemon) -> i32 {
        loop {
            if let Phase::Done(code) = self.phase {
                return code;
            }
            // [signalfd, relays..., room to write..., readiness listener]; a negative fd is
            // ignored by poll(2).
            let mut fds = vec![pollfd(self.signals.as_raw_fd())];
            // A relay whose sink is holding output is not read: COMMAND blocks meanwhile.
            fds.extend(self.relays.iter().map(|r| match self.is_holding(r.stderr) {
                true => pollfd(-1),
                false => pollfd(r.pipe.as_raw_fd()),
            }));
            let room = fds.len();
            fds.extend(self.output_waiting_for_room().map(|fd| libc::pollfd {
                fd: fd.unwrap_or(-1),
                events: libc::POLLOUT,
                revents: 0,
            }));
            let listener = fds.len();
            fds.push(pollfd(self.ready.as_ref().and_then(ReadyListener::poll_fd).unwrap_or(-1)));
            let timeout = self.next_deadline().map_or(-1, |deadline| {
                let left = deadline.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1)
            });
            // SAFETY: fds is a valid array of pollfd for its length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue; // EINTR
            }
            if fds[room..listener].iter().any(|p| p.revents != 0) {
                self.retry_held_output();
            }
            // Output first: what COMMAND wrote before it exited is relayed before the notice
            // of its exit.
            let relay_events: Vec<bool> = fds[1..room].iter().map(|p| p.revents != 0).collect();
            self.handle_output(&relay_events);
            // What COMMAND said before it exited counts: readiness before its exit.
            if fds[listener].revents != 0 {
                self.handle_readiness();
            }
            if fds[0].revents != 0 {
                self.handle_signals();
            }
            if self.is_ready {
                let _ = daemon.ready(); // once; later calls do nothing
            }
            self.handle_deadlines();
        }
    }

    /// The descriptors that held output waits on for room (`POLLOUT`): the syslog socket,
    /// the stdout and stderr files (a pipe or FIFO whose reader is slow).
    fn output_waiting_for_room(&self) -> [Option<RawFd>; 3] {
        let file = |sink: &Sink| match sink {
            Sink::File(file) => file.poll_fd(),
            _ => None,
        };
        let syslog = self.config.syslog.as_ref().filter(|s| s.is_holding());
        [
            syslog.and_then(SyslogWriter::poll_fd),
            file(&self.config.stdout),
            file(&self.config.stderr),
        ]
    }

    fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Draining { kill: Kill::At(at), .. } => Some(at),
            Phase::Draining { kill: Kill::Sent { give_up_at }, .. } => Some(give_up_at),
            Phase::Waiting { restart_at } => Some(restart_at),
            _ => None,
        };
        [phase, self.ready_deadline, self.retry_output_at].into_iter().flatten().min()
    }

    /// Whether the sink of COMMAND's stdout (`false`) or stderr (`true`) holds output.
    fn is_holding(&self, stderr: bool) -> bool {
        match if stderr { &self.config.stderr } else { &self.config.stdout } {
            Sink::File(file) => file.is_holding(),
            Sink::Syslog => self.config.syslog.as_ref().is_some_and(SyslogWriter::is_holding),
            Sink::Null => false,
        }
    }

    /// Tries again to write held output; while some is still held, tries again in a second.
    fn retry_held_output(&mut self) {
        let mut recovered = Vec::new();
        for sink in [&mut self.config.stdout, &mut self.config.stderr] {
            if let Sink::File(file) = sink
                && file.is_holding()
            {
                // Only a file that failed (not one that was merely full) was announced.
                let failed = file.poll_fd().is_none();
                if file.retry().is_ok() && failed {
                    recovered.push(file.path().display().to_string());
                }
            }
        }
        if let Some(syslog) = &mut self.config.syslog {
            let _ = syslog.flush();
        }
        // Files, and a syslog socket that went away, are tried again by timer; a full syslog
        // socket wakes the loop by itself (POLLOUT).
        self.retry_output_at = None;
        self.arm_output_retry();
        for path in recovered {
            self.log(&format!("writing {path} again"));
        }
    }

    fn handle_signals(&mut self) {
        while let Some(signal) = read_signal(&self.signals) {
            match signal {
                libc::SIGCHLD => self.reap_and_advance(),
                libc::SIGTERM => self.stop("stopping on SIGTERM"),
                libc::SIGHUP => {
                    self.reopen_files();
                    self.forward(signal);
                }
                _ => self.forward(signal),
            }
        }
    }

    /// Passes a signal on to COMMAND.
    fn forward(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill takes plain integers; the pid is our unreaped child.
            unsafe { libc::kill(child.pid as i32, signal) };
        }
    }

    /// Begins a stop: `SIGTERM` to COMMAND's group and every descendant, `SIGKILL` later.
    fn stop(&mut self, why: &str) {
        self.log(why);
        // Stopping settles readiness: no deadline of its is left to wake the loop.
        self.settle_readiness();
        match self.phase {
            Phase::Running => {
                self.signal_tree(libc::SIGTERM);
                let kill = Kill::At(deadline_in(self.config.kill_after));
                self.phase = Phase::Draining { kill, then: After::Exit };
            }
            // Already stopping: exit rather than restart, but keep the SIGKILL deadline (more
            // SIGTERMs must not postpone it).
            Phase::Draining { kill, .. } => {
                self.phase = Phase::Draining { kill, then: After::Exit };
            }
            Phase::Waiting { .. } => self.phase = Phase::Done(self.exit_code()),
            Phase::Done(_) => {}
        }
    }

    /// Sends `signal` to COMMAND's process group, to every process group made only of the
    /// supervisor's descendants, and to every descendant.
    fn signal_tree(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill takes plain integers; the group is COMMAND's, created at spawn.
            unsafe { libc::kill(-(child.pid as i32), signal) };
        }
        if let Ok(me) = process::Pinned::open(std::process::id()) {
            process::signal_descendants(&me, signal);
        }
    }

    /// Reaps every exited child; notes COMMAND's status, and moves on when nothing is left.
    fn reap_and_advance(&mut self) {
        // COMMAND may have said it is ready and exited at once: read that while it is still a
        // zombie, not reaped, so that its messages still count as its own.
        if self.ready.is_some() {
            self.handle_readiness();
        }
        let (exited, none_left) = self.reap_all();
        for (pid, status) in exited {
            if self.child.as_ref().is_some_and(|c| c.pid == pid) {
                self.child_exited(status);
            }
        }
        if !none_left {
            // A descendant that forked before SIGKILL reached it left a child behind: that one
            // is killed in turn, until none is left.
            if let Phase::Draining { kill: Kill::Sent { .. }, .. } = self.phase {
                self.signal_tree(libc::SIGKILL);
            }
            return;
        }
        if let Phase::Draining { then, .. } = self.phase {
            self.phase = match then {
                After::Exit => Phase::Done(self.exit_code()),
                After::Restart => self.schedule_restart(),
            };
        }
    }

    /// `waitpid(2)` until nothing more has exited: the reaped (pid, status), and whether no
    /// child at all is left (`ECHILD`).
    fn reap_all(&mut self) -> (Vec<(u32, ExitStatus)>, bool) {
        let mut exited = Vec::new();
        loop {
            let mut status = 0;
            // SAFETY: status is a valid out-pointer; WNOHANG never blocks.
            match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
                0 => return (exited, false),
                -1 => return (exited, true),
                pid => exited.push((pid as u32, ExitStatus::from_raw(status))),
            }
        }
    }

    /// COMMAND exited: stop what it left behind, then restart or exit by policy.
    fn child_exited(&mut self, status: ExitStatus) {
        let child = self.child.take().expect("child_exited is called for the running child");
        self.spent_ready_pipe = None;
        self.last_status = Some(status);
        self.log(&format!("{} (pid {}) {}", self.name(), child.pid, describe(status)));
        // A run as long as the longest delay was no crash loop: back off from the start again.
        if child.started.elapsed() >= self.config.restart_max_delay {
            self.delay = self.config.restart_delay;
        }
        if let Some(pidfile) = &self.config.child_pidfile {
            let _ = pidfile.clear(); // names nobody until the next start
        }
        let then = match self.phase {
            Phase::Draining { then, .. } => then,
            _ if self.ready.is_some() => After::Exit,
            _ if self.should_restart(status) => After::Restart,
            _ => After::Exit,
        };
        // Exited before it was ready: readiness is settled, as a failure.
        self.settle_readiness();
        let kill = match self.phase {
            Phase::Draining { kill, .. } => kill,
            _ => {
                self.signal_tree(libc::SIGTERM);
                Kill::At(deadline_in(self.config.kill_after))
            }
        };
        self.phase = Phase::Draining { kill, then };
    }

    fn should_restart(&self, status: ExitStatus) -> bool {
        match self.config.restart {
            Restart::No => false,
            Restart::OnFailure => !status.success(),
            Restart::Always => true,
        }
    }

    /// Counts the restart against the limit and waits out the (growing) delay.
    fn schedule_restart(&mut self) -> Phase {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.config.restart_window)
        {
            self.restarts.pop_front();
        }
        if let Some(max) = self.config.max_restarts
            && self.restarts.len() >= max as usize
        {
            self.log(&format!(
                "giving up: {} restarted {max} times within {} s",
                self.name(),
                self.config.restart_window.as_secs_f64()
            ));
            self.gave_up = true;
            return Phase::Done(self.exit_code());
        }
        self.restarts.push_back(now);
        let delay = self.delay.min(LONGEST_WAIT);
        self.delay = delay.saturating_mul(2).min(self.config.restart_max_delay);
        self.log(&format!("restarting {} in {} s", self.name(), delay.as_secs_f64()));
        Phase::Waiting { restart_at: now + delay }
    }

    fn handle_deadlines(&mut self) {
        let now = Instant::now();
        if self.retry_output_at.is_some_and(|at| now >= at) {
            self.retry_held_output();
        }
        self.arm_output_retry();
        // Once COMMAND has exited, its status is the answer, not the deadline.
        if self.ready_deadline.is_some_and(|d| now >= d) {
            self.settle_readiness();
            if matches!(self.phase, Phase::Running) {
                self.ready_timed_out = true;
                self.stop("not ready in time; stopping");
            }
        }
        match self.phase {
            Phase::Draining { kill: Kill::At(at), then } if now >= at => {
                self.log("still running after --kill-after: sending SIGKILL");
                self.signal_tree(libc::SIGKILL);
                let kill = Kill::Sent { give_up_at: deadline_in(KILL_GRACE) };
                self.phase = Phase::Draining { kill, then };
            }
            Phase::Draining { kill: Kill::Sent { give_up_at }, then } if now >= give_up_at => {
                let left = process::descendants(std::process::id());
                self.log(&format!(
                    "pids {left:?} still there {} s after SIGKILL: no longer waiting for them",
                    KILL_GRACE.as_secs_f64()
                ));
                self.phase = match then {
                    After::Exit => Phase::Done(self.exit_code()),
                    After::Restart => self.schedule_restart(),
                };
            }
            Phase::Waiting { restart_at } if now >= restart_at => {
                if let Err(e) = self.spawn() {
                    self.log(&format!("cannot start {}: {e}", self.name()));
                    let code = exec_failure_status(&e);
                    self.last_status = Some(ExitStatus::from_raw(code << 8));
                    self.phase = self.schedule_restart();
                }
            }
            _ => {}
        }
    }

    /// Reads what the listener has (it is polled only while readiness is unsettled, which is
    /// only while COMMAND runs): messages from outside COMMAND's tree are dropped.
    fn handle_readiness(&mut self) {
        let Some(main) = self.child.as_ref().map(|c| c.pid) else {
            self.settle_readiness(); // cannot happen; never poll a listener nobody reads
            return;
        };
        let Some(listener) = &mut self.ready else { return };
        let mut ready = false;
        for notice in listener.read_notices(main) {
            match notice {
                Notice::Ready => ready = true,
                Notice::Status(text) => self.log(&format!("status: {text}")),
                Notice::MainPid(pid) => self.log(&format!("ignoring MAINPID={pid}: supervised")),
            }
        }
        if ready {
            self.note_ready();
        }
    }

    /// Reads every readable pipe once and passes the bytes on; closed pipes are dropped.
    fn handle_output(&mut self, readable: &[bool]) {
        let mut index = 0;
        let mut relays = std::mem::take(&mut self.relays);
        relays.retain_mut(|relay| {
            let ready = readable.get(index).copied().unwrap_or(false);
            index += 1;
            !ready || self.pump(relay)
        });
        self.relays.append(&mut relays);
    }

    /// Moves what the pipe holds to the stream's sink; false at end of file.
    fn pump(&mut self, relay: &mut Relay) -> bool {
        let mut buf = [0u8; 65536];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(relay.pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => {
                self.deliver_tail(relay);
                false
            }
            n if n > 0 => {
                self.deliver(relay, &buf[..n as usize]);
                true
            }
            _ => io::Error::last_os_error().kind() != io::ErrorKind::BrokenPipe,
        }
    }

    fn deliver(&mut self, relay: &mut Relay, bytes: &[u8]) {
        let sink = if relay.stderr { &mut self.config.stderr } else { &mut self.config.stdout };
        match sink {
            Sink::File(file) => {
                let was_holding = file.is_holding();
                // A full pipe (EAGAIN) is back-pressure, waited for with POLLOUT, not news.
                if let (Err(e), false) = (file.write(bytes), was_holding)
                    && e.kind() != io::ErrorKind::WouldBlock
                {
                    let path = file.path().display().to_string();
                    self.retry_output_at = Some(Instant::now() + HELD_OUTPUT_RETRY);
                    self.log(&format!("cannot write {path}: {e}; holding output until it can"));
                }
            }
            Sink::Syslog => {
                if let Some(syslog) = &mut self.config.syslog {
                    let severity = syslog.severity(relay.stderr);
                    relay.lines.push(bytes, |line| {
                        syslog.send_line(severity, line);
                    });
                }
            }
            Sink::Null => {}
        }
    }

    fn deliver_tail(&mut self, relay: &mut Relay) {
        if let (Sink::Syslog, Some(syslog)) = (
            if relay.stderr { &self.config.stderr } else { &self.config.stdout },
            &mut self.config.syslog,
        ) {
            let severity = syslog.severity(relay.stderr);
            relay.lines.finish(|line| {
                syslog.send_line(severity, line);
            });
        }
    }

    fn reopen_files(&mut self) {
        let mut failures = Vec::new();
        for sink in [&mut self.config.stdout, &mut self.config.stderr] {
            if let Sink::File(file) = sink
                && let Err(e) = file.reopen()
            {
                failures.push(format!("cannot reopen {}: {e}", file.path().display()));
            }
        }
        for failure in failures {
            self.log(&failure);
        }
    }

    /// Reads the pipes to their end. Every writer is dead by now, so end of file comes at once;
    /// a pipe some stranger still holds open is given up after a bounded wait.
    fn drain_pipes(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.relays.is_empty() && Instant::now() < deadline {
            let mut fds: Vec<libc::pollfd> =
                self.relays.iter().map(|r| pollfd(r.pipe.as_raw_fd())).collect();
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
            // SAFETY: fds is a valid array of pollfd for its length.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left.max(1)) };
            let readable: Vec<bool> = fds.iter().map(|p| p.revents != 0).collect();
            self.handle_output(&readable);
        }
        for relay in std::mem::take(&mut self.relays) {
            let mut relay = relay;
            self.deliver_tail(&mut relay);
        }
    }

    /// Gives held output a bounded last chance (`--kill-after`, at least 5 s): syslog gets its
    /// last lines when it takes them, a full log file when it has room.
    fn flush_output_before_exit(&mut self) {
        let deadline = deadline_in(self.config.kill_after.max(Duration::from_secs(5)));
        loop {
            self.retry_held_output();
            let holding = self.is_holding(false) || self.is_holding(true);
            let left = deadline.saturating_duration_since(Instant::now());
            if !holding || left.is_zero() {
                return;
            }
            let mut room = self.output_waiting_for_room().map(|fd| libc::pollfd {
                fd: fd.unwrap_or(-1),
                events: libc::POLLOUT,
                revents: 0,
            });
            let wait = left.min(HELD_OUTPUT_RETRY).as_millis() as i32;
            // SAFETY: a valid array of pollfds (a negative fd is ignored by poll).
            unsafe { libc::poll(room.as_mut_ptr(), room.len() as libc::nfds_t, wait.max(1)) };
        }
    }

    /// The supervisor's own messages go where COMMAND's stderr goes.
    fn log(&mut self, text: &str) {
        match &mut self.config.stderr {
            Sink::File(file) => {
                let _ = file.write(format!("daemonize: {text}\n").as_bytes());
            }
            Sink::Syslog => {
                if let Some(syslog) = &mut self.config.syslog {
                    syslog.send_own(syslog::Severity::LOG_NOTICE, text);
                }
            }
            Sink::Null => {}
        }
    }

    /// Files, and a syslog socket that went away, are tried again by timer; a full syslog
    /// socket wakes the loop by itself (`POLLOUT`).
    fn arm_output_retry(&mut self) {
        let syslog_lost =
            self.config.syslog.as_ref().is_some_and(|s| s.is_holding() && s.poll_fd().is_none());
        if self.retry_output_at.is_none() && (syslog_lost || self.files_holding()) {
            self.retry_output_at = Some(Instant::now() + HELD_OUTPUT_RETRY);
        }
    }

    /// Whether a file holds output it failed to write (not one waiting for room: `POLLOUT`
    /// says when that comes).
    fn files_holding(&self) -> bool {
        [&self.config.stdout, &self.config.stderr]
            .iter()
            .any(|sink| matches!(sink, Sink::File(file) if file.is_holding() && file.poll_fd().is_none()))
    }

    fn name(&self) -> String {
        self.config.argv[0].to_string_lossy().into_owned()
    }

    /// COMMAND's last status as an exit code: its code, or 128 + the signal.
    fn exit_code(&self) -> i32 {
        let code = self.last_status.map_or(0, process::shell_status);
        if self.gave_up && code == 0 { EXIT_GAVE_UP } else { code }
    }

    /// Drains the pipes, removes the child pidfile, and reports a readiness timeout. (A COMMAND
    /// that exited before it was ready needs no report: the original process sees the
    /// supervisor exit with COMMAND's status.)
    fn finish(mut self, daemon: &mut Daemon, code: i32) -> i32 {
        self.drain_pipes();
        self.flush_output_before_exit();
        if self.ready_timed_out {
            let timed_out = io::Error::from_raw_os_error(libc::ETIMEDOUT);
            daemon.report_failure(Step::WaitReady, &timed_out);
        }
        if let Some(pidfile) = self.config.child_pidfile.take() {
            let _ = pidfile.remove();
        }
        code
    }
}

impl ReadyFd {
    /// Before a start: the descriptor to hand over and its target. The source is put on the
    /// target number when that is free (`dup3(2)`, close-on-exec); either way the number is
    /// taken in the supervisor while std spawns, so none of std's own descriptors for the spawn
    /// (its pipes, its exec-error channel) can get it and then be replaced in the child.
    fn prepare(&mut self) -> io::Result<(RawFd, RawFd)> {
        let source = match self.source.take() {
            Some(source) => source,
            None => std::fs::OpenOptions::new().write(true).open("/dev/null")?.into(),
        };
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        let free = unsafe { libc::fcntl(self.target, libc::F_GETFD) } == -1;
        let source = if source.as_raw_fd() != self.target && free {
            // SAFETY: source is open and target is free: dup3 makes target a copy of it.
            if unsafe { libc::dup3(source.as_raw_fd(), self.target, libc::O_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: target is now a descriptor of ours that nothing else owns; the old
            // source is closed by the drop.
            unsafe { OwnedFd::from_raw_fd(self.target) }
        } else {
            source
        };
        let raw = source.as_raw_fd();
        self.source = Some(source);
        Ok((raw, self.target))
    }

    /// After a start: the supervisor's copy is closed, so that the read end sees end of file
    /// once COMMAND closes its own.
    fn release(&mut self) {
        self.source = None;
    }
}

/// In COMMAND, between fork and exec: makes `target` the ready descriptor and inheritable.
/// Async-signal-safe (`fcntl(2)` or `dup2(2)`, which also clears close-on-exec).
fn inherit_ready_fd(source: RawFd, target: RawFd) -> io::Result<()> {
    let rc = if source == target {
        // SAFETY: F_SETFD on a descriptor of this process; no memory is touched.
        unsafe { libc::fcntl(target, libc::F_SETFD, 0) }
    } else {
        // SAFETY: dup2 on descriptors of this process; whatever target was (a close-on-exec
        // descriptor of the supervisor's) is replaced in this child only.
        unsafe { libc::dup2(source, target) }
    };
    if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The status a shell gives a command it cannot start: 127 not found, 126 not executable.
fn exec_failure_status(error: &io::Error) -> i32 {
    if error.raw_os_error() == Some(libc::ENOENT) { 127 } else { 126 }
}

/// The instant `after` from now, `after` capped at [`LONGEST_WAIT`].
fn deadline_in(after: Duration) -> Instant {
    Instant::now() + after.min(LONGEST_WAIT)
}

impl Relay {
    fn new(pipe: OwnedFd, stderr: bool) -> Relay {
        // SAFETY: F_SETFL with O_NONBLOCK on an owned descriptor.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Relay { pipe, stderr, lines: LineBuffer::default() }
    }
}

fn pipe_unless_null(sink: &Sink) -> Stdio {
    match sink {
        Sink::Null => Stdio::null(),
        _ => Stdio::piped(),
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("was killed by signal {signal} ({name})"),
            Err(_) => format!("was killed by signal {signal}"),
        },
        _ => "ended".to_string(),
    }
}

/// `SIGPIPE` ignored: a log FIFO whose reader went away is an `EPIPE` to handle, not death.
/// (COMMAND gets the default back in `pre_exec`.)
fn ignore_sigpipe() {
    // SAFETY: SIG_IGN for SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Blocks the supervisor's signals and returns a `signalfd(2)` that delivers them.
fn signalfd() -> io::Result<OwnedFd> {
    // SAFETY: a sigset_t made by sigemptyset and filled by sigaddset is valid for sigprocmask
    // and signalfd; children started with std's Command get an empty mask again.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for signal in FORWARDED.iter().chain(&[libc::SIGTERM, libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *signal);
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
fn read_signal(fd: &OwnedFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain old data; all-zero is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: info is writable for size bytes.
    let n = unsafe {
        libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size)
    };
    (n == size as isize).then_some(info.ssi_signo as i32)
}
