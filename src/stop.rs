//! Stopping the daemon a pidfile names: the retry schedule, signalling its process group, and
//! waiting for it with a pidfd.
//!
//! The pidfile is opened once ([`Inspected`]) and judged by its lock: an unlocked pidfile is
//! stale and its pid is never signalled, so a recycled pid is safe. Every later step uses that
//! open file, never the path. Before signalling, a `pidfd_open(2)` pins the process
//! ([`Pinned`]), and the process must hold the pidfile's lock (checked in `/proc/PID/fdinfo`)
//! when that can be read. The signal goes to the daemon's process group when the daemon is in a
//! group of its own session (what [`crate::DaemonContext`] creates), so what the daemon spawned
//! stops too; then `poll(2)` on pidfds waits for every member, with no sleep loop. Once the
//! daemon's pidfd says it has exited, nothing is derived from its pid number any more: what is
//! left is found through its group (`kill(2)` with signal 0 first, `/proc` only if not empty)
//! and the pidfile's lock (`F_OFD_GETLK` first, `/proc` only if still held). The group's number
//! is the daemon's only while the daemon's zombie is unreaped (`pidfd_send_signal(2)` with
//! signal 0 tells); once it is reaped, a member found in the group counts only if it started
//! before the daemon was last seen unreaped (`/proc/PID/stat` starttime): a process that took
//! the number as its pid and called `setsid(2)` after the reap is never signalled.

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::pidfile::{Inspected, Status};
use crate::process::{self, Pinned};

/// How long the default schedule waits after its signal: longer than a supervisor's default
/// `--kill-after`, so a supervised daemon has time to stop what it runs.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// How long a stop waits for the exited daemon to be reaped before it looks for what is left
/// of its process group in `/proc`: an init (or subreaper) reaps at once; one that is slower
/// costs this wait plus the scan.
const REAP_GRACE: Duration = Duration::from_millis(20);

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
    /// The schedule ran out with these processes still alive; empty when the pidfile is still
    /// locked by a process this user cannot see.
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
/// The path is looked up once ([`Inspected::open`]); everything after works on that open
/// file: whether it is locked, the pid it names, which processes hold its inode's lock, and
/// at the end its removal. The pid in the file is signalled only if that process holds the
/// lock (its `/proc/PID/fdinfo` shows the `OFDLCK`). When it has exited but what it started
/// still holds the lock (an exec'd shell's background job inherited the descriptor), that
/// holder is stopped; so is the holder of a locked file that names no pid (a lock file).
///
/// After the daemon and its group are gone, the lock is checked once more: a process that
/// left the group (`setsid(2)`, `setpgid(2)`) but still holds it is found, gets the signal the
/// schedule last sent and the ones after it, and keeps the stop from reporting success.
///
/// In the common case (the daemon exits, its group is empty, the lock is free) nothing scans
/// `/proc`: `poll(2)` on the daemon's pidfd, `kill(2)` with signal 0 to its group and
/// `F_OFD_GETLK` answer.
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
/// System calls: `open(2)`/`openat(2)`, `fcntl(2)` `F_OFD_GETLK`, `pidfd_open(2)`,
/// `kill(2)`, `pidfd_send_signal(2)`, `poll(2)`; at the end the pidfile, if left, is locked
/// and removed (`unlinkat(2)` in the directory opened at first).
///
/// # Errors
/// [`StopError`] when the pidfile cannot be judged or the daemon cannot be signalled.
///
/// ```no_run
/// use daemonctx::stop::{Schedule, stop};
/// let outcome = stop("/run/app.pid".as_ref(), &Schedule::default_for(libc::SIGTERM));
/// println!("{outcome:?}");
/// ```
pub fn stop(path: &Path, schedule: &Schedule) -> Result<Stopped, StopError> {
    let pidfile = match Inspected::open(path) {
        Ok(pidfile) => pidfile,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Stopped::NotRunning),
        Err(e) => return Err(StopError::Unknown(e)),
    };
    let named = match pidfile.status() {
        // An empty pidfile nobody locks also reads as absent: remove it like a stale one.
        Status::Absent | Status::Stale(_) => {
            let _ = pidfile.remove_if_stale();
            return Ok(Stopped::NotRunning);
        }
        Status::Unknown(e) => return Err(StopError::Unknown(e)),
        // A lock file (`-l`) names nobody: whoever holds the lock is the daemon.
        Status::Running(named) => named,
    };
    let Some(main) = pin_lock_holder(&pidfile, named)? else {
        return finish(&pidfile, named.unwrap_or(0));
    };
    let pid = main.pid();
    let left = Targets::new(main, Some(&pidfile)).follow(schedule)?;
    if left.is_empty() { finish(&pidfile, pid) } else { Ok(Stopped::StillRunning(left)) }
}

/// The process to stop, pinned by a pidfd: the named one if it holds the lock on the
/// inspected file (or we cannot tell, as for another user's process), else the lowest process
/// that holds it. `None` when nobody holds it any more.
fn pin_lock_holder(pidfile: &Inspected, named: Option<u32>) -> Result<Option<Pinned>, StopError> {
    let (dev, ino) = pidfile.identity();
    if let Some(holder) = process::pin_lock_holder(named, dev, ino) {
        return Ok(Some(holder));
    }
    match named {
        Some(named) if process::is_alive(named) => Err(StopError::NotTheHolder(named)),
        None if pidfile.is_locked().unwrap_or(false) => Err(StopError::NoPid),
        _ => Ok(None),
    }
}

/// Stops the process `pid` (pinned by a pidfd) and its process group, when it leads one of its
/// own session, by following `schedule`; returns the pids still alive at the end.
///
/// The pid is pinned when this is called: call it only for a child of the caller not reaped
/// yet (its pid cannot name a later process); any other process, pin it while it is known to
/// be the one meant and call [`stop_pinned`].
///
/// # Errors
/// [`StopError::Signal`] when `pidfd_open(2)` or `kill(2)` fails (other than for a process
/// already gone).
pub fn stop_process(pid: u32, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
    match Pinned::open(pid) {
        Ok(main) => stop_pinned(main, schedule),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(Vec::new()),
        Err(e) => Err(StopError::Signal(pid, e)),
    }
}

/// Stops the pinned process `main` and its process group, when it leads one of its own
/// session, by following `schedule` (`pidfd_send_signal(2)`, `kill(2)` of the group while a
/// pinned member is seen in it, `poll(2)`); returns the pids still alive at the end.
///
/// # Errors
/// [`StopError::Signal`] when `kill(2)` or `pidfd_send_signal(2)` fails (other than for a
/// process already gone).
///
/// ```no_run
/// use daemonctx::stop::{Schedule, stop_pinned};
/// let main = daemonctx::process::Pinned::open(4242)?;
/// let left = stop_pinned(main, &Schedule::escalating(libc::SIGTERM, Default::default(), Default::default()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stop_pinned(main: Pinned, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
    Targets::new(main, None).follow(schedule)
}

/// What a stop signals and waits for: the daemon, its group, and the processes found later
/// (members of the group that outlived the daemon, holders of the pidfile's lock), each
/// pinned by a pidfd.
struct Targets<'a> {
    main: Pinned,
    group: Option<u32>,
    /// A [`process::boot_ticks`] value read before the daemon was last seen unreaped: a
    /// process that started at or after it may have taken the group's number once the daemon
    /// was reaped.
    unreaped_at: u64,
    others: Vec<Pinned>,
    pidfile: Option<&'a Inspected>,
    last_signal: Option<i32>,
}

impl<'a> Targets<'a> {
    fn new(main: Pinned, pidfile: Option<&'a Inspected>) -> Targets<'a> {
        let group = own_group(&main);
        let unreaped_at = process::boot_ticks(); // main was just pinned alive
        Targets { main, group, unreaped_at, others: Vec::new(), pidfile, last_signal: None }
    }

    /// Follows the schedule; the pids still alive (or still holding the lock) at the end.
    fn follow(mut self, schedule: &Schedule) -> Result<Vec<u32>, StopError> {
        let mut left = Vec::new();
        let mut index = 0;
        while index < schedule.0.len() {
            match schedule.0[index] {
                ScheduleItem::Signal(signal) => self.send(signal)?,
                ScheduleItem::Wait(timeout) => {
                    // A schedule not from the parser may hold a wait past what an Instant holds.
                    let deadline = Instant::now().checked_add(timeout).unwrap_or_else(far_future);
                    left = self.wait_gone(deadline);
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
            left = self.wait_gone(Instant::now());
        }
        Ok(left)
    }

    /// `kill(2)` to the daemon's group (while a pinned member is seen in it), or
    /// `pidfd_send_signal(2)` to the daemon alone; `pidfd_send_signal(2)` to every other
    /// target. `SIGKILL` also goes to every descendant of a target still alive: a supervisor's
    /// COMMAND runs in a process group of its own, and a supervisor killed outright would leave
    /// it running.
    fn send(&mut self, signal: i32) -> Result<(), StopError> {
        self.last_signal = Some(signal);
        if signal == libc::SIGKILL {
            process::signal_descendants(&self.main, signal);
            for other in &self.others {
                process::signal_descendants(other, signal);
            }
        }
        let result = match self.group.filter(|g| self.group_seen(*g)) {
            // A pinned member was just seen in the group, the daemon's own (checked when it
            // was pinned).
            Some(pgid) => process::signal_group(pgid, signal),
            None => self.main.signal(signal),
        };
        for other in &self.others {
            let _ = other.signal(signal);
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()), // already gone
            Err(e) => Err(StopError::Signal(self.main.pid(), e)),
        }
    }

    /// Whether a pinned target is alive in process group `pgid` right now.
    fn group_seen(&self, pgid: u32) -> bool {
        std::iter::once(&self.main)
            .chain(&self.others)
            .any(|p| process::stat_if_alive(p).is_some_and(|s| s.pgrp == pgid))
    }

    /// Waits until the daemon, every member of its group and every holder of the pidfile's
    /// lock are gone, or the deadline passes. Returns the pids still alive. Holders found
    /// here get the signal the schedule last sent.
    fn wait_gone(&mut self, deadline: Instant) -> Vec<u32> {
        if !self.main.wait_exit(deadline) {
            return vec![self.main.pid()];
        }
        // The daemon's zombie stays in its group until its parent reaps it, which is at once
        // in the common case: wait a moment for that rather than scan /proc for members.
        if let Some(pgid) = self.group
            && process::group_exists(pgid)
        {
            self.note_unreaped();
            if !self.main.wait_reaped(deadline.min(Instant::now() + REAP_GRACE))
                || process::group_exists(pgid)
            {
                let members = self.pin_group_members(pgid);
                self.add(members);
            }
        }
        loop {
            self.others.retain(|other| !other.wait_exit(deadline));
            if !self.others.is_empty() {
                return self.others.iter().map(Pinned::pid).collect();
            }
            let Some(pidfile) = self.pidfile else { return Vec::new() };
            if !pidfile.is_locked().unwrap_or(false) {
                return Vec::new();
            }
            let (dev, ino) = pidfile.identity();
            let holders = process::pin_lock_holders(dev, ino, usize::MAX);
            if holders.is_empty() {
                return Vec::new(); // held by nobody we can see: `stop` reports it
            }
            if let Some(signal) = self.last_signal {
                holders.iter().for_each(|holder| drop(holder.signal(signal)));
            }
            self.add(holders);
            if Instant::now() >= deadline {
                return self.others.iter().map(Pinned::pid).collect();
            }
        }
    }

    /// Moves [`Targets::unreaped_at`] up to now if the daemon is not reaped yet.
    fn note_unreaped(&mut self) {
        let now = process::boot_ticks();
        if !self.main.is_reaped() {
            self.unreaped_at = now;
        }
    }

    /// The live members of the daemon's group `pgid`, pinned. While the daemon's zombie is
    /// unreaped it keeps the group's number, so whoever the scan finds in it then is the
    /// daemon's. Once the daemon is reaped the number may be another group's (a process that
    /// got it as its pid and called `setsid(2)`), all of whose members started after the reap:
    /// then only members that started before the daemon was last seen unreaped are taken.
    fn pin_group_members(&self, pgid: u32) -> Vec<Pinned> {
        let members = process::pin_group_members(pgid);
        if !self.main.is_reaped() {
            return members; // unreaped throughout the scan
        }
        let started_before =
            |p: &Pinned| process::stat_if_alive(p).is_some_and(|s| s.starttime < self.unreaped_at);
        members.into_iter().filter(started_before).collect()
    }

    /// Adds processes to the targets, skipping a pid already pinned.
    fn add(&mut self, found: Vec<Pinned>) {
        for pinned in found {
            if !self.others.iter().any(|other| other.pid() == pinned.pid()) {
                self.others.push(pinned);
            }
        }
    }
}

/// The daemon is gone: remove its pidfile if it was left (killed by SIGKILL, say), through
/// the directory opened at first. A lock still held by a process we cannot see means the
/// daemon is not stopped.
fn finish(pidfile: &Inspected, pid: u32) -> Result<Stopped, StopError> {
    let _ = pidfile.remove_if_stale();
    if pidfile.is_locked().unwrap_or(false) {
        return Ok(Stopped::StillRunning(Vec::new()));
    }
    Ok(Stopped::Stopped(pid))
}

/// The process group to signal: the daemon's, when the daemon's group is the one its own
/// session was created with (pgid = sid) and that group is not ours.
fn own_group(main: &Pinned) -> Option<u32> {
    let stat = process::stat_if_alive(main)?;
    let ours = nix::unistd::getpgrp().as_raw() as u32;
    (stat.pgrp > 1 && stat.pgrp == stat.session && stat.pgrp != ours).then_some(stat.pgrp)
}

/// A deadline no stop reaches: [`MAX_TIMEOUT`] from now.
fn far_future() -> Instant {
    Instant::now() + MAX_TIMEOUT
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
