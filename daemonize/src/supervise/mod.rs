//! The supervisor: a daemon that runs COMMAND as its child, restarts it by policy, forwards
//! signals, relays its output, and on stop leaves nothing behind.
//!
//! The supervisor is a child subreaper (`prctl(2)` `PR_SET_CHILD_SUBREAPER`): whatever COMMAND
//! starts and orphans is re-parented to it, so a stop finds and kills every descendant, even one
//! that double-forked or left COMMAND's process group. COMMAND runs in a process group of its
//! own (`setpgid(2)`).
//!
//! This module is the poll loop; it only composes the parts, each of which says which
//! descriptors it polls and its next deadline:
//! - [`child`]: COMMAND's start, its tree, reaping; the `signalfd(2)` (every catchable
//!   signal: `SIGTERM` stops, `SIGCHLD` reaps, the rest is passed on), polled for reading; no
//!   deadline.
//! - [`relay`]: the output pipes (`POLLIN`) and sinks waiting for room (`POLLOUT`); deadline:
//!   the retry of held output.
//! - [`readiness`]: the readiness listener (first start only), or under a parent systemd the
//!   notify socket whose messages are relayed; deadline: the ready timeout.
//! - [`upstream`]: a parent systemd's notify socket, written to only; no deadline.
//! - [`terminal`]: on a terminal, the foreground group handed to COMMAND and job control; no
//!   descriptor of its own (standard input), no deadline.
//! - [`restart`]: no descriptor, a pure state machine; deadline: `SIGKILL`, the end of the wait
//!   after it, or the restart.
//!
//! `poll(2)` gets a timeout only while a deadline exists, so an idle supervisor never wakes up.
//!
//! A stop signals COMMAND's process group first (`kill(2)`: COMMAND is not reaped yet, so its
//! zombie keeps the group's number), with no `/proc` scan. As a subreaper the supervisor then
//! learns from `waitpid(2)` whether anything is left: in the common case COMMAND and its group
//! go, the last reap answers `ECHILD`, and nothing was scanned. Only when something is left
//! does it scan `/proc` ([`child::Sweep`]), signalling each process group made only of
//! descendants and every descendant in no such group, once each, pinned with pidfds (COMMAND's
//! group left out: it got the signal already, and a second `SIGTERM` can cut short a graceful
//! stop): once COMMAND is reaped, its group is empty and children are left (orphans
//! re-parented to the supervisor); or when the tree has not emptied [`child::SWEEP_AFTER`] (at
//! most half of `--kill-after`) after the signal, which reaches a descendant that left the
//! group while its parent lives, before `SIGKILL`. `SIGKILL` scans at once, and after it each
//! `SIGCHLD` that leaves children sends it again to whatever is left, so a descendant that
//! keeps forking (a killed process cannot fork) is gone within a few rounds; [`KILL_GRACE`]
//! bounds the wait.
#![allow(unsafe_code)]

mod child;
mod readiness;
mod relay;
mod restart;
mod terminal;
mod upstream;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use daemonctx::{Daemon, Pidfile, Step, process};

use crate::message;
use crate::notify::ReadyListener;
use crate::output::SyslogWriter;
use crate::send;
use child::{Child, Program};
use readiness::{Heard, Readiness};
pub use relay::Sink;
use relay::{Output, pollfd};
pub use restart::Restart;
use restart::{Action, Lifecycle, Policy};
pub use terminal::in_foreground as on_terminal;
pub use upstream::Upstream;

/// How long the supervisor waits for its descendants to go after `SIGKILL` (a process stuck in
/// the kernel, `D` state, may take its time) before it stops waiting for them.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// The exit status of a supervisor that could not start (as a daemon's failed setup).
const EXIT_SETUP_FAILED: i32 = 1;

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
    /// How COMMAND says it is ready, if it does (first start only: silenced once settled).
    pub ready: Option<ReadyListener>,
    /// How long to wait for COMMAND to be ready.
    pub ready_timeout: Option<Duration>,
    /// COMMAND's stdout.
    pub stdout: Sink,
    /// COMMAND's stderr.
    pub stderr: Sink,
    /// The syslog connection, when a sink is [`Sink::Syslog`].
    pub syslog: Option<SyslogWriter>,
    /// The signals passed on to COMMAND; `None`: [`child::default_forwarded`], every
    /// catchable one the supervisor does not handle itself.
    pub forward: Option<Vec<i32>>,
    /// `/dev/null`, opened read-write before any chroot: COMMAND's stdin, its unset streams,
    /// and a restarted COMMAND's ready descriptor (so a chroot needs no `dev/null`).
    pub null: OwnedFd,
    /// Whether the supervisor runs in the foreground of a terminal ([`on_terminal`]), which
    /// COMMAND then gets, with job control.
    pub terminal: bool,
    /// Whether signals are passed on to COMMAND's whole process group, not COMMAND alone.
    pub forward_to_group: bool,
    /// A parent systemd's notify socket (foreground, `Type=notify`): the supervisor speaks
    /// for COMMAND there.
    pub upstream: Option<Upstream>,
    /// With `upstream` but no `--wait-ready notify`: the notify socket COMMAND gets, only to
    /// relay what it says.
    pub relay: Option<ReadyListener>,
}

impl SupervisorConfig {
    /// The descriptors the supervisor needs across [`crate::DaemonContext::open`]: `/dev/null`,
    /// log files, syslog socket, readiness listener. Pass them to `files_preserve`.
    pub fn descriptors(&self) -> Vec<RawFd> {
        let mut fds = vec![self.null.as_raw_fd()];
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
        fds.extend(self.upstream.as_ref().map(Upstream::raw_fd));
        fds.extend(self.relay.as_ref().and_then(ReadyListener::poll_fd));
        fds
    }
}

/// Runs the supervisor in the daemon until COMMAND is done for good; returns the exit status
/// for the supervisor: COMMAND's last one, or 128 + the signal it died of.
///
/// Reports to the original process through `daemon`: ready once COMMAND runs (or says it is
/// ready), or the step that failed.
pub fn supervise(mut config: SupervisorConfig, daemon: &mut Daemon) -> i32 {
    // Kept apart until the supervisor exists: a failure here must remove it too (in the
    // foreground nobody else does).
    let child_pidfile = config.child_pidfile.take();
    let mut supervisor = match Supervisor::new(config) {
        Ok(supervisor) => supervisor,
        Err(e) => {
            remove_child_pidfile(child_pidfile);
            report_failure(daemon, Step::Supervise, None, e);
            return EXIT_SETUP_FAILED;
        }
    };
    supervisor.child_pidfile = child_pidfile;
    if let Err(e) = supervisor.spawn() {
        child::reap_all(); // nothing runs, but keep the table clean
        if supervisor.program.terminal {
            // COMMAND's side took the terminal before its execve(2) failed.
            terminal::take_back();
        }
        remove_child_pidfile(supervisor.child_pidfile.take());
        let status = child::exec_failure_status(e.raw_os_error());
        report_failure(daemon, Step::Exec, Some(supervisor.program.shown()), e);
        return status;
    }
    if !supervisor.readiness.is_pending() {
        supervisor.readiness.note_ready(true);
        supervisor.announce_ready(daemon);
    }
    let code = supervisor.run(daemon);
    supervisor.finish(daemon, code)
}

struct Supervisor {
    program: Program,
    child_pidfile: Option<Pidfile>,
    signals: nix::sys::signalfd::SignalFd,
    child: Option<Child>,
    /// The `/proc` scan a stop signal may still owe.
    sweep: child::Sweep,
    lifecycle: Lifecycle,
    readiness: Readiness,
    output: Output,
    kill_after: Duration,
    /// `--ready-timeout`, for the message when it passes.
    ready_timeout: Option<Duration>,
    /// The signals passed on to COMMAND.
    forward: Vec<i32>,
    forward_to_group: bool,
    upstream: Option<Upstream>,
    /// Whether the parent systemd was told `READY=1`.
    told_upstream: bool,
    /// Whether COMMAND's `RELOADING=1` was passed on and its `READY=1` (the reload's end) not
    /// yet: systemd waits for that one.
    reloading: bool,
}

impl Supervisor {
    /// Becomes a subreaper and routes signals to a signalfd.
    fn new(config: SupervisorConfig) -> std::io::Result<Supervisor> {
        child::become_subreaper()?;
        let output = Output::new(config.stdout, config.stderr, config.syslog);
        let forward =
            config.forward.unwrap_or_else(|| child::default_forwarded(output.has_log_files()));
        let signals = child::signalfd()?;
        child::ignore_sigpipe();
        let mut readiness = Readiness::new(config.ready, config.ready_timeout);
        if config.upstream.is_some() {
            readiness.relay_to_parent(config.relay);
        }
        let policy = Policy {
            restart: config.restart,
            delay: config.restart_delay,
            max_delay: config.restart_max_delay,
            max_restarts: config.max_restarts,
            window: config.restart_window,
            kill_after: config.kill_after,
            kill_grace: KILL_GRACE,
        };
        Ok(Supervisor {
            program: Program {
                path: config.program,
                argv: config.argv,
                env: config.env,
                null: config.null,
                terminal: config.terminal,
            },
            child_pidfile: None, // set by supervise(), which removes it if this fails
            signals,
            child: None,
            sweep: child::Sweep::default(),
            lifecycle: Lifecycle::new(policy),
            readiness,
            output,
            kill_after: config.kill_after,
            ready_timeout: config.ready_timeout,
            forward,
            forward_to_group: config.forward_to_group,
            upstream: config.upstream,
            told_upstream: false,
            reloading: false,
        })
    }

    /// The event loop: returns the exit status once the lifecycle is done.
    fn run(&mut self, daemon: &mut Daemon) -> i32 {
        let mut fds = Vec::new(); // kept across the loop: no allocation per wakeup
        loop {
            if let Some(code) = self.lifecycle.done() {
                return code;
            }
            // [signalfd, output..., readiness listener]; a negative fd is ignored by poll(2).
            fds.clear();
            fds.push(pollfd(self.signals.as_raw_fd(), libc::POLLIN));
            self.output.push_poll_fds(&mut fds);
            let listener = fds.len();
            fds.push(pollfd(self.readiness.poll_fd().unwrap_or(-1), libc::POLLIN));
            let timeout = self.next_deadline().map_or(-1, |deadline| {
                let left = deadline.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1)
            });
            // SAFETY: fds is a valid array of pollfd for its length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue; // EINTR
            }
            // Output first; the notice of COMMAND's exit reads the pipes again before it
            // (Output::catch_up): what COMMAND wrote before it exited comes first.
            self.output.handle(&fds[1..listener]);
            // What COMMAND said before it exited counts: readiness before its exit.
            if fds[listener].revents != 0 {
                self.read_readiness();
            }
            if fds[0].revents != 0 {
                self.handle_signals();
            }
            if self.readiness.is_ready() {
                self.announce_ready(daemon);
            }
            self.handle_deadlines();
        }
    }

    /// COMMAND is ready: tells the original process (a detached start) and the parent systemd
    /// (`READY=1`), each once; later calls do nothing.
    fn announce_ready(&mut self, daemon: &mut Daemon) {
        let _ = daemon.ready();
        self.tell_upstream_ready();
    }

    /// `READY=1` to the parent systemd, once: in order with the lines passed on around it.
    fn tell_upstream_ready(&mut self) {
        if !self.told_upstream {
            self.told_upstream = true;
            self.tell_upstream("READY=1");
        }
    }

    /// Sends `text` to the parent systemd, if there is one; a failure goes to the log.
    fn tell_upstream(&mut self, text: &str) {
        if let Some(upstream) = &self.upstream
            && let Err(e) = upstream.send(text)
        {
            let line =
                format!("cannot tell {} {text:?}: {}", upstream.name(), message::os_text(&e));
            self.output.log(&line);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.lifecycle.next_deadline(),
            self.sweep.next_deadline(),
            self.readiness.next_deadline(),
            self.output.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts COMMAND and names it in the child pidfile.
    fn spawn(&mut self) -> std::io::Result<()> {
        let child = self.program.spawn(&mut self.readiness, &mut self.output)?;
        if let Some(pidfile) = &self.child_pidfile
            && let Err(e) = pidfile.write_pid(child.pid)
        {
            let text = format!(
                "cannot write child pidfile {}: {}",
                pidfile.path().display(),
                message::os_text(&e)
            );
            self.output.log(&text);
        }
        self.lifecycle.started(child.started);
        self.child = Some(child);
        Ok(())
    }

    /// `SIGCHLD` reaps, `SIGTERM` stops, `SIGHUP` reopens the log files; a signal listed in
    /// `forward` goes on to COMMAND (after a reopen, for `SIGHUP`), others are ignored; the
    /// relay signal (`daemonize --send`) with a queued value passes that signal on to COMMAND
    /// (without one it is a signal like the others).
    fn handle_signals(&mut self) {
        while let Some(received) = child::read_signal(&self.signals) {
            match received.signal {
                _ if received.own => {} // raised by the supervisor's own write
                libc::SIGCHLD => self.reap_and_advance(),
                // Job control: continued (`fg`), COMMAND's group gets the terminal and goes on.
                libc::SIGCONT if self.program.terminal => self.continue_on_terminal(),
                libc::SIGTERM => self.stop("stopping on SIGTERM"),
                // `daemonize --send`: the signal travels as the queued value. A plain one
                // (`kill(2)`, no value) is a signal like the others.
                signal if signal == send::relay_signal() && received.queued.is_some() => {
                    match received.queued {
                        Some(queued) if (1..=64).contains(&queued) => self.forward(queued),
                        _ => {}
                    }
                }
                signal => {
                    if signal == libc::SIGHUP {
                        self.output.reopen_files();
                    }
                    if self.forward.contains(&signal) {
                        self.forward(signal);
                    }
                }
            }
        }
    }

    /// Hands the terminal to COMMAND's group and continues the whole group (`SIGCONT`).
    fn continue_on_terminal(&self) {
        if let Some(child) = &self.child {
            terminal::give_to(child.pid);
            child.forward(libc::SIGCONT, true);
        }
    }

    fn forward(&self, signal: i32) {
        if let Some(child) = &self.child {
            child.forward(signal, self.forward_to_group);
        }
    }

    /// Begins a stop: `SIGTERM` to COMMAND's group and every descendant, `SIGKILL` later.
    fn stop(&mut self, why: &str) {
        self.output.log(why);
        self.tell_upstream("STOPPING=1");
        // Stopping settles readiness: no deadline of its is left to wake the loop.
        self.readiness.settle(self.child.is_some());
        let action = self.lifecycle.stop(Instant::now());
        self.act(action);
    }

    /// Reaps every exited child; notes COMMAND's status, and moves on when nothing is left.
    fn reap_and_advance(&mut self) {
        // COMMAND may have said it is ready and exited at once: read that while it is still a
        // zombie, not reaped, so that its messages still count as its own.
        if self.readiness.is_pending() {
            self.read_readiness();
        }
        let (changed, none_left) = child::reap_all();
        for (pid, status) in changed {
            let is_command = self.child.as_ref().is_some_and(|c| c.pid == pid);
            match std::os::unix::process::ExitStatusExt::stopped_signal(&status) {
                Some(signal) if is_command => self.command_stopped(signal),
                Some(_) => {}
                None if is_command => self.child_exited(status),
                None => {}
            }
        }
        if none_left {
            self.sweep.all_gone();
            let actions = self.lifecycle.all_gone(Instant::now());
            self.act(actions);
        } else {
            self.sweep.children_left(self.child.is_none());
            // A descendant that forked before SIGKILL reached it left a child behind: that one
            // is killed in turn, until none is left.
            let action = self.lifecycle.children_left();
            self.act(action);
        }
    }

    /// COMMAND was stopped. On a terminal, by a terminal stop signal: as a shell's job, the
    /// supervisor takes the terminal back and stops too, so its own shell regains the terminal;
    /// it goes on once continued (the `SIGCONT` then hands the terminal back to COMMAND). As
    /// PID 1 of a pid namespace (`docker run -it`) it cannot stop, and no shell is there to
    /// take the terminal: COMMAND gets it back and goes on at once, or it would stay stopped
    /// with nobody to continue it.
    fn command_stopped(&mut self, signal: i32) {
        if self.program.terminal && terminal::is_stop_signal(signal) {
            if terminal::can_stop_self() {
                terminal::take_back();
                terminal::stop_self();
            } else {
                self.continue_on_terminal();
            }
        }
    }

    /// COMMAND exited: stop what it left behind, then restart or exit by policy.
    fn child_exited(&mut self, status: std::process::ExitStatus) {
        let child = self.child.take().expect("child_exited is called for the running child");
        self.output.catch_up(); // what COMMAND wrote comes before the notice of its exit
        self.readiness.command_exited();
        let message =
            format!("{} (pid {}) {}", self.program.name(), child.pid, child::describe(status));
        self.output.log(&message);
        if let Some(pidfile) = &self.child_pidfile {
            let _ = pidfile.clear(); // names nobody until the next start
        }
        let exit_anyway = self.readiness.is_pending();
        // Exited before it was ready: readiness is settled, as a failure.
        self.readiness.settle(false);
        let action = self.lifecycle.exited(status, exit_anyway, Instant::now());
        self.act(action);
    }

    /// Reads the readiness listener (polled only while COMMAND runs) or the relay socket
    /// (between runs too: what arrives then is nobody's, and is read only to be dropped).
    fn read_readiness(&mut self) {
        let main = match self.child.as_ref() {
            Some(child) => child.pid,
            None => {
                self.readiness.settle(false); // never poll a listener nobody reads
                0
            }
        };
        for heard in self.readiness.read(main) {
            match heard {
                Heard::Note(text) => self.output.log(&text),
                Heard::Pass(line) => {
                    self.reloading |= line.starts_with("RELOADING=1");
                    self.tell_upstream(&line);
                }
                Heard::Ready => self.tell_upstream_ready(),
                // The end of a reload: systemd leaves the reloading state on it.
                Heard::ReadyAgain if self.told_upstream && self.reloading => {
                    self.reloading = false;
                    self.tell_upstream("READY=1");
                }
                Heard::ReadyAgain => {}
            }
        }
    }

    fn handle_deadlines(&mut self) {
        let now = Instant::now();
        self.output.tick(now);
        // Once COMMAND has exited, its status is the answer, not the deadline.
        if self.readiness.expired(now) {
            self.readiness.settle(self.child.is_some());
            if self.lifecycle.is_running() {
                self.readiness.time_out();
                self.stop("not ready in time; stopping");
            }
        }
        self.sweep.due(now);
        let actions = self.lifecycle.tick(now);
        self.act(actions);
    }

    /// Carries out what the lifecycle asks for, and says so in the log.
    fn act(&mut self, actions: impl IntoIterator<Item = Action>) {
        for action in actions {
            match action {
                Action::Terminate => self.signal_tree(libc::SIGTERM),
                Action::Kill => {
                    self.output.log("still running after --kill-after: sending SIGKILL");
                    self.signal_tree(libc::SIGKILL);
                }
                Action::KillAgain => self.signal_tree(libc::SIGKILL),
                Action::StopWaiting => {
                    let left = process::descendants(std::process::id());
                    self.output.log(&format!(
                        "pids {left:?} still there {} s after SIGKILL: no longer waiting for them",
                        KILL_GRACE.as_secs_f64()
                    ));
                }
                Action::RestartIn(delay) => {
                    let what =
                        format!("restarting {} in {} s", self.program.name(), delay.as_secs_f64());
                    self.output.log(&what);
                    self.tell_upstream(&format!("STATUS={what}"));
                }
                Action::GiveUp { restarts, window } => self.output.log(&format!(
                    "giving up: {} restarted {restarts} times within {} s",
                    self.program.name(),
                    window.as_secs_f64()
                )),
                Action::Start => self.restart(),
            }
        }
    }

    /// Sends a stop signal to COMMAND's tree: its group now, the rest after a scan only if
    /// something is left ([`child::Sweep`]).
    fn signal_tree(&mut self, signal: i32) {
        self.sweep.signal(self.child.as_ref(), signal, self.kill_after);
    }

    /// Starts COMMAND again (and tells a parent systemd); a failure counts as an exit with 126
    /// or 127.
    fn restart(&mut self) {
        match self.spawn() {
            Ok(()) if self.upstream.is_some() => {
                let pid = self.child.as_ref().map_or(0, |c| c.pid);
                self.tell_upstream(&format!(
                    "STATUS=restarted {} (pid {pid})",
                    self.program.name()
                ));
            }
            Ok(()) => {}
            Err(e) => self.restart_failed(e),
        }
    }

    /// A restart could not start COMMAND: counts as an exit with 126 or 127.
    fn restart_failed(&mut self, e: std::io::Error) {
        let text = format!("cannot start {}: {}", self.program.name(), message::os_text(&e));
        self.output.log(&text);
        let code = child::exec_failure_status(e.raw_os_error());
        let actions = self.lifecycle.start_failed(code, Instant::now());
        self.act(actions);
    }

    /// Drains the pipes, removes the child pidfile, and reports a readiness timeout: to the
    /// original process, or in the foreground on stderr, exiting with the start's code for it.
    /// (A COMMAND that exited before it was ready needs no report: the original process sees
    /// the supervisor exit with COMMAND's status.)
    fn finish(mut self, daemon: &mut Daemon, mut code: i32) -> i32 {
        if self.program.terminal {
            terminal::take_back();
        }
        self.output.finish(self.kill_after);
        if self.readiness.timed_out() {
            let timed_out = std::io::Error::from_raw_os_error(libc::ETIMEDOUT);
            if !daemon.report_failure(Step::WaitReady, &timed_out) {
                let named = std::path::PathBuf::from(&self.program.argv[0]);
                let error = daemonctx::Error::os(Step::WaitReady, &named, timed_out);
                let waited = self.ready_timeout.unwrap_or_default();
                eprintln!("daemonize: {}", crate::message::start_failure(&error, &named, waited));
                code = i32::from(crate::cli::code::NOT_READY);
            }
        }
        remove_child_pidfile(self.child_pidfile.take());
        code
    }
}

/// Tells the original process that the supervisor's start failed at `step` (on `path`, if
/// any); in the foreground, where nobody waits for a report, says it on standard error instead.
fn report_failure(
    daemon: &mut Daemon,
    step: Step,
    path: Option<&std::path::Path>,
    e: std::io::Error,
) {
    if daemon.report_failure(step, &e) {
        return;
    }
    let error = match path {
        Some(path) => daemonctx::Error::os(step, path, e),
        None => daemonctx::Error::os_nopath(step, e),
    };
    eprintln!("daemonize: {}", message::chain(&error));
}

/// Removes the child pidfile, if any: emptied first (`ftruncate(2)`), as under -u the
/// directory may not let us remove it (`unlink(2)`), and then it names nobody until
/// `daemonize --stop --child-pidfile` removes it.
fn remove_child_pidfile(pidfile: Option<Pidfile>) {
    if let Some(pidfile) = pidfile {
        let _ = pidfile.clear();
        let _ = pidfile.remove();
    }
}
