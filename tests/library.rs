//! The library route: `DaemonContext::open()` through the `probe` helper, checked from `/proc`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use daemonctx::{Pidfile, Status};

/// PEP 3143's ignored signals: SIGTSTP (20), SIGTTIN (21), SIGTTOU (22), as a SigIgn mask.
const PEP_IGNORED: &str = "0000000000380000";

/// Runs the probe with `args` (via `command`, to wrap it) and returns its output.
fn probe_with(mut command: Command, args: &[&str]) -> Output {
    run(command.args(args))
}

fn probe(args: &[&str]) -> Output {
    probe_with(Command::new(example("probe")), args)
}

/// Starts a daemon with `args` plus a pidfile in `dir`; returns its pid and cleanup guard.
fn start(dir: &TempDir, args: &[&str]) -> (i32, Spawned) {
    let pidfile = dir.join("probe.pid");
    let mut all = vec!["--pidfile", pidfile.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = probe(&all);
    assert!(output.status.success(), "{}", describe(&format!("probe {}", show(&all)), &output));
    let pid = read_pidfile(&pidfile);
    (pid, Spawned::new(pid))
}

/// Asserts a failed start: probe exit 2, the message, and nothing left behind (no `pidfile`,
/// no process mentioning `dir`).
fn assert_failed_cleanly(dir: &TempDir, pidfile: &Path, output: &Output, message: &str) {
    assert_failed_cleanly_with(2, dir, pidfile, output, message);
}

/// As [`assert_failed_cleanly`], with the exit status `expected`.
fn assert_failed_cleanly_with(
    expected: i32,
    dir: &TempDir,
    pidfile: &Path,
    output: &Output,
    message: &str,
) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(code(&output.status), expected, "{}", describe("probe", output));
    assert!(stderr.contains(message), "expected {message:?} in {}", describe("probe", output));
    assert!(!pidfile.exists(), "the pidfile {} was left behind", pidfile.display());
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "a process was left behind");
}

fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    proc_fds(pid).into_iter().map(|(fd, p)| (fd, p.to_string_lossy().into_owned())).collect()
}

#[test]
fn daemon_is_detached_clean_and_holds_its_pidfile() {
    let dir = TempDir::new("clean");
    let pidfile = dir.join("probe.pid");
    let (pid, _guard) = start(&dir, &[]);

    let stat = proc_stat(pid);
    let ppid = stat.ppid as i32;
    assert!(ancestors_of_test().contains(&ppid), "parent {ppid} is neither PID 1 nor a subreaper");
    assert_ne!(stat.session, pid as u32, "the daemon leads its session");
    assert_eq!(stat.pgrp, stat.session, "the daemon is not in the group of the new session");
    assert_eq!(stat.tty_nr, 0, "the daemon has a controlling terminal");

    // 0 to 2 on /dev/null, the pidfile; whatever else this test runner passed down stays,
    // close-on-exec (owned by nobody the daemon knows of: see close_inherited_fds).
    let fds = fd_targets(pid);
    let null = "/dev/null".to_string();
    assert_eq!(fds[..3], [(0, null.clone()), (1, null.clone()), (2, null)], "{fds:?}");
    assert!(fds.iter().any(|(_, path)| *path == pidfile.to_string_lossy()), "{fds:?}");
    assert!(fds.iter().all(|(fd, _)| *fd < 3 || is_cloexec(pid, *fd)), "{fds:?}");

    let status = proc_status(pid);
    assert_eq!(status["SigBlk"], "0000000000000000");
    assert_eq!(status["SigIgn"], PEP_IGNORED);
    assert_eq!(status["Umask"], "0000");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), Path::new("/"));
    assert_eq!(core_limit(pid), "0", "core dumps allowed");

    assert!(matches!(Pidfile::status(&pidfile), Status::Running(Some(p)) if p as i32 == pid));

    // SIGTERM (the default map's Terminate) removes the pidfile and kills by SIGTERM.
    assert!(kill(pid, libc::SIGTERM));
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert!(!pidfile.exists(), "SIGTERM left the pidfile");
}

#[test]
fn umask_working_directory_and_output_files_take_effect() {
    let dir = TempDir::new("options");
    let log = dir.join("out.log");
    let err = dir.join("err.log");
    let args = [
        "--umask",
        "027",
        "--cwd",
        dir.path().to_str().unwrap(),
        "--stdout",
        log.to_str().unwrap(),
        "--stderr",
        err.to_str().unwrap(),
        "--print-after-open",
    ];
    let (pid, _guard) = start(&dir, &args);
    let status = proc_status(pid);
    assert_eq!(status["Umask"], "0027");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), dir.path());
    let fds = proc_fds(pid);
    assert_eq!(fds[1].1, log);
    assert_eq!(fds[2].1, err);
    // The daemon prints after open() returned in it, which may be after the original exited.
    let expected = format!("open pid={pid}\n");
    let logged = || std::fs::read_to_string(&log).unwrap();
    assert!(wait_until(COMMAND_TIMEOUT, || logged() == expected), "log: {:?}", logged());
}

#[test]
fn core_dumps_allowed_only_when_asked() {
    let dir = TempDir::new("core");
    let pidfile = dir.join("probe.pid");
    let script = format!(
        "ulimit -c unlimited && exec {} --core --pidfile {}",
        example("probe").display(),
        pidfile.display()
    );
    let output = run(Command::new("sh").args(["-c", &script]));
    assert!(output.status.success(), "{}", describe(&script, &output));
    let pid = read_pidfile(&pidfile);
    let _guard = Spawned::new(pid);
    assert_eq!(core_limit(pid), "unlimited");
}

/// The highest descriptor number the hard `RLIMIT_NOFILE` allows (at most 2^20 - 1).
fn highest_fd() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: limit is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_max.min(1 << 20) - 1
}

#[test]
fn preserved_fd_stays_open_and_high_inherited_fd_is_close_on_exec() {
    let high = highest_fd().to_string();
    let dir = TempDir::new("fds");
    let (pid, _guard) = start(&dir, &["--hold-fd", "9", "--preserve-fd", "9", "--hold-fd", &high]);
    let fds: Vec<i32> = proc_fds(pid).into_iter().map(|(fd, _)| fd).collect();
    let high: i32 = high.parse().unwrap();
    assert!(fds.contains(&9) && fds.contains(&high), "{fds:?}");
    assert!(!is_cloexec(pid, 9), "the preserved fd 9 must reach an exec'd program");
    for fd in fds.into_iter().filter(|fd| *fd > 2 && *fd != 9) {
        assert!(is_cloexec(pid, fd), "the inherited fd {fd} would leak into an exec'd program");
    }
}

#[test]
fn close_inherited_fds_closes_all_but_the_kept() {
    let high = highest_fd().to_string();
    let dir = TempDir::new("fds-closed");
    let args = ["--close-inherited", "--hold-fd", "9", "--preserve-fd", "9", "--hold-fd", &high];
    let (pid, _guard) = start(&dir, &args);
    let fds: Vec<i32> = proc_fds(pid).into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(fds, vec![0, 1, 2, 3, 9], "inherited fd {high}");
}

#[test]
fn open_in_place_leaves_the_files_the_program_owns_open() {
    // io_safety opens a File, calls open() in place, then drops the File: had open() closed
    // its descriptor, the debug build would abort ("IO Safety violation").
    let dir = TempDir::new("io-safety");
    let pidfile = dir.join("io.pid");
    let output = run(Command::new(example("io_safety")).arg(&pidfile));
    assert!(output.status.success(), "{}", describe("io_safety", &output));
    assert!(!pidfile.exists(), "close() left the pidfile");
}

#[test]
fn dirty_invoker_still_yields_a_clean_daemon() {
    // The invoker blocks SIGUSR1, ignores SIGUSR2, runs with umask 077 and leaks fd 7.
    let dir = TempDir::new("dirty");
    let (pid, _guard) = start(&dir, &["--dirty-invoker", "--umask", "022"]);
    let status = proc_status(pid);
    assert_eq!(status["SigBlk"], "0000000000000000", "inherited signal mask");
    assert_eq!(status["SigIgn"], PEP_IGNORED, "inherited ignored signals");
    assert_eq!(status["Umask"], "0022");
    // The invoker's leaked descriptors (its fd 3 and fd 7, owned by nothing) are kept from
    // anything the daemon executes; the pidfile's is the daemon's own.
    let pidfile = dir.join("probe.pid");
    let targets = proc_fds(pid);
    let leaked: Vec<i32> = targets.iter().map(|(fd, _)| *fd).filter(|fd| *fd > 2).collect();
    assert!(leaked.iter().all(|fd| is_cloexec(pid, *fd)), "{targets:?}");
    assert!(targets.iter().any(|(_, path)| *path == pidfile), "{targets:?}");
    // Asked to, the daemon closes them.
    let dir = TempDir::new("dirty-closed");
    let (pid, _guard) = start(&dir, &["--dirty-invoker", "--close-inherited"]);
    let targets = proc_fds(pid);
    assert_eq!(targets.len(), 4, "{targets:?}");
    assert!(targets.iter().all(|(fd, _)| *fd != 7), "fd 7 leaked into the daemon: {targets:?}");
    assert_eq!(targets[3].1, dir.join("probe.pid"), "{targets:?}");
}

#[test]
fn foreground_runs_in_place() {
    let dir = TempDir::new("foreground");
    let pidfile = dir.join("probe.pid");
    let mut child = Command::new(example("probe"))
        .args(["--foreground", "--pidfile", pidfile.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Spawned::new(child.id() as i32);
    assert!(wait_until(Duration::from_secs(10), || matches!(
        Pidfile::status(&pidfile),
        Status::Running(Some(_))
    )));
    assert_eq!(read_pidfile(&pidfile), child.id() as i32);
    assert_eq!(child.try_wait().unwrap(), None, "the foreground daemon exited");
    kill(child.id() as i32, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "Terminate must end the daemon by SIGTERM itself, so its parent sees it: {status}"
    );
    assert!(!pidfile.exists(), "SIGTERM left the pidfile");
}

#[test]
fn stdin_socket_means_started_by_superserver_so_no_detach() {
    let dir = TempDir::new("superserver");
    let pidfile = dir.join("probe.pid");
    let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = Command::new(example("probe"))
        .args(["--pidfile", pidfile.to_str().unwrap()])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(socket)))
        .spawn()
        .unwrap();
    let _guard = Spawned::new(child.id() as i32);
    assert!(wait_until(Duration::from_secs(10), || matches!(
        Pidfile::status(&pidfile),
        Status::Running(Some(_))
    )));
    assert_eq!(read_pidfile(&pidfile), child.id() as i32, "detached although stdin is a socket");
    kill(child.id() as i32, libc::SIGKILL);
    child.wait().unwrap();
}

#[test]
fn chroot_takes_effect() {
    if skip_unless_root("chroot_takes_effect") {
        return;
    }
    let dir = TempDir::new("chroot");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("srv")).unwrap();
    let (pid, _guard) = start(&dir, &["--chroot", root.to_str().unwrap(), "--cwd", "/srv"]);
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/root")).unwrap(), root);
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), root.join("srv"));
}

#[test]
fn user_drop_is_complete_and_clears_supplementary_groups() {
    if skip_unless_root("user_drop_is_complete_and_clears_supplementary_groups") {
        return;
    }
    let dir = TempDir::new("user");
    let (pid, _guard) = start(&dir, &["--user", "nobody"]);
    let status = proc_status(pid);
    // Real, effective, saved and filesystem ids all changed: setuid(0) can no longer succeed.
    assert_eq!(status["Uid"].split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    assert_eq!(status["Gid"].split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    assert_eq!(status["Groups"], "65534");
}

#[test]
fn group_option_and_initgroups_take_effect() {
    if skip_unless_root("group_option_and_initgroups_take_effect") {
        return;
    }
    let Ok(Some(user)) = nix::unistd::User::from_name("daemonctx-test") else {
        skip(
            "group_option_and_initgroups_take_effect needs user daemonctx-test (.ci/run creates it)",
        );
        return;
    };
    let extra = nix::unistd::Group::from_name("daemonctx-extra").unwrap().unwrap().gid.as_raw();
    let dir = TempDir::new("groups");
    let (pid, _guard) = start(&dir, &["--user", "daemonctx-test", "--initgroups"]);
    let status = proc_status(pid);
    let mut groups: Vec<u32> =
        status["Groups"].split_whitespace().map(|g| g.parse().unwrap()).collect();
    groups.sort();
    let mut expected = vec![user.gid.as_raw(), extra];
    expected.sort();
    assert_eq!(groups, expected, "initgroups did not set the supplementary groups");

    let dir = TempDir::new("group");
    let (pid, _guard) = start(&dir, &["--user", "daemonctx-test", "--group", "nogroup"]);
    let status = proc_status(pid);
    assert_eq!(status["Gid"].split_whitespace().next(), Some("65534"));
    assert_eq!(status["Groups"], "65534");
}

#[test]
fn second_start_names_running_pid() {
    let dir = TempDir::new("second");
    let (pid, _guard) = start(&dir, &[]);
    let pidfile = dir.join("probe.pid");
    let output = probe(&["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(code(&output.status), 2, "{}", describe("second probe", &output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("already running (pid {pid})")), "{stderr}");
    assert_eq!(read_pidfile(&pidfile), pid, "the losing start touched the pidfile");
    assert!(alive(pid));
}

#[test]
fn missing_working_directory_fails_in_the_original_process() {
    let dir = TempDir::new("nocwd");
    let pidfile = dir.join("probe.pid");
    let missing = dir.join("missing");
    let output =
        probe(&["--pidfile", pidfile.to_str().unwrap(), "--cwd", missing.to_str().unwrap()]);
    let message = format!(
        "cannot change directory to {}: No such file or directory (os error 2)",
        missing.display()
    );
    assert_failed_cleanly(&dir, &pidfile, &output, &message);
}

#[test]
fn missing_chroot_fails_in_the_original_process() {
    let dir = TempDir::new("nochroot");
    let pidfile = dir.join("probe.pid");
    let missing = dir.join("missing");
    let output =
        probe(&["--pidfile", pidfile.to_str().unwrap(), "--chroot", missing.to_str().unwrap()]);
    assert_failed_cleanly(
        &dir,
        &pidfile,
        &output,
        &format!("cannot change root to {}: No such file", missing.display()),
    );
}

#[test]
fn unknown_user_fails_before_forking() {
    let dir = TempDir::new("nouser");
    let pidfile = dir.join("probe.pid");
    let output =
        probe(&["--pidfile", pidfile.to_str().unwrap(), "--user", "no-such-user-daemonctx"]);
    assert_failed_cleanly(&dir, &pidfile, &output, "unknown user \"no-such-user-daemonctx\"");
}

#[test]
fn pidfile_in_missing_directory_fails() {
    let dir = TempDir::new("nopiddir");
    let pidfile = dir.join("missing/probe.pid");
    let output = probe(&["--pidfile", pidfile.to_str().unwrap()]);
    assert_failed_cleanly(
        &dir,
        &pidfile,
        &output,
        &format!("cannot open pidfile {}: No such file or directory", pidfile.display()),
    );
}

#[test]
fn pidfile_in_read_only_directory_fails() {
    let dir = TempDir::new("ropiddir");
    let readonly = dir.join("ro");
    std::fs::create_dir(&readonly).unwrap();
    std::os::unix::fs::chown(&readonly, Some(0), Some(0)).ok();
    std::fs::set_permissions(&readonly, std::os::unix::fs::PermissionsExt::from_mode(0o555))
        .unwrap();
    let pidfile = readonly.join("probe.pid");
    let output =
        probe_with(as_unprivileged(&example("probe")), &["--pidfile", pidfile.to_str().unwrap()]);
    assert_failed_cleanly(
        &dir,
        &pidfile,
        &output,
        &format!("cannot open pidfile {}: Permission denied", pidfile.display()),
    );
}

#[test]
fn failure_after_the_fork_reaches_the_original_process() {
    // The directory passes the pre-fork check (stat) but the daemon cannot enter it (mode 000,
    // unprivileged invoker): the daemon's chdir fails and reports over the pipe.
    let dir = TempDir::new("chdirfail");
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let pidfile = dir.join("probe.pid");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .unwrap();
    let output = probe_with(
        as_unprivileged(&example("probe")),
        &["--pidfile", pidfile.to_str().unwrap(), "--cwd", locked.to_str().unwrap()],
    );
    let message =
        format!("cannot change directory to {}: Permission denied (os error 13)", locked.display());
    assert_failed_cleanly(&dir, &pidfile, &output, &message);
}

#[test]
fn multi_threaded_caller_is_refused() {
    let dir = TempDir::new("threads");
    let pidfile = dir.join("probe.pid");
    let output = probe(&["--spawn-thread", "--pidfile", pidfile.to_str().unwrap()]);
    assert_failed_cleanly(&dir, &pidfile, &output, "refusing to fork a process with 2 threads");
}

#[test]
fn original_waits_for_ready_on_demand() {
    let dir = TempDir::new("ready");
    let pidfile = dir.join("probe.pid");
    let fifo = dir.join("go");
    mkfifo(&fifo);
    let mut original = Command::new(example("probe"))
        .args([
            "--pidfile",
            pidfile.to_str().unwrap(),
            "--ready-after-fifo",
            fifo.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _original_guard = Spawned::new(original.id() as i32);
    assert!(wait_until(Duration::from_secs(10), || matches!(
        Pidfile::status(&pidfile),
        Status::Running(Some(_))
    )));
    let daemon = read_pidfile(&pidfile);
    let _daemon_guard = Spawned::new(daemon);
    // The daemon is set up and holds its pidfile, but has not called ready(): the original
    // process must still be waiting.
    assert!(
        !wait_gone(original.id() as i32, Duration::from_millis(300)),
        "the original returned before ready()"
    );
    assert_eq!(original.try_wait().unwrap(), None);
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"go\n").unwrap();
    assert!(wait_gone(original.id() as i32, COMMAND_TIMEOUT));
    assert!(original.wait().unwrap().success());
    assert!(alive(daemon));
}

#[test]
fn daemon_exiting_before_ready_fails_the_original_with_its_status() {
    let dir = TempDir::new("diesearly");
    let pidfile = dir.join("probe.pid");
    let output = probe(&["--pidfile", pidfile.to_str().unwrap(), "--exit-before-ready", "7"]);
    assert_failed_cleanly(&dir, &pidfile, &output, "exited before it was ready: exit status: 7");
}

#[test]
fn ready_timeout_kills_the_daemon_and_cleans_up() {
    let dir = TempDir::new("timeout");
    let pidfile = dir.join("probe.pid");
    let fifo = dir.join("never");
    mkfifo(&fifo);
    let args = [
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--ready-after-fifo",
        fifo.to_str().unwrap(),
        "--timeout",
        "0.3",
        // What the daemon started in a group of its own goes too.
        "--spawn-in-own-group",
        dir.path().to_str().unwrap(),
    ];
    let output = probe(&args);
    assert_failed_cleanly(&dir, &pidfile, &output, "was not ready after 0.3 s; killed it");
}

#[test]
fn delivered_sigterm_allows_graceful_shutdown_and_close_removes_pidfile() {
    let dir = TempDir::new("graceful");
    let log = dir.join("out.log");
    let (pid, _guard) = start(&dir, &["--deliver-term", "--stdout", log.to_str().unwrap()]);
    assert_eq!(proc_status(pid)["SigIgn"], PEP_IGNORED);
    assert!(kill(pid, libc::SIGTERM));
    assert!(wait_gone(pid, Duration::from_secs(10)));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "graceful shutdown on signal Some({}), open: true\nclosed, open: false\n",
            libc::SIGTERM
        )
    );
    assert!(!dir.join("probe.pid").exists(), "close() left the pidfile");
}

#[test]
fn status_checks_never_make_a_concurrent_start_fail() {
    let dir = TempDir::new("statusrace");
    let pidfile = dir.join("probe.pid");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (pidfile, stop) = (pidfile.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut checks = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Pidfile::status(&pidfile);
                checks += 1;
            }
            checks
        })
    };
    for round in 0..20 {
        let output = probe(&["--pidfile", pidfile.to_str().unwrap()]);
        assert!(output.status.success(), "round {round}: {}", describe("probe", &output));
        let pid = read_pidfile(&pidfile);
        kill(pid, libc::SIGTERM);
        assert!(wait_gone(pid, Duration::from_secs(5)));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(checker.join().unwrap() > 0);
}

#[test]
fn daemon_survives_its_invoker_leaving_a_terminal_session() {
    // pty_run makes the probe a session leader with a controlling terminal, then hangs up the
    // terminal when the probe exits: a daemon still in that session would get SIGHUP.
    let dir = TempDir::new("pty");
    let pidfile = dir.join("probe.pid");
    let output = run(Command::new(example("pty_run"))
        .arg(example("probe"))
        .args(["--pidfile", pidfile.to_str().unwrap()]));
    assert!(output.status.success(), "{}", describe("pty_run probe", &output));
    let pid = read_pidfile(&pidfile);
    let _guard = Spawned::new(pid);
    assert!(
        !wait_gone(pid, Duration::from_millis(300)),
        "the daemon died with the terminal session"
    );
    assert_eq!(proc_stat(pid).tty_nr, 0, "the daemon kept a controlling terminal");
}

#[test]
fn stdin_path_is_opened_read_only() {
    let dir = TempDir::new("stdin");
    let input = dir.join("input.txt");
    std::fs::write(&input, "data\n").unwrap();
    let (pid, _guard) = start(&dir, &["--stdin", input.to_str().unwrap()]);
    assert_eq!(proc_fds(pid)[0].1, input);
    let fdinfo = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/0")).unwrap();
    let flags = fdinfo.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
    let flags = u32::from_str_radix(flags, 8).unwrap();
    assert_eq!(flags & libc::O_ACCMODE as u32, libc::O_RDONLY as u32, "stdin flags {flags:o}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "data\n");
}

#[test]
fn echo_server_example_binds_before_ready_and_shuts_down_gracefully() {
    use std::io::{BufRead, Read};
    let dir = TempDir::new("echo");
    let pidfile = dir.join("echo.pid");
    let log = dir.join("echo.log");
    // The probe as a subreaper adopts the daemon, so the daemon's own exit status is seen.
    let mut reaper = Reaper::start(&[
        example("echo_server").to_str().unwrap(),
        pidfile.to_str().unwrap(),
        log.to_str().unwrap(),
        "0",
    ]);
    assert_eq!(reaper.next_line(), "started: exit status: 0", "{}", reaper.describe());
    let pid = read_pidfile(&pidfile);
    let _guard = Spawned::new(pid);
    // Ready was reported only after the bind, so the log already names the port.
    let first = std::fs::read_to_string(&log).unwrap();
    let address = first
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("log: {first:?}"));
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    stream.write_all(b"hello\n").unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(stream);
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    // The connection stays open through the shutdown: the server ends it, then exits 0.
    assert!(kill(pid, libc::SIGTERM));
    assert_eq!(
        reaper.next_line(),
        format!("reaped {pid}: exit status: 0"),
        "{}",
        reaper.describe()
    );
    let mut rest = String::new();
    assert_eq!(reader.read_to_string(&mut rest).unwrap(), 0, "the connection was not ended");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.ends_with("shutting down on SIGTERM\nstopped\n"), "{logged:?}");
    assert!(!pidfile.exists(), "the echo server left its pidfile");
}

#[test]
fn echo_server_example_that_cannot_bind_says_why_and_exits_3() {
    let dir = TempDir::new("echobusy");
    let pidfile = dir.join("echo.pid");
    let log = dir.join("echo.log");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let args = [pidfile.to_str().unwrap(), log.to_str().unwrap(), &port];
    let output = run(Command::new(example("echo_server")).args(args));
    let message = format!("echo_server: cannot bind 127.0.0.1:{port}: Address already in use");
    assert_failed_cleanly_with(3, &dir, &pidfile, &output, &message);
    // The daemon said it in its log, too.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.starts_with(&message["echo_server: ".len()..]), "{logged:?}");
}

#[test]
fn daemon_failure_before_ready_reaches_the_invoker_in_its_own_words() {
    let dir = TempDir::new("daemonfail");
    let pidfile = dir.join("probe.pid");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = probe(&["--pidfile", pidfile.to_str().unwrap(), "--bind-before-ready", &address]);
    let message = format!(
        "probe: cannot bind {address}: Address already in use (os error {})",
        libc::EADDRINUSE
    );
    assert_failed_cleanly_with(3, &dir, &pidfile, &output, &message);
    // And when the port is free, the same daemon starts.
    drop(taken);
    let (pid, _guard) = start(&dir, &["--bind-before-ready", &address]);
    assert!(alive(pid));
}

/// `probe --subreaper COMMAND...`: the lines it prints, read on a thread with a deadline.
struct Reaper {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Reaper {
    fn start(command: &[&str]) -> Reaper {
        use std::io::BufRead;
        let mut child = Command::new(example("probe"))
            .arg("--subreaper")
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Reaper { child, lines, seen: Vec::new() }
    }

    /// The next line, waiting at most [`COMMAND_TIMEOUT`]; empty at the end or the deadline.
    fn next_line(&mut self) -> String {
        let line = self.lines.recv_timeout(COMMAND_TIMEOUT).unwrap_or_default();
        self.seen.push(line.clone());
        line
    }

    fn describe(&self) -> String {
        format!("probe --subreaper printed {:?}", self.seen)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Our child, not yet reaped, so its pid is still its own.
        let _ = self.child.kill();
        let _ = self.child.wait(); // killed: returns at once
    }
}

#[test]
fn closing_inherited_fds_does_not_loop_up_to_the_limit() {
    // Counts close(2) calls in the original process and the daemon with strace: a loop up to
    // RLIMIT_NOFILE would make thousands; close_range(2) makes a handful, whatever the limit.
    if !Path::new("/usr/bin/strace").exists() {
        skip(
            "closing_inherited_fds_does_not_loop_up_to_the_limit needs strace (.ci/run installs it)",
        );
        return;
    }
    let dir = TempDir::new("strace");
    let pidfile = dir.join("probe.pid");
    let trace = dir.join("trace");
    let mut hard = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: hard is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) };
    let high = (hard.rlim_max.min(1 << 20) - 1).to_string();
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=close,close_range", "-o", trace.to_str().unwrap()])
        .arg(example("probe"))
        .args(["--hold-fd", &high, "--pidfile", pidfile.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _strace_guard = Spawned::new(strace.id() as i32);
    assert!(wait_until(COMMAND_TIMEOUT, || matches!(
        Pidfile::status(&pidfile),
        Status::Running(Some(_))
    )));
    let daemon = read_pidfile(&pidfile);
    let _guard = Spawned::new(daemon);
    kill(daemon, libc::SIGTERM);
    assert!(wait_gone(strace.id() as i32, COMMAND_TIMEOUT), "strace did not finish");
    strace.wait().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let closes = text.lines().filter(|l| l.contains(" close(")).count();
    let ranges = text.lines().filter(|l| l.contains("close_range(")).count();
    assert!(ranges >= 1, "no close_range(2) call:\n{text}");
    assert!(closes < 64, "{closes} close(2) calls with RLIMIT_NOFILE {}:\n{text}", hard.rlim_max);
}

#[test]
fn relative_pidfile_is_removed_by_sigterm_after_the_daemon_left_for_root() {
    let dir = TempDir::new("relative");
    let output =
        run(Command::new(example("probe")).args(["--pidfile", "rel.pid"]).current_dir(dir.path()));
    assert!(output.status.success(), "{}", describe("probe --pidfile rel.pid", &output));
    let pidfile = dir.join("rel.pid");
    let pid = read_pidfile(&pidfile);
    let _guard = Spawned::new(pid);
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), Path::new("/"));
    assert!(kill(pid, libc::SIGTERM));
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert!(!pidfile.exists(), "SIGTERM left the relative pidfile");
}

#[test]
fn sigterm_leaves_a_pidfile_that_replaced_ours_alone() {
    let dir = TempDir::new("replaced");
    let pidfile = dir.join("probe.pid");
    let (pid, _guard) = start(&dir, &[]);
    // Someone replaces the pidfile (a new inode at the same path): it is not ours to remove.
    let other = dir.join("other.pid");
    std::fs::write(&other, "12345\n").unwrap();
    std::fs::rename(&other, &pidfile).unwrap();
    assert!(kill(pid, libc::SIGTERM));
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), "12345\n", "removed a pidfile not ours");
}

#[test]
fn existing_world_writable_pidfile_is_refused() {
    let dir = TempDir::new("worldwritable");
    let pidfile = dir.join("probe.pid");
    std::fs::write(&pidfile, "").unwrap();
    std::fs::set_permissions(&pidfile, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .unwrap();
    let output = probe(&["--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(code(&output.status), 2, "{}", describe("probe", &output));
    let message = format!("refusing pidfile {}: it is world-writable", pidfile.display());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&message),
        "{}",
        describe("probe", &output)
    );
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), "", "the refused pidfile was written");
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "a process was left behind");
}

#[test]
fn pidfile_inside_the_chroot_is_removed_and_one_outside_is_emptied() {
    if skip_unless_root("pidfile_inside_the_chroot_is_removed_and_one_outside_is_emptied") {
        return;
    }
    let dir = TempDir::new("chrootpid");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("run")).unwrap();
    let inside = root.join("run/probe.pid");
    let outside = dir.join("probe.pid");
    for (pidfile, extra) in [(&inside, None), (&inside, Some("--deliver-term")), (&outside, None)] {
        let mut args =
            vec!["--pidfile", pidfile.to_str().unwrap(), "--chroot", root.to_str().unwrap()];
        args.extend(extra);
        let output = probe(&args);
        assert!(output.status.success(), "{}", describe(&show(&args), &output));
        let pid = read_pidfile(pidfile);
        let _guard = Spawned::new(pid);
        // Terminate (the default) or Deliver then close(): both must clean up after chroot(2).
        assert!(kill(pid, libc::SIGTERM));
        assert!(wait_gone(pid, Duration::from_secs(5)));
        if pidfile == &inside {
            assert!(!pidfile.exists(), "{}: the pidfile inside the chroot was left", show(&args));
        } else {
            // Out of the daemon's reach: emptied, so it names no process: not running.
            assert_eq!(std::fs::read_to_string(pidfile).unwrap(), "", "{}", show(&args));
            assert!(matches!(Pidfile::status(pidfile), Status::Absent));
        }
    }
}

#[test]
fn numeric_uid_and_gid_take_effect() {
    if skip_unless_root("numeric_uid_and_gid_take_effect") {
        return;
    }
    let dir = TempDir::new("numericids");
    let (pid, _guard) = start(&dir, &["--uid", "65534", "--gid", "65534"]);
    let status = proc_status(pid);
    assert_eq!(status["Uid"].split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    assert_eq!(status["Gid"].split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    assert_eq!(status["Groups"], "65534");
}

#[test]
fn open_file_as_stdout_and_preserved_file_reach_the_daemon() {
    let dir = TempDir::new("openfiles");
    let log = dir.join("out.log");
    let kept = dir.join("kept.txt");
    let args = [
        "--stdout-file",
        log.to_str().unwrap(),
        "--preserve-file",
        kept.to_str().unwrap(),
        "--print-after-open",
    ];
    let (pid, _guard) = start(&dir, &args);
    let fds = proc_fds(pid);
    assert_eq!(fds[1].1, log, "{fds:?}");
    assert!(
        fds.iter().any(|(fd, path)| *fd > 2 && *path == kept),
        "preserved file closed: {fds:?}"
    );
    let expected = format!("open pid={pid}\n");
    assert!(wait_until(COMMAND_TIMEOUT, || std::fs::read_to_string(&log).unwrap() == expected));
}

#[test]
fn handler_and_default_entries_of_the_signal_map_take_effect() {
    let dir = TempDir::new("signalmap");
    // SIGUSR1 (10) gets a handler; SIGTSTP (20), ignored by PEP 3143's map, goes back to default.
    let (pid, _guard) = start(&dir, &["--handler", "10", "--default", "20"]);
    let status = proc_status(pid);
    let mask = |key: &str| u64::from_str_radix(&status[key], 16).unwrap();
    let bit = |signal: i32| 1u64 << (signal - 1);
    assert_ne!(mask("SigCgt") & bit(libc::SIGUSR1), 0, "SIGUSR1 has no handler");
    assert_eq!(mask("SigIgn"), bit(libc::SIGTTIN) | bit(libc::SIGTTOU), "SigIgn");
    assert!(kill(pid, libc::SIGUSR1));
    assert!(!wait_gone(pid, Duration::from_millis(100)), "the handled SIGUSR1 killed the daemon");
}

#[test]
fn daemon_letting_go_of_the_report_channel_unready_is_killed() {
    let dir = TempDir::new("abandoned");
    let pidfile = dir.join("probe.pid");
    let output = probe(&["--pidfile", pidfile.to_str().unwrap(), "--drop-before-ready"]);
    assert_failed_cleanly(
        &dir,
        &pidfile,
        &output,
        "closed its report channel without reporting ready; killed it",
    );
}

#[test]
fn multi_threaded_daemon_can_still_change_its_ids() {
    // glibc's setgid(3) in a process with threads signals them with its reserved SIGSETXID,
    // whose handler the reset of dispositions must keep.
    let dir = TempDir::new("setxid");
    let log = dir.join("out.log");
    let (pid, _guard) = start(&dir, &["--setxid-after-threads", "--stdout", log.to_str().unwrap()]);
    let logged = || std::fs::read_to_string(&log).unwrap();
    assert!(wait_until(COMMAND_TIMEOUT, || !logged().is_empty()), "the daemon wrote nothing");
    assert_eq!(logged(), "setxid ok\n");
    assert!(alive(pid), "the daemon died of its own setgid(2)");
}

#[test]
fn parent_pid_1_means_started_by_init_so_no_detach() {
    // In a new pid namespace, sh is PID 1 and the probe its child: "started by init".
    if skip_unless_root("parent_pid_1_means_started_by_init_so_no_detach") {
        return;
    }
    let dir = TempDir::new("init");
    let pidfile = dir.join("probe.pid");
    let script = format!("{} --pidfile {} & wait", example("probe").display(), pidfile.display());
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Spawned::new(unshare.id() as i32);
    assert!(wait_until(COMMAND_TIMEOUT, || matches!(
        Pidfile::status(&pidfile),
        Status::Running(Some(_))
    )));
    let probe_path = example("probe");
    let probes: Vec<i32> = processes_mentioning(&pidfile)
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == probe_path))
        .collect();
    assert_eq!(probes.len(), 1, "{probes:?}");
    let stat = proc_stat(probes[0]);
    let init = stat.ppid as i32; // the namespace's PID 1, seen from outside
    assert_eq!(proc_stat(init).ppid, unshare.id(), "the probe left its parent");
    assert_eq!(stat.session, proc_stat(init).session, "the probe started a session of its own");
    assert_eq!(read_pidfile(&pidfile), 2, "the pidfile names the probe as its namespace sees it");
    kill(unshare.id() as i32, libc::SIGKILL); // --kill-child takes the namespace down with it
    unshare.wait().unwrap();
    assert!(wait_gone(probes[0], Duration::from_secs(5)));
}

#[test]
fn a_ready_timeout_past_what_a_clock_holds_means_no_deadline() {
    // Instant::now() + 1e19 s overflows: it panicked in the original process after the fork.
    let dir = TempDir::new("hugetimeout");
    let (pid, _guard) = start(&dir, &["--timeout", "1e19"]);
    assert!(alive(pid));
}

#[test]
fn deliver_on_a_signal_that_cannot_be_caught_is_refused() {
    // signal-hook panics on registering SIGSEGV: the daemon (or, in place, the process that
    // had written its pid) aborted after the setup instead of a refusal before anything.
    for mode in [&["--foreground"][..], &[]] {
        let dir = TempDir::new("deliver-refused");
        let pidfile = dir.join("probe.pid");
        let segv = libc::SIGSEGV.to_string();
        let mut args = vec!["--deliver", &segv, "--pidfile", s(&pidfile)];
        args.extend_from_slice(mode);
        let output = probe(&args);
        let message = format!("refusing signal {segv} in the signal map: mapped to Deliver");
        assert_failed_cleanly(&dir, &pidfile, &output, &message);
    }
}

#[test]
fn a_second_open_in_the_same_process_is_refused() {
    let dir = TempDir::new("open-twice");
    let out = dir.join("out");
    let pidfile = dir.join("probe.pid");
    let args = ["--foreground", "--open-twice", "--stdout", s(&out), "--pidfile", s(&pidfile)];
    let output = probe(&args);
    assert!(output.status.success(), "{}", describe("probe", &output));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text,
        "second open: refusing to open a daemon context a second time in this process\n",
        "{}",
        describe("probe", &output)
    );
    assert!(!pidfile.exists(), "the first daemon's pidfile was left behind");
}

#[test]
fn terminate_on_a_signal_that_would_not_end_the_daemon_is_refused() {
    // SIGCHLD's and SIGWINCH's default action is to ignore: Terminate would remove the pidfile
    // and leave the daemon running.
    for signal in [libc::SIGCHLD, libc::SIGWINCH, libc::SIGCONT, libc::SIGTSTP] {
        let dir = TempDir::new("terminate-ignored");
        let pidfile = dir.join("probe.pid");
        let signal = signal.to_string();
        let output = probe(&["--terminate", &signal, "--pidfile", s(&pidfile)]);
        let _guard = guard_pidfile(&pidfile); // a daemon the old code would have left
        let message = format!("refusing signal {signal} in the signal map: mapped to Terminate");
        assert_failed_cleanly(&dir, &pidfile, &output, &message);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn daemon_that_dropped_privileges_leaves_no_stale_pidfile() {
    let test = "daemon_that_dropped_privileges_leaves_no_stale_pidfile";
    if skip_unless_root(test) {
        return;
    }
    if !matches!(nix::unistd::User::from_name("nobody"), Ok(Some(_))) {
        skip(&format!("{test} needs the user nobody"));
        return;
    }
    // The pidfile's directory is root's: nobody may not unlink(2) in it.
    let dir = TempDir::new("droppedpid");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let pidfile = dir.join("probe.pid");
    // Terminate (the default map), then Deliver and close().
    for extra in [None, Some("--deliver-term")] {
        let mut args = vec!["--user", "nobody"];
        args.extend(extra);
        let (pid, _guard) = start(&dir, &args);
        assert!(kill(pid, libc::SIGTERM));
        assert!(wait_gone(pid, Duration::from_secs(10)), "{args:?}: still running");
        // Left, but empty: it names no process, and reads as not running.
        let content = std::fs::read_to_string(&pidfile).unwrap_or_default();
        assert_eq!(content, "", "{args:?}: the pidfile still names pid {pid}");
        let status = Pidfile::status(&pidfile);
        assert!(matches!(status, Status::Absent), "{args:?}: {status:?}");
    }
}

/// Swaps `a` and `b` (`renameat2(2)` `RENAME_EXCHANGE`) until `stop` is set: another user
/// flipping a directory and a symbolic link in a directory it may write.
fn flip_until(a: &Path, b: &Path, stop: &std::sync::atomic::AtomicBool) {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: both paths are NUL-terminated; AT_FDCWD with absolute paths.
        unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
    }
}

// Review of issue 10: Pidfile::remove (what Daemon::close does; the Terminate handler did the
// same) checked the path with lstat(2) and then unlinked it by path, looking it up twice:
// another user who may write a directory on the way swapped it for a symbolic link between the
// two, and the daemon removed the file of the same name in the directory the link points to.
#[test]
fn pidfile_removal_is_not_turned_onto_another_file_by_a_swapped_directory() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new("swap-remove");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = dir.join("shared");
    let victim_dir = dir.join("victim");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir(&victim_dir).unwrap();
    let victim = victim_dir.join("app.pid");
    std::fs::write(&victim, "another daemon's\n").unwrap();
    std::os::unix::fs::symlink(&victim_dir, shared.join("link")).unwrap();
    let stop = AtomicBool::new(false);
    let pidfile = shared.join("sub/app.pid");
    let removed = std::thread::scope(|scope| {
        scope.spawn(|| flip_until(&shared.join("sub"), &shared.join("link"), &stop));
        // Bounded by count and time; on the old code the victim went within a few hundred.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut removed = 0;
        while removed < 3000 && std::time::Instant::now() < deadline && victim.exists() {
            if let Ok(locked) = Pidfile::lock(&pidfile, 0o644) {
                let _ = locked.remove();
                removed += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        removed
    });
    assert!(
        victim.exists(),
        "after {removed} removals, the victim's file in {victim_dir:?} is gone"
    );
    assert!(removed > 0, "the pidfile was never locked");
}
