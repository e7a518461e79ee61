//! The shortest daemon: `minimal PIDFILE` daemonizes with that pidfile and PEP 3143's defaults,
//! then waits for SIGTERM, which removes the pidfile and ends it.
//!
//! ```sh
//! cargo run --example minimal -- /tmp/minimal.pid && cat /tmp/minimal.pid
//! kill $(cat /tmp/minimal.pid)
//! ```
use daemonctx::{DaemonContext, error::chain};

fn main() {
    let Some(pidfile) = std::env::args_os().nth(1) else {
        eprintln!("usage: minimal PIDFILE");
        std::process::exit(2);
    };
    let _daemon = match DaemonContext::new().pidfile(pidfile).open() {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("minimal: {}", chain(&e));
            std::process::exit(1);
        }
    };
    loop {
        std::thread::park(); // SIGTERM ends the process through the signal map
    }
}
