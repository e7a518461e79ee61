//! The command route: `daemonize` start, `--status` and `--stop`, checked through `/proc`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use daemonctx::{Pidfile, Status};

/// Starts `daemonize -p DIR/d.pid ARGS`; returns the daemon's pid and a guard for its group.
fn start(dir: &TempDir, args: &[&str]) -> (i32, SpawnedGroup) {
    let pidfile = dir.join("d.pid");
    let mut all = vec!["-p", path_str(&pidfile)];
    all.extend_from_slice(args);
    let output = daemonize(&all);
    assert!(output.status.success(), "{}", describe(&format!("daemonize {}", show(&all)), &output));
    let pid = read_pidfile(&pidfile);
    let guard = SpawnedGroup(pgid_of(pid));
    (pid, guard)
}

/// Asserts a failed start: exit code, message on stderr, nothing left behind.
fn assert_refused(dir: &TempDir, args: &[&str], expected_code: i32, message: &str) {
    let output = daemonize(args);
    let shown = describe(&format!("daemonize {}", show(args)), &output);
    assert_eq!(code(&output.status), expected_code, "{shown}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("daemonize: "), "{shown}");
    assert!(stderr.contains(message), "expected {message:?}: {shown}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {shown}");
    assert!(!dir.join("d.pid").exists(), "pidfile left behind: {shown}");
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "process left behind: {shown}");
}

fn exe_of(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

fn which(program: &str) -> PathBuf {
    let output = run(Command::new("sh").args(["-c", &format!("command -v {program}")]));
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

#[test]
fn exec_mode_daemon_is_the_command_clean_and_holding_the_lock() {
    let dir = TempDir::new("cli-clean");
    let pidfile = dir.join("d.pid");
    let (pid, _guard) = start(&dir, &["--", "sleep", "1000"]);
    // daemonize returned 0: the pid in the pidfile is already the command, exec'd.
    assert_eq!(exe_of(pid), std::fs::canonicalize(which("sleep")).unwrap());
    let stat = proc_stat(pid);
    assert_ne!(stat.session, pid as u32, "the daemon leads its session");
    assert_eq!(stat.tty_nr, 0, "the daemon has a controlling terminal");
    let ppid = stat.ppid as i32;
    assert!(ancestors_of_test().contains(&ppid), "parent {ppid} is neither PID 1 nor a subreaper");
    wait_asleep(pid);
    let fds: Vec<(i32, String)> =
        proc_fds(pid).into_iter().map(|(fd, p)| (fd, p.to_string_lossy().into_owned())).collect();
    let null = "/dev/null".to_string();
    assert_eq!(
        fds,
        vec![(0, null.clone()), (1, null.clone()), (2, null), (3, path_str(&pidfile).to_string())]
    );
    let status = proc_status(pid);
    assert_eq!(status["SigBlk"], "0000000000000000");
    assert_eq!(
        status["SigIgn"], "0000000000000000",
        "COMMAND must start with default dispositions"
    );
    assert_eq!(status["Umask"], "0022", "the CLI's default umask is 022");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), Path::new("/"));
    assert!(matches!(Pidfile::status(&pidfile), Status::Running(Some(p)) if p as i32 == pid));
}

#[test]
fn second_start_fails_at_once_naming_the_running_pid() {
    let dir = TempDir::new("cli-second");
    let (pid, _guard) = start(&dir, &["sleep", "1000"]);
    let pidfile = dir.join("d.pid");
    let output = daemonize(&["-p", path_str(&pidfile), "sleep", "1000"]);
    assert_eq!(code(&output.status), 1, "{}", describe("second start", &output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("already running (pid {pid})")), "{stderr}");
    assert_eq!(read_pidfile(&pidfile), pid);
    assert_eq!(stop_group_members(pid).len(), 1, "a second instance started");
}

fn stop_group_members(pid: i32) -> Vec<u32> {
    daemonctx::process::group_members((pgid_of(pid)) as u32)
}

#[test]
fn chdir_umask_env_and_verbose_take_effect() {
    let dir = TempDir::new("cli-options");
    let args = [
        "-v",
        "-c",
        path_str(dir.path()),
        "--umask",
        "077",
        "-E",
        "GREETING=hello world",
        "-E",
        "PATH=/usr/bin:/bin",
        "--",
        "sleep",
        "1000",
    ];
    let pidfile = dir.join("d.pid");
    let mut all = vec!["-p", path_str(&pidfile)];
    all.extend_from_slice(&args);
    let output = daemonize(&all);
    assert!(output.status.success(), "{}", describe("daemonize", &output));
    let pid = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(pid));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), dir.path());
    assert_eq!(proc_status(pid)["Umask"], "0077");
    let env = environ_of(pid);
    assert!(env.contains(&"GREETING=hello world".to_string()), "{env:?}");
    assert!(
        env.iter().filter(|v| v.starts_with("PATH=")).eq(["PATH=/usr/bin:/bin"].iter()),
        "{env:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("started ") && stderr.contains(&format!("(pid {pid})")), "{stderr}");
}

#[test]
fn clear_env_leaves_only_the_given_variables() {
    let dir = TempDir::new("cli-clearenv");
    let (pid, _guard) = start(&dir, &["--clear-env", "-E", "ONLY=1", "/bin/sleep", "1000"]);
    assert_eq!(environ_of(pid), vec!["ONLY=1".to_string()]);
}

#[test]
fn output_files_truncate_or_append() {
    let dir = TempDir::new("cli-output");
    let out = dir.join("out.log");
    let err = dir.join("err.log");
    let pidfile = dir.join("d.pid");
    for (append, expected) in [(true, "old\nout\n"), (false, "out\n")] {
        std::fs::write(&out, "old\n").unwrap();
        let mut args = vec!["-p", path_str(&pidfile), "-o", path_str(&out), "-e", path_str(&err)];
        if append {
            args.push("-a");
        }
        args.extend(["--", "sh", "-c", "echo out; echo err >&2"]);
        let output = daemonize(&args);
        assert!(output.status.success(), "{}", describe("daemonize", &output));
        let pid = read_pidfile(&pidfile);
        assert!(wait_gone(pid, COMMAND_TIMEOUT));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), expected, "append={append}");
        assert_eq!(std::fs::read_to_string(&err).unwrap(), "err\n");
    }
}

/// Runs `daemonize -p DIR/d.pid ARGS sleep 1000` from a shell that first runs `prelude`
/// (ulimit, extra descriptors); returns the daemon's pid and a guard.
fn start_from_shell(dir: &TempDir, prelude: &str, args: &str) -> (i32, SpawnedGroup) {
    let pidfile = dir.join("d.pid");
    let script = format!(
        "{prelude} && exec {} -p {} {args} sleep 1000",
        daemonize_bin().display(),
        pidfile.display()
    );
    let output = run(Command::new("sh").args(["-c", &script]));
    assert!(output.status.success(), "{}", describe(&script, &output));
    let pid = read_pidfile(&pidfile);
    (pid, SpawnedGroup(pgid_of(pid)))
}

#[test]
fn core_and_preserve_fd_take_effect() {
    let dir = TempDir::new("cli-core");
    let (pid, _guard) =
        start_from_shell(&dir, "ulimit -c unlimited && exec 5</dev/null", "--core --preserve-fd 5");
    assert_eq!(core_limit(pid), "unlimited");
    wait_asleep(pid);
    let targets = proc_fds(pid);
    let fds: Vec<i32> = targets.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(fds, vec![0, 1, 2, 3, 5], "{targets:?}");

    // Without --core, RLIMIT_CORE is 0 even when the invoker allows core dumps.
    let dir = TempDir::new("cli-nocore");
    let (pid, _guard) = start_from_shell(&dir, "ulimit -c unlimited", "");
    assert_eq!(core_limit(pid), "0");
}

#[test]
fn lock_file_gives_single_instance_without_a_pidfile() {
    let dir = TempDir::new("cli-lock");
    let lock = dir.join("d.lock");
    let output = daemonize(&["-l", path_str(&lock), "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("daemonize -l", &output));
    let holder = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|fds| {
                        fds.flatten()
                            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == lock))
                    })
                    .unwrap_or(false)
            })
    };
    let pid = holder().expect("nobody holds the lock file");
    let _guard = SpawnedGroup(pgid_of(pid));
    assert!(matches!(Pidfile::status(&lock), Status::Running(_)));
    let output = daemonize(&["-l", path_str(&lock), "sleep", "1000"]);
    assert_eq!(code(&output.status), 1, "{}", describe("second daemonize -l", &output));
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "", "the lock file was written to");
}

#[test]
fn foreground_sets_up_and_execs_in_place() {
    let dir = TempDir::new("cli-foreground");
    let pidfile = dir.join("d.pid");
    let mut child = Command::new(daemonize_bin())
        .args(["--foreground", "-p", path_str(&pidfile), "--umask", "027", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Spawned::new(child.id() as i32);
    let pid = child.id() as i32;
    assert!(wait_until(Duration::from_secs(10), || exe_of(pid)
        != daemonize_bin().canonicalize().unwrap()));
    assert_eq!(read_pidfile(&pidfile), pid);
    assert_eq!(proc_status(pid)["Umask"], "0027");
    assert_eq!(child.try_wait().unwrap(), None);
    kill(pid, libc::SIGKILL);
    child.wait().unwrap();
}

#[test]
fn user_and_group_take_effect() {
    if skip_unless_root("user_and_group_take_effect") {
        return;
    }
    let dir = TempDir::new("cli-user");
    let (pid, _guard) = start(&dir, &["-u", "nobody", "sleep", "1000"]);
    let status = proc_status(pid);
    assert_eq!(status["Uid"].split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    assert_eq!(status["Gid"].split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);

    let Ok(Some(user)) = nix::unistd::User::from_name("daemonctx-test") else {
        skip(
            "user_and_group_take_effect (supplementary groups) needs user daemonctx-test (.ci/run creates it)",
        );
        return;
    };
    let extra = nix::unistd::Group::from_name("daemonctx-extra").unwrap().unwrap().gid.as_raw();
    let dir = TempDir::new("cli-groups");
    let (pid, _guard) = start(&dir, &["-u", "daemonctx-test", "sleep", "1000"]);
    let mut groups: Vec<u32> =
        proc_status(pid)["Groups"].split_whitespace().map(|g| g.parse().unwrap()).collect();
    groups.sort();
    let mut expected = vec![user.gid.as_raw(), extra];
    expected.sort();
    assert_eq!(groups, expected, "-u must set the user's supplementary groups");

    let dir = TempDir::new("cli-group");
    let (pid, _guard) =
        start(&dir, &["-u", "daemonctx-test", "--group", "nogroup", "sleep", "1000"]);
    assert_eq!(proc_status(pid)["Gid"].split_whitespace().next(), Some("65534"));
}

#[test]
fn chroot_takes_effect() {
    if skip_unless_root("chroot_takes_effect") {
        return;
    }
    let dir = TempDir::new("cli-chroot");
    let root = dir.join("root");
    let sleep = std::fs::canonicalize(which("sleep")).unwrap();
    install_with_libraries(&sleep, &root);
    std::fs::create_dir_all(root.join("srv")).unwrap();
    let (pid, _guard) = start(
        &dir,
        &["--chroot", path_str(&root), "-c", "/srv", "-E", "PATH=/usr/bin:/bin", "sleep", "1000"],
    );
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/root")).unwrap(), root);
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), root.join("srv"));
}

/// Copies `binary` and the shared libraries `ldd` lists into `root`, at the same paths.
fn install_with_libraries(binary: &Path, root: &Path) {
    let output = run(Command::new("ldd").arg(binary));
    let mut files = vec![binary.to_path_buf()];
    for word in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if word.starts_with('/') {
            files.push(PathBuf::from(word));
        }
    }
    for file in files {
        let target = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&file).unwrap(), &target).unwrap();
    }
}

#[test]
fn bad_input_gets_its_code_and_one_line() {
    let dir = TempDir::new("cli-bad");
    let pidfile = dir.join("d.pid");
    let p = path_str(&pidfile);
    let missing = dir.join("missing");
    let m = path_str(&missing);
    let file = dir.join("plain-file");
    std::fs::write(&file, "").unwrap();
    let f = path_str(&file);
    let in_missing = missing.join("out.log");

    assert_refused(&dir, &["-p", p], 2, "required");
    assert_refused(
        &dir,
        &["-p", p, "--umask", "999", "sleep", "1"],
        2,
        "umask must be an octal number",
    );
    assert_refused(&dir, &["-p", p, "-E", "NOEQUALS", "sleep", "1"], 2, "expected NAME=VALUE");
    assert_refused(
        &dir,
        &["-p", p, "-u", "no-such-user-daemonctx", "sleep", "1"],
        3,
        "unknown user",
    );
    assert_refused(
        &dir,
        &["-p", p, "--group", "no-such-group-daemonctx", "sleep", "1"],
        3,
        "unknown group",
    );
    assert_refused(
        &dir,
        &["-p", p, "-c", m, "sleep", "1"],
        4,
        &format!("cannot change directory to {m}: No such file"),
    );
    assert_refused(&dir, &["-p", p, "-c", f, "sleep", "1"], 4, "Not a directory");
    assert_refused(
        &dir,
        &["-p", p, "--chroot", m, "sleep", "1"],
        4,
        &format!("cannot change root to {m}"),
    );
    assert_refused(
        &dir,
        &["-p", p, "-o", path_str(&in_missing), "sleep", "1"],
        5,
        "cannot open output file",
    );
    assert_refused(
        &dir,
        &["-p", path_str(&missing.join("d.pid")), "sleep", "1"],
        6,
        "cannot open pidfile",
    );
    assert_refused(
        &dir,
        &["-p", p, "no-such-command-daemonctx"],
        127,
        "cannot execute no-such-command-daemonctx: No such file or directory",
    );
}

#[test]
fn pidfile_symlink_is_refused_and_its_target_untouched() {
    let dir = TempDir::new("cli-symlink");
    let target = dir.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("d.pid")).unwrap();
    let output = daemonize(&["-p", path_str(&dir.join("d.pid")), "sleep", "1"]);
    assert_eq!(code(&output.status), 6, "{}", describe("daemonize", &output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("symbolic link"),
        "{}",
        describe("daemonize", &output)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(std::fs::symlink_metadata(dir.join("d.pid")).unwrap().file_type().is_symlink());
    assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new());
}

#[test]
fn exec_failures_after_the_fork_reach_the_shell() {
    let dir = TempDir::new("cli-exec");
    let script = dir.join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = dir.join("d.pid");
    let s = path_str(&script);
    // Paths with a slash are not looked up: execve(2) itself fails in the daemon, after the
    // fork, and the failure crosses the report channel.
    assert_refused(
        &dir,
        &["-p", path_str(&p), s],
        126,
        &format!("cannot execute {s}: Permission denied"),
    );
    let missing = dir.join("nothing-here");
    assert_refused(
        &dir,
        &["-p", path_str(&p), path_str(&missing)],
        127,
        "No such file or directory",
    );
}

#[test]
fn output_file_in_read_only_directory_is_refused() {
    let dir = TempDir::new("cli-rodir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let readonly = dir.join("ro");
    std::fs::create_dir(&readonly).unwrap();
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o555)).unwrap();
    let log = readonly.join("out.log");
    // The pidfile goes to a writable place for an unprivileged invoker.
    let piddir = TempDir::new("cli-rodir-pid");
    std::fs::set_permissions(piddir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let pidfile = piddir.join("d.pid");
    let args = ["-p", path_str(&pidfile), "-o", path_str(&log), "sleep", "1"];
    let output = run(as_unprivileged(&daemonize_bin()).args(args));
    let shown = describe(&format!("daemonize {}", show(&args)), &output);
    assert_eq!(code(&output.status), 5, "{shown}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Permission denied"), "{shown}");
    assert!(!pidfile.exists(), "pidfile left behind: {shown}");
    assert!(!log.exists());
}

#[test]
fn status_reports_lsb_codes_judged_by_the_lock() {
    let dir = TempDir::new("cli-status");
    let pidfile = dir.join("d.pid");
    let status = || daemonize(&["--status", "-p", path_str(&pidfile)]);

    let output = status();
    assert_eq!(code(&output.status), 3, "{}", describe("status", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "not running\n");

    let (pid, _guard) = start(&dir, &["sleep", "1000"]);
    let output = status();
    assert_eq!(code(&output.status), 0, "{}", describe("status", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("running (pid {pid})\n"));

    kill(pid, libc::SIGKILL);
    assert!(wait_gone(pid, Duration::from_secs(5)));
    let output = status();
    assert_eq!(code(&output.status), 1, "{}", describe("status after kill -9", &output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("dead"),
        "{}",
        describe("status", &output)
    );

    let output = daemonize(&["--status", "-p", path_str(dir.path())]);
    assert_eq!(code(&output.status), 4, "{}", describe("status of a directory", &output));
}

/// A shell that appends the number of every signal it catches to `$1` (it traps all but
/// SIGKILL and SIGSTOP; glibc keeps 32 and 33), creates `$2` once its traps are set, then
/// waits for ever.
const SIGNAL_LOGGER: &str = r#"n=1
while [ $n -le 64 ]; do
    case $n in 9|19) ;; *) trap "echo $n >> \"\$1\"" $n ;; esac
    n=$((n + 1))
done
: > "$2"
while :; do sleep 1000 & wait $!; done"#;

#[test]
fn stale_pidfile_naming_a_live_unrelated_process_is_never_signalled() {
    let dir = TempDir::new("cli-recycled");
    let pidfile = dir.join("d.pid");
    let (log, ready) = (dir.join("signals.log"), dir.join("traps-set"));
    // In a process group of its own, so that its sleeps are killed with it.
    // Through `env --default-signal`: a shell cannot trap what it was started ignoring, and a
    // test runner may ignore SIGINT, SIGQUIT or SIGHUP (nohup, a background job).
    let mut bystander = Command::new("env");
    bystander.args(["--default-signal", "sh", "-c", SIGNAL_LOGGER, "sh"]);
    bystander.args([path_str(&log), path_str(&ready)]);
    std::os::unix::process::CommandExt::process_group(&mut bystander, 0);
    let mut bystander = bystander.stdin(Stdio::null()).spawn().unwrap();
    let pid = bystander.id() as i32;
    let guard = SpawnedGroup(pid);
    assert!(wait_until(COMMAND_TIMEOUT, || ready.exists()), "the bystander never set its traps");
    let caught = u64::from_str_radix(&proc_status(pid)["SigCgt"], 16).unwrap();
    let uncaught = [9, 19, 32, 33].iter().fold(0u64, |mask, n| mask | 1 << (n - 1));
    assert_eq!(caught | uncaught, u64::MAX, "the bystander does not catch every signal");
    // After each step, a SIGWINCH of ours: once the bystander has logged it, it has logged
    // any signal sent before it too. The log must hold our SIGWINCHes and nothing else.
    let mut expected = String::new();
    let mut check_unsignalled = |step: &str| {
        kill(pid, libc::SIGWINCH);
        expected.push_str(&format!("{}\n", libc::SIGWINCH));
        let logged = || std::fs::read_to_string(&log).unwrap_or_default().len() >= expected.len();
        assert!(wait_until(COMMAND_TIMEOUT, logged), "{step}: the bystander logged nothing");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), expected, "{step} signalled it");
        assert!(alive(pid) && proc_stat(pid).state != 'T', "{step} killed or stopped it");
    };
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();

    let output = daemonize(&["--status", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 1, "{}", describe("status", &output));
    check_unsignalled("--status");
    let output = daemonize(&["--stop", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "not running\n");
    check_unsignalled("--stop");
    assert!(!pidfile.exists(), "the stale pidfile was left");

    // And a start over a stale pidfile succeeds.
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
    let (daemon, _daemon) = start(&dir, &["sleep", "1000"]);
    assert_ne!(daemon, pid);
    check_unsignalled("a start");
    drop(guard);
    bystander.wait().unwrap();
}

#[test]
fn stop_leaves_no_orphaned_grandchildren() {
    let dir = TempDir::new("cli-orphans");
    let pidfile = dir.join("d.pid");
    // Two background workers, and a double-forked grandchild whose parent exits at once.
    let script = "sleep 1000 & sleep 1000 & (sleep 1000 &) ; wait";
    let (pid, _guard) = start(&dir, &["sh", "-c", script]);
    let pgid = pgid_of(pid);
    assert!(wait_until(Duration::from_secs(10), || daemonctx::process::group_members(
        (pgid) as u32
    )
    .len()
        == 4));
    let members = daemonctx::process::group_members((pgid) as u32);
    let output = daemonize(&["--stop", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("stopped (pid {pid})\n"));
    for member in members {
        assert!(!alive(member as i32), "pid {member} survived the stop");
    }
    assert!(!pidfile.exists());
    let output = daemonize(&["--stop", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("second stop", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "not running\n");
}

#[test]
fn stop_follows_the_retry_schedule() {
    let dir = TempDir::new("cli-retry");
    let pidfile = dir.join("d.pid");
    // The daemon ignores SIGTERM (and so does its sleep).
    let (pid, _guard) = start(&dir, &["sh", "-c", "trap '' TERM; sleep 1000"]);
    wait_ignoring(pid, libc::SIGTERM);
    let output = daemonize(&["--stop", "-p", path_str(&pidfile), "--retry", "TERM/0.2"]);
    assert_eq!(code(&output.status), 2, "{}", describe("stop without KILL", &output));
    assert!(alive(pid));
    let output = daemonize(&["--stop", "-p", path_str(&pidfile), "--retry", "TERM/0.2/KILL/5"]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop with KILL", &output));
    assert!(!alive(pid));
    assert!(!pidfile.exists(), "the pidfile of a SIGKILLed daemon was left");

    // A bad schedule is "other trouble" (3): 2 would tell an init script it is still running.
    let output = daemonize(&["--stop", "-p", path_str(&pidfile), "--retry", "TERM/soon"]);
    assert_eq!(code(&output.status), 3, "{}", describe("bad schedule", &output));
}

/// Waits until `pid` ignores `signal` (a shell has run its `trap '' SIG`).
fn wait_ignoring(pid: i32, signal: i32) {
    let ignores = || {
        let ignored = u64::from_str_radix(&proc_status(pid)["SigIgn"], 16).unwrap();
        ignored & (1 << (signal - 1)) != 0
    };
    assert!(wait_until(COMMAND_TIMEOUT, ignores), "pid {pid} never ignored signal {signal}");
}

#[test]
fn help_lists_exit_codes_and_examples() {
    let output = daemonize(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in ["EXIT STATUS", "127", "--status (LSB", "EXAMPLES", "daemonize --stop -p"] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn pidfile_mode_sets_the_new_pidfile_mode_exactly() {
    let dir = TempDir::new("cli-mode");
    let (_pid, _guard) = start(&dir, &["--pidfile-mode", "600", "sleep", "1000"]);
    let mode = std::fs::metadata(dir.join("d.pid")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    let dir = TempDir::new("cli-mode-default");
    let script = format!(
        "umask 077 && exec {} -p {} sleep 1000",
        daemonize_bin().display(),
        dir.join("d.pid").display()
    );
    let output = run(Command::new("sh").args(["-c", &script]));
    assert!(output.status.success(), "{}", describe(&script, &output));
    let _guard = SpawnedGroup(pgid_of(read_pidfile(&dir.join("d.pid"))));
    let mode = std::fs::metadata(dir.join("d.pid")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "the invoker's umask must not change the pidfile's mode");
}

#[test]
fn stop_without_permission_to_signal_exits_3() {
    if skip_unless_root("stop_without_permission_to_signal_exits_3") {
        return;
    }
    let dir = TempDir::new("cli-eperm");
    let (pid, _guard) = start(&dir, &["sleep", "1000"]);
    let output =
        run(as_unprivileged(&daemonize_bin()).args(["--stop", "-p", path_str(&dir.join("d.pid"))]));
    assert_eq!(code(&output.status), 3, "{}", describe("daemonize --stop as nobody", &output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Operation not permitted"),
        "{}",
        describe("stop", &output)
    );
    assert!(alive(pid));
}

#[test]
fn foreground_keeps_the_invokers_output_streams() {
    // systemd Type=simple: output must reach the journal, i.e. the streams daemonize was given.
    let output =
        daemonize(&["--foreground", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    assert!(output.status.success(), "{}", describe("daemonize --foreground", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "to-stdout\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "to-stderr\n");
}

#[test]
fn lock_held_by_what_the_command_left_running_is_still_stoppable() {
    // The command exits, but a background job inherited the pidfile's descriptor (and so the
    // lock): the daemon is still running, and --stop must stop what holds the lock.
    let dir = TempDir::new("cli-holder");
    let pidfile = dir.join("d.pid");
    let (pid, _guard) = start(&dir, &["sh", "-c", "sleep 1000 & exit 0"]);
    assert!(wait_gone(pid, COMMAND_TIMEOUT), "the command did not exit");
    let output = daemonize(&["--status", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("status", &output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("holds the pidfile"),
        "{}",
        describe("status", &output)
    );
    let holder = lock_holders(&pidfile)[0];
    let output = daemonize(&["--stop", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    assert!(wait_gone(holder as i32, Duration::from_secs(5)), "the lock holder survived");
    assert!(!pidfile.exists());
}

#[test]
fn foreground_exec_failure_reports_one_line() {
    let output = daemonize(&["--foreground", "--", "/nonexistent/program"]);
    assert_eq!(code(&output.status), 127, "{}", describe("daemonize --foreground", &output));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "daemonize: cannot execute /nonexistent/program: No such file or directory\n"
    );
}

#[test]
fn foreground_with_preserved_fd_keeps_pidfile_and_fd() {
    let dir = TempDir::new("cli-fg-preserve");
    let pidfile = dir.join("d.pid");
    let script = format!(
        "exec 5</dev/null && exec {} --foreground -p {} --preserve-fd 5 -- sh -c 'ls /proc/self/fd; cat {}'",
        daemonize_bin().display(),
        pidfile.display(),
        pidfile.display()
    );
    let output = run(Command::new("sh").args(["-c", &script]));
    assert!(output.status.success(), "{}", describe(&script, &output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fds: Vec<&str> = stdout.lines().take_while(|l| l.parse::<i32>().is_ok()).collect();
    assert!(fds.contains(&"5"), "fd 5 was not preserved: {stdout}");
    assert!(
        stdout.lines().last().is_some_and(|l| l.parse::<u32>().is_ok()),
        "pidfile unreadable: {stdout}"
    );
}

#[test]
fn relative_command_is_found_from_the_invokers_directory() {
    let dir = TempDir::new("cli-relative");
    let script = dir.join("mydaemon");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pidfile = dir.join("d.pid");
    let output = run(Command::new(daemonize_bin()).current_dir(dir.path()).args([
        "-p",
        "d.pid",
        "./mydaemon",
    ]));
    assert!(output.status.success(), "{}", describe("daemonize ./mydaemon", &output));
    let pid = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(pid));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), Path::new("/"));
}

#[test]
fn world_writable_pidfile_mode_is_refused() {
    let dir = TempDir::new("cli-mode666");
    assert_refused(
        &dir,
        &["-p", path_str(&dir.join("d.pid")), "--pidfile-mode", "666", "sleep", "1"],
        2,
        "world-writable",
    );
}

#[test]
fn stop_never_signals_a_reader_of_the_pidfile() {
    // `tail -f` has the pidfile open but holds no lock: it must not be taken for the daemon.
    let dir = TempDir::new("cli-reader");
    let pidfile = dir.join("d.pid");
    let (pid, _guard) = start(&dir, &["sh", "-c", "sleep 1000 & exit 0"]);
    let mut reader =
        Command::new("tail").arg("-f").arg(&pidfile).stdout(Stdio::null()).spawn().unwrap();
    let _reader_guard = Spawned::new(reader.id() as i32);
    assert!(wait_gone(pid, COMMAND_TIMEOUT));
    let holder = lock_holders(&pidfile);
    assert_eq!(holder.len(), 1, "lock holders: {holder:?}");
    let output = daemonize(&["--stop", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 0, "{}", describe("stop", &output));
    assert!(wait_gone(holder[0] as i32, Duration::from_secs(5)), "the lock holder survived");
    assert_eq!(reader.try_wait().unwrap(), None, "tail -f was signalled");
}

#[test]
fn forever_anywhere_but_last_is_refused() {
    let dir = TempDir::new("cli-forever");
    let output =
        daemonize(&["--stop", "-p", path_str(&dir.join("d.pid")), "--retry", "forever/TERM/5"]);
    assert_eq!(code(&output.status), 3, "{}", describe("stop", &output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("forever can only come last"));
}

#[test]
fn dirty_invoker_still_yields_a_clean_command() {
    // The invoker blocks SIGUSR1, SIGHUP and SIGRTMIN, ignores SIGUSR2 and SIGINT, runs with
    // umask 077 and leaks fd 7: none of it reaches COMMAND.
    let dir = TempDir::new("cli-dirty");
    let pidfile = dir.join("d.pid");
    let output = run(Command::new(example("dirty_exec")).arg(daemonize_bin()).args([
        "-p",
        path_str(&pidfile),
        "sleep",
        "1000",
    ]));
    assert!(output.status.success(), "{}", describe("dirty_exec daemonize", &output));
    let pid = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(pid));
    wait_asleep(pid);
    let status = proc_status(pid);
    assert_eq!(status["SigBlk"], "0000000000000000", "inherited signal mask");
    assert_eq!(status["SigIgn"], "0000000000000000", "inherited ignored signals");
    assert_eq!(status["Umask"], "0022", "inherited umask");
    // dirty_exec leaks fds 3 and 7 (so the pidfile lands on 4): only 0-2 and the pidfile stay.
    let fds = proc_fds(pid);
    let numbers: Vec<i32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(numbers, vec![0, 1, 2, 4], "inherited descriptors: {fds:?}");
    assert_eq!(fds[3].1, pidfile, "{fds:?}");
}

#[test]
fn preserving_a_closed_descriptor_is_refused_before_the_fork() {
    let dir = TempDir::new("cli-preserve-closed");
    let pidfile = dir.join("d.pid");
    // fd 8 is closed: preserving it would hand COMMAND whatever daemonize opens there next.
    for fd in ["8", "50"] {
        let args = ["-p", path_str(&pidfile), "--preserve-fd", fd, "sleep", "1000"];
        let message = format!("cannot preserve file descriptor /proc/self/fd/{fd}: Bad file");
        assert_refused(&dir, &args, 2, &message);
    }
}

#[test]
fn pidfile_may_also_be_the_lock_file() {
    let dir = TempDir::new("cli-same-lock");
    let (pid, _guard) = start(&dir, &["-l", path_str(&dir.join("d.pid")), "sleep", "1000"]);
    assert!(
        matches!(Pidfile::status(dir.join("d.pid")), Status::Running(Some(p)) if p as i32 == pid)
    );
}

#[test]
fn relative_pidfile_is_used_from_the_invokers_directory() {
    let dir = TempDir::new("cli-relative");
    // A failed foreground exec removes the relative pidfile it locked before chdir("/").
    let output = run(Command::new(daemonize_bin())
        .args(["--foreground", "-p", "k.pid", "./no-such-program"])
        .current_dir(dir.path()));
    assert_eq!(code(&output.status), 127, "{}", describe("--foreground -p k.pid", &output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("cannot execute ./no-such-program: No such file or directory")
    );
    assert!(!dir.join("k.pid").exists(), "the relative pidfile was left behind");
    // A daemon started with a relative pidfile is stopped through it, which is then removed.
    let output = run(Command::new(daemonize_bin())
        .args(["-p", "r.pid", "sleep", "1000"])
        .current_dir(dir.path()));
    assert!(output.status.success(), "{}", describe("-p r.pid", &output));
    let pid = read_pidfile(&dir.join("r.pid"));
    let _guard = SpawnedGroup(pgid_of(pid));
    let output =
        run(Command::new(daemonize_bin()).args(["--stop", "-p", "r.pid"]).current_dir(dir.path()));
    assert_eq!(code(&output.status), 0, "{}", describe("--stop -p r.pid", &output));
    assert!(wait_gone(pid, COMMAND_TIMEOUT));
    assert!(!dir.join("r.pid").exists(), "the relative pidfile was left behind");
}

#[test]
fn stop_signal_and_bare_seconds_retry_take_effect() {
    let dir = TempDir::new("cli-signal");
    let pidfile = dir.join("d.pid");
    let log = dir.join("signals.log");
    // The daemon logs SIGINT and carries on; SIGKILL after the bare number of seconds ends it.
    // It waits in `wait`, which a trapped signal interrupts at once (a foreground `sleep` would
    // hold the trap back until it ends).
    let script =
        format!("trap 'echo INT >> {}' INT; sleep 1000 & while :; do wait; done", log.display());
    let (pid, _guard) = start(&dir, &["sh", "-c", &script]);
    wait_catching(pid, libc::SIGINT);
    let sleeping = || {
        daemonctx::process::descendants(pid as u32).iter().any(|child| {
            std::fs::read_link(format!("/proc/{child}/exe")).is_ok_and(|e| e.ends_with("sleep"))
        })
    };
    assert!(wait_until(COMMAND_TIMEOUT, sleeping), "the daemon never started its sleep");
    let output =
        daemonize(&["--stop", "-p", path_str(&pidfile), "--signal", "INT", "--retry", "1"]);
    assert_eq!(code(&output.status), 0, "{}", describe("--signal INT --retry 1", &output));
    assert!(!alive(pid), "SIGKILL after 1 s did not come");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "INT\n", "SIGINT was not sent first");
}

/// Waits until `pid` catches `signal` (a shell has run its `trap CMD SIG`).
fn wait_catching(pid: i32, signal: i32) {
    let catches = || {
        let caught = u64::from_str_radix(&proc_status(pid)["SigCgt"], 16).unwrap();
        caught & (1 << (signal - 1)) != 0
    };
    assert!(wait_until(COMMAND_TIMEOUT, catches), "pid {pid} never caught signal {signal}");
}

#[test]
fn stop_finds_the_holder_of_a_lock_file() {
    let dir = TempDir::new("cli-stop-lock");
    let lock = dir.join("d.lock");
    let output = daemonize(&["-l", path_str(&lock), "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("daemonize -l", &output));
    let holder = lock_holders(&lock);
    assert_eq!(holder.len(), 1, "{holder:?}");
    let pid = holder[0] as i32;
    let _guard = SpawnedGroup(pgid_of(pid));
    let output = daemonize(&["--stop", "-p", path_str(&lock)]);
    assert_eq!(code(&output.status), 0, "{}", describe("--stop -p LOCKFILE", &output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("stopped (pid {pid})\n"));
    assert!(!alive(pid));
}

#[test]
fn chroot_that_is_a_file_is_refused() {
    let dir = TempDir::new("cli-chroot-file");
    let file = dir.join("file");
    std::fs::write(&file, "").unwrap();
    let pidfile = dir.join("d.pid");
    let args = ["-p", path_str(&pidfile), "--chroot", path_str(&file), "sleep", "1"];
    let message = format!("cannot change root to {}: Not a directory", file.display());
    assert_refused(&dir, &args, 4, &message);
}

#[test]
fn missing_command_is_named() {
    let dir = TempDir::new("cli-no-command");
    let pidfile = dir.join("d.pid");
    let args = ["-p", path_str(&pidfile)];
    assert_refused(&dir, &args, 2, "required arguments were not provided: <COMMAND>...");
    let output = daemonize(&[]);
    assert_eq!(code(&output.status), 2, "{}", describe("daemonize", &output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("<COMMAND>"));
}

#[test]
fn status_names_an_unrelated_live_pid_as_another_process() {
    let dir = TempDir::new("cli-status-other");
    let pidfile = dir.join("d.pid");
    // Our own pid: alive, and not holding the (unlocked) pidfile.
    std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
    let output = daemonize(&["--status", "-p", path_str(&pidfile)]);
    assert_eq!(code(&output.status), 1, "{}", describe("--status", &output));
    let expected = format!(
        "dead: pidfile {} is not locked; pid {} it names is another process\n",
        pidfile.display(),
        std::process::id()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[test]
fn ready_fd_and_preserved_fd_on_one_number_are_refused() {
    let dir = TempDir::new("cli-ready-preserve");
    let pidfile = dir.join("d.pid");
    let args =
        ["-p", path_str(&pidfile), "--preserve-fd", "3", "--wait-ready", "fd:3", "sleep", "1"];
    assert_refused(&dir, &args, 2, "--wait-ready fd:3 and --preserve-fd 3 both want descriptor 3");
}
