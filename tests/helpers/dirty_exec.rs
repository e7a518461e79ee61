//! Test helper: `dirty_exec PROGRAM [ARG]...` dirties what a process passes across `execve(2)`,
//! then executes PROGRAM: blocks SIGUSR1, SIGHUP and SIGRTMIN, ignores SIGUSR2 and SIGINT,
//! sets umask 077 and leaves /dev/null open on fd 7 without close-on-exec. The CLI tests run
//! `daemonize` through it to show none of that reaches the daemon. Not an example to copy.
use std::ffi::{CString, c_char};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: dirty_exec PROGRAM [ARG]...");
        std::process::exit(64);
    };
    // SAFETY: plain libc calls on valid, initialised arguments, in a single-threaded process.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGUSR1, libc::SIGHUP, libc::SIGRTMIN()] {
            libc::sigaddset(&mut set, signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::umask(0o077);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 7);
    }
    // Not std's Command::exec: it would empty the signal mask this helper set up.
    let argv: Vec<CString> =
        std::iter::once(program).chain(rest).map(|a| CString::new(a.as_str()).unwrap()).collect();
    let mut pointers: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: pointers is a NULL-terminated array of NUL-terminated strings that outlive the call.
    unsafe { libc::execvp(pointers[0], pointers.as_ptr()) };
    eprintln!("dirty_exec: cannot execute {program}: {}", std::io::Error::last_os_error());
    std::process::exit(127);
}
