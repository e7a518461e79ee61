//! Become a well-behaved Unix daemon.
//!
//! [`DaemonContext`] carries the option set of [PEP 3143](https://peps.python.org/pep-3143/)
//! (python-daemon's model) and applies it with some hardening: every error reaches the original
//! process, the pidfile is locked before the fork so exactly one instance wins, a stale or
//! recycled pid never fools [`Pidfile::status`], inherited descriptors are dealt with by
//! `close_range(2)`, and forking a multi-threaded process is refused.
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
//!
//! How it works (the process model, the fork boundary, the report channel, the pidfile
//! protocol) and where each step lives: [`architecture`], which is the repository's
//! `docs/ARCHITECTURE.md`.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[doc = include_str!("../docs/ARCHITECTURE.md")]
pub mod architecture {}
pub mod activation;
pub mod command;
mod context;
mod creds;
mod daemon;
pub mod error;
mod fds;
pub mod pidfile;
pub mod process;
pub mod safe_open;
pub mod signals;
mod start;
pub mod stop;
mod sys;

pub use command::{Command, Executable};
pub use context::{DEFAULT_READY_TIMEOUT, DaemonContext};
pub use creds::{GroupSpec, UserSpec};
pub use daemon::Daemon;
pub use error::{Error, Step};
pub use fds::Stream;
pub use pidfile::{Pidfile, Status};
pub use signals::{Handler, SignalAction, SignalMap};

/// A signal by its name, for [`DaemonContext::signal`]: nix's `Signal` (`Signal::SIGTERM`),
/// re-exported so that a daemon needs no `libc` to name one. `signal as i32` is its number, as
/// [`SignalMap`] and [`signals::Signals`] use.
pub use nix::sys::signal::Signal;
