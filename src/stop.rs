//! Stopping the daemon a pidfile names: the retry schedule, signalling its process group, and
//! waiting for it with a pidfd.
//!
//! The pidfile is judged by its lock ([`Pidfile::status`]): an unlocked pidfile is stale and its
//! pid is never signalled, so a recycled pid is safe. Before signalling, a `pidfd_open(2)` pins
//! the process, and the process must hold the pidfile open (checked in `/proc/PID/fd`) when that
//! can be read. The signal goes to the daemon's process group when the daemon is in a group of
//! its own session (what [`crate::DaemonContext`] creates), so what the daemon spawned stops
//! too; then `poll(2)` on pidfds waits for every member, with no sleep loop.

#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::pidfile::{Pidfile, Status};

/// One item of a retry schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleItem {
    /// Send this signal.
    Signal(i32),
    /// Wait up to this long for the processes to be gone.
    Wait(Duration),
    /// Start the schedule over, for ever.
    Forever,
}

/// start-stop-daemon's `--retry` schedule: `TERM/30/KILL/5`, or a bare number N meaning
/// `SIGNAL/N/KILL/N` with the signal given by `--signal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule(pub Vec<ScheduleItem>);

/// Why a schedule or signal name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses a signal: a name with or without `SIG` (`TERM`, `SIGTERM`, case-insensitive), or a
/// number from 1 to 64.
pub fn parse_signal(text: &str) -> Result<i32, ParseError> {
    if let Ok(number) = text.parse::<i32>() {
        return match number {
            1..=64 => Ok(number),
            _ => Err(ParseError(format!("signal number {number} is out of range 1-64"))),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    nix::sys::signal::Signal::from_str(&name)
        .map(|signal| signal as i32)
        .map_err(|_| ParseError(format!("unknown signal {text:?}")))
}

impl Schedule {
    /// Parses a schedule; `signal` is the one a bare number of seconds starts with.
    ///
    /// # Errors
    /// A [`ParseError`] naming the bad item.
    pub fn parse(text: &str, signal: i32) -> Result<Schedule, ParseError> {
        if let Ok(seconds) = parse_seconds(text) {
            let wait = ScheduleItem::Wait(seconds);
            return Ok(Schedule(vec![
                ScheduleItem::Signal(signal),
                wait,
                ScheduleItem::Signal(libc::SIGKILL),
                wait,
            ]));
        }
        let mut items = Vec::new();
        for item in text.split('/') {
            items.push(if item.eq_ignore_ascii_case("forever") {
                ScheduleItem::Forever
            } else if item.starts_with(|c: char| c.is_ascii_digit()) {
                ScheduleItem::Wait(parse_seconds(item)?)
            } else {
                ScheduleItem::Signal(parse_signal(item)?)
            });
        }
        if !items.iter().any(|i| matches!(i, ScheduleItem::Wait(_))) {
            return Err(ParseError(format!("schedule {text:?} has no timeout")));
        }
        Ok(Schedule(items))
    }

    /// The default: send `signal`, wait up to 10 seconds; no `SIGKILL` unless asked for.
    pub fn default_for(signal: i32) -> Schedule {
        Schedule(vec![ScheduleItem::Signal(signal), ScheduleItem::Wait(Duration::from_secs(10))])
    }
}

fn parse_seconds(text: &str) -> Result<Duration, ParseError> {
    text.parse::<f64>()
        .ok()
        .filter(|_| text.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| ParseError(format!("bad timeout {text:?} (seconds expected)")))
}

/// What [`stop`] found or did.
#[derive(Debug)]
pub enum Stopped {
    /// The daemon (this pid) and its group are gone.
    Stopped(u32),
    /// There was nothing to stop: no pidfile, or a stale one (which was removed).
    NotRunning,
    /// The schedule ran out with these processes still alive.
    StillRunning(Vec<u32>),
}

/// Errors of [`stop`]: the pidfile could not be judged, or the daemon could not be signalled.
#[derive(Debug)]
pub enum StopError {
    /// The pidfile could not be inspected.
    Unknown(io::Error),
    /// The pidfile is locked but names no readable pid.
    NoPid,
    /// The pid in the pidfile does not hold the pidfile open: it is not the daemon.
    NotTheHolder(u32),
    /// `kill(2)` or `pidfd_open(2)` failed.
    Signal(u32, io::Error),
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopError::Unknown(_) => f.write_str("cannot inspect the pidfile"),
            StopError::NoPid => f.write_str("the pidfile is locked but holds no pid"),
            StopError::NotTheHolder(pid) => {
                write!(f, "pid {pid} named in the pidfile does not hold it; not signalling it")
            }
            StopError::Signal(pid, _) => write!(f, "cannot signal pid {pid}"),
        }
    }
}

impl std::error::Error for StopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StopError::Unknown(e) | StopError::Signal(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Stops the daemon holding the pidfile at `path` by following `schedule`.
///
/// System calls: `open(2)`/`fcntl(2)` `F_OFD_GETLK` (status), `pidfd_open(2)`, `getpgid(2)`,
/// `getsid(2)`, `kill(2)`, `poll(2)`; at the end the pidfile, if left, is locked and removed.
///
/// # Errors
/// [`StopError`] when the pidfile cannot be judged or the daemon cannot be signalled.
pub fn stop(path: &Path, schedule: &Schedule) -> Result<Stopped, StopError> {
    let pid = match Pidfile::status(path) {
        Status::Absent => return Ok(Stopped::NotRunning),
        Status::Stale(_) => {
            remove_stale(path);
            return Ok(Stopped::NotRunning);
        }
        Status::Unknown(e) => return Err(StopError::Unknown(e)),
        Status::Running(None) => return Err(StopError::NoPid),
        Status::Running(Some(pid)) => pid,
    };
    let (pid, pidfd) = match pidfd_open(pid) {
        Ok(fd) if is_alive(pid) && holds_pidfile(pid, path) != Some(false) => (pid, fd),
        // The named process is gone (or is not ours), yet the lock is held: by what it
        // started, which inherited the pidfile's descriptor. Stop that holder instead.
        Ok(_) | Err(_) => match holders(path).first() {
            Some(&holder) => match pidfd_open(holder) {
                Ok(fd) => (holder, fd),
                Err(e) => return Err(StopError::Signal(holder, e)),
            },
            None if is_alive(pid) => return Err(StopError::NotTheHolder(pid)),
            None => return Ok(finish(path, pid)),
        },
    };
    let left = follow_schedule(&pidfd, pid, schedule)?;
    if left.is_empty() { Ok(finish(path, pid)) } else { Ok(Stopped::StillRunning(left)) }
}

/// Stops the process `pid` (pinned by a pidfd) and its process group, when it leads one of its
/// own session, by following `schedule`; returns the pids still alive at the end.
///
/// # Errors
/// [`StopError::Signal`] when `pidfd_open(2)` or `kill(2)` fails (other than for a process
/// already gone).
pub fn stop_process(pid: u32, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
    match pidfd_open(pid) {
        Ok(pidfd) => follow_schedule(&pidfd, pid, schedule),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(Vec::new()),
        Err(e) => Err(StopError::Signal(pid, e)),
    }
}

fn follow_schedule(pidfd: &OwnedFd, pid: u32, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
    let target = own_group(pid).map_or(pid as i32, |pgid| -pgid);
    let mut left = Vec::new();
    let mut index = 0;
    while index < schedule.0.len() {
        match schedule.0[index] {
            ScheduleItem::Signal(signal) => send(pidfd, target, pid, signal)?,
            ScheduleItem::Wait(timeout) => {
                let deadline = Instant::now() + timeout;
                left = wait_group_gone(pidfd, pid, target, deadline);
                if left.is_empty() {
                    return Ok(left);
                }
            }
            ScheduleItem::Forever => {
                index = 0;
                continue;
            }
        }
        index += 1;
    }
    if left.is_empty() {
        left = wait_group_gone(pidfd, pid, target, Instant::now());
    }
    Ok(left)
}

/// The daemon is gone: remove its pidfile if it was left (killed by SIGKILL, say).
fn finish(path: &Path, pid: u32) -> Stopped {
    remove_stale(path);
    Stopped::Stopped(pid)
}

/// Removes a pidfile nobody holds.
fn remove_stale(path: &Path) {
    let _ = Pidfile::remove_stale(path);
}

/// The process group to signal: the daemon's, when the daemon's group is the one its own
/// session was created with (pgid = sid) and that group is not ours.
fn own_group(pid: u32) -> Option<i32> {
    // SAFETY: getpgid and getsid take a pid and have no memory effects.
    let (pgid, sid) = unsafe { (libc::getpgid(pid as i32), libc::getsid(pid as i32)) };
    // SAFETY: getpgrp has no preconditions.
    let ours = unsafe { libc::getpgrp() };
    (pgid > 1 && pgid == sid && pgid != ours).then_some(pgid)
}

/// `kill(2)` to the group, or `pidfd_send_signal(2)` to the pinned process alone.
fn send(pidfd: &OwnedFd, target: i32, pid: u32, signal: i32) -> Result<(), StopError> {
    let rc = if target < 0 {
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(target, signal) }
    } else {
        let no_info: *const libc::siginfo_t = std::ptr::null();
        // SAFETY: pidfd is an open pidfd; a null siginfo means "as kill(2) would send it".
        let rc = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, no_info, 0)
        };
        rc as i32
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ESRCH) => Ok(()), // already gone
        _ => Err(StopError::Signal(pid, e)),
    }
}

/// Waits until the daemon and every member of its group are gone, or the deadline passes.
/// Returns the pids still alive.
fn wait_group_gone(pidfd: &OwnedFd, pid: u32, target: i32, deadline: Instant) -> Vec<u32> {
    if !wait_readable(pidfd, deadline) {
        return vec![pid];
    }
    if target > 0 {
        return Vec::new();
    }
    let mut left = Vec::new();
    for member in group_members(-target) {
        match pidfd_open(member) {
            Ok(fd) if !wait_readable(&fd, deadline) => left.push(member),
            _ => {}
        }
    }
    left
}

/// `poll(2)` on a pidfd until it is readable (the process exited) or the deadline passes.
fn wait_readable(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            n if n > 0 => return true,
            0 => return false,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            _ => return false,
        }
    }
}

/// The live processes (zombies excluded) whose process group is `pgid`, from `/proc/*/stat`.
pub fn group_members(pgid: i32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let fields: Vec<&str> =
                stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .collect()
}

/// `pidfd_open(2)`: a descriptor that refers to this process for as long as it is open, even if
/// the pid is reused.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The processes that have the file at `path` open (its inode among their `/proc/PID/fd/*`),
/// lowest pid first; those this user may not inspect are not seen.
pub fn holders(path: &Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| has_open(*pid, target.dev(), target.ino()) == Some(true))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` runs: it exists and is not a zombie (`/proc/PID/stat`).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

/// Whether `pid` has the pidfile open (one of `/proc/PID/fd/*` is its inode). `None` when that
/// cannot be read (another user's process, no `/proc`).
fn holds_pidfile(pid: u32, path: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::metadata(path).ok()?;
    has_open(pid, target.dev(), target.ino())
}

fn has_open(pid: u32, dev: u64, ino: u64) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let holds = entries.filter_map(Result::ok).any(|entry| {
        std::fs::metadata(entry.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
    });
    Some(holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_stop_daemon_schedules() {
        let s = Schedule::parse("TERM/30/KILL/5", libc::SIGHUP).unwrap();
        assert_eq!(
            s.0,
            vec![
                ScheduleItem::Signal(libc::SIGTERM),
                ScheduleItem::Wait(Duration::from_secs(30)),
                ScheduleItem::Signal(libc::SIGKILL),
                ScheduleItem::Wait(Duration::from_secs(5)),
            ]
        );
        let bare = Schedule::parse("7", libc::SIGINT).unwrap();
        assert_eq!(bare.0[0], ScheduleItem::Signal(libc::SIGINT));
        assert_eq!(bare.0[3], ScheduleItem::Wait(Duration::from_secs(7)));
        let forever = Schedule::parse("SIGHUP/0.5/forever", libc::SIGTERM).unwrap();
        assert_eq!(forever.0[2], ScheduleItem::Forever);
    }

    /// The fuzz target's property (see fuzz/), over a deterministic stream of inputs.
    #[test]
    fn schedule_parser_never_panics_and_always_has_a_timeout() {
        let pieces =
            ["TERM", "KILL", "9", "0", "0.5", "/", "forever", "x", "-1", "1e9", "", "SIGHUP"];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let text: String = (0..(state % 6))
                .map(|i| pieces[((state >> (i * 5)) % pieces.len() as u64) as usize])
                .collect();
            if let Ok(schedule) = Schedule::parse(&text, libc::SIGTERM) {
                assert!(schedule.0.iter().any(|i| matches!(i, ScheduleItem::Wait(_))), "{text:?}");
            }
        }
    }

    #[test]
    fn refuses_bad_schedules_and_signals() {
        for bad in ["", "TERM", "TERM/abc", "NOPE/5", "TERM/-1", "TERM//5", "TERM/inf"] {
            assert!(Schedule::parse(bad, libc::SIGTERM).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Ok(9));
        assert!(parse_signal("0").is_err());
    }
}
