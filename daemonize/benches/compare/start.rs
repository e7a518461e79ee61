//! Sections 1, 2 and 6: start latency, at the usual and the highest RLIMIT_NOFILE, and by the pidfile's file system.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cleanup::{RunGuard, Scratch};
use crate::stats::{Summary, summarize};
use crate::tools::{
    Args, Names, Starter, daemonize1_start, libslack_start, ours_start, setsid_start, ssd_start,
};
use crate::wait::{check_exit, running_pid_in, status_within_deadline, wait_for_quickly};
use crate::{Bench, USUAL_NOFILE, procfs, sys};

impl Bench {
    // -- Sections 1 and 2: start latency --------------------------------------------------

    /// The floor, then ours (statically linked, then as cargo builds it), then the others
    /// that are installed. The floor must be there: every ratio is to it.
    pub fn starters(&self) -> Vec<Starter> {
        let t = &self.tools;
        let mut list = vec![self.floor_starter()];
        if let Some(path) = &t.ours_static {
            list.push(Starter::ours_static(path, ours_start, Names::Daemon));
        }
        list.push(Starter::ours(ours_start, Names::Daemon));
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

    /// The floor's starter.
    ///
    /// # Panics
    /// When `floor.c` could not be compiled: without the floor there is no ratio to print.
    pub fn floor_starter(&self) -> Starter {
        let path = self.tools.floor.as_ref().unwrap_or_else(|| {
            panic!("the floor is missing: {}", self.tools.why_missing.join("; "))
        });
        Starter::floor(path)
    }

    /// Section 1: start latency at the usual soft `RLIMIT_NOFILE`.
    pub fn start_latency_usual(&self) {
        let (_, hard) = sys::nofile_limit();
        let soft = USUAL_NOFILE.min(hard);
        sys::set_nofile_soft(soft).expect("setrlimit(RLIMIT_NOFILE)");
        println!("### 1. Start latency (RLIMIT_NOFILE soft {soft}, hard {hard})\n");
        self.start_latency_table();
    }

    /// Section 2: start latency with the soft limit raised to the hard limit and a descriptor
    /// open at limit - 1 (no `FD_CLOEXEC`), inherited by every start command.
    pub fn start_latency_high(&self) {
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
    pub fn start_latency_table(&self) {
        let starters = self.starters();
        let samples =
            self.round_robin(&starters, |starter| self.start_once(starter, &self.scratch));
        let floor = StartSummary::of(&samples[0]);
        let ours_at = starters.iter().position(|s| s.label == "daemonize (ours)").unwrap_or(0);
        let ours = StartSummary::of(&samples[ours_at]);
        let high_fd = self.high_fd.get();
        let fd_column = high_fd.map(|fd| format!(" fd {fd} still open in `sleep` |"));
        println!(
            "| Tool | Command | Exit median ms | Exit p90 ms | Exit vs floor | Exit vs ours | Running median ms | Running p90 ms | Running vs floor | Running vs ours | Pidfile valid at exit |{}",
            fd_column.unwrap_or_default()
        );
        let fd_rule = if high_fd.is_some() { " ---: |" } else { "" };
        println!(
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{fd_rule}"
        );
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
                "| {} | `{}` | {:.2} | {:.2} | {:.2}× | {:.2}× | {:.2} | {:.2} | {:.2}× | {:.2}× | {valid} |{fd_cell}",
                starter.label,
                starter.shown(),
                this.exit.median,
                this.exit.p90,
                this.exit.median / floor.exit.median,
                this.exit.median / ours.exit.median,
                this.running.median,
                this.running.p90,
                this.running.median / floor.running.median,
                this.running.median / ours.running.median
            );
        }
        println!();
        self.note("vs floor, vs ours: this row's median divided by the floor's (benches/floor.c: the same protocol and guarantees as ours, in 200 lines of C) or by `daemonize (ours)`'s, the dynamically linked build cargo makes. Below 1 is faster.".into());
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
    pub fn start_once(&self, starter: &Starter, scratch: &Scratch) -> StartSample {
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

    // -- Section 6: the pidfile's file system --------------------------------------------

    /// Section 6: ours and start-stop-daemon with the pidfile in the scratch directory and in
    /// the temporary directory, when that is another file system (ours `fsync(2)`s the pid).
    pub fn pidfile_file_system(&self) {
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
        let (_, hard) = sys::nofile_limit();
        let usual = USUAL_NOFILE.min(hard);
        let mut rows: Vec<(Starter, &Scratch, u64)> = Vec::new();
        for limit in [usual, hard] {
            for scratch in [&self.scratch, other] {
                rows.push((self.floor_starter(), scratch, limit));
                if let Some(path) = &self.tools.ours_static {
                    rows.push((
                        Starter::ours_static(path, ours_start, Names::Daemon),
                        scratch,
                        limit,
                    ));
                }
                rows.push((Starter::ours(ours_start, Names::Daemon), scratch, limit));
                if let Some(path) = &self.tools.start_stop_daemon {
                    let ssd = Starter::theirs("start-stop-daemon", path, ssd_start, Names::Daemon);
                    rows.push((ssd, scratch, limit));
                }
            }
        }
        let samples = self.round_robin(&rows, |(starter, scratch, limit)| {
            sys::set_nofile_soft(*limit).expect("setrlimit(RLIMIT_NOFILE)");
            self.start_once(starter, scratch)
        });
        sys::set_nofile_soft(usual).expect("setrlimit(RLIMIT_NOFILE)");
        println!(
            "| Tool | Command | Pidfile directory | RLIMIT_NOFILE | Exit median ms | Exit p90 ms | Exit vs floor | Running median ms | Running p90 ms | Running vs floor |"
        );
        println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut floor = None;
        for ((starter, scratch, limit), series) in rows.iter().zip(&samples) {
            let this = StartSummary::of(series);
            if starter.names == Names::Daemon && starter.shown_as == "floor" {
                floor = Some(StartSummary::of(series));
            }
            let floor = floor.as_ref().expect("the floor comes first in each group");
            println!(
                "| {} | `{}` | {} | {limit} | {:.2} | {:.2} | {:.2}× | {:.2} | {:.2} | {:.2}× |",
                starter.label,
                starter.shown(),
                scratch.describe(),
                this.exit.median,
                this.exit.p90,
                this.exit.median / floor.exit.median,
                this.running.median,
                this.running.p90,
                this.running.median / floor.running.median
            );
        }
        println!();
        self.note("vs floor: divided by the floor's median in the same directory at the same limit. Exit and Running as in section 1; no descriptor is inherited here.".into());
        self.note("None of them `fsync(2)`s the pidfile (ours did until this change: it cost a device flush per start on a disk file system).".into());
        self.print_notes();
    }
}

/// One start of section 1, 2 or 6.
pub struct StartSample {
    /// Spawn to the start command's exit.
    pub elapsed: Duration,
    /// Spawn to the daemon running `sleep` with the pidfile naming it: see [`Starter::ready`].
    pub running: Duration,
    pub pidfile_valid_at_exit: bool,
    /// Whether `sleep` still has the high descriptor of section 2 open.
    pub high_fd_open: bool,
}

/// The two times of a series of starts.
pub struct StartSummary {
    pub exit: Summary,
    pub running: Summary,
}

impl StartSummary {
    pub fn of(series: &[StartSample]) -> StartSummary {
        let exit: Vec<Duration> = series.iter().map(|s| s.elapsed).collect();
        let running: Vec<Duration> = series.iter().map(|s| s.running).collect();
        StartSummary { exit: summarize(&exit), running: summarize(&running) }
    }
}

/// `K/N`: how many of the N samples have the property.
pub fn count_of(series: &[StartSample], property: impl Fn(&StartSample) -> bool) -> String {
    format!("{}/{}", series.iter().filter(|s| property(s)).count(), series.len())
}

impl Bench {
    /// Section 0: a program's own start-up, `--version` against a C hello world: what the
    /// binary costs before it does anything (dynamic loading, std's and clap's start-up).
    pub fn startup_cost(&self) {
        println!("### 0. Program start-up: `--version` against a C hello world\n");
        let mut rows: Vec<(String, PathBuf, &'static str)> = Vec::new();
        match crate::tools::build_hello() {
            Ok(hello) => rows.push(("C hello world (`cc -O2`)".into(), hello, "")),
            Err(why) => self.note(why),
        }
        if let Some(path) = &self.tools.ours_static {
            rows.push(("daemonize (ours, static)".into(), path.clone(), "--version"));
        }
        rows.push(("daemonize (ours)".into(), PathBuf::from(crate::OURS), "--version"));
        let samples = self.round_robin(&rows, |(_, program, arg)| {
            let mut command = std::process::Command::new(program);
            command.args(arg.split_whitespace()).stdout(std::process::Stdio::null());
            let started = Instant::now();
            let status = status_within_deadline(&mut command);
            assert!(status.is_ok_and(|s| s.success()), "{command:?} failed");
            started.elapsed()
        });
        let first = summarize(&samples[0]).median;
        println!("| Program | Command | Median ms | p90 ms | vs the first row |");
        println!("| --- | --- | ---: | ---: | ---: |");
        for ((label, program, arg), series) in rows.iter().zip(&samples) {
            let summary = summarize(series);
            println!(
                "| {label} | `{} {arg}` | {:.2} | {:.2} | {:.2}× |",
                program.file_name().unwrap_or_default().to_string_lossy(),
                summary.median,
                summary.p90,
                summary.median / first
            );
        }
        println!();
        self.note(
            "Time: spawn to exit, stdout on /dev/null; the same rounds as the other sections."
                .into(),
        );
        self.print_notes();
    }
}
