//! Side-by-side benchmark of our `daemonize` against setsid(1), start-stop-daemon(8),
//! daemonize(1) and libslack's daemon(1), all measured in one run and printed as Markdown.
//!
//! 1. Start latency: from spawning the start command to its exit. Afterwards the daemon must
//!    run and, for the tools that write one, its pidfile must name it.
//! 2. The same with `RLIMIT_NOFILE` at the hard limit and a high descriptor inherited (tools
//!    that `close(2)` every descriptor up to the limit pay for it here).
//! 3. Stop latency: from spawning the stop command to its exit, on a daemon the same tool
//!    started (the start is not counted).
//! 4. Supervisor cost: resident memory, CPU time (ns, from `schedstat`), wakeups and context
//!    switches of an idle supervisor.
//! 5. Library: from process start to `DaemonContext::open()` returning in the daemon, against
//!    a bare `fork(2)`, `setsid(2)`, `fork(2)` in the same program.
//! 6. Start latency by the pidfile's file system: tmpfs against the temporary directory's
//!    (ours `fsync(2)`s the pidfile, which costs a device flush on a disk file system).
//!
//! Runs alternate between the tools round by round (the first tool rotates as well), after
//! one untimed warm-up round. `BENCH_RUNS` sets the runs per tool (default 50). Pidfiles go in
//! `BENCH_DIR`, else in `/dev/shm` when it is a tmpfs (as `/run` is on systemd machines), else
//! in the temporary directory.
//!
//! Reaping and cleanup: the bench makes itself a child subreaper (`prctl(2)`
//! `PR_SET_CHILD_SUBREAPER`), so orphaned daemons become its children and are reaped at once,
//! as init would (a container's init may reap late, and start-stop-daemon's `--stop` waits
//! until its daemon is reaped). Every run gives `sleep` a unique argument, its tag; a
//! [`RunGuard`] kills whatever carries the tag when dropped, even on a panic: by pid, pinned
//! with `pidfd_open(2)`, then `poll(2)` on the pidfd until the process is gone (bounded).
//! Never by name. Every start and stop command is awaited the same way, for at most
//! [`DEADLINE`]; one still running then is killed through its pidfd and the bench stops.
//!
//! The bench binary is also the daemon of section 5: run as `compare --as-library-daemon FILE`
//! or `compare --as-bare-daemon FILE`, it daemonizes, writes `CLOCK_MONOTONIC` in nanoseconds
//! to FILE and exits. The library refuses to fork a multi-threaded process, so that mode is
//! entered first thing in `main`, before anything could start a thread.
//!
//! Prepare with `bash daemonize/benches/setup.sh` (as root), run with `cargo bench -p daemonize --bench compare`.
//! Without the `--bench` argument cargo bench passes (as under `cargo test --all-targets`), the
//! binary measures nothing and exits 0.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::cell::{Cell, RefCell};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Runs per tool and section unless `BENCH_RUNS` says otherwise.
const DEFAULT_RUNS: usize = 50;
/// How long each supervisor is watched while idle (section 4).
const IDLE: Duration = Duration::from_secs(10);
/// Bound on every wait for a process to appear or end, or for a file to be written.
const DEADLINE: Duration = Duration::from_secs(10);
/// Soft `RLIMIT_NOFILE` of sections 1, 3, 4 and 5: the usual default on Linux distributions.
const USUAL_NOFILE: u64 = 1024;
/// Our `daemonize`, built in release by `cargo bench`.
const OURS: &str = env!("CARGO_BIN_EXE_daemonize");

fn main() {
    daemon_mode::enter_if_asked(); // before any thread exists: see the module docs
    if !std::env::args().any(|arg| arg == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`: measure nothing.
        println!("compare: nothing measured; run `cargo bench -p daemonize --bench compare`");
        return;
    }
    if let Err(e) = sys::become_subreaper() {
        panic!("prctl(PR_SET_CHILD_SUBREAPER): {e}");
    }
    if let Err(e) = sys::tighten_timer_slack() {
        panic!("prctl(PR_SET_TIMERSLACK): {e}");
    }
    let bench = Bench::new(runs_from_env());
    bench.print_header();
    bench.start_latency_usual();
    bench.start_latency_high();
    bench.stop_latency();
    bench.supervisor_cost();
    bench.library_open();
    bench.pidfile_file_system();
    println!("Load average at the end: {}", machine::load_average());
}

/// `BENCH_RUNS`, or [`DEFAULT_RUNS`].
///
/// # Panics
/// When `BENCH_RUNS` is set but is not a positive integer.
fn runs_from_env() -> usize {
    match std::env::var("BENCH_RUNS") {
        Err(_) => DEFAULT_RUNS,
        Ok(text) => match text.parse::<usize>() {
            Ok(runs) if runs > 0 => runs,
            _ => panic!("BENCH_RUNS={text:?}: expected a positive number of runs"),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The tools and their commands
// ---------------------------------------------------------------------------------------------

/// The programs compared, found at their Debian paths; `None` when not installed.
struct Tools {
    setsid: Option<PathBuf>,
    start_stop_daemon: Option<PathBuf>,
    /// daemonize(1): `/usr/sbin/daemonize` upstream, `/usr/bin/daemonize` in Debian 12.
    daemonize1: Option<PathBuf>,
    /// libslack's daemon(1).
    libslack: Option<PathBuf>,
}

impl Tools {
    fn detect() -> Tools {
        Tools {
            setsid: first_existing(&["/usr/bin/setsid", "/bin/setsid"]),
            start_stop_daemon: first_existing(&[
                "/usr/sbin/start-stop-daemon",
                "/sbin/start-stop-daemon",
            ]),
            daemonize1: first_existing(&["/usr/sbin/daemonize", "/usr/bin/daemonize"]),
            libslack: first_existing(&["/usr/bin/daemon", "/usr/sbin/daemon"]),
        }
    }
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|path| path.is_file())
}

/// The files and names of one run: a directory of its own, the pidfile, and the tag.
struct Run {
    dir: PathBuf,
    pidfile: PathBuf,
    /// The unique argument of `sleep` (`1000.<bench pid><run number>`), which finds the daemon.
    tag: String,
    /// The instance name libslack's daemon requires for a pidfile.
    name: String,
}

impl Run {
    /// What the tables show in place of the run's pidfile, tag and name.
    fn placeholder() -> Run {
        Run {
            dir: PathBuf::new(),
            pidfile: PathBuf::from("F"),
            tag: "1000".into(),
            name: "NAME".into(),
        }
    }
}

/// Builds a command's arguments for a run.
type Args = fn(&Run) -> Vec<OsString>;

/// How a tool's pidfile names the daemon.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// No pidfile (setsid).
    Nothing,
    /// The pid of `sleep` itself.
    Daemon,
    /// The pid of the supervisor whose child is `sleep`.
    Supervisor,
}

/// A command that starts `sleep TAG` as a daemon.
struct Starter {
    label: &'static str,
    program: PathBuf,
    /// What the tables call the program: ours is `daemonize`, the others their full path.
    shown_as: String,
    args: Args,
    names: Names,
}

/// The processes a start left running.
struct Started {
    /// The pid of `sleep TAG`.
    sleep: u32,
    /// The pid the pidfile names, if the tool writes one.
    named: Option<u32>,
}

impl Starter {
    fn ours(args: Args, names: Names) -> Starter {
        Starter {
            label: "daemonize (ours)",
            program: OURS.into(),
            shown_as: "daemonize".into(),
            args,
            names,
        }
    }

    fn theirs(label: &'static str, program: &Path, args: Args, names: Names) -> Starter {
        Starter {
            label,
            program: program.into(),
            shown_as: program.display().to_string(),
            args,
            names,
        }
    }

    /// The command for `run`, with no standard input or output and stderr to a file.
    fn command(&self, run: &Run) -> Command {
        quiet_command(&self.program, (self.args)(run), run)
    }

    /// The command line as the tables show it.
    fn shown(&self) -> String {
        shown(&self.shown_as, &(self.args)(&Run::placeholder()))
    }

    /// Whether the daemon runs `sleep TAG` (has been executed, not merely forked) and, for the
    /// tools that write one, the pidfile names it or its supervisor. Cheap enough to poll: it
    /// reads only our children and grandchildren (as a subreaper, the bench adopts daemons).
    fn ready(&self, run: &Run) -> bool {
        let Some(sleep) = tagged_sleep_below(std::process::id(), &run.tag) else {
            return false;
        };
        match self.names {
            Names::Nothing => true,
            Names::Daemon => running_pid_in(&run.pidfile) == Some(sleep),
            Names::Supervisor => running_pid_in(&run.pidfile) == procfs::ppid(sleep),
        }
    }

    /// Checks, after the start, that `sleep TAG` runs and that the pidfile names it (or its
    /// supervisor), waiting a bounded time for tools that write the pidfile late.
    ///
    /// # Panics
    /// When the daemon or a valid pidfile does not appear within [`DEADLINE`].
    fn check_started(&self, run: &Run) -> Started {
        let what = format!("{}: `sleep {}`", self.label, run.tag);
        let sleep = wait_for(|| find_tagged_sleep(&run.tag))
            .unwrap_or_else(|| panic!("{what} is not running after the start"));
        let named = match self.names {
            Names::Nothing => None,
            Names::Daemon | Names::Supervisor => Some(
                wait_for(|| running_pid_in(&run.pidfile))
                    .unwrap_or_else(|| panic!("{what}: pidfile never named a running process")),
            ),
        };
        let expected = match self.names {
            Names::Nothing => None,
            Names::Daemon => Some(sleep),
            Names::Supervisor => procfs::ppid(sleep),
        };
        assert_eq!(named, expected, "{what}: the pidfile names another process");
        Started { sleep, named }
    }
}

/// A command with stdin and stdout on `/dev/null` and stderr to `run.dir/stderr`.
fn quiet_command(program: &Path, args: Vec<OsString>, run: &Run) -> Command {
    let stderr = File::create(run.dir.join("stderr")).expect("create the run's stderr file");
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    command
}

/// A command line for the tables: program and arguments, separated by spaces.
fn shown(program: &str, args: &[OsString]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Turns a list of arguments into the `Vec<OsString>` a [`Command`] takes.
fn os_args<const N: usize>(args: [&OsStr; N]) -> Vec<OsString> {
    args.iter().map(|arg| arg.to_os_string()).collect()
}

fn ours_start(run: &Run) -> Vec<OsString> {
    os_args(["-p".as_ref(), run.pidfile.as_ref(), "sleep".as_ref(), run.tag.as_ref()])
}

fn ours_stop(run: &Run) -> Vec<OsString> {
    os_args(["--stop".as_ref(), "-p".as_ref(), run.pidfile.as_ref()])
}

fn ours_supervise(run: &Run) -> Vec<OsString> {
    let (pidfile, tag) = (run.pidfile.as_ref(), run.tag.as_ref());
    os_args(["--supervise".as_ref(), "-p".as_ref(), pidfile, "--".as_ref(), "sleep".as_ref(), tag])
}

fn setsid_start(run: &Run) -> Vec<OsString> {
    os_args(["-f".as_ref(), "sleep".as_ref(), run.tag.as_ref()])
}

fn ssd_start(run: &Run) -> Vec<OsString> {
    let (pidfile, tag) = (run.pidfile.as_ref(), run.tag.as_ref());
    let options: [&OsStr; 5] = [
        "--start".as_ref(),
        "--background".as_ref(),
        "--make-pidfile".as_ref(),
        "--pidfile".as_ref(),
        pidfile,
    ];
    let mut args = os_args(options);
    args.extend(os_args(["--exec".as_ref(), "/bin/sleep".as_ref(), "--".as_ref(), tag]));
    args
}

fn ssd_stop(run: &Run) -> Vec<OsString> {
    let options: [&OsStr; 5] = [
        "--stop".as_ref(),
        "--pidfile".as_ref(),
        run.pidfile.as_ref(),
        "--retry".as_ref(),
        "TERM/5".as_ref(),
    ];
    os_args(options)
}

fn daemonize1_start(run: &Run) -> Vec<OsString> {
    os_args(["-p".as_ref(), run.pidfile.as_ref(), "/bin/sleep".as_ref(), run.tag.as_ref()])
}

/// libslack's daemon writes a pidfile only for a named instance: `--pidfile` needs `--name`.
fn libslack_start(run: &Run) -> Vec<OsString> {
    libslack_args(run, &[])
}

fn libslack_respawn(run: &Run) -> Vec<OsString> {
    libslack_args(run, &["--respawn"])
}

fn libslack_args(run: &Run, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = extra.iter().map(OsString::from).collect();
    args.push(format!("--name={}", run.name).into());
    args.push(format!("--pidfile={}", run.pidfile.display()).into());
    args.extend(os_args(["--".as_ref(), "/bin/sleep".as_ref(), run.tag.as_ref()]));
    args
}

// ---------------------------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------------------------

/// The state of one benchmark run: settings, tools, the scratch directories, the run counter.
struct Bench {
    runs: usize,
    tools: Tools,
    /// Where the runs' pidfiles go: `BENCH_DIR`, else a tmpfs as `/run` is on systemd
    /// machines (`/dev/shm`), else the temporary directory.
    scratch: Scratch,
    /// The temporary directory when it is on another file system than `scratch` (section 6).
    other: Option<Scratch>,
    next: Cell<u64>,
    /// The inherited descriptor of section 2, while it is open.
    high_fd: Cell<Option<i32>>,
    /// Notes printed under the table of the current section (skipped tools, caveats).
    notes: RefCell<Vec<String>>,
}

impl Bench {
    fn new(runs: usize) -> Bench {
        let scratch = Scratch::create(&scratch_base());
        let temporary = std::env::temp_dir();
        let other = (scratch_fs(&temporary) != scratch.fs).then(|| Scratch::create(&temporary));
        Bench {
            runs,
            tools: Tools::detect(),
            scratch,
            other,
            next: Cell::new(0),
            high_fd: Cell::new(None),
            notes: Default::default(),
        }
    }

    /// A fresh [`Run`] in the scratch directory: its own directory, pidfile, tag and name.
    fn next_run(&self) -> Run {
        self.next_run_in(&self.scratch)
    }

    /// A fresh [`Run`] in the directory `scratch`.
    fn next_run_in(&self, scratch: &Scratch) -> Run {
        let number = self.next.get();
        self.next.set(number + 1);
        let dir = scratch.path.join(format!("run-{number}"));
        fs::create_dir(&dir).expect("create the run's directory");
        Run {
            pidfile: dir.join("daemon.pid"),
            dir,
            tag: format!("{}{number:06}", scratch.tag_prefix),
            name: format!("dcbench-{}-{number}", std::process::id()),
        }
    }

    fn note(&self, note: String) {
        self.notes.borrow_mut().push(note);
    }

    /// Prints and forgets the notes of the section.
    fn print_notes(&self) {
        for note in self.notes.borrow_mut().drain(..) {
            println!("- {note}");
        }
        println!();
    }

    /// A note that `tool` is missing, so its rows are left out.
    fn skipped(&self, tool: &str) {
        self.note(format!(
            "{tool}: not installed, skipped (run `bash daemonize/benches/setup.sh` as root)"
        ));
    }

    fn print_header(&self) {
        println!("## daemonize benchmark: one run, all tools side by side\n");
        println!("Machine: {}", machine::describe());
        println!("Load average at the start: {}", machine::load_average());
        println!("Pidfiles in: {} (BENCH_DIR)", self.scratch.describe());
        println!(
            "Runs per tool: {} (BENCH_RUNS), after one untimed warm-up round; tools alternate round by round.\n",
            self.runs
        );
        println!("| Tool | Program | Version |");
        println!("| --- | --- | --- |");
        println!(
            "| daemonize (ours) | `{OURS}` | {} |",
            machine::version_of(Path::new(OURS), "--version")
        );
        let t = &self.tools;
        let rows: [(&str, &Option<PathBuf>, &str, Option<&str>); 4] = [
            ("setsid", &t.setsid, "util-linux", Some("--version")),
            ("start-stop-daemon", &t.start_stop_daemon, "dpkg", Some("--version")),
            // `daemonize -v` is verbose mode, and without COMMAND it crashes: ask dpkg only.
            ("daemonize(1)", &t.daemonize1, "daemonize", None),
            ("libslack daemon", &t.libslack, "daemon", Some("--version")),
        ];
        for (label, path, package, flag) in rows {
            match path {
                Some(path) => {
                    let own = flag
                        .map(|f| format!("{}; ", machine::version_of(path, f)))
                        .unwrap_or_default();
                    println!(
                        "| {label} | `{}` | {own}Debian package {package} {} |",
                        path.display(),
                        machine::debian_version(package)
                    );
                }
                None => println!("| {label} | not installed | |"),
            }
        }
        println!();
    }

    // -- Sections 1 and 2: start latency --------------------------------------------------

    /// The start commands that are installed, ours first.
    fn starters(&self) -> Vec<Starter> {
        let t = &self.tools;
        let mut list = vec![Starter::ours(ours_start, Names::Daemon)];
        let theirs: [(&'static str, &Option<PathBuf>, Args, Names); 4] = [
            ("setsid -f (floor: no pidfile)", &t.setsid, setsid_start, Names::Nothing),
            ("start-stop-daemon", &t.start_stop_daemon, ssd_start, Names::Daemon),
            ("daemonize(1)", &t.daemonize1, daemonize1_start, Names::Daemon),
            ("libslack daemon", &t.libslack, libslack_start, Names::Supervisor),
        ];
        for (label, path, args, names) in theirs {
            match path {
                Some(path) => list.push(Starter::theirs(label, path, args, names)),
                None => self.skipped(label),
            }
        }
        list
    }

    /// Section 1: start latency at the usual soft `RLIMIT_NOFILE`.
    fn start_latency_usual(&self) {
        let (_, hard) = sys::nofile_limit();
        let soft = USUAL_NOFILE.min(hard);
        sys::set_nofile_soft(soft).expect("setrlimit(RLIMIT_NOFILE)");
        println!("### 1. Start latency (RLIMIT_NOFILE soft {soft}, hard {hard})\n");
        self.start_latency_table();
    }

    /// Section 2: start latency with the soft limit raised to the hard limit and a descriptor
    /// open at limit - 1 (no `FD_CLOEXEC`), inherited by every start command.
    fn start_latency_high(&self) {
        let (_, hard) = sys::nofile_limit();
        sys::set_nofile_soft(hard).expect("setrlimit(RLIMIT_NOFILE) to the hard limit");
        let high = (hard - 1) as i32;
        let inherited = sys::dup_devnull_to(high).expect("dup2(/dev/null, limit - 1)");
        println!(
            "### 2. Start latency, RLIMIT_NOFILE raised to the hard limit ({hard}), fd {high} inherited\n"
        );
        self.high_fd.set(Some(high));
        self.start_latency_table();
        self.high_fd.set(None);
        drop(inherited); // close(2)
        sys::set_nofile_soft(USUAL_NOFILE.min(hard)).expect("setrlimit(RLIMIT_NOFILE)");
    }

    /// Measures every starter and prints the table of section 1 or 2.
    fn start_latency_table(&self) {
        let starters = self.starters();
        let samples =
            self.round_robin(&starters, |starter| self.start_once(starter, &self.scratch));
        let ours = StartSummary::of(&samples[0]);
        let high_fd = self.high_fd.get();
        let fd_column = high_fd.map(|fd| format!(" fd {fd} still open in `sleep` |"));
        println!(
            "| Tool | Command | Exit median ms | Exit p90 ms | Exit vs ours | Running median ms | Running p90 ms | Running vs ours | Pidfile valid at exit |{}",
            fd_column.unwrap_or_default()
        );
        let fd_rule = if high_fd.is_some() { " ---: |" } else { "" };
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{fd_rule}");
        for (starter, series) in starters.iter().zip(&samples) {
            let this = StartSummary::of(series);
            let valid = match starter.names {
                Names::Nothing => "no pidfile".to_string(),
                _ => count_of(series, |s| s.pidfile_valid_at_exit),
            };
            let fd_cell = match high_fd {
                Some(_) => format!(" {} |", count_of(series, |s| s.high_fd_open)),
                None => String::new(),
            };
            println!(
                "| {} | `{}` | {:.2} | {:.2} | {:.2}× | {:.2} | {:.2} | {:.2}× | {valid} |{fd_cell}",
                starter.label,
                starter.shown(),
                this.exit.median,
                this.exit.p90,
                this.exit.median / ours.exit.median,
                this.running.median,
                this.running.p90,
                this.running.median / ours.running.median
            );
        }
        println!();
        self.note("Exit: from spawning the start command to its exit (spawn, `pidfd_open(2)`, `poll(2)` on the pidfd until it exits, `waitpid(2)`).".into());
        self.note("Running: from the same spawn until the daemon has executed `sleep` (its argv in /proc is `sleep TAG`, not the forked tool's) and the pidfile names it (libslack's names its supervisor, the parent of `sleep`); polled every 20 µs from the start command's exit, so never less than Exit. A tool that returns before its daemon is set up is fast on Exit, not on Running.".into());
        self.note("Pidfile valid at exit: runs in which, when the start command had exited, the pidfile already held the pid of the daemon the bench then found, `sleep TAG` (for libslack, of its supervisor, the parent of `sleep`). Every run was then checked: daemon running, pidfile naming it.".into());
        if let Some(fd) = high_fd {
            self.note(format!("fd {fd} still open in `sleep`: runs in which the daemon kept the descriptor the start command inherited (/proc/PID/fd/{fd} of `sleep`)."));
        }
        self.print_notes();
    }

    /// One start: timed from spawn to exit and to the daemon running, then checked, then the
    /// daemon killed by its guard.
    fn start_once(&self, starter: &Starter, scratch: &Scratch) -> StartSample {
        let run = self.next_run_in(scratch);
        let _guard = RunGuard::new(run.tag.as_ref());
        let mut command = starter.command(&run);
        let started = Instant::now();
        let status = status_within_deadline(&mut command);
        let elapsed = started.elapsed();
        check_exit(&command, status, &run);
        let named_at_exit = running_pid_in(&run.pidfile);
        let ready = wait_for_quickly(|| starter.ready(&run).then_some(()));
        let running = started.elapsed();
        ready.unwrap_or_else(|| panic!("{}: `sleep {}` never ran", starter.label, run.tag));
        let daemon = starter.check_started(&run);
        // Valid: it named, already, the process the bench then found (`sleep TAG`, or for
        // libslack its supervisor), not merely some running process.
        let pidfile_valid_at_exit = named_at_exit.is_some() && named_at_exit == daemon.named;
        let high_fd_open = self.high_fd.get().is_some_and(|fd| procfs::has_fd(daemon.sleep, fd));
        StartSample { elapsed, running, pidfile_valid_at_exit, high_fd_open }
    }

    /// Runs `measure` once per item untimed, then `self.runs` rounds, each item once per round,
    /// the first item of a round rotating. The samples, per item.
    fn round_robin<T, S>(&self, items: &[T], mut measure: impl FnMut(&T) -> S) -> Vec<Vec<S>> {
        items.iter().for_each(|item| drop(measure(item)));
        let mut samples: Vec<Vec<S>> =
            items.iter().map(|_| Vec::with_capacity(self.runs)).collect();
        for round in 0..self.runs {
            for k in 0..items.len() {
                let index = (round + k) % items.len();
                samples[index].push(measure(&items[index]));
            }
            sys::reap_orphans();
        }
        samples
    }

    // -- Section 3: stop latency ----------------------------------------------------------

    fn stoppers(&self) -> Vec<Stopper> {
        let mut list =
            vec![Stopper { start: Starter::ours(ours_start, Names::Daemon), stop_args: ours_stop }];
        match &self.tools.start_stop_daemon {
            Some(path) => list.push(Stopper {
                start: Starter::theirs("start-stop-daemon", path, ssd_start, Names::Daemon),
                stop_args: ssd_stop,
            }),
            None => self.skipped("start-stop-daemon"),
        }
        self.note(
            "daemonize(1): left out: it has no stop command (it only starts a daemon).".into(),
        );
        self.note("libslack daemon: left out: `daemon --name=NAME --stop` sends SIGTERM to the named daemon and returns at once, without waiting for it to be gone, so its time is not a stop latency.".into());
        list
    }

    /// Section 3: stop latency of `sleep` daemons, each stopped by the tool that started it.
    fn stop_latency(&self) {
        println!("### 3. Stop latency (daemon started by the same tool; start not counted)\n");
        let stoppers = self.stoppers();
        let samples = self.round_robin(&stoppers, |stopper| self.stop_once(stopper));
        let ours = summarize(&samples[0]).median;
        println!(
            "| Tool | Stop command | Start command (not timed) | Median ms | p90 ms | Median vs ours |"
        );
        println!("| --- | --- | --- | ---: | ---: | ---: |");
        for (stopper, series) in stoppers.iter().zip(&samples) {
            let summary = summarize(series);
            println!(
                "| {} | `{}` | `{}` | {:.2} | {:.2} | {:.2}× |",
                stopper.start.label,
                stopper.shown(),
                stopper.start.shown(),
                summary.median,
                summary.p90,
                summary.median / ours
            );
        }
        println!();
        self.note("Time: spawning the stop command to its exit; it must exit 0 with the daemon gone. The bench, a child subreaper, reaps the daemon as soon as it dies, as init would.".into());
        self.print_notes();
    }

    /// One stop: start (untimed, checked), then time the stop command.
    fn stop_once(&self, stopper: &Stopper) -> Duration {
        let run = self.next_run();
        let _guard = RunGuard::new(run.tag.as_ref());
        let mut start = stopper.start.command(&run);
        let status = status_within_deadline(&mut start);
        check_exit(&start, status, &run);
        let daemon = stopper.start.check_started(&run).sleep;
        let daemon_fd = daemonctx::process::pidfd_open(daemon).expect("pidfd_open(daemon)");
        let mut command = stopper.command(&run);
        let started = Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let child_fd =
            daemonctx::process::pidfd_open(child.id()).expect("pidfd_open(stop command)");
        reap_while_waiting(&child_fd, &daemon_fd, daemon);
        let status = child.wait();
        let elapsed = started.elapsed();
        check_exit(&command, status, &run);
        assert!(
            daemonctx::process::wait_exit(&daemon_fd, Instant::now() + Duration::ZERO),
            "{}: daemon still runs after the stop",
            stopper.start.label
        );
        elapsed
    }

    // -- Section 4: supervisor cost -------------------------------------------------------

    fn supervisors(&self) -> Vec<Starter> {
        let mut list = vec![Starter::ours(ours_supervise, Names::Supervisor)];
        match &self.tools.libslack {
            Some(path) => list.push(Starter::theirs(
                "libslack daemon --respawn",
                path,
                libslack_respawn,
                Names::Supervisor,
            )),
            None => self.skipped("libslack daemon"),
        }
        list
    }

    /// Section 4: every supervisor started, then sampled at the start and the end of the
    /// same idle period.
    fn supervisor_cost(&self) {
        println!("### 4. Supervisor cost (idle for {} s, supervising `sleep`)\n", IDLE.as_secs());
        let supervisors = self.supervisors();
        let runs: Vec<Run> = supervisors.iter().map(|_| self.next_run()).collect();
        let _guards: Vec<RunGuard> =
            runs.iter().map(|run| RunGuard::new(run.tag.as_ref())).collect();
        let pids: Vec<u32> =
            supervisors.iter().zip(&runs).map(|(s, run)| start_supervisor(s, run)).collect();
        let before: Vec<Usage> = pids.iter().map(|pid| Usage::of(*pid)).collect();
        std::thread::sleep(IDLE);
        let after: Vec<Usage> = pids.iter().map(|pid| Usage::of(*pid)).collect();
        let idle = IDLE.as_secs();
        println!(
            "| Supervisor | Command | VmRSS kB | Threads | CPU µs in {idle} s | Wakeups in {idle} s | Voluntary switches in {idle} s | Nonvoluntary switches in {idle} s |"
        );
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (i, supervisor) in supervisors.iter().enumerate() {
            let (before, after) = (&before[i], &after[i]);
            let schedstat =
                |field: fn(&Schedstat) -> u64| match (&before.schedstat, &after.schedstat) {
                    (Some(b), Some(a)) => (field(a) - field(b)).to_string(),
                    _ => "n/a".to_string(),
                };
            println!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                supervisor.label,
                supervisor.shown(),
                after.rss_kb,
                after.threads,
                schedstat(|s| s.cpu_ns / 1000),
                schedstat(|s| s.runs),
                after.voluntary - before.voluntary,
                after.nonvoluntary - before.nonvoluntary
            );
        }
        println!();
        self.note(format!("Of the supervisor process alone (the pid its pidfile names), not of `sleep`. VmRSS and Threads from /proc/PID/status at the end. CPU: time on a CPU (first field of /proc/PID/task/*/schedstat, in ns, summed over threads); Wakeups: how many times it was put on a CPU (third field of the same, summed), each wakeup of an idle process being one. Switches: voluntary (it blocked) and nonvoluntary (preempted), summed over /proc/PID/task/*/status. All supervisors idle during the same {idle} s."));
        if before.iter().chain(&after).any(|usage| usage.schedstat.is_none()) {
            self.note(
                "n/a: no /proc/PID/task/*/schedstat (a kernel without CONFIG_SCHED_INFO).".into(),
            );
        }
        self.print_notes();
    }

    // -- Section 5: the library's open() --------------------------------------------------

    /// Section 5: process start to `open()` returning in the daemon, library against bare.
    fn library_open(&self) {
        println!("### 5. Library: process start to running as a daemon\n");
        let modes = [daemon_mode::LIBRARY, daemon_mode::BARE];
        let samples = self.round_robin(&modes, |mode| self.open_once(mode));
        let ours = summarize(&samples[0]).median;
        println!("| Program | In the daemon program | Median ms | p90 ms | Median vs library |");
        println!("| --- | --- | ---: | ---: | ---: |");
        let described = [
            "`DaemonContext::new().pidfile(FILE.pid).open()`",
            "`fork()`, parent `_exit(0)`; `setsid()`; `fork()`, parent `_exit(0)`",
        ];
        for ((mode, what), series) in modes.iter().zip(described).zip(&samples) {
            let summary = summarize(series);
            println!(
                "| `compare {mode} FILE` | {what} | {:.2} | {:.2} | {:.2}× |",
                summary.median,
                summary.p90,
                summary.median / ours
            );
        }
        println!();
        self.note("Time: CLOCK_MONOTONIC just before spawning the bench binary in daemon mode (std's `Command`), to CLOCK_MONOTONIC read in the daemon right after it got there, written to FILE. Both include the exec of the same binary.".into());
        self.note("The library also locks and writes the pidfile, resets signals, redirects stdio to /dev/null, closes inherited fds with close_range and reports to the original process, which waits for that report; the bare program does none of this.".into());
        self.print_notes();
    }

    /// One run of the bench binary as a daemon in `mode`.
    fn open_once(&self, mode: &str) -> Duration {
        let run = self.next_run();
        let stamp = run.dir.join("stamp");
        let _guard = RunGuard::new(stamp.as_os_str());
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = quiet_command(&exe, vec![mode.into(), stamp.clone().into()], &run);
        let started = sys::monotonic_ns();
        let status = status_within_deadline(&mut command);
        check_exit(&command, status, &run);
        let written = wait_for(|| fs::read_to_string(&stamp).ok()?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{mode}: the daemon never wrote {}", stamp.display()));
        Duration::from_nanos(written.saturating_sub(started))
    }

    // -- Section 6: the pidfile's file system --------------------------------------------

    /// Section 6: ours and start-stop-daemon with the pidfile in the scratch directory and in
    /// the temporary directory, when that is another file system (ours `fsync(2)`s the pid).
    fn pidfile_file_system(&self) {
        println!("### 6. Start latency by the pidfile's file system\n");
        let Some(other) = &self.other else {
            println!(
                "Skipped: the temporary directory is on the same file system as {}.\n",
                self.scratch.describe()
            );
            return;
        };
        if self.tools.start_stop_daemon.is_none() {
            self.skipped("start-stop-daemon");
        }
        let mut rows: Vec<(Starter, &Scratch)> = Vec::new();
        for scratch in [&self.scratch, other] {
            rows.push((Starter::ours(ours_start, Names::Daemon), scratch));
            if let Some(path) = &self.tools.start_stop_daemon {
                rows.push((
                    Starter::theirs("start-stop-daemon", path, ssd_start, Names::Daemon),
                    scratch,
                ));
            }
        }
        let samples =
            self.round_robin(&rows, |(starter, scratch)| self.start_once(starter, scratch).elapsed);
        let ours = summarize(&samples[0]).median;
        println!(
            "| Tool | Command | Pidfile directory | Median ms | p90 ms | Median vs first row |"
        );
        println!("| --- | --- | --- | ---: | ---: | ---: |");
        for ((starter, scratch), series) in rows.iter().zip(&samples) {
            let summary = summarize(series);
            println!(
                "| {} | `{}` | {} | {:.2} | {:.2} | {:.2}× |",
                starter.label,
                starter.shown(),
                scratch.describe(),
                summary.median,
                summary.p90,
                summary.median / ours
            );
        }
        println!();
        self.note("Ours writes the pid with `pwrite(2)` and `fsync(2)`; on a disk file system the fsync waits for the device. start-stop-daemon does not fsync. RLIMIT_NOFILE as in section 1.".into());
        self.print_notes();
    }
}

/// One start of section 1, 2 or 6.
struct StartSample {
    /// Spawn to the start command's exit.
    elapsed: Duration,
    /// Spawn to the daemon running `sleep` with the pidfile naming it: see [`Starter::ready`].
    running: Duration,
    pidfile_valid_at_exit: bool,
    /// Whether `sleep` still has the high descriptor of section 2 open.
    high_fd_open: bool,
}

/// The two times of a series of starts.
struct StartSummary {
    exit: Summary,
    running: Summary,
}

impl StartSummary {
    fn of(series: &[StartSample]) -> StartSummary {
        let exit: Vec<Duration> = series.iter().map(|s| s.elapsed).collect();
        let running: Vec<Duration> = series.iter().map(|s| s.running).collect();
        StartSummary { exit: summarize(&exit), running: summarize(&running) }
    }
}

/// `K/N`: how many of the N samples have the property.
fn count_of(series: &[StartSample], property: impl Fn(&StartSample) -> bool) -> String {
    format!("{}/{}", series.iter().filter(|s| property(s)).count(), series.len())
}

/// A start command, and the stop command of the same tool.
struct Stopper {
    start: Starter,
    stop_args: Args,
}

impl Stopper {
    fn command(&self, run: &Run) -> Command {
        quiet_command(&self.start.program, (self.stop_args)(run), run)
    }

    fn shown(&self) -> String {
        shown(&self.start.shown_as, &(self.stop_args)(&Run::placeholder()))
    }
}

/// Polls until the stop command (`child`) exits; meanwhile reaps the daemon (our child: the
/// bench is a subreaper) as soon as it dies, as init would.
///
/// # Panics
/// When the stop command is still running after [`DEADLINE`].
fn reap_while_waiting(child: &OwnedFd, daemon: &OwnedFd, daemon_pid: u32) {
    let deadline = Instant::now() + DEADLINE;
    let mut fds = [child.as_raw_fd(), daemon.as_raw_fd()];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the stop command still runs after {DEADLINE:?}");
        let ready = sys::poll_readable(&fds, left);
        if ready[1] {
            sys::reap(daemon_pid);
            fds[1] = -1; // poll(2) ignores negative descriptors
        }
        if ready[0] {
            return;
        }
    }
}

/// Starts a supervisor and returns its pid once it and its `sleep` run.
fn start_supervisor(supervisor: &Starter, run: &Run) -> u32 {
    let mut command = supervisor.command(run);
    let status = status_within_deadline(&mut command);
    check_exit(&command, status, run);
    supervisor.check_started(run).named.expect("a supervisor's pidfile names it")
}

/// The resources a process used, from /proc.
struct Usage {
    rss_kb: u64,
    threads: u64,
    /// Summed over its threads; `None` without schedstat in the kernel.
    schedstat: Option<Schedstat>,
    /// Voluntary context switches of all its threads.
    voluntary: u64,
    /// Nonvoluntary context switches of all its threads.
    nonvoluntary: u64,
}

/// `/proc/PID/task/TID/schedstat`, summed over a process's threads.
struct Schedstat {
    /// Time spent on a CPU, in nanoseconds.
    cpu_ns: u64,
    /// How many times a thread was put on a CPU (a wakeup, or a return after preemption).
    runs: u64,
}

impl Usage {
    /// # Panics
    /// When the process is gone.
    fn of(pid: u32) -> Usage {
        let status = |field| {
            procfs::status_field(pid, field)
                .unwrap_or_else(|| panic!("/proc/{pid}/status: no {field}"))
        };
        Usage {
            rss_kb: status("VmRSS"),
            threads: status("Threads"),
            schedstat: procfs::schedstat(pid),
            voluntary: procfs::task_status_sum(pid, "voluntary_ctxt_switches"),
            nonvoluntary: procfs::task_status_sum(pid, "nonvoluntary_ctxt_switches"),
        }
    }
}

/// Runs `command` to its exit, for at most [`DEADLINE`]: spawn, `pidfd_open(2)`, `poll(2)` on
/// the pidfd, `waitpid(2)`. The errors of spawning it.
///
/// # Panics
/// When it still runs after [`DEADLINE`]: it is first killed through its pidfd and reaped.
fn status_within_deadline(command: &mut Command) -> std::io::Result<ExitStatus> {
    let mut child = command.spawn()?;
    let pidfd = match daemonctx::process::pidfd_open(child.id()) {
        Ok(pidfd) => pidfd,
        Err(e) => {
            // Our unreaped child: its pid cannot have been reused.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    if !daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE) {
        let _ = daemonctx::process::pidfd_send_signal(&pidfd, libc::SIGKILL);
        if daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE) {
            let _ = child.wait();
        }
        panic!("{command:?} still ran after {DEADLINE:?}; killed it");
    }
    child.wait()
}

/// Panics with the command, its status and its stderr unless it exited 0.
fn check_exit(command: &Command, status: std::io::Result<ExitStatus>, run: &Run) {
    let status = status.unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !status.success() {
        let stderr = fs::read_to_string(run.dir.join("stderr")).unwrap_or_default();
        panic!("{command:?} failed: {status}\nstderr: {stderr}");
    }
}

/// Calls `probe` until it gives a value, for at most [`DEADLINE`], 200 µs apart.
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Calls `probe` until it gives a value, for at most [`DEADLINE`], 20 µs apart (the timer slack
/// is 1 ns: [`sys::tighten_timer_slack`]), so that the time it returns at is precise.
fn wait_for_quickly<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// The pid in `pidfile`, if it names a running (not zombie) process.
fn running_pid_in(pidfile: &Path) -> Option<u32> {
    let pid = fs::read_to_string(pidfile).ok()?.trim().parse::<u32>().ok()?;
    procfs::is_running(pid).then_some(pid)
}

/// Among the children and grandchildren of `ancestor`, the one whose argv is `... sleep TAG`.
fn tagged_sleep_below(ancestor: u32, tag: &str) -> Option<u32> {
    let children = procfs::children(ancestor);
    let grandchildren = children.iter().flat_map(|child| procfs::children(*child));
    let mut family = children.iter().copied().chain(grandchildren);
    family.find(|pid| procfs::argv(*pid).is_some_and(|argv| is_tagged_sleep(&argv, tag)))
}

/// Whether `argv` is `... sleep TAG`: argv[0] ends in `sleep` (libslack names it
/// `NAME: /bin/sleep`) and the last argument is the tag.
fn is_tagged_sleep(argv: &[Vec<u8>], tag: &str) -> bool {
    argv.len() >= 2 && argv[0].ends_with(b"sleep") && argv[argv.len() - 1] == tag.as_bytes()
}

/// The running process whose argv is `... sleep TAG`: argv[0] ends in `sleep` (libslack names
/// it `NAME: /bin/sleep`) and the last argument is the tag. The first one found.
fn find_tagged_sleep(tag: &str) -> Option<u32> {
    procfs::pids_where(|argv| is_tagged_sleep(argv, tag))
        .into_iter()
        .find(|pid| procfs::is_running(*pid))
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// Median and 90th percentile of a series, in milliseconds.
struct Summary {
    median: f64,
    p90: f64,
}

/// The median (mean of the two middle values for an even count) and the nearest-rank 90th
/// percentile.
fn summarize(samples: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
    let rank = (n * 9).div_ceil(10).max(1);
    Summary { median, p90: ms[rank - 1] }
}

// ---------------------------------------------------------------------------------------------
// Cleanup guards
// ---------------------------------------------------------------------------------------------

/// The processes of one run: when dropped, every process with an argument equal to the tag is
/// killed by pid (pinned with a pidfd), awaited (bounded) and reaped. Scans again afterwards, in
/// case a supervisor restarted its child meanwhile.
struct RunGuard {
    tag: OsString,
}

impl RunGuard {
    fn new(tag: &OsStr) -> RunGuard {
        RunGuard { tag: tag.to_os_string() }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let tag = self.tag.as_bytes();
        kill_matching(|argv| argv.iter().any(|arg| arg == tag));
    }
}

/// The scratch directory: when dropped, kills anything left with one of this bench's tags or
/// paths in its argv, reaps orphans, and removes the directory.
struct Scratch {
    path: PathBuf,
    /// The type of the file system `path` is on (`tmpfs`, `ext4`).
    fs: String,
    /// What every tag of this bench starts with: `1000.` and our pid on 7 digits.
    tag_prefix: String,
}

impl Scratch {
    /// Creates `base/daemonctx-bench-PID`, empty.
    fn create(base: &Path) -> Scratch {
        let pid = std::process::id();
        let path = base.join(format!("daemonctx-bench-{pid}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Scratch { fs: scratch_fs(&path), path, tag_prefix: format!("1000.{pid:07}") }
    }

    /// How the tables name this directory: path and file system.
    fn describe(&self) -> String {
        format!("`{}` ({})", self.path.display(), self.fs)
    }
}

/// The directory the runs' pidfiles go in: `BENCH_DIR`, else `/dev/shm` when it is a tmpfs (as
/// `/run` is on systemd machines, where pidfiles live), else the temporary directory.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_DIR") {
        return dir.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && scratch_fs(shm) == "tmpfs" {
        return shm.into();
    }
    std::env::temp_dir()
}

/// The type of the file system `path` is on (`tmpfs`, `ext4`): the last-mounted entry of
/// `/proc/self/mountinfo` whose mount point is the longest prefix of the path.
fn scratch_fs(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [TAGS...] - TYPE SOURCE SUPER-OPTIONS
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|field| *field == "-") else { continue };
        let (Some(mount), Some(fs_type)) = (fields.get(4), fields.get(dash + 1)) else { continue };
        if path.starts_with(mount) && best.is_none_or(|(length, _)| mount.len() >= length) {
            best = Some((mount.len(), fs_type));
        }
    }
    best.map_or_else(|| "unknown file system".into(), |(_, fs_type)| fs_type.to_string())
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (prefix, path) = (self.tag_prefix.as_bytes(), self.path.as_os_str().as_bytes());
        let left = kill_matching(|argv| {
            argv.iter().any(|arg| arg.starts_with(prefix) || arg.starts_with(path))
        });
        if left > 0 {
            eprintln!("compare: killed {left} leftover process(es)");
        }
        sys::reap_orphans();
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Kills every process whose argv `matches`, by pid: `pidfd_open(2)`, the argv checked again on
/// the pinned process, `pidfd_send_signal(2)` `SIGKILL`, `poll(2)` until gone (bounded), then
/// reaped if it is our child. Up to three scans. Returns how many were killed.
fn kill_matching(matches: impl Fn(&[Vec<u8>]) -> bool) -> usize {
    let mut killed = 0;
    for _ in 0..3 {
        let pids = procfs::pids_where(&matches);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let Ok(pidfd) = daemonctx::process::pidfd_open(pid) else { continue };
            if !procfs::argv(pid).is_some_and(|argv| matches(&argv)) {
                continue; // gone, or a new process under a recycled pid
            }
            if daemonctx::process::pidfd_send_signal(&pidfd, libc::SIGKILL).is_ok() {
                killed += 1;
                if !daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE) {
                    eprintln!("compare: pid {pid} still there {DEADLINE:?} after SIGKILL");
                }
                sys::reap(pid);
            }
        }
    }
    killed
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/// Reading processes from /proc.
mod procfs {
    use std::fs;

    /// The argv of `pid` (`/proc/PID/cmdline`); empty for a zombie or a kernel thread.
    pub fn argv(pid: u32) -> Option<Vec<Vec<u8>>> {
        let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let mut args: Vec<Vec<u8>> = raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        if args.last().is_some_and(Vec::is_empty) {
            args.pop();
        }
        Some(args)
    }

    /// The pids, other than ours, whose argv `matches`.
    pub fn pids_where(matches: impl Fn(&[Vec<u8>]) -> bool) -> Vec<u32> {
        let ours = std::process::id();
        let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != ours && argv(*pid).is_some_and(|argv| matches(&argv)))
            .collect()
    }

    /// The fields of `/proc/PID/stat` after the command name: state is field 0, ppid 1.
    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        Some(after_name.split_whitespace().map(str::to_string).collect())
    }

    /// Whether `pid` exists and is not a zombie.
    pub fn is_running(pid: u32) -> bool {
        stat_fields(pid).is_some_and(|fields| !matches!(fields[0].as_str(), "Z" | "X" | "x"))
    }

    /// Whether `pid` has descriptor `fd` open (`/proc/PID/fd/FD`).
    pub fn has_fd(pid: u32, fd: i32) -> bool {
        fs::symlink_metadata(format!("/proc/{pid}/fd/{fd}")).is_ok()
    }

    /// The children of `pid`, all its threads' (`/proc/PID/task/TID/children`).
    pub fn children(pid: u32) -> Vec<u32> {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
        let lists =
            tasks.filter_map(|task| fs::read_to_string(task.ok()?.path().join("children")).ok());
        lists
            .flat_map(|list| {
                list.split_whitespace().filter_map(|pid| pid.parse().ok()).collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn ppid(pid: u32) -> Option<u32> {
        stat_fields(pid)?.get(1)?.parse().ok()
    }

    /// Time on a CPU (ns) and times put on a CPU, summed over the threads' schedstat
    /// (`/proc/PID/task/TID/schedstat`: on-CPU ns, run-queue wait ns, run count). `None`
    /// when no thread has one (a kernel without `CONFIG_SCHED_INFO`).
    pub fn schedstat(pid: u32) -> Option<crate::Schedstat> {
        let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut sum: Option<crate::Schedstat> = None;
        for task in tasks.filter_map(Result::ok) {
            let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else { continue };
            let fields: Vec<u64> =
                text.split_whitespace().filter_map(|field| field.parse().ok()).collect();
            let [cpu_ns, _, runs] = fields[..] else { continue };
            let total = sum.get_or_insert(crate::Schedstat { cpu_ns: 0, runs: 0 });
            total.cpu_ns += cpu_ns;
            total.runs += runs;
        }
        sum
    }

    /// A numeric field of `/proc/PID/status` (`VmRSS`, `Threads`, ...), without its unit.
    pub fn status_field(pid: u32, name: &str) -> Option<u64> {
        field_in(&format!("/proc/{pid}/status"), name)
    }

    /// A numeric field of `/proc/PID/task/TID/status` (`voluntary_ctxt_switches`, ...),
    /// summed over the process's threads.
    pub fn task_status_sum(pid: u32, name: &str) -> u64 {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
        tasks
            .filter_map(Result::ok)
            .map(|task| task.path().join("status"))
            .map(|path| field_in(&path.to_string_lossy(), name).unwrap_or(0))
            .sum()
    }

    fn field_in(path: &str, name: &str) -> Option<u64> {
        let text = fs::read_to_string(path).ok()?;
        let line = text.lines().find(|line| line.split(':').next() == Some(name))?;
        line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
    }
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/// What the header says about the machine and the tools.
mod machine {
    use std::fs;
    use std::path::Path;
    use std::process::Command;

    /// `nproc`, the kernel release, the CPU model.
    pub fn describe() -> String {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split(':').nth(1))
            .unwrap_or("unknown")
            .trim();
        format!("{cpus} CPUs (nproc), Linux {} (uname -r), {model}", kernel.trim())
    }

    pub fn load_average() -> String {
        let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    }

    /// The first line `program flag` prints.
    pub fn version_of(program: &Path, flag: &str) -> String {
        let Ok(output) = Command::new(program).arg(flag).output() else { return "?".into() };
        let text = [output.stdout, output.stderr].concat();
        String::from_utf8_lossy(&text).lines().next().unwrap_or("?").trim().to_string()
    }

    /// The version of an installed Debian package (`dpkg-query -W`).
    pub fn debian_version(package: &str) -> String {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", package])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .unwrap_or_else(|| "?".into())
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon side of section 5
// ---------------------------------------------------------------------------------------------

/// The bench binary as the daemon of section 5.
mod daemon_mode {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    use crate::sys;

    /// Daemonize with `DaemonContext::open()`.
    pub const LIBRARY: &str = "--as-library-daemon";
    /// Daemonize with a bare `fork(2)`, `setsid(2)`, `fork(2)`.
    pub const BARE: &str = "--as-bare-daemon";

    /// Becomes the daemon and exits when the arguments are `--as-library-daemon FILE` or
    /// `--as-bare-daemon FILE`; returns otherwise. Must run before any thread is started.
    pub fn enter_if_asked() {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let [mode, file] = args.as_slice() else { return };
        let file = PathBuf::from(file);
        if mode == LIBRARY {
            library_daemon(&file)
        } else if mode == BARE {
            bare_daemon(&file)
        }
    }

    /// `DaemonContext::new().pidfile(FILE.pid).open()`, then the time, then exit.
    fn library_daemon(file: &Path) -> ! {
        let pidfile = file.with_extension("pid");
        match daemonctx::DaemonContext::new().pidfile(&pidfile).open() {
            Ok(mut daemon) => {
                let now = sys::monotonic_ns();
                let written = write_stamp(file, now);
                let closed = daemon.close().is_ok();
                std::process::exit(if written && closed { 0 } else { 1 })
            }
            Err(e) => {
                eprintln!("compare: {}", daemonctx::error::chain(&e));
                std::process::exit(1)
            }
        }
    }

    /// `fork(2)`, the parent `_exit(0)`s; `setsid(2)`; `fork(2)`, the parent `_exit(0)`s; then
    /// the time, then exit. The process has a single thread, so the child may allocate.
    fn bare_daemon(file: &Path) -> ! {
        sys::fork_and_leave_parent();
        sys::setsid();
        sys::fork_and_leave_parent();
        let now = sys::monotonic_ns();
        sys::exit_now(if write_stamp(file, now) { 0 } else { 1 })
    }

    /// Writes `nanoseconds` to a temporary name, then renames it to `file`, so the bench never
    /// reads a half-written file.
    fn write_stamp(file: &Path, nanoseconds: u64) -> bool {
        let temporary = file.with_extension("tmp");
        std::fs::write(&temporary, nanoseconds.to_string()).is_ok()
            && std::fs::rename(&temporary, file).is_ok()
    }
}

// ---------------------------------------------------------------------------------------------
// System calls
// ---------------------------------------------------------------------------------------------

/// Thin wrappers over the system calls the bench makes; each `unsafe` block is one call.
mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::{Duration, Instant};

    /// `prctl(2)` `PR_SET_CHILD_SUBREAPER`: orphaned descendants become our children.
    pub fn become_subreaper() -> io::Result<()> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument; no memory is passed.
        let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `prctl(2)` `PR_SET_TIMERSLACK` to 1 ns, so that short sleeps end on time.
    pub fn tighten_timer_slack() -> io::Result<()> {
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument; no memory is passed.
        if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `poll(2)` for `POLLIN` on `fds` (negative ones ignored), at most `timeout`, retried on
    /// `EINTR`. Which descriptors are readable.
    ///
    /// # Panics
    /// When poll fails otherwise.
    pub fn poll_readable<const N: usize>(fds: &[RawFd; N], timeout: Duration) -> [bool; N] {
        let deadline = Instant::now() + timeout;
        let mut polled = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: polled is an array of N initialised pollfd structs, valid for the call.
            let result = unsafe { libc::poll(polled.as_mut_ptr(), N as libc::nfds_t, ms) };
            if result >= 0 {
                return polled.map(|p| p.revents != 0);
            }
            let error = io::Error::last_os_error();
            assert_eq!(error.kind(), io::ErrorKind::Interrupted, "poll: {error}");
        }
    }

    /// `waitpid(2)` `WNOHANG` on `pid`: reaps it if it is our child and has exited.
    pub fn reap(pid: u32) {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer for the call.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    }

    /// `waitpid(2)` `-1, WNOHANG` until nothing is left to reap: the orphans that exited. Only
    /// called while no `std::process::Child` of ours is unwaited.
    pub fn reap_orphans() {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer for each call.
        while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
    }

    /// `getrlimit(2)` `RLIMIT_NOFILE`: (soft, hard).
    pub fn nofile_limit() -> (u64, u64) {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: limit is a valid out-pointer for one rlimit.
        let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(result, 0, "getrlimit: {}", io::Error::last_os_error());
        (limit.rlim_cur, limit.rlim_max)
    }

    /// `setrlimit(2)` `RLIMIT_NOFILE`: the soft limit to `soft`, the hard one unchanged.
    pub fn set_nofile_soft(soft: u64) -> io::Result<()> {
        let limit = libc::rlimit { rlim_cur: soft, rlim_max: nofile_limit().1 };
        // SAFETY: limit is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `dup2(2)` of `/dev/null` onto `target`: the new descriptor has no `FD_CLOEXEC`, so every
    /// command spawned inherits it. Closed when the returned `OwnedFd` is dropped.
    ///
    /// # Errors
    /// `EBUSY` when `target` is already open (it would belong to someone else); the errors of
    /// `open(2)` and `dup2(2)`.
    pub fn dup_devnull_to(target: RawFd) -> io::Result<OwnedFd> {
        // SAFETY: F_GETFD only reads the flags of a descriptor number; no memory is passed.
        if unsafe { libc::fcntl(target, libc::F_GETFD) } != -1 {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let null = std::fs::File::open("/dev/null")?;
        // SAFETY: null is open for the call and target was checked to be free, so dup2 closes
        // no descriptor that anything owns.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } != target {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: dup2 just made target a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(target) })
    }

    /// `clock_gettime(2)` `CLOCK_MONOTONIC`, in nanoseconds: comparable across processes.
    pub fn monotonic_ns() -> u64 {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: now is a valid out-pointer for one timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
    }

    /// `fork(2)`: returns in the child; the parent leaves at once with `_exit(0)`.
    ///
    /// # Panics
    /// When fork fails (then nothing was created).
    pub fn fork_and_leave_parent() {
        // SAFETY: the process has a single thread (daemon mode is entered before any thread is
        // created), so the child may go on running ordinary code.
        match unsafe { libc::fork() } {
            -1 => panic!("fork: {}", io::Error::last_os_error()),
            0 => {}
            _ => exit_now(0),
        }
    }

    /// `setsid(2)`: a new session, without a controlling terminal.
    pub fn setsid() {
        // SAFETY: setsid has no memory preconditions.
        if unsafe { libc::setsid() } < 0 {
            panic!("setsid: {}", io::Error::last_os_error());
        }
    }

    /// `_exit(2)`: leave at once, without atexit handlers or destructors.
    pub fn exit_now(code: i32) -> ! {
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(code) }
    }
}
