//! `daemonize --send SIGNAL -p FILE`: a signal for the daemon's COMMAND (a reload, say).
//!
//! The process holding the pidfile's lock is pinned with `pidfd_open(2)`. When it is COMMAND
//! itself (exec mode) it gets SIGNAL (`pidfd_send_signal(2)`). When it is a supervisor (it blocks
//! [`relay_signal`], read from its `signalfd(2)`, and was started with `--supervise`), it gets
//! [`relay_signal`] with SIGNAL as the queued value (`SI_QUEUE`, as `sigqueue(3)` sends), and
//! passes SIGNAL on to COMMAND, whatever `--forward` says: so `--send HUP` reaches COMMAND while
//! a plain SIGHUP to the supervisor only reopens its log files. The ordering rule: /proc is
//! read while the pidfd pins the process, and trusted only if the process has not exited by
//! then.

use std::path::Path;

use daemonctx::Status;
use daemonctx::pidfile::Inspected;
use daemonctx::process::{self, Pinned};

use crate::cli::{Cli, code::send::*};
use crate::message;

/// The real-time signal that asks a supervisor to pass the queued signal on to COMMAND:
/// `SIGRTMIN`, the first one the C library leaves to programs.
pub fn relay_signal() -> i32 {
    libc::SIGRTMIN()
}

/// Sends `signal` to the COMMAND of the daemon that the `-p` pidfile names; an exit code of
/// [`crate::cli::code::send`].
pub fn send(cli: &Cli, signal: i32) -> u8 {
    let path = cli.pidfile.as_deref().expect("clap requires --pidfile with --send");
    let name = signal_name(signal);
    let daemon = match pin_daemon(path) {
        Ok(Some(pinned)) => pinned,
        Ok(None) => {
            eprintln!("daemonize: cannot send {name}: {} names no running daemon", path.display());
            return NOT_RUNNING;
        }
        Err(why) => {
            eprintln!("daemonize: cannot send {name} to the daemon of {}: {why}", path.display());
            return TROUBLE;
        }
    };
    let pid = daemon.pid();
    let supervised = is_supervisor(pid) && !daemon.has_exited();
    let sent = match supervised {
        true => daemon.queue_signal(relay_signal(), signal),
        false => daemon.signal(signal),
    };
    match sent {
        Ok(()) if supervised => {
            println!("sent {name} to COMMAND through its supervisor (pid {pid})");
            SENT
        }
        Ok(()) => {
            println!("sent {name} (pid {pid})");
            SENT
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            eprintln!("daemonize: cannot send {name}: pid {pid} has exited");
            NOT_RUNNING
        }
        Err(e) => {
            eprintln!("daemonize: cannot send {name} to pid {pid}: {}", message::os_text(&e));
            TROUBLE
        }
    }
}

/// The process holding the pidfile's lock, pinned by a pidfd: the pid it names if that one
/// holds the lock, else the lowest holder (a `-l` lock file names nobody). `None` when nobody
/// holds it.
fn pin_daemon(path: &Path) -> Result<Option<Pinned>, String> {
    let pidfile = match Inspected::open(path) {
        Ok(pidfile) => pidfile,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(message::os_text(&e)),
    };
    let named = match pidfile.status() {
        Status::Absent | Status::Stale(_) => return Ok(None),
        Status::Unknown(e) => return Err(message::chain(&e)),
        Status::Running(named) => named,
    };
    let (dev, ino) = pidfile.identity();
    Ok(process::pin_lock_holder(named, dev, ino))
}

/// Whether `pid` is a `daemonize --supervise`: it blocks [`relay_signal`] (it reads it from its
/// signalfd) and `--supervise` is among its arguments (`/proc/PID/cmdline`). A COMMAND that
/// happens to block the signal itself is still signalled directly.
fn is_supervisor(pid: u32) -> bool {
    let supervise_argument = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == b"--supervise"));
    supervise_argument && blocks_signal(pid, relay_signal())
}

/// Whether `pid` blocks `signal` (`SigBlk` in `/proc/PID/status`): a supervisor reads it from
/// its signalfd.
fn blocks_signal(pid: u32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    mask.is_some_and(|mask| (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0)
}

/// `SIGHUP`, or `signal 40` for one without a name.
fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(name) => name.to_string(),
        Err(_) => format!("signal {signal}"),
    }
}
