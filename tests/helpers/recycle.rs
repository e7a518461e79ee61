//! What the pid-recycling helpers (`recycle_pid`, `recycle_group`) share.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use daemonctx::process::{self, Pinned};

/// How a helper reports a failed step: a message and its exit status, then exit.
pub type Fail = fn(i32, &str) -> !;

/// Runs `DAEMONIZE -p PIDFILE COMMAND...` (which must succeed) and returns the pid it wrote.
pub fn start_daemon(daemonize: &Path, pidfile: &str, command: &[&str], fail: Fail) -> i32 {
    let started = Command::new(daemonize).args(["-p", pidfile]).args(command).status();
    if !started.is_ok_and(|s| s.success()) {
        fail(5, "the daemon did not start");
    }
    std::fs::read_to_string(pidfile).unwrap().trim().parse().unwrap()
}

/// Once the daemon `pinned` (pid `daemon`) has exited, reaps it, as init, and starts
/// `SHELL... -c SCRIPT` (`sh`, or `setsid sh`) as pid `reused` (`ns_last_pid`), where SCRIPT
/// starts a child and waits; returns the bystander and its child's pid. Exits 4 when the pid
/// was not reused, 5 when a step failed.
pub fn bystander(
    dir: &Path,
    pinned: &Pinned,
    daemon: i32,
    reused: i32,
    shell: &[&str],
    fail: Fail,
) -> (Child, i32) {
    if !pinned.wait_exit(Instant::now() + Duration::from_secs(10)) {
        fail(5, "the daemon did not exit on SIGTERM");
    }
    // The exited daemon is our (adopted) child: reaped here, as init would.
    process::reap(daemon, Duration::from_secs(10));
    let marker = dir.join("bystander-child");
    let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", reused - 1));
    let script = format!("sleep 1000 & echo $! > {}; wait", marker.display());
    let (program, before) = shell.split_first().expect("a shell to run the script");
    let bystander = Command::new(program).args(before).args(["-c", &script]).spawn();
    let bystander = bystander.unwrap_or_else(|_| fail(5, "cannot start the bystander"));
    if bystander.id() as i32 != reused {
        fail(4, &format!("the bystander got pid {}, not {reused}", bystander.id()));
    }
    let child = wait_for_pid(&marker).unwrap_or_else(|| fail(5, "the bystander's child"));
    (bystander, child)
}

/// The pid written into `file`, waited for up to 10 s (the bystander writes it at once).
fn wait_for_pid(file: &Path) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok()) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
