//! Under systemd and in containers: socket activation passed through, readiness relayed to a
//! parent notify socket, the units in examples/systemd/, and daemonize as PID 1.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::*;

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A process the test started in a process group of its own; the group, and every descendant,
/// are killed and awaited when dropped.
struct Started {
    child: Child,
    _group: SpawnedGroup,
}

impl Started {
    fn spawn(command: &mut Command) -> Started {
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        let group = SpawnedGroup(child.id() as i32);
        Started { child, _group: group }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (bounded) for the process to exit; its status and its stderr.
    fn wait(&mut self) -> (ExitStatus, String) {
        assert!(wait_gone(self.pid(), COMMAND_TIMEOUT), "pid {} did not exit", self.pid());
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

/// `activation listen PORTFILE [--for-pid N] -- daemonize ARGS -- activation serve SERVE`.
fn activated(dir: &TempDir, for_pid: Option<u32>, args: &[&str], serve: &[&str]) -> Command {
    let mut command = Command::new(example("activation"));
    command.arg("listen").arg(dir.join("port"));
    if let Some(pid) = for_pid {
        command.args(["--for-pid", &pid.to_string()]);
    }
    command.arg("--").arg(daemonize_bin()).args(args).arg("--").arg(example("activation"));
    command.arg("serve").args(serve);
    command
}

/// Waits for the port file, then connects and reads the line the service answers with:
/// `pid=P listen_pid=L fds=N names=X` as a map.
fn ask_service(dir: &TempDir) -> std::collections::HashMap<String, String> {
    let portfile = dir.join("port");
    assert!(wait_until(COMMAND_TIMEOUT, || portfile.exists()), "no port file");
    let port: u16 = std::fs::read_to_string(&portfile).unwrap().trim().parse().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the socket");
    stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    let mut line = String::new();
    stream.read_to_string(&mut line).expect("read the answer");
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn foreground_exec_passes_activated_socket_on() {
    let dir = TempDir::new("activation-foreground");
    let mut started = Started::spawn(&mut activated(&dir, None, &["--foreground"], &["--once"]));
    let answer = ask_service(&dir);
    // COMMAND took daemonize's place, and so its pid, which LISTEN_PID keeps naming.
    assert_eq!(answer["pid"], started.pid().to_string(), "{answer:?}");
    assert_eq!(answer["listen_pid"], answer["pid"], "{answer:?}");
    assert_eq!((answer["fds"].as_str(), answer["names"].as_str()), ("1", "web"));
    let (status, stderr) = started.wait();
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn detached_exec_rewrites_listen_pid_for_command() {
    let dir = TempDir::new("activation-detached");
    let pidfile = dir.join("d.pid");
    let mut started = Started::spawn(&mut activated(&dir, None, &["-p", s(&pidfile)], &["--once"]));
    let (status, stderr) = started.wait();
    let _guard = guard_pidfile(&pidfile);
    assert!(status.success(), "{status}: {stderr}");
    let daemon = read_pidfile(&pidfile);
    let answer = ask_service(&dir);
    assert_eq!(answer["pid"], daemon.to_string(), "{answer:?}");
    assert_eq!(answer["listen_pid"], answer["pid"], "{answer:?}");
    assert_eq!((answer["fds"].as_str(), answer["names"].as_str()), ("1", "web"));
}

#[test]
fn supervised_command_keeps_activated_socket_across_restarts() {
    let dir = TempDir::new("activation-supervised");
    let args = ["--foreground", "--supervise", "--restart", "always", "--restart-delay", "0.1"];
    let started = Started::spawn(&mut activated(&dir, None, &args, &["--once"]));
    let first = ask_service(&dir);
    // COMMAND is the supervisor's child: LISTEN_PID names COMMAND, not the supervisor.
    assert_ne!(first["pid"], started.pid().to_string(), "{first:?}");
    assert_eq!(first["listen_pid"], first["pid"], "{first:?}");
    assert_eq!((first["fds"].as_str(), first["names"].as_str()), ("1", "web"));
    // It exited after one answer; the restarted COMMAND serves the same socket.
    let second = ask_service(&dir);
    assert_ne!(second["pid"], first["pid"], "{second:?}");
    assert_eq!(second["listen_pid"], second["pid"], "{second:?}");
}

#[test]
fn two_activated_sockets_and_their_names_reach_every_command() {
    // LISTEN_FDS=2, LISTEN_FDNAMES=web:admin: both descriptors, in every mode, restarts included.
    let modes: [&[&str]; 3] = [
        &["--foreground"],
        &["--foreground", "--supervise", "--restart", "always", "--restart-delay", "0.1"],
        &["--supervise", "-p"],
    ];
    for mode in modes {
        let dir = TempDir::new("activation-two");
        let pidfile = dir.join("d.pid");
        let mut args = mode.to_vec();
        if args.last() == Some(&"-p") {
            args.push(s(&pidfile));
        }
        let mut command = Command::new(example("activation"));
        command.arg("listen").arg(dir.join("port")).args(["--two", "--"]);
        command.arg(daemonize_bin()).args(&args).arg("--").arg(example("activation"));
        command.args(["serve", "--once"]);
        let _started = Started::spawn(&mut command);
        let _guard = mode.contains(&"-p").then(|| guard_pidfile(&pidfile));
        let rounds = if mode.contains(&"always") { 2 } else { 1 };
        for _ in 0..rounds {
            let answer = ask_service(&dir);
            assert_eq!(answer["listen_pid"], answer["pid"], "{mode:?}: {answer:?}");
            let got =
                (answer["fds"].as_str(), answer["names"].as_str(), answer["sockets"].as_str());
            assert_eq!(got, ("2", "web:admin", "2"), "{mode:?}: {answer:?}");
        }
    }
}

#[test]
fn detached_supervisor_passes_activated_socket_on() {
    let dir = TempDir::new("activation-detached-supervisor");
    let pidfile = dir.join("s.pid");
    let args = ["--supervise", "-p", s(&pidfile)];
    let mut started = Started::spawn(&mut activated(&dir, None, &args, &[]));
    let (status, stderr) = started.wait();
    let _guard = guard_pidfile(&pidfile);
    assert!(status.success(), "{status}: {stderr}");
    let supervisor = read_pidfile(&pidfile);
    let answer = ask_service(&dir);
    assert_ne!(answer["pid"], supervisor.to_string(), "{answer:?}");
    assert_eq!(answer["listen_pid"], answer["pid"], "{answer:?}");
    assert_eq!((answer["fds"].as_str(), answer["names"].as_str()), ("1", "web"));
}

#[test]
fn ready_fd_on_an_activated_socket_is_a_usage_error() {
    let dir = TempDir::new("activation-ready-fd");
    let args = ["--foreground", "--supervise", "--wait-ready", "fd:3"];
    let mut started = Started::spawn(&mut activated(&dir, None, &args, &["--once"]));
    let (status, stderr) = started.wait();
    assert_eq!(code(&status), 2, "{stderr}");
    assert!(stderr.contains("socket-activated descriptor 3"), "{stderr}");
}

#[test]
fn activation_for_another_process_is_ignored() {
    let dir = TempDir::new("activation-foreign");
    // LISTEN_PID names pid 1: the socket on 3 is not daemonize's, and neither are the variables
    // (nor, under a supervisor, COMMAND's: LISTEN_PID is not rewritten to name it).
    for mode in [&["--foreground"][..], &["--foreground", "--supervise"]] {
        let mut started = Started::spawn(&mut activated(&dir, Some(1), mode, &["--once"]));
        let (status, stderr) = started.wait();
        assert_eq!(code(&status), 3, "{mode:?}: {stderr}");
        assert!(stderr.contains("(LISTEN_PID=-)"), "{mode:?}: {stderr}");
    }
}

/// A fake systemd's notify socket: a datagram socket the test binds (a path, or an abstract
/// `@name`), with `SO_PASSCRED`, so each message comes with its sender's pid.
struct FakeSystemd {
    socket: std::os::unix::net::UnixDatagram,
    address: String,
}

impl FakeSystemd {
    fn bind_path(dir: &TempDir) -> FakeSystemd {
        let path = dir.join("notify");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        FakeSystemd::with_credentials(socket, s(&path).to_string())
    }

    fn bind_abstract(test: &str) -> FakeSystemd {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("daemonctx-test/{test}/{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = std::os::unix::net::UnixDatagram::bind_addr(&address).unwrap();
        FakeSystemd::with_credentials(socket, format!("@{name}"))
    }

    fn with_credentials(socket: std::os::unix::net::UnixDatagram, address: String) -> FakeSystemd {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: on is a valid int for the option's length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_PASSCRED: {}", std::io::Error::last_os_error());
        socket.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
        FakeSystemd { socket, address }
    }

    /// The next message and its sender's pid (`SCM_CREDENTIALS`); `None` after the timeout.
    fn receive(&self, timeout: Duration) -> Option<(i32, String)> {
        use std::os::fd::AsRawFd;
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain old data; all-zero is valid before the fields are set.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: header points to valid buffers for their lengths during the call.
        let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut header, 0) };
        if n < 0 {
            return None;
        }
        let mut pid = 0;
        // SAFETY: recvmsg filled the header; the CMSG macros stay within its control length.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&header);
            while !cmsg.is_null() {
                if ((*cmsg).cmsg_level, (*cmsg).cmsg_type)
                    == (libc::SOL_SOCKET, libc::SCM_CREDENTIALS)
                {
                    let creds =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::ucred);
                    pid = creds.pid;
                }
                cmsg = libc::CMSG_NXTHDR(&header, cmsg);
            }
        }
        Some((pid, String::from_utf8_lossy(&buf[..n as usize]).into_owned()))
    }

    /// Messages until one contains `wanted` (each with its sender's pid); panics after the
    /// timeout with what did arrive.
    fn until(&self, wanted: &str) -> Vec<(i32, String)> {
        let mut seen = Vec::new();
        while let Some(message) = self.receive(COMMAND_TIMEOUT) {
            let done = message.1.lines().any(|line| line == wanted);
            seen.push(message);
            if done {
                return seen;
            }
        }
        panic!("no {wanted:?} on the notify socket; received {seen:?}");
    }
}

/// `daemonize ARGS` with `NOTIFY_SOCKET` naming the fake systemd, started in the test dir.
fn under_systemd(dir: &TempDir, systemd: &FakeSystemd, args: &[&str]) -> Started {
    let mut command = Command::new(daemonize_bin());
    command.args(args).env("NOTIFY_SOCKET", &systemd.address).current_dir(dir.path());
    Started::spawn(&mut command)
}

#[test]
fn foreground_exec_passes_notify_socket_untouched() {
    let dir = TempDir::new("notify-exec");
    for systemd in [FakeSystemd::bind_path(&dir), FakeSystemd::bind_abstract("notify-exec")] {
        let ready = example("notify_ready");
        let started = under_systemd(&dir, &systemd, &["--foreground", "--", s(&ready)]);
        // COMMAND is the main process: it has daemonize's pid and speaks for itself.
        let messages = systemd.until("READY=1");
        assert!(messages.iter().all(|(pid, _)| *pid == started.pid()), "{messages:?}");
        assert_eq!(messages[0].1, "STATUS=warming up", "{messages:?}");
    }
}

#[test]
fn foreground_command_starts_in_invokers_directory() {
    let dir = TempDir::new("foreground-cwd");
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    for mode in [&["--foreground"][..], &["--foreground", "--supervise"]] {
        let mut command = Command::new(daemonize_bin());
        command.args(mode).args(["--", "pwd"]).current_dir(&cwd);
        let output = run(&mut command);
        let shown = describe(&format!("daemonize {} -- pwd", show(mode)), &output);
        assert!(output.status.success(), "{shown}");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), s(&cwd), "{shown}");
        // -c still decides.
        let mut command = Command::new(daemonize_bin());
        command.args(mode).args(["-c", "/tmp", "--", "pwd"]).current_dir(&cwd);
        let output = run(&mut command);
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), "/tmp", "{shown}");
    }
}

#[test]
fn unexecutable_command_is_reported_in_every_mode() {
    let dir = TempDir::new("unexecutable");
    let text = dir.join("not-a-program");
    std::fs::write(&text, "just text\n").unwrap();
    let missing = dir.join("missing");
    let pidfile = dir.join("x.pid");
    let modes: [&[&str]; 4] =
        [&[], &["--foreground"], &["--supervise"], &["--supervise", "--foreground"]];
    for mode in modes {
        for (program, expected) in [(&missing, 127), (&text, 126)] {
            let mut args: Vec<&str> = mode.to_vec();
            args.extend(["-p", s(&pidfile), "--", s(program)]);
            let output = run(Command::new(daemonize_bin()).args(&args));
            let shown = describe(&format!("daemonize {}", show(&args)), &output);
            assert_eq!(code(&output.status), expected, "{shown}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.starts_with("daemonize: "), "{shown}");
            assert!(stderr.contains(s(program)), "{shown}");
            assert!(!pidfile.exists(), "{shown}");
        }
        // A relative path is named as given, in every mode.
        let mut args: Vec<&str> = mode.to_vec();
        args.extend(["--", "./not-a-program"]);
        let output = run(Command::new(daemonize_bin()).args(&args).current_dir(dir.path()));
        let shown = describe(&format!("daemonize {}", show(&args)), &output);
        assert_eq!(code(&output.status), 126, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("daemonize: cannot execute ./not-a-program: "), "{shown}");
    }
}

#[test]
fn foreground_supervisor_waits_for_readiness() {
    let dir = TempDir::new("foreground-wait-ready");
    let args = ["--foreground", "--supervise", "--wait-ready", "fd:3", "--"];
    let output =
        run(Command::new(daemonize_bin()).args(args).args(["sh", "-c", "echo >&3; echo ok"]));
    let shown = describe(&format!("daemonize {}", show(&args)), &output);
    assert!(output.status.success(), "{shown}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ok\n", "{shown}");
    // In exec mode nobody would be left to wait: a usage error that says so.
    let output =
        run(Command::new(daemonize_bin()).args(["--foreground", "--wait-ready", "fd:3", "true"]));
    assert_eq!(
        code(&output.status),
        2,
        "{}",
        describe("daemonize --foreground --wait-ready", &output)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs --supervise"));
    let _ = dir;
}

/// The pid of `parent`'s first child (COMMAND, under a supervisor), once there is one.
fn first_child(parent: i32) -> i32 {
    let mut child = None;
    let found = wait_until(COMMAND_TIMEOUT, || {
        child = daemonctx::process::descendants(parent as u32).first().copied();
        child.is_some()
    });
    assert!(found, "pid {parent} started nothing");
    child.unwrap() as i32
}

/// `NAME`'s value in `pid`'s environment (`/proc/PID/environ`).
fn environ_of(pid: i32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|entry| {
        let entry = String::from_utf8_lossy(entry);
        entry.strip_prefix(&format!("{name}=")).map(str::to_string)
    })
}

/// Sends `message` to the notify socket `address` names (`@name` or a path), from the test.
fn send_notify(address: &str, message: &str) {
    use std::os::linux::net::SocketAddrExt;
    let to = match address.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()),
        None => std::os::unix::net::SocketAddr::from_pathname(address),
    }
    .unwrap();
    let socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
    socket.send_to_addr(message.as_bytes(), &to).unwrap();
}

#[test]
fn foreground_supervisor_relays_readiness_to_parent_systemd() {
    for form in ["path", "abstract"] {
        let dir = TempDir::new("notify-relay");
        let systemd = match form {
            "path" => FakeSystemd::bind_path(&dir),
            _ => FakeSystemd::bind_abstract("notify-relay"),
        };
        let mut gate = Gate::new(&dir);
        let passed =
            ["RELOADING=1", "STOPPING=1", "WATCHDOG=1", "EXTEND_TIMEOUT_USEC=5000000", "FDSTORE=1"];
        let ready = example("notify_ready");
        let mut args = vec!["--foreground", "--supervise", "--wait-ready", "notify", "--"];
        args.extend([s(&ready), s(&gate.path)]);
        args.extend(passed);
        args.push("STATUS=last");
        let mut started = under_systemd(&dir, &systemd, &args);
        let supervisor = started.pid();
        let first = systemd.until("STATUS=warming up");
        assert_eq!(first, vec![(supervisor, "STATUS=warming up".to_string())]);
        // COMMAND talks to the supervisor's socket; a stranger who finds it is not believed.
        let command = first_child(supervisor);
        let socket = environ_of(command, "NOTIFY_SOCKET").expect("COMMAND's NOTIFY_SOCKET");
        assert_ne!(socket, systemd.address, "COMMAND got the parent's socket");
        send_notify(&socket, "STATUS=from a stranger\nREADY=1");
        gate.open();
        let messages = systemd.until("STATUS=last");
        let senders: Vec<i32> = messages.iter().map(|(pid, _)| *pid).collect();
        assert!(senders.iter().all(|pid| *pid == supervisor), "{form}: {messages:?}");
        let lines: Vec<&str> = messages.iter().flat_map(|(_, text)| text.lines()).collect();
        for wanted in ["READY=1", "STATUS=serving"].iter().chain(&passed[..4]) {
            assert_eq!(lines.iter().filter(|l| *l == wanted).count(), 1, "{form}: {lines:?}");
        }
        assert!(!lines.iter().any(|l| l.contains("stranger") || l.starts_with("FDSTORE")));
        // A stop says so, and the supervisor exits with COMMAND's status (SIGTERM: 143).
        kill(supervisor, libc::SIGTERM);
        systemd.until("STOPPING=1");
        let (status, stderr) = started.wait();
        assert_eq!(code(&status), 143, "{form}: {stderr}");
    }
}

#[test]
fn foreground_supervisor_passes_on_the_ready_that_ends_a_reload() {
    // sd_notify(3): a reload starts with RELOADING=1 and ends with READY=1; systemd waits for
    // the latter (`systemctl reload` of Type=notify-reload), so it must be passed on too.
    let dir = TempDir::new("notify-reload");
    let systemd = FakeSystemd::bind_path(&dir);
    let ready = example("notify_ready");
    let args = ["--foreground", "--supervise", "--wait-ready", "notify", "--", s(&ready)];
    let mut all = args.to_vec();
    // /dev/null as the gate: open at once.
    all.extend(["/dev/null", "RELOADING=1\nMONOTONIC_USEC=42", "READY=1", "STATUS=reloaded"]);
    let _started = under_systemd(&dir, &systemd, &all);
    let messages = systemd.until("STATUS=reloaded");
    // One datagram: systemd reads when the reload began from RELOADING=1's own message.
    let texts: Vec<&str> = messages.iter().map(|(_, text)| text.as_str()).collect();
    assert!(texts.contains(&"RELOADING=1\nMONOTONIC_USEC=42"), "{messages:?}");
    let lines: Vec<&str> = messages.iter().flat_map(|(_, text)| text.lines()).collect();
    assert_eq!(
        lines,
        [
            "STATUS=warming up",
            "READY=1",
            "STATUS=serving",
            "RELOADING=1",
            "MONOTONIC_USEC=42",
            "READY=1",
            "STATUS=reloaded"
        ],
        "{messages:?}"
    );
}

#[test]
fn foreground_supervisor_reports_restarts_to_parent_systemd() {
    let dir = TempDir::new("notify-restart");
    let systemd = FakeSystemd::bind_abstract("notify-restart");
    let args = ["--foreground", "--supervise", "--restart", "always", "--restart-delay", "0.1"];
    let mut all = args.to_vec();
    // Absolute: the test must not depend on the directory COMMAND starts in.
    let once = dir.join("once");
    let script = format!("[ -e '{0}' ] && exec sleep 1000; touch '{0}'", s(&once));
    all.extend(["--", "sh", "-c", &script]);
    let started = under_systemd(&dir, &systemd, &all);
    // Without --wait-ready, ready once COMMAND runs.
    assert_eq!(systemd.until("READY=1"), vec![(started.pid(), "READY=1".to_string())]);
    let restarting = systemd.receive(COMMAND_TIMEOUT).expect("a message after READY=1");
    assert_eq!(restarting.0, started.pid());
    assert!(restarting.1.starts_with("STATUS=restarting sh in 0.1 s"), "{restarting:?}");
    let restarted = systemd.receive(COMMAND_TIMEOUT).expect("a message after the restart");
    assert!(restarted.1.starts_with("STATUS=restarted sh (pid "), "{restarted:?}");
}

/// Whether `unshare --fork --pid --mount-proc` works here (root, or user namespaces); says
/// why not, loudly, when it does not.
fn can_unshare_pid(test: &str) -> bool {
    let probe = run(Command::new("unshare").args(["--fork", "--pid", "--mount-proc", "true"]));
    if !probe.status.success() {
        skip(&format!(
            "{test} needs `unshare --fork --pid --mount-proc` ({})",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    probe.status.success()
}

/// `daemonize --supervise --foreground ARGS` as PID 1 of a new pid namespace: the started
/// `unshare`.
fn start_pid1(dir: &TempDir, args: &[&str]) -> Started {
    let mut command = Command::new("unshare");
    command.args(["--fork", "--pid", "--mount-proc", "--"]).arg(daemonize_bin());
    command.args(["--supervise", "--foreground"]).args(args).current_dir(dir.path());
    Started::spawn(&mut command)
}

/// As [`start_pid1`], for a COMMAND that runs until told otherwise: also daemonize's pid as
/// seen from here.
fn as_pid1(dir: &TempDir, args: &[&str]) -> (Started, i32) {
    let started = start_pid1(dir, args);
    let daemonize = first_child(started.pid());
    (started, daemonize)
}

/// Waits until `path` holds `lines` lines; its lines.
fn wait_lines(path: &Path, lines: usize) -> Vec<String> {
    let read = || std::fs::read_to_string(path).unwrap_or_default();
    let enough = wait_until(COMMAND_TIMEOUT, || read().lines().count() >= lines);
    assert!(enough, "{} holds {:?}, fewer than {lines} lines", path.display(), read());
    read().lines().map(str::to_string).collect()
}

#[test]
fn pid1_reaps_orphaned_zombies() {
    if !can_unshare_pid("pid1_reaps_orphaned_zombies") {
        return;
    }
    let dir = TempDir::new("pid1-zombies");
    // 200 orphans, at two depths: each inner shell exits at once, so its child is re-parented
    // to PID 1 and exits there.
    let made = dir.join("made");
    let script = format!(
        "for i in $(seq 100); do sh -c 'sleep 0 & sh -c \"sleep 0 &\"'; done; \
         echo made > '{}'; exec sleep 1000",
        s(&made)
    );
    let (_started, daemonize) = as_pid1(&dir, &["--", "sh", "-c", &script]);
    wait_lines(&made, 1);
    let zombies = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(daemonctx::process::stat)
            .filter(|s| s.ppid == daemonize as u32 && s.state == 'Z')
            .count()
    };
    assert!(wait_until(COMMAND_TIMEOUT, || zombies() == 0), "{} zombies left", zombies());
}

#[test]
fn pid1_forwards_every_catchable_signal_once() {
    if !can_unshare_pid("pid1_forwards_every_catchable_signal_once") {
        return;
    }
    let dir = TempDir::new("pid1-signals");
    let log = dir.join("log");
    let (mut started, daemonize) = as_pid1(&dir, &["--", s(&example("signal_log")), s(&log)]);
    wait_lines(&log, 1);
    let mut sent = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGPIPE,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGWINCH,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        // A plain RTMIN too: only one carrying a queued value is `daemonize --send`'s.
        libc::SIGRTMIN(),
        libc::SIGRTMIN() + 1,
        libc::SIGRTMAX(),
    ];
    // One at a time: the kernel drops a pending SIGCONT when a stop signal comes, and the
    // other way round.
    for (n, signal) in sent.iter().enumerate() {
        assert!(kill(daemonize, *signal), "kill {signal}");
        wait_lines(&log, 2 + n);
    }
    let mut logged: Vec<i32> =
        wait_lines(&log, 1 + sent.len())[1..].iter().map(|l| l.parse().unwrap()).collect();
    // SIGTERM last: COMMAND exits on it, and the supervisor with COMMAND's status.
    kill(daemonize, libc::SIGTERM);
    let (status, stderr) = started.wait();
    assert_eq!(code(&status), 0, "{stderr}");
    let all = wait_lines(&log, 2 + sent.len());
    assert_eq!(all.len(), 2 + sent.len(), "each signal exactly once: {all:?}");
    assert_eq!(all.last().map(String::as_str), Some("15"), "{all:?}");
    logged.sort();
    sent.sort();
    assert_eq!(logged, sent);
}

#[test]
fn pid1_exits_with_commands_status() {
    if !can_unshare_pid("pid1_exits_with_commands_status") {
        return;
    }
    let dir = TempDir::new("pid1-status");
    for (script, expected) in [("exit 7", 7), ("kill -USR1 $$", 128 + libc::SIGUSR1)] {
        let mut started = start_pid1(&dir, &["--", "sh", "-c", script]);
        let (status, stderr) = started.wait();
        assert_eq!(code(&status), expected, "{script}: {stderr}");
    }
}

#[test]
fn pid1_kills_command_ignoring_sigterm_after_kill_after() {
    if !can_unshare_pid("pid1_kills_command_ignoring_sigterm_after_kill_after") {
        return;
    }
    let dir = TempDir::new("pid1-kill-after");
    let trapped = dir.join("trapped");
    let script = format!("trap '' TERM; echo trapped > '{}'; exec sleep 1000", s(&trapped));
    let (mut started, daemonize) =
        as_pid1(&dir, &["--kill-after", "0.5", "--", "sh", "-c", &script]);
    wait_lines(&trapped, 1);
    kill(daemonize, libc::SIGTERM);
    let (status, stderr) = started.wait();
    assert_eq!(code(&status), 128 + libc::SIGKILL, "{stderr}");
    assert!(stderr.contains("sending SIGKILL"), "{stderr}");
}

#[test]
fn slow_graceful_stop_gets_sigterm_once() {
    // COMMAND takes longer than the supervisor's wait before its /proc scan (0.5 s) to stop:
    // the scan must not send its group SIGTERM again (many programs take a second one as
    // "stop now").
    let dir = TempDir::new("slow-stop");
    let log = dir.join("log");
    let script = format!(
        "log='{}'; n=-1; trap 'echo TERM >> \"$log\"; n=15' TERM; echo ready >> \"$log\"; \
         while [ $n -ne 0 ]; do sleep 0.1; [ $n -gt 0 ] && n=$((n-1)); done; echo done >> \"$log\"",
        s(&log)
    );
    let mut command = Command::new(daemonize_bin());
    command.args(["--supervise", "--foreground", "--kill-after", "30", "--", "sh", "-c", &script]);
    let mut started = Started::spawn(&mut command);
    wait_lines(&log, 1);
    kill(started.pid(), libc::SIGTERM);
    let (status, stderr) = started.wait();
    assert!(status.success(), "{status}: {stderr}");
    let lines = wait_lines(&log, 3);
    assert_eq!(lines, ["ready", "TERM", "done"], "{stderr}");
}

#[test]
fn forward_to_group_reaches_every_member_once() {
    let dir = TempDir::new("forward-to-group");
    let (first, second) = (dir.join("first"), dir.join("second"));
    let logger = example("signal_log");
    for (group, expected) in [(false, 0), (true, 1)] {
        let _ = std::fs::remove_file(&first);
        let _ = std::fs::remove_file(&second);
        let mut args = vec!["--supervise", "--foreground"];
        if group {
            args.push("--forward-to-group");
        }
        args.extend(["--", s(&logger), s(&first), "--child", s(&second)]);
        let mut command = Command::new(daemonize_bin());
        command.args(&args);
        let mut started = Started::spawn(&mut command);
        wait_lines(&first, 1);
        wait_lines(&second, 1);
        kill(started.pid(), libc::SIGRTMIN() + 2);
        let rt = (libc::SIGRTMIN() + 2).to_string();
        assert_eq!(wait_lines(&first, 2), vec!["ready".to_string(), rt.clone()]);
        // The stop reaches both (the group, once): each logs SIGTERM after what it got.
        kill(started.pid(), libc::SIGTERM);
        let (status, stderr) = started.wait();
        assert!(status.success(), "{stderr}");
        let second_log = wait_lines(&second, 2);
        let forwarded = second_log.iter().filter(|l| **l == rt).count();
        assert_eq!(forwarded, expected, "--forward-to-group {group}: {second_log:?}");
        assert_eq!(second_log.last().map(String::as_str), Some("15"), "{second_log:?}");
        assert_eq!(second_log.iter().filter(|l| *l == "15").count(), 1, "{second_log:?}");
    }
}

/// The example units, with the installed paths replaced by the binaries under test.
fn example_units(dir: &TempDir) -> Vec<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace("/usr/local/bin/daemonize", s(&daemonize_bin()))
            .replace("/usr/local/bin/tcp_echo", s(&example("tcp_echo")));
        let copy = dir.join(path.file_name().unwrap().to_str().unwrap());
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    units.sort();
    units
}

#[test]
fn example_units_pass_systemd_analyze_verify() {
    let test = "example_units_pass_systemd_analyze_verify";
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        skip(&format!("{test} needs systemd-analyze"));
        return;
    }
    let dir = TempDir::new("systemd-analyze");
    let units = example_units(&dir);
    let names: Vec<String> =
        units.iter().map(|u| u.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for wanted in ["echo-server-notify.service", "echo-server-activated.socket"] {
        assert!(names.iter().any(|n| n == wanted), "examples/systemd lacks {wanted}: {names:?}");
    }
    let output = run(Command::new("systemd-analyze").arg("verify").args(&units));
    let shown = describe(&format!("systemd-analyze verify {}", show(&names)), &output);
    assert!(output.status.success(), "{shown}");
    // Warnings (an unknown key, a bad value) do not change the exit status: none is allowed.
    assert!(output.stderr.is_empty() && output.stdout.is_empty(), "{shown}");
}

#[test]
fn supervised_example_units_let_the_supervisor_signal_command() {
    // KillMode=control-group (the default) sends SIGTERM to every process of the unit at once:
    // COMMAND would get it from systemd and again from the supervisor's stop.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let supervised =
            text.lines().any(|l| l.starts_with("ExecStart=") && l.contains("--supervise"));
        if supervised {
            assert!(
                text.lines().any(|l| l.trim() == "KillMode=mixed"),
                "{} runs a supervisor without KillMode=mixed",
                path.display()
            );
        }
    }
}

#[test]
fn activated_tcp_echo_echoes_through_supervisor() {
    use std::io::Write;
    let dir = TempDir::new("activated-tcp-echo");
    let mut command = Command::new(example("activation"));
    command.arg("listen").arg(dir.join("port")).arg("--").arg(daemonize_bin());
    command.args(["--foreground", "--supervise", "--"]).arg(example("tcp_echo"));
    let _started = Started::spawn(&mut command);
    let portfile = dir.join("port");
    assert!(wait_until(COMMAND_TIMEOUT, || portfile.exists()), "no port file");
    let port: u16 = std::fs::read_to_string(&portfile).unwrap().trim().parse().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    stream.write_all(b"hello\n").unwrap();
    let mut echoed = [0u8; 6];
    stream.read_exact(&mut echoed).expect("the echo");
    assert_eq!(&echoed, b"hello\n");
}

#[test]
fn interactive_command_gets_the_terminal_with_job_control() {
    // pty_run: daemonize leads a session whose controlling terminal is a fresh pseudo-terminal.
    let dir = TempDir::new("interactive");
    let script = "test -t 0 && echo stdin-is-a-terminal; \
                  read _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat; echo pgrp=$pgrp tpgid=$tpgid; \
                  kill -TSTP $$; echo continued";
    let mut command = Command::new(example("pty_run"));
    command.arg(daemonize_bin()).args(["--supervise", "--foreground", "--", "sh", "-c", script]);
    let mut started = Started::spawn(command.current_dir(dir.path()));
    let daemonize = first_child(started.pid());
    // ^Z stops COMMAND; as a shell's job, the supervisor stops too, giving the terminal back.
    let stopped = || proc_stat(daemonize).state == 'T';
    assert!(wait_until(COMMAND_TIMEOUT, stopped), "daemonize never stopped with COMMAND");
    // `fg`: the shell continues the supervisor, which continues COMMAND on the terminal.
    kill(daemonize, libc::SIGCONT);
    let (status, stderr) = started.wait();
    let mut stdout = String::new();
    started.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "{status}: {stdout} {stderr}");
    assert!(stdout.contains("stdin-is-a-terminal"), "{stdout}");
    let ids = stdout.lines().find(|l| l.starts_with("pgrp=")).expect("the ids line");
    let (pgrp, tpgid) = ids.trim().split_once(' ').unwrap();
    assert_eq!(pgrp.trim_start_matches("pgrp="), tpgid.trim_start_matches("tpgid="), "{stdout}");
    assert!(stdout.contains("continued"), "{stdout}");
}

#[test]
fn pid1_on_a_terminal_continues_a_stopped_command() {
    // `docker run -it`: PID 1 cannot stop itself and has no shell above it to say `fg`, so ^Z
    // must not leave COMMAND stopped for good.
    if !can_unshare_pid("pid1_on_a_terminal_continues_a_stopped_command") {
        return;
    }
    let dir = TempDir::new("pid1-terminal");
    let mut command = Command::new(example("pty_run"));
    command.args(["unshare", "--fork", "--pid", "--mount-proc", "--"]).arg(daemonize_bin());
    command.args([
        "--supervise",
        "--foreground",
        "--",
        "sh",
        "-c",
        "kill -TSTP $$; echo continued",
    ]);
    let mut started = Started::spawn(command.current_dir(dir.path()));
    let (status, stderr) = started.wait();
    let mut stdout = String::new();
    started.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "{status}: {stdout} {stderr}");
    assert!(stdout.contains("continued"), "{stdout}");
}

#[test]
fn a_supervisor_that_cannot_start_command_gives_the_terminal_back() {
    // COMMAND's child side takes the terminal before execve(2); when that fails, the shell
    // (here one without job control, which never takes the terminal back itself) must find
    // its own group in the foreground again, or its next read of the terminal stops it.
    let script = "\"$1\" --supervise --foreground -- /nonexistent/command; \
                  read _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat; echo pgrp=$pgrp tpgid=$tpgid";
    let mut command = Command::new(example("pty_run"));
    let output = run(command.args(["sh", "-c", script, "sh"]).arg(daemonize_bin()));
    let shown =
        describe("pty_run sh -c 'daemonize --supervise -f -- /nonexistent/command'", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let ids = stdout.lines().find(|l| l.starts_with("pgrp=")).expect(&shown);
    let (pgrp, tpgid) = ids.trim().split_once(' ').expect(&shown);
    assert_eq!(pgrp.trim_start_matches("pgrp="), tpgid.trim_start_matches("tpgid="), "{shown}");
}

#[test]
fn foreground_exec_command_on_a_terminal_gets_it_as_stdin() {
    let script = "test -t 0 && echo stdin-is-a-terminal";
    let output = run(Command::new(example("pty_run")).arg(daemonize_bin()).args([
        "--foreground",
        "--",
        "sh",
        "-c",
        script,
    ]));
    let shown = describe("pty_run daemonize --foreground -- sh -c ...", &output);
    assert!(output.status.success(), "{shown}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("stdin-is-a-terminal"), "{shown}");
}

#[test]
fn signal_descendants_reaches_each_process_once() {
    // What a supervisor's stop does: one call, COMMAND's group among the groups signalled. A
    // realtime signal is queued, not merged: a second sending shows as a second line.
    let dir = TempDir::new("signal-once");
    let (first, second) = (dir.join("first"), dir.join("second"));
    let logger = example("signal_log");
    let mut command = Command::new(daemonize_bin());
    command.args(["--supervise", "--foreground", "--"]).arg(&logger);
    command.arg(&first).arg("--child").arg(&second);
    let started = Started::spawn(&mut command);
    wait_lines(&first, 1);
    wait_lines(&second, 1);
    let signal = libc::SIGRTMIN() + 3;
    let supervisor = daemonctx::process::Pinned::open(started.pid() as u32).unwrap();
    daemonctx::process::signal_descendants(&supervisor, signal);
    let expected = vec!["ready".to_string(), signal.to_string()];
    assert_eq!(wait_lines(&first, 2), expected);
    assert_eq!(wait_lines(&second, 2), expected);
    // A pending duplicate would come out before a higher-numbered realtime signal sent after
    // it: the next line must be that one.
    let marker = signal + 1;
    daemonctx::process::signal_descendants(&supervisor, marker);
    assert_eq!(wait_lines(&first, 3)[2], marker.to_string(), "{:?}", wait_lines(&first, 3));
    assert_eq!(wait_lines(&second, 3)[2], marker.to_string(), "{:?}", wait_lines(&second, 3));
}

#[test]
fn foreground_supervisor_reports_a_ready_timeout_on_stderr() {
    let args = ["--foreground", "--supervise", "--wait-ready", "fd:3", "--ready-timeout", "0.3"];
    let output = run(Command::new(daemonize_bin()).args(args).args(["--", "sleep", "1000"]));
    let shown = describe(&format!("daemonize {} -- sleep 1000", show(&args)), &output);
    assert_eq!(code(&output.status), 8, "{shown}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("daemonize: sleep was not ready after 0.3 s"), "{shown}");
}

#[test]
fn foreground_supervisor_relays_status_without_wait_ready() {
    let dir = TempDir::new("notify-relay-only");
    let systemd = FakeSystemd::bind_path(&dir);
    let ready = example("notify_ready");
    let started = under_systemd(&dir, &systemd, &["--foreground", "--supervise", "--", s(&ready)]);
    // Ready once COMMAND runs; what COMMAND says later is passed on, its READY=1 is old news.
    let messages = systemd.until("STATUS=serving");
    assert!(messages.iter().all(|(pid, _)| *pid == started.pid()), "{messages:?}");
    let lines: Vec<&str> = messages.iter().flat_map(|(_, text)| text.lines()).collect();
    assert_eq!(lines, ["READY=1", "STATUS=warming up", "STATUS=serving"], "{messages:?}");
}

#[test]
fn watchdog_pid_names_the_supervised_command() {
    // systemd sets WATCHDOG_PID to the main pid: daemonize's. The watchdog is COMMAND's to feed
    // (its WATCHDOG=1 is passed on), so sd_watchdog_enabled(3) must find its own pid there.
    let dir = TempDir::new("watchdog-pid");
    let seen = dir.join("seen");
    let report = format!(
        "echo \"${{WATCHDOG_PID:--}} $$ ${{WATCHDOG_USEC:--}}\" > '{}'; exec sleep 1000",
        s(&seen)
    );
    for (watchdog_pid, expected_usec) in [("$$", "5000000"), ("1", "-")] {
        let _ = std::fs::remove_file(&seen);
        let launcher = format!(
            "WATCHDOG_PID={watchdog_pid} WATCHDOG_USEC=5000000 exec \"$0\" --foreground \
             --supervise -- sh -c \"$1\""
        );
        let mut command = Command::new("sh");
        command.args(["-c", &launcher]).arg(daemonize_bin()).arg(&report);
        let _started = Started::spawn(&mut command);
        let line = wait_lines(&seen, 1).remove(0);
        let fields: Vec<&str> = line.split(' ').collect();
        match expected_usec {
            "-" => assert_eq!(fields, ["-", fields[1], "-"], "foreign watchdog kept: {line}"),
            usec => assert_eq!(fields, [fields[1], fields[1], usec], "{line}"),
        }
    }
}
