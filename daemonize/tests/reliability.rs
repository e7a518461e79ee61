//! Reliability: races, stale and garbage pidfiles, an invoker killed mid-start, resource
//! exhaustion. Each test is bounded in count and time.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use daemonctx::{Pidfile, Status};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A daemon command whose command line names the test's directory, so that any process it
/// leaves is found by `processes_mentioning`.
fn marked_sleeper(dir: &TempDir) -> Vec<String> {
    let script = "sleep 1000; :".to_string();
    vec!["sh".into(), "-c".into(), script, s(dir.path()).to_string()]
}

#[test]
fn fifty_concurrent_starts_leave_exactly_one_daemon() {
    let dir = TempDir::new("race50");
    let pidfile = dir.join("d.pid");
    // The barrier: each starter is a shell that reads the FIFO, then execs daemonize. The
    // test holds the FIFO open (O_RDWR: the open does not wait for a reader), so every read
    // waits; once all 50 shells have it open, the test closes it, and every read returns at
    // the same moment (end of file).
    let gate = dir.join("gate");
    mkfifo(&gate);
    let writer = std::fs::OpenOptions::new().read(true).write(true).open(&gate).unwrap();
    let mut args = vec![
        "-c".to_string(),
        "read _ < \"$1\"; shift; exec \"$@\"".to_string(),
        "sh".to_string(),
        s(&gate).to_string(),
        s(&daemonize_bin()).to_string(),
        "-p".to_string(),
        s(&pidfile).to_string(),
        "--".to_string(),
    ];
    args.extend(marked_sleeper(&dir));
    let starters: Vec<_> = (0..50)
        .map(|_| {
            Command::new("sh")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<i32> = starters.iter().map(|c| c.id() as i32).collect();
    let guards: Vec<Spawned> = pids.iter().map(|pid| Spawned::new(*pid)).collect();
    let at_the_gate = || {
        pids.iter()
            .all(|pid| std::fs::read_link(format!("/proc/{pid}/fd/0")).ok() == Some(gate.clone()))
    };
    assert!(wait_until(COMMAND_TIMEOUT, at_the_gate), "not every starter reached the gate");
    assert!(!pidfile.exists(), "a starter passed the gate before it opened");
    drop(writer); // all 50 go
    let outputs = outputs_within(starters, COMMAND_TIMEOUT);
    drop(guards);
    let winners = outputs.iter().filter(|o| o.status.success()).count();
    let pid = read_pidfile(&pidfile);
    let _daemon = SpawnedGroup(pgid_of(pid));
    assert_eq!(winners, 1, "{} starters succeeded", winners);
    for output in outputs.iter().filter(|o| !o.status.success()) {
        assert_eq!(code(&output.status), 1, "{}", describe("losing start", output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("already running (pid {pid})")),
            "{}",
            describe("loser", output)
        );
    }
    assert_eq!(processes_mentioning(dir.path()), vec![pid], "stray processes besides the winner");
    assert!(matches!(Pidfile::status(&pidfile), Status::Running(Some(p)) if p as i32 == pid));
}

/// The outputs of `children`, in order, each collected by a thread; panics when they are not
/// all done within `timeout` (the callers' guards then kill what is left, by pid).
fn outputs_within(children: Vec<std::process::Child>, timeout: Duration) -> Vec<Output> {
    let deadline = std::time::Instant::now() + timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    let count = children.len();
    for (index, child) in children.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || tx.send((index, child.wait_with_output())));
    }
    let mut outputs: Vec<Option<Output>> = (0..count).map(|_| None).collect();
    for _ in 0..count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (index, output) = rx.recv_timeout(left).expect("a starter did not finish in time");
        outputs[index] = Some(output.unwrap());
    }
    outputs.into_iter().map(Option::unwrap).collect()
}

#[test]
fn killed_daemon_reads_as_dead_and_the_next_start_takes_over() {
    let dir = TempDir::new("kill9");
    let pidfile = dir.join("d.pid");
    let output = daemonize(&["-p", s(&pidfile), "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("start", &output));
    let first = read_pidfile(&pidfile);
    let _first = Spawned::new(first);
    kill(first, libc::SIGKILL);
    assert!(wait_gone(first, Duration::from_secs(5)));
    let output = daemonize(&["--status", "-p", s(&pidfile)]);
    assert_eq!(code(&output.status), 1, "{}", describe("status after kill -9", &output));
    let output = daemonize(&["-p", s(&pidfile), "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("restart", &output));
    let second = read_pidfile(&pidfile);
    let _second = SpawnedGroup(pgid_of(second));
    assert_ne!(first, second);
    let output = daemonize(&["--status", "-p", s(&pidfile)]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("running (pid {second})\n"));
}

#[test]
fn garbage_pidfiles_get_clear_answers() {
    let digits = "7".repeat(1 << 20);
    let garbage: [(&str, &[u8]); 7] = [
        ("empty", b""),
        ("huge", b"99999999999999999999\n"),
        ("negative", b"-42\n"),
        ("letters", b"pid\n"),
        ("no newline", b"12345"),
        ("a megabyte of digits", digits.as_bytes()),
        ("binary", b"\x00\xff\x10\n"),
    ];
    for (what, content) in garbage {
        let dir = TempDir::new("garbage");
        let pidfile = dir.join("d.pid");
        std::fs::write(&pidfile, content).unwrap();
        let status = daemonize(&["--status", "-p", s(&pidfile)]);
        // An empty one names nothing: what a daemon leaves when it cannot remove its pidfile
        // (a dropped user, a chroot) and empties it instead. Not running, not dead.
        let (expected, answer) = if content.is_empty() { (3, "not running") } else { (1, "dead") };
        assert_eq!(code(&status.status), expected, "{what}: {}", describe("status", &status));
        let stdout = String::from_utf8_lossy(&status.stdout);
        assert!(stdout.starts_with(answer), "{what}: {stdout}");
        let stop = daemonize(&["--stop", "-p", s(&pidfile)]);
        assert_eq!(code(&stop.status), 0, "{what}: {}", describe("stop", &stop));
        assert!(!pidfile.exists(), "{what}: the stale pidfile was left");
        std::fs::write(&pidfile, content).unwrap();
        let start = daemonize(&["-p", s(&pidfile), "sleep", "1000"]);
        assert!(start.status.success(), "{what}: {}", describe("start", &start));
        let pid = read_pidfile(&pidfile);
        let _guard = SpawnedGroup(pgid_of(pid));
        for output in [&status, &stop, &start] {
            assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"), "{what}");
        }
    }
}

#[test]
fn invoker_killed_mid_start_leaves_no_daemon_without_its_pidfile() {
    // The invoker is SIGKILLed at increasing moments of the start. Whatever the moment, either
    // no daemon runs, or one runs that holds its pidfile with its pid in it.
    for round in 0..30u64 {
        let dir = TempDir::new("killstart");
        let pidfile = dir.join("d.pid");
        let mut args = vec!["-p".to_string(), s(&pidfile).to_string(), "--".to_string()];
        args.extend(marked_sleeper(&dir));
        let mut invoker =
            Command::new(daemonize_bin()).args(&args).stdin(Stdio::null()).spawn().unwrap();
        let _invoker_guard = Spawned::new(invoker.id() as i32);
        // A delay that sweeps the start (which takes about a millisecond): the injected fault,
        // not a synchronisation.
        std::thread::sleep(Duration::from_micros(round * 100));
        kill(invoker.id() as i32, libc::SIGKILL);
        let _ = invoker.wait();
        // Once the start has run its course (the intermediate process gone, the daemon exec'd
        // or dead), either nothing runs, or exactly one daemon that holds its pidfile.
        let named = |pid: i32| matches!(Pidfile::status(&pidfile), Status::Running(Some(p)) if p as i32 == pid);
        let consistent = || match processes_mentioning(dir.path())[..] {
            [] => true,
            [daemon] => named(daemon),
            _ => false,
        };
        let settled = wait_until(Duration::from_secs(10), consistent);
        let strays = processes_mentioning(dir.path());
        let _guards: Vec<SpawnedGroup> =
            strays.iter().filter_map(|pid| try_pgid(*pid).map(SpawnedGroup)).collect();
        assert!(
            settled,
            "round {round}: processes {strays:?}, pidfile {:?}",
            Pidfile::status(&pidfile)
        );
    }
}

#[test]
fn too_few_descriptors_fail_cleanly_or_start_a_proper_daemon() {
    // Below 4 the dynamic loader itself fails, before daemonize runs. From 4 up, each limit
    // either fails (the start needs a few descriptors: the pidfile, /dev/null, the report
    // channel) with one line naming the step, or starts a proper daemon.
    let mut failures = Vec::new();
    for limit in 4..=9 {
        let dir = TempDir::new("emfile");
        let pidfile = dir.join("d.pid");
        let script = format!(
            "ulimit -n {limit} && exec {} -p {} -- sh -c 'sleep 1000; :' {}",
            daemonize_bin().display(),
            pidfile.display(),
            dir.path().display()
        );
        let output = run(Command::new("sh").args(["-c", &script]));
        let shown = describe(&script, &output);
        if output.status.success() {
            let pid = read_pidfile(&pidfile);
            let _daemon = SpawnedGroup(pgid_of(pid));
            assert!(
                matches!(Pidfile::status(&pidfile), Status::Running(Some(p)) if p as i32 == pid),
                "limit {limit}: the daemon does not hold its pidfile: {shown}"
            );
            assert_eq!(processes_mentioning(dir.path()), vec![pid], "limit {limit}: {shown}");
            let fds: Vec<(i32, PathBuf)> = proc_fds(pid);
            let null = PathBuf::from("/dev/null");
            let expected = vec![(0, null.clone()), (1, null.clone()), (2, null), (3, pidfile)];
            assert_eq!(fds, expected, "limit {limit}: {shown}");
            continue;
        }
        failures.push(limit);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("daemonize: cannot "), "limit {limit}: {shown}");
        assert!(stderr.contains("Too many open files"), "limit {limit}: {shown}");
        assert_eq!(stderr.lines().count(), 1, "limit {limit}: not one line: {shown}");
        assert!(!pidfile.exists(), "limit {limit}: pidfile left: {shown}");
        assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "limit {limit}: {shown}");
    }
    // Four descriptors cannot be enough: the failure path above was taken.
    assert!(failures.contains(&4), "limits that failed: {failures:?}");
}

#[test]
fn full_filesystem_for_the_pidfile_fails_cleanly() {
    let dir = TempDir::new("enospc");
    let Some(small) =
        Tmpfs::mount("full_filesystem_for_the_pidfile_fails_cleanly", &dir, "small", "16k")
    else {
        return;
    };
    let mount = small.path().to_path_buf();
    let fill = run(Command::new("dd").args([
        "if=/dev/zero",
        &format!("of={}/fill", mount.display()),
        "bs=4k",
    ]));
    assert!(!fill.status.success(), "the tmpfs did not fill up");
    let pidfile = mount.join("d.pid");
    let args = ["-p", s(&pidfile), "--", "sh", "-c", "sleep 1000; :", s(dir.path())];
    let output = daemonize(&args);
    let shown = describe(&show(&args), &output);
    assert_eq!(code(&output.status), 6, "{shown}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("No space left on device"), "{shown}");
    assert!(!pidfile.exists(), "pidfile left: {shown}");
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "{shown}");
}

/// Whether `pid` runs with no signal pending: a signal sent to it is pending (SigPnd/ShdPnd
/// in /proc) from the moment `kill(2)` returns until it is delivered, and SIGTERM's delivery
/// ends a `sleep`. So "running, nothing pending" right after a command means it sent nothing.
fn running_unsignalled(pid: i32) -> bool {
    alive(pid) && {
        let status = proc_status(pid);
        status["SigPnd"] == "0000000000000000" && status["ShdPnd"] == "0000000000000000"
    }
}

#[test]
fn retry_timeouts_over_ten_years_are_refused_before_any_signal() {
    let dir = TempDir::new("retry-huge");
    let pidfile = dir.join("d.pid");
    let output = daemonize(&["-p", s(&pidfile), "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("start", &output));
    let pid = read_pidfile(&pidfile);
    let _daemon = SpawnedGroup(pgid_of(pid));
    // These panicked ("overflow when adding duration to instant") after sending SIGTERM.
    for retry in ["TERM/1e19", "1e19", "TERM/5/KILL/315360001"] {
        let args = ["--stop", "-p", s(&pidfile), "--retry", retry];
        let output = daemonize(&args);
        let shown = describe(&show(&args), &output);
        assert_eq!(code(&output.status), 3, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("daemonize: invalid --retry"), "{shown}");
        assert!(stderr.contains("longer than ten years"), "{shown}");
        assert_eq!(stderr.lines().count(), 1, "not one line: {shown}");
        assert!(running_unsignalled(pid), "the daemon was signalled: {shown}");
    }
    // The longest accepted timeout is followed: SIGTERM ends the sleep at once.
    let args = ["--stop", "-p", s(&pidfile), "--retry", "TERM/315360000"];
    let output = daemonize(&args);
    let shown = describe(&show(&args), &output);
    assert_eq!(code(&output.status), 0, "{shown}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("stopped (pid {pid})\n"));
    assert!(!alive(pid), "{shown}");
}

/// Mounts a 16 KiB tmpfs at `dir/full` and fills it: with `inodes`, no file can be created
/// (the one inode left after the root is used up); else every block is used, `keep` (a file
/// created first, holding `before\n`) still exists. `None` when skipped (not root).
fn full_tmpfs(test: &str, dir: &TempDir, inodes: bool) -> Option<Tmpfs> {
    let options = if inodes { "size=16k,nr_inodes=2" } else { "size=16k" };
    let tmpfs = Tmpfs::mount_with_options(test, dir, "full", options)?;
    if inodes {
        std::fs::write(tmpfs.path().join("fill"), b"").unwrap();
        let more = std::fs::write(tmpfs.path().join("more"), b"");
        assert_eq!(more.unwrap_err().raw_os_error(), Some(libc::ENOSPC), "inodes left");
    } else {
        std::fs::write(tmpfs.path().join("keep"), b"before\n").unwrap();
        let fill = tmpfs.path().join("fill");
        let fill = run(Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", fill.display())));
        assert!(!fill.status.success(), "the tmpfs did not fill up");
    }
    Some(tmpfs)
}

#[test]
fn output_file_that_cannot_be_created_on_a_full_filesystem_fails_cleanly() {
    let test = "output_file_that_cannot_be_created_on_a_full_filesystem_fails_cleanly";
    let dir = TempDir::new("enospc-out");
    let Some(full) = full_tmpfs(test, &dir, true) else { return };
    let pidfile = dir.join("d.pid");
    let log = full.path().join("out.log");
    let args = ["-p", s(&pidfile), "-o", s(&log), "--", "sh", "-c", "sleep 1000; :", s(dir.path())];
    let output = daemonize(&args);
    let shown = describe(&show(&args), &output);
    assert_eq!(code(&output.status), 5, "{shown}");
    let expected =
        format!("daemonize: cannot open output file {}: No space left on device\n", log.display());
    assert_eq!(String::from_utf8_lossy(&output.stderr), expected, "{shown}");
    assert!(!pidfile.exists(), "pidfile left: {shown}");
    assert!(!log.exists(), "{shown}");
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "{shown}");
}

#[test]
fn output_file_on_a_full_filesystem_gives_the_command_enospc_and_keeps_what_it_held() {
    // A full file system is no reason to refuse a start: the output file exists, so it opens
    // (for appending, -a, which must not lose what it holds), and the daemon starts. Its
    // writes then fail with ENOSPC in the command itself, which sees the real error.
    let test = "output_file_on_a_full_filesystem_gives_the_command_enospc_and_keeps_what_it_held";
    let dir = TempDir::new("enospc-write");
    let Some(full) = full_tmpfs(test, &dir, false) else { return };
    let pidfile = dir.join("d.pid");
    let log = full.path().join("keep");
    let errors = dir.join("err.log");
    let script = "dd if=/dev/zero bs=4096 count=1; echo \"dd exit $?\" >&2; sleep 1000; :";
    let args = [
        "-p",
        s(&pidfile),
        "-a",
        "-o",
        s(&log),
        "-e",
        s(&errors),
        "--",
        "sh",
        "-c",
        script,
        s(dir.path()),
    ];
    let output = daemonize(&args);
    let shown = describe(&show(&args), &output);
    assert!(output.status.success(), "{shown}");
    let pid = read_pidfile(&pidfile);
    let _daemon = SpawnedGroup(pgid_of(pid));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap(), log, "{shown}");
    let reported = || std::fs::read_to_string(&errors).unwrap_or_default().contains("dd exit");
    assert!(wait_until(COMMAND_TIMEOUT, reported), "the command never reported: {shown}");
    let reported = std::fs::read_to_string(&errors).unwrap();
    assert!(reported.contains("No space left on device"), "{reported}");
    assert!(reported.contains("dd exit 1\n"), "{reported}");
    assert!(std::fs::read(&log).unwrap().starts_with(b"before\n"), "the output file lost data");
    let status = daemonize(&["--status", "-p", s(&pidfile)]);
    assert_eq!(code(&status.status), 0, "{}", describe("status", &status));
}

#[test]
fn pidfile_in_a_read_only_directory_fails_cleanly() {
    // As an unprivileged user (setpriv, when the tests run as root): root would write anyway.
    let dir = TempDir::new("ro-piddir");
    let readonly = dir.join("ro");
    std::fs::create_dir(&readonly).unwrap();
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o555)).unwrap();
    let pidfile = readonly.join("x.pid");
    let args = ["-p", s(&pidfile), "--", "sh", "-c", "sleep 1000; :", s(dir.path())];
    let output = run(as_unprivileged(&daemonize_bin()).args(args));
    let shown = describe(&show(&args), &output);
    assert_eq!(code(&output.status), 6, "{shown}");
    let expected =
        format!("daemonize: cannot open pidfile {}: Permission denied\n", pidfile.display());
    assert_eq!(String::from_utf8_lossy(&output.stderr), expected, "{shown}");
    assert!(!pidfile.exists(), "pidfile left: {shown}");
    assert_eq!(std::fs::read_dir(&readonly).unwrap().count(), 0, "{shown}");
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "{shown}");
}

#[test]
fn pidfile_write_past_the_file_size_limit_fails_cleanly() {
    // With RLIMIT_FSIZE 0 the pid cannot be written: EFBIG, reported, instead of a daemon dying
    // of SIGXFSZ in silence while daemonize says 0.
    for mode in ["", "--foreground"] {
        let dir = TempDir::new("fsize");
        let pidfile = dir.join("d.pid");
        // The daemon's command line names the test's directory, for processes_mentioning.
        let script = format!(
            "ulimit -f 0 && exec {} {mode} -p {} sh -c 'sleep 1000; :' {}",
            daemonize_bin().display(),
            pidfile.display(),
            dir.path().display()
        );
        let output = run(Command::new("sh").args(["-c", &script]));
        let shown = describe(&script, &output);
        assert_eq!(code(&output.status), 6, "{shown}");
        let message =
            format!("daemonize: cannot write pidfile {}: File too large\n", pidfile.display());
        assert_eq!(String::from_utf8_lossy(&output.stderr), message, "{shown}");
        assert!(!pidfile.exists(), "pidfile left behind: {shown}");
        assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "{shown}");
    }
}
