//! The command in everyday use (issue 9): log rotation with SIGHUP, signals for COMMAND
//! (`--send`, `--forward`), stdout and stderr to one file, a relative COMMAND, privilege drop
//! and logs, and messages for people.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// A daemon started by `daemonize ARGS` (which must succeed), guarded by its process group and,
/// under a supervisor, COMMAND's group (named by `child_pidfile`).
struct Started {
    pid: i32,
    command: String,
    _groups: Vec<SpawnedGroup>,
}

impl Started {
    fn new(args: &[&str], pidfile: &Path, child_pidfile: Option<&Path>) -> Started {
        Started::from_output(daemonize(args), args, pidfile, child_pidfile)
    }

    fn from_output(
        output: Output,
        args: &[&str],
        pidfile: &Path,
        child_pidfile: Option<&Path>,
    ) -> Started {
        let command = format!("daemonize {}", show(args));
        let mut groups: Vec<SpawnedGroup> = guard_pidfile(pidfile).into_iter().collect();
        if let Some(child_pidfile) = child_pidfile {
            wait_until(Duration::from_secs(5), || try_pidfile(child_pidfile).is_some());
            groups.extend(guard_pidfile(child_pidfile));
        }
        assert!(output.status.success(), "{}", describe(&command, &output));
        let pid = try_pidfile(pidfile).unwrap_or_else(|| panic!("no pidfile: {command}"));
        Started { pid, command, _groups: groups }
    }

    /// SIGTERM, then waits (bounded) for the daemon to be gone.
    fn stop(&self) {
        assert!(kill(self.pid, libc::SIGTERM), "{} is gone: {}", self.pid, self.command);
        assert!(wait_gone(self.pid, HANDSHAKE), "{} still runs: {}", self.pid, self.command);
    }
}

/// Writes a line into the FIFO a COMMAND waits on; fails (no blocking) when nobody reads it.
fn release(fifo: &Path) -> std::io::Result<()> {
    let mut fifo = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo)?;
    fifo.write_all(b"go\n")
}

/// A script writing `n1`..`n400`, one per line, that waits after `n200` until a line comes
/// through `fifo`, then sleeps. It does not handle SIGHUP (the default kills it).
fn numbered_writer(dir: &TempDir, fifo: &Path) -> PathBuf {
    let script = dir.join("writer.sh");
    let text = format!(
        "#!/bin/sh\ni=1\nwhile [ $i -le 400 ]; do\n  echo \"n$i\"\n  \
         if [ $i = 200 ]; then read line < {}; fi\n  i=$((i+1))\ndone\nexec sleep 1000000\n",
        fifo.display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn hup_rotation_keeps_all_400_lines_and_command_running() {
    let dir = TempDir::new("hup-rotation");
    let (pidfile, child_pidfile) = (dir.join("s.pid"), dir.join("c.pid"));
    let (log, rotated, fifo) = (dir.join("app.log"), dir.join("app.log.1"), dir.join("go"));
    mkfifo(&fifo);
    let writer = numbered_writer(&dir, &fifo);
    let args = [
        "--supervise",
        "-p",
        path_str(&pidfile),
        "--child-pidfile",
        path_str(&child_pidfile),
        "-o",
        path_str(&log),
        "--",
        path_str(&writer),
    ];
    let started = Started::new(&args, &pidfile, Some(&child_pidfile));
    let child = try_pidfile(&child_pidfile).expect("the child pidfile names COMMAND");
    assert!(wait_until(HANDSHAKE, || lines_of(&log).len() == 200), "{:?}", lines_of(&log));

    // logrotate: rename, then SIGHUP; the reopen creates the file anew.
    std::fs::rename(&log, &rotated).unwrap();
    assert!(kill(started.pid, libc::SIGHUP));
    assert!(wait_until(HANDSHAKE, || log.exists()), "no reopen after SIGHUP: {}", started.command);
    let released = release(&fifo);
    assert!(
        released.is_ok(),
        "COMMAND no longer reads its FIFO ({released:?}): SIGHUP killed it? {}",
        started.command
    );
    let last = || lines_of(&log).last().is_some_and(|line| line == "n400");
    assert!(wait_until(HANDSHAKE, last), "old {:?} new {:?}", lines_of(&rotated), lines_of(&log));

    let all: Vec<String> = lines_of(&rotated).into_iter().chain(lines_of(&log)).collect();
    let expected: Vec<String> = (1..=400).map(|n| format!("n{n}")).collect();
    assert_eq!(all, expected, "lines lost, repeated or torn across the rotation");
    assert_eq!(lines_of(&rotated).len(), 200, "what was written before the HUP stays there");
    assert!(alive(child), "SIGHUP reached COMMAND, which does not handle it");
    assert_eq!(try_pidfile(&child_pidfile), Some(child), "COMMAND was restarted");
    assert!(alive(started.pid), "the supervisor exited");
    started.stop();
}

/// A COMMAND that traps HUP and USR1 by printing their names, then says `ready`.
const TRAPPING: &str = "trap 'echo HUP' HUP; trap 'echo USR1' USR1; echo ready; \
                        sleep 1000000 & while :; do wait $!; done";

#[test]
fn send_passes_a_signal_to_command_and_plain_hup_only_reopens() {
    let dir = TempDir::new("send-supervised");
    let (pidfile, child_pidfile, log) = (dir.join("s.pid"), dir.join("c.pid"), dir.join("out"));
    let args = [
        "--supervise",
        "-p",
        path_str(&pidfile),
        "--child-pidfile",
        path_str(&child_pidfile),
        "-o",
        path_str(&log),
        "--",
        "sh",
        "-c",
        TRAPPING,
    ];
    let started = Started::new(&args, &pidfile, Some(&child_pidfile));
    let has = |word: &str| lines_of(&log).iter().any(|line| line == word);
    assert!(wait_until(HANDSHAKE, || has("ready")), "{:?}", lines_of(&log));
    // A plain SIGHUP only reopens the log; USR1, sent after it, shows it was not passed on (a
    // pending HUP is read from the signalfd, and handled by sh, before USR1).
    assert!(kill(started.pid, libc::SIGHUP));
    let send = |signal: &str| daemonize(&["--send", signal, "-p", path_str(&pidfile)]);
    let output = send("USR1");
    assert_eq!(code(&output.status), 0, "{}", describe("daemonize --send USR1", &output));
    assert!(wait_until(HANDSHAKE, || has("USR1")), "--send USR1: {:?}", lines_of(&log));
    assert!(!has("HUP"), "a plain SIGHUP reached COMMAND: {:?}", lines_of(&log));
    let output = send("HUP");
    assert_eq!(code(&output.status), 0, "{}", describe("daemonize --send HUP", &output));
    assert!(wait_until(HANDSHAKE, || has("HUP")), "--send HUP: {:?}", lines_of(&log));
    assert!(alive(started.pid), "the supervisor exited");
    started.stop();
    let output = send("HUP");
    assert_eq!(code(&output.status), 1, "{}", describe("--send HUP when stopped", &output));
    assert!(!child_pidfile.exists() && !pidfile.exists(), "a pidfile was left behind");
}

#[test]
fn send_signals_an_exec_mode_daemon_directly() {
    let dir = TempDir::new("send-exec");
    let (pidfile, log) = (dir.join("e.pid"), dir.join("out"));
    let args = ["-p", path_str(&pidfile), "-o", path_str(&log), "--", "sh", "-c", TRAPPING];
    let started = Started::new(&args, &pidfile, None);
    let has = |word: &str| lines_of(&log).iter().any(|line| line == word);
    assert!(wait_until(HANDSHAKE, || has("ready")), "{:?}", lines_of(&log));
    let output = daemonize(&["--send", "HUP", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("daemonize --send HUP", &output));
    assert!(wait_until(HANDSHAKE, || has("HUP")), "{:?}", lines_of(&log));
    started.stop();
}

#[test]
fn a_supervisor_without_log_files_passes_hup_on() {
    let dir = TempDir::new("hup-no-logs");
    let (pidfile, child_pidfile, log) = (dir.join("s.pid"), dir.join("c.pid"), dir.join("out"));
    let script = format!(
        "trap 'echo HUP >> {0}' HUP; echo ready >> {0}; sleep 1000000 & while :; do wait $!; done",
        log.display()
    );
    let args = [
        "--supervise",
        "-p",
        path_str(&pidfile),
        "--child-pidfile",
        path_str(&child_pidfile),
        "--",
        "sh",
        "-c",
        &script,
    ];
    let started = Started::new(&args, &pidfile, Some(&child_pidfile));
    let has = |word: &str| lines_of(&log).iter().any(|line| line == word);
    assert!(wait_until(HANDSHAKE, || has("ready")), "{:?}", lines_of(&log));
    assert!(kill(started.pid, libc::SIGHUP));
    assert!(wait_until(HANDSHAKE, || has("HUP")), "SIGHUP was not passed on: {:?}", lines_of(&log));
    started.stop();
}

/// Runs `daemonize ARGS` (which must succeed) and waits until the process its pidfile names is
/// gone (an exec'd COMMAND leaves its pidfile, stale, behind; a supervisor removes it). Returns
/// the guard, taken at once (COMMAND may be done, and the pidfile gone, already), and the
/// command line with its output for messages.
fn run_to_end(args: &[&str], pidfile: &Path) -> (Option<SpawnedGroup>, String) {
    let output = daemonize(args);
    let guard = guard_pidfile(pidfile);
    let shown = describe(&format!("daemonize {}", show(args)), &output);
    assert!(output.status.success(), "{shown}");
    let pid = try_pidfile(pidfile);
    assert!(pid.is_none_or(|pid| wait_gone(pid, HANDSHAKE)), "still running: {shown}");
    (guard, shown)
}

/// The lines of `log` that COMMAND wrote (not daemonize's own `daemonize: ` messages).
fn command_lines(log: &Path) -> Vec<String> {
    lines_of(log).into_iter().filter(|line| !line.starts_with("daemonize: ")).collect()
}

/// `o1 e1 o2 e2 …`: COMMAND's stdout and stderr lines, interleaved.
const INTERLEAVED: &str =
    "i=1; while [ $i -le 100 ]; do echo \"o$i\"; echo \"e$i\" >&2; i=$((i+1)); done";

#[test]
fn stdout_and_stderr_to_one_file_keep_every_line_in_order() {
    let expected: Vec<String> =
        (1..=100).flat_map(|n| [format!("o{n}"), format!("e{n}")]).collect();
    for supervise in [false, true] {
        for append in [false, true] {
            for through_link in [false, true] {
                let dir = TempDir::new("one-file");
                let (pidfile, log, link) = (dir.join("d.pid"), dir.join("out"), dir.join("link"));
                std::fs::write(&log, "before\n").unwrap();
                std::os::unix::fs::symlink(&log, &link).unwrap();
                let err = if through_link { &link } else { &log };
                let mut args = vec!["-p", path_str(&pidfile), "-o", path_str(&log)];
                args.extend(["-e", path_str(err)]);
                if supervise {
                    args.push("--supervise");
                }
                if append {
                    args.push("-a");
                }
                args.extend(["--", "sh", "-c", INTERLEAVED]);
                let (_guard, shown) = run_to_end(&args, &pidfile);
                let lines = command_lines(&log);
                let mut wanted = expected.clone();
                if append || supervise {
                    wanted.insert(0, "before".into()); // a supervisor always appends
                }
                assert_eq!(lines, wanted, "{shown}");
            }
        }
    }
}

/// -o and -e naming one file that does not exist yet, in spellings only the file system can
/// match (a dangling symbolic link, a `..`): opened once, every line intact and in order.
#[test]
fn one_file_not_there_yet_named_two_ways_keeps_every_line() {
    let expected: Vec<String> =
        (1..=100).flat_map(|n| [format!("o{n}"), format!("e{n}")]).collect();
    for supervise in [false, true] {
        for spelling in ["link", "sub/../out"] {
            let dir = TempDir::new("one-new-file");
            let (pidfile, log) = (dir.join("d.pid"), dir.join("out"));
            std::fs::create_dir(dir.join("sub")).unwrap();
            std::os::unix::fs::symlink("out", dir.join("link")).unwrap();
            let err = dir.join(spelling);
            let mut args = vec!["-p", path_str(&pidfile), "-o", path_str(&log)];
            args.extend(["-e", path_str(&err)]);
            if supervise {
                args.push("--supervise");
            }
            args.extend(["--", "sh", "-c", INTERLEAVED]);
            let (_guard, shown) = run_to_end(&args, &pidfile);
            wait_until(HANDSHAKE, || command_lines(&log).len() >= expected.len());
            let lines = command_lines(&log);
            assert_eq!(lines, expected, "{shown}");
        }
    }
}

/// A start refused because the daemon already runs leaves its log alone (-o F -e F without
/// -a used to truncate F before the pidfile lock was tried) and leaves no new file behind.
#[test]
fn a_start_refused_as_running_touches_no_log_and_leaves_no_file() {
    for supervise in [false, true] {
        let dir = TempDir::new("refused-start-logs");
        let (pidfile, log) = (dir.join("d.pid"), dir.join("app.log"));
        let mut args = vec!["-p", path_str(&pidfile), "-o", path_str(&log), "-e", path_str(&log)];
        if supervise {
            args.push("--supervise");
        }
        let mut first = args.clone();
        first.extend(["--", "sh", "-c", "echo first-line; exec sleep 1000"]);
        let started = Started::new(&first, &pidfile, None);
        assert!(wait_until(HANDSHAKE, || lines_of(&log).contains(&"first-line".to_string())));
        let (fresh_out, fresh_err) = (dir.join("new.out"), dir.join("new.err"));
        for second in [
            args.clone(),
            vec!["-p", path_str(&pidfile), "-o", path_str(&fresh_out), "-e", path_str(&fresh_err)],
        ] {
            let mut second = second;
            if supervise && !second.contains(&"--supervise") {
                second.push("--supervise");
            }
            second.extend(["--", "sh", "-c", "echo second-line"]);
            let output = daemonize(&second);
            let shown = describe(&format!("daemonize {}", show(&second)), &output);
            assert_eq!(code(&output.status), 1, "{shown}");
            assert_eq!(lines_of(&log), ["first-line"], "the running daemon's log: {shown}");
            assert!(!fresh_out.exists() && !fresh_err.exists(), "left behind: {shown}");
        }
        started.stop();
    }
}

/// A supervised start that fails after opening its first log file (the second cannot be
/// opened, or the child pidfile cannot be locked) removes the file it created.
#[test]
fn a_failed_supervised_start_removes_the_log_file_it_created() {
    let dir = TempDir::new("failed-start-logs");
    let (pidfile, log) = (dir.join("d.pid"), dir.join("new.log"));
    let missing = dir.join("no-such-dir/x");
    let (pidfile, log, missing) = (path_str(&pidfile), path_str(&log), path_str(&missing));
    for failing in [["-e", missing], ["--child-pidfile", missing]] {
        let mut args = vec!["--supervise", "-p", pidfile, "-o", log];
        args.extend(failing);
        args.extend(["--", "sleep", "1000"]);
        let output = daemonize(&args);
        let _guard = guard_pidfile(Path::new(pidfile));
        let shown = describe(&format!("daemonize {}", show(&args)), &output);
        assert!(!output.status.success(), "{shown}");
        assert!(!Path::new(log).exists(), "log file left behind: {shown}");
        assert!(!Path::new(pidfile).exists(), "pidfile left behind: {shown}");
    }
}

/// A foreground supervisor whose COMMAND cannot be started (not found) exits 127 and leaves
/// no child pidfile behind: nobody else is there to remove it.
#[test]
fn a_foreground_supervisor_that_cannot_start_command_removes_the_child_pidfile() {
    let dir = TempDir::new("fg-no-command");
    let child_pidfile = dir.join("c.pid");
    let missing = dir.join("no-such-program");
    let args = ["--supervise", "--foreground", "--child-pidfile", path_str(&child_pidfile)];
    let mut args = args.to_vec();
    args.extend(["--", path_str(&missing)]);
    let output = daemonize(&args);
    let shown = describe(&format!("daemonize {}", show(&args)), &output);
    assert_eq!(code(&output.status), 127, "{shown}");
    assert!(!child_pidfile.exists(), "child pidfile left behind: {shown}");
}

/// `DIR/bin/child.sh`, which appends `ran` to `DIR/ran` and exits 1.
fn failing_child(dir: &TempDir) -> PathBuf {
    std::fs::create_dir(dir.join("bin")).unwrap();
    let script = dir.join("bin/child.sh");
    let text = format!("#!/bin/sh\necho ran >> {}\nexit 1\n", dir.join("ran").display());
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_relative_command_is_found_from_the_invokers_directory_in_every_mode() {
    let dir = TempDir::new("relative-command");
    failing_child(&dir);
    let ran = dir.join("ran");
    let runs = || lines_of(&ran).len();
    for (mode, program) in [("exec", "./bin/child.sh"), ("supervise", "bin/child.sh")] {
        let pidfile = dir.join(&format!("{mode}.pid"));
        let mut args = vec!["-p", path_str(&pidfile)];
        if mode == "supervise" {
            // The first start and two restarts: each one finds bin/child.sh where it was.
            let restarts = ["--supervise", "--restart", "on-failure", "--restart-delay", "0.1"];
            args.extend(restarts);
            args.extend(["--max-restarts", "2"]);
        }
        args.push(program);
        let before = runs();
        let output = run(Command::new(daemonize_bin()).args(&args).current_dir(dir.path()));
        let _guard = guard_pidfile(&pidfile);
        let shown =
            describe(&format!("cd {} && daemonize {}", dir.path().display(), show(&args)), &output);
        assert!(output.status.success(), "{shown}");
        let wanted = if mode == "exec" { before + 1 } else { before + 3 };
        assert!(wait_until(HANDSHAKE, || runs() == wanted), "ran {} times: {shown}", runs());
        let pid = try_pidfile(&pidfile);
        assert!(pid.is_none_or(|pid| wait_gone(pid, HANDSHAKE)), "still running: {shown}");
    }
}

#[test]
fn options_of_another_mode_are_refused_naming_the_mode() {
    let dir = TempDir::new("mode-options");
    let pidfile = dir.join("d.pid");
    let p = path_str(&pidfile);
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["-p", p, "--restart", "always", "sleep", "1"],
            2,
            "--restart is meaningful only with --supervise",
        ),
        (
            &["-p", p, "--max-restarts", "3", "sleep", "1"],
            2,
            "--max-restarts is meaningful only with --supervise",
        ),
        (&["-p", p, "--retry", "3", "sleep", "1"], 2, "--retry is meaningful only with --stop"),
        (
            &["-p", p, "--signal", "KILL", "sleep", "1"],
            2,
            "--signal is meaningful only with --stop",
        ),
        (
            &["--stop", "-p", p, "--restart", "always"],
            3,
            "--restart is meaningful only with --supervise",
        ),
        (
            &["-p", p, "--child-pidfile", p, "sleep", "1"],
            2,
            "--child-pidfile is meaningful only with --supervise or --stop",
        ),
    ];
    for (args, expected, message) in cases {
        let output = daemonize(args);
        let shown = describe(&format!("daemonize {}", show(args)), &output);
        assert_eq!(code(&output.status), expected, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(&format!("daemonize: {message}")), "{shown}");
        assert_eq!(stderr.lines().count(), 1, "{shown}");
        assert!(!pidfile.exists(), "{shown}");
    }
}

#[test]
fn a_ready_timeout_reads_the_same_in_both_modes() {
    let dir = TempDir::new("ready-timeout-message");
    let marker = path_str(dir.path());
    for supervise in [false, true] {
        let pidfile = dir.join("d.pid");
        let mut args = vec!["-p", path_str(&pidfile), "--wait-ready", "fd:3"];
        args.extend(["--ready-timeout", "1", "--kill-after", "5"]);
        if supervise {
            args.push("--supervise");
        }
        // The directory in COMMAND's arguments marks its processes.
        args.extend(["--", "sh", "-c", "exec sleep 1000", marker]);
        let output = daemonize(&args);
        let shown = describe(&format!("daemonize {}", show(&args)), &output);
        assert_eq!(code(&output.status), 8, "{shown}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "daemonize: sh was not ready after 1 s; stopped it with SIGTERM\n",
            "{shown}"
        );
        assert!(!pidfile.exists(), "pidfile left behind: {shown}");
        let left = || processes_mentioning(dir.path()).is_empty();
        assert!(
            wait_until(HANDSHAKE, left),
            "left {:?}: {shown}",
            processes_mentioning(dir.path())
        );
    }
}

/// The unprivileged user CI creates for credential tests.
const USER: &str = "daemonctx-test";

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let user = nix::unistd::User::from_name(name).ok()??;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

#[test]
fn rotation_under_a_dropped_user_reports_a_failed_reopen_and_stop_leaves_nothing() {
    let test = "rotation_under_a_dropped_user_reports_a_failed_reopen_and_stop_leaves_nothing";
    if skip_unless_root(test) {
        return;
    }
    let Some((uid, gid)) = user_ids(USER) else {
        skip(&format!("{test} needs user {USER}"));
        return;
    };
    let dir = TempDir::new("rotation-as-user");
    // /var/log/app/ as packages make it: root's, not writable by the service's user.
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (log, rotated, fifo) = (logs.join("app.log"), logs.join("app.log.1"), dir.join("go"));
    let created_for_user = |path: &Path| {
        std::fs::write(path, "").unwrap();
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
    };
    created_for_user(&log);
    mkfifo(&fifo);
    std::os::unix::fs::chown(&fifo, Some(uid), Some(gid)).unwrap();
    let writer = numbered_writer(&dir, &fifo);
    let (pidfile, child_pidfile) = (dir.join("s.pid"), dir.join("c.pid"));
    let args = [
        "--supervise",
        "-u",
        USER,
        "-p",
        path_str(&pidfile),
        "--child-pidfile",
        path_str(&child_pidfile),
        "-o",
        path_str(&log),
        "--",
        path_str(&writer),
    ];
    let started = Started::new(&args, &pidfile, Some(&child_pidfile));
    assert!(wait_until(HANDSHAKE, || lines_of(&log).len() == 200), "{:?}", lines_of(&log));

    // Rotated without logrotate's `create`: the user cannot create app.log in root's directory.
    std::fs::rename(&log, &rotated).unwrap();
    assert!(kill(started.pid, libc::SIGHUP));
    let reported = || {
        lines_of(&rotated).iter().any(|line| {
            line.starts_with(&format!(
                "daemonize: cannot reopen {}: Permission denied",
                log.display()
            ))
        })
    };
    assert!(wait_until(HANDSHAKE, reported), "no report in the old file: {:?}", lines_of(&rotated));
    assert!(!log.exists(), "{}", started.command);

    // With `create 0640 USER USER`, logrotate makes the new file first: the reopen works.
    created_for_user(&log);
    assert!(kill(started.pid, libc::SIGHUP));
    // The supervisor relays output ready in the same wake-up before it reads its signals: the
    // lines go to the new file once it holds that file open, not as soon as SIGHUP is sent.
    let reopened = || proc_fds(started.pid).iter().any(|(_, path)| path == &log);
    assert!(wait_until(HANDSHAKE, reopened), "no reopen: {:?}", proc_fds(started.pid));
    release(&fifo).expect("COMMAND reads its FIFO");
    let last = || lines_of(&log).last().is_some_and(|line| line == "n400");
    assert!(wait_until(HANDSHAKE, last), "old {:?} new {:?}", lines_of(&rotated), lines_of(&log));
    let numbers: Vec<u64> = [&rotated, &log]
        .iter()
        .flat_map(|path| numbered(&std::fs::read_to_string(path).unwrap(), "n"))
        .collect();
    assert_eq!(numbers, (1..=400).collect::<Vec<u64>>(), "lines lost across the rotations");

    let output = daemonize(&[
        "--stop",
        "-p",
        path_str(&pidfile),
        "--child-pidfile",
        path_str(&child_pidfile),
    ]);
    assert_eq!(code(&output.status), 0, "{}", describe("daemonize --stop", &output));
    assert!(wait_gone(started.pid, HANDSHAKE));
    assert!(!pidfile.exists(), "the pidfile was left behind");
    assert!(!child_pidfile.exists(), "the child pidfile was left behind");
}

#[test]
fn a_failed_reopen_is_reported_in_the_old_file_and_to_syslog() {
    let dir = TempDir::new("reopen-failure");
    let (pidfile, child_pidfile) = (dir.join("s.pid"), dir.join("c.pid"));
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let (log, fifo) = (logs.join("app.log"), dir.join("go"));
    mkfifo(&fifo);
    let writer = numbered_writer(&dir, &fifo);
    let socket_path = dir.join("log.sock");
    let syslog = UnixDatagram::bind(&socket_path).unwrap();
    syslog.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    // stdout to the file, stderr (and the supervisor's messages) to syslog.
    let args = [
        "--supervise",
        "-p",
        path_str(&pidfile),
        "--child-pidfile",
        path_str(&child_pidfile),
        "-o",
        path_str(&log),
        "--syslog",
        "--syslog-socket",
        path_str(&socket_path),
        "--",
        path_str(&writer),
    ];
    let started = Started::new(&args, &pidfile, Some(&child_pidfile));
    assert!(wait_until(HANDSHAKE, || lines_of(&log).len() == 200), "{:?}", lines_of(&log));
    // The whole directory goes away: the reopen cannot create app.log (ENOENT), as it cannot
    // in a directory the supervisor's user may not write to (EACCES, see the root test).
    let moved = dir.join("logs.old");
    std::fs::rename(&logs, &moved).unwrap();
    let old = moved.join("app.log");
    assert!(kill(started.pid, libc::SIGHUP));
    let expected = format!("cannot reopen {}: No such file or directory", log.display());
    let mut received = Vec::new();
    let heard = wait_until(HANDSHAKE, || {
        let mut buf = [0u8; 8192];
        if let Ok(n) = syslog.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        received.iter().any(|message| message.contains(&expected))
    });
    assert!(heard, "syslog did not hear {expected:?}: {received:?}");
    assert_eq!(received.iter().filter(|m| m.contains(&expected)).count(), 1, "{received:?}");
    let in_old = |line: &String| line.starts_with(&format!("daemonize: {expected}"));
    assert!(lines_of(&old).iter().any(in_old), "not in the old file: {:?}", lines_of(&old));
    // Output goes on into the old file.
    release(&fifo).expect("COMMAND reads its FIFO");
    let last = || lines_of(&old).last().is_some_and(|line| line == "n400");
    assert!(wait_until(HANDSHAKE, last), "{:?}", lines_of(&old));
    assert_eq!(
        numbered(&std::fs::read_to_string(&old).unwrap(), "n"),
        (1..=400).collect::<Vec<u64>>()
    );
    started.stop();
}
