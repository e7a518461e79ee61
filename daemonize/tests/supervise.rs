//! Supervise mode (restart policy, stop, exit status) and readiness (`--wait-ready`), through
//! the `daemonize` binary.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use daemonctx::{Pidfile, Status};

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
    // Guards first: whatever was started is killed even if an assertion below fails.
    let mut guards: Vec<SpawnedGroup> = guard_pidfile(&pidfile).into_iter().collect();
    let named = || std::fs::read_to_string(&child_pidfile).is_ok_and(|t| !t.is_empty());
    let child_named = output.status.success() && wait_until(COMMAND_TIMEOUT, named);
    guards.extend(guard_pidfile(&child_pidfile));
    assert!(output.status.success(), "{}", describe(&format!("daemonize {}", show(&all)), &output));
    assert!(child_named, "{} never named COMMAND", child_pidfile.display());
    let supervisor = read_pidfile(&pidfile);
    let child = read_pidfile(&child_pidfile);
    Supervised { supervisor, child, _guards: guards }
}

/// Starts `daemonize --supervise -p DIR/s.pid --child-pidfile DIR/c.pid ARGS` for a COMMAND
/// that may be gone already: the supervisor's pid, and a guard on its group (which also kills
/// every descendant, whatever its group).
fn start_supervisor(dir: &TempDir, args: &[&str]) -> (i32, SpawnedGroup) {
    let pidfile = dir.join("s.pid");
    let child_pidfile = dir.join("c.pid");
    let mut all = vec!["--supervise", "-p", s(&pidfile), "--child-pidfile", s(&child_pidfile)];
    all.extend_from_slice(args);
    let output = daemonize(&all);
    let guard = guard_pidfile(&pidfile);
    assert!(output.status.success(), "{}", describe(&format!("daemonize {}", show(&all)), &output));
    (read_pidfile(&pidfile), guard.expect("a supervisor that runs"))
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
        proc_stat(run.child).ppid,
        run.supervisor as u32,
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

/// The pids among the supervisor's descendants whose command line is exactly `argv`.
fn descendants_running(supervisor: i32, argv: &str) -> Vec<u32> {
    let wanted: Vec<u8> = argv.split(' ').flat_map(|a| a.bytes().chain([0])).collect();
    daemonctx::process::descendants(supervisor as u32)
        .into_iter()
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// An escaper: ignores SIGTERM, leaves the process group (setsid), writes its group id into
/// `group_file`, and keeps forking, each generation exiting as soon as it has started the next
/// (`if fork(): _exit(0)`). Every generation has `dir` in its command line. `None`, after
/// saying so, without python3.
fn escaper_command(dir: &TempDir, group_file: &Path) -> Option<String> {
    if !Command::new("python3").args(["-c", ""]).status().is_ok_and(|s| s.success()) {
        skip("stop_kills_every_descendant_even_escaped_ones needs python3 for the forking escaper");
        return None;
    }
    let program = dir.join("escaper.py");
    let code = "import os, signal, sys\n\
                signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                os.setsid()\n\
                open(sys.argv[1], 'w').write(str(os.getpgrp()))\n\
                while True:\n    if os.fork(): os._exit(0)\n";
    std::fs::write(&program, code).unwrap();
    Some(format!("python3 {} {} &", program.display(), group_file.display()))
}

#[test]
fn stop_kills_every_descendant_even_escaped_ones() {
    let dir = TempDir::new("sup-orphans");
    let group_file = dir.join("escaper.pgid");
    let escaper = escaper_command(&dir, &group_file);
    // Two workers, a double-forked grandchild, one that left the process group (setsid), and
    // the escaper.
    let script = format!(
        "sleep 1001 & sleep 1002 & (sleep 1003 &); setsid sleep 1004 & {} wait",
        escaper.as_deref().unwrap_or("")
    );
    let run = start_supervised(&dir, &["--kill-after", "0.5", "--", "sh", "-c", &script]);
    // Handshake: every expected process exists (and has exec'd) before the snapshot.
    let sleeps = ["sleep 1001", "sleep 1002", "sleep 1003", "sleep 1004"];
    let started = || sleeps.iter().all(|argv| descendants_running(run.supervisor, argv).len() == 1);
    let tree = || daemonctx::process::descendants(run.supervisor as u32);
    assert!(wait_until(COMMAND_TIMEOUT, started), "{:?}", tree());
    let escaper_group = || std::fs::read_to_string(&group_file).ok()?.trim().parse::<i32>().ok();
    let escaper_started = || escaper.is_none() || escaper_group().is_some();
    assert!(wait_until(COMMAND_TIMEOUT, escaper_started), "the escaper never started");
    let _escaper_guard = escaper_group().map(SpawnedGroup);
    let mut before: Vec<u32> =
        sleeps.iter().flat_map(|argv| descendants_running(run.supervisor, argv)).collect();
    before.push(run.child as u32);
    // Bounded below the test's command timeout: a supervisor that hangs makes it return 2.
    let output = daemonize(&["--stop", "-p", s(&dir.join("s.pid")), "--retry", "TERM/15"]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    for pid in before {
        assert!(!alive(pid as i32), "pid {pid} survived the stop");
    }
    assert!(!alive(run.supervisor));
    if let Some(group) = escaper_group() {
        let members = daemonctx::process::group_members(group as u32);
        assert_eq!(members, Vec::<u32>::new(), "the escaper survived");
    }
    let survivors = processes_mentioning(dir.path());
    assert_eq!(survivors, Vec::<i32>::new(), "an escaper generation survived");
    assert!(!dir.join("s.pid").exists() && !dir.join("c.pid").exists(), "pidfiles left");
}

/// The `/proc` paths a traced process opened that name another process (`/proc/N/...` with N
/// not its own pid) or list them all (`/proc` itself), from `strace -f -o` lines
/// (`PID openat(AT_FDCWD, "/proc/...", ...)`).
fn proc_opens_of_others(trace: &str, traced: i32) -> Vec<String> {
    trace
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(&traced.to_string()))
        .filter(|line| {
            let Some((_, after)) = line.split_once("\"/proc") else { return false };
            let Some(rest) = after.strip_prefix('/') else { return after.starts_with('"') };
            let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
            !number.is_empty() && number != traced.to_string()
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn common_case_stop_scans_no_other_process() {
    // COMMAND and its group gone at SIGTERM: the supervisor learns from waitpid(2) that nothing
    // is left, and opens no /proc/PID of another process (nor lists /proc).
    let test = "common_case_stop_scans_no_other_process";
    if !Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()) {
        skip(&format!("{test} needs strace"));
        return;
    }
    let dir = TempDir::new("sup-noscan");
    let (pidfile, child_pidfile, trace) = (dir.join("s.pid"), dir.join("c.pid"), dir.join("t"));
    let mut strace = Command::new("strace");
    strace.args(["-f", "-qq", "-e", "trace=openat,open", "-o", s(&trace)]).arg(daemonize_bin());
    strace.args(["--supervise", "-p", s(&pidfile), "--child-pidfile", s(&child_pidfile)]);
    let mut strace = strace
        .args(["--", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _strace_guard = Spawned::new(strace.id() as i32);
    let named = || std::fs::read_to_string(&child_pidfile).is_ok_and(|t| !t.is_empty());
    if !wait_until(COMMAND_TIMEOUT, named) {
        let _ = guard_pidfile(&pidfile);
        let _ = strace.kill();
        let _ = strace.wait();
        skip(&format!("{test} needs strace to trace (ptrace refused?): no supervisor"));
        return;
    }
    let supervisor = read_pidfile(&pidfile);
    let _guard = guard_pidfile(&pidfile);
    let output = daemonize(&["--stop", "-p", s(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    // strace ends with the last process it follows: then the trace is whole.
    assert!(wait_gone(strace.id() as i32, COMMAND_TIMEOUT), "strace never finished");
    let _ = strace.wait(); // gone already: reaps it
    let trace = std::fs::read_to_string(&trace).unwrap();
    let scans = proc_opens_of_others(&trace, supervisor);
    assert_eq!(scans, Vec::<String>::new(), "the supervisor (pid {supervisor}) scanned /proc");
}

#[test]
fn an_escaped_descendant_of_a_live_parent_gets_sigterm_before_kill_after() {
    // COMMAND ignores SIGTERM and stays; its child left the group (setsid) and records the
    // SIGTERM it gets. The group signal cannot reach it, its parent is alive (so the supervisor
    // has no orphan to learn from): the scan made when the tree did not empty must.
    let test = "an_escaped_descendant_of_a_live_parent_gets_sigterm_before_kill_after";
    if !Command::new("python3").args(["-c", ""]).status().is_ok_and(|s| s.success()) {
        skip(&format!("{test} needs python3"));
        return;
    }
    let dir = TempDir::new("sup-escaped-term");
    let (program, record) = (dir.join("escaped.py"), dir.join("got"));
    let python = "import os, signal, sys\n\
                def term(*_):\n    open(sys.argv[1], 'w').write('TERM')\n    os._exit(0)\n\
                signal.signal(signal.SIGTERM, term)\n\
                os.setsid()\n\
                os.write(3, b'\\n')\n\
                os.close(3)\n\
                while True:\n    signal.pause()\n";
    std::fs::write(&program, python).unwrap();
    let script = format!("trap '' TERM; python3 {} {} & exec 3>&-; wait", s(&program), s(&record));
    let args = ["--kill-after", "3", "--wait-ready", "fd:3", "--", "sh", "-c", &script];
    let run = start_supervised(&dir, &args);
    let output = daemonize(&["--stop", "-p", s(&dir.join("s.pid"))]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    assert!(!alive(run.child) && !alive(run.supervisor));
    let got = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(got, "TERM", "the escaped descendant got no SIGTERM before SIGKILL");
}

#[test]
fn kill_after_sends_sigkill_to_what_ignores_sigterm() {
    let dir = TempDir::new("sup-killafter");
    let err = dir.join("err.log");
    // Ready (fd 3) only once SIGTERM is ignored: the stop must not come before the trap.
    let script = "trap '' TERM; echo >&3; exec 3>&-; sleep 1000 & wait";
    let args =
        ["--kill-after", "0.2", "-e", s(&err), "--wait-ready", "fd:3", "--", "sh", "-c", script];
    let run = start_supervised(&dir, &args);
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
    assert_eq!(restart_delays(&lines), ["0.1 s", "0.2 s", "0.4 s"], "{lines:?}");
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
        "0.1",
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
    let ticks = stat.utime + stat.stime;
    assert!(ticks < 20, "the supervisor used {ticks} ticks of CPU over 8 restarts");
}

#[test]
fn exec_mode_waits_for_systemd_notify() {
    let dir = TempDir::new("ready-exec-notify");
    let pidfile = dir.join("d.pid");
    let err = dir.join("err");
    let mut gate = Gate::new(&dir);
    let script = format!(
        "systemd-notify --status=waiting; read line < {}; systemd-notify --ready; exec sleep 1000",
        gate.path.display()
    );
    let args = ["-v", "-p", s(&pidfile), "--wait-ready", "notify", "--", "sh", "-c", &script];
    let mut invoker = Command::new(daemonize_bin())
        .args(args)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let _guard = Spawned::new(invoker.id() as i32);
    let daemon = wait_for_pidfile(&pidfile);
    let _daemon_guard = SpawnedGroup(pgid_of(daemon));
    // Handshake: daemonize has read the command's STATUS= and gone back to poll(2), waiting;
    // the command has not said READY=1 yet, so daemonize must still be there.
    let status_seen = || log_lines(&err).iter().any(|l| l == "daemonize: status: waiting");
    assert!(wait_until(COMMAND_TIMEOUT, status_seen), "{:?}", log_lines(&err));
    assert!(wait_polling(invoker.id() as i32), "{:?}", blocked_in(invoker.id() as i32));
    assert_eq!(invoker.try_wait().unwrap(), None, "returned before READY=1");
    gate.open();
    assert!(wait_gone(invoker.id() as i32, COMMAND_TIMEOUT));
    assert!(invoker.wait().unwrap().success(), "{:?}", log_lines(&err));
    assert!(alive(daemon));
}

#[test]
fn exec_mode_shows_status_messages_with_verbose() {
    let dir = TempDir::new("ready-exec-status");
    let pidfile = dir.join("d.pid");
    let helper = example("notify_ready");
    let args = ["-v", "-p", s(&pidfile), "--wait-ready", "notify", "--", s(&helper)];
    let output = daemonize(&args);
    let shown = describe(&show(&args), &output);
    assert!(output.status.success(), "{shown}");
    let _guard = SpawnedGroup(pgid_of(read_pidfile(&pidfile)));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The first message, and the STATUS= that came with READY=1.
    assert!(stderr.lines().any(|l| l == "daemonize: status: warming up"), "{shown}");
    assert!(stderr.lines().any(|l| l == "daemonize: status: serving"), "{shown}");
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
    // Low numbers collide with the descriptors daemonize, std and the supervisor use
    // themselves: the log files, the child pidfile, the signalfd.
    for supervise in [false, true] {
        for fd in 3..=9 {
            let dir = TempDir::new("ready-fd");
            let (pidfile, out, err) = (dir.join("p.pid"), dir.join("out.log"), dir.join("err.log"));
            let (ready, script) =
                (format!("fd:{fd}"), format!("echo started; echo >&{fd}; exec sleep 1000"));
            let mut args = vec!["-p", s(&pidfile), "-o", s(&out), "-e", s(&err), "-a"];
            let child_pidfile = dir.join("c.pid");
            if supervise {
                args.extend(["--supervise", "--child-pidfile", s(&child_pidfile)]);
            }
            args.extend(["--wait-ready", &ready, "--", "sh", "-c", &script]);
            let output = daemonize(&args);
            let shown = describe(&show(&args), &output);
            let _guards = [guard_pidfile(&pidfile), guard_pidfile(&child_pidfile)];
            assert!(output.status.success(), "{shown}");
            let pid = read_pidfile(&pidfile);
            let command = if supervise { read_pidfile(&child_pidfile) } else { pid };
            wait_asleep(command);
            let fds: Vec<i32> = proc_fds(command).into_iter().map(|(fd, _)| fd).collect();
            // In exec mode COMMAND also holds its pidfile's lock.
            let expected = if supervise { vec![0, 1, 2, fd] } else { fds.clone() };
            assert!(fds.contains(&fd) && fds == expected, "COMMAND's descriptors {fds:?}: {shown}");
            let target = std::fs::read_link(format!("/proc/{command}/fd/{fd}")).unwrap();
            assert!(
                target.to_string_lossy().starts_with("pipe:"),
                "fd {fd} is {target:?}: {shown}"
            );
            // The supervisor's own files still work.
            let relayed = || log_lines(&out) == ["started"];
            assert!(wait_until(COMMAND_TIMEOUT, relayed), "{:?}: {shown}", log_lines(&out));
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
            // Names the test's directory, for processes_mentioning.
            s(dir.path()),
        ]);
        let output = daemonize(&args);
        let shown = describe(&show(&args), &output);
        assert_eq!(code(&output.status), 8, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("ready"), "{shown}");
        assert!(!pidfile.exists(), "pidfile left: {shown}");
        assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "{shown}");
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
    assert_eq!(restart_delays(&lines), ["0.1 s", "0.1 s", "0.1 s"], "{lines:?}");
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
fn foreground_supervisor_started_with_stdout_closed_runs_its_command() {
    // `>&-`: the supervisor starts without a standard output; COMMAND's output has nowhere to
    // go but must not stop it, and its status comes back.
    let script = "exec \"$0\" \"$@\" >&-";
    let args =
        ["--foreground", "--supervise", "--", "sh", "-c", "echo lost; echo kept >&2; exit 3"];
    let output = run(Command::new("sh").args(["-c", script]).arg(daemonize_bin()).args(args));
    assert_eq!(code(&output.status), 3, "{}", describe("daemonize >&-", &output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.lines().any(|l| l == "kept"), "{}", describe("daemonize >&-", &output));
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

/// Runs a foreground supervisor with `--restart on-failure --restart-delay 0.1` and `args`,
/// its notices in DIR/err.log: its exit status and those notices.
fn run_on_failure(dir: &TempDir, args: &[&str]) -> (i32, Vec<String>) {
    let err = dir.join("err.log");
    let mut all = vec!["--restart", "on-failure", "--restart-delay", "0.1", "-e", s(&err)];
    all.extend_from_slice(args);
    let output = supervise_in_foreground(&all);
    (code(&output.status), log_lines(&err))
}

/// The delays the supervisor announced before each restart of `sh`.
fn restart_delays(lines: &[String]) -> Vec<&str> {
    lines.iter().filter_map(|l| l.split("restarting sh in ").nth(1)).collect()
}

#[test]
fn a_settled_ready_fd_costs_nothing_during_the_restart_delay() {
    let dir = TempDir::new("sup-ready-delay");
    let err = dir.join("err.log");
    // COMMAND keeps its ready fd open until it dies, then waits out a 5 s restart delay.
    let args = [
        "--wait-ready",
        "fd:3",
        "--restart",
        "always",
        "--restart-delay",
        "5",
        "-e",
        s(&err),
        "--",
        "sh",
        "-c",
        "echo >&3; exit 1",
    ];
    let (supervisor, _guard) = start_supervisor(&dir, &args);
    let waiting = || log_lines(&err).iter().any(|l| l.contains("restarting sh in 5 s"));
    assert!(wait_until(COMMAND_TIMEOUT, waiting), "{:?}", log_lines(&err));
    assert!(wait_polling(supervisor), "never idle: {:?}", blocked_in(supervisor));
    let (before, after) = activity_over(supervisor, Duration::from_secs(1));
    assert_eq!(before, after, "the supervisor ran during the restart delay (switches, ticks)");
}

#[test]
fn notify_socket_stays_bound_once_ready_and_restarts_get_none() {
    let dir = TempDir::new("sup-notify-closed");
    let (first, second) = (dir.join("first"), dir.join("second"));
    let mut gate = Gate::new(&dir);
    // The first run says it is ready, then fails once the gate opens; the restart records
    // what it got.
    let script = format!(
        "if [ -n \"$NOTIFY_SOCKET\" ]; then echo \"$NOTIFY_SOCKET\" > {first}; \
         systemd-notify --ready; read go < {gate}; exit 1; fi; \
         echo \"none\" > {second}; exec sleep 1000",
        first = first.display(),
        second = second.display(),
        gate = gate.path.display()
    );
    let args = [
        "--wait-ready",
        "notify",
        "--restart",
        "on-failure",
        "--restart-delay",
        "0.1",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let run = start_supervised(&dir, &args);
    let address = std::fs::read_to_string(&first).unwrap().trim().to_string();
    assert!(address.starts_with("@daemonize/notify/"), "{address:?}");
    // /proc/net/unix lists bound sockets, an abstract name with its '@'. The name stays bound
    // (dropping what arrives), so that nobody else can bind it while COMMAND has the variable.
    let is_bound = || {
        let bound = std::fs::read_to_string("/proc/net/unix").unwrap();
        bound.lines().any(|l| l.ends_with(&format!(" {address}")))
    };
    assert!(is_bound(), "{address} was given up once COMMAND was ready");
    gate.open();
    let restarted = || std::fs::read_to_string(&second).is_ok_and(|t| t == "none\n");
    assert!(wait_until(COMMAND_TIMEOUT, restarted), "the restarted COMMAND got NOTIFY_SOCKET");
    let child = wait_for_pidfile(&dir.join("c.pid"));
    assert_ne!(child, run.child);
    let _guard = SpawnedGroup(pgid_of(child));
    let environ = environ_of(child);
    assert!(!environ.iter().any(|v| v.starts_with("NOTIFY_SOCKET=")), "{environ:?}");
    assert!(is_bound(), "{address} was given up at the restart");
}

#[test]
fn relative_paths_are_taken_from_the_invokers_directory() {
    let dir = TempDir::new("sup-relative");
    // SIGHUP is forwarded to COMMAND too: this one ignores it, or it would die of it.
    let script = "trap '' HUP; i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done";
    let args = [
        "--supervise",
        "-p",
        "s.pid",
        "--child-pidfile",
        "c.pid",
        "-o",
        "out.log",
        "-e",
        "err.log",
        "--",
        "sh",
        "-c",
        script,
    ];
    let output = run(Command::new(daemonize_bin()).current_dir(dir.path()).args(args));
    let _guards = [guard_pidfile(&dir.join("s.pid")), guard_pidfile(&dir.join("c.pid"))];
    assert!(output.status.success(), "{}", describe(&show(&args), &output));
    let supervisor = read_pidfile(&dir.join("s.pid"));
    let child = wait_for_pidfile(&dir.join("c.pid"));
    let (out, rotated) = (dir.join("out.log"), dir.join("out.log.1"));
    assert!(wait_until(COMMAND_TIMEOUT, || log_lines(&out).len() >= 5), "no output in {out:?}");
    std::fs::rename(&out, &rotated).unwrap();
    std::fs::rename(dir.join("err.log"), dir.join("err.log.1")).unwrap();
    assert!(kill(supervisor, libc::SIGHUP));
    assert!(
        wait_until(COMMAND_TIMEOUT, || log_lines(&out).len() >= 5),
        "{out:?} was not reopened on SIGHUP"
    );
    let stop =
        run(Command::new(daemonize_bin()).current_dir(dir.path()).args(["--stop", "-p", "s.pid"]));
    assert!(stop.status.success(), "{}", describe("daemonize --stop -p s.pid", &stop));
    assert!(wait_gone(supervisor, COMMAND_TIMEOUT));
    assert!(!dir.join("s.pid").exists() && !dir.join("c.pid").exists(), "pidfiles left");
    // The supervisor's notice of COMMAND's end went to the reopened stderr file.
    assert!(log_lines(&dir.join("err.log")).iter().any(|l| l.contains(&format!("pid {child}"))));
    let all = std::fs::read_to_string(&rotated).unwrap() + &std::fs::read_to_string(&out).unwrap();
    let numbers: Vec<&str> = all.lines().collect();
    let expected: Vec<String> = (0..numbers.len()).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected, "a gap, a repeat or a torn line across the rotation");
}

#[test]
fn foreground_supervisor_obeys_sigterm_while_its_stdout_is_a_pipe_nobody_reads() {
    // A pipe (`| slow-reader`), and a stream socket (systemd's journal).
    for socket in [false, true] {
        let dir = TempDir::new("sup-slow-reader");
        let (pidfile, child_pidfile) = (dir.join("f.pid"), dir.join("c.pid"));
        let args = [
            "--foreground",
            "--supervise",
            "-p",
            s(&pidfile),
            "--child-pidfile",
            s(&child_pidfile),
            "--kill-after",
            "1",
            "--",
            "yes",
        ];
        // The reading end is held open and never read.
        let (stdout, _unread): (Stdio, Box<dyn std::any::Any>) = if socket {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            (Stdio::from(std::os::fd::OwnedFd::from(theirs)), Box::new(ours))
        } else {
            (Stdio::piped(), Box::new(()))
        };
        let mut supervisor = Command::new(daemonize_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(dir.join("err")).unwrap())
            .spawn()
            .unwrap();
        let pid = supervisor.id() as i32;
        let _guard = Spawned::new(pid);
        let _unread_pipe = supervisor.stdout.take();
        let child = wait_for_pidfile(&child_pidfile);
        let _child_guard = Spawned::new(child);
        // Handshake: `yes` sleeps in write(2), so its pipe is full and the supervisor stopped
        // reading it: the supervisor's own stdout is full.
        let writing = || {
            let (state, syscall, wchan) = blocked_in(child);
            state == "S" && (syscall == Some(libc::SYS_write) || wchan.contains("pipe_write"))
        };
        assert!(wait_until(COMMAND_TIMEOUT, writing), "{:?}", blocked_in(child));
        assert!(kill(pid, libc::SIGTERM));
        let kind = if socket { "socket" } else { "pipe" };
        assert!(
            wait_gone(child, COMMAND_TIMEOUT),
            "COMMAND still runs after SIGTERM to its supervisor, which is in {:?} (stdout: {kind})",
            blocked_in(pid)
        );
        assert!(
            wait_gone(pid, COMMAND_TIMEOUT),
            "supervisor stuck in {:?} ({kind})",
            blocked_in(pid)
        );
        assert_eq!(code(&supervisor.wait().unwrap()), 128 + libc::SIGTERM, "{kind}");
        assert!(!pidfile.exists() && !child_pidfile.exists(), "pidfiles left ({kind})");
    }
}

#[test]
fn restart_delays_below_a_tenth_of_a_second_are_refused() {
    for option in ["--restart-delay", "--restart-max-delay"] {
        let args =
            ["--foreground", "--supervise", "--restart", "always", option, "0", "--", "true"];
        let output = daemonize(&args);
        let shown = describe(&show(&args), &output);
        assert_eq!(code(&output.status), 2, "{shown}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("at least 0.1"), "{shown}");
    }
}

#[test]
fn huge_durations_are_clamped_instead_of_panicking() {
    let huge = "1e19";
    let running = "echo >&3; exec sleep 1000";
    // Exec mode waits for readiness; a supervisor is stopped (a SIGKILL deadline), or waits
    // out a restart delay doubled from a huge one.
    let cases: [(&[&str], &str, &str); 3] = [
        (&[], running, ""),
        (&["--supervise"], running, ""),
        (
            &[
                "--supervise",
                "--restart",
                "always",
                "--restart-delay",
                huge,
                "--restart-max-delay",
                huge,
            ],
            "echo >&3; exit 1",
            "restarting sh in 1000000000 s",
        ),
    ];
    for (mode, script, notice) in cases {
        let dir = TempDir::new("sup-huge");
        let (pidfile, err) = (dir.join("p.pid"), dir.join("err.log"));
        let mut args = mode.to_vec();
        args.extend(["-p", s(&pidfile), "-e", s(&err), "--wait-ready", "fd:3"]);
        args.extend(["--ready-timeout", huge, "--kill-after", huge, "--", "sh", "-c", script]);
        let output = daemonize(&args);
        let shown = describe(&show(&args), &output);
        // Guard first: a daemonize that panicked may have left its daemon running.
        let _guard = guard_pidfile(&pidfile);
        assert!(output.status.success(), "{shown}");
        let pid = read_pidfile(&pidfile);
        let noticed = || notice.is_empty() || log_lines(&err).iter().any(|l| l.contains(notice));
        assert!(wait_until(COMMAND_TIMEOUT, noticed), "{:?}: {shown}", log_lines(&err));
        // A supervisor that panicked on stop would leave its COMMAND running.
        let tree = daemonctx::process::descendants(pid as u32);
        let _tree_guards: Vec<Spawned> = tree.iter().map(|p| Spawned::new(*p as i32)).collect();
        let stop = daemonize(&["--stop", "-p", s(&pidfile)]);
        assert!(stop.status.success(), "{}", describe("stop", &stop));
        assert!(wait_gone(pid, COMMAND_TIMEOUT) && !pidfile.exists(), "{shown}");
        for pid in tree {
            assert!(wait_gone(pid as i32, COMMAND_TIMEOUT), "{pid} outlived the stop: {shown}");
        }
        let panicked = log_lines(&err).iter().any(|l| l.contains("panicked"));
        assert!(!panicked, "{:?}: {shown}", log_lines(&err));
    }
}

#[test]
fn restarted_commands_get_a_harmless_ready_fd() {
    let dir = TempDir::new("sup-ready-restart");
    let (runs, err) = (dir.join("runs"), dir.join("err.log"));
    // Each run writes its newline to fd 3; the second one stays.
    let script = format!(
        "echo >&3 && echo wrote >> {runs}; [ $(grep -c wrote {runs}) -ge 2 ] && exec sleep 1000; exit 1",
        runs = runs.display()
    );
    let args = [
        "--wait-ready",
        "fd:3",
        "--restart",
        "on-failure",
        "--restart-delay",
        "0.1",
        "-e",
        s(&err),
        "--",
        "sh",
        "-c",
        &script,
    ];
    let (_, _guard) = start_supervisor(&dir, &args);
    let second_wrote = || log_lines(&runs).len() >= 2;
    assert!(wait_until(COMMAND_TIMEOUT, second_wrote), "{:?}", log_lines(&err));
    let sleeping = || {
        let text = std::fs::read_to_string(dir.join("c.pid")).unwrap_or_default();
        text.trim().parse::<i32>().is_ok_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
        })
    };
    assert!(wait_until(COMMAND_TIMEOUT, sleeping), "{:?}", log_lines(&err));
    let child = read_pidfile(&dir.join("c.pid"));
    let target = std::fs::read_link(format!("/proc/{child}/fd/3")).unwrap();
    assert_eq!(target, Path::new("/dev/null"));
    assert!(
        !log_lines(&err).iter().any(|l| l.contains("Bad file descriptor")),
        "{:?}",
        log_lines(&err)
    );
}

#[test]
fn supervise_mode_names_the_command_and_its_signal_when_it_dies_before_ready() {
    let dir = TempDir::new("ready-sup-signal");
    let pidfile = dir.join("p.pid");
    let args = [
        "--supervise",
        "-p",
        s(&pidfile),
        "--wait-ready",
        "notify",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ];
    let output = daemonize(&args);
    let shown = describe(&show(&args), &output);
    assert_eq!(code(&output.status), 128 + libc::SIGTERM, "{shown}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sh exited before it was ready"), "{shown}");
    assert!(stderr.contains("SIGTERM"), "{shown}");
    assert!(!pidfile.exists(), "pidfile left: {shown}");
}

#[test]
fn restarts_spread_over_more_than_the_window_never_give_up() {
    let dir = TempDir::new("sup-window");
    let runs = dir.join("runs");
    // Each run lasts longer than the window: no two restarts fall within it. The fourth
    // run succeeds.
    let script = format!(
        "echo run >> {runs}; [ $(wc -l < {runs}) -ge 4 ] && exit 0; sleep 0.3; exit 1",
        runs = runs.display()
    );
    let args = ["--max-restarts", "1", "--restart-window", "0.2", "--", "sh", "-c", &script];
    let (status, lines) = run_on_failure(&dir, &args);
    assert_eq!(status, 0, "gave up: {lines:?}");
    assert_eq!(log_lines(&runs).len(), 4, "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("giving up")), "{lines:?}");
}

#[test]
fn backoff_stops_growing_at_the_max_delay() {
    let dir = TempDir::new("sup-maxdelay");
    let args = ["--restart-max-delay", "0.3", "--max-restarts", "4", "--", "sh", "-c", "exit 3"];
    let (status, lines) = run_on_failure(&dir, &args);
    assert_eq!(status, 3, "{lines:?}");
    assert_eq!(restart_delays(&lines), ["0.1 s", "0.2 s", "0.3 s", "0.3 s"], "{lines:?}");
}

#[test]
fn giving_up_removes_the_pidfile_of_a_detached_supervisor() {
    let dir = TempDir::new("sup-giveup-detached");
    let (pidfile, err) = (dir.join("s.pid"), dir.join("err.log"));
    let mut gate = Gate::new(&dir);
    let script = format!("read go < {}; exit 3", gate.path.display());
    let args = [
        "--supervise",
        "-p",
        s(&pidfile),
        "-e",
        s(&err),
        "--restart",
        "on-failure",
        "--restart-delay",
        "0.1",
        "--max-restarts",
        "1",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let output = daemonize(&args);
    assert!(output.status.success(), "{}", describe(&show(&args), &output));
    let supervisor = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(supervisor));
    gate.open(); // the first run fails
    gate.open(); // and the restart
    assert!(wait_gone(supervisor, COMMAND_TIMEOUT), "{:?}", log_lines(&err));
    assert!(log_lines(&err).iter().any(|l| l.contains("giving up")), "{:?}", log_lines(&err));
    assert!(!pidfile.exists(), "the pidfile outlived the supervisor that gave up");
}

#[test]
fn a_second_newline_on_the_ready_fd_does_not_kill_command() {
    let dir = TempDir::new("sup-ready-twice");
    let out = dir.join("out.log");
    let mut gate = Gate::new(&dir);
    // Ready once, then, once readiness is long settled, a second newline on the same fd.
    let script = format!(
        "echo >&3; read go < {}; echo >&3; echo second newline written; exec sleep 1000",
        gate.path.display()
    );
    let args = ["--wait-ready", "fd:3", "-o", s(&out), "--", "sh", "-c", &script];
    let run = start_supervised(&dir, &args);
    gate.open();
    let written = || log_lines(&out) == ["second newline written"];
    assert!(wait_until(COMMAND_TIMEOUT, written), "{:?}", log_lines(&out));
    assert!(alive(run.child), "COMMAND died writing to its settled ready fd");
}

#[test]
fn a_ready_deadline_passing_while_stopping_does_not_wake_the_supervisor() {
    let dir = TempDir::new("sup-deadline-draining");
    let (pidfile, child_pidfile, err) = (dir.join("s.pid"), dir.join("c.pid"), dir.join("e.log"));
    // COMMAND ignores SIGTERM and never says it is ready; the supervisor is told to stop
    // (around the 0.5 s readiness deadline, before or after) and drains for up to 30 s.
    let args = [
        "--supervise",
        "-p",
        s(&pidfile),
        "--child-pidfile",
        s(&child_pidfile),
        "-e",
        s(&err),
        "--wait-ready",
        "notify",
        "--ready-timeout",
        "0.5",
        "--kill-after",
        "30",
        "--",
        "sh",
        "-c",
        "trap '' TERM; exec sleep 1000",
    ];
    let started = std::time::Instant::now();
    let mut invoker =
        Command::new(daemonize_bin()).args(args).stdin(Stdio::null()).spawn().unwrap();
    let _invoker_guard = Spawned::new(invoker.id() as i32);
    let named = |path: &Path| std::fs::read_to_string(path).is_ok_and(|t| !t.is_empty());
    assert!(wait_until(COMMAND_TIMEOUT, || named(&pidfile) && named(&child_pidfile)));
    let supervisor = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(supervisor));
    let child = read_pidfile(&child_pidfile);
    let ignores_term = || {
        let ignored = u64::from_str_radix(&proc_status(child)["SigIgn"], 16).unwrap();
        ignored & (1 << (libc::SIGTERM - 1)) != 0
    };
    assert!(wait_until(COMMAND_TIMEOUT, ignores_term), "COMMAND never ignored SIGTERM");
    assert!(kill(supervisor, libc::SIGTERM));
    let stopping = || log_lines(&err).iter().any(|l| l.contains("stopping"));
    assert!(wait_until(COMMAND_TIMEOUT, stopping), "{:?}", log_lines(&err));
    // Past the readiness deadline, draining: the supervisor must sleep until --kill-after.
    let past_deadline = || started.elapsed() > Duration::from_millis(800);
    assert!(wait_until(COMMAND_TIMEOUT, past_deadline));
    assert!(wait_polling(supervisor), "never idle: {:?}", blocked_in(supervisor));
    let ((switches_before, ticks_before), (switches_after, ticks_after)) =
        activity_over(supervisor, Duration::from_secs(1));
    assert!(
        switches_after - switches_before <= 2 && ticks_after == ticks_before,
        "the draining supervisor kept waking: {} switches, {} ticks in 1 s",
        switches_after - switches_before,
        ticks_after - ticks_before
    );
    assert_eq!(invoker.try_wait().unwrap(), None, "the invoker returned although never ready");
}
