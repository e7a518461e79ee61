//! Thin wrappers over the system calls nix does not wrap, or wraps in a way the daemon cannot
//! use between `fork(2)` and `execve(2)` (nix's own wrappers are used directly elsewhere).
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
