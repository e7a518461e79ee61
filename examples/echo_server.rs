//! A TCP echo server run as a daemon, with a graceful shutdown: `echo_server PIDFILE LOGFILE
//! [PORT]`. The pattern to copy for a server whose main thread blocks in `accept(2)`:
//!
//! 1. `SIGTERM` is delivered to the program (`SignalAction::Deliver`) instead of the default
//!    `Terminate` action, which would remove the pidfile and end the process at once.
//! 2. The daemon binds 127.0.0.1:PORT (0, the default, picks a free port) and only then calls
//!    `ready()`: when the command returns 0, the port accepts connections. If it cannot bind,
//!    `fail()` hands the reason to the original process, which prints it and exits 3.
//! 3. A thread owns the delivered signals (`take_signals()`). On `SIGTERM` it logs
//!    `shutting down on SIGTERM`, sets a flag, and connects once to the listener: that
//!    connection wakes the blocking `accept(2)`, and the loop, seeing the flag, stops.
//! 4. The main thread shuts down the reading side of the connections still open (each handler
//!    sees end of input and finishes), waits for the handlers, removes the pidfile with
//!    `close()`, logs `stopped` and returns from `main`: exit status 0.
//!
//! Output goes to LOGFILE. Exit status of the command: 0 the daemon is ready; 1 it could not
//! become a daemon; 3 the daemon could not bind; 2 usage.
//!
//! ```sh
//! cargo run --example echo_server -- /tmp/echo.pid /tmp/echo.log 7007
//! echo hello | nc -q1 127.0.0.1 7007
//! kill $(cat /tmp/echo.pid)    # graceful: the log ends with "stopped"
//! ```
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use daemonctx::signals::Signals;
use daemonctx::{DaemonContext, Error, Signal, SignalAction, error::chain};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: echo_server PIDFILE LOGFILE [PORT]");
        std::process::exit(2);
    }
    let port: u16 = args.get(3).map_or(Ok(0), |p| p.parse()).unwrap_or_else(|_| {
        eprintln!("echo_server: bad port {:?}", args[3]);
        std::process::exit(2);
    });
    let context = DaemonContext::new()
        .pidfile(&args[1])
        .stdout(&args[2])
        .stderr(&args[2])
        .umask(0o027)
        .signal(Signal::SIGTERM, SignalAction::Deliver)
        .ready_on_open(false);
    let mut daemon = match context.open() {
        Ok(daemon) => daemon,
        Err(e) => {
            // In the original process: the daemon is not running.
            eprintln!("echo_server: {}", chain(&e));
            std::process::exit(if matches!(e, Error::DaemonFailed { .. }) { 3 } else { 1 });
        }
    };
    // From here on we are the daemon: stdout and stderr go to the log file.
    let address = format!("127.0.0.1:{port}");
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(e) => daemon.fail(format!("cannot bind {address}"), &e),
    };
    let local = listener.local_addr().expect("local address");
    println!("listening on {local}");
    let stopping = Arc::new(AtomicBool::new(false));
    let signals = daemon.take_signals().expect("SIGTERM is delivered");
    let waiter = wait_for_sigterm(signals, local, stopping.clone());
    if let Err(e) = daemon.ready() {
        eprintln!("echo_server: {}", chain(&e));
        std::process::exit(1);
    }
    serve(&listener, &stopping);
    let _ = waiter.join();
    if let Err(e) = daemon.close() {
        eprintln!("echo_server: {}", chain(&e));
        std::process::exit(1);
    }
    println!("stopped");
}

/// On the first delivered signal: log it, set `stopping`, and connect to `local` so that the
/// accept loop wakes up to see the flag.
fn wait_for_sigterm(
    mut signals: Signals,
    local: SocketAddr,
    stopping: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(signal) = signals.forever().next() else { return };
        let name = Signal::try_from(signal).map_or("a signal", Signal::as_str);
        println!("shutting down on {name}");
        stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(local); // wakes accept(2); dropped at once
    })
}

/// Accepts until `stopping` is set, one thread per connection; then ends the connections in
/// progress (their reading side) and waits for their threads.
fn serve(listener: &TcpListener, stopping: &AtomicBool) {
    let mut open: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("echo_server: cannot accept: {e}");
                continue;
            }
        };
        open.retain(|(_, handler)| !handler.is_finished());
        match stream.try_clone() {
            Ok(ours) => open.push((ours, std::thread::spawn(move || echo(stream)))),
            Err(e) => eprintln!("echo_server: cannot keep a connection: {e}"),
        }
    }
    for (stream, handler) in open {
        let _ = stream.shutdown(Shutdown::Read);
        let _ = handler.join();
    }
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}
