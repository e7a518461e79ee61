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
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::pidfile::{Pidfile, Status};
use crate::process;

/// How long the default schedule waits after its signal: longer than a supervisor's default
/// `--kill-after`, so a supervised daemon has time to stop what it runs.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

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
/// `SIGNAL/N/KILL/N` with the signal given by `--signal`. Each wait is at most
/// [`MAX_TIMEOUT`].
///
/// Every schedule, parsed or built, holds a timeout, has `forever` only last, and repeats only
/// with a timeout above 0: following it never spins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule(Vec<ScheduleItem>);

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

/// The longest wait a parsed schedule may hold: ten years of 365 days (315 360 000 s).
///
/// Longer timeouts are refused: a deadline is `Instant::now()` plus the wait, and that sum
/// panics when it does not fit in an `Instant` (`1e19` seconds does not); ten years always
/// fits, and is "no deadline" for any practical purpose.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

impl Schedule {
    /// Parses a schedule; `signal` is the one a bare number of seconds starts with.
    ///
    /// The items are start-stop-daemon's: a timeout is a decimal number of seconds (`30`,
    /// `0.5`, `1e3`) from 0 to [`MAX_TIMEOUT`]; a signal is a name (`TERM`, `-TERM`) or a
    /// number after a minus sign (`-15`); `forever` may come only last, and the schedule must
    /// hold a timeout. A bare number is always a timeout, as in start-stop-daemon, so a
    /// schedule where one would wait right after another (`15/2/9/1`: four waits) or that
    /// sends no signal at all is refused: its numbers were most likely meant as signals.
    ///
    /// # Errors
    /// A [`ParseError`] naming the bad item.
    pub fn parse(text: &str, signal: i32) -> Result<Schedule, ParseError> {
        if let Ok(seconds) = parse_seconds(text) {
            return Ok(Schedule::escalating(signal, seconds, seconds));
        }
        let items = text.split('/').map(parse_item).collect::<Result<Vec<_>, _>>()?;
        refuse_signal_like_timeouts(text, &items)?;
        Schedule::new(items).map_err(|why| ParseError(format!("in {text:?}, {why}")))
    }

    /// A schedule from its items.
    ///
    /// # Errors
    /// A [`ParseError`] when it holds no timeout, has `forever` anywhere but last, or repeats
    /// with only zero timeouts (it would send signals in a tight loop for ever).
    pub fn new(items: Vec<ScheduleItem>) -> Result<Schedule, ParseError> {
        let refuse = |why: &str| Err(ParseError(why.to_string()));
        if !items.iter().any(|i| matches!(i, ScheduleItem::Wait(_))) {
            return refuse("the schedule has no timeout");
        }
        if items[..items.len() - 1].contains(&ScheduleItem::Forever) {
            return refuse("forever can only come last");
        }
        let waits_some_time =
            items.iter().any(|i| matches!(i, ScheduleItem::Wait(w) if !w.is_zero()));
        if items.last() == Some(&ScheduleItem::Forever) && !waits_some_time {
            return refuse("forever needs a timeout above 0");
        }
        Ok(Schedule(items))
    }

    /// `signal`, up to `wait` for the processes to go, then `SIGKILL` and up to `kill_wait`:
    /// what a bare number of seconds means.
    pub fn escalating(signal: i32, wait: Duration, kill_wait: Duration) -> Schedule {
        Schedule(vec![
            ScheduleItem::Signal(signal),
            ScheduleItem::Wait(wait),
            ScheduleItem::Signal(libc::SIGKILL),
            ScheduleItem::Wait(kill_wait),
        ])
    }

    /// The items, in order.
    pub fn items(&self) -> &[ScheduleItem] {
        &self.0
    }

    /// The default: send `signal`, wait up to [`DEFAULT_WAIT`]; no `SIGKILL` unless asked for.
    pub fn default_for(signal: i32) -> Schedule {
        Schedule(vec![ScheduleItem::Signal(signal), ScheduleItem::Wait(DEFAULT_WAIT)])
    }
}

/// One item of a schedule: `forever`, a timeout (it starts with a digit), or a signal: a name
/// or, after a minus sign, a name or a number (start-stop-daemon's `[-]NAME` and `-NUMBER`).
fn parse_item(item: &str) -> Result<ScheduleItem, ParseError> {
    Ok(if item.eq_ignore_ascii_case("forever") {
        ScheduleItem::Forever
    } else if item.starts_with(|c: char| c.is_ascii_digit()) {
        ScheduleItem::Wait(parse_seconds(item)?)
    } else {
        ScheduleItem::Signal(parse_signal(item.strip_prefix('-').unwrap_or(item))?)
    })
}

/// Refuses a schedule whose bare numbers look meant as signals: one that sends no signal, or
/// where a timeout comes right after another (a second wait in a row adds nothing).
fn refuse_signal_like_timeouts(text: &str, items: &[ScheduleItem]) -> Result<(), ParseError> {
    let hint = "a bare number is a timeout; write a signal as -NUMBER or by name";
    if let Some(pair) = items
        .windows(2)
        .position(|pair| matches!(pair, [ScheduleItem::Wait(_), ScheduleItem::Wait(_)]))
    {
        let second = text.split('/').nth(pair + 1).unwrap_or_default();
        return Err(ParseError(format!(
            "in {text:?}, the timeout {second:?} follows another timeout ({hint}: -{second})"
        )));
    }
    if !items.iter().any(|item| matches!(item, ScheduleItem::Signal(_))) {
        return Err(ParseError(format!("in {text:?}, no signal is sent ({hint})")));
    }
    Ok(())
}

/// A timeout: a number of seconds that starts with a digit, at most [`MAX_TIMEOUT`].
fn parse_seconds(text: &str) -> Result<Duration, ParseError> {
    let seconds = text
        .parse::<f64>()
        .ok()
        .filter(|_| text.starts_with(|c: char| c.is_ascii_digit()))
        .ok_or_else(|| ParseError(format!("bad timeout {text:?} (seconds expected)")))?;
    match Duration::try_from_secs_f64(seconds) {
        Ok(wait) if wait <= MAX_TIMEOUT => Ok(wait),
        _ => Err(ParseError(format!(
            "timeout {text:?} is longer than ten years ({} s)",
            MAX_TIMEOUT.as_secs()
        ))),
    }
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
/// The pid in the file is signalled only if that process holds the pidfile's lock (its
/// `/proc/PID/fdinfo` shows the `OFDLCK`). When it has exited but what it started still holds
/// the lock (an exec'd shell's background job inherited the descriptor), that holder is stopped;
/// so is the holder of a locked file that names no pid (a lock file).
///
/// A schedule that ends without `SIGKILL` can leave members of the daemon's group that ignore
/// its signals: they are returned in [`Stopped::StillRunning`], and the pidfile is kept. Once the
/// daemon itself is gone and none of them holds the lock, the pidfile is stale and a later call
/// cannot find them any more (nothing records the group but the daemon): end a schedule with
/// `KILL` when that matters.
///
/// A pidfile nobody locks (stale, or emptied by a daemon that could not remove it) is removed,
/// and the answer is [`Stopped::NotRunning`].
///
/// System calls: `open(2)`/`fcntl(2)` `F_OFD_GETLK` (status), `pidfd_open(2)`, `getpgid(2)`,
/// `getsid(2)`, `kill(2)`, `pidfd_send_signal(2)`, `poll(2)`; at the end the pidfile, if left,
/// is locked and removed.
///
/// # Errors
/// [`StopError`] when the pidfile cannot be judged or the daemon cannot be signalled.
pub fn stop(path: &Path, schedule: &Schedule) -> Result<Stopped, StopError> {
    let named = match Pidfile::status(path) {
        // An empty pidfile nobody locks also reads as absent: remove it like a stale one.
        Status::Absent | Status::Stale(_) => {
            remove_stale(path);
            return Ok(Stopped::NotRunning);
        }
        Status::Unknown(e) => return Err(StopError::Unknown(e)),
        // A lock file (`-l`) names nobody: whoever holds the lock is the daemon.
        Status::Running(None) => match process::lock_holders(path).first() {
            Some(&holder) => holder,
            None => return Err(StopError::NoPid),
        },
        Status::Running(Some(pid)) => pid,
    };
    let Some((pid, pidfd)) = pin_lock_holder(path, named)? else {
        return Ok(finish(path, named));
    };
    let left = follow_schedule(&pidfd, pid, schedule)?;
    if left.is_empty() { Ok(finish(path, pid)) } else { Ok(Stopped::StillRunning(left)) }
}

/// The process to stop, pinned by a pidfd: the named one if it holds the lock (or we cannot
/// tell, as for another user's process), else the lowest process that holds it. `None` when
/// nobody holds it any more.
fn pin_lock_holder(path: &Path, named: u32) -> Result<Option<(u32, OwnedFd)>, StopError> {
    let Ok(meta) = std::fs::metadata(path) else { return Ok(None) };
    if let Ok(pidfd) = process::pidfd_open(named)
        && process::is_alive(named)
        && process::holds_lock_on(named, meta.dev(), meta.ino()) != Some(false)
    {
        return Ok(Some((named, pidfd)));
    }
    match process::lock_holders(path).first() {
        Some(&holder) => match process::pidfd_open(holder) {
            Ok(pidfd) => Ok(Some((holder, pidfd))),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) => Err(StopError::Signal(holder, e)),
        },
        None if process::is_alive(named) => Err(StopError::NotTheHolder(named)),
        None => Ok(None),
    }
}

/// Stops the process `pid` (pinned by a pidfd) and its process group, when it leads one of its
/// own session, by following `schedule`; returns the pids still alive at the end.
///
/// # Errors
/// [`StopError::Signal`] when `pidfd_open(2)` or `kill(2)` fails (other than for a process
/// already gone).
pub fn stop_process(pid: u32, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
    match process::pidfd_open(pid) {
        Ok(pidfd) => follow_schedule(&pidfd, pid, schedule),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(Vec::new()),
        Err(e) => Err(StopError::Signal(pid, e)),
    }
}

fn follow_schedule(pidfd: &OwnedFd, pid: u32, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
    let group = own_group(pid);
    let mut left = Vec::new();
    let mut index = 0;
    while index < schedule.0.len() {
        match schedule.0[index] {
            ScheduleItem::Signal(signal) => send(pidfd, group, pid, signal)?,
            ScheduleItem::Wait(timeout) => {
                // A schedule not from the parser may hold a wait past what an Instant holds.
                let deadline = Instant::now().checked_add(timeout).unwrap_or_else(far_future);
                left = wait_group_gone(pidfd, pid, group, deadline);
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
        left = wait_group_gone(pidfd, pid, group, Instant::now());
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
fn own_group(pid: u32) -> Option<u32> {
    let stat = process::stat(pid)?;
    let ours = process::stat(std::process::id())?.pgrp;
    (stat.pgrp > 1 && stat.pgrp == stat.session && stat.pgrp != ours).then_some(stat.pgrp)
}

/// `kill(2)` to the group, or `pidfd_send_signal(2)` to the pinned process alone. `SIGKILL`
/// also goes to every descendant of the daemon: a supervisor's COMMAND runs in a process group
/// of its own, and a supervisor killed outright would leave it running.
fn send(pidfd: &OwnedFd, group: Option<u32>, pid: u32, signal: i32) -> Result<(), StopError> {
    if signal == libc::SIGKILL {
        process::signal_descendants(pid, libc::SIGKILL);
    }
    let result = match group {
        // SAFETY: kill takes plain integers; the group is the daemon's own (checked above).
        Some(pgid) => match unsafe { libc::kill(-(pgid as i32), signal) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        },
        None => process::pidfd_send_signal(pidfd, signal),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()), // already gone
        Err(e) => Err(StopError::Signal(pid, e)),
    }
}

/// A deadline no stop reaches: [`MAX_TIMEOUT`] from now.
fn far_future() -> Instant {
    Instant::now() + MAX_TIMEOUT
}

/// Waits until the daemon and every member of its group are gone, or the deadline passes.
/// Returns the pids still alive.
fn wait_group_gone(pidfd: &OwnedFd, pid: u32, group: Option<u32>, deadline: Instant) -> Vec<u32> {
    if !process::wait_exit(pidfd, deadline) {
        return vec![pid];
    }
    let Some(pgid) = group else { return Vec::new() };
    process::group_members(pgid)
        .into_iter()
        .filter(|member| !process::wait_pid_exit(*member, deadline))
        .collect()
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

    #[test]
    fn built_schedules_never_spin() {
        let term = ScheduleItem::Signal(libc::SIGTERM);
        let zero = ScheduleItem::Wait(Duration::ZERO);
        for items in [vec![], vec![ScheduleItem::Forever], vec![term, ScheduleItem::Forever]] {
            assert!(Schedule::new(items.clone()).is_err(), "{items:?} accepted");
        }
        assert!(Schedule::new(vec![term, zero, ScheduleItem::Forever]).is_err());
        assert!(Schedule::new(vec![ScheduleItem::Forever, term, zero]).is_err());
        let one = ScheduleItem::Wait(Duration::from_secs(1));
        assert!(Schedule::new(vec![term, one, ScheduleItem::Forever]).is_ok());
    }

    #[test]
    fn refuses_bad_schedules_and_signals() {
        for bad in [
            "",
            "TERM",
            "TERM/abc",
            "NOPE/5",
            "TERM/-1",
            "TERM//5",
            "TERM/inf",
            "forever/TERM/5",
            "TERM/0/forever",
        ] {
            assert!(Schedule::parse(bad, libc::SIGTERM).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Ok(9));
        assert!(parse_signal("0").is_err());
    }
}
