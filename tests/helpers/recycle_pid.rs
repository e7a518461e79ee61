//! Test helper: pid 1 of a private pid namespace (`unshare --pid --fork --mount-proc`), it
//! reproduces a stop whose daemon's pid is reused before the KILL step. Not an example to copy.
//!
//! Usage: `recycle_pid DAEMONIZE DIR`. Starts `DAEMONIZE -p DIR/d.pid` with a command whose
//! main process dies on SIGTERM while a member of its group ignores it, runs
//! `DAEMONIZE --stop --retry TERM/4/KILL/5`, and once the daemon has exited (and been reaped
//! here, as init) starts a bystander that gets the daemon's old pid (`ns_last_pid`) and has a
//! child of its own. Exit status: 0 the bystander's child survived the stop, 1 it was killed,
//! 3 not pid 1, 4 the pid could not be reused (the caller skips), 5 a step failed.
use std::io::Write;
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
    let pidfile = dir.join("d.pid");
    let pidfile = pidfile.to_str().unwrap();
    let command = "trap '' TERM; sleep 1000 & trap - TERM; exec sleep 1001";
    let old = recycle::start_daemon(daemonize, pidfile, &["sh", "-c", command], fail);
    let daemon = Pinned::open(old as u32).unwrap_or_else(|_| fail(5, "no pidfd for the daemon"));
    let mut stop = Command::new(daemonize)
        .args(["--stop", "-p", pidfile, "--retry", "TERM/4/KILL/5"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|_| fail(5, "cannot run --stop"));
    let (_bystander, child) = recycle::bystander(dir, &daemon, old, old, &["sh"], fail);
    let stopped = stop.wait().map(|s| s.code());
    let survived = process::is_alive(child as u32);
    println!("bystander pid {old}, its child {child}: survived {survived}; stop exit {stopped:?}");
    std::process::exit(if survived { 0 } else { 1 })
}

fn fail(code: i32, why: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "recycle_pid: {why}");
    std::process::exit(code)
}
