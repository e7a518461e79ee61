//! Looking at other processes: `/proc/PID/stat` (state, parent, group, session), the process
//! tree, who holds a pidfile's lock (`/proc/PID/fdinfo`), and pidfds.
//!
//! A pidfd (`pidfd_open(2)`) pins a process: signals sent through it (`pidfd_send_signal(2)`)
//! can never reach a later process that reuses the pid, and `poll(2)` on it returns when the
//! process exits, so nothing here sleeps to wait.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

/// What `/proc/PID/stat` says about a process.
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
}

/// Reads `/proc/PID/stat`; `None` when the process is gone (or hidden).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: the fields start after the last ')'.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut number = || fields.next()?.parse().ok();
    Some(Stat { state, ppid: number()?, pgrp: number()?, session: number()? })
}

/// Whether `pid` runs: it exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The pids of live processes (zombies excluded), from `/proc`.
fn live_processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
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

/// Every live descendant of `ancestor`, and the process groups whose live members are all
/// descendants (other than `ancestor`'s own group): groups that `kill(2)` with a negative pid
/// can signal without touching anyone else. One scan of `/proc/*/stat`.
///
/// A group signal reaches every member at once, even one being forked right then, where a
/// signal per pid can miss a child born after the scan.
pub fn descendants_and_their_groups(ancestor: u32) -> (Vec<u32>, Vec<u32>) {
    let processes = live_processes();
    let tree = descendants_in(&processes, ancestor);
    let own = processes.iter().find(|(pid, _)| *pid == ancestor).map(|(_, s)| s.pgrp);
    let mut groups: Vec<u32> = processes
        .iter()
        .filter(|(pid, _)| tree.contains(pid))
        .map(|(_, s)| s.pgrp)
        .filter(|group| *group > 1 && Some(*group) != own)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups.retain(|group| {
        processes.iter().filter(|(_, s)| s.pgrp == *group).all(|(pid, _)| tree.contains(pid))
    });
    (tree, groups)
}

/// Sends `signal` to every process group made only of `ancestor`'s descendants, then to every
/// other descendant (`kill(2)`), after one scan of `/proc` ([`descendants_and_their_groups`]):
/// each process found gets the signal once. `ancestor` itself is not signalled. What a
/// descendant forks between the scan and the signal is reached through its group, when that
/// group is one of those; call again to catch the rest.
pub fn signal_descendants(ancestor: u32, signal: i32) {
    let (tree, groups) = descendants_and_their_groups(ancestor);
    for group in &groups {
        // SAFETY: kill takes plain integers; every member of the group descends from ancestor,
        // and the group is not ancestor's own.
        unsafe { libc::kill(-(*group as i32), signal) };
    }
    // A member of a signalled group got it already: a second SIGTERM can turn a graceful stop
    // into an abrupt one.
    let in_signalled_group = |pid: &u32| stat(*pid).is_some_and(|s| groups.contains(&s.pgrp));
    for pid in tree.into_iter().filter(|pid| !in_signalled_group(pid)) {
        // SAFETY: kill takes plain integers; pid descends from ancestor (a pid can be reused
        // between the /proc scan and this call: the window is a few microseconds).
        unsafe { libc::kill(pid as i32, signal) };
    }
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

/// The processes holding a lock on the file at `path` (open-file-description locks, as
/// [`crate::Pidfile`] takes them): each has a descriptor on the file's inode whose
/// `/proc/PID/fdinfo` lists an `OFDLCK`. Lowest pid first; processes this user may not inspect
/// are not seen. A process that only has the file open (`tail -f`) is not a holder.
pub fn lock_holders(path: &Path) -> Vec<u32> {
    let Ok(target) = std::fs::metadata(path) else { return Vec::new() };
    let mut pids: Vec<u32> = live_processes()
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| holds_lock_on(*pid, target.dev(), target.ino()) == Some(true))
        .collect();
    pids.sort_unstable();
    pids
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
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(2)`: signals exactly the pinned process.
///
/// # Errors
/// The OS error (`ESRCH` once it has exited, `EPERM`).
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    let no_info: *const libc::siginfo_t = std::ptr::null();
    // SAFETY: pidfd is an open pidfd; a null siginfo sends as kill(2) would.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, no_info, 0)
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `poll(2)` on a pidfd until its process exits (true) or `deadline` passes (false).
pub fn wait_exit(pidfd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            n if n > 0 => return true,
            0 => return false,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            _ => return false,
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
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use std::os::unix::process::ExitStatusExt;
    wait_pid_exit(pid as u32, Instant::now() + timeout);
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(std::process::ExitStatus::from_raw(code << 8)),
        Ok(WaitStatus::Signaled(_, signal, core)) => {
            let raw = signal as i32 | if core { 0x80 } else { 0 };
            Some(std::process::ExitStatus::from_raw(raw))
        }
        _ => None,
    }
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
    fn this_process_is_in_no_group_of_its_own_descendants() {
        let (tree, groups) = descendants_and_their_groups(std::process::id());
        assert!(!tree.contains(&std::process::id()));
        let own = stat(std::process::id()).unwrap().pgrp;
        assert!(!groups.contains(&own));
    }
}
