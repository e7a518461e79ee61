//! Thin wrappers over the system calls nix 0.30 does not wrap (`pidfd_open(2)`,
//! `pidfd_send_signal(2)`, `close_range(2)`, `getdents64(2)`, `rt_sigaction(2)`, `kill(2)`
//! with a real-time signal number), or wraps in a way the daemon cannot use (`dup2(2)` over a
//! number borrowed from its owner, the `struct flock` of an OFD lock); nix's own safe wrappers
//! are used directly everywhere else. The rest of the crate holds little `unsafe`: the fork
//! itself, the code between `fork(2)` and `execve(2)`, and the signal handler's statics.
//!
//! Each wrapper makes one system call and says which; none allocates, so every one is
//! async-signal-safe. A wrapper that is sound only under a condition the compiler cannot check
//! is an `unsafe fn` whose `# Safety` section states it: closing descriptors (another owner may
//! hold them), `fork(2)` (only in a single-threaded process), installing a signal handler (it
//! must be async-signal-safe). Everything else here is safe to call.
#![allow(unsafe_code)]

pub(crate) mod fd;
pub(crate) mod lock;
pub(crate) mod pidfd;
pub(crate) mod signal;
