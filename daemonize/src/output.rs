//! Where a supervised command's output goes: files the supervisor holds (reopened on `SIGHUP`
//! for log rotation), or syslog, one message per line.
//!
//! The command writes into pipes; the supervisor reads them and passes the bytes on. Nothing is
//! dropped while the supervisor runs: output a file or syslog cannot take now is held, the
//! supervisor stops reading the pipe, the pipe fills, and the command blocks in `write(2)`:
//! back-pressure, not loss. (When the supervisor exits, held output gets a bounded last
//! chance.) A line longer than [`MAX_SYSLOG_LINE`] bytes is split into several messages; a last
//! line without a newline is sent when the pipe closes.
//!
//! System calls: `open(2)`, `write(2)`, `send(2)`, `socket(2)`, `connect(2)`, `fstat(2)`.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::collections::VecDeque;
use std::os::unix::net::{UnixDatagram, UnixStream};

use syslog::{Facility, Formatter3164, LogFormat, Severity};

/// The longest message body sent to syslog; longer lines are split.
pub const MAX_SYSLOG_LINE: usize = 1024;

/// The syslog destination of the command's output.
#[derive(Clone)]
pub struct SyslogConfig {
    /// The facility, `daemon` by default.
    pub facility: Facility,
    /// The tag (program name) in each message: COMMAND's basename by default.
    pub tag: String,
    /// The socket; `/dev/log` when `None`.
    pub socket: Option<PathBuf>,
    /// Priority of stdout lines (`info` by default).
    pub stdout_severity: Severity,
    /// Priority of stderr lines (`err` by default).
    pub stderr_severity: Severity,
}

impl std::fmt::Debug for SyslogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogConfig")
            .field("facility", &self.facility)
            .field("tag", &self.tag)
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// Whether `a` and `b` name the same file, or would once `open(2)` with `O_CREAT` creates it:
/// the same device and inode (`stat(2)`, through symbolic and hard links), or, for a file not
/// there yet, the same name in the same directory, where each path's last symbolic link leads
/// (`lstat(2)`, `readlink(2)`, `stat(2)` of the directory; `..` and `.` need no spelling rule).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (would_open(a), would_open(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// What opening `path` for writing reaches: an existing file, or a new name in a directory.
#[derive(PartialEq, Eq)]
enum Target {
    Existing { dev: u64, ino: u64 },
    New { dev: u64, ino: u64, name: std::ffi::OsString },
}

/// The [`Target`] of `path`; `None` when it cannot be told (no parent directory, a loop).
fn would_open(path: &Path) -> Option<Target> {
    if let Ok(meta) = std::fs::metadata(path) {
        return Some(Target::Existing { dev: meta.dev(), ino: meta.ino() });
    }
    let mut path = path.to_path_buf();
    // A dangling symbolic link: open(2) creates the file it points at (40: the kernel's limit).
    for _ in 0..40 {
        let Ok(link) = std::fs::read_link(&path) else {
            let name = path.file_name()?.to_os_string();
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let meta = std::fs::metadata(dir).ok()?;
            return Some(Target::New { dev: meta.dev(), ino: meta.ino(), name });
        };
        path = match path.parent() {
            Some(dir) => dir.join(link),
            None => link,
        };
    }
    None
}

/// A log file held by the supervisor, opened for appending, reopened on request.
///
/// A write that fails (`ENOSPC`, `EIO`) is not lost: the bytes not written are held, and the
/// supervisor stops reading COMMAND's pipe while they are, so COMMAND blocks instead of losing
/// output; [`LogFile::retry`] writes them once the file takes them again. The descriptor never
/// blocks the supervisor: a full pipe, FIFO, terminal or socket is `EAGAIN`, held output too,
/// and [`LogFile::poll_fd`] names the descriptor to wait on for room (`POLLOUT`).
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    held: Vec<u8>,
    /// Whether the path can be opened again (false for an inherited stream).
    reopens: bool,
    /// An inherited socket: written with `send(2)` and `MSG_DONTWAIT`, because its open file
    /// description is shared with whoever passed it, so `O_NONBLOCK` is not ours to set.
    socket: bool,
    /// The last write stopped on `EAGAIN`: room comes when the reader reads.
    waits_for_room: bool,
    /// The bytes given so far end inside a line (COMMAND wrote no newline yet): a line of our
    /// own must start on a line of its own.
    mid_line: bool,
}

impl LogFile {
    /// Opens (creating with mode 0644) `path` for appending: `open(2)` with `O_APPEND`. A
    /// relative path is made absolute first, against the current directory, so that a reopen
    /// after the daemon's `chdir(2)` names the same file.
    ///
    /// # Errors
    /// The OS error of `open(2)`, or of `getcwd(2)` for a relative path.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let path = std::path::absolute(path)?;
        Ok(LogFile {
            file: open_append(&path)?,
            path,
            held: Vec::new(),
            reopens: true,
            socket: false,
            waits_for_room: false,
            mid_line: false,
        })
    }

    /// Writes to a stream the supervisor inherited (its stdout or stderr in the foreground,
    /// systemd's journal say); `name` is for messages. It is never reopened.
    ///
    /// The supervisor must not block on a slow reader, but the stream's open file description
    /// is shared with the invoker, so its `O_NONBLOCK` flag is left alone: a pipe, FIFO or
    /// terminal is opened again through `/proc/self/fd/N` (a description of our own, then made
    /// non-blocking); a socket is written with `send(2)` `MSG_DONTWAIT`; a regular file is
    /// duplicated (`fcntl(2)` `F_DUPFD_CLOEXEC`), a disk write does not wait for a reader. A
    /// pipe that cannot be opened again (no reader left) is duplicated too: writes to it fail
    /// with `EPIPE` rather than block.
    ///
    /// # Errors
    /// The OS error of `fstat(2)` or `fcntl(2)`.
    pub fn inherited(stream: BorrowedFd<'_>, name: &str) -> io::Result<LogFile> {
        let kind = std::fs::File::from(stream.try_clone_to_owned()?).metadata()?.file_type();
        let reopened = match kind.is_fifo() || kind.is_char_device() {
            true => reopen_nonblocking(stream).ok(),
            false => None,
        };
        let file = match reopened {
            Some(file) => file,
            None => File::from(stream.try_clone_to_owned()?),
        };
        Ok(LogFile {
            path: PathBuf::from(name),
            file,
            held: Vec::new(),
            reopens: false,
            socket: kind.is_socket(),
            waits_for_room: false,
            mid_line: false,
        })
    }

    /// Opens the path again (after logrotate moved the file away) and switches to it; the old
    /// file is closed only once the new one is open, so nothing written is lost.
    ///
    /// # Errors
    /// The OS error of `open(2)`; the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        if self.reopens {
            self.file = open_append(&self.path)?;
        }
        Ok(())
    }

    /// Appends `bytes` after whatever is held (`write(2)`, or `send(2)` to a socket) as far as
    /// the file takes them now.
    ///
    /// # Errors
    /// The OS error of `write(2)` (`ENOSPC`, `EAGAIN`, say); what was not written is held.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(last) = bytes.last() {
            self.mid_line = *last != b'\n';
        }
        if !self.held.is_empty() {
            self.held.extend_from_slice(bytes);
            return self.retry();
        }
        // Nothing held: straight from the caller's buffer, holding only what is left over
        // (one copy fewer on the relay's path).
        self.waits_for_room = false;
        let mut done = 0;
        while done < bytes.len() {
            match self.write_some(&bytes[done..]) {
                Ok(0) => {
                    self.held.extend_from_slice(&bytes[done..]);
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.waits_for_room = e.kind() == io::ErrorKind::WouldBlock;
                    self.held.extend_from_slice(&bytes[done..]);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Appends `line` and a newline, as [`LogFile::write`] does, on a line of its own: after a
    /// newline first when what was written before ends inside a line (COMMAND's last line
    /// without its newline), so that neither line is torn.
    ///
    /// # Errors
    /// As [`LogFile::write`].
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let start = if self.mid_line { "\n" } else { "" };
        self.write(format!("{start}{line}\n").as_bytes())
    }

    /// Writes what is held, if anything.
    ///
    /// # Errors
    /// The OS error of `write(2)`; what was not written stays held.
    pub fn retry(&mut self) -> io::Result<()> {
        self.waits_for_room = false;
        while !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            let written = self.write_some(&held);
            self.held = held;
            match written {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.held.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.waits_for_room = e.kind() == io::ErrorKind::WouldBlock;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One `write(2)` (or `send(2)` to a socket) of `bytes`: how many it took.
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.socket {
            return self.file.write(bytes);
        }
        use nix::sys::socket::{MsgFlags, send};
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        Ok(send(self.file.as_raw_fd(), bytes, flags)?)
    }

    /// Whether bytes are waiting for the file to take them.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// While held bytes wait for a reader to make room (the last write was `EAGAIN`): the
    /// descriptor to `poll(2)` for `POLLOUT`. `None` otherwise: a full disk sends no event, it
    /// is tried again by timer.
    pub fn poll_fd(&self) -> Option<RawFd> {
        (self.is_holding() && self.waits_for_room).then(|| self.file.as_raw_fd())
    }

    /// Whether [`LogFile::reopen`] opens the path again (not for an inherited stream).
    pub fn reopens(&self) -> bool {
        self.reopens
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsRawFd for LogFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// `open(2)` with `O_APPEND | O_CREAT | O_NONBLOCK`: a FIFO without a reader fails (`ENXIO`)
/// instead of blocking, and a full one is `EAGAIN` (held output), not a stuck supervisor.
/// Through [`daemonctx::safe_open::open`]: no symbolic or hard link another user planted on
/// the way can redirect it.
fn open_append(path: &Path) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NONBLOCK;
    daemonctx::safe_open::open(path, flags, 0o644).map(File::from)
}

/// A new open file description of what `stream` is (a pipe, FIFO or terminal), through
/// `/proc/self/fd/N`: `open(2)` with `O_WRONLY | O_NONBLOCK | O_NOCTTY`. `ENXIO` for a pipe
/// without a reader.
fn reopen_nonblocking(stream: BorrowedFd<'_>) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", stream.as_raw_fd()))
}

/// A connection to syslog, with the tag and pid each message carries.
///
/// The socket is non-blocking and the supervisor never waits in `send(2)`: a message the socket
/// cannot take now is held, the supervisor stops reading COMMAND's pipes while any is (so
/// COMMAND blocks: back-pressure, not loss), and it sends them when `poll(2)` says the socket
/// has room again, all the while handling signals. A socket that went away (syslog restarted)
/// is connected again.
pub struct SyslogWriter {
    config: SyslogConfig,
    formatter: Formatter3164,
    socket: Option<Transport>,
    held: VecDeque<Vec<u8>>,
    /// How much of the front message a stream socket already took.
    sent: usize,
}

/// The syslog socket: datagrams (`/dev/log` as systemd and rsyslog make it), or a stream.
enum Transport {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

impl std::fmt::Debug for SyslogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogWriter")
            .field("config", &self.config)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl SyslogWriter {
    /// Connects to the syslog socket (`socket(2)`, `connect(2)`, then `O_NONBLOCK`).
    ///
    /// # Errors
    /// The error of the connection, naming the socket.
    pub fn connect(config: SyslogConfig) -> io::Result<SyslogWriter> {
        let socket = Some(connect(&config)?);
        let formatter = Formatter3164 {
            facility: config.facility,
            hostname: None,
            process: config.tag.clone(),
            pid: 0,
        };
        Ok(SyslogWriter { config, formatter, socket, held: VecDeque::new(), sent: 0 })
    }

    /// The connected socket's descriptor, to preserve across the daemon's setup.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.socket.as_ref().map(Transport::as_raw_fd)
    }

    /// The pid the next messages carry (the command's current pid).
    pub fn set_pid(&mut self, pid: u32) {
        self.formatter.pid = pid;
    }

    /// Queues one line (without its newline) at `severity`, in messages of at most
    /// [`MAX_SYSLOG_LINE`] bytes, and sends what the socket takes now.
    pub fn send_line(&mut self, severity: Severity, line: &[u8]) {
        for chunk in split_line(line) {
            let mut message = Vec::new();
            let text = String::from_utf8_lossy(chunk);
            if self.formatter.format(&mut message, severity, text.as_ref()).is_ok() {
                self.held.push_back(message);
            }
        }
        let _ = self.flush();
    }

    /// Queues a message of the supervisor's own, with its tag and pid instead of COMMAND's.
    pub fn send_own(&mut self, severity: Severity, text: &str) {
        let (tag, pid) = (self.formatter.process.clone(), self.formatter.pid);
        self.formatter.process = "daemonize".to_string();
        self.formatter.pid = std::process::id();
        self.send_line(severity, text.as_bytes());
        (self.formatter.process, self.formatter.pid) = (tag, pid);
    }

    /// Sends held messages until the socket is full (`EAGAIN`) or none is left; a socket that
    /// went away is connected again once.
    ///
    /// # Errors
    /// The error that stopped the sending, `WouldBlock` when the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut reconnected = false;
        while let Some(front) = self.held.front() {
            let result = match &self.socket {
                Some(Transport::Datagram(socket)) => socket.send(front).map(|_| front.len()),
                Some(Transport::Stream(socket)) => send_framed(socket, front, self.sent),
                None => Err(io::Error::from(io::ErrorKind::NotConnected)),
            };
            match result {
                Ok(sent) if sent >= front.len() + self.framing() => {
                    self.held.pop_front();
                    self.sent = 0;
                }
                Ok(sent) => self.sent = sent,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if !reconnected => {
                    reconnected = true;
                    self.sent = 0;
                    self.socket = connect(&self.config).ok();
                    if self.socket.is_none() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether messages are waiting for the socket to take them.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The descriptor to `poll(2)` for room (`POLLOUT`) while messages are held; `None` while
    /// disconnected (then only a timer helps).
    pub fn poll_fd(&self) -> Option<RawFd> {
        self.raw_fd()
    }

    /// The configured priority for the command's stdout (`false`) or stderr (`true`).
    pub fn severity(&self, stderr: bool) -> Severity {
        if stderr { self.config.stderr_severity } else { self.config.stdout_severity }
    }

    fn framing(&self) -> usize {
        usize::from(matches!(self.socket, Some(Transport::Stream(_))))
    }
}

impl Transport {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Transport::Datagram(socket) => socket.as_raw_fd(),
            Transport::Stream(socket) => socket.as_raw_fd(),
        }
    }
}

/// On a stream socket, a message is its bytes then a NUL; `offset` bytes were sent before.
/// Returns the total sent so far.
fn send_framed(mut socket: &UnixStream, message: &[u8], offset: usize) -> io::Result<usize> {
    let n = if offset < message.len() {
        socket.write(&message[offset..])?
    } else {
        socket.write(&[0])?
    };
    Ok(offset + n)
}

/// Connects like syslog(3): a datagram socket, or a stream one when the path is a stream
/// socket (`EPROTOTYPE`); non-blocking either way.
fn connect(config: &SyslogConfig) -> io::Result<Transport> {
    let path = config.socket.clone().unwrap_or_else(|| PathBuf::from("/dev/log"));
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let datagram = UnixDatagram::unbound().map_err(named)?;
    let transport = match datagram.connect(&path) {
        Ok(()) => Transport::Datagram(datagram),
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            Transport::Stream(UnixStream::connect(&path).map_err(named)?)
        }
        Err(e) => return Err(named(e)),
    };
    match &transport {
        Transport::Datagram(socket) => socket.set_nonblocking(true),
        Transport::Stream(socket) => socket.set_nonblocking(true),
    }
    .map_err(named)?;
    Ok(transport)
}

/// Splits a line into chunks of at most [`MAX_SYSLOG_LINE`] bytes, never inside a UTF-8
/// character when the line is valid UTF-8 there. An empty line is one empty chunk.
pub fn split_line(line: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = line;
    while rest.len() > MAX_SYSLOG_LINE {
        let cut = cut_point(rest);
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    chunks.push(rest);
    chunks
}

/// Where to cut a text longer than [`MAX_SYSLOG_LINE`]: at most that many bytes, backing off
/// to the start of a UTF-8 character (by at most 3 bytes) when there is one.
fn cut_point(text: &[u8]) -> usize {
    let mut cut = MAX_SYSLOG_LINE;
    while cut > MAX_SYSLOG_LINE - 4 && is_continuation(text[cut]) {
        cut -= 1;
    }
    if is_continuation(text[cut]) { MAX_SYSLOG_LINE } else { cut }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// Cuts a byte stream into lines: complete lines come out, and so does each piece of
/// [`MAX_SYSLOG_LINE`] bytes of a line still growing, so a line without a newline never holds
/// more than that in memory.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Adds `bytes`; calls `line` with each completed line (without its newline) and with each
    /// full-sized piece of an incomplete one.
    pub fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&[u8])) {
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                line(&rest[..end]);
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                line(&self.partial);
                self.partial.clear();
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() > MAX_SYSLOG_LINE {
            let cut = cut_point(&self.partial);
            line(&self.partial[..cut]);
            self.partial.drain(..cut);
        }
    }

    /// Hands out what is left (a last line without a newline), if anything.
    pub fn finish(&mut self, line: impl FnOnce(&[u8])) {
        if !self.partial.is_empty() {
            line(&self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a non-blocking pipe cannot take now is held, in order, and written by `retry` once
    /// the reader made room: also when nothing was held before (written straight from the
    /// caller's buffer).
    #[test]
    fn output_a_full_pipe_cannot_take_is_held_in_order() {
        use std::io::Read;
        use std::os::fd::AsFd;
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let mut file = LogFile::inherited(write_end.as_fd(), "pipe").unwrap();
        drop(write_end);
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let first = file.write(&bytes);
        assert_eq!(first.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(file.is_holding());
        let mut reader = File::from(read_end);
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 65536];
        while got.len() < bytes.len() {
            let n = reader.read(&mut chunk).unwrap();
            got.extend_from_slice(&chunk[..n]);
            let _ = file.retry();
        }
        assert!(!file.is_holding());
        assert!(got == bytes, "the bytes arrived out of order or changed");
    }

    #[test]
    fn line_buffer_joins_pieces_and_flushes_the_tail() {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        buffer.push(b"one\ntw", |l| lines.push(l.to_vec()));
        buffer.push(b"o\n\nthr", |l| lines.push(l.to_vec()));
        buffer.finish(|l| lines.push(l.to_vec()));
        assert_eq!(lines, [&b"one"[..], b"two", b"", b"thr"]);
    }

    #[test]
    fn line_buffer_hands_out_pieces_of_a_line_that_keeps_growing() {
        let mut buffer = LineBuffer::default();
        let mut pieces = Vec::new();
        for _ in 0..3000 {
            buffer.push(b"x", |l| pieces.push(l.len()));
        }
        assert_eq!(pieces, [MAX_SYSLOG_LINE, MAX_SYSLOG_LINE]);
        buffer.push(b"\n", |l| pieces.push(l.len()));
        assert_eq!(pieces, [MAX_SYSLOG_LINE, MAX_SYSLOG_LINE, 3000 - 2 * MAX_SYSLOG_LINE]);
    }

    #[test]
    fn long_lines_split_on_character_boundaries() {
        let line = "é".repeat(MAX_SYSLOG_LINE); // 2 bytes each
        let chunks = split_line(line.as_bytes());
        assert!(
            chunks.iter().all(|c| c.len() <= MAX_SYSLOG_LINE && std::str::from_utf8(c).is_ok())
        );
        assert_eq!(chunks.concat(), line.as_bytes());
        assert_eq!(split_line(b""), [&b""[..]]);
        let binary = vec![0x80u8; 3000];
        assert_eq!(split_line(&binary).concat(), binary);
    }
}
