//! Socket activation passed through: the descriptors and variables of systemd's
//! `sd_listen_fds(3)` protocol.
//!
//! A socket-activated service starts with `LISTEN_FDS=N`, `LISTEN_PID` naming it, and perhaps
//! `LISTEN_FDNAMES`; its sockets are descriptors 3 to 3+N-1. [`ListenFds::from_env`] reads
//! them as `sd_listen_fds(3)` does: only when `LISTEN_PID` is this process's own pid
//! (`getpid(2)`); variables meant for another process are ignored, and
//! [`crate::DaemonContext`] then removes them from an exec'd command's environment.
//!
//! When they are ours, the daemon keeps descriptors 3..3+N-1 open, and a command it executes
//! gets `LISTEN_PID` rewritten to its own pid: the entry is built before the fork with room for
//! the digits, and the process about to call `execve(2)` writes its pid there in place
//! (`write_pid`), with no allocation after the fork. `WATCHDOG_PID` (the service manager's
//! watchdog, `sd_watchdog_enabled(3)`) is rewritten the same way, so that a command can send
//! the `WATCHDOG=1` its supervisor passes on.

use std::os::fd::RawFd;

/// The variable naming the process the sockets are for.
pub const LISTEN_PID: &str = "LISTEN_PID";
/// The variable giving the number of sockets, from descriptor 3 up.
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// The variable naming the sockets, colon-separated.
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";

/// The variable naming the process the service manager's watchdog expects `WATCHDOG=1` from
/// (`sd_watchdog_enabled(3)`); rewritten like `LISTEN_PID`.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";
/// The watchdog's interval, in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// The most descriptors believed: more would be a garbled variable, not sockets.
const MAX_LISTEN_FDS: u32 = 65536;

/// Sockets passed to this process by socket activation.
///
/// ```
/// use daemonctx::activation::ListenFds;
///
/// match ListenFds::from_env() {
///     Some(sockets) => println!("activated with {} sockets", sockets.count()),
///     None => println!("not socket-activated"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenFds {
    count: u32,
}

impl ListenFds {
    /// The sockets passed to this process, as `sd_listen_fds(3)` finds them: `LISTEN_PID` must
    /// be the pid `getpid(2)` returns and `LISTEN_FDS` a positive number; otherwise `None`.
    /// Reads the environment only; no descriptor is touched.
    ///
    /// Call it before [`crate::DaemonContext::open`] detaches: the daemon keeps the sockets
    /// open, but its pid is no longer the one `LISTEN_PID` names, so a call made there finds
    /// none.
    pub fn from_env() -> Option<ListenFds> {
        let pid = std::env::var(LISTEN_PID).ok()?;
        let count = std::env::var(LISTEN_FDS).ok()?;
        ListenFds::parse(&pid, &count, std::process::id())
    }

    /// `sd_listen_fds(3)`'s check on the two variables' values, for the process `own_pid`.
    fn parse(pid: &str, count: &str, own_pid: u32) -> Option<ListenFds> {
        if pid.parse::<u32>().ok()? != own_pid {
            return None;
        }
        Some(ListenFds { count: parse_count(count)? })
    }

    /// How many sockets were passed.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The passed descriptors: 3, 4, … up to 3+N-1.
    ///
    /// ```no_run
    /// use std::os::fd::FromRawFd;
    ///
    /// let sockets = daemonctx::activation::ListenFds::from_env().expect("socket-activated");
    /// for fd in sockets.fds() {
    ///     // SAFETY: the descriptor was passed to this process, and nothing else owns it.
    ///     let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    ///     # drop(listener);
    /// }
    /// ```
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + use<> {
        LISTEN_FDS_START..LISTEN_FDS_START + self.count as RawFd
    }
}

/// `LISTEN_FDS`'s value as it is believed: a number from 1 to [`MAX_LISTEN_FDS`].
pub(crate) fn parse_count(count: &str) -> Option<u32> {
    count.parse::<u32>().ok().filter(|n| (1..=MAX_LISTEN_FDS).contains(n))
}

/// Whether the service manager's watchdog is meant for this process: `WATCHDOG_PID` is unset
/// (then `WATCHDOG_USEC` alone says so) or names the pid `getpid(2)` returns, as
/// `sd_watchdog_enabled(3)` checks.
///
/// ```
/// if !daemonctx::activation::watchdog_is_ours() {
///     // a command started from here must not think the watchdog is its own
/// }
/// ```
pub fn watchdog_is_ours() -> bool {
    match std::env::var(WATCHDOG_PID) {
        Ok(pid) => pid.parse::<u32>().is_ok_and(|pid| pid == std::process::id()),
        Err(_) => true,
    }
}

/// Whether `name` is one of the three variables of the protocol.
///
/// ```
/// use daemonctx::activation::is_activation_variable;
///
/// assert!(is_activation_variable(b"LISTEN_FDNAMES"));
/// assert!(!is_activation_variable(b"NOTIFY_SOCKET"));
/// ```
pub fn is_activation_variable(name: &[u8]) -> bool {
    [LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES].iter().any(|v| v.as_bytes() == name)
}

/// How many bytes a pid's decimal digits may take (`u32::MAX` has 10).
pub(crate) const PID_DIGITS: usize = 10;

/// Writes `pid` in decimal into `slot` (at least [`PID_DIGITS`] + 1 bytes), followed by a NUL.
/// Async-signal-safe: no allocation, no locks; for the process about to `execve(2)`.
pub(crate) fn write_pid(slot: &mut [u8], pid: u32) {
    let mut buf = [0u8; 12];
    let line = crate::pidfile::format_pid(pid, &mut buf);
    let digits = &line[..line.len() - 1]; // without the newline
    slot[..digits.len()].copy_from_slice(digits);
    slot[digits.len()] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn believes_only_variables_naming_this_process() {
        assert_eq!(ListenFds::parse("42", "2", 42), Some(ListenFds { count: 2 }));
        assert_eq!(ListenFds::parse("41", "2", 42), None);
        assert_eq!(ListenFds::parse("42", "0", 42), None);
        assert_eq!(ListenFds::parse("42", "-1", 42), None);
        assert_eq!(ListenFds::parse("x", "1", 42), None);
        assert_eq!(ListenFds::parse("42", "1", 42).unwrap().fds().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn pid_is_written_in_place_with_its_nul() {
        let mut slot = [b'#'; PID_DIGITS + 1];
        write_pid(&mut slot, 4194304);
        assert_eq!(&slot[..8], b"4194304\0");
        write_pid(&mut slot, u32::MAX);
        assert_eq!(&slot[..], b"4294967295\0");
        write_pid(&mut slot, 0);
        assert_eq!(&slot[..2], b"0\0");
    }
}
