//! The `daemonize` command line, defined once: `--help`, the man page generator
//! (`man/generate.rs`) and the man page test all read this definition.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The exit statuses of a start, as (code, meaning): the one table that `--help` and the man
/// page both show (`src/main.rs` maps errors to these codes).
pub const START_EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "COMMAND runs as a daemon; the pidfile holds its pid"),
    ("1", "already running: the pidfile or lock file is held (the message names the pid)"),
    ("2", "usage error: bad option or value, missing COMMAND, a --preserve-fd that is not open"),
    ("3", "unknown user or group"),
    ("4", "bad directory: -c or --chroot is missing or not a directory"),
    ("5", "an output file (-o, -e) or the syslog socket cannot be opened"),
    ("6", "the pidfile or lock file cannot be used (symlink, missing directory, permissions)"),
    ("7", "another setup step failed (the message names it)"),
    ("8", "COMMAND did not report ready within --ready-timeout (it was stopped)"),
    ("N", "COMMAND's own status (128+signal if killed) when it exits before it is ready"),
    ("126", "COMMAND exists but cannot be executed"),
    ("127", "COMMAND was not found"),
];

/// The exit statuses of `--status`: the LSB init-script codes.
pub const STATUS_EXIT_STATUS: &str =
    "0 running, 1 dead but the pidfile exists, 3 not running, 4 cannot tell";

/// The exit statuses of `--stop`.
pub const STOP_EXIT_STATUS: &str =
    "0 stopped, or was not running; 2 still running after the schedule; 3 other trouble";

/// The exit status of a supervisor.
pub const SUPERVISOR_EXIT_STATUS: &str =
    "A supervisor (--supervise) exits with COMMAND's last status, 128+N if a signal N killed it";

/// Examples, as (what it does, the command): shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Start a server as a daemon, logging to a file, as user www-data:",
        "daemonize -p /run/app.pid -o /var/log/app.log -a -u www-data -- /usr/bin/app --port 8080",
    ),
    (
        "Stop it from an init script: SIGTERM to its process group, SIGKILL after 30 seconds:",
        "daemonize --stop -p /run/app.pid --retry TERM/30/KILL/5",
    ),
];

/// EXIT STATUS and EXAMPLES for `--help`, from the tables above.
pub fn after_long_help() -> String {
    let mut text = String::from("EXIT STATUS\n  Starting:\n");
    for (code, meaning) in START_EXIT_STATUS {
        text.push_str(&format!("    {code:<4} {meaning}\n"));
    }
    text.push_str(&format!("  --status (LSB init-script codes):\n    {STATUS_EXIT_STATUS}\n"));
    text.push_str(&format!("  --stop:\n    {STOP_EXIT_STATUS}\n  {SUPERVISOR_EXIT_STATUS}.\n"));
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
    version,
    about = "Run a command as a Unix daemon, or check and stop one by its pidfile",
    long_about = "Run COMMAND as a Unix daemon: detached from the terminal in a new session, \
        with a clean environment of descriptors, signals and umask, its pidfile locked for as \
        long as it runs. daemonize returns only once COMMAND has been executed and the pidfile \
        holds its pid; every failure, even after the fork, is reported here with the step that \
        failed.\n\nWith --status or --stop, check or stop the daemon a pidfile names. Whether it \
        runs is decided by the pidfile's lock, never by a pid that may have been recycled.",
    override_usage = "daemonize [OPTIONS] [--] COMMAND [ARG]...\n       \
        daemonize --status -p FILE\n       \
        daemonize --stop -p FILE [--signal SIGNAL] [--retry SCHEDULE]",
    after_long_help = after_long_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// Report whether the daemon named by the pidfile runs (LSB status codes)
    #[arg(long, requires = "pidfile", conflicts_with_all = ["stop", "command"], help_heading = "Modes")]
    pub status: bool,

    /// Stop the daemon named by the pidfile, with its process group
    #[arg(long, requires = "pidfile", conflicts_with = "command", help_heading = "Modes")]
    pub stop: bool,

    /// Lock FILE and write the daemon's pid into it
    #[arg(short = 'p', long, value_name = "FILE", help_heading = "Pidfile and output")]
    pub pidfile: Option<PathBuf>,

    /// Mode of a newly created pidfile or lock file, in octal
    #[arg(long, value_name = "MODE", default_value = "644", value_parser = parse_mode, help_heading = "Pidfile and output")]
    pub pidfile_mode: u32,

    /// Lock FILE for as long as the daemon runs, without writing to it
    #[arg(short = 'l', long = "lock", value_name = "FILE", help_heading = "Pidfile and output")]
    pub lock: Option<PathBuf>,

    /// Send COMMAND's standard output to FILE
    #[arg(short = 'o', long, value_name = "FILE", help_heading = "Pidfile and output")]
    pub stdout: Option<PathBuf>,

    /// Send COMMAND's standard error to FILE
    #[arg(short = 'e', long, value_name = "FILE", help_heading = "Pidfile and output")]
    pub stderr: Option<PathBuf>,

    /// Append to the output files instead of truncating them (--supervise always appends)
    #[arg(short = 'a', long, help_heading = "Pidfile and output")]
    pub append: bool,

    /// Working directory of COMMAND (inside the chroot, if any) [default: / when detached or
    /// chrooted; in the foreground, the directory daemonize was started in]
    #[arg(short = 'c', long, value_name = "DIR", help_heading = "Process")]
    pub chdir: Option<PathBuf>,

    /// Run as USER, with its primary group and supplementary groups
    #[arg(short = 'u', long, value_name = "USER", help_heading = "Process")]
    pub user: Option<String>,

    /// Run with GROUP instead of the user's primary group
    #[arg(long, value_name = "GROUP", help_heading = "Process")]
    pub group: Option<String>,

    /// File mode creation mask, in octal (022 as systemd gives services)
    #[arg(long, value_name = "MASK", default_value = "022", value_parser = parse_umask, help_heading = "Process")]
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
    #[arg(long, value_name = "SIGNAL", default_value = "TERM", value_parser = parse_signal, help_heading = "Stopping")]
    pub signal: i32,

    /// What --stop does: SIGNAL/SECS/SIGNAL/SECS..., or SECS for SIGNAL/SECS/KILL/SECS
    /// [default: SIGNAL/30]
    #[arg(long, value_name = "SCHEDULE", help_heading = "Stopping")]
    pub retry: Option<String>,

    /// Stay as a supervisor that runs COMMAND as its child (restarts, log relay, clean stop)
    #[arg(long, help_heading = "Supervision")]
    pub supervise: bool,

    /// When to start COMMAND again after it exits
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "no",
        requires = "supervise",
        help_heading = "Supervision"
    )]
    pub restart: RestartArg,

    /// Delay before the first restart, doubled at each one after (fractions allowed, at least
    /// 0.1)
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_restart_delay, requires = "supervise", help_heading = "Supervision")]
    pub restart_delay: Duration,

    /// Longest delay between restarts; a run this long resets the delay (at least 0.1)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_restart_delay, requires = "supervise", help_heading = "Supervision")]
    pub restart_max_delay: Duration,

    /// Give up after N restarts within --restart-window, and exit non-zero
    #[arg(long, value_name = "N", requires = "supervise", help_heading = "Supervision")]
    pub max_restarts: Option<u32>,

    /// The window --max-restarts counts in
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds, requires = "supervise", help_heading = "Supervision")]
    pub restart_window: Duration,

    /// On stop, time between SIGTERM and SIGKILL for COMMAND and all it started
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds, help_heading = "Supervision")]
    pub kill_after: Duration,

    /// Pass the signals the supervisor gets on to COMMAND's whole process group, not only to
    /// COMMAND (as tini -g)
    #[arg(long, requires = "supervise", help_heading = "Supervision")]
    pub forward_to_group: bool,

    /// Write COMMAND's pid into FILE (the pidfile names the supervisor)
    #[arg(long, value_name = "FILE", requires = "supervise", help_heading = "Supervision")]
    pub child_pidfile: Option<PathBuf>,

    /// Send COMMAND's output to syslog, one message per line
    #[arg(long, value_name = "FACILITY", num_args = 0..=1, default_missing_value = "daemon", value_parser = parse_facility_name, requires = "supervise", help_heading = "Syslog")]
    pub syslog: Option<String>,

    /// Tag of the syslog messages [default: COMMAND's basename]
    #[arg(long, value_name = "TAG", requires = "syslog", help_heading = "Syslog")]
    pub syslog_tag: Option<String>,

    /// Syslog socket
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/dev/log",
        requires = "syslog",
        help_heading = "Syslog"
    )]
    pub syslog_socket: PathBuf,

    /// Priority of COMMAND's stdout lines
    #[arg(long, value_name = "PRIORITY", default_value = "info", value_parser = parse_priority, requires = "syslog", help_heading = "Syslog")]
    pub syslog_stdout_priority: String,

    /// Priority of COMMAND's stderr lines
    #[arg(long, value_name = "PRIORITY", default_value = "err", value_parser = parse_priority, requires = "syslog", help_heading = "Syslog")]
    pub syslog_stderr_priority: String,

    /// Return only once COMMAND says it is ready: `notify` (READY=1 on $NOTIFY_SOCKET) or
    /// `fd:N` (a newline written to fd N)
    ///
    /// With --supervise, this is the first start's readiness. Once it is settled the socket is
    /// closed: a restarted COMMAND gets no NOTIFY_SOCKET (sd_notify then does nothing) and
    /// /dev/null on fd N.
    #[arg(long, value_name = "HOW", value_parser = parse_wait_ready, help_heading = "Readiness")]
    pub wait_ready: Option<WaitReady>,

    /// How long to wait for readiness before stopping COMMAND
    #[arg(long, value_name = "SECS", default_value = "90", value_parser = parse_seconds, requires = "wait_ready", help_heading = "Readiness")]
    pub ready_timeout: Duration,

    /// Say on standard error what was done
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// The program to run as a daemon (looked up on PATH), and its arguments
    #[arg(value_name = "COMMAND", trailing_var_arg = true, required_unless_present_any = ["status", "stop"])]
    pub command: Vec<OsString>,
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
