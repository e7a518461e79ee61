//! A plain foreground TCP echo server, the kind of program `daemonize` turns into a daemon:
//! `tcp_echo PORT` listens on 127.0.0.1:PORT, echoes every connection, logs to stdout, and exits
//! on SIGTERM by the default action. SIGHUP (the init script's `reload`, through
//! `daemonize --send HUP`) is logged: it has no configuration to read again.
//! `examples/init.d/echo-server` runs it through `daemonize`.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: tcp_echo PORT");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("tcp_echo: cannot bind 127.0.0.1:{port}: {e}");
        std::process::exit(1);
    });
    println!("tcp_echo: listening on {}", listener.local_addr().expect("local address"));
    log_reloads();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || echo(stream));
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
