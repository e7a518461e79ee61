//! The report channel: how the daemon tells the original process "ready" or "failed at step S".
//!
//! A `socketpair(2)` of `SOCK_SEQPACKET` with `SOCK_CLOEXEC`: like a pipe, but records keep their
//! boundaries and `send(2)` takes `MSG_NOSIGNAL`, so a daemon whose original process was killed
//! gets `EPIPE` and cleans up, instead of dying of `SIGPIPE` with its pidfile left behind.
//! The daemon first announces itself with `Forked(pid)`, then sends `Ready(pid)` or
//! `Failed(step, errno)`; the intermediate child sends only `Failed`, if its `setsid(2)` or
//! `fork(2)` fails. Each of these records is 8 bytes, sent with one `send(2)`, so the daemon
//! needs no allocation to report. In exec mode the daemon sends `Executing(pid)` right before
//! `execve(2)`: end of file after it means the exec succeeded and closed the close-on-exec
//! end; end of file without a final record means the daemon died.
//!
//! A record: byte 0 the tag (1 `Forked`, 2 `Ready`, 3 `Failed`, 4 `Executing`), byte 1 the
//! [`Step`] of a failure, bytes 2 and 3 zero, bytes 4 to 7 the pid or the errno (little-endian).
//!
//! The one longer record is the daemon's own failure ([`crate::Daemon::fail`]), sent after the
//! setup from ordinary Rust code: tag 5, bytes 1 to 3 zero, bytes 4 to 7 the errno (0 for
//! none), then the message, a NUL, and the error's text; at most [`MAX_RECORD`] bytes in all
//! (a [`DaemonFailure`]; `SOCK_SEQPACKET` delivers it whole).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Step};

const RECORD_LEN: usize = 8;

/// The longest record: the daemon's own failure, header and text. Longer text is cut.
pub(crate) const MAX_RECORD: usize = 4096;

const TAG_FORKED: u8 = 1;
const TAG_READY: u8 = 2;
const TAG_FAILED: u8 = 3;
const TAG_EXECUTING: u8 = 4;
const TAG_DAEMON_FAILED: u8 = 5;

/// One message over the report pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// The daemon, whose pid this is, has forked and starts its setup.
    Forked(u32),
    /// The daemon (this pid) is set up and calls `execve(2)` next: end of file from now on
    /// means the exec succeeded (the write end is close-on-exec).
    Executing(u32),
    /// The daemon (this pid) is set up and ready.
    Ready(u32),
    /// The daemon failed at `step` with this errno.
    Failed(Step, i32),
}

impl Record {
    fn encode(self) -> [u8; RECORD_LEN] {
        let (tag, step, value) = match self {
            Record::Forked(pid) => (TAG_FORKED, 0, pid as i32),
            Record::Ready(pid) => (TAG_READY, 0, pid as i32),
            Record::Executing(pid) => (TAG_EXECUTING, 0, pid as i32),
            Record::Failed(step, errno) => (TAG_FAILED, step as u8, errno),
        };
        let v = value.to_le_bytes();
        [tag, step, 0, 0, v[0], v[1], v[2], v[3]]
    }

    fn decode(bytes: [u8; RECORD_LEN]) -> Option<Record> {
        let value = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        match bytes[0] {
            TAG_FORKED => Some(Record::Forked(value as u32)),
            TAG_READY => Some(Record::Ready(value as u32)),
            TAG_EXECUTING => Some(Record::Executing(value as u32)),
            TAG_FAILED => Some(Record::Failed(Step::from_byte(bytes[1])?, value)),
            _ => None,
        }
    }
}

/// The daemon's own reason for giving up before it was ready ([`crate::Daemon::fail`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DaemonFailure {
    /// What the daemon could not do: `cannot bind 127.0.0.1:7201`.
    pub message: String,
    /// The OS error number of its error, 0 when it had none.
    pub errno: i32,
    /// Its error's text (with its sources): used when there is no errno.
    pub detail: String,
}

impl DaemonFailure {
    /// `[5, 0, 0, 0, errno (4 bytes LE), message, NUL, detail]`, at most [`MAX_RECORD`] bytes:
    /// the message is cut to half the room for text, the detail to the rest.
    fn encode(&self) -> Vec<u8> {
        let room = MAX_RECORD - RECORD_LEN - 1;
        let mut bytes = vec![TAG_DAEMON_FAILED, 0, 0, 0];
        bytes.extend_from_slice(&self.errno.to_le_bytes());
        bytes.extend(self.message.bytes().filter(|b| *b != 0).take(room / 2));
        bytes.push(0);
        bytes.extend_from_slice(self.detail.as_bytes());
        bytes.truncate(MAX_RECORD);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<DaemonFailure> {
        let errno = i32::from_le_bytes(bytes.get(4..RECORD_LEN)?.try_into().ok()?);
        let text = &bytes[RECORD_LEN..];
        let (message, detail) = match text.iter().position(|b| *b == 0) {
            Some(nul) => (&text[..nul], &text[nul + 1..]),
            None => (text, &[][..]),
        };
        let message = String::from_utf8_lossy(message).into_owned();
        let detail = String::from_utf8_lossy(detail).into_owned();
        Some(DaemonFailure { message, errno, detail })
    }

    /// The error as the original process shows it: the OS error when there is one and the
    /// daemon's text says no more than it, else the text.
    pub(crate) fn source(&self) -> io::Error {
        let os = io::Error::from_raw_os_error(self.errno);
        match self.errno {
            0 => io::Error::other(self.detail.clone()),
            _ if self.detail.is_empty() || self.detail == os.to_string() => os,
            _ => io::Error::new(os.kind(), self.detail.clone()),
        }
    }
}

/// What one read of the channel carried.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    Record(Record),
    DaemonFailed(DaemonFailure),
}

/// Creates the report channel: `socketpair(2)`, `SOCK_SEQPACKET | SOCK_CLOEXEC`.
/// Returns (read end, write end).
pub(crate) fn report_pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::os_nopath(Step::Pipe, e.into()))
}

/// Sends one record with one `send(2)` (`MSG_NOSIGNAL`). Async-signal-safe; returns the errno
/// on failure (`EPIPE` when the original process is gone).
pub(crate) fn send(fd: BorrowedFd<'_>, record: Record) -> Result<(), i32> {
    send_whole(fd, &record.encode())
}

/// Sends the daemon's own failure as one record, with one `send(2)` (`MSG_NOSIGNAL`). Not for
/// the child between `fork(2)` and `execve(2)`: it allocates. The errno on failure.
pub(crate) fn send_daemon_failure(fd: BorrowedFd<'_>, failure: &DaemonFailure) -> Result<(), i32> {
    send_whole(fd, &failure.encode())
}

/// `send(2)` of `bytes` as one record (`MSG_NOSIGNAL`), again after `EINTR`; `EIO` if only
/// part went. Async-signal-safe.
fn send_whole(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<(), i32> {
    use nix::sys::socket::MsgFlags;
    loop {
        match nix::sys::socket::send(fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(libc::EIO),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno as i32),
        }
    }
}

/// What the original process learned from the report pipe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The daemon reported ready.
    Ready(u32),
    /// A step failed in the intermediate child or the daemon.
    Failed { step: Step, errno: i32, daemon: Option<u32> },
    /// The daemon gave up by itself ([`crate::Daemon::fail`]).
    DaemonFailed { failure: DaemonFailure, daemon: Option<u32> },
    /// The daemon announced its `execve(2)`, then every write end closed: the exec succeeded.
    Executed(u32),
    /// Every write end closed without a final record: the daemon died.
    Closed { daemon: Option<u32> },
    /// The deadline passed first.
    TimedOut { daemon: Option<u32> },
}

/// Reads records until a final one, end of file, or `timeout`: `poll(2)`, `read(2)`.
pub(crate) fn await_report(
    read_end: &OwnedFd,
    timeout: Option<Duration>,
) -> Result<Outcome, Error> {
    // A timeout past what an Instant holds is no deadline at all.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut daemon = None;
    let mut executing = false;
    loop {
        if !wait_readable(read_end.as_fd(), deadline)? {
            return Ok(Outcome::TimedOut { daemon });
        }
        match read_record(read_end.as_fd())? {
            None => match (executing, daemon) {
                (true, Some(pid)) => return Ok(Outcome::Executed(pid)),
                _ => return Ok(Outcome::Closed { daemon }),
            },
            Some(Received::Record(record)) => match record {
                Record::Forked(pid) => daemon = Some(pid),
                Record::Executing(pid) => (daemon, executing) = (Some(pid), true),
                Record::Ready(pid) => return Ok(Outcome::Ready(pid)),
                Record::Failed(step, errno) => return Ok(Outcome::Failed { step, errno, daemon }),
            },
            Some(Received::DaemonFailed(failure)) => {
                return Ok(Outcome::DaemonFailed { failure, daemon });
            }
        }
    }
}

/// Waits up to `timeout` for every write end to close (end of file), reading and dropping
/// anything still sent: `poll(2)`, `read(2)`. Gives up quietly at the deadline or on an error.
pub(crate) fn await_close(read_end: &OwnedFd, timeout: Duration) {
    let deadline = Some(Instant::now() + timeout);
    while let Ok(true) = wait_readable(read_end.as_fd(), deadline) {
        if !matches!(read_record(read_end.as_fd()), Ok(Some(_))) {
            return;
        }
    }
}

/// `poll(2)` for input until `deadline`; false when it passed.
fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<bool, Error> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], timeout) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::os_nopath(Step::Report, e.into())),
        }
    }
}

/// Reads one whole record with one `read(2)` (a `SOCK_SEQPACKET` record arrives whole, and a
/// buffer of [`MAX_RECORD`] bytes holds the longest); `None` at end of file.
fn read_record(fd: BorrowedFd<'_>) -> Result<Option<Received>, Error> {
    let mut bytes = [0u8; MAX_RECORD];
    loop {
        match nix::unistd::read(fd, &mut bytes) {
            Ok(0) => return Ok(None),
            Ok(n) => return decode(&bytes[..n]).map(Some).ok_or_else(truncated),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::os_nopath(Step::Report, e.into())),
        }
    }
}

/// Decodes one record as [`read_record`] received it.
fn decode(bytes: &[u8]) -> Option<Received> {
    match bytes.first() {
        Some(&TAG_DAEMON_FAILED) => DaemonFailure::decode(bytes).map(Received::DaemonFailed),
        _ => Record::decode(bytes.try_into().ok()?).map(Received::Record),
    }
}

fn truncated() -> Error {
    Error::os_nopath(Step::Report, io::Error::new(io::ErrorKind::InvalidData, "malformed report"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for record in
            [Record::Forked(1), Record::Ready(4_194_304), Record::Failed(Step::Chdir, libc::ENOENT)]
        {
            assert_eq!(Record::decode(record.encode()), Some(record));
        }
        assert_eq!(Record::decode([9, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn await_report_reads_in_order_and_sees_eof() {
        let (read_end, write_end) = report_pipe().unwrap();
        send(write_end.as_fd(), Record::Forked(42)).unwrap();
        send(write_end.as_fd(), Record::Failed(Step::SetUid, libc::EPERM)).unwrap();
        let outcome = await_report(&read_end, None).unwrap();
        assert_eq!(
            outcome,
            Outcome::Failed { step: Step::SetUid, errno: libc::EPERM, daemon: Some(42) }
        );
        send(write_end.as_fd(), Record::Forked(43)).unwrap();
        drop(write_end);
        assert_eq!(await_report(&read_end, None).unwrap(), Outcome::Closed { daemon: Some(43) });
    }

    #[test]
    fn end_of_file_is_an_exec_only_after_executing() {
        let (read_end, write_end) = report_pipe().unwrap();
        send(write_end.as_fd(), Record::Forked(42)).unwrap();
        send(write_end.as_fd(), Record::Executing(42)).unwrap();
        drop(write_end);
        assert_eq!(await_report(&read_end, None).unwrap(), Outcome::Executed(42));
        let (read_end, write_end) = report_pipe().unwrap();
        send(write_end.as_fd(), Record::Executing(43)).unwrap();
        send(write_end.as_fd(), Record::Failed(Step::Exec, libc::ENOENT)).unwrap();
        let outcome = await_report(&read_end, None).unwrap();
        assert_eq!(
            outcome,
            Outcome::Failed { step: Step::Exec, errno: libc::ENOENT, daemon: Some(43) }
        );
    }

    #[test]
    fn daemon_failure_arrives_whole_with_its_text() {
        let (read_end, write_end) = report_pipe().unwrap();
        send(write_end.as_fd(), Record::Forked(42)).unwrap();
        let failure = DaemonFailure {
            message: "cannot bind 127.0.0.1:7201".into(),
            errno: libc::EADDRINUSE,
            detail: String::new(),
        };
        send_daemon_failure(write_end.as_fd(), &failure).unwrap();
        let outcome = await_report(&read_end, None).unwrap();
        let expected = Outcome::DaemonFailed { failure: failure.clone(), daemon: Some(42) };
        assert_eq!(outcome, expected);
        assert_eq!(failure.source().raw_os_error(), Some(libc::EADDRINUSE));
        let long = "x".repeat(2 * MAX_RECORD);
        let long = DaemonFailure { message: long.clone(), errno: 0, detail: long };
        send_daemon_failure(write_end.as_fd(), &long).unwrap();
        match await_report(&read_end, None).unwrap() {
            Outcome::DaemonFailed { failure, .. } => {
                assert_eq!(failure.message.len(), (MAX_RECORD - RECORD_LEN - 1) / 2);
                assert!(failure.source().to_string().starts_with("xxx"));
                assert_eq!(failure.source().raw_os_error(), None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn await_report_times_out() {
        let (read_end, _write_end) = report_pipe().unwrap();
        let outcome = await_report(&read_end, Some(Duration::from_millis(20))).unwrap();
        assert_eq!(outcome, Outcome::TimedOut { daemon: None });
    }
}
