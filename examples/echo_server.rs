//! A TCP echo server run as a daemon: `echo_server PIDFILE LOGFILE [PORT]`.
//!
//! It binds 127.0.0.1:PORT (0, the default, picks a free port) *in the daemon*, and only then
//! tells the original process it is ready, so when the command returns 0 the port accepts
//! connections. Its output goes to LOGFILE. SIGTERM is delivered to the program (not handled by
//! the default "terminate" action), which logs, removes the pidfile and exits 0.
//!
//! ```sh
//! cargo run --example echo_server -- /tmp/echo.pid /tmp/echo.log 7007
//! echo hello | nc -q1 127.0.0.1 7007
//! kill $(cat /tmp/echo.pid)
//! ```
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use daemonctx::{DaemonContext, SignalAction, error::chain};

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
        .stdout(args[2].as_str())
        .stderr(args[2].as_str())
        .umask(0o027)
        .signal(libc::SIGTERM, SignalAction::Deliver)
        .ready_on_open(false);
    let mut daemon = match context.open() {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("echo_server: {}", chain(&e));
            std::process::exit(1);
        }
    };
    // From here on we are the daemon: stdout and stderr go to the log file.
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("echo_server: cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(1); // the original process reports that we died before ready
        }
    };
    println!("listening on {}", listener.local_addr().expect("local address"));
    if let Err(e) = daemon.ready() {
        eprintln!("echo_server: {}", chain(&e));
        std::process::exit(1);
    }
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || echo(stream));
        }
    });
    if let Some(signals) = daemon.signals() {
        let signal = signals.forever().next();
        println!("shutting down on signal {}", signal.unwrap_or(0));
    }
    if let Err(e) = daemon.close() {
        eprintln!("echo_server: {}", chain(&e));
        std::process::exit(1);
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
