//! Interactive use (`docker run -it`, a shell): when the supervisor runs in the foreground of
//! a terminal, COMMAND gets the terminal as its standard input and as its controlling terminal,
//! with job control as under a shell.
//!
//! COMMAND runs in a process group of its own, in the supervisor's session; its group becomes
//! the terminal's foreground group (`tcsetpgrp(3)`), so it reads the terminal and gets the
//! keyboard's signals (`^C`, `^Z`, `^\`) itself. When a terminal stop signal (`SIGTSTP`,
//! `SIGTTIN`, `SIGTTOU`) stops it, the supervisor takes the terminal back and stops itself
//! (`SIGSTOP`), so the shell that started it regains the terminal; when continued (`fg`:
//! `SIGCONT`), it hands the terminal to COMMAND again and continues COMMAND's group. As PID 1 of
//! a pid namespace (`docker run -it`), which cannot stop and has no shell above it, it continues
//! COMMAND at once instead. On exit it takes the terminal back.
//!
//! `SIGTTOU` is blocked in the supervisor (its signalfd holds every signal), so its own
//! `tcsetpgrp(3)` from a background group is allowed; COMMAND's child side blocks it around
//! the call.

#![allow(unsafe_code)] // one block: take_in_child, between fork and exec

use std::io;
use std::os::fd::AsFd;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getpgrp, getpid, isatty, tcgetpgrp, tcsetpgrp};

/// The terminal: COMMAND's standard input, and the supervisor's.
const TERMINAL: i32 = 0;

/// Whether the supervisor runs in the foreground of a terminal: standard input is a terminal
/// (`isatty(3)`) whose foreground process group is the caller's (`tcgetpgrp(3)`, `getpgrp(2)`).
pub fn in_foreground() -> bool {
    let stdin = std::io::stdin();
    isatty(stdin.as_fd()).unwrap_or(false) && tcgetpgrp(stdin.as_fd()).is_ok_and(|g| g == getpgrp())
}

/// In COMMAND, between fork and exec (after `setpgid(2)`): makes COMMAND's group the
/// terminal's foreground group, with `SIGTTOU` blocked for the call (`sigprocmask(2)`,
/// `tcsetpgrp(3)`). Async-signal-safe.
pub fn take_in_child() -> io::Result<()> {
    // SAFETY: sigset_t values made by sigemptyset/sigaddset are valid for sigprocmask; the
    // calls are async-signal-safe and take no lock.
    unsafe {
        let mut ttou = std::mem::zeroed::<libc::sigset_t>();
        let mut old = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &ttou, &mut old);
        let rc = libc::tcsetpgrp(TERMINAL, libc::getpgrp());
        let error = io::Error::last_os_error();
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if rc != 0 { Err(error) } else { Ok(()) }
    }
}

/// Makes `group` the terminal's foreground group (`tcsetpgrp(3)`); failures are ignored (the
/// terminal was hung up).
pub fn give_to(group: u32) {
    // SIGTTOU is blocked in the supervisor: allowed from a background group.
    let _ = tcsetpgrp(std::io::stdin().as_fd(), Pid::from_raw(group as libc::pid_t));
}

/// Takes the terminal back for the supervisor's own group.
pub fn take_back() {
    give_to(getpgrp().as_raw() as u32);
}

/// Whether `signal` is one a terminal stops a job with.
pub fn is_stop_signal(signal: i32) -> bool {
    [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signal)
}

/// Stops the supervisor itself (`kill(2)` `SIGSTOP` to its own pid), so that the shell that
/// started it sees the job stopped; returns once it is continued. (As PID 1 of a pid namespace
/// the kernel ignores it, and the supervisor goes on: see [`can_stop_self`].)
pub fn stop_self() {
    let _ = kill(getpid(), Signal::SIGSTOP);
}

/// Whether [`stop_self`] can stop the supervisor: not as PID 1 of its pid namespace
/// (`getpid(2)`), which the kernel never stops from inside.
pub fn can_stop_self() -> bool {
    getpid().as_raw() != 1
}
