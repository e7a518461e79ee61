//! [`Daemon`]: the daemon's side of an open [`crate::DaemonContext`].
//!
//! It holds the pidfile (and its lock) and, until the daemon is ready, the write end of the
//! report channel. [`Daemon::ready`] tells the original process to exit 0;
//! [`Daemon::close`] (or dropping it) removes the pidfile if it is still ours.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use signal_hook::iterator::Signals;

use crate::error::{Error, Step};
use crate::pidfile::Pidfile;
use crate::signals;
use crate::start::report::{self, Record};

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

    /// Tells the original process that `step` failed with `error` (one `send(2)`), instead of
    /// being ready: its `open()` then returns [`Error::Os`] with that step and OS error. The
    /// daemon should exit afterwards. Does nothing once [`Daemon::ready`] was called, nor in
    /// place (not detached), where nobody waits for a report: returns whether the original
    /// process was told, so that the caller can say it itself otherwise.
    pub fn report_failure(&mut self, step: Step, error: &io::Error) -> bool {
        let Some(report) = self.report.take() else {
            return false;
        };
        let errno = error.raw_os_error().unwrap_or(libc::EIO);
        report::send(report.as_fd(), Record::Failed(step, errno)).is_ok()
    }

    /// The signals mapped to [`crate::SignalAction::Deliver`], as signal-hook's iterator: `None` when
    /// no signal is mapped so.
    ///
    /// ```no_run
    /// use daemonctx::{DaemonContext, SignalAction};
    ///
    /// let mut daemon = DaemonContext::new()
    ///     .signal(libc::SIGTERM, SignalAction::Deliver)
    ///     .open()?;
    /// if let Some(signals) = daemon.signals() {
    ///     for signal in signals.forever() {
    ///         if signal == libc::SIGTERM { break }
    ///     }
    /// }
    /// daemon.close()?; // removes the pidfile
    /// # Ok::<(), daemonctx::Error>(())
    /// ```
    pub fn signals(&mut self) -> Option<&mut Signals> {
        self.signals.as_mut()
    }

    /// The pidfile this daemon holds, if any.
    pub fn pidfile(&self) -> Option<&Path> {
        self.pidfile.as_ref().map(Pidfile::path)
    }

    /// Whether the daemon is open: true until [`Daemon::close`].
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Closes the daemon context: removes the pidfile if it is still ours (or, out of reach
    /// after a `chroot(2)`, empties it) and releases its lock (`lstat(2)`, `unlink(2)` or
    /// `ftruncate(2)`, `close(2)`). Afterwards [`Daemon::is_open`] is false; closing again does
    /// nothing. Dropping an open `Daemon` closes it.
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

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
