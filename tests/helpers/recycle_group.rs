//! Test helper: pid 1 of a private pid namespace (`unshare --pid --fork --mount-proc`), it
//! reproduces a stop whose daemon's process group number is reused after the daemon was
//! reaped and before the stop looked for what was left of the group. Not an example to copy.
//!
//! Usage: `recycle_group DAEMONIZE DIR`. Starts `DAEMONIZE -p DIR/d.pid` with a daemon alone
//! in its group, runs `DAEMONIZE --stop --retry TERM/1/KILL/2` at normal priority, and raises
//! itself to `SCHED_FIFO` on the same CPU, so that once the daemon has exited this process runs
//! before the stop: it reaps the daemon (as init) and starts a bystander that takes the
//! group's number (`ns_last_pid`, then `setsid(1)`) and has a child in its group. Exit status:
//! 0 the bystander's child survived the stop, 1 it was killed, 3 not pid 1, 4 the scene could
//! not be set (no `SCHED_FIFO`, the number not reused: the caller skips), 5 a step failed.
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use daemonctx::process::{self, Pinned};

#[path = "recycle.rs"]
mod recycle;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (daemonize, dir) = (Path::new(&args[1]), Path::new(&args[2]));
    if std::process::id() != 1 {
        fail(3, "not pid 1 of a pid namespace");
    }
    on_cpu_zero();
    let pidfile = dir.join("d.pid");
    let pidfile = pidfile.to_str().unwrap();
    let daemon = recycle::start_daemon(daemonize, pidfile, &["sleep", "1000"], fail);
    let group = process::stat(daemon as u32)
        .map(|s| s.pgrp as i32)
        .unwrap_or_else(|| fail(5, "no group for the daemon"));
    let pinned = Pinned::open(daemon as u32).unwrap_or_else(|_| fail(5, "no pidfd for the daemon"));
    if set_policy(libc::SCHED_FIFO, 1).is_err() {
        fail(4, "cannot use SCHED_FIFO");
    }
    let mut stop = Command::new(daemonize);
    stop.args(["--stop", "-p", pidfile, "--retry", "TERM/1/KILL/2"]).stdout(Stdio::null());
    // SAFETY: sched_setscheduler is async-signal-safe; the stop runs at normal priority, so it
    // waits while this process and what it starts can run.
    unsafe { stop.pre_exec(|| set_policy(libc::SCHED_OTHER, 0)) };
    let mut stop = stop.spawn().unwrap_or_else(|_| fail(5, "cannot run --stop"));
    let (_bystander, child) =
        recycle::bystander(dir, &pinned, daemon, group, &["setsid", "sh"], fail);
    if process::stat(child as u32).map(|s| s.pgrp as i32) != Some(group) {
        fail(4, "the bystander's child is not in the reused group");
    }
    let stopped = stop.wait().map(|s| s.code());
    let survived = process::is_alive(child as u32);
    println!("group {group} reused, its member {child}: survived {survived}; stop {stopped:?}");
    std::process::exit(if survived { 0 } else { 1 })
}

fn fail(code: i32, why: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "recycle_group: {why}");
    std::process::exit(code)
}

/// Everything this process starts runs on CPU 0, where priorities decide who runs first.
fn on_cpu_zero() {
    // SAFETY: cpu_set_t is plain old data; CPU_ZERO and CPU_SET write within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn set_policy(policy: i32, priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: param is a valid sched_param for the call.
    match unsafe { libc::sched_setscheduler(0, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
