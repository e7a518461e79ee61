//! Readiness under the supervisor (`--wait-ready`): the listener for the first start, the
//! descriptor COMMAND gets, and the ready deadline.
//!
//! Polls the readiness listener (a notify socket or a ready pipe's read end) while readiness is
//! unsettled; its deadline is the ready timeout. Once settled (COMMAND said it is ready, exited
//! first, or ran out of time) the listener is no longer polled: the notify socket drops all it
//! gets but stays bound for the supervisor's life (the first COMMAND keeps `NOTIFY_SOCKET`, and
//! nobody else may bind that name: [`ReadyListener::stop_listening`]), restarted COMMANDs get
//! no `NOTIFY_SOCKET` (`sd_notify(3)` then does nothing), and with `fd:N` they get `/dev/null`
//! on N (a copy of the supervisor's, `dup3(2)`), which takes their newline and ignores it.
//! Nothing a stranger sends can then reach or wake the supervisor.

#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::notify::{Notice, ReadyListener, copy_if_free};

use super::restart::deadline;

/// Where readiness stands.
pub struct Readiness {
    /// The listener, while readiness is not settled.
    listener: Option<ReadyListener>,
    ready_fd: Option<ReadyFd>,
    /// `NOTIFY_SOCKET`, for the first start only.
    notify_variable: Option<OsString>,
    /// A settled ready pipe, kept open (not polled) until the COMMAND it was given exits.
    spent_ready_pipe: Option<ReadyListener>,
    /// A settled notify socket, dropping all it gets, kept bound (not polled) for good.
    silenced_notify_socket: Option<ReadyListener>,
    deadline: Option<Instant>,
    is_ready: bool,
    timed_out: bool,
    /// Under a parent systemd ([`super::upstream`]): the notify socket COMMAND keeps using once
    /// readiness is settled (the settled `--wait-ready notify` listener, or one made only for
    /// this), read for what to pass on.
    relay: Option<ReadyListener>,
    /// Whether a settled notify listener becomes the relay socket.
    relaying: bool,
}

/// What COMMAND said through the listener.
pub enum Heard {
    /// `READY=1` or a newline.
    Ready,
    /// A line for the supervisor's log.
    Note(String),
    /// A line for a parent systemd: `STATUS=`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`,
    /// `EXTEND_TIMEOUT_USEC=`.
    Pass(String),
    /// `READY=1` once readiness is settled: old news, unless it ends a reload
    /// (`RELOADING=1` ... `READY=1`, `sd_notify(3)`).
    ReadyAgain,
}

impl Readiness {
    /// Readiness for a first start that waits on `listener` for at most `timeout`, or
    /// (without a listener) is ready once COMMAND runs.
    pub fn new(mut listener: Option<ReadyListener>, timeout: Option<Duration>) -> Readiness {
        let ready_fd = listener
            .as_mut()
            .and_then(ReadyListener::take_write_end)
            .map(|(write, target)| ReadyFd { source: Some(write), target });
        let notify_variable =
            listener.as_ref().and_then(ReadyListener::environment).map(|(k, _)| k);
        let deadline = match (&listener, timeout) {
            (Some(_), Some(timeout)) => Some(deadline(Instant::now(), timeout)),
            _ => None,
        };
        Readiness {
            listener,
            ready_fd,
            notify_variable,
            spent_ready_pipe: None,
            silenced_notify_socket: None,
            deadline,
            is_ready: false,
            timed_out: false,
            relay: None,
            relaying: false,
        }
    }

    /// Under a parent systemd: COMMAND's notify socket stays open for good, and restarted
    /// COMMANDs get it too: the `--wait-ready notify` listener once settled, or `socket` (a
    /// notify socket whose address COMMAND's `NOTIFY_SOCKET` names) from the start.
    pub fn relay_to_parent(&mut self, socket: Option<ReadyListener>) {
        self.relaying = true;
        self.relay = socket;
    }

    /// The descriptor to poll for readability: the listener while readiness is unsettled, the
    /// relay socket after.
    pub fn poll_fd(&self) -> Option<RawFd> {
        self.listener.as_ref().or(self.relay.as_ref()).and_then(ReadyListener::poll_fd)
    }

    /// The ready timeout, while readiness is unsettled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether readiness is still to be settled.
    pub fn is_pending(&self) -> bool {
        self.listener.is_some()
    }

    /// Whether COMMAND said it is ready (or needed not say it).
    pub fn is_ready(&self) -> bool {
        self.is_ready
    }

    /// Whether readiness ran out of time.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Before a start: removes `NOTIFY_SOCKET` from COMMAND's environment `env` once settled
    /// (unless the socket relays to a parent systemd); returns the ready descriptor to put in
    /// place in the child (see [`inherit_ready_fd`]); after the first start, a copy of `null`.
    pub fn prepare_start(
        &mut self,
        env: &mut Vec<(OsString, OsString)>,
        null: &OwnedFd,
    ) -> io::Result<Option<(RawFd, RawFd)>> {
        if let (None, None, Some(name)) = (&self.listener, &self.relay, &self.notify_variable) {
            env.retain(|(k, _)| k != name); // readiness is settled: the socket no longer listens
        }
        self.ready_fd.as_mut().map(|fd| fd.prepare(null)).transpose()
    }

    /// After a start (or a failed one): the supervisor's copy of the ready descriptor is
    /// closed, so that the read end sees end of file once COMMAND closes its own.
    pub fn after_start(&mut self) {
        if let Some(ready_fd) = &mut self.ready_fd {
            ready_fd.source = None;
        }
    }

    /// COMMAND is ready. Readiness is settled: the listener is silenced, before the original
    /// process is told.
    pub fn note_ready(&mut self, command_runs: bool) {
        self.is_ready = true;
        self.settle(command_runs);
    }

    /// Ends the wait for good (see the module docs): from now on nothing the listener receives
    /// matters, and nothing is read or polled there. The notify socket stays bound, dropping
    /// all it gets (closed if it cannot be made to: its name is then free, but no queue fills
    /// up and blocks COMMAND). A ready pipe's read end is kept, unpolled, while the COMMAND
    /// holding its write end runs: a second newline must not kill it with `SIGPIPE`.
    pub fn settle(&mut self, command_runs: bool) {
        match self.listener.take() {
            // Under a parent systemd the socket goes on listening, for what to pass on.
            Some(socket) if self.relaying && socket.notify_socket_fd().is_some() => {
                self.relay = Some(socket);
            }
            Some(mut socket) if socket.notify_socket_fd().is_some() => {
                let silenced = socket.stop_listening().is_ok();
                self.silenced_notify_socket = silenced.then_some(socket);
            }
            Some(pipe) if command_runs => self.spent_ready_pipe = Some(pipe),
            _ => {}
        }
        self.deadline = None;
    }

    /// COMMAND exited: the spent ready pipe goes with it.
    pub fn command_exited(&mut self) {
        self.spent_ready_pipe = None;
    }

    /// Reads what the listener (or the relay socket) has: messages from outside `main`'s tree
    /// are dropped (all of them with `main` 0: no COMMAND runs). Settles readiness on
    /// `READY=1`; a `READY=1` after that is old news.
    pub fn read(&mut self, main: u32) -> Vec<Heard> {
        let pending = self.listener.is_some();
        let Some(listener) = self.listener.as_mut().or(self.relay.as_mut()) else {
            return Vec::new();
        };
        let mut heard = Vec::new();
        let mut ready = false;
        for notice in listener.read_notices(main) {
            match notice {
                // In order with the rest: a parent systemd hears READY=1 where COMMAND said it.
                Notice::Ready if pending && !ready => {
                    ready = true;
                    heard.push(Heard::Ready);
                }
                Notice::Ready => heard.push(Heard::ReadyAgain),
                Notice::Status(text) => {
                    heard.push(Heard::Note(format!("status: {text}")));
                    heard.push(Heard::Pass(format!("STATUS={text}")));
                }
                Notice::MainPid(pid) => {
                    heard.push(Heard::Note(format!("ignoring MAINPID={pid}: supervised")))
                }
                Notice::Pass(line) => heard.push(Heard::Pass(line)),
            }
        }
        if ready {
            self.note_ready(true);
        }
        heard
    }

    /// Whether the ready deadline has passed at `now` (it is gone once settled).
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Readiness ran out of time while COMMAND ran: settled, as a timeout.
    pub fn time_out(&mut self) {
        self.settle(true);
        self.timed_out = true;
    }
}

/// The descriptor COMMAND gets on `--wait-ready fd:N`: the ready pipe's write end at the first
/// start; at a restart (readiness is settled by then) `/dev/null`, which takes the newline a
/// restarted COMMAND writes again, and ignores it.
struct ReadyFd {
    /// What to put on `target` at the next start; `None` once the write end was handed out.
    source: Option<OwnedFd>,
    target: RawFd,
}

impl ReadyFd {
    /// Before a start: the descriptor to hand over (the ready pipe, or a copy of `null`) and its
    /// target. The source is put on the target number when that is free ([`copy_if_free`]);
    /// either way the number is taken in the supervisor while std spawns, so none of std's own
    /// descriptors for the spawn (its pipes, its exec-error channel) can get it and then be
    /// replaced in the child.
    fn prepare(&mut self, null: &OwnedFd) -> io::Result<(RawFd, RawFd)> {
        let source = match self.source.take() {
            Some(source) => source,
            None => null.try_clone()?,
        };
        let source = match source.as_raw_fd() == self.target {
            true => source,
            // On the target, the copy replaces the source, which its drop closes.
            false => copy_if_free(&source, self.target)?.unwrap_or(source),
        };
        let raw = source.as_raw_fd();
        self.source = Some(source);
        Ok((raw, self.target))
    }
}

/// In COMMAND, between fork and exec: makes `target` the ready descriptor and inheritable.
/// Async-signal-safe (`fcntl(2)` or `dup2(2)`, which also clears close-on-exec).
///
/// # Safety
/// No live owner of `target` (an `OwnedFd`, `File` or socket) is used or dropped after this in
/// the process: it is a child about to `execve(2)` (a `pre_exec` hook), where `dup2(2)` may
/// replace whatever `target` held.
pub unsafe fn inherit_ready_fd(source: RawFd, target: RawFd) -> io::Result<()> {
    let rc = if source == target {
        // SAFETY: F_SETFD on a descriptor of this process; no memory is touched.
        unsafe { libc::fcntl(target, libc::F_SETFD, 0) }
    } else {
        // SAFETY: dup2 on descriptors of this process; whatever target was (a close-on-exec
        // descriptor of the supervisor's) is replaced, and the caller promised that no owner of
        // it runs again here (the child execs or exits).
        unsafe { libc::dup2(source, target) }
    };
    if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
