//! Become a well-behaved Unix daemon.
//!
//! [`DaemonContext`] carries the option set of [PEP 3143](https://peps.python.org/pep-3143/)
//! (python-daemon's model) and applies it with the hardening listed in `DESIGN.md`: every error
//! reaches the original process, the pidfile is locked before the fork so exactly one instance
//! wins, a stale or recycled pid never fools [`Pidfile::status`], inherited descriptors are closed
//! with `close_range(2)`, and forking a multi-threaded process is refused.
//!
//! ```no_run
//! use daemonctx::DaemonContext;
//!
//! fn main() {
//!     let daemon = match DaemonContext::new().pidfile("/tmp/example.pid").open() {
//!         Ok(daemon) => daemon, // in the daemon; the original process has exited 0
//!         Err(e) => {
//!             // in the original process, on its stderr
//!             eprintln!("example: {}", daemonctx::error::chain(&e));
//!             std::process::exit(1);
//!         }
//!     };
//!     // serve until SIGTERM, which removes the pidfile
//!     # drop(daemon);
//! }
//! ```
//!
//! The `daemonize` command (its own package in this workspace) is built on this library.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod activation;
pub mod command;
mod context;
mod creds;
mod daemon;
pub mod detach;
pub mod error;
pub mod fds;
mod launch;
pub mod pidfile;
pub mod process;
mod ready;
pub mod signals;
pub mod stop;

pub use command::{Command, Executable};
pub use context::{DEFAULT_READY_TIMEOUT, DaemonContext};
pub use creds::{GroupSpec, UserSpec};
pub use daemon::Daemon;
pub use error::{Error, Step};
pub use fds::Stream;
pub use pidfile::{Pidfile, Status};
pub use signals::{SignalAction, SignalMap};
