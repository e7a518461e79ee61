//! Test helper: counts signals. `signal_log FILE [--child FILE2]` blocks every catchable
//! signal, optionally starts `signal_log FILE2` in its own process group's company (a second
//! member of the group), writes `ready` to FILE, then appends each signal it takes
//! (`sigwaitinfo(2)`: realtime ones are queued, so each sending shows) as its number on a line.
//! It exits 0 after `SIGTERM`. Not an example to copy.
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: signal_log FILE [--child FILE2]");
        std::process::exit(2);
    };
    // SAFETY: an empty sigset_t filled by sigaddset is valid for sigprocmask and sigwaitinfo.
    let set = unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for signal in (1..=libc::SIGRTMAX())
            .filter(|s| !daemonctx::signals::SYNCHRONOUS_OR_UNCATCHABLE.contains(s))
        {
            libc::sigaddset(&mut set, signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    if let (Some("--child"), Some(second)) = (args.get(1).map(String::as_str), args.get(2)) {
        // Started blocked too (the mask is inherited); it says ready in its own file.
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        // Never waited for: it outlives this process, and the supervisor reaps it.
        #[allow(clippy::zombie_processes)]
        child.arg(second).spawn().expect("start the second signal_log");
    }
    let mut log = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
    log.write_all(b"ready\n").unwrap();
    loop {
        // SAFETY: set is a valid sigset_t; a null siginfo is allowed.
        let signal = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if signal < 0 {
            continue; // EINTR
        }
        log.write_all(format!("{signal}\n").as_bytes()).unwrap();
        if signal == libc::SIGTERM {
            std::process::exit(0);
        }
    }
}
