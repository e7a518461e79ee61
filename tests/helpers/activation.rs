//! Test helper: both sides of systemd's socket activation. Not an example to copy.
//!
//! `activation listen PORTFILE [--for-pid N] [--two] -- COMMAND...` plays systemd: binds a TCP
//! socket on 127.0.0.1 (a free port, written to PORTFILE), puts it on descriptor 3
//! (inheritable), sets `LISTEN_FDS=1`, `LISTEN_FDNAMES=web` and `LISTEN_PID` to its own pid (or
//! N), then executes COMMAND, which so keeps its pid. With `--two`, a second listening socket
//! goes on descriptor 4: `LISTEN_FDS=2`, `LISTEN_FDNAMES=web:admin`.
//!
//! `activation serve [--once]` plays the service: takes descriptor 3 as its listening socket
//! and answers each connection with one line, `pid=P listen_pid=L fds=N names=X sockets=K`
//! (K: how many of descriptors 3..3+N-1 are sockets), then closes it; with `--once` it exits 0
//! after the first. Without a socket on 3 it exits 3.
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::process::CommandExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("listen") => listen(&args[1..]),
        Some("serve") => serve(args.get(1).is_some_and(|a| a == "--once")),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: activation listen PORTFILE [--for-pid N] [--two] -- COMMAND... | serve [--once]"
    );
    std::process::exit(2)
}

fn listen(args: &[String]) -> ! {
    let Some(portfile) = args.first() else { usage() };
    let mut rest = &args[1..];
    let mut for_pid = std::process::id();
    if rest.first().is_some_and(|a| a == "--for-pid") {
        for_pid = rest.get(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| usage());
        rest = &rest[2..];
    }
    let two = rest.first().is_some_and(|a| a == "--two");
    if two {
        rest = &rest[1..];
    }
    let command = match rest.split_first() {
        Some((dashes, command)) if dashes == "--" && !command.is_empty() => command,
        _ => usage(),
    };
    let port = place_listener(3);
    let (count, names) = match two {
        true => {
            place_listener(4);
            ("2", "web:admin")
        }
        false => ("1", "web"),
    };
    let partial = format!("{portfile}.partial");
    std::fs::write(&partial, format!("{port}\n")).expect("write port");
    std::fs::rename(&partial, portfile).expect("rename port file");
    let error = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("LISTEN_FDS", count)
        .env("LISTEN_PID", for_pid.to_string())
        .env("LISTEN_FDNAMES", names)
        .exec();
    eprintln!("activation: cannot execute {}: {error}", command[0]);
    std::process::exit(127)
}

/// Binds a TCP listener on a free port of 127.0.0.1 and puts it on descriptor `target`,
/// inheritable; its port.
fn place_listener(target: i32) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    let fd = listener.into_raw_fd();
    // SAFETY: dup2 onto target (not close-on-exec); fd is our listener.
    if unsafe { libc::dup2(fd, target) } != target {
        panic!("dup2: {}", std::io::Error::last_os_error());
    }
    if fd != target {
        // SAFETY: fd is our own copy, no longer needed.
        unsafe { libc::close(fd) };
    }
    // dup2 onto itself keeps close-on-exec: clear it, as systemd passes its sockets.
    // SAFETY: F_SETFD on our descriptor target; no memory is involved.
    unsafe { libc::fcntl(target, libc::F_SETFD, 0) };
    port
}

/// Whether descriptor `fd` is open on a socket (`fstat(2)`).
fn is_socket(fd: i32) -> bool {
    let mut meta = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: meta is a valid out-pointer for one struct stat.
    let found = unsafe { libc::fstat(fd, meta.as_mut_ptr()) } == 0;
    // SAFETY: fstat succeeded, so meta is initialised.
    found && unsafe { meta.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

fn serve(once: bool) -> ! {
    if !is_socket(3) {
        let pid = std::env::var("LISTEN_PID").unwrap_or_else(|_| "-".into());
        eprintln!("activation: descriptor 3 is not a socket (LISTEN_PID={pid})");
        std::process::exit(3);
    }
    // SAFETY: descriptor 3 is the passed socket, owned by nothing else in this process.
    let listener = unsafe { TcpListener::from_raw_fd(3) };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "-".into());
    let count: i32 = var("LISTEN_FDS").parse().unwrap_or(0);
    let sockets = (3..3 + count).filter(|fd| is_socket(*fd)).count();
    let line = format!(
        "pid={} listen_pid={} fds={} names={} sockets={sockets}\n",
        std::process::id(),
        var("LISTEN_PID"),
        var("LISTEN_FDS"),
        var("LISTEN_FDNAMES")
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.write_all(line.as_bytes());
        drop(stream);
        if once {
            std::process::exit(0);
        }
    }
    std::process::exit(1)
}
