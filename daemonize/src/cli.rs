//! The `daemonize` command line, defined once: `--help`, the man page generator
//! (`man/generate.rs`) and the man page test all read this definition.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use daemonctx::{GroupSpec, UserSpec};

/// Every exit status, in one place: `src/main.rs` returns these, and the tables `--help` and
/// the man page show are built from them.
pub mod code {
    /// Starting: COMMAND runs as a daemon.
    pub const STARTED: u8 = 0;
    /// Starting: the pidfile or lock file is held.
    pub const ALREADY_RUNNING: u8 = 1;
    /// Starting: a usage error.
    pub const USAGE: u8 = 2;
    /// Starting: unknown user or group.
    pub const UNKNOWN_USER: u8 = 3;
    /// Starting: -c or --chroot is missing or not a directory.
    pub const BAD_DIRECTORY: u8 = 4;
    /// Starting: an output file or the syslog socket cannot be opened.
    pub const OUTPUT_FILE: u8 = 5;
    /// Starting: the pidfile or lock file cannot be used.
    pub const PIDFILE: u8 = 6;
    /// Starting: another setup step failed.
    pub const SETUP: u8 = 7;
    /// Starting: COMMAND was not ready in time.
    pub const NOT_READY: u8 = 8;
    /// Starting: COMMAND cannot be executed.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// Starting: COMMAND was not found.
    pub const NOT_FOUND: u8 = 127;

    /// `--status`: the LSB init-script codes.
    pub mod status {
        /// Running.
        pub const RUNNING: u8 = 0;
        /// Dead, but the pidfile exists.
        pub const DEAD: u8 = 1;
        /// Not running.
        pub const NOT_RUNNING: u8 = 3;
        /// Cannot tell (usage errors too).
        pub const UNKNOWN: u8 = 4;
    }

    /// `--stop`.
    pub mod stop {
        /// Stopped, or was not running.
        pub const STOPPED: u8 = 0;
        /// Still running after the schedule.
        pub const STILL_RUNNING: u8 = 2;
        /// Other trouble (usage errors too).
        pub const TROUBLE: u8 = 3;
    }

    /// `--send`.
    pub mod send {
        /// The signal was sent.
        pub const SENT: u8 = 0;
        /// Nothing to send it to: the daemon does not run.
        pub const NOT_RUNNING: u8 = 1;
        /// Other trouble (usage errors too).
        pub const TROUBLE: u8 = 3;
    }
}

/// The exit statuses of a start, as (code, meaning); `None` is COMMAND's own status.
pub const START_EXIT_STATUS: &[(Option<u8>, &str)] = &[
    (Some(code::STARTED), "COMMAND runs as a daemon; the pidfile holds its pid"),
    (
        Some(code::ALREADY_RUNNING),
        "already running: the pidfile or lock file is held (the message names the pid)",
    ),
    (
        Some(code::USAGE),
        "usage error: bad option or value, an option of another mode, missing COMMAND, a \
         --preserve-fd that is not open",
    ),
    (Some(code::UNKNOWN_USER), "unknown user or group"),
    (Some(code::BAD_DIRECTORY), "bad directory: -c or --chroot is missing or not a directory"),
    (Some(code::OUTPUT_FILE), "an output file (-o, -e) or the syslog socket cannot be opened"),
    (
        Some(code::PIDFILE),
        "the pidfile or lock file cannot be used (symlink, missing directory, permissions)",
    ),
    (Some(code::SETUP), "another setup step failed (the message names it)"),
    (Some(code::NOT_READY), "COMMAND did not report ready within --ready-timeout (it was stopped)"),
    (None, "COMMAND's own status (128+signal if killed) when it exits before it is ready"),
    (Some(code::NOT_EXECUTABLE), "COMMAND exists but cannot be executed"),
    (Some(code::NOT_FOUND), "COMMAND was not found"),
];

/// The exit statuses of `--status`: the LSB init-script codes.
pub fn status_exit_status() -> String {
    use code::status::*;
    format!(
        "{RUNNING} running, {DEAD} dead but the pidfile exists, {NOT_RUNNING} not running, \
         {UNKNOWN} cannot tell"
    )
}

/// The exit statuses of `--stop`.
pub fn stop_exit_status() -> String {
    use code::stop::*;
    format!(
        "{STOPPED} stopped, or was not running; {STILL_RUNNING} still running after the \
         schedule; {TROUBLE} other trouble"
    )
}

/// The exit statuses of `--send`.
pub fn send_exit_status() -> String {
    use code::send::*;
    format!("{SENT} sent; {NOT_RUNNING} not running; {TROUBLE} other trouble")
}

/// The exit status of a supervisor.
pub const SUPERVISOR_EXIT_STATUS: &str =
    "A supervisor (--supervise) exits with COMMAND's last status, 128+N if a signal N killed it";

/// Examples, as (what it does, the command): shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Start a server as a daemon, its output and errors in one log file, as user www-data:",
        "daemonize -p /run/app.pid -o /var/log/app.log -e /var/log/app.log -a -u www-data -- \
         /usr/bin/app --port 8080",
    ),
    (
        "Stop it from an init script: SIGTERM to its process group, SIGKILL after 30 seconds:",
        "daemonize --stop -p /run/app.pid --retry TERM/30/KILL/5",
    ),
];

/// Which mode to use under which init, as (the init, the command and what it does): shown by
/// `--help` and in the man page.
pub const INIT_SYSTEMS: &[(&str, &str)] = &[
    (
        "SysV init, OpenRC, a shell script",
        "daemonize -p FILE -- COMMAND detaches, and returns once COMMAND runs and FILE holds its \
         pid; --status and --stop read FILE",
    ),
    (
        "systemd Type=forking",
        "the same, with PIDFile=FILE: ExecStart= exits only once the pidfile names COMMAND",
    ),
    (
        "systemd Type=simple",
        "daemonize --foreground -- COMMAND does the setup, then COMMAND takes daemonize's place \
         and pid: NOTIFY_SOCKET and socket activation (LISTEN_FDS) reach it untouched, so \
         Type=notify works too",
    ),
    (
        "systemd Type=notify, supervised",
        "daemonize --foreground --supervise --wait-ready notify -- COMMAND: the supervisor is \
         the main process; it sends READY=1 once COMMAND is ready and passes on COMMAND's \
         STATUS=, RELOADING=1 (with its MONOTONIC_USEC=, and the READY=1 that ends the reload), STOPPING=1, WATCHDOG=1 \
         and EXTEND_TIMEOUT_USEC=; activated \
         sockets reach every restarted COMMAND, LISTEN_PID naming it; set KillMode=mixed, \
         so that systemd's SIGTERM goes to the supervisor only (with the default \
         control-group COMMAND gets it twice)",
    ),
    (
        "a container's entrypoint (PID 1)",
        "daemonize --supervise --foreground -- COMMAND reaps every zombie, passes every \
         catchable signal on to COMMAND once (--forward-to-group: to its process group), stops \
         everything within --kill-after on SIGTERM, and exits with COMMAND's status; on a \
         terminal (docker run -it) COMMAND gets it as stdin and foreground process group, \
         with job control as under a shell (PID 1 cannot stop: a stopped COMMAND is \
         continued at once)",
    ),
];

/// A note on the working directory in the foreground, shown with [`INIT_SYSTEMS`].
pub const FOREGROUND_DIRECTORY: &str = "In the foreground COMMAND starts in the directory \
    daemonize was started in (WorkingDirectory=, a Dockerfile's WORKDIR) unless -c names one; \
    a detaching daemon starts in / unless -c names one";

/// EXIT STATUS, INIT SYSTEMS and EXAMPLES for `--help`, from the tables above.
pub fn after_long_help() -> String {
    let mut text = String::from("EXIT STATUS\n  Starting:\n");
    for (code, meaning) in START_EXIT_STATUS {
        let code = code.map_or("N".to_string(), |c| c.to_string());
        text.push_str(&format!("    {code:<4} {meaning}\n"));
    }
    text.push_str(&format!("  --status (LSB init-script codes):\n    {}\n", status_exit_status()));
    text.push_str(&format!("  --stop:\n    {}\n", stop_exit_status()));
    text.push_str(&format!("  --send:\n    {}\n", send_exit_status()));
    text.push_str(&format!("  {SUPERVISOR_EXIT_STATUS}.\n"));
    text.push_str("\nINIT SYSTEMS AND CONTAINERS");
    for (init, how) in INIT_SYSTEMS {
        text.push_str(&format!("\n  {init}:\n    {how}."));
    }
    text.push_str(&format!("\n  {FOREGROUND_DIRECTORY}.\n"));
    text.push_str("\nEXAMPLES");
    for (what, command) in EXAMPLES {
        text.push_str(&format!("\n  {what}\n    {command}"));
    }
    text
}

/// Run a command as a Unix daemon, or check and stop one by its pidfile.
#[derive(Debug, Parser)]
#[command(
    name = "daemonize",
    // "(daemonctx)" tells this daemonize from Debian's unrelated one (init scripts check it).
    version = concat!(env!("CARGO_PKG_VERSION"), " (daemonctx)"),
    about = "Run a command as a Unix daemon, or check and stop one by its pidfile",
    long_about = "Run COMMAND as a Unix daemon: detached from the terminal in a new session, \
        with a clean environment of descriptors, signals and umask, its pidfile locked for as \
        long as it runs. daemonize returns only once COMMAND has been executed and the pidfile \
        holds its pid; every failure, even after the fork, is reported here with the step that \
        failed.\n\nWith --status or --stop, check or stop the daemon a pidfile names. Whether it \
        runs is decided by the pidfile's lock, never by a pid that may have been recycled.",
    override_usage = "daemonize [OPTIONS] [--] COMMAND [ARG]...\n       \
        daemonize --status -p FILE\n       \
        daemonize --stop -p FILE [--signal SIGNAL] [--retry SCHEDULE] [--child-pidfile FILE]\n       \
        daemonize --send SIGNAL -p FILE",
    after_long_help = after_long_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// Report whether the daemon named by the pidfile runs (LSB status codes)
    #[arg(long, requires = "pidfile", conflicts_with_all = ["stop", "send", "command"], help_heading = "Modes")]
    pub status: bool,

    /// Stop the daemon named by the pidfile, with its process group
    ///
    /// The pidfile is opened once, and everything after works on that open file. Once the
    /// daemon and its group are gone, any process still holding the pidfile's lock (one that
    /// left the group with setsid or setpgid) gets the schedule's signals too; the stop reports
    /// "still running" (2) while one does.
    #[arg(long, requires = "pidfile", conflicts_with_all = ["send", "command"], help_heading = "Modes")]
    pub stop: bool,

    /// Send SIGNAL to the daemon's COMMAND (through its supervisor, if any) and return
    #[arg(long, value_name = "SIGNAL", value_parser = parse_signal, requires = "pidfile", conflicts_with = "command", help_heading = "Modes")]
    pub send: Option<i32>,

    /// Lock FILE and write the daemon's pid into it
    ///
    /// An existing FILE is refused when it is not a regular file, is world-writable, has other
    /// hard links, or belongs to someone other than the caller or the -u user; no symbolic link
    /// is followed as FILE, nor on its path in a directory other users can write (as for -o),
    /// here or with --status, --stop and --send. An exec'd COMMAND inherits the lock on a
    /// read-only descriptor of FILE: it cannot rewrite the pid.
    #[arg(short = 'p', long, value_name = "FILE", help_heading = "Pidfile and output")]
    pub pidfile: Option<PathBuf>,

    /// Mode of a newly created pidfile or lock file, in octal
    #[arg(long, value_name = "MODE", default_value = defaults::PIDFILE_MODE, value_parser = parse_mode, help_heading = "Pidfile and output")]
    pub pidfile_mode: u32,

    /// Lock FILE for as long as the daemon runs, without writing to it
    #[arg(short = 'l', long = "lock", value_name = "FILE", help_heading = "Pidfile and output")]
    pub lock: Option<PathBuf>,

    /// Send COMMAND's standard output to FILE
    ///
    /// FILE is opened by walking its path from /, so that no other user can redirect the open:
    /// a symbolic link is followed only in a directory that only root or the caller can write;
    /// in any other directory (a service's own log directory, /tmp) a symbolic link is refused,
    /// as the last component or a directory on the way, and so is an existing file that is not
    /// a regular file or FIFO or that has other hard links. --supervise log files (and their
    /// reopening on SIGHUP) follow the same rule.
    #[arg(short = 'o', long, value_name = "FILE", help_heading = "Pidfile and output")]
    pub stdout: Option<PathBuf>,

    /// Send COMMAND's standard error to FILE
    ///
    /// FILE is opened as -o's is: no symbolic link is followed in a directory that users other
    /// than root and the caller can write.
    #[arg(short = 'e', long, value_name = "FILE", help_heading = "Pidfile and output")]
    pub stderr: Option<PathBuf>,

    /// Append to the output files instead of truncating them (--supervise always appends)
    #[arg(short = 'a', long, help_heading = "Pidfile and output")]
    pub append: bool,

    /// Working directory of COMMAND (inside the chroot, if any) [default: / when detached or
    /// chrooted; in the foreground, the directory daemonize was started in]
    #[arg(short = 'c', long, value_name = "DIR", help_heading = "Process")]
    pub chdir: Option<PathBuf>,

    /// Run as USER (a name or a numeric uid), with its primary group and supplementary groups
    ///
    /// HOME, USER and LOGNAME are set to the user's, from its passwd entry, as su(1) sets them
    /// (-E still overrides them; --clear-env leaves them out). A numeric uid with no passwd
    /// entry needs --group, and COMMAND then gets no HOME, USER or LOGNAME.
    ///
    /// Under --supervise, the supervisor takes USER as its effective uid only: its real and
    /// saved uid stay root's, so that COMMAND (USER's uid in full) cannot signal, trace or kill
    /// it and run on unsupervised. Only root can then signal the supervisor.
    #[arg(short = 'u', long, value_name = "USER", value_parser = parse_user, help_heading = "Process")]
    pub user: Option<UserSpec>,

    /// Run with GROUP (a name or a numeric gid) instead of the user's primary group
    #[arg(long, value_name = "GROUP", value_parser = parse_group, help_heading = "Process")]
    pub group: Option<GroupSpec>,

    /// File mode creation mask, in octal (022 as systemd gives services)
    #[arg(long, value_name = "MASK", default_value = defaults::UMASK, value_parser = parse_umask, help_heading = "Process")]
    pub umask: u32,

    /// Change the root directory to DIR before running COMMAND
    #[arg(long, value_name = "DIR", help_heading = "Process")]
    pub chroot: Option<PathBuf>,

    /// Do not fork: set up, then execute COMMAND in place, or supervise it from here (systemd
    /// Type=simple or notify, containers)
    #[arg(long, help_heading = "Process")]
    pub foreground: bool,

    /// Allow core dumps (by default RLIMIT_CORE is set to 0)
    #[arg(long, help_heading = "Process")]
    pub core: bool,

    /// Keep file descriptor N open for COMMAND (repeatable)
    #[arg(long = "preserve-fd", value_name = "N", value_parser = clap::value_parser!(i32).range(3..), help_heading = "Process")]
    pub preserve_fd: Vec<i32>,

    /// Set NAME to VALUE in COMMAND's environment (repeatable)
    #[arg(short = 'E', long = "env", value_name = "NAME=VALUE", value_parser = parse_env, help_heading = "Environment variables")]
    pub env: Vec<(OsString, OsString)>,

    /// Start COMMAND with an empty environment, plus the -E variables
    #[arg(long, help_heading = "Environment variables")]
    pub clear_env: bool,

    /// Signal that --stop sends first
    #[arg(long, value_name = "SIGNAL", default_value = defaults::SIGNAL, value_parser = parse_signal, help_heading = "Stopping")]
    pub signal: i32,

    /// What --stop does: SIGNAL/SECS/SIGNAL/SECS..., or SECS for SIGNAL/SECS/KILL/SECS
    /// [default: SIGNAL/30]
    ///
    /// As in start-stop-daemon, a signal is a name (TERM, -TERM) or a number after a minus
    /// sign (-15), a bare number is a timeout in seconds, and `forever` as the last item
    /// repeats the schedule. A schedule that sends no signal, or waits twice in a row
    /// (15/2/9/1: four waits), is refused: write signal numbers as -15/2/-9/1.
    #[arg(long, value_name = "SCHEDULE", allow_hyphen_values = true, help_heading = "Stopping")]
    pub retry: Option<String>,

    /// Stay as a supervisor that runs COMMAND as its child (restarts, log relay, clean stop)
    #[arg(long, help_heading = "Supervision")]
    pub supervise: bool,

    /// When to start COMMAND again after it exits
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = defaults::RESTART,
        help_heading = "Supervision"
    )]
    pub restart: RestartArg,

    /// Delay before the first restart, doubled at each one after (fractions allowed, at least
    /// 0.1)
    #[arg(long, value_name = "SECS", default_value = defaults::RESTART_DELAY, value_parser = parse_restart_delay, help_heading = "Supervision")]
    pub restart_delay: Duration,

    /// Longest delay between restarts; a run this long resets the delay (at least 0.1)
    #[arg(long, value_name = "SECS", default_value = defaults::RESTART_MAX_DELAY, value_parser = parse_restart_delay, help_heading = "Supervision")]
    pub restart_max_delay: Duration,

    /// Give up after N restarts within --restart-window, and exit non-zero
    #[arg(long, value_name = "N", help_heading = "Supervision")]
    pub max_restarts: Option<u32>,

    /// The window --max-restarts counts in
    #[arg(long, value_name = "SECS", default_value = defaults::RESTART_WINDOW, value_parser = parse_seconds, help_heading = "Supervision")]
    pub restart_window: Duration,

    /// On stop, time between SIGTERM and SIGKILL for COMMAND and all it started
    #[arg(long, value_name = "SECS", default_value = defaults::KILL_AFTER, value_parser = parse_seconds, help_heading = "Supervision")]
    pub kill_after: Duration,

    /// Pass the signals the supervisor gets on to COMMAND's whole process group, not only to
    /// COMMAND (as tini -g)
    #[arg(long, help_heading = "Supervision")]
    pub forward_to_group: bool,

    /// Write COMMAND's pid into FILE (the pidfile names the supervisor); with --stop, remove
    /// it once stopped
    #[arg(long, value_name = "FILE", help_heading = "Supervision")]
    pub child_pidfile: Option<PathBuf>,

    /// Signals the supervisor passes on to COMMAND, comma-separated [default: every catchable
    /// signal but TERM and CHLD; HUP only when there is no -o or -e]
    ///
    /// By default the supervisor passes on what tini and dumb-init do (ALRM, PIPE, URG, XCPU,
    /// VTALRM, PROF, IO, PWR, TSTP, TTIN, TTOU and the realtime signals too), each once. TERM
    /// stops COMMAND and all it started, with --kill-after. SIGHUP to a supervisor holding log
    /// files (-o, -e) reopens them, and reaches COMMAND only when listed here. With a list,
    /// signals not listed are ignored. `daemonize --send SIGNAL -p FILE` reaches COMMAND
    /// whatever this list says (it travels as RTMIN with a queued value; a plain RTMIN is a
    /// signal like the others).
    #[arg(long, value_name = "SIGNALS", value_parser = parse_forwarded, help_heading = "Supervision")]
    pub forward: Option<Forwarded>,

    /// Send COMMAND's output to syslog, one message per line
    #[arg(long, value_name = "FACILITY", num_args = 0..=1, default_missing_value = "daemon", value_parser = parse_facility_name, help_heading = "Syslog")]
    pub syslog: Option<String>,

    /// Tag of the syslog messages [default: COMMAND's basename]
    #[arg(long, value_name = "TAG", requires = "syslog", help_heading = "Syslog")]
    pub syslog_tag: Option<String>,

    /// Syslog socket
    #[arg(
        long,
        value_name = "PATH",
        default_value = defaults::SYSLOG_SOCKET,
        requires = "syslog",
        help_heading = "Syslog"
    )]
    pub syslog_socket: PathBuf,

    /// Priority of COMMAND's stdout lines
    #[arg(long, value_name = "PRIORITY", default_value = defaults::SYSLOG_STDOUT_PRIORITY, value_parser = parse_priority, requires = "syslog", help_heading = "Syslog")]
    pub syslog_stdout_priority: String,

    /// Priority of COMMAND's stderr lines
    #[arg(long, value_name = "PRIORITY", default_value = defaults::SYSLOG_STDERR_PRIORITY, value_parser = parse_priority, requires = "syslog", help_heading = "Syslog")]
    pub syslog_stderr_priority: String,

    /// Return only once COMMAND says it is ready: `notify` (READY=1 on $NOTIFY_SOCKET) or
    /// `fd:N` (a newline written to fd N)
    ///
    /// Only COMMAND and its descendants are believed, and only while they run when their
    /// message is read: a process outside COMMAND's tree, even with its uid, cannot make
    /// daemonize return (systemd-notify --ready waits for that, unless given --no-block).
    ///
    /// Once readiness is settled the socket drops every message, but its name stays bound, so
    /// that no other user can bind it and receive what COMMAND sends later: in exec mode
    /// COMMAND inherits the socket (one more descriptor; a COMMAND that closes it frees the
    /// name), under --supervise the supervisor keeps it.
    ///
    /// With --supervise, this is the first start's readiness: a restarted COMMAND gets no
    /// NOTIFY_SOCKET (sd_notify then does nothing) and /dev/null on fd N. With --foreground
    /// --supervise under a parent systemd (NOTIFY_SOCKET set), the socket keeps listening
    /// instead, restarted COMMANDs get it too, and what COMMAND's tree says there is passed on
    /// to systemd (see INIT SYSTEMS AND CONTAINERS).
    #[arg(long, value_name = "HOW", value_parser = parse_wait_ready, help_heading = "Readiness")]
    pub wait_ready: Option<WaitReady>,

    /// How long to wait for readiness before stopping COMMAND
    #[arg(long, value_name = "SECS", default_value = defaults::READY_TIMEOUT, value_parser = parse_seconds, requires = "wait_ready", help_heading = "Readiness")]
    pub ready_timeout: Duration,

    /// Say on standard error what was done
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// The program to run as a daemon, and its arguments: a name without a slash is looked up
    /// on PATH, a relative path with one is taken from the directory daemonize was started in
    /// (resolved once, before any chdir, in every mode and for every restart)
    #[arg(value_name = "COMMAND", trailing_var_arg = true, required_unless_present_any = ["status", "stop", "send"])]
    pub command: Vec<OsString>,
}

/// The default values of the options that have one, as clap reads them: the definition above
/// and [`Cli::with_defaults`] (the common forms' parser, `common_forms.rs`) share them.
pub mod defaults {
    /// `--pidfile-mode`.
    pub const PIDFILE_MODE: &str = "644";
    /// `--umask`.
    pub const UMASK: &str = "022";
    /// `--signal`.
    pub const SIGNAL: &str = "TERM";
    /// `--restart`.
    pub const RESTART: &str = "no";
    /// `--restart-delay`.
    pub const RESTART_DELAY: &str = "1";
    /// `--restart-max-delay`.
    pub const RESTART_MAX_DELAY: &str = "60";
    /// `--restart-window`.
    pub const RESTART_WINDOW: &str = "60";
    /// `--kill-after`.
    pub const KILL_AFTER: &str = "10";
    /// `--syslog-socket`.
    pub const SYSLOG_SOCKET: &str = "/dev/log";
    /// `--syslog-stdout-priority`.
    pub const SYSLOG_STDOUT_PRIORITY: &str = "info";
    /// `--syslog-stderr-priority`.
    pub const SYSLOG_STDERR_PRIORITY: &str = "err";
    /// `--ready-timeout`.
    pub const READY_TIMEOUT: &str = "90";
}

impl Cli {
    /// Every option at its default (each default read by the value parser clap uses), no mode
    /// and no COMMAND: what clap gives for an empty command line, without building clap's
    /// definition.
    pub fn with_defaults() -> Cli {
        let default = "a default value its own parser refuses";
        Cli {
            status: false,
            stop: false,
            send: None,
            pidfile: None,
            pidfile_mode: parse_mode(defaults::PIDFILE_MODE).expect(default),
            lock: None,
            stdout: None,
            stderr: None,
            append: false,
            chdir: None,
            user: None,
            group: None,
            umask: parse_umask(defaults::UMASK).expect(default),
            chroot: None,
            foreground: false,
            core: false,
            preserve_fd: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            signal: parse_signal(defaults::SIGNAL).expect(default),
            retry: None,
            supervise: false,
            restart: <RestartArg as clap::ValueEnum>::from_str(defaults::RESTART, false)
                .expect(default),
            restart_delay: parse_restart_delay(defaults::RESTART_DELAY).expect(default),
            restart_max_delay: parse_restart_delay(defaults::RESTART_MAX_DELAY).expect(default),
            max_restarts: None,
            restart_window: parse_seconds(defaults::RESTART_WINDOW).expect(default),
            kill_after: parse_seconds(defaults::KILL_AFTER).expect(default),
            forward_to_group: false,
            child_pidfile: None,
            forward: None,
            syslog: None,
            syslog_tag: None,
            syslog_socket: PathBuf::from(defaults::SYSLOG_SOCKET),
            syslog_stdout_priority: parse_priority(defaults::SYSLOG_STDOUT_PRIORITY)
                .expect(default),
            syslog_stderr_priority: parse_priority(defaults::SYSLOG_STDERR_PRIORITY)
                .expect(default),
            wait_ready: None,
            ready_timeout: parse_seconds(defaults::READY_TIMEOUT).expect(default),
            verbose: false,
            command: Vec::new(),
        }
    }
}

/// `--forward`: the signals a supervisor passes on to COMMAND.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded(pub Vec<i32>);

/// The signals a supervisor never passes on: those it handles itself (TERM stops, CHLD reaps),
/// and the faults and uncatchable ones no supervisor blocks.
fn forwardable(signal: i32) -> bool {
    ![libc::SIGTERM, libc::SIGCHLD].contains(&signal)
        && !daemonctx::signals::SYNCHRONOUS_OR_UNCATCHABLE.contains(&signal)
}

fn parse_forwarded(text: &str) -> Result<Forwarded, String> {
    let mut signals = Vec::new();
    for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        let signal = parse_signal(name)?;
        if !forwardable(signal) {
            return Err(format!(
                "{name} cannot be forwarded (TERM stops the supervisor, CHLD reaps; KILL, STOP \
                 and the fault signals SEGV, BUS, ILL, FPE, TRAP, SYS, ABRT are never passed on)"
            ));
        }
        signals.push(signal);
    }
    Ok(Forwarded(signals))
}

/// The options that mean something in one mode only, as (option id, its flag, the mode).
const MODE_ONLY: &[(&str, &str, &str)] = &[
    ("retry", "--retry", "--stop"),
    ("signal", "--signal", "--stop"),
    ("restart", "--restart", "--supervise"),
    ("restart_delay", "--restart-delay", "--supervise"),
    ("restart_max_delay", "--restart-max-delay", "--supervise"),
    ("max_restarts", "--max-restarts", "--supervise"),
    ("restart_window", "--restart-window", "--supervise"),
    ("forward", "--forward", "--supervise"),
    ("forward_to_group", "--forward-to-group", "--supervise"),
    ("syslog", "--syslog", "--supervise"),
];

/// An option given on the command line in a mode where it means nothing: the message that says
/// which mode it belongs to. (`--child-pidfile` belongs to --supervise and --stop.)
pub fn misplaced_option(matches: &clap::ArgMatches) -> Option<String> {
    let given = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let in_mode = |mode: &str| given(mode.trim_start_matches("--"));
    for (id, flag, mode) in MODE_ONLY {
        if given(id) && !in_mode(mode) {
            return Some(format!("{flag} is meaningful only with {mode}"));
        }
    }
    if given("child_pidfile") && !given("supervise") && !given("stop") {
        return Some("--child-pidfile is meaningful only with --supervise or --stop".into());
    }
    None
}

/// `--restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartArg {
    /// Never
    No,
    /// When COMMAND exits non-zero or is killed by a signal
    OnFailure,
    /// Whenever COMMAND exits
    Always,
}

/// `--wait-ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReady {
    /// systemd's protocol: READY=1 on $NOTIFY_SOCKET.
    Notify,
    /// s6's protocol: a newline on this descriptor.
    Fd(i32),
}

fn parse_wait_ready(text: &str) -> Result<WaitReady, String> {
    if text == "notify" {
        return Ok(WaitReady::Notify);
    }
    match text.strip_prefix("fd:").map(str::parse::<i32>) {
        Some(Ok(fd)) if fd >= 3 => Ok(WaitReady::Fd(fd)),
        _ => Err("expected `notify` or `fd:N` with N at least 3".to_string()),
    }
}

/// The longest duration an option takes; longer ones count as this (about 31 years), so that
/// no deadline computed from them overflows.
pub const LONGEST: Duration = Duration::from_secs(1_000_000_000);

/// The shortest restart delay: shorter ones would let a crash loop spin.
const SHORTEST_RESTART_DELAY: Duration = Duration::from_millis(100);

/// A number of seconds, fractions allowed; above [`LONGEST`] (infinity too), [`LONGEST`].
/// (`--retry`'s seconds are parsed by `daemonctx::stop`, not here.)
fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds >= LONGEST.as_secs_f64() => Ok(LONGEST),
        Ok(seconds) if seconds >= 0.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

fn parse_restart_delay(text: &str) -> Result<Duration, String> {
    let delay = parse_seconds(text)?;
    if delay < SHORTEST_RESTART_DELAY {
        return Err(format!("{text:?}: a restart delay must be at least 0.1 seconds"));
    }
    Ok(delay)
}

fn parse_facility_name(text: &str) -> Result<String, String> {
    parse_facility(text).map(|_| text.to_string())
}

fn parse_priority(text: &str) -> Result<String, String> {
    parse_severity(text).map(|_| text.to_string())
}

/// Parses a syslog facility name: `daemon`, `local0`…`local7`, `user`, `auth`, ….
pub fn parse_facility(name: &str) -> Result<syslog::Facility, String> {
    name.parse().map_err(|()| format!("unknown syslog facility {name:?}"))
}

/// Parses a syslog priority name: `emerg`, `alert`, `crit`, `err`, `warning`, `notice`,
/// `info`, `debug`.
pub fn parse_severity(name: &str) -> Result<syslog::Severity, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "emerg" => syslog::Severity::LOG_EMERG,
        "alert" => syslog::Severity::LOG_ALERT,
        "crit" => syslog::Severity::LOG_CRIT,
        "err" | "error" => syslog::Severity::LOG_ERR,
        "warning" | "warn" => syslog::Severity::LOG_WARNING,
        "notice" => syslog::Severity::LOG_NOTICE,
        "info" => syslog::Severity::LOG_INFO,
        "debug" => syslog::Severity::LOG_DEBUG,
        _ => return Err(format!("unknown syslog priority {name:?}")),
    })
}

fn parse_octal(text: &str, max: u32, what: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|value| *value <= max)
        .ok_or_else(|| format!("{what} must be an octal number from 0 to {max:o}"))
}

fn parse_umask(text: &str) -> Result<u32, String> {
    parse_octal(text, 0o777, "a umask")
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let mode = parse_octal(text, 0o777, "a pidfile mode")?;
    if mode & 0o002 != 0 {
        return Err("a world-writable pidfile would let anyone name another process".into());
    }
    Ok(mode)
}

fn parse_env(text: &str) -> Result<(OsString, OsString), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => Err("expected NAME=VALUE".to_string()),
    }
}

/// A user: all digits is a uid (as start-stop-daemon reads `--chuid`), anything else a name.
pub(crate) fn parse_user(text: &str) -> Result<UserSpec, String> {
    match parse_id(text, "uid")? {
        Some(uid) => Ok(UserSpec::Id(uid)),
        None => Ok(UserSpec::Name(text.to_string())),
    }
}

/// A group: all digits is a gid, anything else a name.
fn parse_group(text: &str) -> Result<GroupSpec, String> {
    match parse_id(text, "gid")? {
        Some(gid) => Ok(GroupSpec::Id(gid)),
        None => Ok(GroupSpec::Name(text.to_string())),
    }
}

/// A numeric id, if `text` is all digits; `None` for a name. The id -1 (`u32::MAX`) means "no
/// change" to setuid(2) and setgid(2), so it is refused.
fn parse_id(text: &str, what: &str) -> Result<Option<u32>, String> {
    if text.is_empty() {
        return Err(format!("an empty {what} or name"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(id) if id != u32::MAX => Ok(Some(id)),
        _ => Err(format!("{what} {text} is out of range")),
    }
}

fn parse_signal(text: &str) -> Result<i32, String> {
    daemonctx::stop::parse_signal(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn retry_help_states_the_default_wait() {
        use clap::CommandFactory;
        let command = Cli::command();
        let retry = command.get_arguments().find(|a| a.get_id() == "retry").unwrap();
        let help = retry.get_help().unwrap().to_string();
        let default = format!("[default: SIGNAL/{}]", daemonctx::stop::DEFAULT_WAIT.as_secs());
        assert!(help.contains(&default), "{help}");
    }

    #[test]
    fn syslog_names_parse() {
        assert!(matches!(parse_facility("local3"), Ok(syslog::Facility::LOG_LOCAL3)));
        assert!(parse_facility("nope").is_err());
        assert!(matches!(parse_severity("warning"), Ok(syslog::Severity::LOG_WARNING)));
        assert!(parse_severity("loud").is_err());
    }

    #[test]
    fn value_parsers_refuse_bad_input() {
        assert_eq!(parse_umask("027"), Ok(0o027));
        assert!(parse_umask("8").is_err());
        assert!(parse_umask("1777").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("NOEQUALS").is_err());
        assert!(parse_env("=x").is_err());
        assert_eq!(parse_forwarded("HUP, usr1"), Ok(Forwarded(vec![libc::SIGHUP, libc::SIGUSR1])));
        assert!(parse_forwarded("TERM").unwrap_err().contains("TERM stops the supervisor"));
        assert!(parse_forwarded("KILL").is_err());
        assert_eq!(parse_wait_ready("fd:5"), Ok(WaitReady::Fd(5)));
        assert!(parse_wait_ready("fd:1").is_err());
        assert!(parse_wait_ready("socket").is_err());
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("-0.001").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("ten").is_err());
        assert!(parse_seconds("").is_err());
    }

    #[test]
    fn numeric_users_and_groups_are_ids() {
        assert!(matches!(parse_user("1001"), Ok(UserSpec::Id(1001))));
        assert!(matches!(parse_user("0"), Ok(UserSpec::Id(0))));
        assert!(matches!(parse_user("www-data"), Ok(UserSpec::Name(n)) if n == "www-data"));
        assert!(matches!(parse_user("1001x"), Ok(UserSpec::Name(_))));
        assert!(matches!(parse_group("65534"), Ok(GroupSpec::Id(65534))));
        assert!(matches!(parse_group("nogroup"), Ok(GroupSpec::Name(_))));
        for bad in ["", "4294967295", "99999999999"] {
            assert!(parse_user(bad).is_err(), "{bad:?}");
            assert!(parse_group(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn huge_seconds_are_clamped() {
        for huge in ["1e9", "1e19", "1e30", "1e308", "inf", "18446744073709551616"] {
            assert_eq!(parse_seconds(huge), Ok(LONGEST), "{huge}");
        }
        assert_eq!(parse_seconds("999999999"), Ok(Duration::from_secs(999_999_999)));
        // What the daemonize wiring computes from them must not overflow.
        let (timeout, kill_after) = (parse_seconds("1e19").unwrap(), parse_seconds("inf").unwrap());
        let _ = std::time::Instant::now() + timeout + kill_after + Duration::from_secs(30);
        let _ = timeout.checked_mul(2).expect("doubling a clamped delay");
    }

    #[test]
    fn restart_delays_have_a_floor() {
        assert_eq!(parse_restart_delay("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_restart_delay("2"), Ok(Duration::from_secs(2)));
        for short in ["0", "0.0", "0.099", "1e-9"] {
            let refused = parse_restart_delay(short).unwrap_err();
            assert!(refused.contains("at least 0.1"), "{short}: {refused}");
        }
        assert_eq!(parse_restart_delay("1e19"), Ok(LONGEST));
    }
}
