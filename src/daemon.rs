//! [`Daemon`]: the daemon's side of an open [`crate::DaemonContext`].
//!
//! It holds the pidfile (and its lock) and, until the daemon is ready, the write end of the
//! report channel. [`Daemon::ready`] tells the original process to exit 0; [`Daemon::fail`]
//! tells it why the daemon gives up instead; [`Daemon::close`] (or dropping it) removes the
//! pidfile if it is still ours.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use signal_hook::iterator::Signals;

use crate::error::{Error, Step, chain};
use crate::pidfile::Pidfile;
use crate::signals;
use crate::start::report::{self, DaemonFailure, Record};

/// The daemon's side of an open [`crate::DaemonContext`]. Dropping it closes it.
#[derive(Debug)]
pub struct Daemon {
    pidfile: Option<Pidfile>,
    _lock: Option<Pidfile>,
    report: Option<OwnedFd>,
    signals: Option<Signals>,
    open: bool,
}

impl Daemon {
    /// The exit status of a daemon that gave up with [`Daemon::fail`].
    pub const FAILED_EXIT_STATUS: i32 = 1;

    pub(crate) fn new(
        pidfile: Option<Pidfile>,
        lock: Option<Pidfile>,
        signals: Option<Signals>,
    ) -> Daemon {
        Daemon { pidfile, _lock: lock, report: None, signals, open: true }
    }

    /// Keeps the report channel until [`Daemon::ready`] or [`Daemon::report_failure`].
    pub(crate) fn set_report(&mut self, report: OwnedFd) {
        self.report = Some(report);
    }

    /// Tells the original process the daemon is ready (one `send(2)` on the report channel), so it
    /// exits 0. Needed only with [`crate::DaemonContext::ready_on_open`]`(false)`; later calls do
    /// nothing.
    ///
    /// ```no_run
    /// let mut daemon = daemonctx::DaemonContext::new().ready_on_open(false).open()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:7201").expect("bind"); // or fail()
    /// daemon.ready()?; // the original process exits 0: the port accepts connections
    /// # drop(listener);
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::Report`] when the write fails (the original process is gone).
    pub fn ready(&mut self) -> Result<(), Error> {
        let Some(report) = self.report.take() else {
            return Ok(());
        };
        let pid = std::process::id();
        report::send(report.as_fd(), Record::Ready(pid))
            .map_err(|e| Error::os_nopath(Step::Report, io::Error::from_raw_os_error(e)))
    }

    /// Tells the original process that the setup `step` failed with the OS error `os_error`
    /// (one `send(2)` of the step and the error number), instead of being ready: its `open()`
    /// then returns [`Error::Os`] with that step and OS error. The daemon should exit
    /// afterwards. Does nothing once [`Daemon::ready`] was called, nor in place (not
    /// detached), where nobody waits for a report: returns whether the original process was
    /// told, so that the caller can say it itself otherwise.
    ///
    /// This is for a program that carries on a step of becoming a daemon (the `daemonize`
    /// command's supervisor reports its `execve(2)` failing this way). For the program's own
    /// failure, with its own message (a socket it cannot bind), use [`Daemon::fail`].
    ///
    /// ```no_run
    /// use daemonctx::{DaemonContext, Step};
    ///
    /// let mut daemon = DaemonContext::new().ready_on_open(false).open()?;
    /// if let Err(os_error) = std::env::set_current_dir("/srv") {
    ///     daemon.report_failure(Step::Chdir, &os_error); // the original process shows it
    ///     std::process::exit(1);
    /// }
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn report_failure(&mut self, step: Step, os_error: &io::Error) -> bool {
        let Some(report) = self.report.take() else {
            return false;
        };
        let errno = os_error.raw_os_error().unwrap_or(libc::EIO);
        report::send(report.as_fd(), Record::Failed(step, errno)).is_ok()
    }

    /// Gives up: the daemon could not do what it exists for (bind its socket, read its
    /// configuration). Writes `message: error` to the daemon's standard error (its log),
    /// closes the daemon (removes the pidfile, as [`Daemon::close`]), tells the original
    /// process if it still waits for [`Daemon::ready`] (one `send(2)` of the message and the
    /// error's text and OS error number), and exits with [`Daemon::FAILED_EXIT_STATUS`] (`exit(3)`).
    ///
    /// The original process's [`crate::DaemonContext::open`] then returns
    /// [`Error::DaemonFailed`], which shows as `message: error`
    /// (`cannot bind 127.0.0.1:7201: Address already in use (os error 98)`), instead of a
    /// daemon that merely died. Give that error an exit status of its own (the examples use 3).
    ///
    /// ```no_run
    /// use daemonctx::DaemonContext;
    ///
    /// let mut daemon = DaemonContext::new().ready_on_open(false).open()?;
    /// let listener = match std::net::TcpListener::bind("127.0.0.1:7201") {
    ///     Ok(listener) => listener,
    ///     Err(e) => daemon.fail("cannot bind 127.0.0.1:7201", &e),
    /// };
    /// daemon.ready()?; // the original process exits 0 now
    /// # drop(listener);
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn fail(
        &mut self,
        message: impl Into<String>,
        error: &(dyn std::error::Error + 'static),
    ) -> ! {
        let message = message.into();
        let detail = chain(error);
        let _ = writeln!(io::stderr(), "{message}: {detail}");
        let report = self.report.take();
        // The pidfile goes first: once the original process reads the report, it is gone.
        let _ = self.close();
        if let Some(report) = report {
            let failure = DaemonFailure { message, errno: os_error_number(error), detail };
            let _ = report::send_daemon_failure(report.as_fd(), &failure);
        }
        std::process::exit(Daemon::FAILED_EXIT_STATUS)
    }

    /// The signals mapped to [`crate::SignalAction::Deliver`], as signal-hook's iterator: `None` when
    /// no signal is mapped so, or after [`Daemon::take_signals`].
    ///
    /// ```no_run
    /// use daemonctx::{DaemonContext, Signal, SignalAction};
    ///
    /// let mut daemon = DaemonContext::new()
    ///     .signal(Signal::SIGTERM, SignalAction::Deliver)
    ///     .open()?;
    /// if let Some(signals) = daemon.signals() {
    ///     for signal in signals.forever() {
    ///         if signal == Signal::SIGTERM as i32 { break }
    ///     }
    /// }
    /// daemon.close()?; // removes the pidfile
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn signals(&mut self) -> Option<&mut Signals> {
        self.signals.as_mut()
    }

    /// Takes the delivered signals out of the guard, to wait for them on another thread:
    /// signal-hook's [`Signals`] is `Send`, and its [`crate::signals::Handle`]
    /// ([`Signals::handle`]) closes it from anywhere, which ends its iterators. `None` when no
    /// signal is mapped to [`crate::SignalAction::Deliver`], or on a second call.
    ///
    /// `examples/echo_server.rs` shows the whole pattern: a blocking accept loop on the main
    /// thread, and a thread that waits for `SIGTERM`, sets a flag and connects to the listener
    /// to wake the loop.
    ///
    /// ```no_run
    /// use daemonctx::{DaemonContext, Signal, SignalAction};
    ///
    /// let mut daemon = DaemonContext::new()
    ///     .signal(Signal::SIGTERM, SignalAction::Deliver)
    ///     .open()?;
    /// let mut signals = daemon.take_signals().expect("SIGTERM is delivered");
    /// let handle = signals.handle();
    /// let waiter = std::thread::spawn(move || signals.forever().next());
    /// // ... serve; to stop waiting without a signal: handle.close() ...
    /// let signal = waiter.join().expect("the signal thread");
    /// # drop((handle, signal));
    /// daemon.close()?;
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn take_signals(&mut self) -> Option<Signals> {
        self.signals.take()
    }

    /// The pidfile this daemon holds, if any, as the daemon sees it (inside its chroot).
    ///
    /// ```no_run
    /// let daemon = daemonctx::DaemonContext::new().pidfile("/run/app.pid").open()?;
    /// assert_eq!(daemon.pidfile(), Some(std::path::Path::new("/run/app.pid")));
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn pidfile(&self) -> Option<&Path> {
        self.pidfile.as_ref().map(Pidfile::path)
    }

    /// Whether the daemon is open: true until [`Daemon::close`].
    ///
    /// ```no_run
    /// let mut daemon = daemonctx::DaemonContext::new().open()?;
    /// assert!(daemon.is_open());
    /// daemon.close()?;
    /// assert!(!daemon.is_open());
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Closes the daemon context: removes the pidfile if it is still ours (or, out of reach
    /// after a `chroot(2)` or not removable after a privilege drop, empties it, so that it reads
    /// as not running) and releases its lock ([`Pidfile::remove`]: `openat2(2)`, `fstatat(2)`,
    /// `unlinkat(2)` and/or `ftruncate(2)`, `close(2)`). Afterwards [`Daemon::is_open`] is
    /// false; closing again does nothing. Dropping an open `Daemon` closes it.
    ///
    /// ```no_run
    /// let mut daemon = daemonctx::DaemonContext::new().pidfile("/run/app.pid").open()?;
    /// // ... serve until told to stop ...
    /// daemon.close()?; // /run/app.pid is gone
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Os`] with [`Step::RemovePidfile`].
    pub fn close(&mut self) -> Result<(), Error> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        signals::disarm_terminate();
        self.report.take();
        match self.pidfile.take() {
            Some(pidfile) => pidfile.remove(),
            None => Ok(()),
        }
    }
}

/// The OS error number of `error` or of the first of its sources that has one; 0 when none does.
fn os_error_number(error: &(dyn std::error::Error + 'static)) -> i32 {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(errno) = error.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
            return errno;
        }
        next = error.source();
    }
    0
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
