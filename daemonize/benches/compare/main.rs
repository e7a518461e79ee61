//! Side-by-side benchmark of our `daemonize` against a floor (`benches/floor.c`: the same
//! protocol and guarantees in 200 lines of C, compiled by the bench with `cc`), setsid(1),
//! start-stop-daemon(8), daemonize(1) and libslack's daemon(1), all measured in one run and
//! printed as Markdown. Every start row is given as a ratio to the floor and to ours.
//!
//! 0. Program start-up: `daemonize --version` (static and dynamic) against a C hello world.
//! 1. Start latency: from spawning the start command to its exit, and to the daemon running
//!    with the pidfile naming it. Afterwards the daemon must run and, for the tools that write
//!    one, its pidfile must name it. Ours twice: statically linked as `setup.sh` builds it for
//!    release, and as `cargo build --release` links it.
//! 2. The same with `RLIMIT_NOFILE` at the hard limit and a high descriptor inherited (tools
//!    that `close(2)` every descriptor up to the limit pay for it here).
//! 3. Stop latency: from spawning the stop command to its exit, on a daemon the same tool
//!    started (the start is not counted). 3b: ours with 150, 1,000 and 3,000 processes on the
//!    host (unrelated `sleep`s fill it up; the rows interleaved in blocks; nothing walks /proc
//!    between a start and its timed stop).
//! 4. Supervisor cost: resident memory, CPU time (ns, from `schedstat`), wakeups and context
//!    switches of an idle supervisor. 4b: lines per second through the relay (`-o F`) and to a
//!    syslog socket the bench binds, against COMMAND writing to the file itself.
//! 5. Library: from process start to `DaemonContext::open()` returning in the daemon, against
//!    a bare `fork(2)`, `setsid(2)`, `fork(2)` in the same program.
//! 6. Start latency by the pidfile's file system (tmpfs and the temporary directory's disk) and
//!    `RLIMIT_NOFILE` (1024 and the hard limit): the floor, ours, start-stop-daemon.
//!
//! Runs alternate between the tools round by round (the first tool rotates as well), after
//! one untimed warm-up round. `BENCH_RUNS` sets the runs per tool (default 50),
//! `BENCH_SECTIONS` the sections to run (`0,1,2,3,3b,4,4b,5,6`; all by default). Pidfiles go in
//! `BENCH_DIR`, else in `/dev/shm` when it is a tmpfs (as `/run` is on systemd machines), else
//! in the temporary directory.
//!
//! Reaping and cleanup: the bench makes itself a child subreaper (`prctl(2)`
//! `PR_SET_CHILD_SUBREAPER`), so orphaned daemons become its children and are reaped at once,
//! as init would (a container's init may reap late, and start-stop-daemon's `--stop` waits
//! until its daemon is reaped). Every run gives `sleep` a unique argument, its tag; a
//! [`cleanup::RunGuard`] kills whatever carries the tag when dropped, even on a panic: by pid, pinned
//! with `pidfd_open(2)`, then `poll(2)` on the pidfd until the process is gone (bounded). (Section
//! 3b disarms it once the run's daemon was seen exited through its pidfd, so that no scan of /proc
//! comes before the next timed stop.)
//! Never by name. Every start and stop command is awaited the same way, for at most
//! [`DEADLINE`]; one still running then is killed through its pidfd and the bench stops.
//!
//! The bench binary is also the daemon of section 5: run as `compare --as-library-daemon FILE`
//! or `compare --as-bare-daemon FILE`, it daemonizes, writes `CLOCK_MONOTONIC` in nanoseconds
//! to FILE and exits. The library refuses to fork a multi-threaded process, so that mode is
//! entered first thing in `main`, before anything could start a thread.
//!
//! Files: `tools` (the commands), `start`, `stop`, `supervisor`, `library` (the sections),
//! `wait` and `cleanup` (bounded waits, kills by pidfd), `stats`, `procfs` (what
//! `daemonctx::process` does not read), `sys`, `machine`, `daemon_mode`.
//!
//! Prepare with `bash daemonize/benches/setup.sh` (as root, it also builds the static binary),
//! run with `cargo bench -p daemonize --bench compare`.
//! Without the `--bench` argument cargo bench passes (as under `cargo test --all-targets`), the
//! binary measures nothing and exits 0.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cleanup;
mod daemon_mode;
mod library;
mod machine;
mod procfs;
mod start;
mod stats;
mod stop;
mod supervisor;
mod sys;
mod tools;
mod wait;

use std::cell::{Cell, RefCell};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cleanup::{Scratch, scratch_base, scratch_fs};
use tools::{Run, Tools};

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
    let sections = sections_from_env();
    let run = |name: &str| sections.as_ref().is_none_or(|list| list.iter().any(|s| s == name));
    if run("0") {
        bench.startup_cost();
    }
    if run("1") {
        bench.start_latency_usual();
    }
    if run("2") {
        bench.start_latency_high();
    }
    if run("3") {
        bench.stop_latency();
    }
    if run("3b") {
        bench.stop_scaling();
    }
    if run("4") {
        bench.supervisor_cost();
    }
    if run("4b") {
        bench.relay_throughput();
    }
    if run("5") {
        bench.library_open();
    }
    if run("6") {
        bench.pidfile_file_system();
    }
    println!("Load average at the end: {}", machine::load_average());
}

/// `BENCH_SECTIONS` (`0,1,2,3,3b,4,4b,5,6`): the sections to run; all when unset.
fn sections_from_env() -> Option<Vec<String>> {
    let text = std::env::var("BENCH_SECTIONS").ok()?;
    Some(text.split(',').map(|s| s.trim().to_string()).collect())
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

// The state shared by every section

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
        if let Some(path) = &t.ours_static {
            let version = machine::version_of(path, "--version");
            println!(
                "| daemonize (ours, static) | `{}` | {version}, `+crt-static` |",
                path.display()
            );
        }
        if let Some(path) = &t.floor {
            println!(
                "| floor | `{}` | compiled from `benches/floor.c` by `cc -O2` ({}) |",
                path.display(),
                machine::version_of(Path::new("cc"), "--version")
            );
        }
        for why in &t.why_missing {
            println!("| (left out) | {why} | |");
        }
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
}
