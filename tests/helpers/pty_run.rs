//! Test helper: `pty_run COMMAND [ARG]...` runs COMMAND as the leader of a new session whose
//! controlling terminal is a fresh pseudo-terminal, waits for it, copies what it printed, then
//! closes the terminal. Exits with COMMAND's status. Not an example to copy.
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;

fn main() {
    let args: Vec<CString> = std::env::args_os()
        .skip(1)
        .map(|a| CString::new(a.as_bytes()).expect("argument"))
        .collect();
    if args.is_empty() {
        eprintln!("usage: pty_run COMMAND [ARG]...");
        std::process::exit(64);
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: plain libc calls; between fork and exec the child makes only async-signal-safe
    // calls on data prepared before the fork.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if master < 0 || libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            fail("cannot allocate a pseudo-terminal");
        }
        let slave_name = CString::from(std::ffi::CStr::from_ptr(libc::ptsname(master)));
        match libc::fork() {
            -1 => fail("cannot fork"),
            0 => {
                libc::setsid();
                let slave = libc::open(slave_name.as_ptr(), libc::O_RDWR);
                if slave < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
                    libc::_exit(126);
                }
                libc::dup2(slave, 0);
                libc::dup2(slave, 1);
                libc::dup2(slave, 2);
                libc::close(slave);
                libc::close(master);
                libc::execvp(argv[0], argv.as_ptr());
                libc::_exit(127);
            }
            child => {
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
                copy_output(master);
                libc::close(master);
                let status = std::process::ExitStatus::from_raw(status);
                std::process::exit(daemonctx::process::shell_status(status));
            }
        }
    }
}

/// Copies what is buffered on the terminal to stdout, without blocking.
fn copy_output(master: i32) {
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd { fd: master, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; buf is writable for its length.
        let n = unsafe {
            if libc::poll(&mut pfd, 1, 0) <= 0 {
                return;
            }
            libc::read(master, buf.as_mut_ptr().cast(), buf.len())
        };
        if n <= 0 {
            return;
        }
        let _ = std::io::stdout().write_all(&buf[..n as usize]);
    }
}

fn fail(what: &str) -> ! {
    eprintln!("pty_run: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(125)
}
