//! Section 4: what an idle supervisor costs.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cleanup::RunGuard;
use crate::stats::summarize;
use crate::tools::{Names, Run, Starter, libslack_respawn, ours_supervise};
use crate::wait::{check_exit, running_pid_in, status_within_deadline};
use crate::{Bench, DEADLINE, IDLE, OURS, procfs, sys};

impl Bench {
    // -- Section 4: supervisor cost -------------------------------------------------------

    pub fn supervisors(&self) -> Vec<Starter> {
        let mut list = vec![Starter::ours(ours_supervise, Names::Supervisor)];
        if let Some(path) = &self.tools.ours_static {
            list.push(Starter::ours_static(path, ours_supervise, Names::Supervisor));
        }
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
    pub fn supervisor_cost(&self) {
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
            "| Supervisor | Command | VmRSS kB | RssAnon kB | RssFile kB | Threads | CPU µs in {idle} s | Wakeups in {idle} s | Voluntary switches in {idle} s | Nonvoluntary switches in {idle} s |"
        );
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (i, supervisor) in supervisors.iter().enumerate() {
            let (before, after) = (&before[i], &after[i]);
            let schedstat =
                |field: fn(&Schedstat) -> u64| match (&before.schedstat, &after.schedstat) {
                    (Some(b), Some(a)) => (field(a) - field(b)).to_string(),
                    _ => "n/a".to_string(),
                };
            println!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
                supervisor.label,
                supervisor.shown(),
                after.rss_kb,
                after.rss_anon_kb,
                after.rss_file_kb,
                after.threads,
                schedstat(|s| s.cpu_ns / 1000),
                schedstat(|s| s.runs),
                after.voluntary - before.voluntary,
                after.nonvoluntary - before.nonvoluntary
            );
        }
        println!();
        self.note(format!("Of the supervisor process alone (the pid its pidfile names), not of `sleep`. VmRSS (with its two parts RssAnon, the process's own memory, and RssFile, pages of the program and its shared libraries mapped from the page cache) and Threads from /proc/PID/status at the end. CPU: time on a CPU (first field of /proc/PID/task/*/schedstat, in ns, summed over threads); Wakeups: how many times it was put on a CPU (third field of the same, summed), each wakeup of an idle process being one. Switches: voluntary (it blocked) and nonvoluntary (preempted), summed over /proc/PID/task/*/status. All supervisors idle during the same {idle} s."));
        if before.iter().chain(&after).any(|usage| usage.schedstat.is_none()) {
            self.note(
                "n/a: no /proc/PID/task/*/schedstat (a kernel without CONFIG_SCHED_INFO).".into(),
            );
        }
        self.print_notes();
    }
}

/// Starts a supervisor and returns its pid once it and its `sleep` run.
pub fn start_supervisor(supervisor: &Starter, run: &Run) -> u32 {
    let mut command = supervisor.command(run);
    let status = status_within_deadline(&mut command);
    check_exit(&command, status, run);
    supervisor.check_started(run).named.expect("a supervisor's pidfile names it")
}

/// The resources a process used, from /proc.
pub struct Usage {
    pub rss_kb: u64,
    /// Of `rss_kb`: anonymous memory (heap, stack, written data) and pages of files (the
    /// program and its libraries, shared with the page cache).
    pub rss_anon_kb: u64,
    pub rss_file_kb: u64,
    pub threads: u64,
    /// Summed over its threads; `None` without schedstat in the kernel.
    pub schedstat: Option<Schedstat>,
    /// Voluntary context switches of all its threads.
    pub voluntary: u64,
    /// Nonvoluntary context switches of all its threads.
    pub nonvoluntary: u64,
}

/// `/proc/PID/task/TID/schedstat`, summed over a process's threads.
pub struct Schedstat {
    /// Time spent on a CPU, in nanoseconds.
    pub cpu_ns: u64,
    /// How many times a thread was put on a CPU (a wakeup, or a return after preemption).
    pub runs: u64,
}

impl Usage {
    /// # Panics
    /// When the process is gone.
    pub fn of(pid: u32) -> Usage {
        let status = |field| {
            procfs::status_field(pid, field)
                .unwrap_or_else(|| panic!("/proc/{pid}/status: no {field}"))
        };
        Usage {
            rss_kb: status("VmRSS"),
            rss_anon_kb: status("RssAnon"),
            rss_file_kb: status("RssFile"),
            threads: status("Threads"),
            schedstat: procfs::schedstat(pid),
            voluntary: procfs::task_status_sum(pid, "voluntary_ctxt_switches"),
            nonvoluntary: procfs::task_status_sum(pid, "nonvoluntary_ctxt_switches"),
        }
    }
}

/// Section 4b's rows: a route, and how many lines COMMAND writes (to syslog, one datagram
/// each). A million lines (41 MB) is the measure; ten million (410 MB) a sustained
/// stream, in which the relay's start and exit (about 2 ms) count for little.
const RELAY_ROWS: &[(Route, u64)] = &[
    (Route::Direct, 1_000_000),
    (Route::Relay, 1_000_000),
    (Route::Syslog, 100_000),
    (Route::Direct, 10_000_000),
    (Route::Relay, 10_000_000),
];
/// Runs per relay row, interleaved.
const RELAY_RUNS: usize = 10;
/// The line COMMAND writes, without its newline: 40 bytes.
const LINE: &str = "a relay benchmark line, forty bytes long";

/// How the lines of section 4b reach their destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// COMMAND's stdout is the file itself.
    Direct,
    /// `daemonize --supervise -o F`: through a pipe and the supervisor's relay.
    Relay,
    /// `daemonize --supervise --syslog --syslog-socket S`: a datagram a line to the bench.
    Syslog,
}

impl Bench {
    /// Section 4b: lines per second from COMMAND to a file, directly and through the relay,
    /// and to a syslog socket the bench binds.
    pub fn relay_throughput(&self) {
        println!("### 4b. Supervisor relay throughput\n");
        let rows = RELAY_ROWS;
        let samples: Vec<Vec<Duration>> = {
            let mut samples = vec![Vec::new(); rows.len()];
            for round in 0..=RELAY_RUNS {
                for k in 0..rows.len() {
                    let index = (round + k) % rows.len();
                    let (route, lines) = rows[index];
                    let time = self.relay_once(route, lines);
                    if round > 0 {
                        samples[index].push(time); // round 0 is the warm-up
                    }
                }
            }
            samples
        };
        println!("| Route | Command | Lines | Median ms | Lines/s (median) | vs direct |");
        println!("| --- | --- | ---: | ---: | ---: | ---: |");
        let rate = |lines: u64, ms: f64| lines as f64 / (ms / 1e3);
        // Each row against the direct row of its count; syslog against the first direct row.
        let direct_rate = |count: u64| {
            let index = (rows.iter())
                .position(|&(route, lines)| route == Route::Direct && lines == count)
                .or_else(|| rows.iter().position(|&(route, _)| route == Route::Direct))
                .expect("a direct row");
            rate(rows[index].1, summarize(&samples[index]).median)
        };
        for (&(route, lines), series) in rows.iter().zip(&samples) {
            let direct = direct_rate(lines);
            let median = summarize(series).median;
            println!(
                "| {} | `{}` | {lines} | {median:.1} | {:.0} | {:.2}× |",
                label_of(route),
                shown_command(route, lines),
                rate(lines, median),
                rate(lines, median) / direct
            );
        }
        println!();
        self.note(format!("COMMAND: `sh -c \"yes '{LINE}' | head -n LINES\"` (41-byte lines). One warm-up round, then {RELAY_RUNS} rounds, the rows taking turns; vs direct divides a row's lines per second by those of the direct row with as many lines (syslog: the first direct row), and each output file is removed once checked. Time: from spawning the command (or `daemonize`) until COMMAND's output has all arrived: direct, the shell's exit; relay, the supervisor's exit (it exits once COMMAND has and its output is written: `--restart no`), the file then checked to hold every line; syslog, the last datagram received by the bench."));
        self.note("Syslog: the bench binds a SOCK_DGRAM Unix socket (like /dev/log) in the scratch directory, kept bound until the supervisor has exited, and counts the datagrams a reader thread receives; vs direct compares lines per second with the direct file row.".into());
        self.print_notes();
    }

    /// One run of `route`: its duration, checked.
    fn relay_once(&self, route: Route, lines: u64) -> Duration {
        let run = self.next_run();
        let _guard = RunGuard::new(run.tag.as_ref());
        let out = run.dir.join("out");
        let script = format!("yes '{LINE}' | head -n {lines} # {}", run.tag);
        let started;
        match route {
            Route::Direct => {
                let mut command = Command::new("sh");
                command.args(["-c", &script]).stdin(Stdio::null());
                command.stdout(File::create(&out).expect("create the output file"));
                started = Instant::now();
                let status = status_within_deadline(&mut command);
                check_exit(&command, status, &run);
            }
            Route::Relay => {
                let args = [OsStr::new("-o"), out.as_os_str()];
                started = Instant::now();
                self.supervise_until_exit(&run, &args, &script);
            }
            Route::Syslog => {
                let socket = run.dir.join("log");
                let listener = UnixDatagram::bind(&socket).expect("bind the syslog socket");
                // The socket stays bound until the supervisor is gone, as a syslog daemon's
                // does: the supervisor's last notice (COMMAND's exit, after all its lines)
                // finds it there, not refused, and it does not wait to deliver it.
                let counted = listener.try_clone().expect("a second descriptor for the socket");
                let reader = std::thread::spawn(move || count_datagrams(&counted, lines));
                let args =
                    [OsStr::new("--syslog"), OsStr::new("--syslog-socket"), socket.as_os_str()];
                started = Instant::now();
                self.supervise_until_exit(&run, &args, &script);
                let (seen, last) = reader.join().expect("the syslog reader");
                drop(listener);
                if seen < lines {
                    self.note(format!("syslog: a run delivered {seen} of {lines} lines"));
                }
                return last.map_or(DEADLINE, |last| last - started);
            }
        }
        let elapsed = started.elapsed();
        let size = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        assert_eq!(size, lines * (LINE.len() as u64 + 1), "{}: lines lost", label_of(route));
        let _ = fs::remove_file(&out); // ten million lines are 410 MB of tmpfs
        elapsed
    }

    /// `daemonize --supervise --restart no ARGS -p F -- sh -c SCRIPT`, then waits for the
    /// supervisor (named by the pidfile) to exit, and reaps it.
    fn supervise_until_exit(&self, run: &Run, args: &[&OsStr], script: &str) {
        let mut command = Command::new(OURS);
        command.args(["--supervise", "--restart", "no"]).args(args);
        command.arg("-p").arg(&run.pidfile).args(["--", "sh", "-c", script]);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let status = status_within_deadline(&mut command);
        check_exit(&command, status, run);
        let Some(pid) = running_pid_in(&run.pidfile) else { return }; // already done
        let Ok(pidfd) = daemonctx::process::pidfd_open(pid) else { return };
        let gone = daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE);
        assert!(gone, "the supervisor still runs {DEADLINE:?} after its start");
        sys::reap(pid);
    }
}

fn label_of(route: Route) -> &'static str {
    match route {
        Route::Direct => "direct to the file",
        Route::Relay => "through `--supervise -o F`",
        Route::Syslog => "through `--supervise --syslog`",
    }
}

fn shown_command(route: Route, lines: u64) -> String {
    let script = format!("sh -c \"yes '…' | head -n {lines}\"");
    match route {
        Route::Direct => format!("{script} > F"),
        Route::Relay => format!("daemonize --supervise --restart no -o F -p P -- {script}"),
        Route::Syslog => {
            format!(
                "daemonize --supervise --restart no --syslog --syslog-socket S -p P -- {script}"
            )
        }
    }
}

/// Receives datagrams until `lines` of COMMAND's arrived or none came for 2 s: how many, and
/// when the last arrived.
fn count_datagrams(socket: &UnixDatagram, lines: u64) -> (u64, Option<Instant>) {
    socket.set_read_timeout(Some(Duration::from_secs(2))).expect("SO_RCVTIMEO");
    let mut buf = [0u8; 4096];
    let (mut seen, mut last) = (0, None);
    while seen < lines {
        let Ok(n) = socket.recv(&mut buf) else { break };
        // The supervisor's own messages (started, exited) are not COMMAND's lines.
        if buf[..n].windows(LINE.len()).any(|w| w == LINE.as_bytes()) {
            seen += 1;
            last = Some(Instant::now());
        }
    }
    (seen, last)
}
