//! The bench binary as the daemon of section 5.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::sys;

/// Daemonize with `DaemonContext::open()`.
pub const LIBRARY: &str = "--as-library-daemon";
/// Daemonize with a bare `fork(2)`, `setsid(2)`, `fork(2)`.
pub const BARE: &str = "--as-bare-daemon";

/// Becomes the daemon and exits when the arguments are `--as-library-daemon FILE` or
/// `--as-bare-daemon FILE`; returns otherwise. Must run before any thread is started.
pub fn enter_if_asked() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [mode, file] = args.as_slice() else { return };
    let file = PathBuf::from(file);
    if mode == LIBRARY {
        library_daemon(&file)
    } else if mode == BARE {
        bare_daemon(&file)
    }
}

/// `DaemonContext::new().pidfile(FILE.pid).open()`, then the time, then exit.
pub fn library_daemon(file: &Path) -> ! {
    let pidfile = file.with_extension("pid");
    match daemonctx::DaemonContext::new().pidfile(&pidfile).open() {
        Ok(mut daemon) => {
            let now = sys::monotonic_ns();
            let written = write_stamp(file, now);
            let closed = daemon.close().is_ok();
            std::process::exit(if written && closed { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("compare: {}", daemonctx::error::chain(&e));
            std::process::exit(1)
        }
    }
}

/// `fork(2)`, the parent `_exit(0)`s; `setsid(2)`; `fork(2)`, the parent `_exit(0)`s; then
/// the time, then exit. The process has a single thread, so the child may allocate.
pub fn bare_daemon(file: &Path) -> ! {
    sys::fork_and_leave_parent();
    sys::setsid();
    sys::fork_and_leave_parent();
    let now = sys::monotonic_ns();
    sys::exit_now(if write_stamp(file, now) { 0 } else { 1 })
}

/// Writes `nanoseconds` to a temporary name, then renames it to `file`, so the bench never
/// reads a half-written file.
pub fn write_stamp(file: &Path, nanoseconds: u64) -> bool {
    let temporary = file.with_extension("tmp");
    std::fs::write(&temporary, nanoseconds.to_string()).is_ok()
        && std::fs::rename(&temporary, file).is_ok()
}
