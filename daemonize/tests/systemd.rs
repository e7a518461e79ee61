//! Under systemd and in containers: socket activation passed through, readiness relayed to a
//! parent notify socket, the units in examples/systemd/, and daemonize as PID 1.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

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
fn activation_for_another_process_is_ignored() {
    let dir = TempDir::new("activation-foreign");
    // LISTEN_PID names pid 1: the socket on 3 is not daemonize's, and neither are the variables.
    let mut started = Started::spawn(&mut activated(&dir, Some(1), &["--foreground"], &["--once"]));
    let (status, stderr) = started.wait();
    assert_eq!(code(&status), 3, "{stderr}");
    assert!(stderr.contains("(LISTEN_PID=-)"), "{stderr}");
}
