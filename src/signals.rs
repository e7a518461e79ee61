//! Signals: reset everything the daemon inherited, then install the signal map.
//!
//! The daemon starts with an empty signal mask (`sigprocmask(2)`) and every disposition at
//! `SIG_DFL` (`sigaction(2)` for each signal), whatever the invoking process blocked or ignored;
//! then the map's entries are installed. Both steps are async-signal-safe and run between
//! `fork(2)` and `execve(2)` on a `Dispositions` table built before the fork.
//!
//! [`SignalAction::Terminate`] removes the pidfile (an `fstatat(2)` identity check and
//! `unlinkat(2)` in its directory, opened with `openat2(2)` `RESOLVE_NO_SYMLINKS`, by a path
//! prepared beforehand) and then ends the process by the signal's default action, so a
//! supervisor sees "killed by SIGTERM". [`SignalAction::Deliver`] hands the signal to the program
//! through signal-hook's iterator ([`crate::Daemon::signals`]) for a graceful shutdown.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_int};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// signal-hook's iterator over delivered signals ([`crate::Daemon::take_signals`]) and the
/// handle that closes it from another thread, re-exported so that a daemon needs no direct
/// dependency on signal-hook to name them.
pub use signal_hook::iterator::{Handle, Signals};

use crate::sys::signal as sys;

/// What the daemon does on a signal.
#[derive(Clone, Copy, Debug)]
pub enum SignalAction {
    /// `SIG_IGN`: the signal is discarded.
    Ignore,
    /// `SIG_DFL`: the kernel's default action.
    Default,
    /// Remove the pidfile (`openat2(2)`, `fstatat(2)`, `unlinkat(2)`; `ftruncate(2)` when out
    /// of reach), then die
    /// of the signal by its default action (`sigaction(2)`, `kill(2)`), so the parent sees it.
    /// Refused ([`crate::Error::BadSignalMap`]) for a signal whose default action does not end
    /// the process: `SIGCHLD`, `SIGCONT`, `SIGURG`, `SIGWINCH`, `SIGTSTP`, `SIGTTIN`, `SIGTTOU`.
    Terminate,
    /// Run this handler: made only by the `unsafe` [`SignalAction::handler`], whose caller
    /// vouches that it is async-signal-safe.
    ///
    /// Safe code cannot make one from a function:
    /// ```compile_fail
    /// extern "C" fn on_signal(_: std::ffi::c_int) {}
    /// let action = daemonctx::SignalAction::Handler(on_signal);
    /// ```
    Handler(Handler),
    /// Queue the signal for [`crate::Daemon::signals`] (signal-hook's iterator, which installs
    /// its handler with `sigaction(2)` once the daemon is set up). Refused
    /// ([`crate::Error::BadSignalMap`]) for a signal signal-hook cannot catch: `SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`.
    Deliver,
}

/// A signal handler for [`SignalAction::Handler`], made by [`SignalAction::handler`]; its
/// field is private:
/// ```compile_fail
/// extern "C" fn on_signal(_: std::ffi::c_int) {}
/// let handler = daemonctx::Handler(on_signal);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Handler(extern "C" fn(c_int));

impl SignalAction {
    /// Runs `handler` on the signal (`sigaction(2)` with `SA_RESTART` and an empty mask, in
    /// the daemon).
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use daemonctx::{DaemonContext, Signal, SignalAction};
    ///
    /// static RELOAD: AtomicBool = AtomicBool::new(false);
    /// extern "C" fn on_hangup(_signal: std::ffi::c_int) {
    ///     RELOAD.store(true, Ordering::Relaxed); // an atomic store is async-signal-safe
    /// }
    ///
    /// // SAFETY: on_hangup only stores to an atomic.
    /// let hangup = unsafe { SignalAction::handler(on_hangup) };
    /// let daemon = DaemonContext::new().signal(Signal::SIGHUP, hangup).open()?;
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    ///
    /// # Safety
    /// `handler` runs in a signal handler, interrupting the program anywhere: it may make only
    /// async-signal-safe calls (signal-safety(7): no allocation, no lock, no `println!`), touch
    /// only atomics and data that is never freed, and must leave `errno` as it found it (as
    /// signal-hook's `register` requires).
    #[allow(unsafe_code)] // unsafe to call: the caller makes the promise above
    pub unsafe fn handler(handler: extern "C" fn(c_int)) -> SignalAction {
        SignalAction::Handler(Handler(handler))
    }
}

/// A signal number → action map. The default is PEP 3143's: `SIGTSTP`, `SIGTTIN` and `SIGTTOU`
/// ignored, `SIGTERM` terminates.
pub type SignalMap = BTreeMap<c_int, SignalAction>;

/// PEP 3143's default signal map. No system call (the daemon's setup installs it).
///
/// ```
/// use daemonctx::{SignalAction, signals::default_signal_map};
///
/// let map = default_signal_map();
/// assert!(matches!(map[&libc::SIGTERM], SignalAction::Terminate));
/// ```
pub fn default_signal_map() -> SignalMap {
    SignalMap::from([
        (libc::SIGTSTP, SignalAction::Ignore),
        (libc::SIGTTIN, SignalAction::Ignore),
        (libc::SIGTTOU, SignalAction::Ignore),
        (libc::SIGTERM, SignalAction::Terminate),
    ])
}

/// The signals a supervisor or an init never blocks and never passes on: the faults the kernel
/// raises in a process for its own instruction (blocking them would hang or kill it: `SEGV`,
/// `BUS`, `ILL`, `FPE`, `TRAP`, `SYS`, and `ABRT` from `abort(3)`), and `KILL` and `STOP`, which
/// cannot be caught. Every other signal is asynchronous: something else sent it.
///
/// ```
/// let asynchronous = (1..=libc::SIGRTMAX()).filter(|s| !daemonctx::signals::SYNCHRONOUS_OR_UNCATCHABLE.contains(s));
/// assert!(asynchronous.clone().any(|s| s == libc::SIGALRM));
/// assert!(!asynchronous.clone().any(|s| s == libc::SIGSEGV || s == libc::SIGKILL));
/// ```
pub const SYNCHRONOUS_OR_UNCATCHABLE: [c_int; 9] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGABRT,
];

/// The highest signal number on Linux (`_NSIG - 1`).
const MAX_SIGNAL: usize = 64;

/// The signal map as a table the daemon can apply without allocating.
#[derive(Clone, Debug)]
pub(crate) struct Dispositions {
    table: [Option<libc::sighandler_t>; MAX_SIGNAL + 1],
    /// `SIGRTMIN` as the C library gives it: the signals from 32 below it are the C library's
    /// own (glibc's `SIGCANCEL` and `SIGSETXID`).
    first_realtime: c_int,
}

impl Dispositions {
    /// Builds the table before the fork. `Deliver` becomes `SIG_DFL` here: signal-hook installs
    /// its handler once setup is done. With `for_exec`, handlers other than `SIG_IGN` become
    /// `SIG_DFL`, since `execve(2)` resets them anyway.
    pub(crate) fn new(map: &SignalMap, for_exec: bool) -> Dispositions {
        let mut table = [None; MAX_SIGNAL + 1];
        for (&signal, &action) in map {
            let Some(slot) = usize::try_from(signal).ok().and_then(|s| table.get_mut(s)) else {
                continue;
            };
            *slot = Some(match action {
                SignalAction::Ignore => libc::SIG_IGN,
                SignalAction::Default | SignalAction::Deliver => libc::SIG_DFL,
                _ if for_exec => libc::SIG_DFL,
                SignalAction::Terminate => terminate as *const () as libc::sighandler_t,
                SignalAction::Handler(Handler(handler)) => {
                    handler as *const () as libc::sighandler_t
                }
            });
        }
        Dispositions { table, first_realtime: libc::SIGRTMIN() }
    }
}

/// Empties the signal mask, sets every disposition to `SIG_DFL`, then installs the table.
///
/// The C library's reserved signals (32 up to `SIGRTMIN`) keep their handlers: glibc's
/// `setuid(3)` in a multi-threaded process relies on its `SIGSETXID` handler, which it installs
/// once; only an inherited `SIG_IGN` on them is undone. Async-signal-safe; returns the errno of a
/// failed installation.
pub(crate) fn reset_and_install(dispositions: &Dispositions) -> Result<(), i32> {
    use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(|e| e as i32)?;
    let reserved = 32..dispositions.first_realtime;
    for signal in 1..=MAX_SIGNAL as c_int {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        if !reserved.contains(&signal) || sys::handler_of(signal)? == libc::SIG_IGN {
            sys::set_plain(signal, libc::SIG_DFL)?;
        }
    }
    for (signal, handler) in dispositions.table.iter().enumerate() {
        if let Some(handler) = handler {
            // SAFETY: the table holds SIG_DFL, SIG_IGN, the Terminate handler (async-signal-safe,
            // below) or a handler given through the unsafe SignalAction::handler, whose caller
            // vouched for it.
            unsafe { sys::install(signal as c_int, *handler) }?;
        }
    }
    Ok(())
}

/// Empties the signal mask and puts every disposition back to `SIG_DFL` (`sigprocmask(2)`,
/// `rt_sigaction(2)`), as a freshly `execve(2)`'d program of a clean parent would have them; the
/// C library's reserved signals keep their handlers. For a child about to `execve(2)` another
/// program (`std::os::unix::process::CommandExt::pre_exec`): async-signal-safe, no allocation.
///
/// ```no_run
/// use std::os::unix::process::CommandExt;
///
/// let mut command = std::process::Command::new("/usr/bin/env");
/// // SAFETY: reset_all makes only async-signal-safe system calls.
/// unsafe { command.pre_exec(daemonctx::signals::reset_all) };
/// command.spawn()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of the first call that failed.
pub fn reset_all() -> std::io::Result<()> {
    const NOTHING_MAPPED: Dispositions =
        Dispositions { table: [None; MAX_SIGNAL + 1], first_realtime: 0 };
    let dispositions = Dispositions { first_realtime: libc::SIGRTMIN(), ..NOTHING_MAPPED };
    reset_and_install(&dispositions).map_err(std::io::Error::from_raw_os_error)
}

/// Runs `write` with `SIGXFSZ` ignored, so that a write past `RLIMIT_FSIZE` fails with `EFBIG`
/// instead of killing the process, then puts the previous action back (`rt_sigaction(2)`
/// twice). Async-signal-safe; the errno of a failed `rt_sigaction(2)`.
pub(crate) fn with_sigxfsz_ignored<T>(write: impl FnOnce() -> T) -> Result<T, i32> {
    let previous = sys::ignore(libc::SIGXFSZ)?;
    let result = write();
    sys::restore(previous)?;
    Ok(result)
}

/// What the `Terminate` handler removes: the pidfile as the daemon sees it (after any
/// `chroot(2)`), its identity, and the locked descriptor to empty when the path is out of reach.
#[derive(Debug)]
pub(crate) struct TerminateTarget {
    /// The pidfile's path inside the daemon's root.
    pub path: CString,
    /// The locked file's device number.
    pub dev: u64,
    /// The locked file's inode number.
    pub ino: u64,
    /// The locked descriptor.
    pub fd: c_int,
}

/// The pidfile the `Terminate` handler removes: path (from `CString::into_raw`), device, inode,
/// and the locked descriptor; set once, before the handler is installed.
static TERMINATE_PIDFILE: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());
static TERMINATE_DEV: AtomicU64 = AtomicU64::new(0);
static TERMINATE_INO: AtomicU64 = AtomicU64::new(0);
static TERMINATE_FD: AtomicI32 = AtomicI32::new(-1);

/// Whether the handler may touch the pidfile; cleared for good by [`disarm_terminate`].
static TERMINATE_ARMED: AtomicBool = AtomicBool::new(false);

/// How many `Terminate` handlers are between their look at [`TERMINATE_ARMED`] and the end of
/// their work on the pidfile (on any thread; nested ones count twice).
static TERMINATE_BUSY: AtomicUsize = AtomicUsize::new(0);

/// Tells the `Terminate` handler which pidfile to remove. Called in the daemon; no allocation
/// (the string was built before the fork).
///
/// The string is leaked, never freed: a path once per daemon is a small price for a handler
/// that never reads freed memory.
pub(crate) fn arm_terminate(target: TerminateTarget) {
    TERMINATE_DEV.store(target.dev, Ordering::SeqCst);
    TERMINATE_INO.store(target.ino, Ordering::SeqCst);
    TERMINATE_FD.store(target.fd, Ordering::SeqCst);
    TERMINATE_PIDFILE.store(target.path.into_raw(), Ordering::SeqCst);
    TERMINATE_ARMED.store(true, Ordering::SeqCst);
}

/// Stops the `Terminate` handler from touching the pidfile, and waits until no handler (on
/// another thread) still works on it: once this returns, the pidfile may be removed and its
/// descriptor closed, and no handler uses the path or the descriptor's number again.
///
/// A handler's work is a few system calls, so the wait spins (`sched_yield(2)`). It cannot
/// deadlock: a handler interrupting this very thread runs to its end before the thread goes
/// on, and after the store below every new handler leaves the pidfile alone.
pub(crate) fn disarm_terminate() {
    TERMINATE_ARMED.store(false, Ordering::SeqCst);
    while TERMINATE_BUSY.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// The `Terminate` action: remove our pidfile (or, when its path no longer names our file or
/// `unlink(2)` is refused, as after a privilege drop, empty the locked file so it names no
/// process), then die of `signal` by its default action.
/// Async-signal-safe: atomics, `openat2(2)`, `fstatat(2)`, `unlinkat(2)` or `ftruncate(2)`,
/// `rt_sigaction(2)`, `kill(2)`; `errno` is put back as it was.
///
/// The order against [`disarm_terminate`] (both `SeqCst`): this handler counts itself busy,
/// then looks at the flag; `disarm_terminate` clears the flag, then waits for no handler to be
/// busy. Either the handler sees the flag cleared and leaves the pidfile alone, or
/// `disarm_terminate` sees the handler busy and waits: the pidfile's descriptor is never
/// closed (and its number reused) under a handler that is about to use it.
extern "C" fn terminate(signal: c_int) {
    let saved_errno = nix::errno::Errno::last_raw();
    TERMINATE_BUSY.fetch_add(1, Ordering::SeqCst);
    if TERMINATE_ARMED.load(Ordering::SeqCst) {
        remove_armed_pidfile();
    }
    TERMINATE_BUSY.fetch_sub(1, Ordering::SeqCst);
    let _ = sys::set_plain(signal, libc::SIG_DFL);
    // The signal stays blocked until this handler returns, and is then delivered with its
    // default action, which ends the process (prepare refuses Terminate for the signals whose
    // default action does not: TERMINATE_REFUSED).
    let _ = sys::kill_self(signal);
    nix::errno::Errno::set_raw(saved_errno);
}

/// Unlinks the armed pidfile if its path still names it ([`crate::safe_open::unlink_if_named`]:
/// its directory opened without following a link, `fstatat(2)`, `unlinkat(2)`), else (or
/// when `unlink(2)` is refused) empties it through the locked descriptor (`ftruncate(2)`).
/// Async-signal-safe. Called only by the handler while it counts as busy and saw the pidfile
/// armed.
fn remove_armed_pidfile() {
    let path = TERMINATE_PIDFILE.load(Ordering::SeqCst);
    if path.is_null() {
        return;
    }
    // SAFETY: path came from CString::into_raw in arm_terminate and is never freed.
    let path = unsafe { CStr::from_ptr(path) };
    let (dev, ino) = (TERMINATE_DEV.load(Ordering::SeqCst), TERMINATE_INO.load(Ordering::SeqCst));
    if crate::safe_open::unlink_if_named(path, dev, ino) == Ok(true) {
        return;
    }
    // SAFETY: the descriptor is the locked pidfile's, owned by the daemon's Pidfile; it stays
    // open while this handler counts as busy with the pidfile armed, since the only ways to
    // close it (Daemon::close, a failed start) first call disarm_terminate, which waits.
    let fd = unsafe { BorrowedFd::borrow_raw(TERMINATE_FD.load(Ordering::SeqCst)) };
    let _ = nix::unistd::ftruncate(fd, 0);
}

/// The signals whose default action does not end the process (ignore, stop, continue): mapped
/// to `Terminate`, they would remove the pidfile and leave the daemon running.
const TERMINATE_REFUSED: [c_int; 7] = [
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// The first signal of `map` mapped to [`SignalAction::Terminate`] whose default action does
/// not end the process, if any.
pub(crate) fn terminate_that_would_not_end(map: &SignalMap) -> Option<c_int> {
    map.iter()
        .filter(|(_, action)| matches!(action, SignalAction::Terminate))
        .map(|(signal, _)| *signal)
        .find(|signal| TERMINATE_REFUSED.contains(signal))
}

/// The first signal of `map` mapped to [`SignalAction::Deliver`] that signal-hook refuses to
/// catch (`SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`: registering one panics), if any.
pub(crate) fn deliver_that_cannot_be_caught(map: &SignalMap) -> Option<c_int> {
    map.iter()
        .filter(|(_, action)| matches!(action, SignalAction::Deliver))
        .map(|(signal, _)| *signal)
        .find(|signal| signal_hook::consts::FORBIDDEN.contains(signal))
}

/// Registers signal-hook's iterator for `signals`, for the program to read at its own pace.
pub(crate) fn deliver(signals: &[c_int]) -> std::io::Result<signal_hook::iterator::Signals> {
    signal_hook::iterator::Signals::new(signals)
}

/// The signals mapped to [`SignalAction::Deliver`].
pub(crate) fn delivered(map: &SignalMap) -> Vec<c_int> {
    map.iter()
        .filter(|(_, action)| matches!(action, SignalAction::Deliver))
        .map(|(s, _)| *s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn disarm_waits_until_no_handler_works_on_the_pidfile() {
        // A Terminate handler on another thread, between its look at the flag and the end of
        // its work (nothing else in this test binary arms or disarms).
        TERMINATE_BUSY.fetch_add(1, Ordering::SeqCst);
        let (done, disarmed) = std::sync::mpsc::channel();
        let closer = std::thread::spawn(move || {
            disarm_terminate();
            done.send(()).unwrap();
        });
        let early = disarmed.recv_timeout(Duration::from_millis(200));
        assert!(early.is_err(), "disarm_terminate returned while a handler was busy");
        assert!(!TERMINATE_ARMED.load(Ordering::SeqCst));
        TERMINATE_BUSY.fetch_sub(1, Ordering::SeqCst);
        disarmed.recv_timeout(Duration::from_secs(30)).expect("disarm_terminate never returned");
        closer.join().unwrap();
    }

    #[test]
    fn deliver_is_refused_where_signal_hook_cannot_catch() {
        let map = SignalMap::from([(libc::SIGSEGV, SignalAction::Deliver)]);
        assert_eq!(deliver_that_cannot_be_caught(&map), Some(libc::SIGSEGV));
        let map = SignalMap::from([(libc::SIGTERM, SignalAction::Deliver)]);
        assert_eq!(deliver_that_cannot_be_caught(&map), None);
    }

    #[test]
    fn terminate_is_refused_where_the_default_action_does_not_end_the_process() {
        for signal in [libc::SIGCHLD, libc::SIGWINCH, libc::SIGURG, libc::SIGCONT, libc::SIGTTOU] {
            let map = SignalMap::from([(signal, SignalAction::Terminate)]);
            assert_eq!(terminate_that_would_not_end(&map), Some(signal));
        }
        assert_eq!(terminate_that_would_not_end(&default_signal_map()), None);
    }
}
