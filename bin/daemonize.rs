//! `daemonize`: run a command as a daemon, or check and stop one by its pidfile.
//!
//! Argument parsing and wiring only: every mechanism lives in the `daemonctx` library.

mod cli;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use daemonctx::stop::{self, Schedule, Stopped};
use daemonctx::{Command, DaemonContext, Error, Pidfile, SignalMap, Status, Step, Stream};

use cli::Cli;

/// Exit codes of a start (documented in `cli::AFTER_LONG_HELP`).
mod code {
    pub const ALREADY_RUNNING: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNKNOWN_USER: u8 = 3;
    pub const BAD_DIRECTORY: u8 = 4;
    pub const OUTPUT_FILE: u8 = 5;
    pub const PIDFILE: u8 = 6;
    pub const SETUP: u8 = 7;
    pub const NOT_EXECUTABLE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            eprintln!("daemonize: {} (see daemonize --help)", first.trim_start_matches("error: "));
            return ExitCode::from(code::USAGE);
        }
    };
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    if cli.status {
        return status(&cli);
    }
    if cli.stop {
        return stop(&cli);
    }
    match start(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("daemonize: {}", daemonctx::error::chain(&e));
            exit_code(&e)
        }
    }
}

/// Maps a start failure to its documented exit code.
fn exit_code(error: &Error) -> u8 {
    match error {
        Error::AlreadyRunning { .. } => code::ALREADY_RUNNING,
        Error::UnknownUser { .. } => code::UNKNOWN_USER,
        Error::UnsafePidfile { .. } => code::PIDFILE,
        Error::Os { step, source, .. } => match step {
            Step::LookupUser => code::UNKNOWN_USER,
            Step::Chdir | Step::Chroot => code::BAD_DIRECTORY,
            Step::OpenStream => code::OUTPUT_FILE,
            Step::OpenPidfile | Step::LockPidfile | Step::WritePidfile => code::PIDFILE,
            Step::Exec if source.raw_os_error() == Some(libc::ENOENT) => code::NOT_FOUND,
            Step::Exec => code::NOT_EXECUTABLE,
            _ => code::SETUP,
        },
        _ => code::SETUP,
    }
}

/// Starts COMMAND: builds the context from the options and hands it to the library.
fn start(cli: Cli) -> Result<(), Error> {
    let env = environment(cli.clear_env, cli.env);
    let program = cli.command[0].clone();
    let command = Command::new(cli.command, env);
    let output = |path: std::path::PathBuf| match cli.append {
        true => Stream::Append(path),
        false => Stream::Truncate(path),
    };
    let mut context = DaemonContext::new()
        .working_directory(&cli.chdir)
        .umask(cli.umask)
        .prevent_core(!cli.core)
        .detach_process(!cli.foreground)
        .pidfile_mode(cli.pidfile_mode)
        .signal_map(SignalMap::new())
        .ready_timeout(None);
    for fd in cli.preserve_fd {
        context = context.preserve_fd(fd);
    }
    if let Some(path) = cli.pidfile {
        context = context.pidfile(path);
    }
    if let Some(path) = cli.lock {
        context = context.lock_file(path);
    }
    // In the foreground (systemd Type=simple, containers) output stays where the invoker's
    // goes, the journal say; a detached daemon gets /dev/null unless -o or -e say otherwise.
    let unset = || if cli.foreground { Stream::Inherit } else { Stream::Null };
    context = context.stdout(cli.stdout.map_or_else(unset, output));
    context = context.stderr(cli.stderr.map_or_else(unset, output));
    if let Some(user) = cli.user {
        context = context.user(user).initgroups(true);
    }
    if let Some(group) = cli.group {
        context = context.group(group);
    }
    if let Some(dir) = cli.chroot {
        context = context.chroot_directory(dir);
    }
    let pid = context.exec(&command)?;
    if cli.verbose {
        eprintln!("daemonize: started {} (pid {pid})", program.to_string_lossy());
    }
    Ok(())
}

/// The inherited environment (unless cleared), with the `-E` variables set over it.
fn environment(clear: bool, set: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        if clear { Vec::new() } else { std::env::vars_os().collect() };
    for (name, value) in set {
        env.retain(|(existing, _)| *existing != name);
        env.push((name, value));
    }
    env
}

/// `--status`: one line on stdout, LSB exit code.
fn status(cli: &Cli) -> u8 {
    let path = cli.pidfile.as_deref().expect("clap requires --pidfile with --status");
    let (line, code) = match Pidfile::status(path) {
        Status::Running(Some(pid)) => (format!("running (pid {pid})"), 0),
        Status::Running(None) => ("running (pid unknown: the pidfile holds no pid)".into(), 0),
        Status::Stale(Some(pid)) => {
            (format!("dead: pid {pid} is gone but pidfile {} remains", path.display()), 1)
        }
        Status::Stale(None) => {
            (format!("dead: pidfile {} remains, naming no pid", path.display()), 1)
        }
        Status::Absent => ("not running".into(), 3),
        Status::Unknown(e) => {
            (format!("unknown: cannot inspect pidfile {}: {e}", path.display()), 4)
        }
    };
    println!("{line}");
    if cli.verbose {
        eprintln!("daemonize: status of {}: exit {code}", path.display());
    }
    code
}

/// `--stop`: follows the schedule; 0 stopped or not running, 2 still running, 3 trouble.
fn stop(cli: &Cli) -> u8 {
    let path = cli.pidfile.as_deref().expect("clap requires --pidfile with --stop");
    let schedule = match &cli.retry {
        None => Schedule::default_for(cli.signal),
        Some(text) => match Schedule::parse(text, cli.signal) {
            Ok(schedule) => schedule,
            Err(e) => {
                eprintln!("daemonize: invalid --retry {text:?}: {e}");
                return code::USAGE;
            }
        },
    };
    match stop::stop(path, &schedule) {
        Ok(Stopped::Stopped(pid)) => {
            println!("stopped (pid {pid})");
            0
        }
        Ok(Stopped::NotRunning) => {
            println!("not running");
            0
        }
        Ok(Stopped::StillRunning(pids)) => {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            println!("still running after the schedule: pid {}", pids.join(", "));
            2
        }
        Err(e) => {
            eprintln!("daemonize: cannot stop {}: {}", path.display(), daemonctx::error::chain(&e));
            3
        }
    }
}
