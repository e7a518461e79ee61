//! The parent systemd's notify socket, when daemonize runs as a `Type=notify` service's main
//! process in the foreground: the supervisor speaks for COMMAND there.
//!
//! systemd believes only the main process (`NotifyAccess=main`, the default), which is the
//! supervisor, so COMMAND's own messages would be dropped. COMMAND talks to the supervisor's
//! socket instead ([`super::readiness`], which believes only COMMAND's tree); the supervisor
//! sends `READY=1` once COMMAND is ready, passes on `STATUS=`, `RELOADING=1`, `STOPPING=1`,
//! `WATCHDOG=1` and `EXTEND_TIMEOUT_USEC=`, and the `READY=1` that ends a reload (after
//! `RELOADING=1`; systemd waits for it), and says `STATUS=restarting …` between runs.
//!
//! System calls: `socket(2)` (an unbound `SOCK_DGRAM` Unix socket, close-on-exec and
//! non-blocking: a stuck systemd must not stall the supervisor), `sendto(2)`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A connection to the notify socket `NOTIFY_SOCKET` names.
#[derive(Debug)]
pub struct Upstream {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for messages.
    name: String,
}

impl Upstream {
    /// The notify socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace);
    /// `None` when the variable is unset or empty.
    ///
    /// # Errors
    /// The OS error of `socket(2)`; `EINVAL` for an address that cannot be one.
    pub fn from_env() -> Option<io::Result<Upstream>> {
        let name = std::env::var("NOTIFY_SOCKET").ok().filter(|n| !n.is_empty())?;
        Some(Upstream::connect(name))
    }

    fn connect(name: String) -> io::Result<Upstream> {
        let address = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None => SocketAddr::from_pathname(&name)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Upstream { socket, address, name })
    }

    /// The socket's descriptor, to keep across the daemon's setup.
    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// `NOTIFY_SOCKET` as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one message (`sendto(2)`); a failure (systemd gone, its queue full) is returned
    /// for the log, and the supervisor goes on.
    ///
    /// # Errors
    /// The OS error of `sendto(2)`.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.address).map(drop)
    }
}
