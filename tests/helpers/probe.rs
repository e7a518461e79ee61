//! Test helper: daemonizes through `DaemonContext` with options from its arguments, so the
//! integration tests can check each option from `/proc`. Not an example to copy.
//!
//! Options (each maps to one builder call or one way of dirtying the invoker):
//! `--pidfile P --umask OCT --cwd D --chroot D --user U --group G --initgroups --core
//! --foreground --stdin F --stdout F --stderr F --preserve-fd N --deliver-term`
//! `--ready-after-fifo F` (ready_on_open(false); the daemon calls ready() once F yields a line)
//! `--exit-before-ready CODE`, `--timeout SECS`, `--spawn-thread`,
//! `--dirty-invoker` (block SIGUSR1, ignore SIGUSR2, umask 077, non-CLOEXEC fd 7),
//! `--hold-fd N` (raise RLIMIT_NOFILE to its hard limit, leave fd N open without CLOEXEC),
//! `--close-inherited` (the unsafe `close_inherited_fds`: close what is not kept),
//! `--terminate SIG` (map SIG to Terminate), `--open-twice` (after open(), open a second
//! context in place, print "second open: " and the outcome to stdout, and return),
//! `--print-after-open` (write "open pid=N" to stdout in the daemon),
//! `--uid N --gid N` (numeric ids), `--stdout-file F` (an open `File` as stdout),
//! `--preserve-file F` (an open `File` kept through `files_preserve`),
//! `--handler SIG` / `--default SIG` / `--deliver SIG` (map SIG to a no-op handler / the
//! default action / signal-hook's iterator),
//! `--drop-before-ready` (ready_on_open(false), then drop the guard without ready()),
//! `--setxid-after-threads` (a thread before open(); in the daemon, a thread and `setgid(2)`,
//! then "setxid ok" on stdout), `--spawn-in-own-group MARKER` (in the daemon, before anything
//! else, start `sh -c 'sleep 1000; :' MARKER` in a process group of its own),
//! `--bind-before-ready ADDR` (ready_on_open(false); the daemon binds a TCP socket to ADDR, then
//! calls ready(), or fail("cannot bind ADDR", error)).
//!
//! Exit status of the original process: 0 ready, 3 the daemon failed (`Error::DaemonFailed`),
//! 2 any other error.
//!
//! `probe --subreaper PROGRAM ARGS...` is another mode: it becomes a child subreaper
//! (`prctl(2)`), runs PROGRAM, prints `started: STATUS` when PROGRAM ends, then, for each
//! orphan it adopted and reaped (a daemon PROGRAM started), `reaped PID: STATUS`; it exits once
//! no child is left. So a test learns a daemon's own exit status.
use std::io::BufRead;
use std::os::fd::AsFd;
use std::time::Duration;

use daemonctx::{DaemonContext, Error, Signal, SignalAction, error::chain};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--subreaper") {
        subreaper(args.skip(1).collect());
    }
    let mut context = DaemonContext::new();
    let mut ready_fifo = None;
    let mut exit_before_ready = None;
    let mut print_after_open = false;
    let mut drop_before_ready = false;
    let mut setxid_after_threads = false;
    let mut spawn_marker = None;
    let mut open_twice = false;
    let mut bind_address = None;
    let mut _thread = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&arg));
        context = match arg.as_str() {
            "--pidfile" => context.pidfile(value()),
            "--umask" => context.umask(u32::from_str_radix(&value(), 8).expect("octal umask")),
            "--cwd" => context.working_directory(value()),
            "--chroot" => context.chroot_directory(value()),
            "--user" => context.user(value()),
            "--group" => context.group(value()),
            "--initgroups" => context.initgroups(true),
            "--core" => context.prevent_core(false),
            "--foreground" => context.detach_process(false),
            "--stdin" => context.stdin(value().as_str()),
            "--stdout" => context.stdout(value().as_str()),
            "--stderr" => context.stderr(value().as_str()),
            "--preserve-fd" => context.preserve_fd(value().parse().expect("fd")),
            // SAFETY: the probe owns no descriptor above 2 that it does not preserve: what
            // --hold-fd and --dirty-invoker leave open are raw numbers nothing owns, and the
            // files it opens are handed to the context or leaked and preserved.
            "--close-inherited" => unsafe { context.close_inherited_fds() },
            "--deliver-term" => context.signal(Signal::SIGTERM, SignalAction::Deliver),
            "--deliver" => context.signal(signal(&value()), SignalAction::Deliver),
            "--timeout" => {
                let secs: f64 = value().parse().expect("seconds");
                context.ready_timeout(Some(Duration::from_secs_f64(secs)))
            }
            "--ready-after-fifo" => {
                ready_fifo = Some(value());
                context.ready_on_open(false)
            }
            "--exit-before-ready" => {
                exit_before_ready = Some(value().parse::<i32>().expect("exit code"));
                context.ready_on_open(false)
            }
            "--spawn-thread" => {
                _thread = Some(std::thread::spawn(|| std::thread::sleep(Duration::from_secs(30))));
                context
            }
            "--dirty-invoker" => {
                dirty_invoker();
                context
            }
            "--hold-fd" => {
                hold_fd(value().parse().expect("fd"));
                context
            }
            "--print-after-open" => {
                print_after_open = true;
                context
            }
            "--uid" => context.uid(value().parse().expect("uid")),
            "--gid" => context.gid(value().parse().expect("gid")),
            "--stdout-file" => context.stdout(append_to(&value())),
            "--preserve-file" => {
                let file: &'static std::fs::File = Box::leak(Box::new(append_to(&value())));
                context.files_preserve([file.as_fd()])
            }
            "--handler" => {
                // SAFETY: noop does nothing at all.
                context.signal(signal(&value()), unsafe { SignalAction::handler(noop) })
            }
            "--default" => context.signal(signal(&value()), SignalAction::Default),
            "--terminate" => context.signal(signal(&value()), SignalAction::Terminate),
            "--open-twice" => {
                open_twice = true;
                context
            }
            "--bind-before-ready" => {
                bind_address = Some(value());
                context.ready_on_open(false)
            }
            "--drop-before-ready" => {
                drop_before_ready = true;
                context.ready_on_open(false)
            }
            "--spawn-in-own-group" => {
                spawn_marker = Some(value());
                context
            }
            "--setxid-after-threads" => {
                setxid_after_threads = true;
                std::thread::spawn(|| ()).join().expect("thread");
                context
            }
            _ => usage(&arg),
        };
    }
    let mut daemon = match context.open() {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("probe: {}", chain(&e));
            std::process::exit(if matches!(e, Error::DaemonFailed { .. }) { 3 } else { 2 });
        }
    };
    if let Some(address) = bind_address {
        let _listener = match std::net::TcpListener::bind(&address) {
            Ok(listener) => listener,
            Err(e) => daemon.fail(format!("cannot bind {address}"), &e),
        };
        daemon.ready().expect("ready");
        loop {
            std::thread::park(); // SIGTERM ends the process through the signal map
        }
    }
    if print_after_open {
        println!("open pid={}", std::process::id());
    }
    if open_twice {
        let outcome = match DaemonContext::new().detach_process(false).open() {
            Ok(_) => "succeeded".to_string(),
            Err(e) => chain(&e),
        };
        println!("second open: {outcome}");
        return;
    }
    if let Some(marker) = spawn_marker {
        use std::os::unix::process::CommandExt;
        // Never waited for: it must outlive this daemon unless the original process kills it.
        #[allow(clippy::zombie_processes)]
        std::process::Command::new("sh")
            .args(["-c", "sleep 1000; :", &marker])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
    }
    if drop_before_ready {
        drop(daemon);
        loop {
            std::thread::park(); // the original process must kill us
        }
    }
    if setxid_after_threads {
        std::thread::spawn(std::thread::park);
        // SAFETY: setgid takes a plain id; with two threads glibc signals the other one
        // (SIGSETXID) so that both change.
        let rc = unsafe { libc::setgid(libc::getgid()) };
        println!("setxid {}", if rc == 0 { "ok" } else { "failed" });
    }
    if let Some(code) = exit_before_ready {
        std::process::exit(code);
    }
    if let Some(fifo) = ready_fifo {
        let mut line = String::new();
        let file = std::fs::File::open(fifo).expect("open fifo");
        std::io::BufReader::new(file).read_line(&mut line).expect("read fifo");
        daemon.ready().expect("ready");
    }
    if let Some(signals) = daemon.signals() {
        let signal = signals.forever().next();
        println!("graceful shutdown on signal {signal:?}, open: {}", daemon.is_open());
        daemon.close().expect("close");
        daemon.close().expect("second close");
        println!("closed, open: {}", daemon.is_open());
        return;
    }
    loop {
        // SAFETY: pause has no preconditions; signals end the process by their map.
        unsafe { libc::pause() };
    }
}

extern "C" fn noop(_signal: libc::c_int) {}

/// A signal by its number.
fn signal(number: &str) -> Signal {
    Signal::try_from(number.parse::<i32>().expect("signal number")).expect("signal")
}

/// The `--subreaper` mode: run `command` as a child subreaper, report how it and every orphan
/// it left ended, exit when no child is left.
fn subreaper(command: Vec<String>) -> ! {
    use nix::sys::wait::{WaitStatus, wait};
    let Some((program, args)) = command.split_first() else { usage("--subreaper") };
    nix::sys::prctl::set_child_subreaper(true).expect("prctl PR_SET_CHILD_SUBREAPER");
    let status = std::process::Command::new(program).args(args).status().expect("run PROGRAM");
    println!("started: {status}");
    loop {
        match wait() {
            Ok(WaitStatus::Exited(pid, code)) => println!("reaped {pid}: exit status: {code}"),
            Ok(WaitStatus::Signaled(pid, signal, _)) => println!("reaped {pid}: signal: {signal}"),
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => std::process::exit(0),
            Err(e) => panic!("wait: {e}"),
        }
    }
}

/// Opens `path` for appending, creating it.
fn append_to(path: &str) -> std::fs::File {
    std::fs::OpenOptions::new().append(true).create(true).open(path).expect("open file")
}

fn usage(arg: &str) -> ! {
    eprintln!("probe: bad argument {arg:?}");
    std::process::exit(64)
}

/// Blocks SIGUSR1, ignores SIGUSR2, sets umask 077 and leaves fd 7 open across exec.
fn dirty_invoker() {
    // SAFETY: plain libc calls on valid, initialised arguments.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        libc::umask(0o077);
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(fd, 7);
    }
}

/// Raises RLIMIT_NOFILE to its hard limit and leaves `fd` open (no CLOEXEC).
fn hold_fd(fd: i32) {
    // SAFETY: plain libc calls on valid, initialised arguments.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if libc::dup2(null, fd) != fd {
            eprintln!("probe: cannot put /dev/null on fd {fd}");
            std::process::exit(3);
        }
        libc::close(null);
    }
}
