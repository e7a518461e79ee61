//! A plain foreground TCP echo server, the kind of program `daemonize` turns into a daemon:
//! `tcp_echo PORT` listens on 127.0.0.1:PORT, echoes every connection, logs to stdout, and exits
//! on SIGTERM by the default action. SIGHUP (the init script's `reload`, through
//! `daemonize --send HUP`) is logged: it has no configuration to read again.
//! `examples/init.d/echo-server` runs it through `daemonize`.
//!
//! Under systemd it also takes a socket-activated listening socket (`tcp_echo` without PORT,
//! `examples/systemd/echo-server-activated.socket`: `LISTEN_PID` and `LISTEN_FDS=1`, the
//! socket on descriptor 3) and says `READY=1` on `$NOTIFY_SOCKET` once it listens (the
//! `Type=notify` unit `examples/systemd/echo-server-notify.service`).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;

use daemonctx::activation::{LISTEN_FDS_START, ListenFds};

fn main() {
    let listener = listen();
    println!("tcp_echo: listening on {}", listener.local_addr().expect("local address"));
    notify_ready();
    log_reloads();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || echo(stream));
    }
}

/// The socket systemd passed (socket activation), or 127.0.0.1:PORT.
fn listen() -> TcpListener {
    if let Some(sockets) = ListenFds::from_env() {
        if sockets.count() != 1 {
            eprintln!("tcp_echo: expected one socket, got {}", sockets.count());
            std::process::exit(2);
        }
        // SAFETY: descriptor 3 is the listening socket systemd passed to this very process
        // (LISTEN_PID is ours), and nothing else in it owns that descriptor.
        #[allow(unsafe_code)]
        return unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START) };
    }
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: tcp_echo PORT (or socket-activated, without PORT)");
            std::process::exit(2);
        }
    };
    TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("tcp_echo: cannot bind 127.0.0.1:{port}: {e}");
        std::process::exit(1);
    })
}

/// `sd_notify(3)`'s `READY=1`, when started with `$NOTIFY_SOCKET` (a path, or `@name`).
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let target = target.to_string_lossy().into_owned();
    let address = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    };
    let sent = address.and_then(|address| {
        UnixDatagram::unbound()?.send_to_addr(b"READY=1\nSTATUS=echoing", &address)
    });
    if let Err(e) = sent {
        eprintln!("tcp_echo: cannot tell {target} it is ready: {e}");
    }
}

/// On each SIGHUP, says so on stdout (a server with a configuration would read it again here).
fn log_reloads() {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .expect("a SIGHUP handler");
    std::thread::spawn(move || {
        for _ in signals.forever() {
            println!("tcp_echo: SIGHUP: nothing to reload");
        }
    });
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}
