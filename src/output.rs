//! Where a supervised command's output goes: files the supervisor holds (reopened on `SIGHUP`
//! for log rotation), or syslog, one message per line.
//!
//! The command writes into pipes; the supervisor reads them and passes the bytes on. Nothing is
//! dropped: writes to a file, and `send(2)` on syslog's datagram socket, block when the other
//! side is full, the pipe then fills, and the command blocks in `write(2)`: back-pressure, not
//! loss. A line longer than [`MAX_SYSLOG_LINE`] bytes is split into several messages; a last
//! line without a newline is sent when the pipe closes.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use syslog::{Facility, Formatter3164, LogFormat, Logger, LoggerBackend, Severity};

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

/// Parses a syslog facility name: `daemon`, `local0`…`local7`, `user`, `auth`, ….
pub fn parse_facility(name: &str) -> Result<Facility, String> {
    name.parse().map_err(|()| format!("unknown syslog facility {name:?}"))
}

/// Parses a syslog priority name: `emerg`, `alert`, `crit`, `err`, `warning`, `notice`,
/// `info`, `debug`.
pub fn parse_severity(name: &str) -> Result<Severity, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "emerg" => Severity::LOG_EMERG,
        "alert" => Severity::LOG_ALERT,
        "crit" => Severity::LOG_CRIT,
        "err" | "error" => Severity::LOG_ERR,
        "warning" | "warn" => Severity::LOG_WARNING,
        "notice" => Severity::LOG_NOTICE,
        "info" => Severity::LOG_INFO,
        "debug" => Severity::LOG_DEBUG,
        _ => return Err(format!("unknown syslog priority {name:?}")),
    })
}

/// A log file held by the supervisor, opened for appending, reopened on request.
///
/// A write that fails (`ENOSPC`, `EIO`) is not lost: the bytes not written are held, and the
/// supervisor stops reading COMMAND's pipe while they are, so COMMAND blocks instead of losing
/// output; [`LogFile::retry`] writes them once the file takes them again.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    held: Vec<u8>,
}

impl LogFile {
    /// Opens (creating with mode 0644) `path` for appending: `open(2)` with `O_APPEND`.
    ///
    /// # Errors
    /// The OS error of `open(2)`.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile { path: path.to_path_buf(), file: open_append(path)?, held: Vec::new() })
    }

    /// Opens the path again (after logrotate moved the file away) and switches to it; the old
    /// file is closed only once the new one is open, so nothing written is lost.
    ///
    /// # Errors
    /// The OS error of `open(2)`; the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_append(&self.path)?;
        Ok(())
    }

    /// Appends `bytes` after whatever is held (`write(2)`, blocking until all are written).
    ///
    /// # Errors
    /// The OS error of `write(2)` (`ENOSPC`, say); what was not written is held.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.held.extend_from_slice(bytes);
        self.retry()
    }

    /// Writes what is held, if anything.
    ///
    /// # Errors
    /// The OS error of `write(2)`; what was not written stays held.
    pub fn retry(&mut self) -> io::Result<()> {
        while !self.held.is_empty() {
            match self.file.write(&self.held) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.held.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether bytes are waiting for the file to take them.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
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

fn open_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().append(true).create(true).mode(0o644).open(path)
}

/// A connection to syslog, with the tag and pid each message carries.
pub struct SyslogWriter {
    config: SyslogConfig,
    logger: Logger<LoggerBackend, Formatter3164>,
}

impl std::fmt::Debug for SyslogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogWriter").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SyslogWriter {
    /// Connects to the syslog socket (`socket(2)`, `connect(2)`).
    ///
    /// # Errors
    /// The error of the connection, as an `io::Error`.
    pub fn connect(config: SyslogConfig) -> io::Result<SyslogWriter> {
        let logger = connect(&config, 0)?;
        Ok(SyslogWriter { config, logger })
    }

    /// The connected socket's descriptor, to preserve across the daemon's setup.
    pub fn raw_fd(&self) -> Option<RawFd> {
        match &self.logger.backend {
            LoggerBackend::Unix(socket) => Some(socket.as_raw_fd()),
            LoggerBackend::UnixStream(writer) => Some(writer.get_ref().as_raw_fd()),
            LoggerBackend::Udp(socket, _) => Some(socket.as_raw_fd()),
            LoggerBackend::Tcp(writer) => Some(writer.get_ref().as_raw_fd()),
        }
    }

    /// The pid the next messages carry (the command's current pid).
    pub fn set_pid(&mut self, pid: u32) {
        self.logger.formatter.pid = pid;
    }

    /// Sends one line (without its newline) at `severity`, split into messages of at most
    /// [`MAX_SYSLOG_LINE`] bytes. A failed send reconnects once and retries.
    ///
    /// # Errors
    /// The error of the retried send.
    pub fn send_line(&mut self, severity: Severity, line: &[u8]) -> io::Result<()> {
        for chunk in split_line(line) {
            let text = String::from_utf8_lossy(chunk);
            if self.send(severity, &text).is_err() {
                let pid = self.logger.formatter.pid;
                self.logger = connect(&self.config, pid)?;
                self.send(severity, &text)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, severity: Severity, text: &str) -> io::Result<()> {
        self.logger
            .formatter
            .format(&mut self.logger.backend, severity, text)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// The configured priority for the command's stdout (`false`) or stderr (`true`).
    pub fn severity(&self, stderr: bool) -> Severity {
        if stderr { self.config.stderr_severity } else { self.config.stdout_severity }
    }
}

fn connect(config: &SyslogConfig, pid: u32) -> io::Result<Logger<LoggerBackend, Formatter3164>> {
    let formatter = Formatter3164 {
        facility: config.facility,
        hostname: None,
        process: config.tag.clone(),
        pid,
    };
    let socket = config.socket.clone().unwrap_or_else(|| PathBuf::from("/dev/log"));
    syslog::unix_custom(formatter, &socket).map_err(|e| {
        let text = match std::error::Error::source(&e) {
            Some(source) => source.to_string(),
            None => e.to_string(),
        };
        io::Error::other(format!("{}: {text}", socket.display()))
    })
}

/// Splits a line into chunks of at most [`MAX_SYSLOG_LINE`] bytes, never inside a UTF-8
/// character when the line is valid UTF-8 there. An empty line is one empty chunk.
pub fn split_line(line: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = line;
    while rest.len() > MAX_SYSLOG_LINE {
        let mut cut = MAX_SYSLOG_LINE;
        while cut > MAX_SYSLOG_LINE - 4 && is_continuation(rest[cut]) {
            cut -= 1;
        }
        if is_continuation(rest[cut]) {
            cut = MAX_SYSLOG_LINE; // not UTF-8 here: cut anywhere
        }
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    chunks.push(rest);
    chunks
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// Cuts a byte stream into lines: complete lines come out, a partial one waits for more.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Adds `bytes`; calls `line` with each completed line, without its newline.
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

    #[test]
    fn names_parse() {
        assert!(matches!(parse_facility("local3"), Ok(Facility::LOG_LOCAL3)));
        assert!(parse_facility("nope").is_err());
        assert!(matches!(parse_severity("warning"), Ok(Severity::LOG_WARNING)));
        assert!(parse_severity("loud").is_err());
    }
}
