//! Shared test utilities: spawning helpers with bounded waits, reading `/proc`, cleaning up by pid.
//!
//! Nothing here forks the test process: children are started with `std::process::Command`.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use daemonctx::process;

/// How long any single command in a test may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `daemonize` binary under test (in the `daemonize` package's tests).
pub fn daemonize_bin() -> PathBuf {
    let path = option_env!("CARGO_BIN_EXE_daemonize");
    PathBuf::from(path.expect("only the daemonize package's tests run the daemonize binary"))
}

/// How long a test waits for a handshake (a file, a line, a message, an exit) before failing.
pub const HANDSHAKE: Duration = Duration::from_secs(20);

/// Runs `daemonize ARGS` to completion (bounded by `COMMAND_TIMEOUT`).
pub fn daemonize(args: &[&str]) -> Output {
    run(Command::new(daemonize_bin()).args(args))
}

/// `path` as UTF-8 (test paths always are), for use as an argument.
pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A pid read from a pidfile, or `None` while it is missing or half-written.
pub fn try_pidfile(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.strip_suffix('\n')?.parse().ok()
}

/// A helper built from `tests/helpers/` or `examples/` of the `daemonctx` package, next to this
/// test binary's profile directory (`target/<profile>/examples/`): unfiltered `cargo test` at
/// the workspace root builds them.
pub fn example(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    let profile_dir = test_binary.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} is missing at {}: run unfiltered `cargo test`, which builds examples",
        path.display()
    );
    path
}

/// A fresh directory for one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("daemonctx-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.0).is_err() {
            // A test made a directory it cannot list (mode 000, as an unprivileged user): open
            // up every directory below, then remove again.
            make_removable(&self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Gives the owner access to `path` and every directory below it (symbolic links untouched).
fn make_removable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        make_removable(&entry.path());
    }
}

/// A process a test started (directly or as a daemon); killed and awaited when dropped. A pidfd
/// taken at once pins the process, so a pid reused after it exited is never signalled.
pub struct Spawned(pub i32, Option<OwnedFd>);

impl Spawned {
    pub fn new(pid: i32) -> Spawned {
        Spawned(pid, process::pidfd_open(pid as u32).ok())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let Some(pidfd) = &self.1 else { return }; // already gone when the guard was made
        let _ = process::pidfd_send_signal(pidfd, libc::SIGKILL);
        process::wait_exit(pidfd, Instant::now() + Duration::from_secs(5));
    }
}

/// Says on the real stderr (the test harness does not capture it) that a test was skipped.
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// Sends `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) -> bool {
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Whether `pid` is alive (not gone, not a zombie).
pub fn alive(pid: i32) -> bool {
    process::is_alive(pid as u32)
}

/// Waits for `pid` to exit with a pidfd (no sleep loop); true when it is gone.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    process::wait_pid_exit(pid as u32, Instant::now() + timeout) || !alive(pid)
}

/// Runs `command` to completion with piped output, killing it after [`COMMAND_TIMEOUT`].
pub fn run(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            kill(pid, libc::SIGKILL);
            panic!("{command:?} did not finish in {COMMAND_TIMEOUT:?}; killed it");
        }
    }
}

/// Describes a finished command for assertion messages.
pub fn describe(command: &str, output: &Output) -> String {
    format!(
        "command: {command}\nstatus: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The exit code, or 128+signal.
pub fn code(status: &ExitStatus) -> i32 {
    process::shell_status(*status)
}

/// Reads the pid written in a pidfile.
pub fn read_pidfile(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read pidfile {}: {e}", path.display()));
    assert!(text.ends_with('\n'), "pidfile {text:?} lacks its newline");
    text.trim_end().parse().unwrap_or_else(|_| panic!("pidfile holds {text:?}"))
}

/// Waits until `f` holds, checking every few milliseconds, for at most `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// `/proc/PID/status` as key → value.
pub fn proc_status(pid: i32) -> HashMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// `/proc/PID/stat`, parsed by the library ([`daemonctx::process::stat`]); panics when `pid`
/// is gone.
pub fn proc_stat(pid: i32) -> daemonctx::process::Stat {
    daemonctx::process::stat(pid as u32).unwrap_or_else(|| panic!("no /proc/{pid}/stat"))
}

/// The open descriptors of `pid` and where they point.
pub fn proc_fds(pid: i32) -> Vec<(i32, PathBuf)> {
    let mut fds: Vec<(i32, PathBuf)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let fd = entry.file_name().to_str().unwrap().parse().unwrap();
            (fd, std::fs::read_link(entry.path()).unwrap_or_default())
        })
        .collect();
    fds.sort();
    fds
}

/// Whether descriptor `fd` of `pid` is close-on-exec (`O_CLOEXEC` in `/proc/PID/fdinfo/FD`).
pub fn is_cloexec(pid: i32, fd: i32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).expect("flags line");
    u32::from_str_radix(flags.trim(), 8).unwrap() & libc::O_CLOEXEC as u32 != 0
}

/// The pids of live processes whose command line mentions `needle` (a test's unique temp dir).
pub fn processes_mentioning(needle: &Path) -> Vec<i32> {
    let needle = needle.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid as u32 != std::process::id() && alive(*pid))
        .filter(|pid| command_line(*pid).windows(needle.len()).any(|w| w == needle))
        .collect()
}

/// `/proc/PID/cmdline`. It reads empty while the process is inside `execve(2)`: a process that
/// has an executable (not a kernel thread) is read again until it shows its new one, bounded.
fn command_line(pid: i32) -> Vec<u8> {
    let read = || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let user_process = || std::fs::read_link(format!("/proc/{pid}/exe")).is_ok();
    let mut cmdline = read();
    let deadline = Instant::now() + Duration::from_millis(100);
    while cmdline.is_empty() && alive(pid) && user_process() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
        cmdline = read();
    }
    cmdline
}

/// The environment of `pid` (`/proc/PID/environ`), one `NAME=value` a string. It reads empty
/// while the process is inside `execve(2)`, from the switch to its new memory until the kernel
/// has copied the environment there (`env_start` and `env_end`, fields 50 and 51 of
/// `/proc/PID/stat`, are 0 until then): read again until it has, bounded.
pub fn environ_of(pid: i32) -> Vec<String> {
    let read = || std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    // An environment that is empty indeed: set (nonzero) and of no length; or the process is
    // gone.
    let empty_indeed = || {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
        let fields: Vec<&str> =
            stat.rsplit_once(')').map_or("", |(_, rest)| rest).split(' ').collect();
        // fields[0] is empty (the space after ')'), fields[1] field 3 (state).
        let (start, end) = (fields.get(48), fields.get(49));
        start.is_some_and(|start| *start != "0") && start == end
    };
    let mut raw = read();
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while raw.is_empty() && !empty_indeed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        raw = read();
    }
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The pids from this process up to 1: a daemon's parent must be one of these (PID 1 or a
/// subreaper above the test).
pub fn ancestors_of_test() -> Vec<i32> {
    let mut pids = vec![std::process::id() as i32];
    while let Some(&pid) = pids.last() {
        if pid <= 1 {
            break;
        }
        let ppid = proc_stat(pid).ppid as i32;
        pids.push(ppid);
    }
    pids
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Prints the standard skip line and returns true when not root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    skip(&format!("{test} needs root"));
    true
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Makes `command` run as `nobody` (through setpriv) when the tests run as root, so that
/// permission checks apply to it.
pub fn as_unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Joins arguments into one string for messages.
pub fn show(args: &[impl AsRef<OsStr>]) -> String {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

/// A daemon's process group a test started; every member, and every descendant of one, is
/// killed and awaited when dropped.
pub struct SpawnedGroup(pub i32);

impl Drop for SpawnedGroup {
    fn drop(&mut self) {
        // SAFETY: getpgrp has no preconditions.
        if self.0 <= 1 || self.0 == unsafe { libc::getpgrp() } {
            return; // never signal every process, or the test's own group
        }
        // The group's members, and whatever they started in other groups (a supervisor's
        // COMMAND runs in a group of its own).
        let members = daemonctx::process::group_members((self.0) as u32);
        let mut doomed: Vec<u32> = members.clone();
        for pid in &members {
            doomed.extend(daemonctx::process::descendants(*pid));
        }
        let guards: Vec<Spawned> = doomed.iter().map(|pid| Spawned::new(*pid as i32)).collect();
        kill(-self.0, libc::SIGKILL);
        drop(guards); // SIGKILL through each pidfd, and wait for each
    }
}

/// The process group of `pid`.
pub fn pgid_of(pid: i32) -> i32 {
    try_pgid(pid).unwrap_or_else(|| panic!("pid {pid} is gone"))
}

/// A small tmpfs a test mounted (root only); unmounted when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16k`, say) at `dir/name`; `None`, after saying why, when the
    /// tests are not root or the mount fails.
    pub fn mount(test: &str, dir: &TempDir, name: &str, size: &str) -> Option<Tmpfs> {
        if skip_unless_root(test) {
            return None;
        }
        let path = dir.join(name);
        std::fs::create_dir(&path).unwrap();
        let option = format!("size={size}");
        let mounted =
            run(Command::new("mount").args(["-t", "tmpfs", "-o", &option, "tmpfs"]).arg(&path));
        if !mounted.status.success() {
            skip(&format!(
                "{test} needs a tmpfs it can mount: {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
            return None;
        }
        Some(Tmpfs(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Like [`Tmpfs::mount`], with the mount options given whole (`size=16k,nr_inodes=2`).
    pub fn mount_with_options(
        test: &str,
        dir: &TempDir,
        name: &str,
        options: &str,
    ) -> Option<Tmpfs> {
        if skip_unless_root(test) {
            return None;
        }
        let path = dir.join(name);
        std::fs::create_dir(&path).unwrap();
        let mounted =
            run(Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(&path));
        if !mounted.status.success() {
            skip(&format!(
                "{test} needs a tmpfs it can mount with {options}: {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
            return None;
        }
        Some(Tmpfs(path))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The soft `RLIMIT_CORE` of `pid` as `/proc/PID/limits` shows it (`0`, `unlimited`).
pub fn core_limit(pid: i32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    line.split_whitespace().nth(4).unwrap().to_string()
}

/// Waits until `pid` (a `sleep`) is asleep in `nanosleep`, past its own start-up (which opens
/// locale files, say), so that its descriptors can be checked.
pub fn wait_asleep(pid: i32) {
    let asleep = || {
        std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("nanosleep"))
    };
    assert!(wait_until(COMMAND_TIMEOUT, asleep), "pid {pid} never went to sleep");
}

/// A FIFO that COMMAND reads lines from (`read go < FIFO`, one line per read). Opened
/// read-write here, so neither side blocks in open(2), and held until dropped so the lines
/// written stay in the FIFO until COMMAND reads them.
pub struct Gate {
    pub path: PathBuf,
    fifo: std::fs::File,
}

impl Gate {
    pub fn new(dir: &TempDir) -> Gate {
        let path = dir.join("gate");
        mkfifo(&path);
        let fifo = std::fs::File::options().read(true).write(true).open(&path).unwrap();
        Gate { path, fifo }
    }

    /// Lets one `read go < FIFO` through.
    pub fn open(&mut self) {
        use std::io::Write;
        self.fifo.write_all(b"go\n").unwrap();
    }
}

/// Where `pid` waits: its state (`S` when asleep), the syscall it is in
/// (`/proc/PID/syscall`), and its wait channel (`/proc/PID/wchan`).
pub fn blocked_in(pid: i32) -> (String, Option<i64>, String) {
    let read = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}"));
    let state = read("stat")
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()?.to_string()))
        .unwrap_or_default();
    let syscall = read("syscall").ok().and_then(|s| s.split_whitespace().next()?.parse().ok());
    (state, syscall, read("wchan").unwrap_or_default())
}

/// Waits (bounded) until `pid` is asleep in poll(2): done with what it had to do.
pub fn wait_polling(pid: i32) -> bool {
    wait_until(COMMAND_TIMEOUT, || {
        let (state, syscall, wchan) = blocked_in(pid);
        let polling = matches!(syscall, Some(libc::SYS_poll | libc::SYS_ppoll));
        state == "S" && (polling || wchan.contains("poll"))
    })
}

/// Context switches of every thread of `pid`, and its CPU ticks (utime + stime).
pub fn activity(pid: i32) -> (u64, u64) {
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        for line in status.lines() {
            if let Some((key, value)) = line.split_once(':')
                && key.ends_with("ctxt_switches")
            {
                switches += value.trim().parse::<u64>().unwrap();
            }
        }
    }
    let stat = proc_stat(pid);
    let ticks = stat.utime + stat.stime;
    (switches, ticks)
}

/// Watches `pid` for `window` (a pidfd poll, cut short if it exits) and returns its activity
/// before and after; panics if it exited meanwhile.
pub fn activity_over(pid: i32, window: Duration) -> ((u64, u64), (u64, u64)) {
    let before = activity(pid);
    assert!(!wait_gone(pid, window) && alive(pid), "pid {pid} exited while watched");
    (before, activity(pid))
}

/// The numbered lines (`n0`, `n1`, …) of `text`, in order, as numbers.
pub fn numbered(text: &str, prefix: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.strip_prefix(prefix)?.parse().ok()).collect()
}

/// The process group of `pid`, or `None` once it is gone (unlike `pgid_of`, never panics).
pub fn try_pgid(pid: i32) -> Option<i32> {
    process::stat(pid as u32).map(|stat| stat.pgrp as i32)
}

/// A guard on the process group of whatever `pidfile` names, if it names a live process:
/// taken before a start is checked, so a failed check still cleans up.
pub fn guard_pidfile(pidfile: &Path) -> Option<SpawnedGroup> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    try_pgid(pid).map(SpawnedGroup)
}

/// The processes holding the lock on the file at `path` (a scan of `/proc`).
pub fn lock_holders(path: &Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return Vec::new() };
    daemonctx::process::lock_holders(meta.dev(), meta.ino(), usize::MAX)
}
