//! Running commands and waiting for what they leave behind, always bounded by DEADLINE.

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use daemonctx::process::Pinned;

use crate::tools::Run;
use crate::{DEADLINE, procfs};

/// Runs `command` to its exit, for at most [`DEADLINE`]: spawn, `pidfd_open(2)`, `poll(2)` on
/// the pidfd, `waitpid(2)`. The errors of spawning it.
///
/// # Panics
/// When it still runs after [`DEADLINE`]: it is first killed through its pidfd and reaped.
pub fn status_within_deadline(command: &mut Command) -> std::io::Result<ExitStatus> {
    let mut child = command.spawn()?;
    let pidfd = match daemonctx::process::pidfd_open(child.id()) {
        Ok(pidfd) => pidfd,
        Err(e) => {
            // Our unreaped child: its pid cannot have been reused.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    if !daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE) {
        let _ = daemonctx::process::pidfd_send_signal(&pidfd, libc::SIGKILL);
        if daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE) {
            let _ = child.wait();
        }
        panic!("{command:?} still ran after {DEADLINE:?}; killed it");
    }
    child.wait()
}

/// Panics with the command, its status and its stderr unless it exited 0.
pub fn check_exit(command: &Command, status: std::io::Result<ExitStatus>, run: &Run) {
    let status = status.unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !status.success() {
        let stderr = fs::read_to_string(run.dir.join("stderr")).unwrap_or_default();
        panic!("{command:?} failed: {status}\nstderr: {stderr}");
    }
}

/// Calls `probe` until it gives a value, for at most [`DEADLINE`], 200 µs apart.
pub fn wait_for<T>(probe: impl FnMut() -> Option<T>) -> Option<T> {
    poll(probe, Duration::from_micros(200))
}

/// Calls `probe` until it gives a value, for at most [`DEADLINE`], 20 µs apart (the timer slack
/// is 1 ns: [`sys::tighten_timer_slack`]), so that the time it returns at is precise.
pub fn wait_for_quickly<T>(probe: impl FnMut() -> Option<T>) -> Option<T> {
    poll(probe, Duration::from_micros(20))
}

/// Calls `probe` until it gives a value, for at most [`DEADLINE`], `interval` apart.
fn poll<T>(mut probe: impl FnMut() -> Option<T>, interval: Duration) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// The pid in `pidfile`, if it names a running (not zombie) process.
pub fn running_pid_in(pidfile: &Path) -> Option<u32> {
    let pid = fs::read_to_string(pidfile).ok()?.trim().parse::<u32>().ok()?;
    procfs::is_running(pid).then_some(pid)
}

/// The process `pidfile` names, pinned, when it runs `sleep TAG`: the pid read from the file,
/// `pidfd_open(2)`, its argv read (`/proc/PID/cmdline`, [`is_tagged_sleep`]), then `poll(2)` on
/// the pidfd says it had not exited, so the argv read was this very process's. Reads no other
/// process: O(1) in the processes on the host.
pub fn pin_tagged_sleep_in(pidfile: &Path, tag: &str) -> Option<Pinned> {
    let pid = fs::read_to_string(pidfile).ok()?.trim().parse::<u32>().ok()?;
    let pinned = Pinned::open(pid).ok()?;
    let argv = procfs::argv(pid)?;
    (is_tagged_sleep(&argv, tag) && !pinned.has_exited()).then_some(pinned)
}

/// Among the children and grandchildren of `ancestor`, the one whose argv is `... sleep TAG`.
pub fn tagged_sleep_below(ancestor: u32, tag: &str) -> Option<u32> {
    let children = procfs::children(ancestor);
    let grandchildren = children.iter().flat_map(|child| procfs::children(*child));
    let mut family = children.iter().copied().chain(grandchildren);
    family.find(|pid| procfs::argv(*pid).is_some_and(|argv| is_tagged_sleep(&argv, tag)))
}

/// Whether `argv` is `... sleep TAG`: argv[0] ends in `sleep` (libslack names it
/// `NAME: /bin/sleep`) and the last argument is the tag.
pub fn is_tagged_sleep(argv: &[Vec<u8>], tag: &str) -> bool {
    argv.len() >= 2 && argv[0].ends_with(b"sleep") && argv[argv.len() - 1] == tag.as_bytes()
}

/// The running process whose argv is `... sleep TAG`: argv[0] ends in `sleep` (libslack names
/// it `NAME: /bin/sleep`) and the last argument is the tag. The first one found.
pub fn find_tagged_sleep(tag: &str) -> Option<u32> {
    procfs::pids_where(|argv| is_tagged_sleep(argv, tag))
        .into_iter()
        .find(|pid| procfs::is_running(*pid))
}
