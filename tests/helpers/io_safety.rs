//! Test helper: `io_safety PIDFILE` opens a `File`, becomes a daemon in place
//! (`DaemonContext::new().detach_process(false).pidfile(PIDFILE).open()`), drops the `File`,
//! closes the daemon and exits 0. Had `open()` closed the `File`'s descriptor behind its back, a
//! debug build would abort on the drop ("IO Safety violation: owned file descriptor already
//! closed"). Not an example to copy.
use daemonctx::{DaemonContext, error::chain};

fn main() {
    let Some(pidfile) = std::env::args().nth(1) else {
        eprintln!("usage: io_safety PIDFILE");
        std::process::exit(64);
    };
    let file = std::fs::File::open("/dev/zero").expect("open /dev/zero");
    let mut daemon = match DaemonContext::new().detach_process(false).pidfile(&pidfile).open() {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("io_safety: {}", chain(&e));
            std::process::exit(2);
        }
    };
    drop(file);
    daemon.close().expect("close");
}
