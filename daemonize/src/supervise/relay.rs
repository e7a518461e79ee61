//! The output relay: COMMAND's stdout and stderr pipes, read and passed on to their sinks (a
//! log file, syslog, or nothing), and the supervisor's own messages.
//!
//! Polls each pipe for reading (`read(2)`), except while its sink holds output it could not
//! write: COMMAND then blocks in `write(2)` (back-pressure, not loss). Held output waits for
//! room on the sink's descriptor (`POLLOUT`) or, for a file that failed or a syslog socket that
//! went away, for [`Output::next_deadline`], a retry a second later. What COMMAND wrote before
//! it exited is relayed before the notice of its exit ([`Output::catch_up`]).
//!
//! Each wakeup reads a pipe once and writes what it read: a stream from COMMAND costs the
//! supervisor a wakeup per `write(2)` that finds it waiting (~4,500 per 41 MB of `yes | head`).
//! Batching was measured and left out: resting the pipes 10-100 µs after a read cut those
//! wakeups tenfold and the supervisor's CPU time by a third, but on a quiet 2-CPU VM the
//! stream then took 10-15% longer (a scheduler trace showed `yes` moved onto `head`'s CPU),
//! and what counts is the time COMMAND's output takes to arrive.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{ChildStderr, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use crate::message;
use crate::output::{LineBuffer, LogFile, SyslogConfig, SyslogWriter};

use super::restart::deadline;

/// The size asked for each relayed pipe (`F_SETPIPE_SZ`), the default pipe-max-size.
const RELAY_PIPE_SIZE: libc::c_int = 1 << 20;

/// How much one `read(2)` of a pipe takes: a quarter of [`RELAY_PIPE_SIZE`], so a full pipe
/// takes four reads, and a burst leaves at most this much resident in the supervisor.
const READ_BUFFER_SIZE: usize = 256 << 10;

/// The most reads [`Output::catch_up`] gives a pipe: as many as a full pipe takes.
const CATCH_UP_READS: usize = RELAY_PIPE_SIZE as usize / READ_BUFFER_SIZE + 1;

/// How often held output (a full log file) is tried again.
const HELD_OUTPUT_RETRY: Duration = Duration::from_secs(1);

/// How long the pipes are read after every writer is gone, for a pipe a stranger holds open.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Where one of COMMAND's output streams goes.
#[derive(Debug)]
pub enum Sink {
    /// `/dev/null`: COMMAND gets it directly, no pipe.
    Null,
    /// A file the supervisor holds and reopens on `SIGHUP`.
    File(LogFile),
    /// Syslog, one message per line.
    Syslog,
    /// For stderr: the same file as stdout (`-o F -e F`). COMMAND gets one pipe on both
    /// descriptors, as a shell's `>F 2>&1` gives one file description: every line lands whole
    /// and in the order COMMAND wrote it.
    Stdout,
}

/// COMMAND's two sinks, the pipes from COMMAND, and the syslog connection.
pub struct Output {
    stdout: Sink,
    stderr: Sink,
    syslog: Option<SyslogWriter>,
    relays: Vec<Relay>,
    /// The buffer pipes are read into, allocated at the first read and kept: zeroed once
    /// (fresh pages from `mmap(2)`), not at every read.
    buffer: Vec<u8>,
    /// When to try writing held output again (a log file was full).
    retry_at: Option<Instant>,
    /// The read end of the one pipe COMMAND got on both stdout and stderr, until attached.
    shared_pipe: Option<OwnedFd>,
}

/// What one read of a pipe did.
#[derive(PartialEq)]
enum Pumped {
    /// Filled the buffer: the pipe may hold more.
    Full,
    /// Took all the pipe held, or found nothing (`EAGAIN`).
    Emptied,
    /// End of file: every writer is gone.
    End,
}

/// A pipe from COMMAND being read.
struct Relay {
    pipe: OwnedFd,
    stderr: bool,
    lines: LineBuffer,
}

impl Output {
    /// The relay for these sinks.
    pub fn new(stdout: Sink, stderr: Sink, syslog: Option<SyslogWriter>) -> Output {
        Output {
            stdout,
            stderr,
            syslog,
            relays: Vec::new(),
            buffer: Vec::new(),
            retry_at: None,
            shared_pipe: None,
        }
    }

    /// What COMMAND gets as stdout and stderr: a pipe each, or a copy of `null` for a null
    /// sink, or one pipe on both (`pipe2(2)`, `dup(2)`) when stderr goes where stdout goes.
    ///
    /// # Errors
    /// The OS error of `pipe2(2)` or `dup(2)`.
    pub fn stdio(&mut self, null: &OwnedFd) -> io::Result<(Stdio, Stdio)> {
        if !matches!(self.stderr, Sink::Stdout) {
            return Ok((
                pipe_unless_null(&self.stdout, null)?,
                pipe_unless_null(&self.stderr, null)?,
            ));
        }
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let second = write.try_clone()?;
        self.shared_pipe = Some(read);
        Ok((Stdio::from(write), Stdio::from(second)))
    }

    /// A COMMAND started as `pid`: reads its pipes from now on.
    pub fn attach(&mut self, pid: u32, out: Option<ChildStdout>, err: Option<ChildStderr>) {
        if let Some(shared) = self.shared_pipe.take() {
            self.relays.push(Relay::new(shared, false));
        }
        if let Some(out) = out {
            self.relays.push(Relay::new(OwnedFd::from(out), false));
        }
        if let Some(err) = err {
            self.relays.push(Relay::new(OwnedFd::from(err), true));
        }
        if let Some(syslog) = &mut self.syslog {
            syslog.set_pid(pid);
        }
    }

    /// Adds the descriptors to poll to `fds`: the pipes to read (`POLLIN`; -1 for a pipe not
    /// read while its sink holds output) and the sinks waiting for room (`POLLOUT`). The
    /// caller's vector, kept across the loop: no allocation per wakeup.
    pub fn push_poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        fds.extend(self.relays.iter().map(|r| match self.is_holding(r.stderr) {
            true => pollfd(-1, libc::POLLIN),
            false => pollfd(r.pipe.as_raw_fd(), libc::POLLIN),
        }));
        fds.extend(self.waiting_for_room().map(|fd| pollfd(fd.unwrap_or(-1), libc::POLLOUT)));
    }

    /// Handles what `poll(2)` said about [`Output::push_poll_fds`].
    pub fn handle(&mut self, polled: &[libc::pollfd]) {
        let (pipes, room) = polled.split_at(self.relays.len());
        if room.iter().any(|p| p.revents != 0) {
            self.retry_held_output();
        }
        self.read_pipes(pipes);
    }

    /// When held output is tried again, if any is held.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Retries held output when its time has come; arms the retry while output is held.
    pub fn tick(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_held_output();
        }
        self.arm_retry();
    }

    /// Whether stdout or stderr goes to a file named by `-o` or `-e` (one that `SIGHUP`
    /// reopens).
    pub fn has_log_files(&self) -> bool {
        [&self.stdout, &self.stderr]
            .iter()
            .any(|sink| matches!(sink, Sink::File(file) if file.reopens()))
    }

    /// `SIGHUP`: reopens the log files (`open(2)`). A failure (the directory is not writable
    /// by the supervisor's user, and no file was created for it there) is written where an
    /// operator looks: into the old file itself, which output keeps going to, to where the
    /// supervisor's messages go, and to syslog.
    pub fn reopen_files(&mut self) {
        let stderr_is_stdout = matches!(self.stderr, Sink::Stdout);
        let mut failures = Vec::new();
        for (is_stderr, sink) in [(false, &mut self.stdout), (true, &mut self.stderr)] {
            if let Sink::File(file) = sink
                && let Err(e) = file.reopen()
            {
                let text = format!(
                    "cannot reopen {}: {}; still writing to the file it was",
                    file.path().display(),
                    message::os_text(&e)
                );
                let _ = file.write_line(&format!("daemonize: {text}"));
                // Already where the supervisor's messages go when that file is stderr's.
                failures.push((text, is_stderr || stderr_is_stdout));
            }
        }
        let stderr_is_syslog = matches!(self.stderr, Sink::Syslog);
        for (failure, logged) in failures {
            if !logged {
                self.log(&failure); // to syslog itself when stderr goes there
            }
            if !stderr_is_syslog {
                self.tell_syslog(&failure);
            }
        }
    }

    /// A message for syslog whatever the sinks are: through the `--syslog` connection, else
    /// through a connection to `/dev/log` made for it (none inside a chroot without one).
    fn tell_syslog(&mut self, text: &str) {
        if let Some(syslog) = &mut self.syslog {
            syslog.send_own(syslog::Severity::LOG_ERR, text);
            return;
        }
        let config = SyslogConfig {
            facility: syslog::Facility::LOG_DAEMON,
            tag: "daemonize".into(),
            socket: None,
            stdout_severity: syslog::Severity::LOG_INFO,
            stderr_severity: syslog::Severity::LOG_ERR,
        };
        if let Ok(mut writer) = SyslogWriter::connect(config) {
            writer.set_pid(std::process::id());
            writer.send_own(syslog::Severity::LOG_ERR, text);
        }
    }

    /// The supervisor's own messages go where COMMAND's stderr goes.
    pub fn log(&mut self, text: &str) {
        let sink = match &mut self.stderr {
            Sink::Stdout => &mut self.stdout,
            stderr => stderr,
        };
        match sink {
            Sink::File(file) => {
                let _ = file.write_line(&format!("daemonize: {text}"));
            }
            Sink::Syslog => {
                if let Some(syslog) = &mut self.syslog {
                    syslog.send_own(syslog::Severity::LOG_NOTICE, text);
                }
            }
            Sink::Null | Sink::Stdout => {}
        }
    }

    /// Before exit: reads the pipes to their end, then gives held output a bounded last chance
    /// (`patience`, at least 5 s).
    pub fn finish(&mut self, patience: Duration) {
        self.drain_pipes();
        self.flush_before_exit(patience);
    }

    /// Reads every pipe `polled` (one entry per pipe, in order) says is readable once and
    /// passes the bytes on; closed pipes are dropped.
    fn read_pipes(&mut self, polled: &[libc::pollfd]) {
        let mut index = 0;
        self.retain_relays(|output, relay| {
            let ready = polled.get(index).is_some_and(|p| p.revents != 0);
            index += 1;
            !ready || output.pump(relay) != Pumped::End
        });
    }

    /// Reads what the pipes hold now and passes it on: before the notice of COMMAND's exit,
    /// so that what COMMAND wrote comes first (one read per wakeup leaves a fuller pipe half
    /// read). A full pipe takes a few reads ([`CATCH_UP_READS`], bounded should something
    /// write on); a pipe whose sink holds output is left as it is (back-pressure).
    pub fn catch_up(&mut self) {
        self.retain_relays(|output, relay| {
            for _ in 0..CATCH_UP_READS {
                if output.is_holding(relay.stderr) {
                    break;
                }
                match output.pump(relay) {
                    Pumped::Full => {}
                    Pumped::Emptied => break,
                    Pumped::End => return false,
                }
            }
            true
        });
    }

    /// Keeps the pipes `keep` says to keep; `keep` gets the output to pump with, whose list of
    /// pipes is set aside while it runs (and put back without allocating: none is added then).
    fn retain_relays(&mut self, mut keep: impl FnMut(&mut Output, &mut Relay) -> bool) {
        let mut relays = std::mem::take(&mut self.relays);
        relays.retain_mut(|relay| keep(self, relay));
        relays.append(&mut self.relays);
        self.relays = relays;
    }

    /// Moves what the pipe holds, up to a buffer, to the stream's sink.
    fn pump(&mut self, relay: &mut Relay) -> Pumped {
        let mut buf = std::mem::take(&mut self.buffer);
        if buf.is_empty() {
            buf = vec![0; READ_BUFFER_SIZE];
        }
        let pumped = match nix::unistd::read(&relay.pipe, &mut buf) {
            Ok(0) => {
                self.deliver_tail(relay);
                Pumped::End
            }
            Ok(n) => {
                self.deliver(relay, &buf[..n]);
                if n == buf.len() { Pumped::Full } else { Pumped::Emptied }
            }
            Err(nix::errno::Errno::EPIPE) => Pumped::End,
            Err(_) => Pumped::Emptied, // EAGAIN: nothing there after all
        };
        self.buffer = buf;
        pumped
    }

    fn deliver(&mut self, relay: &mut Relay, bytes: &[u8]) {
        let sink = if relay.stderr { &mut self.stderr } else { &mut self.stdout };
        match sink {
            Sink::File(file) => {
                let was_holding = file.is_holding();
                // A full pipe (EAGAIN) is back-pressure, waited for with POLLOUT, not news.
                if let (Err(e), false) = (file.write(bytes), was_holding)
                    && e.kind() != io::ErrorKind::WouldBlock
                {
                    let path = file.path().display().to_string();
                    self.retry_at = Some(Instant::now() + HELD_OUTPUT_RETRY);
                    let e = message::os_text(&e);
                    self.log(&format!("cannot write {path}: {e}; holding output until it can"));
                }
            }
            Sink::Syslog => {
                if let Some(syslog) = &mut self.syslog {
                    let severity = syslog.severity(relay.stderr);
                    relay.lines.push(bytes, |line| {
                        syslog.send_line(severity, line);
                    });
                }
            }
            Sink::Null | Sink::Stdout => {}
        }
    }

    fn deliver_tail(&mut self, relay: &mut Relay) {
        if let (Sink::Syslog, Some(syslog)) =
            (if relay.stderr { &self.stderr } else { &self.stdout }, &mut self.syslog)
        {
            let severity = syslog.severity(relay.stderr);
            relay.lines.finish(|line| {
                syslog.send_line(severity, line);
            });
        }
    }

    /// Reads the pipes to their end. Every writer is dead by now, so end of file comes at once;
    /// a pipe some stranger still holds open is given up after a bounded wait.
    fn drain_pipes(&mut self) {
        let deadline = Instant::now() + DRAIN_LIMIT;
        while !self.relays.is_empty() && Instant::now() < deadline {
            let mut fds: Vec<libc::pollfd> =
                self.relays.iter().map(|r| pollfd(r.pipe.as_raw_fd(), libc::POLLIN)).collect();
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
            // SAFETY: fds is a valid array of pollfd for its length.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left.max(1)) };
            self.read_pipes(&fds);
        }
        for mut relay in std::mem::take(&mut self.relays) {
            self.deliver_tail(&mut relay);
        }
    }

    /// Gives held output a bounded last chance: syslog gets its last lines when it takes them,
    /// a full log file when it has room.
    fn flush_before_exit(&mut self, patience: Duration) {
        let deadline = deadline(Instant::now(), patience.max(Duration::from_secs(5)));
        loop {
            self.retry_held_output();
            let holding = self.is_holding(false) || self.is_holding(true);
            let left = deadline.saturating_duration_since(Instant::now());
            if !holding || left.is_zero() {
                return;
            }
            let mut room =
                self.waiting_for_room().map(|fd| pollfd(fd.unwrap_or(-1), libc::POLLOUT));
            let wait = left.min(HELD_OUTPUT_RETRY).as_millis() as i32;
            // SAFETY: a valid array of pollfds (a negative fd is ignored by poll).
            unsafe { libc::poll(room.as_mut_ptr(), room.len() as libc::nfds_t, wait.max(1)) };
        }
    }

    /// The descriptors that held output waits on for room (`POLLOUT`): the syslog socket,
    /// the stdout and stderr files (a pipe or FIFO whose reader is slow).
    fn waiting_for_room(&self) -> [Option<RawFd>; 3] {
        let file = |sink: &Sink| match sink {
            Sink::File(file) => file.poll_fd(),
            _ => None,
        };
        let syslog = self.syslog.as_ref().filter(|s| s.is_holding());
        [syslog.and_then(SyslogWriter::poll_fd), file(&self.stdout), file(&self.stderr)]
    }

    /// Whether the sink of COMMAND's stdout (`false`) or stderr (`true`) holds output.
    fn is_holding(&self, stderr: bool) -> bool {
        match if stderr { &self.stderr } else { &self.stdout } {
            Sink::File(file) => file.is_holding(),
            Sink::Syslog => self.syslog.as_ref().is_some_and(SyslogWriter::is_holding),
            Sink::Stdout => self.is_holding(false),
            Sink::Null => false,
        }
    }

    /// Tries again to write held output; while some is still held, tries again in a second.
    fn retry_held_output(&mut self) {
        let mut recovered = Vec::new();
        for sink in [&mut self.stdout, &mut self.stderr] {
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
        if let Some(syslog) = &mut self.syslog {
            let _ = syslog.flush();
        }
        self.retry_at = None;
        self.arm_retry();
        for path in recovered {
            self.log(&format!("writing {path} again"));
        }
    }

    /// Files, and a syslog socket that went away, are tried again by timer; a full syslog
    /// socket wakes the loop by itself (`POLLOUT`).
    fn arm_retry(&mut self) {
        let syslog_lost =
            self.syslog.as_ref().is_some_and(|s| s.is_holding() && s.poll_fd().is_none());
        if self.retry_at.is_none() && (syslog_lost || self.files_holding()) {
            self.retry_at = Some(Instant::now() + HELD_OUTPUT_RETRY);
        }
    }

    /// Whether a file holds output it failed to write (not one waiting for room: `POLLOUT`
    /// says when that comes).
    fn files_holding(&self) -> bool {
        [&self.stdout, &self.stderr].iter().any(
            |sink| matches!(sink, Sink::File(file) if file.is_holding() && file.poll_fd().is_none()),
        )
    }
}

impl Relay {
    fn new(pipe: OwnedFd, stderr: bool) -> Relay {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let _ = fcntl(&pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        // A larger pipe lets a fast COMMAND write ahead while the relay writes, and the relay
        // read more per read(2) (up to its 256 KiB buffer): fewer wakeups of both. Past the
        // limit (/proc/sys/fs/pipe-max-size, or the user's pipe quota) it stays as it is.
        let _ = fcntl(&pipe, FcntlArg::F_SETPIPE_SZ(RELAY_PIPE_SIZE));
        Relay { pipe, stderr, lines: LineBuffer::default() }
    }
}

/// A pipe for a stream the supervisor relays; a copy of `null` (`dup(2)`) for one that goes
/// nowhere.
fn pipe_unless_null(sink: &Sink, null: &OwnedFd) -> io::Result<Stdio> {
    match sink {
        Sink::Null => Ok(Stdio::from(null.try_clone()?)),
        _ => Ok(Stdio::piped()),
    }
}

/// A `pollfd` for `fd` (ignored by `poll(2)` when negative) waiting for `events`.
pub fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}
