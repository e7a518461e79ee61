//! Readiness of a command, as the command itself reports it: systemd's `sd_notify(3)` protocol
//! (`READY=1` over `$NOTIFY_SOCKET`) or s6's (a newline written to a descriptor).
//!
//! The notify socket is a `SOCK_DGRAM` Unix socket in the abstract namespace (reachable from a
//! chroot, nothing to remove afterwards), with `SO_PASSCRED`: each message arrives with its
//! sender's pid (`SCM_CREDENTIALS`, which only a process with `CAP_SYS_ADMIN` over our pid
//! namespace can forge), and only a sender that is, when its message is read, the watched
//! process or one of its descendants is believed, so no other local process, even one running
//! as the same user, can declare the daemon ready. (`systemd-notify --ready` still running: it
//! waits for its barrier, which the closing of passed descriptors answers, unless given
//! `--no-block`.) `STATUS=` lines are passed to the caller; `MAINPID=` names the process to
//! watch from then on.
//!
//! Once readiness is settled the socket drops whatever arrives but stays bound
//! ([`ReadyListener::stop_listening`]): COMMAND keeps `NOTIFY_SOCKET`, so its name must never
//! be free for another local user to bind and receive what COMMAND sends later (`STATUS=`
//! text, `FDSTORE=1` descriptors), or to leave unread until COMMAND's `sd_notify(3)` blocks.
//!
//! System calls: `socket(2)`, `bind(2)`, `setsockopt(2)` (`SO_PASSCRED`, `SO_ATTACH_FILTER`,
//! `SO_LOCK_FILTER`), `recvmsg(2)`, `pipe2(2)`, `dup2(2)`, `poll(2)`, `read(2)`.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use daemonctx::process::{self, Pinned};

/// Where the command reports readiness. Its descriptors are its own: nothing outside can
/// replace or close them.
#[derive(Debug)]
pub struct ReadyListener(Kind);

/// The two protocols.
#[derive(Debug)]
enum Kind {
    /// `$NOTIFY_SOCKET`: the socket and its address as the variable spells it (`@name`).
    Notify {
        /// The bound socket.
        socket: OwnedFd,
        /// The value for `NOTIFY_SOCKET`.
        address: String,
    },
    /// s6 style: the command writes a newline to descriptor `target`.
    Fd {
        /// The read end, kept by the waiting process.
        read: OwnedFd,
        /// The write end, to be put on `target` in the command.
        write: Option<OwnedFd>,
        /// The descriptor number the command writes to.
        target: RawFd,
        /// Whether the command closed its end without writing a newline.
        closed: bool,
    },
}

/// What one look at the listener found.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`, or a newline on the ready descriptor.
    Ready,
    /// `STATUS=text`.
    Status(String),
    /// `MAINPID=pid`: the daemon's main process is now this one.
    MainPid(u32),
    /// A line a supervisor passes on to a parent systemd as it is: `RELOADING=1`,
    /// `STOPPING=1`, `WATCHDOG=1`, `EXTEND_TIMEOUT_USEC=N`.
    Pass(String),
}

/// How a wait for readiness ended.
#[derive(Debug)]
pub enum Readiness {
    /// The command said it is ready; the main pid is this one (changed by `MAINPID=`).
    Ready(u32),
    /// The watched process exited first.
    Exited(u32),
    /// The deadline passed first; the watched process, still pinned by its pidfd.
    TimedOut(Pinned),
}

impl ReadyListener {
    /// A notify socket bound to a fresh abstract address: `socket(2)`, `bind(2)`,
    /// `setsockopt(2)` `SO_PASSCRED`.
    ///
    /// # Errors
    /// The OS error of the failed call.
    pub fn notify_socket() -> io::Result<ReadyListener> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socket, sockopt};
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let socket = socket(AddressFamily::Unix, SockType::Datagram, flags, None)?;
        let name = format!("daemonize/notify/{}/{}", std::process::id(), unique());
        bind_abstract(&socket, &name)?;
        setsockopt(&socket, sockopt::PassCred, &true)?;
        Ok(ReadyListener(Kind::Notify { socket, address: format!("@{name}") }))
    }

    /// A pipe whose write end the command gets on descriptor `target` (3 or more).
    ///
    /// # Errors
    /// `EINVAL` for a target below 3; the OS error of `pipe2(2)`.
    pub fn fd(target: RawFd) -> io::Result<ReadyListener> {
        if target < 3 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // The write end is blocking for the command, whatever the read end is.
        fcntl(&write, FcntlArg::F_SETFL(OFlag::empty()))?;
        Ok(ReadyListener(Kind::Fd { read, write: Some(write), target, closed: false }))
    }

    /// For the notify style: the socket's descriptor, for an exec'd COMMAND to inherit (with
    /// `preserve_fd`), so that the name stays bound for as long as COMMAND runs, after the
    /// waiting process has exited.
    pub fn notify_socket_fd(&self) -> Option<RawFd> {
        match &self.0 {
            Kind::Notify { socket, .. } => Some(socket.as_raw_fd()),
            Kind::Fd { .. } => None,
        }
    }

    /// Readiness is settled: for the notify style, the socket drops every message as it
    /// arrives, and what is queued is read and dropped (passed descriptors closed). It stays
    /// bound, for as long as a process holds it, so that nobody else can bind its name.
    /// A ready pipe is left as it is.
    ///
    /// A socket filter that accepts nothing does the dropping (`setsockopt(2)`
    /// `SO_ATTACH_FILTER`, then `SO_LOCK_FILTER`): the kernel discards each datagram, with the
    /// descriptors it carries, and tells the sender it was sent, so `sd_notify(3)` never blocks
    /// on a full queue nobody reads and `sd_notify_barrier(3)` (`systemd-notify`) still
    /// returns. (`shutdown(2)` `SHUT_RD` would fail the barrier with `EPIPE`.)
    ///
    /// # Errors
    /// The OS error of `setsockopt(2)`; the socket then still listens.
    pub fn stop_listening(&mut self) -> io::Result<()> {
        let Kind::Notify { socket, .. } = &mut self.0 else { return Ok(()) };
        drop_all_datagrams(socket)?;
        let _dropped = read_datagrams(socket, 0);
        Ok(())
    }

    /// The environment variable the command needs, if any: `NOTIFY_SOCKET=@…`.
    pub fn environment(&self) -> Option<(OsString, OsString)> {
        match &self.0 {
            Kind::Notify { address, .. } => Some(("NOTIFY_SOCKET".into(), address.clone().into())),
            Kind::Fd { .. } => None,
        }
    }

    /// For the fd style: the write end's number and its target (the same once placed).
    pub fn write_end(&self) -> Option<(RawFd, RawFd)> {
        match &self.0 {
            Kind::Fd { write: Some(write), target, .. } => Some((write.as_raw_fd(), *target)),
            _ => None,
        }
    }

    /// For the fd style: puts the write end on its target number (close-on-exec, so only a
    /// command that is meant to inherit it does: the caller clears the flag there) and returns
    /// the target. A target in use is `EBUSY`: the copy is made with `fcntl(2)`
    /// `F_DUPFD_CLOEXEC` from the target up, which never replaces an open descriptor, and is
    /// kept only if it landed on the target.
    ///
    /// # Errors
    /// `EBUSY`; the OS error of `fcntl(2)`.
    pub fn place_write_end(&mut self) -> io::Result<Option<RawFd>> {
        self.place(|write, target| {
            copy_if_free(write, target)?.ok_or_else(|| io::Error::from_raw_os_error(libc::EBUSY))
        })
    }

    /// Like [`ReadyListener::place_write_end`], but whatever the target number held is
    /// replaced (`dup3(2)`): a stray descriptor the invoker passed down.
    ///
    /// # Safety
    /// Nothing in this process owns the descriptor at the target number (no `File`,
    /// `OwnedFd` or socket): its owner would go on using, and later close, the write end.
    pub unsafe fn place_write_end_over(&mut self) -> io::Result<Option<RawFd>> {
        self.place(|write, target| {
            // SAFETY: write is open; dup3 makes target a copy of it, closing what it was,
            // which the caller promised nothing owns.
            if unsafe { libc::dup3(write.as_raw_fd(), target, libc::O_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: target is now a copy of the write end that nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(target) })
        })
    }

    /// Moves the read end off the target if it sits there, then makes the write end's copy on
    /// the target with `copy` and keeps that as the write end (the old one is closed).
    fn place(
        &mut self,
        copy: impl FnOnce(&OwnedFd, RawFd) -> io::Result<OwnedFd>,
    ) -> io::Result<Option<RawFd>> {
        let Kind::Fd { read, write: Some(write), target, .. } = &mut self.0 else {
            return Ok(None);
        };
        if read.as_raw_fd() == *target {
            *read = read.try_clone()?; // F_DUPFD_CLOEXEC from 3; the old one is closed
        }
        if write.as_raw_fd() != *target {
            *write = copy(write, *target)?;
        }
        Ok(Some(*target))
    }

    /// For the fd style: hands the write end and its target number over to a caller that puts
    /// it in place itself (the supervisor does, in each COMMAND it starts); the listener keeps
    /// the read end.
    pub fn take_write_end(&mut self) -> Option<(OwnedFd, RawFd)> {
        match &mut self.0 {
            Kind::Fd { write, target, .. } => write.take().map(|write| (write, *target)),
            Kind::Notify { .. } => None,
        }
    }

    /// Closes the waiting side's write end, once the command has its copy, so that the command
    /// closing its copy reads as end of file.
    pub fn close_write_end(&mut self) {
        if let Kind::Fd { write, .. } = &mut self.0 {
            write.take();
        }
    }

    /// The descriptor to `poll(2)` for input; `None` once an fd-style listener saw end of file.
    pub fn poll_fd(&self) -> Option<RawFd> {
        match &self.0 {
            Kind::Notify { socket, .. } => Some(socket.as_raw_fd()),
            Kind::Fd { read, closed: false, .. } => Some(read.as_raw_fd()),
            Kind::Fd { .. } => None,
        }
    }

    /// Reads what is waiting, without blocking; messages from processes other than `main` and
    /// its descendants are dropped.
    pub fn read_notices(&mut self, main: u32) -> Vec<Notice> {
        match &mut self.0 {
            Kind::Notify { socket, .. } => read_datagrams(socket, main),
            Kind::Fd { read, closed, .. } => read_newline(read, closed),
        }
    }

    /// Waits for readiness of `main` (a process whose exit a pidfd shows) until `deadline`;
    /// `on_status` gets each `STATUS=` text.
    ///
    /// # Errors
    /// The OS error of `pidfd_open(2)` or `poll(2)`.
    pub fn wait(
        &mut self,
        mut main: u32,
        deadline: Option<Instant>,
        mut on_status: impl FnMut(&str),
    ) -> io::Result<Readiness> {
        let started = main;
        let mut watched = Pinned::open(main)?;
        loop {
            let polled = poll_listener_and(self.listener(), watched.pidfd().as_fd(), deadline);
            let (heard, exited) = match polled {
                Err(nix::errno::Errno::EINTR) => continue,
                polled => polled?,
            };
            if heard {
                // All notices of a message count before readiness: `READY=1` may come before
                // the `MAINPID=` of the same datagram.
                let mut ready = false;
                for notice in self.read_notices(main) {
                    match notice {
                        Notice::Ready => ready = true,
                        Notice::Status(text) => on_status(&text),
                        // Only a process of the daemon's own tree can become its main process.
                        // Pinned first, then checked, then seen not to have exited: the
                        // check was about the pinned process.
                        Notice::MainPid(pid) => {
                            if let Ok(pinned) = Pinned::open(pid)
                                && process::descends_from(pid, started)
                                && !pinned.has_exited()
                            {
                                (main, watched) = (pid, pinned);
                            }
                        }
                        Notice::Pass(_) => {}
                    }
                }
                if ready {
                    return Ok(Readiness::Ready(main));
                }
                continue;
            }
            if exited {
                return Ok(Readiness::Exited(main));
            }
            return Ok(Readiness::TimedOut(watched));
        }
    }

    /// What [`ReadyListener::poll_fd`] names, borrowed.
    fn listener(&self) -> Option<BorrowedFd<'_>> {
        match &self.0 {
            Kind::Notify { socket, .. } => Some(socket.as_fd()),
            Kind::Fd { read, closed: false, .. } => Some(read.as_fd()),
            Kind::Fd { .. } => None,
        }
    }
}

/// A close-on-exec copy of `source` on `target`, if that number is free: `fcntl(2)`
/// `F_DUPFD_CLOEXEC` from `target` up, which never replaces an open descriptor; a copy that
/// landed above `target` is closed again (`None`).
pub fn copy_if_free(source: &OwnedFd, target: RawFd) -> io::Result<Option<OwnedFd>> {
    let copy = nix::fcntl::fcntl(source, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(target))?;
    // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
    let copy = unsafe { OwnedFd::from_raw_fd(copy) };
    Ok((copy.as_raw_fd() == target).then_some(copy))
}

/// A number unlikely to repeat within this process: the clock's nanoseconds and a counter.
fn unique() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    nanos ^ (COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32)
}

/// `poll(2)` on `listener` (when there is one) and `pidfd` for reading, until one is ready or
/// `deadline` passes: (the listener has something, the process exited); both false once the
/// deadline passed.
fn poll_listener_and(
    listener: Option<BorrowedFd<'_>>,
    pidfd: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> nix::Result<(bool, bool)> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let timeout = deadline.map_or(PollTimeout::NONE, |d| {
        let left = d.saturating_duration_since(Instant::now());
        PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
    });
    let mut fds = vec![PollFd::new(pidfd, PollFlags::POLLIN)];
    fds.extend(listener.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
    poll(&mut fds, timeout)?;
    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|events| !events.is_empty());
    Ok((fds.get(1).is_some_and(ready), ready(&fds[0])))
}

/// `SO_ATTACH_FILTER` with a classic BPF program of one instruction, "return 0" (keep no byte:
/// drop the datagram), then `SO_LOCK_FILTER` so that no process holding the socket can take
/// it off.
fn drop_all_datagrams(socket: &OwnedFd) -> io::Result<()> {
    let mut drop_everything =
        [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: 0 }];
    let program = libc::sock_fprog { len: 1, filter: drop_everything.as_mut_ptr() };
    set_option(socket, libc::SO_ATTACH_FILTER, &program)?;
    set_option(socket, libc::SO_LOCK_FILTER, &(1 as libc::c_int))
}

/// `setsockopt(2)` at `SOL_SOCKET` with `value` as the option's bytes.
fn set_option<T>(socket: &OwnedFd, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to a live T for the call, and the length passed is its size; the
    // kernel copies what it needs (a filter program is copied whole before the call returns).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `bind(2)` to `\0name` in the abstract namespace (`ENAMETOOLONG` past `sun_path`).
fn bind_abstract(socket: &OwnedFd, name: &str) -> io::Result<()> {
    let address = nix::sys::socket::UnixAddr::new_abstract(name.as_bytes())?;
    Ok(nix::sys::socket::bind(socket.as_raw_fd(), &address)?)
}

/// Receives every waiting datagram with its sender's credentials (`recvmsg(2)` through nix,
/// `MSG_CMSG_CLOEXEC`).
fn read_datagrams(socket: &OwnedFd, main: u32) -> Vec<Notice> {
    use nix::sys::socket::{MsgFlags, UnixCredentials, recvmsg};
    let mut notices = Vec::new();
    let mut buf = [0u8; 4096];
    // Room for the credentials and the most descriptors one message can pass (253): every
    // passed descriptor is closed, which also answers sd_notify_barrier(3).
    let mut control = nix::cmsg_space!(UnixCredentials, [RawFd; 253]);
    loop {
        let (length, sender) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let flags = MsgFlags::MSG_CMSG_CLOEXEC;
            match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut control), flags) {
                Ok(message) => (message.bytes, message.cmsgs().ok().and_then(read_control)),
                Err(_) => return notices, // EAGAIN: nothing more waiting
            }
        };
        if sender.is_some_and(|pid| is_believed(pid, main)) {
            notices.extend(parse_notify(&buf[..length]));
        }
    }
}

/// Walks a received datagram's control messages: closes every passed descriptor
/// (`SCM_RIGHTS`), and returns the sender's pid (`SCM_CREDENTIALS`).
fn read_control(messages: nix::sys::socket::CmsgIterator<'_>) -> Option<u32> {
    use nix::sys::socket::ControlMessageOwned;
    let mut sender = None;
    for message in messages {
        match message {
            ControlMessageOwned::ScmCredentials(creds) => sender = Some(creds.pid() as u32),
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    // SAFETY: recvmsg just installed this descriptor in our table for us to
                    // own; nothing else holds it. Dropping the OwnedFd closes it.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            _ => {}
        }
    }
    sender
}

/// A message counts if its sender, still there when the message is read (a zombie too), is
/// `main` or descends from it. A sender that has exited is not believed, whoever it ran as:
/// any process of the daemon's user could send `READY=1` and exit before it is read.
fn is_believed(pid: u32, main: u32) -> bool {
    process::stat(pid).is_some() && process::descends_from(pid, main)
}

/// Parses an `sd_notify(3)` datagram: newline-separated `KEY=VALUE` assignments.
pub fn parse_notify(message: &[u8]) -> Vec<Notice> {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .filter_map(|line| match line.split_once('=')? {
            ("READY", "1") => Some(Notice::Ready),
            ("STATUS", status) => Some(Notice::Status(status.to_string())),
            ("MAINPID", pid) => pid.parse().ok().filter(|p| *p > 1).map(Notice::MainPid),
            // systemd reads MONOTONIC_USEC= (when the reload began) from the same datagram.
            ("RELOADING", "1") => Some(Notice::Pass(with_reload_start(line, &text))),
            ("STOPPING" | "WATCHDOG", "1") => Some(Notice::Pass(line.to_string())),
            ("EXTEND_TIMEOUT_USEC", usec) if usec.parse::<u64>().is_ok() => {
                Some(Notice::Pass(line.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// `RELOADING=1`, and the `MONOTONIC_USEC=` of the same datagram (`message`) if it has one, as
/// one text: `sd_notify(3)` sends them together, and systemd reads them together.
fn with_reload_start(line: &str, message: &str) -> String {
    let start = message.lines().find(|l| {
        l.strip_prefix("MONOTONIC_USEC=").is_some_and(|usec| usec.parse::<u64>().is_ok())
    });
    match start {
        Some(start) => format!("{line}\n{start}"),
        None => line.to_string(),
    }
}

/// Reads the ready pipe: a newline means ready; end of file means the command gave up its end.
fn read_newline(read: &OwnedFd, closed: &mut bool) -> Vec<Notice> {
    let mut buf = [0u8; 512];
    loop {
        match nix::unistd::read(read, &mut buf) {
            Ok(0) => {
                *closed = true;
                return Vec::new();
            }
            Ok(n) => {
                if buf[..n].contains(&b'\n') {
                    return vec![Notice::Ready];
                }
            }
            Err(_) => return Vec::new(), // EAGAIN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sd_notify_messages() {
        let notices = parse_notify(b"STATUS=warming up\nMAINPID=4242\nREADY=1\nWATCHDOG=1\n");
        assert_eq!(
            notices,
            vec![
                Notice::Status("warming up".into()),
                Notice::MainPid(4242),
                Notice::Ready,
                Notice::Pass("WATCHDOG=1".into())
            ]
        );
        let passed =
            parse_notify(b"RELOADING=1\nSTOPPING=1\nEXTEND_TIMEOUT_USEC=5000000\nFDSTORE=1");
        assert_eq!(passed.len(), 3, "{passed:?}");
        assert_eq!(parse_notify(b"EXTEND_TIMEOUT_USEC=soon\nWATCHDOG=trigger"), vec![]);
        assert_eq!(
            parse_notify(b"MONOTONIC_USEC=123\nRELOADING=1\nMONOTONIC_USEC=x"),
            vec![Notice::Pass("RELOADING=1\nMONOTONIC_USEC=123".into())]
        );
        assert_eq!(parse_notify(b"READY=0"), vec![]);
        assert_eq!(parse_notify(b"MAINPID=1"), vec![]);
        assert_eq!(parse_notify(b"\xff\xfe"), vec![]);
    }

    #[test]
    fn notify_socket_believes_only_the_watched_process_tree() {
        let mut listener = ReadyListener::notify_socket().unwrap();
        let (_, address) = listener.environment().unwrap();
        let name = address.to_str().unwrap().strip_prefix('@').unwrap().to_string();
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        use std::os::linux::net::SocketAddrExt;
        sender.send_to_addr(b"READY=1", &address).unwrap();
        // This test process sent it: it is its own "main" process, and not pid 1's descendant.
        assert_eq!(listener.read_notices(std::process::id()), vec![Notice::Ready]);
        sender.send_to_addr(b"READY=1", &address).unwrap();
        assert_eq!(listener.read_notices(1), vec![]);
    }

    #[test]
    fn placing_the_write_end_never_replaces_a_descriptor_another_owner_holds() {
        use std::os::unix::fs::MetadataExt;
        let owned = std::fs::File::open("/dev/null").unwrap();
        let before = owned.metadata().unwrap().rdev();
        let mut listener = ReadyListener::fd(owned.as_raw_fd()).unwrap();
        let error = listener.place_write_end().unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBUSY));
        assert_eq!(owned.metadata().unwrap().rdev(), before, "the File's descriptor was replaced");
        // A free target is taken.
        let mut listener = ReadyListener::fd(200).unwrap();
        assert_eq!(listener.place_write_end().unwrap(), Some(200));
        assert_eq!(listener.write_end(), Some((200, 200)));
    }

    #[test]
    fn ready_fd_sees_a_newline_and_end_of_file() {
        let mut listener = ReadyListener::fd(9).unwrap();
        let (write, target) = listener.write_end().unwrap();
        assert_eq!(target, 9);
        // SAFETY: write is the open write end of the pipe.
        unsafe { libc::write(write, b"x".as_ptr().cast(), 1) };
        assert_eq!(listener.read_notices(0), vec![]);
        // SAFETY: as above.
        unsafe { libc::write(write, b"\n".as_ptr().cast(), 1) };
        assert_eq!(listener.read_notices(0), vec![Notice::Ready]);
        listener.close_write_end();
        assert_eq!(listener.read_notices(0), vec![]);
        assert_eq!(listener.poll_fd(), None);
    }
}
