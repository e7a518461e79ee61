//! What a hostile local user, or a hostile COMMAND, cannot do to a daemon `daemonize` started,
//! and the identity and errors it gets (issue 10): numeric ids, the target user's login
//! variables, usage errors named as such, the notify socket and who may declare readiness, a
//! supervisor out of COMMAND's reach.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The value of `name` in `pid`'s environment.
fn variable(pid: i32, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    environ_of(pid).iter().find_map(|v| v.strip_prefix(&prefix).map(str::to_string))
}

/// Runs `daemonize ARGS` with root's login variables in its environment; on success, returns
/// the pid `pidfile` names and a guard on its group (and the pid of `guard_also`'s, if given).
fn start_as_root(args: &[&str], pidfile: &Path, guard_also: &[&Path]) -> (i32, Vec<SpawnedGroup>) {
    let output = run(Command::new(daemonize_bin())
        .args(args)
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root"));
    let mut guards: Vec<SpawnedGroup> = guard_pidfile(pidfile).into_iter().collect();
    for other in guard_also {
        let named = || std::fs::read_to_string(other).is_ok_and(|t| !t.trim().is_empty());
        wait_until(COMMAND_TIMEOUT, named);
        guards.extend(guard_pidfile(other));
    }
    assert!(output.status.success(), "{}", describe(&format!("daemonize {}", show(args)), &output));
    (read_pidfile(pidfile), guards)
}

/// The test user from `.ci/run`, or `None` after saying the test is skipped.
fn test_user(test: &str) -> Option<nix::unistd::User> {
    if skip_unless_root(test) {
        return None;
    }
    match nix::unistd::User::from_name("daemonctx-test") {
        Ok(Some(user)) => Some(user),
        _ => {
            skip(&format!("{test} needs user daemonctx-test (.ci/run creates it)"));
            None
        }
    }
}

/// A uid with no passwd entry (and a gid with no group entry), from 54321 up.
fn unnamed_id() -> u32 {
    (54321..)
        .find(|id| {
            let uid = nix::unistd::Uid::from_raw(*id);
            let gid = nix::unistd::Gid::from_raw(*id);
            matches!(nix::unistd::User::from_uid(uid), Ok(None))
                && matches!(nix::unistd::Group::from_gid(gid), Ok(None))
        })
        .unwrap()
}

// Item 10: HOME, USER and LOGNAME were root's under -u.
#[test]
fn user_gets_its_own_home_user_and_logname_in_both_modes() {
    let Some(user) = test_user("user_gets_its_own_home_user_and_logname_in_both_modes") else {
        return;
    };
    let home = user.dir.to_str().unwrap().to_string();
    let expected =
        [("HOME", home.as_str()), ("USER", "daemonctx-test"), ("LOGNAME", "daemonctx-test")];

    let dir = TempDir::new("hard-login-exec");
    let pidfile = dir.join("d.pid");
    let args = ["-p", s(&pidfile), "-u", "daemonctx-test", "sleep", "1000"];
    let (pid, _guards) = start_as_root(&args, &pidfile, &[]);
    for (name, value) in expected {
        assert_eq!(variable(pid, name).as_deref(), Some(value), "exec mode: {name}");
    }

    let dir = TempDir::new("hard-login-supervise");
    let (pidfile, child_pidfile) = (dir.join("s.pid"), dir.join("c.pid"));
    let args = [
        "--supervise",
        "-p",
        s(&pidfile),
        "--child-pidfile",
        s(&child_pidfile),
        "-u",
        "daemonctx-test",
        "-E",
        "LOGNAME=chosen",
        "sleep",
        "1000",
    ];
    let (_, _guards) = start_as_root(&args, &pidfile, &[&child_pidfile]);
    let child = read_pidfile(&child_pidfile);
    assert_eq!(variable(child, "HOME").as_deref(), Some(home.as_str()), "supervised: HOME");
    assert_eq!(variable(child, "USER").as_deref(), Some("daemonctx-test"), "supervised: USER");
    assert_eq!(variable(child, "LOGNAME").as_deref(), Some("chosen"), "-E wins over -u");
}

// Item 13: `-u 1001` was "unknown user".
#[test]
fn numeric_user_and_group_are_ids() {
    let Some(user) = test_user("numeric_user_and_group_are_ids") else { return };
    let uid = user.uid.as_raw().to_string();
    let dir = TempDir::new("hard-numeric");
    let pidfile = dir.join("d.pid");
    let (pid, _guards) =
        start_as_root(&["-p", s(&pidfile), "-u", &uid, "sleep", "1000"], &pidfile, &[]);
    let status = proc_status(pid);
    assert_eq!(status["Uid"].split_whitespace().collect::<Vec<_>>(), [uid.as_str(); 4]);
    let gid = user.gid.as_raw().to_string();
    assert_eq!(status["Gid"].split_whitespace().collect::<Vec<_>>(), [gid.as_str(); 4]);
    assert_eq!(variable(pid, "USER").as_deref(), Some("daemonctx-test"));

    // A uid nobody named: it has no primary group, so a group must be given.
    let id = unnamed_id().to_string();
    let dir = TempDir::new("hard-unnamed");
    let pidfile = dir.join("d.pid");
    let output = daemonize(&["-p", s(&pidfile), "-u", &id, "sleep", "1000"]);
    let shown = describe(&format!("daemonize -u {id}"), &output);
    assert_eq!(code(&output.status), 3, "{shown}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("give a group"), "{shown}");
    assert!(!pidfile.exists(), "{shown}");

    let args = ["-p", s(&pidfile), "-u", &id, "--group", &id, "sleep", "1000"];
    let (pid, _guards) = start_as_root(&args, &pidfile, &[]);
    let status = proc_status(pid);
    assert_eq!(status["Uid"].split_whitespace().collect::<Vec<_>>(), [id.as_str(); 4]);
    assert_eq!(status["Gid"].split_whitespace().collect::<Vec<_>>(), [id.as_str(); 4]);
    assert_eq!(status["Groups"].split_whitespace().collect::<Vec<_>>(), [id.as_str()]);
    // No passwd entry: no HOME, USER or LOGNAME rather than root's.
    for name in ["HOME", "USER", "LOGNAME"] {
        assert_eq!(variable(pid, name), None, "{name} of a uid with no passwd entry");
    }
}

/// Copies `binary` and the shared libraries `ldd` lists into `root`, at the same paths.
fn install_with_libraries(binary: &Path, root: &Path) {
    let output = run(Command::new("ldd").arg(binary));
    let mut files = vec![binary.to_path_buf()];
    for word in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if word.starts_with('/') {
            files.push(std::path::PathBuf::from(word));
        }
    }
    for file in files {
        let target = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&file).unwrap(), &target).unwrap();
    }
}

// Item 14: a chroot without dev/null made the supervisor say "cannot execute /bin/sh" (std
// opens /dev/null for COMMAND's stdin at each spawn, inside the chroot). The supervisor now
// opens it before the chroot, as exec mode does: the jail needs no /dev/null.
#[test]
fn supervised_chroot_needs_no_dev_null() {
    if skip_unless_root("supervised_chroot_needs_no_dev_null") {
        return;
    }
    let dir = TempDir::new("hard-chroot-null");
    let root = dir.join("jail");
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    install_with_libraries(&sleep, &root);
    assert!(!root.join("dev/null").exists());
    let (pidfile, child_pidfile) = (dir.join("s.pid"), dir.join("c.pid"));
    let sleep = sleep.to_str().unwrap();
    let args = ["--supervise", "-p", s(&pidfile), "--child-pidfile", s(&child_pidfile)];
    let args = [&args[..], &["--chroot", s(&root), "--restart", "always", sleep, "1000"]].concat();
    let (_, _guards) = start_as_root(&args, &pidfile, &[&child_pidfile]);
    let child = read_pidfile(&child_pidfile);
    assert_eq!(std::fs::read_link(format!("/proc/{child}/root")).unwrap(), root);
    assert_eq!(std::fs::read_link(format!("/proc/{child}/fd/0")).unwrap(), Path::new("/dev/null"));
    // A restart gets it too.
    kill(child, libc::SIGKILL);
    let restarted = || read_pidfile_if_any(&child_pidfile).is_some_and(|pid| pid != child);
    assert!(wait_until(COMMAND_TIMEOUT, restarted), "COMMAND was not restarted");
}

/// The pid in `path`, if it holds one.
fn read_pidfile_if_any(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

// Item 14: `--wait-ready fd:99999` said "did not report ready in time: Bad file descriptor"
// after the fork; a descriptor the limit on open files forbids is a usage error.
#[test]
fn ready_fd_beyond_the_descriptor_limit_is_a_usage_error() {
    let dir = TempDir::new("hard-ready-limit");
    let pidfile = dir.join("d.pid");
    for mode in [&[][..], &["--supervise"][..]] {
        let args =
            [mode, &["-p", s(&pidfile), "--wait-ready", "fd:99999", "sleep", "1000"]].concat();
        let output = run(Command::new("sh")
            .args(["-c", "ulimit -n 1024 && exec \"$@\"", "sh"])
            .arg(daemonize_bin())
            .args(&args));
        let shown = describe(&format!("daemonize {}", show(&args)), &output);
        assert_eq!(code(&output.status), 2, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--wait-ready fd:99999") && stderr.contains("1024"), "{shown}");
        assert_eq!(stderr.lines().count(), 1, "{shown}");
        assert!(!pidfile.exists(), "{shown}");
        assert_eq!(processes_mentioning(dir.path()), Vec::<i32>::new(), "{shown}");
    }
}

/// The abstract socket name in `pid`'s `NOTIFY_SOCKET` (`@name`).
fn notify_name(pid: i32) -> String {
    let value = variable(pid, "NOTIFY_SOCKET").expect("COMMAND has NOTIFY_SOCKET");
    value.strip_prefix('@').expect("an abstract address").to_string()
}

// Item 4: the notify socket was closed once readiness was settled, while COMMAND kept
// NOTIFY_SOCKET: any local user could bind the name and receive COMMAND's later STATUS= text
// and FDSTORE=1 descriptors (or never read them, until COMMAND's sd_notify blocked).
#[test]
fn notify_socket_name_cannot_be_squatted_after_readiness() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    for supervise in [false, true] {
        let dir = TempDir::new("hard-notify-squat");
        let (pidfile, child_pidfile) = (dir.join("d.pid"), dir.join("c.pid"));
        let mut args = vec!["-p", s(&pidfile), "--wait-ready", "notify"];
        if supervise {
            args.extend(["--supervise", "--child-pidfile", s(&child_pidfile)]);
        }
        args.extend(["--", "sh", "-c", "systemd-notify --ready && exec sleep 1000"]);
        let output = daemonize(&args);
        let mut guards: Vec<SpawnedGroup> = guard_pidfile(&pidfile).into_iter().collect();
        guards.extend(guard_pidfile(&child_pidfile));
        assert!(output.status.success(), "{}", describe(&show(&args), &output));
        let command = read_pidfile(if supervise { &child_pidfile } else { &pidfile });
        // Read the environment only once COMMAND has exec'd sleep: during execve(2)
        // /proc/PID/environ may read empty (the old image is going, the new not yet there).
        let cmdline = format!("/proc/{command}/cmdline");
        let execed = || std::fs::read(&cmdline).is_ok_and(|c| c == b"sleep\x001000\0");
        assert!(wait_until(COMMAND_TIMEOUT, execed), "COMMAND never exec'd sleep");
        let address = SocketAddr::from_abstract_name(notify_name(command).as_bytes()).unwrap();

        let bound = UnixDatagram::bind_addr(&address);
        assert_eq!(
            bound.map(drop).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AddrInUse),
            "supervise {supervise}: another process could bind COMMAND's NOTIFY_SOCKET name"
        );
        // Whatever COMMAND sends now is dropped, never left to fill a queue nobody reads: far
        // more messages than a queue holds (net.unix.max_dgram_qlen) never block.
        let sender = UnixDatagram::unbound().unwrap();
        sender.set_nonblocking(true).unwrap();
        for _ in 0..2000 {
            let sent = sender.send_to_addr(b"WATCHDOG=1", &address);
            assert!(sent.is_ok(), "supervise {supervise}: {sent:?}");
        }
        drop(guards);
    }
}

// Item 5: a process outside COMMAND's tree, running as the same user, could send READY=1 and
// exit before it was read: a gone sender with the daemon's uid was believed.
#[test]
fn readiness_from_outside_the_tree_is_ignored_even_with_the_daemons_uid() {
    let dir = TempDir::new("hard-ready-stranger");
    let pidfile = dir.join("d.pid");
    let err = dir.join("err");
    let mut gate = Gate::new(&dir);
    let script = format!(
        "systemd-notify --status=first; read x < {g}; systemd-notify --status=second; \
         read y < {g}; systemd-notify --ready; exec sleep 1000",
        g = gate.path.display()
    );
    let args = ["-v", "-p", s(&pidfile), "--wait-ready", "notify", "--", "sh", "-c", &script];
    let mut invoker = Command::new(daemonize_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let invoker_pid = invoker.id() as i32;
    let _guard = Spawned::new(invoker_pid);
    let status_seen = |text: &str| {
        let line = format!("daemonize: status: {text}");
        std::fs::read_to_string(&err).unwrap_or_default().lines().any(|l| l == line)
    };
    assert!(wait_until(COMMAND_TIMEOUT, || status_seen("first")), "no STATUS=first");
    let daemon = read_pidfile(&pidfile);
    let _daemon_guard = SpawnedGroup(pgid_of(daemon));

    // The stranger's message waits until its sender is gone: the invoker is stopped meanwhile.
    kill(invoker_pid, libc::SIGSTOP);
    assert!(wait_until(COMMAND_TIMEOUT, || proc_stat(invoker_pid).state == 'T'));
    let stranger = run(Command::new(example("notify_ready"))
        .args(["--send", "READY=1"])
        .env("NOTIFY_SOCKET", format!("@{}", notify_name(daemon))));
    assert!(stranger.status.success(), "{}", describe("notify_ready --send READY=1", &stranger));
    kill(invoker_pid, libc::SIGCONT);

    // COMMAND's next message comes after the stranger's: once it is shown, that one was read.
    gate.open();
    let mut returned = None;
    let settled = wait_until(COMMAND_TIMEOUT, || {
        returned = invoker.try_wait().unwrap();
        returned.is_some() || status_seen("second")
    });
    assert!(settled, "neither returned nor saw STATUS=second");
    assert_eq!(returned, None, "daemonize believed READY=1 from outside COMMAND's tree");
    gate.open();
    assert!(wait_gone(invoker_pid, COMMAND_TIMEOUT));
    let status = invoker.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", std::fs::read_to_string(&err).unwrap());
}

/// The real, effective, saved and filesystem user ids of `pid`.
fn uids(pid: i32) -> Vec<String> {
    proc_status(pid)["Uid"].split_whitespace().map(str::to_string).collect()
}

// Item 7: under --supervise -u, COMMAND ran with the supervisor's uid: `kill -9 $PPID` left it
// running unsupervised, and --stop then said "not running". The supervisor now keeps root as
// its real and saved uid (effective uid the user's), out of COMMAND's reach.
#[test]
fn supervised_command_cannot_kill_its_supervisor() {
    let Some(user) = test_user("supervised_command_cannot_kill_its_supervisor") else { return };
    let dir = TempDir::new("hard-kill-parent");
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(user.uid.as_raw()), None).unwrap();
    let (pidfile, child_pidfile, answer) =
        (dir.join("s.pid"), dir.join("c.pid"), shared.join("kill-status"));
    let script = format!("kill -9 $PPID; echo $? > {}; exec sleep 1000", answer.display());
    let args = ["--supervise", "-p", s(&pidfile), "--child-pidfile", s(&child_pidfile)];
    let args = [&args[..], &["-u", "daemonctx-test", "--", "sh", "-c", &script]].concat();
    let (supervisor, _guards) = start_as_root(&args, &pidfile, &[&child_pidfile]);
    let child = read_pidfile(&child_pidfile);
    let answered = || std::fs::read_to_string(&answer).is_ok_and(|t| t.ends_with('\n'));
    assert!(wait_until(COMMAND_TIMEOUT, answered), "COMMAND never tried");
    assert_ne!(std::fs::read_to_string(&answer).unwrap().trim(), "0", "kill -9 $PPID worked");
    assert!(alive(supervisor), "the supervisor was killed by its COMMAND");

    let uid = user.uid.as_raw().to_string();
    assert_eq!(uids(supervisor), ["0", uid.as_str(), "0", uid.as_str()]);
    assert_eq!(uids(child), [uid.as_str(); 4], "COMMAND must not be able to regain root");

    let output = daemonize(&["--stop", "-p", s(&pidfile)]);
    assert!(output.status.success(), "{}", describe("daemonize --stop", &output));
    assert!(wait_gone(child, COMMAND_TIMEOUT) && !alive(supervisor));
}

// Item 9: `--retry 15/2/9/1` waited 27 s and sent no signal (numbers are timeouts, as in
// start-stop-daemon); `-15` is how a signal number is written there.
#[test]
fn retry_takes_minus_signal_numbers_and_refuses_waits_in_a_row() {
    let dir = TempDir::new("hard-retry");
    let pidfile = dir.join("none.pid");
    let output = daemonize(&["--stop", "-p", s(&pidfile), "--retry", "-15/1/-9/1"]);
    let shown = describe("daemonize --stop --retry -15/1/-9/1", &output);
    assert_eq!(code(&output.status), 0, "{shown}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "not running\n", "{shown}");
    let output = daemonize(&["--stop", "-p", s(&pidfile), "--retry", "15/2/9/1"]);
    let shown = describe("daemonize --stop --retry 15/2/9/1", &output);
    assert_eq!(code(&output.status), 3, "{shown}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("follows another timeout") && stderr.contains("-2"), "{shown}");
}

// Issue 11: /dev/null is opened in one open(2), without the walk from / that other paths get,
// and checked to be the null device (character device 1:3). A regular file mounted over it (in
// a private mount namespace) must be refused, not handed to the daemon as its streams.
#[test]
fn dev_null_that_is_not_the_null_device_is_refused() {
    let test = "dev_null_that_is_not_the_null_device_is_refused";
    if skip_unless_root(test) {
        return;
    }
    let dir = TempDir::new("fake-null");
    let fake = dir.join("fake-null");
    std::fs::write(&fake, "").unwrap();
    let pidfile = dir.join("d.pid");
    // Exit 20 when the start succeeded: the script stops that daemon itself, by its pid.
    let script = format!(
        "mount --bind {fake} /dev/null || exit 30
         {daemonize} -p {pidfile} -- sleep 1000; s=$?
         [ $s = 0 ] && kill $(cat {pidfile}) && exit 20
         exit $s",
        fake = fake.display(),
        daemonize = daemonize_bin().display(),
        pidfile = pidfile.display(),
    );
    let output = run(Command::new("unshare").args(["--mount", "sh", "-c", &script]));
    let context = describe(&format!("unshare --mount sh -c {script:?}"), &output);
    if code(&output.status) == 30 || String::from_utf8_lossy(&output.stderr).contains("unshare") {
        skip(&format!("{test} needs a private mount namespace: {context}"));
        return;
    }
    assert_eq!(code(&output.status), 5, "{context}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/dev/null: No such device"), "{context}");
    assert!(!pidfile.exists(), "pidfile left behind: {context}");
    assert_eq!(std::fs::read(&fake).unwrap(), b"", "{context}");
}
