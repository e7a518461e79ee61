//! Looking at other processes: `/proc/PID/stat` (state, parent, group, session), the process
//! tree, who holds a pidfile's lock (`/proc/PID/fdinfo`), and pidfds.
//!
//! A pidfd (`pidfd_open(2)`) pins a process: signals sent through it (`pidfd_send_signal(2)`)
//! can never reach a later process that reuses the pid, and `poll(2)` on it returns when the
//! process exits, so nothing here sleeps to wait.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What `/proc/PID/stat` says about a process (proc_pid_stat(5)).
///
/// ```
/// let me = daemonctx::process::stat(std::process::id()).unwrap();
/// assert_eq!(me.ppid, std::os::unix::process::parent_id());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The state letter: `R`, `S`, `D`, `Z` (zombie), ….
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// The process group.
    pub pgrp: u32,
    /// The session.
    pub session: u32,
    /// The controlling terminal's device number; 0 for none.
    pub tty_nr: i32,
    /// CPU time spent in user mode, in clock ticks (`sysconf(_SC_CLK_TCK)` a second).
    pub utime: u64,
    /// CPU time spent in kernel mode, in clock ticks.
    pub stime: u64,
    /// When the process started, in clock ticks since boot (`sysconf(_SC_CLK_TCK)` a second),
    /// on the clock of [`boot_ticks`].
    pub starttime: u64,
}

/// Reads `/proc/PID/stat` (`open(2)`, `read(2)`); `None` when the process is gone (or hidden).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses the text of `/proc/PID/stat`.
fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may contain spaces and parentheses: the fields start after the last ')'.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut number = || fields.next()?.parse().ok();
    let (ppid, pgrp, session) = (number()?, number()?, number()?);
    let tty_nr = fields.next()?.parse().ok()?; // field 7
    // Fields 8 to 13 (tpgid … cmajflt) come before utime and stime, fields 14 and 15.
    let utime = fields.nth(6)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    // Fields 16 to 21 (cutime … itrealvalue) come before starttime, field 22.
    let starttime = fields.nth(6)?.parse().ok()?;
    Some(Stat { state, ppid, pgrp, session, tty_nr, utime, stime, starttime })
}

/// `CLOCK_BOOTTIME` now, in clock ticks (`clock_gettime(2)`, `sysconf(_SC_CLK_TCK)`): the clock
/// of [`Stat::starttime`], rounded down as the kernel rounds it. A process whose `starttime`
/// is below a value read here had started before it was read.
///
/// ```
/// let me = daemonctx::process::stat(std::process::id()).unwrap();
/// assert!(me.starttime <= daemonctx::process::boot_ticks());
/// ```
pub fn boot_ticks() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    use nix::unistd::{SysconfVar, sysconf};
    let now = clock_gettime(ClockId::CLOCK_BOOTTIME).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    let per_second = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100).max(1) as u64;
    let nanos = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    nanos / (1_000_000_000 / per_second)
}

/// Whether `pid` runs: it exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The pids listed in `/proc` (`getdents64(2)`); empty when it cannot be read.
fn proc_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect()
}

/// The pids of live processes (zombies excluded), from `/proc`.
fn live_processes() -> Vec<(u32, Stat)> {
    proc_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| s.state != 'Z')
        .collect()
}

/// Every live descendant of `ancestor`, following parent links (a scan of `/proc/*/stat`).
pub fn descendants(ancestor: u32) -> Vec<u32> {
    descendants_in(&live_processes(), ancestor)
}

fn descendants_in(processes: &[(u32, Stat)], ancestor: u32) -> Vec<u32> {
    let mut found = vec![ancestor];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(processes.iter().filter(|(_, s)| s.ppid == parent).map(|(pid, _)| *pid));
        index += 1;
    }
    found.remove(0);
    found
}

/// A process pinned by a pidfd (`pidfd_open(2)`), with the pid it had when it was pinned.
/// Signals go through the pidfd, so they can never reach a later process that reuses the pid.
#[derive(Debug)]
pub struct Pinned {
    pid: u32,
    fd: OwnedFd,
}

impl Pinned {
    /// Pins the process `pid` now is: `pidfd_open(2)`.
    ///
    /// # Errors
    /// `ESRCH` when there is no such process; other OS errors of `pidfd_open(2)`.
    ///
    /// ```
    /// let me = daemonctx::process::Pinned::open(std::process::id()).unwrap();
    /// assert!(!me.has_exited());
    /// ```
    pub fn open(pid: u32) -> io::Result<Pinned> {
        Ok(Pinned { pid, fd: pidfd_open(pid)? })
    }

    /// The pid the process had when pinned.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The pidfd.
    pub fn pidfd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Whether the process has exited (a zombie counts as exited): `poll(2)` on the pidfd,
    /// without waiting.
    pub fn has_exited(&self) -> bool {
        wait_exit(&self.fd, Instant::now())
    }

    /// Whether the exited process has been reaped by its parent: `pidfd_send_signal(2)` with
    /// signal 0 answers `ESRCH` only then (a zombie still takes it). Until it is reaped, its
    /// pid, process group and session numbers stay in use: none can name a new process.
    ///
    /// ```
    /// let me = daemonctx::process::Pinned::open(std::process::id()).unwrap();
    /// assert!(!me.is_reaped());
    /// ```
    pub fn is_reaped(&self) -> bool {
        matches!(self.signal(0), Err(e) if e.raw_os_error() == Some(libc::ESRCH))
    }

    /// `pidfd_send_signal(2)`: `signal` to exactly this process.
    ///
    /// # Errors
    /// The OS error (`ESRCH` once it has exited, `EPERM`).
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        pidfd_send_signal(&self.fd, signal)
    }

    /// `pidfd_send_signal(2)` with a `siginfo_t` as `sigqueue(3)` fills it: `signal` to exactly
    /// this process, with `value` as the integer it reads (`si_int`; `ssi_int` from a
    /// `signalfd(2)`), `si_code` `SI_QUEUE`, and this process's pid and uid.
    ///
    /// # Errors
    /// The OS error (`ESRCH` once it has exited, `EPERM`, `EINVAL`).
    ///
    /// ```no_run
    /// let supervisor = daemonctx::process::Pinned::open(4242)?;
    /// supervisor.queue_signal(libc::SIGRTMIN(), libc::SIGHUP)?; // "pass SIGHUP on"
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn queue_signal(&self, signal: i32, value: i32) -> io::Result<()> {
        crate::sys::pidfd::send_queued(self.fd.as_fd(), signal, value)
    }

    /// `poll(2)` on the pidfd until the process exits (true) or `deadline` passes (false).
    pub fn wait_exit(&self, deadline: Instant) -> bool {
        wait_exit(&self.fd, deadline)
    }

    /// `poll(2)` on the pidfd until the exited process has been reaped by its parent (the
    /// kernel reports `POLLHUP` then, since Linux 6.9 or so) or `deadline` passes. Until it is
    /// reaped, a zombie still counts as a member of its process group.
    pub fn wait_reaped(&self, deadline: Instant) -> bool {
        poll_until(&self.fd, PollFlags::empty(), deadline)
    }
}

/// `/proc/PID/stat` of a pinned process that is still alive: the stat is read first, then the
/// pidfd must say the process has not exited, so the pid number still named this very process
/// when the stat was read. `None` once it has exited.
///
/// ```
/// use daemonctx::process::{Pinned, stat_if_alive};
/// let me = Pinned::open(std::process::id()).unwrap();
/// assert_eq!(stat_if_alive(&me).unwrap().ppid, std::os::unix::process::parent_id());
/// ```
pub fn stat_if_alive(pinned: &Pinned) -> Option<Stat> {
    let stat = stat(pinned.pid)?;
    (!pinned.has_exited()).then_some(stat)
}

/// The live descendants of the pinned `ancestor`, each pinned by a pidfd while it was verified
/// to be a child of a pinned, live parent; with their `/proc/PID/stat`. One scan of `/proc`.
/// Empty once `ancestor` has exited: no target is ever derived from a pid number whose process
/// is gone.
fn pin_descendants(ancestor: &Pinned, processes: &[(u32, Stat)]) -> Vec<(Pinned, Stat)> {
    if ancestor.has_exited() {
        return Vec::new();
    }
    let mut found: Vec<(Pinned, Stat)> = Vec::new();
    let mut frontier: Vec<Option<usize>> = vec![None]; // None: the ancestor itself
    while let Some(parent_index) = frontier.pop() {
        let parent = parent_index.map_or(ancestor, |i| &found[i].0);
        let parent_pid = parent.pid;
        let children: Vec<u32> =
            processes.iter().filter(|(_, s)| s.ppid == parent_pid).map(|(pid, _)| *pid).collect();
        for child in children {
            let parent = parent_index.map_or(ancestor, |i| &found[i].0);
            let Ok(pinned) = Pinned::open(child) else { continue };
            // The child's parent link read after the pidfd was opened, and the parent still
            // alive after that: the pinned process really is (or was) this parent's child.
            let Some(stat) = stat(child).filter(|s| s.ppid == parent_pid && s.state != 'Z') else {
                continue;
            };
            if parent.has_exited() {
                continue;
            }
            found.push((pinned, stat));
            frontier.push(Some(found.len() - 1));
        }
    }
    found
}

/// Sends `signal` to every live descendant of the pinned `ancestor` through its pidfd
/// (`pidfd_send_signal(2)`), and first to every process group made only of them (other than
/// `ancestor`'s own) with `kill(2)`, each while a pinned member was just seen alive in it; a
/// member of a group signalled so is not signalled again, so each process gets it once.
/// One scan of `/proc`. `ancestor` itself is not signalled; nothing is once it has exited.
///
/// A group signal reaches every member at once, even one being forked right then, where a
/// signal per process can miss a child born after the scan: call again to catch the rest.
///
/// ```
/// let me = daemonctx::process::Pinned::open(std::process::id()).unwrap();
/// daemonctx::process::signal_descendants(&me, 0); // signal 0: only checks
/// ```
pub fn signal_descendants(ancestor: &Pinned, signal: i32) {
    signal_descendants_but(ancestor, signal, None);
}

/// As [`signal_descendants`] (`kill(2)`, `pidfd_send_signal(2)`, one scan of `/proc`), but
/// leaves out process group `signalled` and its members: a
/// group the caller has just sent `signal` itself (a supervisor's stop signals COMMAND's group
/// first, then looks for what left it), so that no member gets it twice.
///
/// ```
/// let me = daemonctx::process::Pinned::open(std::process::id()).unwrap();
/// let group = nix::unistd::getpgrp().as_raw() as u32;
/// daemonctx::process::signal_descendants_outside_group(&me, 0, group); // 0: only checks
/// ```
pub fn signal_descendants_outside_group(ancestor: &Pinned, signal: i32, signalled: u32) {
    signal_descendants_but(ancestor, signal, Some(signalled));
}

fn signal_descendants_but(ancestor: &Pinned, signal: i32, signalled_group: Option<u32>) {
    let processes = live_processes();
    let tree = pin_descendants(ancestor, &processes);
    let own = stat_if_alive(ancestor).map(|s| s.pgrp);
    let mut groups: Vec<u32> = tree.iter().map(|(_, s)| s.pgrp).collect();
    groups.sort_unstable();
    groups.dedup();
    groups.retain(|group| *group > 1 && Some(*group) != own && Some(*group) != signalled_group);
    let tree_pids: Vec<u32> = tree.iter().map(|(p, _)| p.pid).collect();
    groups.retain(|group| {
        processes.iter().filter(|(_, s)| s.pgrp == *group).all(|(pid, _)| tree_pids.contains(pid))
    });
    let mut signalled: Vec<u32> = signalled_group.into_iter().collect();
    for group in groups {
        let member_seen =
            tree.iter().any(|(p, _)| stat_if_alive(p).is_some_and(|s| s.pgrp == group));
        if member_seen {
            // A pinned descendant was a live member of the group just now, so the group
            // number is still that group's.
            let _ = crate::sys::signal::kill_group(group, signal);
            signalled.push(group);
        }
    }
    // A member of a signalled group got it already: a second SIGTERM can turn a graceful stop
    // into an abrupt one.
    for (pinned, stat) in &tree {
        if !signalled.contains(&stat.pgrp) {
            let _ = pinned.signal(signal);
        }
    }
}

/// The live members of process group `pgid`, each pinned by a pidfd and seen in the group
/// after it was pinned. One scan of `/proc`.
pub fn pin_group_members(pgid: u32) -> Vec<Pinned> {
    live_processes()
        .into_iter()
        .filter(|(_, s)| s.pgrp == pgid)
        .filter_map(|(pid, _)| Pinned::open(pid).ok())
        .filter(|p| stat_if_alive(p).is_some_and(|s| s.pgrp == pgid && s.state != 'Z'))
        .collect()
}

/// `kill(2)` of process group `pgid` with `signal`, any number (real-time ones too; 0 only
/// checks). No `/proc` scan.
///
/// A group's number can name a later group once every member is gone: call it only while the
/// number is known to be the group's, e.g. while its leader is an unreaped child of the caller
/// (a zombie keeps its pid and its group's number in use) or a member pinned by a pidfd was
/// just seen in it.
///
/// # Errors
/// The OS error: `ESRCH` for a group without members, `EPERM`, `EINVAL`.
///
/// ```
/// let ours = nix::unistd::getpgrp().as_raw() as u32;
/// daemonctx::process::signal_group(ours, 0)?; // signal 0: only checks
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal_group(pgid: u32, signal: i32) -> io::Result<()> {
    crate::sys::signal::kill_group(pgid, signal).map_err(io::Error::from_raw_os_error)
}

/// `kill(2)` of the process `pid` with `signal`, any number (real-time ones too; 0 only
/// checks).
///
/// A pid names a later process once its process has been reaped: call it only for a child of
/// the caller that has not been reaped yet (`waitpid(2)`); anything else goes through a pidfd
/// ([`Pinned::signal`]).
///
/// # Errors
/// The OS error: `ESRCH`, `EPERM`, `EINVAL`.
///
/// ```
/// daemonctx::process::signal_unreaped_child(std::process::id(), 0)?; // signal 0: only checks
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal_unreaped_child(pid: u32, signal: i32) -> io::Result<()> {
    crate::sys::signal::kill_pid(pid, signal).map_err(io::Error::from_raw_os_error)
}

/// Whether process group `pgid` has any member: `kill(2)` with signal 0. No `/proc` scan. A
/// zombie not yet reaped still counts as a member.
///
/// ```
/// let ours = nix::unistd::getpgrp().as_raw() as u32;
/// assert!(daemonctx::process::group_exists(ours));
/// ```
pub fn group_exists(pgid: u32) -> bool {
    crate::sys::signal::kill_group(pgid, 0).map_or_else(|e| e != libc::ESRCH, |()| true)
}

/// Whether `pid` is `ancestor` or descends from it.
pub fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        match stat(pid) {
            Some(s) if s.ppid > 1 => pid = s.ppid,
            _ => return false,
        }
    }
    false
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    live_processes().into_iter().filter(|(_, s)| s.pgrp == pgid).map(|(pid, _)| pid).collect()
}

/// How long a lock-holder scan may take at most: a host where other users keep many
/// processes with many descriptors open cannot make a status check or a stop hang.
pub const LOCK_SCAN_BUDGET: Duration = Duration::from_secs(2);

/// The processes holding a lock on inode `(dev, ino)` (open-file-description locks, as
/// [`crate::Pidfile`] takes them): each has a descriptor on the inode whose
/// `/proc/PID/fdinfo` lists an `OFDLCK`. Lowest pid first; at most `limit` of them; the scan
/// stops early after [`LOCK_SCAN_BUDGET`]. Processes this user may not inspect are not seen. A
/// process that only has the file open (`tail -f`) is not a holder.
///
/// This lists `/proc/*/fd` of every process: call it only when the lock is known to be held
/// and the holder is not the process the pidfile names.
///
/// ```
/// // Nobody holds a lock on inode 0.
/// assert!(daemonctx::process::lock_holders(0, 0, 1).is_empty());
/// ```
pub fn lock_holders(dev: u64, ino: u64, limit: usize) -> Vec<u32> {
    let deadline = Instant::now() + LOCK_SCAN_BUDGET;
    let mut pids: Vec<u32> = Vec::new();
    let mut all = proc_pids();
    all.sort_unstable();
    for pid in all {
        if pids.len() >= limit || Instant::now() >= deadline {
            break;
        }
        if holds_lock_on(pid, dev, ino) == Some(true) && is_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// [`lock_holders`], each pinned by a pidfd and seen holding the lock after it was pinned.
///
/// ```no_run
/// let pidfile = daemonctx::pidfile::Inspected::open("/run/app.pid".as_ref())?;
/// let (dev, ino) = pidfile.identity(); // of the file opened, not of a second lookup
/// for holder in daemonctx::process::pin_lock_holders(dev, ino, 10) {
///     holder.signal(libc::SIGTERM)?; // pidfd_send_signal(2): never a reused pid
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pin_lock_holders(dev: u64, ino: u64, limit: usize) -> Vec<Pinned> {
    lock_holders(dev, ino, limit)
        .into_iter()
        .filter_map(|pid| Pinned::open(pid).ok())
        .filter(|p| holds_lock_on(p.pid, dev, ino) == Some(true) && !p.has_exited())
        .collect()
}

/// The process holding the lock on inode `(dev, ino)`, pinned by a pidfd: `named` (the pid a
/// pidfile names) when, pinned, it holds the lock (or its descriptors cannot be read, as for
/// another user's process) and has not exited since; else the lowest holder
/// ([`pin_lock_holders`]). `None` when no holder is seen.
///
/// ```no_run
/// let pidfile = daemonctx::pidfile::Inspected::open("/run/app.pid".as_ref())?;
/// let (dev, ino) = pidfile.identity();
/// if let Some(daemon) = daemonctx::process::pin_lock_holder(Some(4242), dev, ino) {
///     daemon.signal(libc::SIGHUP)?; // pidfd_send_signal(2)
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pin_lock_holder(named: Option<u32>, dev: u64, ino: u64) -> Option<Pinned> {
    if let Some(pid) = named
        && let Ok(pinned) = Pinned::open(pid)
        && holds_lock_on(pid, dev, ino) != Some(false)
        && !pinned.has_exited()
    {
        return Some(pinned);
    }
    pin_lock_holders(dev, ino, 1).pop()
}

/// Whether `pid` holds a lock on inode `(dev, ino)`; `None` when its descriptors cannot be read.
pub fn holds_lock_on(pid: u32, dev: u64, ino: u64) -> Option<bool> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let holds = entries.filter_map(Result::ok).any(|entry| {
        let on_file =
            std::fs::metadata(entry.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino);
        on_file && {
            let info = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
            std::fs::read_to_string(info).is_ok_and(|text| text.contains("OFDLCK"))
        }
    });
    Some(holds)
}

/// `pidfd_open(2)`: a descriptor that refers to this process for as long as it is open, even if
/// the pid is reused.
///
/// # Errors
/// `ESRCH` when there is no such process; other OS errors of `pidfd_open(2)`.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    crate::sys::pidfd::open(pid)
}

/// `pidfd_send_signal(2)`: signals exactly the pinned process.
///
/// # Errors
/// The OS error (`ESRCH` once it has exited, `EPERM`).
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    crate::sys::pidfd::send_signal(pidfd.as_fd(), signal)
}

/// `poll(2)` on a pidfd until its process exits (true) or `deadline` passes (false).
pub fn wait_exit(pidfd: &OwnedFd, deadline: Instant) -> bool {
    poll_until(pidfd, PollFlags::POLLIN, deadline)
}

/// `poll(2)` on `fd` for `events` (and `POLLHUP`, always reported) until one comes (true) or
/// `deadline` passes (false).
fn poll_until(fd: &OwnedFd, events: PollFlags, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), events)];
        match poll(&mut fds, timeout) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Waits until `pid` exits or `deadline` passes; true at once when there is no such process.
pub fn wait_pid_exit(pid: u32, deadline: Instant) -> bool {
    match pidfd_open(pid) {
        Ok(pidfd) => wait_exit(&pidfd, deadline),
        Err(_) => true,
    }
}

/// A process's exit status as a shell shows it: its code, or 128 + the signal that killed it.
pub fn shell_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The status a shell-style code stands for, as shells read `$?`: above 128, death by signal
/// code − 128 (when that is a signal number); else an exit with that code. The inverse of
/// [`shell_status`], but for a process that really exited with such a code.
pub fn status_from_shell(code: i32) -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match code - 128 {
        signal @ 1..=64 => std::process::ExitStatus::from_raw(signal),
        _ => std::process::ExitStatus::from_raw((code & 0xff) << 8),
    }
}

/// Waits up to `timeout` for the child `pid` to end and reaps it: `pidfd_open(2)`, `poll(2)`,
/// `waitpid(2)` with `WNOHANG`. `None` if it is not our child or still runs.
///
/// ```no_run
/// let child = std::process::Command::new("true").spawn()?;
/// let status = daemonctx::process::reap(child.id() as i32, std::time::Duration::from_secs(5));
/// assert!(status.is_some_and(|s| s.success()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn reap(pid: libc::pid_t, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    wait_pid_exit(pid as u32, Instant::now() + timeout);
    let status = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).ok()?;
    exit_status(status).map(|(_, status)| status)
}

/// A `waitpid(2)` result as std's `ExitStatus`, with the pid it is for: an exit, a death by
/// signal, or a stop (`WUNTRACED`: `stopped_signal()` is set); `None` for anything else (still
/// running, continued, a ptrace event). No system call.
///
/// ```
/// use nix::sys::wait::WaitStatus;
/// use nix::unistd::Pid;
///
/// let exited = WaitStatus::Exited(Pid::from_raw(7), 3);
/// let (pid, status) = daemonctx::process::exit_status(exited).unwrap();
/// assert_eq!((pid, status.code()), (7, Some(3)));
/// assert!(daemonctx::process::exit_status(WaitStatus::StillAlive).is_none());
/// ```
pub fn exit_status(status: nix::sys::wait::WaitStatus) -> Option<(u32, std::process::ExitStatus)> {
    use nix::sys::wait::WaitStatus;
    use std::os::unix::process::ExitStatusExt;
    let (pid, raw) = match status {
        WaitStatus::Exited(pid, code) => (pid, (code & 0xff) << 8),
        WaitStatus::Signaled(pid, signal, core) => {
            (pid, signal as i32 | if core { 0x80 } else { 0 })
        }
        WaitStatus::Stopped(pid, signal) => (pid, ((signal as i32) << 8) | 0x7f),
        _ => return None,
    };
    Some((pid.as_raw() as u32, std::process::ExitStatus::from_raw(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_this_process() {
        let me = stat(std::process::id()).unwrap();
        assert_ne!(me.state, 'Z');
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(descends_from(std::process::id(), me.ppid));
        assert!(!descends_from(me.ppid, std::process::id()));
        assert!(is_alive(std::process::id()));
    }

    #[test]
    fn parse_stat_reads_the_fields_after_the_last_parenthesis() {
        let text = "42 (a) b) (c) S 1 42 42 34816 42 4194560 10 0 0 0 7 3 0 0 20 0 1 0 \
                    12345 1000 100 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!((stat.state, stat.ppid, stat.pgrp, stat.session), ('S', 1, 42, 42));
        assert_eq!((stat.tty_nr, stat.utime, stat.stime, stat.starttime), (34816, 7, 3, 12345));
    }

    #[test]
    fn shell_status_round_trips() {
        use std::os::unix::process::ExitStatusExt;
        for raw in [0, 3 << 8, 255 << 8, libc::SIGTERM, libc::SIGKILL] {
            let status = std::process::ExitStatus::from_raw(raw);
            assert_eq!(status_from_shell(shell_status(status)), status);
        }
        assert_eq!(status_from_shell(143).signal(), Some(libc::SIGTERM));
        assert_eq!(status_from_shell(128).code(), Some(128));
    }

    #[test]
    fn a_pinned_process_is_not_its_own_descendant() {
        let me = Pinned::open(std::process::id()).unwrap();
        assert!(!me.has_exited());
        let tree = pin_descendants(&me, &live_processes());
        assert!(tree.iter().all(|(p, _)| p.pid() != std::process::id()));
    }
}
