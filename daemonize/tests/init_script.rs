//! The command route as users deploy it: `examples/init.d/echo-server` run for real through
//! `sh`, and the systemd units in `examples/systemd/` checked against `daemonize --help`.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long the test waits for a daemon to listen or to be gone.
const DEADLINE: Duration = Duration::from_secs(10);

/// A file of this crate, by its path relative to the manifest directory.
/// A file of the repository (the workspace root, above this package).
fn in_crate(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// A port nobody listens on now: bound on 127.0.0.1:0, read, released.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `examples/init.d/echo-server` with its settings, run by `sh` as an init system would.
struct InitScript {
    dir: TempDir,
    daemon: PathBuf,
    port: String,
}

impl InitScript {
    fn new(test: &str) -> InitScript {
        InitScript {
            dir: TempDir::new(test),
            daemon: example("tcp_echo"),
            port: free_port().to_string(),
        }
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("echo-server.pid")
    }

    fn logfile(&self) -> PathBuf {
        self.dir.join("echo-server.log")
    }

    /// Runs `sh examples/init.d/echo-server ACTION`.
    fn run(&self, action: &str) -> Output {
        run(Command::new("sh")
            .arg(in_crate("examples/init.d/echo-server"))
            .arg(action)
            .env("DAEMONIZE", daemonize_bin())
            .env("DAEMON", &self.daemon)
            .env("PORT", &self.port)
            .env("PIDFILE", self.pidfile())
            .env("LOGFILE", self.logfile())
            .env_remove("RUNAS"))
    }

    /// Runs ACTION and asserts its exit code; returns its stdout.
    fn expect(&self, action: &str, expected: i32) -> String {
        let output = self.run(action);
        let command = format!("echo-server {action} (PORT={})", self.port);
        assert_eq!(code(&output.status), expected, "{}", describe(&command, &output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The live processes running exactly `DAEMON PORT`: this test's servers, whatever
    /// started them (the daemonize that execs one has `daemonize` as its argv[0]).
    fn servers(&self) -> Vec<i32> {
        let wanted = [self.daemon.as_os_str().as_encoded_bytes(), self.port.as_bytes()];
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| alive(*pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                    args.len() >= 2 && args[..2] == wanted
                })
            })
            .collect()
    }

    /// Connects to the server (it binds after daemonize returns, so retry for a while), sends
    /// a line and asserts it comes back.
    fn assert_echoes(&self, line: &str) {
        let address = format!("127.0.0.1:{}", self.port);
        let mut stream = None;
        let connected = wait_until(DEADLINE, || {
            stream = TcpStream::connect(&address).ok();
            stream.is_some()
        });
        assert!(connected, "nothing listens on {address} after {DEADLINE:?}");
        let mut stream = stream.unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.write_all(line.as_bytes()).unwrap();
        let mut echoed = vec![0; line.len()];
        stream.read_exact(&mut echoed).unwrap_or_else(|e| panic!("no echo from {address}: {e}"));
        assert_eq!(String::from_utf8_lossy(&echoed), line);
    }

    /// The pid in the pidfile, which must be a live server of this test.
    fn running_pid(&self) -> i32 {
        let pid = read_pidfile(&self.pidfile());
        assert!(alive(pid), "pidfile names pid {pid}, which is not alive");
        pid
    }
}

/// Disarms a guard once its process is known to be gone, so that its pid, which may be reused
/// by then, is never signalled.
fn gone(guard: Spawned) {
    let pid = guard.0;
    assert!(wait_gone(pid, DEADLINE), "pid {pid} is still alive after {DEADLINE:?}");
    std::mem::forget(guard);
}

#[test]
fn init_script_start_status_restart_stop() {
    let script = InitScript::new("init-script");

    let stdout = script.expect("start", 0);
    assert!(stdout.contains("started"), "start said {stdout:?}");
    let first = Spawned::new(read_pidfile(&script.pidfile()));
    let pid = script.running_pid();
    assert_eq!(script.servers(), vec![pid], "the pidfile does not name the one server");
    script.assert_echoes("hello\n");
    let log = std::fs::read_to_string(script.logfile()).unwrap();
    assert!(log.contains("listening on"), "the server's stdout is not in the log: {log:?}");

    let stdout = script.expect("status", 0);
    assert!(stdout.contains(&format!("echo-server: running (pid {pid})")), "status: {stdout:?}");

    let stdout = script.expect("start", 0);
    assert!(stdout.contains("echo-server is already running"), "second start: {stdout:?}");
    assert_eq!(script.running_pid(), pid, "a second start replaced the server");
    assert_eq!(script.servers(), vec![pid], "a second start started another server");

    script.expect("restart", 0);
    let second = Spawned::new(read_pidfile(&script.pidfile()));
    let new_pid = script.running_pid();
    assert_ne!(new_pid, pid, "restart kept the old server");
    gone(first);
    assert_eq!(script.servers(), vec![new_pid], "restart left other servers");
    script.assert_echoes("hello again\n");
    let log = std::fs::read_to_string(script.logfile()).unwrap();
    assert_eq!(log.matches("listening on").count(), 2, "the log was not appended to: {log:?}");

    let stdout = script.expect("stop", 0);
    assert!(stdout.contains(&format!("stopped (pid {new_pid})")), "stop said {stdout:?}");
    gone(second);
    assert!(!script.pidfile().exists(), "stop left the pidfile behind");
    assert_eq!(script.servers(), Vec::<i32>::new(), "stop left a server behind");

    let stdout = script.expect("status", 3);
    assert!(stdout.contains("echo-server: not running"), "status after stop: {stdout:?}");

    let stdout = script.expect("stop", 0);
    assert!(stdout.contains("not running"), "second stop said {stdout:?}");
}

#[test]
fn init_script_start_speaks_lsb_codes() {
    // A missing program is "not installed" (5) to an init system, not daemonize's 127.
    let mut script = InitScript::new("init-script-missing");
    script.daemon = script.dir.join("no-such-server");
    let output = script.run("start");
    assert_eq!(code(&output.status), 5, "{}", describe("echo-server start", &output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("daemonize: cannot execute"), "the reason was lost: {stderr}");
    assert!(!script.pidfile().exists(), "a failed start left the pidfile");
    // An unknown user is "not configured" (6).
    let output = run(Command::new("sh")
        .arg(in_crate("examples/init.d/echo-server"))
        .arg("start")
        .env("DAEMONIZE", daemonize_bin())
        .env("DAEMON", example("tcp_echo"))
        .env("PIDFILE", script.pidfile())
        .env("LOGFILE", script.logfile())
        .env("RUNAS", "no-such-user-daemonctx"));
    assert_eq!(code(&output.status), 6, "{}", describe("RUNAS=no-such-user start", &output));
}

/// The options `daemonize --help` documents: the leading `-x`/`--long` words of its option lines.
fn documented_options() -> Vec<String> {
    let output = run(Command::new(daemonize_bin()).arg("--help"));
    assert!(output.status.success(), "{}", describe("daemonize --help", &output));
    let help = String::from_utf8(output.stdout).unwrap();
    help.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .flat_map(|line| {
            line.split_whitespace()
                .take_while(|word| word.starts_with('-'))
                .map(|word| word.trim_end_matches(',').to_string())
        })
        .collect()
}

/// The `KEY=VALUE` settings of a unit file, in order.
fn unit_settings(unit: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(unit).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// The `Exec*=` command lines of a unit file, keyed by their directive.
fn exec_lines(unit: &Path) -> Vec<(String, String)> {
    unit_settings(unit).into_iter().filter(|(key, _)| key.starts_with("Exec")).collect()
}

#[test]
fn systemd_units_use_options_daemonize_accepts() {
    let documented = documented_options();
    assert!(documented.iter().any(|o| o == "--pidfile"), "help not parsed: {documented:?}");
    let units = [
        ("echo-server-forking.service", vec!["ExecStart", "ExecReload", "ExecStop"]),
        ("echo-server-simple.service", vec!["ExecStart"]),
        ("echo-server-notify.service", vec!["ExecStart"]),
        ("echo-server-activated.service", vec!["ExecStart"]),
    ];
    for (name, directives) in units {
        let unit = in_crate("examples/systemd").join(name);
        let lines = exec_lines(&unit);
        let found: Vec<&str> = lines.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(found, directives, "{}: unexpected Exec lines", unit.display());
        let settings = unit_settings(&unit);
        let setting = |key: &str| settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if name.contains("forking") {
            // systemd reads PIDFile= once ExecStart returns: it must be the file -p writes.
            assert_eq!(setting("Type"), Some("forking"), "{}", unit.display());
            let pidfile = setting("PIDFile").expect("a forking unit needs PIDFile=");
            let start = &lines[0].1;
            assert!(start.contains(&format!("-p {pidfile} ")), "{}: {start}", unit.display());
            assert!(lines[1].1.contains(&format!("-p {pidfile}")), "{}", unit.display());
            assert!(lines[2].1.contains(&format!("-p {pidfile} ")), "{}", unit.display());
            // stderr goes somewhere: a "cannot bind" must not vanish.
            assert!(start.contains(" -e "), "{}: no -e: {start}", unit.display());
        } else if name.contains("notify") {
            // The supervisor is the main process and speaks for COMMAND.
            assert_eq!(setting("Type"), Some("notify"), "{}", unit.display());
            let start = &lines[0].1;
            for option in ["--foreground", "--supervise", "--wait-ready notify"] {
                assert!(start.contains(option), "{}: {start}", unit.display());
            }
        } else {
            assert_eq!(setting("Type"), Some("simple"), "{}", unit.display());
            assert!(lines[0].1.contains("--foreground"), "{}", unit.display());
        }
        for (key, command) in &lines {
            let words: Vec<&str> = command.split_whitespace().collect();
            assert!(
                words.first().is_some_and(|program| *program == "/usr/local/bin/daemonize"),
                "{}: {key} does not run daemonize: {command}",
                unit.display()
            );
            if key == "ExecStart" {
                assert!(words.contains(&"--"), "{}: {key} lacks `--`: {command}", unit.display());
            }
            let options = words[1..].iter().take_while(|word| **word != "--");
            for option in options.filter(|word| word.starts_with('-')) {
                let name = option.split('=').next().unwrap();
                assert!(
                    documented.iter().any(|o| o == name),
                    "{}: {key} uses {option}, which `daemonize --help` does not list: {command}",
                    unit.display()
                );
            }
        }
    }
}

#[test]
fn init_script_reload_sends_hup_to_the_server_which_runs_on() {
    let script = InitScript::new("init-script-reload");
    script.expect("start", 0);
    let guard = Spawned::new(read_pidfile(&script.pidfile()));
    let pid = script.running_pid();
    script.assert_echoes("before\n");
    let stdout = script.expect("reload", 0);
    assert!(stdout.contains(&format!("sent SIGHUP (pid {pid})")), "reload said {stdout:?}");
    let reloaded =
        || std::fs::read_to_string(script.logfile()).is_ok_and(|log| log.contains("SIGHUP"));
    assert!(wait_until(DEADLINE, reloaded), "the server did not get SIGHUP");
    assert_eq!(script.running_pid(), pid, "reload replaced the server");
    script.assert_echoes("after\n");
    script.expect("stop", 0);
    gone(guard);
    let stdout = script.expect("reload", 7);
    assert!(stdout.is_empty(), "reload of a stopped server said {stdout:?}");
}

#[test]
fn init_script_refuses_a_daemonize_that_is_not_ours() {
    let script = InitScript::new("init-script-other-daemonize");
    // Debian's daemonize prints its usage to unknown options; this one says another version.
    let other = script.dir.join("daemonize");
    std::fs::write(&other, "#!/bin/sh\necho 'daemonize 1.7.8'\nexit 1\n").unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (action, expected) in [("start", 5), ("status", 4), ("stop", 5)] {
        let output = run(Command::new("sh")
            .arg(in_crate("examples/init.d/echo-server"))
            .arg(action)
            .env("DAEMONIZE", &other)
            .env("DAEMON", &script.daemon)
            .env("PORT", &script.port)
            .env("PIDFILE", script.pidfile())
            .env("LOGFILE", script.logfile()));
        let shown = describe(&format!("echo-server {action} with another daemonize"), &output);
        assert_eq!(code(&output.status), expected, "{shown}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is not daemonctx's daemonize"), "{shown}");
    }
    assert!(!script.pidfile().exists());
    assert_eq!(script.servers(), Vec::<i32>::new());
}
