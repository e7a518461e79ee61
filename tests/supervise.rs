//! Supervise mode (restart policy, stop, exit status) and readiness (`--wait-ready`), through
//! the `daemonize` binary.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use daemonctx::{Pidfile, Status};

fn daemonize(args: &[&str]) -> Output {
    run(Command::new(daemonize_bin()).args(args))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A started supervisor: its pid, COMMAND's pid, and guards for both process groups.
struct Supervised {
    supervisor: i32,
    child: i32,
    _guards: Vec<SpawnedGroup>,
}

/// Starts `daemonize --supervise -p DIR/s.pid --child-pidfile DIR/c.pid ARGS`.
fn start_supervised(dir: &TempDir, args: &[&str]) -> Supervised {
    let (pidfile, child_pidfile) = (dir.join("s.pid"), dir.join("c.pid"));
    let mut all = vec!["--supervise", "-p", s(&pidfile), "--child-pidfile", s(&child_pidfile)];
    all.extend_from_slice(args);
    let output = daemonize(&all);
    assert!(output.status.success(), "{}", describe(&format!("daemonize {}", show(&all)), &output));
    let supervisor = read_pidfile(&pidfile);
    let mut guards = vec![SpawnedGroup(pgid_of(supervisor))];
    assert!(wait_until(COMMAND_TIMEOUT, || std::fs::read_to_string(&child_pidfile)
        .is_ok_and(|t| !t.is_empty())));
    let child = read_pidfile(&child_pidfile);
    guards.push(SpawnedGroup(pgid_of(child)));
    Supervised { supervisor, child, _guards: guards }
}

/// Runs `daemonize --foreground --supervise ARGS` to its end: the supervisor's own status.
fn supervise_in_foreground(args: &[&str]) -> Output {
    let mut all = vec!["--foreground", "--supervise"];
    all.extend_from_slice(args);
    daemonize(&all)
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn pidfile_names_the_supervisor_and_child_pidfile_the_command() {
    let dir = TempDir::new("sup-pidfiles");
    let run = start_supervised(&dir, &["--", "sleep", "1000"]);
    assert_eq!(
        proc_stat(run.child)[1],
        run.supervisor.to_string(),
        "COMMAND is not the supervisor's child"
    );
    assert_eq!(pgid_of(run.child), run.child, "COMMAND is not in a process group of its own");
    assert!(
        matches!(Pidfile::status(dir.join("s.pid")), Status::Running(Some(p)) if p as i32 == run.supervisor)
    );
    assert!(
        matches!(Pidfile::status(dir.join("c.pid")), Status::Running(Some(p)) if p as i32 == run.child)
    );
    let status = proc_status(run.child);
    assert_eq!(status["SigBlk"], "0000000000000000", "COMMAND inherited the supervisor's mask");
    assert_eq!(status["SigIgn"], "0000000000000000");
    // The supervisor keeps only what it needs; COMMAND gets none of it.
    wait_asleep(run.child);
    let child_fds: Vec<i32> = proc_fds(run.child).into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(child_fds, vec![0, 1, 2]);
}

#[test]
fn stop_kills_every_descendant_even_escaped_ones() {
    let dir = TempDir::new("sup-orphans");
    // Two workers, a double-forked grandchild, and one that left the process group (setsid).
    let script = "sleep 1000 & sleep 1000 & (sleep 1000 &); setsid sleep 1000 & wait";
    let run = start_supervised(&dir, &["--", "sh", "-c", script]);
    let all = || daemonctx::process::descendants(run.supervisor as u32);
    assert!(wait_until(COMMAND_TIMEOUT, || all().len() >= 5), "descendants: {:?}", all());
    let before = all();
    let output = daemonize(&["--stop", "-p", s(&dir.join("s.pid"))]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    for pid in before {
        assert!(!alive(pid as i32), "pid {pid} survived the stop");
    }
    assert!(!alive(run.supervisor));
    assert!(!dir.join("s.pid").exists() && !dir.join("c.pid").exists(), "pidfiles left");
}

#[test]
fn kill_after_sends_sigkill_to_what_ignores_sigterm() {
    let dir = TempDir::new("sup-killafter");
    let err = dir.join("err.log");
    let script = "trap '' TERM; sleep 1000 & wait";
    let run =
        start_supervised(&dir, &["--kill-after", "0.2", "-e", s(&err), "--", "sh", "-c", script]);
    let output = daemonize(&["--stop", "-p", s(&dir.join("s.pid"))]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    assert!(!alive(run.child) && !alive(run.supervisor));
    assert!(log_lines(&err).iter().any(|l| l.contains("sending SIGKILL")), "{:?}", log_lines(&err));
}

#[test]
fn supervisor_exits_with_the_commands_status() {
    let output = supervise_in_foreground(&["--", "sh", "-c", "exit 5"]);
    assert_eq!(code(&output.status), 5, "{}", describe("exit 5", &output));
    let output = supervise_in_foreground(&["--", "sh", "-c", "kill -USR1 $$"]);
    assert_eq!(
        code(&output.status),
        128 + libc::SIGUSR1,
        "{}",
        describe("killed by USR1", &output)
    );
}

#[test]
fn on_failure_restarts_with_backoff_then_gives_up() {
    let dir = TempDir::new("sup-giveup");
    let (status, lines) =
        run_on_failure(&dir, &["--max-restarts", "3", "--", "sh", "-c", "exit 3"]);
    assert_eq!(status, 3, "{lines:?}");
    assert_eq!(restart_delays(&lines), ["0.05 s", "0.1 s", "0.2 s"], "{lines:?}");
    assert!(lines.last().is_some_and(|l| l.contains("giving up")), "{lines:?}");
    // A success is not restarted under on-failure.
    let output = supervise_in_foreground(&["--restart", "on-failure", "--", "true"]);
    assert_eq!(code(&output.status), 0, "{}", describe("on-failure, success", &output));
}

#[test]
fn always_restarts_even_a_success_and_gives_up_non_zero() {
    let dir = TempDir::new("sup-always");
    let err = dir.join("err.log");
    let args = [
        "--restart",
        "always",
        "--restart-delay",
        "0.01",
        "--max-restarts",
        "2",
        "-e",
        s(&err),
        "--",
        "true",
    ];
    let output = supervise_in_foreground(&args);
    assert_eq!(code(&output.status), 1, "{}", describe("always", &output));
    let lines = log_lines(&err);
    assert_eq!(lines.iter().filter(|l| l.contains("exited with status 0")).count(), 3, "{lines:?}");
}

#[test]
fn a_crash_loop_does_not_spin_the_cpu() {
    let dir = TempDir::new("sup-crashloop");
    let err = dir.join("err.log");
    let args = [
        "--restart",
        "always",
        "--restart-delay",
        "0.1",
        "--restart-max-delay",
        "0.1",
        "-e",
        s(&err),
        "--",
        "false",
    ];
    let pidfile = dir.join("s.pid");
    let mut all = vec!["--supervise", "-p", s(&pidfile)];
    all.extend_from_slice(&args);
    let output = daemonize(&all);
    assert!(output.status.success(), "{}", describe("daemonize", &output));
    let supervisor = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(supervisor));
    let restarts = || log_lines(&err).iter().filter(|l| l.contains("restarting")).count();
    assert!(wait_until(COMMAND_TIMEOUT, || restarts() >= 8), "{:?}", log_lines(&err));
    // utime + stime in clock ticks (100 per second): eight restarts spaced 0.1 s apart cost
    // a few milliseconds of CPU, not the 0.8 s a busy loop would.
    let stat = proc_stat(supervisor);
    let ticks: u64 = stat[11].parse::<u64>().unwrap() + stat[12].parse::<u64>().unwrap();
    assert!(ticks < 20, "the supervisor used {ticks} ticks of CPU over 8 restarts");
}

#[test]
fn exec_mode_waits_for_systemd_notify() {
    let dir = TempDir::new("ready-exec-notify");
    let pidfile = dir.join("d.pid");
    let fifo = dir.join("go");
    mkfifo(&fifo);
    let script = format!("read line < {}; systemd-notify --ready; exec sleep 1000", fifo.display());
    let mut invoker =
        spawn_daemonize(&["-p", s(&pidfile), "--wait-ready", "notify", "--", "sh", "-c", &script]);
    let _guard = Spawned::new(invoker.id() as i32);
    let daemon = wait_for_pidfile(&pidfile);
    let _daemon_guard = SpawnedGroup(pgid_of(daemon));
    // The command runs and holds its pidfile, but has not said READY=1: daemonize must wait.
    assert!(!wait_gone(invoker.id() as i32, Duration::from_millis(300)), "returned before READY=1");
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"go\n").unwrap();
    assert!(wait_gone(invoker.id() as i32, COMMAND_TIMEOUT));
    assert!(invoker.wait().unwrap().success());
    assert!(alive(daemon));
}

#[test]
fn supervise_mode_waits_for_the_rust_notify_helper_and_reports_status() {
    let dir = TempDir::new("ready-sup-notify");
    let pidfile = dir.join("s.pid");
    let err = dir.join("err.log");
    let fifo = dir.join("go");
    mkfifo(&fifo);
    let helper = example("notify_ready");
    let args = [
        "--supervise",
        "-p",
        s(&pidfile),
        "-e",
        s(&err),
        "--wait-ready",
        "notify",
        "--",
        s(&helper),
        s(&fifo),
    ];
    let mut invoker = spawn_daemonize(&args);
    let _guard = Spawned::new(invoker.id() as i32);
    let supervisor = wait_for_pidfile(&pidfile);
    let _supervisor_guard = SpawnedGroup(pgid_of(supervisor));
    assert!(wait_until(COMMAND_TIMEOUT, || log_lines(&err)
        .iter()
        .any(|l| l.contains("status: warming up"))));
    assert_eq!(invoker.try_wait().unwrap(), None, "returned before READY=1");
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"go\n").unwrap();
    assert!(wait_gone(invoker.id() as i32, COMMAND_TIMEOUT));
    assert!(invoker.wait().unwrap().success());
    let helper_pid = daemonctx::process::descendants(supervisor as u32)[0] as i32;
    let _helper_guard = SpawnedGroup(pgid_of(helper_pid));
}

#[test]
fn ready_fd_works_in_both_modes_on_any_number() {
    // Low numbers collide with the descriptors daemonize and std use themselves.
    for (mode, fd) in [
        (&[][..], 3),
        (&[][..], 4),
        (&[][..], 7),
        (&["--supervise"][..], 4),
        (&["--supervise"][..], 7),
    ] {
        let dir = TempDir::new("ready-fd");
        let pidfile = dir.join("p.pid");
        let (ready, script) = (format!("fd:{fd}"), format!("echo >&{fd}; exec sleep 1000"));
        let mut args = mode.to_vec();
        args.extend(["-p", s(&pidfile), "--wait-ready", &ready, "--", "sh", "-c", &script]);
        let output = daemonize(&args);
        assert!(output.status.success(), "{}", describe(&show(&args), &output));
        let pid = read_pidfile(&pidfile);
        let _guard = SpawnedGroup(pgid_of(pid));
        if mode.is_empty() {
            let fds: Vec<i32> = proc_fds(pid).into_iter().map(|(fd, _)| fd).collect();
            assert!(fds.contains(&fd), "the ready fd did not reach COMMAND: {fds:?}");
        }
    }
}

#[test]
fn ready_timeout_stops_the_command_and_cleans_up() {
    for mode in [&[][..], &["--supervise"][..]] {
        let dir = TempDir::new("ready-timeout");
        let pidfile = dir.join("p.pid");
        let mut args = mode.to_vec();
        args.extend([
            "-p",
            s(&pidfile),
            "--wait-ready",
            "notify",
            "--ready-timeout",
            "0.3",
            "--kill-after",
            "1",
            "--",
            "sh",
            "-c",
            "sleep 1000; echo marker-never-ready",
        ]);
        let output = daemonize(&args);
        let shown = describe(&show(&args), &output);
        assert_eq!(code(&output.status), 8, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("ready"), "{shown}");
        assert!(!pidfile.exists(), "pidfile left: {shown}");
        assert_eq!(
            processes_mentioning(Path::new("marker-never-ready")),
            Vec::<i32>::new(),
            "{shown}"
        );
    }
}

#[test]
fn command_exiting_before_ready_fails_with_its_status() {
    for mode in [&[][..], &["--supervise"][..]] {
        let dir = TempDir::new("ready-exit");
        let pidfile = dir.join("p.pid");
        let mut args = mode.to_vec();
        args.extend(["-p", s(&pidfile), "--wait-ready", "notify", "--", "sh", "-c", "exit 4"]);
        let output = daemonize(&args);
        let shown = describe(&show(&args), &output);
        assert_eq!(code(&output.status), 4, "{shown}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("exited before it was ready"),
            "{shown}"
        );
        assert!(!pidfile.exists(), "pidfile left: {shown}");
    }
}

fn spawn_daemonize(args: &[&str]) -> Child {
    Command::new(daemonize_bin()).args(args).stdin(Stdio::null()).spawn().unwrap()
}

/// Waits for a pidfile to name a running process (a handshake: the lock and the pid).
fn wait_for_pidfile(pidfile: &Path) -> i32 {
    let running = || matches!(Pidfile::status(pidfile), Status::Running(Some(_)));
    assert!(
        wait_until(COMMAND_TIMEOUT, running),
        "{} never named a running process",
        pidfile.display()
    );
    read_pidfile(pidfile)
}

#[test]
fn a_long_enough_run_resets_the_restart_delay() {
    let dir = TempDir::new("sup-reset");
    // Each run lasts longer than --restart-max-delay: no crash loop, so no backoff.
    let args = [
        "--restart-max-delay",
        "0.2",
        "--max-restarts",
        "3",
        "--",
        "sh",
        "-c",
        "sleep 0.3; exit 1",
    ];
    let (status, lines) = run_on_failure(&dir, &args);
    assert_eq!(status, 1, "{lines:?}");
    assert_eq!(restart_delays(&lines), ["0.05 s", "0.05 s", "0.05 s"], "{lines:?}");
}

#[test]
fn mainpid_moves_the_pidfile_to_the_real_main_process() {
    let dir = TempDir::new("ready-mainpid");
    let pidfile = dir.join("d.pid");
    let script = "sleep 1000 & systemd-notify --ready --pid=$!; wait";
    let args = ["-p", s(&pidfile), "--wait-ready", "notify", "--", "sh", "-c", script];
    let output = daemonize(&args);
    assert!(output.status.success(), "{}", describe(&show(&args), &output));
    let named = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(named));
    let comm = std::fs::read_to_string(format!("/proc/{named}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep", "the pidfile names {named} ({comm:?}), not MAINPID");
}

#[test]
fn a_full_log_disk_holds_output_instead_of_losing_it() {
    let dir = TempDir::new("sup-enospc");
    let test = "a_full_log_disk_holds_output_instead_of_losing_it";
    let Some(small) = Tmpfs::mount(test, &dir, "small", "64k") else { return };
    let mount = small.path().to_path_buf();
    let out = mount.join("out.log");
    let err = dir.join("err.log");
    let run = start_supervised(
        &dir,
        &["-o", s(&out), "-e", s(&err), "--", "sh", "-c", "seq 1 40000; exec sleep 1000"],
    );
    let held = || {
        log_lines(&err)
            .iter()
            .any(|l| l.contains("No space left on device") && l.contains("holding output"))
    };
    assert!(wait_until(COMMAND_TIMEOUT, held), "{:?}", log_lines(&err));
    assert!(alive(run.child), "COMMAND died instead of waiting");
    let grown = run_cmd(&["mount", "-o", "remount,size=4m", s(&mount)]);
    assert!(grown.status.success(), "{}", describe("remount", &grown));
    let complete = || log_lines(&out).last().is_some_and(|l| l == "40000");
    assert!(wait_until(COMMAND_TIMEOUT, complete), "output never completed");
    let lines = log_lines(&out);
    let expected: Vec<String> = (1..=40000).map(|n| n.to_string()).collect();
    assert!(lines == expected, "lines were lost or torn ({} lines)", lines.len());
    assert!(log_lines(&err).iter().any(|l| l.contains("writing") && l.contains("again")));
}

fn run_cmd(argv: &[&str]) -> Output {
    run(Command::new(argv[0]).args(&argv[1..]))
}

#[test]
fn foreground_supervisor_passes_output_to_its_own_streams() {
    let output = supervise_in_foreground(&["--", "sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    assert!(output.status.success(), "{}", describe("foreground supervise", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "to-stdout\n");
    assert!(
        String::from_utf8_lossy(&output.stderr).lines().any(|l| l == "to-stderr"),
        "{}",
        describe("", &output)
    );
}

#[test]
fn log_fifo_without_a_reader_is_refused_at_start() {
    let dir = TempDir::new("sup-fifo");
    let fifo = dir.join("log.fifo");
    mkfifo(&fifo);
    let pidfile = dir.join("s.pid");
    let args = ["--supervise", "-p", s(&pidfile), "-o", s(&fifo), "--", "sleep", "1000"];
    let output = daemonize(&args);
    assert_eq!(code(&output.status), 5, "{}", describe(&show(&args), &output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("No such device or address"));
    assert!(!pidfile.exists());
}

/// Runs a foreground supervisor with `--restart on-failure --restart-delay 0.05` and `args`,
/// its notices in DIR/err.log: its exit status and those notices.
fn run_on_failure(dir: &TempDir, args: &[&str]) -> (i32, Vec<String>) {
    let err = dir.join("err.log");
    let mut all = vec!["--restart", "on-failure", "--restart-delay", "0.05", "-e", s(&err)];
    all.extend_from_slice(args);
    let output = supervise_in_foreground(&all);
    (code(&output.status), log_lines(&err))
}

/// The delays the supervisor announced before each restart of `sh`.
fn restart_delays(lines: &[String]) -> Vec<&str> {
    lines.iter().filter_map(|l| l.split("restarting sh in ").nth(1)).collect()
}
