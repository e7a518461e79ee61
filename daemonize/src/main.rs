//! `daemonize`: run a command as a daemon, or check and stop one by its pidfile.
//!
//! Argument parsing and wiring only: every mechanism lives in the `daemonctx` library.
#![deny(unsafe_code)] // modules that need it opt back in with #![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;
mod common_forms;
mod message;
mod notify;
mod output;
mod send;
mod supervise;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches};
use daemonctx::activation::ListenFds;
use daemonctx::pidfile::Inspected;
use daemonctx::stop::{self, Schedule, Stopped};
use daemonctx::{Command, DaemonContext, Error, Pidfile, SignalMap, Status, Step, Stream};
use daemonctx::{GroupSpec, UserSpec};
use daemonctx::{pidfile, process};

use cli::{Cli, RestartArg, WaitReady, code};
use notify::{Readiness, ReadyListener};
use output::{LogFile, SyslogConfig, SyslogWriter};

use supervise::{Restart, Sink, SupervisorConfig, Upstream};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(cli) = common_forms::parse(&args) {
        return ExitCode::from(run(cli));
    }
    // `from_arg_matches_mut` takes the values out of the matches; `from_arg_matches` would
    // clone them all first (a quarter of the parse's time).
    let parsed = Cli::command().try_get_matches_from(args).and_then(|mut matches| {
        let misplaced = cli::misplaced_option(&matches);
        Ok((Cli::from_arg_matches_mut(&mut matches)?, misplaced))
    });
    let cli = match parsed {
        Ok((cli, None)) => cli,
        Ok((_, Some(misplaced))) => {
            eprintln!("daemonize: {misplaced} (see daemonize --help)");
            return ExitCode::from(usage_code());
        }
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!("daemonize: {} (see daemonize --help)", usage_message(&e));
            return ExitCode::from(usage_code());
        }
    };
    ExitCode::from(run(cli))
}

/// clap's error on one line: its first paragraph (the message, and for a missing argument the
/// argument's name on the next line), without the usage and the tips.
fn usage_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let paragraph: Vec<&str> =
        rendered.lines().take_while(|line| !line.trim().is_empty()).map(str::trim).collect();
    paragraph.join(" ").trim_start_matches("error: ").to_string()
}

/// The code for a usage error: 2 when starting, but the "cannot tell" and "other trouble"
/// codes of --status, --stop and --send, whose 2 means something else to an init script.
fn usage_code() -> u8 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let given = |flag: &str| args.iter().any(|a| a == flag);
    if given("--status") {
        code::status::UNKNOWN
    } else if given("--stop") {
        code::stop::TROUBLE
    } else if given("--send") || args.iter().any(|a| a.to_string_lossy().starts_with("--send=")) {
        code::send::TROUBLE
    } else {
        code::USAGE
    }
}

fn run(cli: Cli) -> u8 {
    if cli.status {
        return status(&cli);
    }
    if cli.stop {
        return stop(&cli);
    }
    if let Some(signal) = cli.send {
        return send::send(&cli, signal);
    }
    if let Some(WaitReady::Fd(fd)) = cli.wait_ready
        && let Err(why) = check_ready_fd(&cli, fd)
    {
        eprintln!("daemonize: {why} (see daemonize --help)");
        return code::USAGE;
    }
    if cli.foreground && cli.wait_ready.is_some() && !cli.supervise {
        eprintln!(
            "daemonize: --wait-ready with --foreground needs --supervise: in exec mode COMMAND \
             takes daemonize's place and reports to its own parent (see daemonize --help)"
        );
        return code::USAGE;
    }
    let (named, ready_timeout) = (PathBuf::from(&cli.command[0]), cli.ready_timeout);
    match start(cli) {
        Ok(()) => code::STARTED,
        Err(e) => {
            eprintln!("daemonize: {}", message::start_failure(&e, &named, ready_timeout));
            exit_code(&e)
        }
    }
}

/// A ready descriptor COMMAND can get: not one `--preserve-fd` keeps nor a socket-activated
/// one, and below the soft limit on open files (`getrlimit(2)` `RLIMIT_NOFILE`), which COMMAND
/// inherits: `dup2(2)` cannot make a descriptor at or above it.
fn check_ready_fd(cli: &Cli, fd: i32) -> Result<(), String> {
    if cli.preserve_fd.contains(&fd) {
        return Err(format!(
            "--wait-ready fd:{fd} and --preserve-fd {fd} both want descriptor {fd}"
        ));
    }
    if let Some(sockets) = ListenFds::from_env()
        && sockets.fds().any(|socket| socket == fd)
    {
        return Err(format!(
            "--wait-ready fd:{fd} would replace socket-activated descriptor {fd} (LISTEN_FDS={})",
            sockets.count()
        ));
    }
    use nix::sys::resource::{Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if u64::try_from(fd).is_ok_and(|fd| fd >= soft) => Err(format!(
            "--wait-ready fd:{fd}: descriptor {fd} is not below the limit on open files \
             ({soft}, ulimit -n)"
        )),
        _ => Ok(()),
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
            Step::WaitReady => code::NOT_READY,
            Step::PreserveFd => code::USAGE,
            _ => code::SETUP,
        },
        Error::ReadyTimeout { .. } => code::NOT_READY,
        Error::DaemonDied { status: Some(status), .. } => exit_status_code(status),
        Error::CommandDied { status, .. } => exit_status_code(status),
        _ => code::SETUP,
    }
}

/// A process's exit status as a shell shows it: its code, or 128 + the signal that killed it.
fn exit_status_code(status: &std::process::ExitStatus) -> u8 {
    u8::try_from(process::shell_status(*status)).unwrap_or(code::SETUP)
}

/// Starts COMMAND as a daemon, directly (exec mode) or under a supervisor.
fn start(cli: Cli) -> Result<(), Error> {
    let login = cli.user.as_ref().map(login_variables).unwrap_or_default();
    let mut env = environment(cli.clear_env, login, cli.env.clone());
    let upstream = parent_notify_socket(&cli)?;
    if upstream.is_some() {
        // The supervisor speaks to the parent systemd; COMMAND speaks to the supervisor.
        env.retain(|(name, _)| name != "NOTIFY_SOCKET");
    }
    let mut command = Command::new(cli.command.clone(), env);
    if ListenFds::from_env().is_none() {
        command.remove_activation(); // socket activation meant for another process
    }
    if !daemonctx::activation::watchdog_is_ours() {
        command.remove_watchdog(); // so is this watchdog
    }
    let listener = cli.wait_ready.map(ready_listener).transpose()?;
    if let Some((name, value)) = listener.as_ref().and_then(ReadyListener::environment) {
        command.set_env(name, value);
    }
    // Without `--wait-ready notify`, a socket of its own for what COMMAND says to relay.
    let relay = match (&upstream, cli.wait_ready) {
        (Some(_), Some(WaitReady::Notify)) | (None, _) => None,
        (Some(_), _) => Some(ReadyListener::notify_socket().map_err(ready_error)?),
    };
    if let Some((name, value)) = relay.as_ref().and_then(ReadyListener::environment) {
        command.set_env(name, value);
    }
    let context = common_context(&cli);
    if cli.supervise {
        // Resolved here, before any chdir (see `program_path`): the supervisor starts COMMAND
        // again later. Exec mode leaves it to the library, which resolves by the same rule.
        let program = program_path(&cli.command[0], command.env(), cli.chroot.is_some());
        start_supervised(&cli, context, &command, program, listener, (upstream, relay))
    } else {
        // The library resolves argv[0] by the same rule; messages name COMMAND as given.
        start_exec(&cli, context, &command, Path::new(&cli.command[0]), listener)
    }
}

/// A parent systemd's notify socket, when the supervisor runs in the foreground as a
/// `Type=notify` service's main process (in exec mode COMMAND takes daemonize's place and
/// speaks for itself; a detaching daemon is no service's main process).
fn parent_notify_socket(cli: &Cli) -> Result<Option<Upstream>, Error> {
    if !(cli.foreground && cli.supervise) {
        return Ok(None);
    }
    match Upstream::from_env() {
        None => Ok(None),
        Some(Ok(upstream)) => Ok(Some(upstream)),
        Some(Err(e)) => {
            let name = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
            Err(Error::os(Step::WaitReady, name, e))
        }
    }
}

/// Where COMMAND is, decided once in the invoker, before any `chdir(2)`, for exec mode and for
/// every start under a supervisor: a name with a slash is a path, relative to the directory
/// daemonize was started in; a bare name is looked up on COMMAND's `PATH` (`/usr/bin:/bin`
/// without one), relative `PATH` entries from that directory too, as `execvp(3)` would. Under
/// `--chroot` both are left for inside the new root (relative to `-c` there); so is a bare name
/// not found (the start then fails with 127).
fn program_path(name: &OsString, env: &[(OsString, OsString)], chroot: bool) -> PathBuf {
    let name = Path::new(name);
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    if chroot {
        return name.to_path_buf();
    }
    if name.as_os_str().as_encoded_bytes().contains(&b'/') {
        return here.join(name);
    }
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    let path_var = path_var.unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    let mut denied = None;
    for dir in std::env::split_paths(&path_var) {
        let candidate = here.join(dir).join(name);
        let Ok(meta) = std::fs::metadata(&candidate) else { continue };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            return candidate;
        }
        denied.get_or_insert(candidate);
    }
    denied.unwrap_or_else(|| name.to_path_buf())
}

/// The options both modes share.
fn common_context(cli: &Cli) -> DaemonContext {
    let mut context = DaemonContext::new()
        .working_directory(working_directory(cli))
        .umask(cli.umask)
        .prevent_core(!cli.core)
        .detach_process(!cli.foreground)
        .pidfile_mode(cli.pidfile_mode)
        .signal_map(SignalMap::new());
    for fd in &cli.preserve_fd {
        context = context.preserve_fd(*fd);
    }
    if let Some(path) = &cli.pidfile {
        context = context.pidfile(path);
    }
    if let Some(path) = &cli.lock {
        context = context.lock_file(path);
    }
    context = match &cli.user {
        Some(UserSpec::Name(name)) => context.user(name).initgroups(true),
        Some(UserSpec::Id(uid)) => context.uid(*uid).initgroups(true),
        None => context,
    };
    // A supervisor out of COMMAND's reach: COMMAND gets the user's id in full (supervise::child).
    context = context.effective_uid_only(cli.supervise);
    context = match &cli.group {
        Some(GroupSpec::Name(name)) => context.group(name),
        Some(GroupSpec::Id(gid)) => context.gid(*gid),
        None => context,
    };
    if let Some(dir) = &cli.chroot {
        context = context.chroot_directory(dir);
    }
    context
}

/// `-c DIR`; else `/` for a detaching daemon (it must not hold a mount busy) and in a chroot;
/// else, in the foreground, where daemonize was started (Docker's WORKDIR, systemd's
/// WorkingDirectory=).
fn working_directory(cli: &Cli) -> PathBuf {
    match (&cli.chdir, cli.foreground && cli.chroot.is_none()) {
        (Some(dir), _) => dir.clone(),
        (None, true) => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        (None, false) => PathBuf::from("/"),
    }
}

/// In the foreground (systemd Type=simple, containers) output stays where the invoker's goes,
/// the journal say; a detached daemon gets /dev/null unless -o or -e say otherwise.
fn unset_stream(cli: &Cli) -> Stream {
    if cli.foreground { Stream::Inherit } else { Stream::Null }
}

/// Exec mode: the daemon becomes COMMAND; with --wait-ready, wait here for its readiness.
#[allow(unsafe_code)] // one unsafe call, justified where it is made
fn start_exec(
    cli: &Cli,
    context: DaemonContext,
    command: &Command,
    program: &Path,
    mut listener: Option<ReadyListener>,
) -> Result<(), Error> {
    let output = |path: &PathBuf| match cli.append {
        true => Stream::Append(path.clone()),
        false => Stream::Truncate(path.clone()),
    };
    // One file for both: opened once by the library (after the pidfile lock, so a start
    // refused as already running never truncates the running daemon's log), shared as `2>&1`.
    let (stdout, stderr) = match (&cli.stdout, same_output_file(cli)) {
        (Some(path), true) => (output(path), Stream::SameAsStdout),
        _ => (
            cli.stdout.as_ref().map_or_else(|| unset_stream(cli), output),
            cli.stderr.as_ref().map_or_else(|| unset_stream(cli), output),
        ),
    };
    let mut context = context.stdout(stdout).stderr(stderr);
    if cli.foreground && supervise::on_terminal() {
        // Interactive: COMMAND takes daemonize's place in the terminal's foreground group.
        context = context.stdin(Stream::Inherit);
    }
    let installed = match &mut listener {
        Some(listener) => match listener.place_write_end() {
            // SAFETY: daemonize owns no descriptor above 2 yet but the listener's own (which
            // place_write_end_over moves out of the way): whatever is on the target is a
            // stray descriptor the invoker passed down, which nothing here owns.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => unsafe {
                listener.place_write_end_over()
            },
            placed => placed,
        }
        .map_err(ready_error)?,
        None => None,
    };
    // The notify socket too: COMMAND holding it keeps its name bound after we exit.
    let notify_socket = listener.as_ref().and_then(ReadyListener::notify_socket_fd);
    for fd in installed.into_iter().chain(notify_socket) {
        context = context.preserve_fd(fd);
    }
    let pid = context.exec(command).map_err(|e| name_program(e, program))?;
    if cli.verbose {
        eprintln!("daemonize: started {} (pid {pid})", program.display());
    }
    match listener {
        Some(mut listener) => {
            listener.close_write_end();
            wait_for_readiness(cli, listener, pid, program)
        }
        None => Ok(()),
    }
}

/// Waits for the exec'd daemon (our child, adopted as subreaper) to say it is ready; if it
/// exits or times out instead, stops it, removes the pidfile and fails.
fn wait_for_readiness(
    cli: &Cli,
    mut listener: ReadyListener,
    pid: u32,
    program: &Path,
) -> Result<(), Error> {
    // None (no deadline) only past the end of time: the CLI clamps its durations anyway.
    let deadline = Instant::now().checked_add(cli.ready_timeout);
    let verbose = cli.verbose;
    let readiness = listener.wait(pid, deadline, |status| {
        if verbose {
            eprintln!("daemonize: status: {status}");
        }
    });
    // Settled: COMMAND's later messages are dropped; its copy of the socket keeps the name bound.
    if let Err(e) = listener.stop_listening() {
        eprintln!("daemonize: cannot silence the notify socket: {}", message::os_text(&e));
    }
    let failure = match readiness {
        Ok(Readiness::Ready(main)) => {
            if let (true, Some(path)) = (main != pid, &cli.pidfile)
                && let Err(e) = pidfile::replace_pid(path, main)
            {
                // Ready all the same; the pidfile keeps naming the first process.
                eprintln!(
                    "daemonize: cannot write MAINPID {main} into {}: {}",
                    path.display(),
                    message::os_text(&e)
                );
            }
            if verbose {
                eprintln!("daemonize: {} is ready (pid {main})", program.display());
            }
            return Ok(());
        }
        Ok(Readiness::Exited(main)) => {
            // `main` has exited: its number may name another process by now.
            stop_abandoned(cli, pid, None);
            Error::DaemonDied {
                pid: main,
                status: process::reap(pid as i32, Duration::from_secs(5)),
            }
        }
        Ok(Readiness::TimedOut(main)) => {
            let main_pid = main.pid();
            stop_abandoned(cli, pid, Some(main));
            process::reap(pid as i32, Duration::from_secs(5));
            Error::ReadyTimeout { pid: main_pid, seconds: cli.ready_timeout.as_secs_f64() }
        }
        Err(e) => {
            stop_abandoned(cli, pid, None);
            process::reap(pid as i32, Duration::from_secs(5));
            Error::os(Step::WaitReady, program, e)
        }
    };
    if let Some(path) = &cli.pidfile {
        let _ = Pidfile::remove_stale(path);
    }
    Err(failure)
}

/// Stops a daemon whose start failed: the command (`pid`, our adopted child, not reaped yet)
/// and, if it named another main process (`main`, pinned while it was watched), that one, each
/// with its group: SIGTERM, `--kill-after`, SIGKILL.
fn stop_abandoned(cli: &Cli, pid: u32, main: Option<process::Pinned>) {
    let schedule = Schedule::escalating(libc::SIGTERM, cli.kill_after, Duration::from_secs(5));
    if let Some(main) = main.filter(|main| main.pid() != pid) {
        let _ = stop::stop_pinned(main, &schedule);
    }
    let _ = stop::stop_process(pid, &schedule);
}

/// Supervise mode: the daemon stays as COMMAND's supervisor; files, syslog and the readiness
/// listener are opened here first, so their errors show.
#[allow(unsafe_code)] // one unsafe call, justified where it is made
fn start_supervised(
    cli: &Cli,
    context: DaemonContext,
    command: &Command,
    program: PathBuf,
    ready: Option<ReadyListener>,
    (upstream, relay): (Option<Upstream>, Option<ReadyListener>),
) -> Result<(), Error> {
    let named = Path::new(&cli.command[0]);
    let syslog =
        cli.syslog.as_ref().map(|facility| connect_syslog(cli, facility, command)).transpose()?;
    refuse_if_running(cli)?;
    let created = missing_log_files(cli);
    let opened = open_sinks(cli).and_then(|(stdout, stderr)| {
        let null = open_null()?;
        // Locked last: nothing after it can fail before open(), which cleans it up if it fails.
        let child_pidfile = cli.child_pidfile.as_ref();
        let child_pidfile =
            child_pidfile.map(|path| Pidfile::lock(path, cli.pidfile_mode)).transpose()?;
        Ok((stdout, stderr, null, child_pidfile))
    });
    let (stdout, stderr, null, child_pidfile) =
        opened.inspect_err(|e| remove_if_empty(&created, e))?;
    // Interactive (`docker run -it`, a shell): COMMAND gets the terminal, with job control.
    let terminal = cli.foreground && supervise::on_terminal();
    let mut config = SupervisorConfig {
        argv: command.argv().to_vec(),
        env: command.env().to_vec(),
        restart: match cli.restart {
            RestartArg::No => Restart::No,
            RestartArg::OnFailure => Restart::OnFailure,
            RestartArg::Always => Restart::Always,
        },
        restart_delay: cli.restart_delay,
        restart_max_delay: cli.restart_max_delay.max(cli.restart_delay),
        max_restarts: cli.max_restarts,
        restart_window: cli.restart_window,
        kill_after: cli.kill_after,
        child_pidfile,
        ready,
        ready_timeout: cli.wait_ready.map(|_| cli.ready_timeout),
        stdout,
        stderr,
        syslog,
        program,
        forward: cli.forward.clone().map(|forward| forward.0),
        null,
        forward_to_group: cli.forward_to_group,
        upstream,
        relay,
        terminal,
    };
    let mut context = context.stdout(unset_stream(cli)).stderr(unset_stream(cli));
    if terminal {
        context = context.stdin(Stream::Inherit); // COMMAND's, at each start
    }
    for fd in config.descriptors() {
        context = context.preserve_fd(fd);
    }
    // The supervisor bounds the wait for readiness itself; the original process only guards
    // against a supervisor that hangs.
    let patience = match cli.wait_ready {
        Some(_) => {
            cli.ready_timeout.saturating_add(cli.kill_after).saturating_add(Duration::from_secs(30))
        }
        None => daemonctx::DEFAULT_READY_TIMEOUT,
    };
    // SAFETY: every descriptor above 2 this program owns is the supervisor's, listed by
    // config.descriptors() and preserved above, or a --preserve-fd one; clap, syslog and std
    // hold no other (std's standard streams are 0 to 2). So the descriptors closed are strays
    // the invoker passed down, which nothing here owns.
    let context = unsafe { context.close_inherited_fds() };
    let opened = context.ready_on_open(false).ready_timeout(Some(patience)).open();
    let mut daemon = match opened {
        Ok(daemon) => daemon,
        Err(e) => {
            if let Some(child_pidfile) = config.child_pidfile.take() {
                let _ = child_pidfile.remove();
            }
            remove_if_empty(&created, &e);
            return Err(match cli.wait_ready {
                Some(_) => command_died(name_program(e, named), named),
                None => name_program(e, named),
            });
        }
    };
    let code = supervise::supervise(config, &mut daemon);
    drop(daemon); // removes the pidfile
    std::process::exit(code)
}

/// Where COMMAND's stdout and stderr go under the supervisor (one sink when -o and -e name one
/// file).
fn open_sinks(cli: &Cli) -> Result<(Sink, Sink), Error> {
    let stdout = sink(cli, cli.stdout.as_deref(), 1)?;
    let stderr = match same_output_file(cli) {
        true => Sink::Stdout,
        false => sink(cli, cli.stderr.as_deref(), 2)?,
    };
    Ok((stdout, stderr))
}

/// Refuses at once a start whose pidfile is locked by a running instance (`F_OFD_GETLK`, the
/// lock left untouched), before the supervisor's log files are opened: so the usual refused
/// start creates no file. A start racing another one past this check is refused when it locks.
fn refuse_if_running(cli: &Cli) -> Result<(), Error> {
    match cli.pidfile.as_deref().map(Pidfile::status) {
        Some(Status::Running(pid)) => {
            Err(Error::AlreadyRunning { pidfile: cli.pidfile.clone().unwrap_or_default(), pid })
        }
        _ => Ok(()),
    }
}

/// The -o and -e files that are not there yet: the supervisor's log files are opened (and
/// created) before the pidfile is locked, so a start that fails removes them again
/// ([`remove_if_empty`]) to leave nothing behind (`lstat(2)`).
fn missing_log_files(cli: &Cli) -> Vec<PathBuf> {
    let paths = [&cli.stdout, &cli.stderr].into_iter().flatten();
    paths.filter(|path| std::fs::symlink_metadata(path).is_err()).cloned().collect()
}

/// After a failed start, removes each of `paths` that is an empty regular file (`lstat(2)`,
/// `unlink(2)`): files this start created, into which nothing was written. Not when the start
/// lost a race for a lock (`error` is [`Error::AlreadyRunning`]): the instance that won may
/// have opened the same new files, and would go on writing into unlinked ones.
fn remove_if_empty(paths: &[PathBuf], error: &Error) {
    if matches!(error, Error::AlreadyRunning { .. }) {
        return;
    }
    for path in paths {
        if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A supervisor waiting for readiness that exits without a report does so because COMMAND
/// ended first, and with COMMAND's status as a shell shows it (128+N for signal N): name
/// COMMAND and how it ended, not the supervisor. (A supervisor killed by a signal itself stays
/// [`Error::DaemonDied`].)
fn command_died(error: Error, program: &Path) -> Error {
    match error {
        Error::DaemonDied { status: Some(status), .. } if status.code().is_some() => {
            let code = status.code().unwrap_or_default();
            Error::CommandDied {
                command: program.to_path_buf(),
                status: process::status_from_shell(code),
            }
        }
        other => other,
    }
}

/// `/dev/null`, read-write and close-on-exec, opened here: the supervisor needs it for every
/// COMMAND it starts, and a chroot may have none.
fn open_null() -> Result<std::os::fd::OwnedFd, Error> {
    let null = Path::new("/dev/null");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(null);
    file.map(Into::into).map_err(|e| Error::os(Step::OpenStream, null, e))
}

/// Whether -o and -e name the same file: the same path, or the same file through a link
/// (`stat(2)`: same device and inode). Such a file is opened once and shared, as a shell's
/// `>F 2>&1` does: two descriptions would each write at their own offset over the other's.
fn same_output_file(cli: &Cli) -> bool {
    match (&cli.stdout, &cli.stderr) {
        (Some(out), Some(err)) => output::same_file(out, err),
        _ => false,
    }
}

/// Where one of COMMAND's streams goes under the supervisor: the file, else syslog, else (in
/// the foreground) the supervisor's own stream `fd`, else nowhere.
fn sink(cli: &Cli, file: Option<&Path>, fd: i32) -> Result<Sink, Error> {
    match file {
        // Always appended to: truncating here, before the pidfile is locked, could empty the
        // log of an instance that is already running.
        Some(path) => {
            LogFile::open(path).map(Sink::File).map_err(|e| Error::os(Step::OpenStream, path, e))
        }
        None if cli.syslog.is_some() => Ok(Sink::Syslog),
        None if cli.foreground => {
            use std::os::fd::AsFd;
            let name = if fd == 1 { "standard output" } else { "standard error" };
            // std's handles, open for the whole run (the runtime puts /dev/null on a standard
            // stream the process was started without).
            let inherited = match fd {
                1 => LogFile::inherited(std::io::stdout().as_fd(), name),
                _ => LogFile::inherited(std::io::stderr().as_fd(), name),
            };
            inherited.map(Sink::File).map_err(|e| Error::os(Step::OpenStream, name, e))
        }
        None => Ok(Sink::Null),
    }
}

fn connect_syslog(cli: &Cli, facility: &str, command: &Command) -> Result<SyslogWriter, Error> {
    let basename = || {
        let argv0 = Path::new(&command.argv()[0]);
        argv0.file_name().unwrap_or(argv0.as_os_str()).to_string_lossy().into_owned()
    };
    let config = SyslogConfig {
        facility: cli::parse_facility(facility).expect("checked by clap"),
        tag: cli.syslog_tag.clone().unwrap_or_else(basename),
        socket: Some(cli.syslog_socket.clone()),
        stdout_severity: cli::parse_severity(&cli.syslog_stdout_priority).expect("checked by clap"),
        stderr_severity: cli::parse_severity(&cli.syslog_stderr_priority).expect("checked by clap"),
    };
    SyslogWriter::connect(config).map_err(|e| Error::os(Step::OpenStream, &cli.syslog_socket, e))
}

fn ready_listener(how: WaitReady) -> Result<ReadyListener, Error> {
    match how {
        WaitReady::Notify => ReadyListener::notify_socket(),
        WaitReady::Fd(fd) => ReadyListener::fd(fd),
    }
    .map_err(ready_error)
}

fn ready_error(e: std::io::Error) -> Error {
    Error::os_nopath(Step::WaitReady, e)
}

/// The daemon reports a failed `execve(2)` or readiness by step and errno only: name COMMAND.
fn name_program(error: Error, program: &Path) -> Error {
    match error.step() {
        Some(Step::Exec | Step::WaitReady) => error.with_path(program),
        _ => error,
    }
}

/// The variables `-u USER` changes, as su(1) sets them: HOME, USER and LOGNAME from the user's
/// passwd entry (`getpwnam_r(3)`, `getpwuid_r(3)`), each `None` (removed) when it has none, so
/// that root's never reach COMMAND. (The library looks the user up again, and reports it
/// unknown.)
fn login_variables(user: &UserSpec) -> Vec<(OsString, Option<OsString>)> {
    let entry = match user {
        UserSpec::Name(name) => nix::unistd::User::from_name(name),
        UserSpec::Id(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(*uid)),
    };
    let entry = entry.ok().flatten();
    let home = entry.as_ref().map(|e| e.dir.clone().into_os_string());
    let name = entry.map(|e| OsString::from(e.name));
    vec![("HOME".into(), home), ("USER".into(), name.clone()), ("LOGNAME".into(), name)]
}

/// The inherited environment (unless cleared) with the login variables of `-u` replaced, and
/// the `-E` variables set over it.
fn environment(
    clear: bool,
    login: Vec<(OsString, Option<OsString>)>,
    set: Vec<(OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        if clear { Vec::new() } else { std::env::vars_os().collect() };
    for (name, value) in login.into_iter().filter(|_| !clear) {
        env.retain(|(existing, _)| *existing != name);
        env.extend(value.map(|value| (name, value)));
    }
    for (name, value) in set {
        env.retain(|(existing, _)| *existing != name);
        env.push((name, value));
    }
    env
}

/// `--status`: one line on stdout, LSB exit code. The pidfile is opened once and judged by
/// its lock; `/proc` is searched for the lock's holder only when the pid it names is dead.
fn status(cli: &Cli) -> u8 {
    use code::status::*;
    let path = cli.pidfile.as_deref().expect("clap requires --pidfile with --status");
    let (status, (dev, ino)) = match Inspected::open(path) {
        Ok(inspected) => (inspected.status(), inspected.identity()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Status::Absent, (0, 0)),
        Err(e) => (Status::Unknown(e), (0, 0)),
    };
    let (line, code) = match status {
        Status::Running(Some(pid)) if process::is_alive(pid) => {
            (format!("running (pid {pid})"), RUNNING)
        }
        Status::Running(Some(pid)) => match process::lock_holders(dev, ino, 1).first() {
            Some(holder) => {
                (format!("running (pid {pid} has exited; pid {holder} holds the pidfile)"), RUNNING)
            }
            None => {
                (format!("running (pid {pid} has exited; the pidfile is still locked)"), RUNNING)
            }
        },
        Status::Running(None) => {
            ("running (pid unknown: the pidfile holds no pid)".into(), RUNNING)
        }
        Status::Stale(Some(pid)) if process::is_alive(pid) => (
            format!(
                "dead: pidfile {} is not locked; pid {pid} it names is another process",
                path.display()
            ),
            DEAD,
        ),
        Status::Stale(Some(pid)) => {
            (format!("dead: pid {pid} is gone but pidfile {} remains", path.display()), DEAD)
        }
        Status::Stale(None) => {
            (format!("dead: pidfile {} remains, naming no pid", path.display()), DEAD)
        }
        Status::Absent => ("not running".into(), NOT_RUNNING),
        Status::Unknown(e) => (
            format!("unknown: cannot inspect pidfile {}: {}", path.display(), message::os_text(&e)),
            UNKNOWN,
        ),
    };
    println!("{line}");
    if cli.verbose {
        eprintln!("daemonize: status of {}: exit {code}", path.display());
    }
    code
}

/// `--stop`: follows the schedule; then removes a stale `--child-pidfile` (a supervisor that
/// ran as another user could not). Exit codes: [`code::stop`].
fn stop(cli: &Cli) -> u8 {
    use code::stop::*;
    let path = cli.pidfile.as_deref().expect("clap requires --pidfile with --stop");
    let schedule = match &cli.retry {
        None => Schedule::default_for(cli.signal),
        Some(text) => match Schedule::parse(text, cli.signal) {
            Ok(schedule) => schedule,
            Err(e) => {
                eprintln!("daemonize: invalid --retry {text:?}: {e}");
                return TROUBLE;
            }
        },
    };
    let code = match stop::stop(path, &schedule) {
        Ok(Stopped::Stopped(pid)) => {
            println!("stopped (pid {pid})");
            STOPPED
        }
        Ok(Stopped::NotRunning) => {
            println!("not running");
            STOPPED
        }
        Ok(Stopped::StillRunning(pids)) if pids.is_empty() => {
            println!("still running after the schedule: the pidfile is still locked");
            return STILL_RUNNING;
        }
        Ok(Stopped::StillRunning(pids)) => {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            println!("still running after the schedule: pid {}", pids.join(", "));
            return STILL_RUNNING;
        }
        Err(e) => {
            eprintln!("daemonize: cannot stop {}: {}", path.display(), message::chain(&e));
            return TROUBLE;
        }
    };
    if let Some(child_pidfile) = &cli.child_pidfile
        && let Err(e) = Pidfile::remove_stale(child_pidfile)
    {
        eprintln!("daemonize: {}", message::chain(&e));
        return TROUBLE;
    }
    code
}
