//! Section 3: stop latency.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cleanup::RunGuard;
use crate::stats::summarize;
use crate::tools::{Names, Starter, Stopper, ours_start, ours_stop, ssd_start, ssd_stop};
use crate::wait::{check_exit, status_within_deadline};
use crate::{Bench, DEADLINE, procfs, sys};

impl Bench {
    // -- Section 3: stop latency ----------------------------------------------------------

    pub fn stoppers(&self) -> Vec<Stopper> {
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
    pub fn stop_latency(&self) {
        println!("### 3. Stop latency (daemon started by the same tool; start not counted)\n");
        let stoppers = self.stoppers();
        let samples: Vec<Vec<Duration>> = self
            .round_robin(&stoppers, |stopper| self.stop_once(stopper).total)
            .into_iter()
            .collect();
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

    /// Section 3b: our stop with 150, 1,000 and 3,000 processes on the host. Unrelated `sleep`
    /// processes (children of the bench, killed by pid afterwards) fill the host up to each
    /// count; when the host already runs more, the count is what it runs.
    pub fn stop_scaling(&self) {
        println!("### 3b. Our stop by the number of processes on the host\n");
        let stopper =
            Stopper { start: Starter::ours(ours_start, Names::Daemon), stop_args: ours_stop };
        println!(
            "| Processes on the host (target) | Processes on the host (counted) | Stop median ms | Stop p90 ms | vs the first row | After the daemon exited, median ms | p90 ms |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut fillers = Fillers::default();
        let mut first = None;
        for target in [150, 1_000, 3_000] {
            fillers.fill_host_to(target, &self.scratch.tag_prefix);
            let counted = procfs::process_count();
            let samples: Vec<StopSample> =
                (0..=self.runs).map(|_| self.stop_once(&stopper)).skip(1).collect();
            let total: Vec<Duration> = samples.iter().map(|s| s.total).collect();
            let after: Vec<Duration> = samples.iter().map(|s| s.after_exit).collect();
            let (total, after) = (summarize(&total), summarize(&after));
            let first = *first.get_or_insert(total.median);
            println!(
                "| {target} | {counted} | {:.2} | {:.2} | {:.2}× | {:.3} | {:.3} |",
                total.median,
                total.p90,
                total.median / first,
                after.median,
                after.p90
            );
        }
        drop(fillers);
        println!();
        self.note(format!("Command: `{}` on a daemon started by `{}` (not timed). One untimed run, then {} per row; the rows run one after the other (not interleaved), from 150 up.", stopper.shown(), stopper.start.shown(), self.runs));
        self.note("Processes on the host: the numeric entries of /proc when the row starts (the machine is shared, so the count may exceed the target). The fillers are `sleep` processes, children of the bench, killed by pid when the section ends.".into());
        self.note("After the daemon exited: from the moment the bench saw the daemon's pidfd readable (it had exited) to the stop command's exit: the stop's own work after the daemon is gone.".into());
        self.print_notes();
    }

    /// One stop: start (untimed, checked), then time the stop command.
    pub fn stop_once(&self, stopper: &Stopper) -> StopSample {
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
        let daemon_exited = reap_while_waiting(&child_fd, &daemon_fd, daemon);
        let status = child.wait();
        let ended = Instant::now();
        let elapsed = ended - started;
        check_exit(&command, status, &run);
        assert!(
            daemonctx::process::wait_exit(&daemon_fd, Instant::now() + Duration::ZERO),
            "{}: daemon still runs after the stop",
            stopper.start.label
        );
        let after_exit = ended.saturating_duration_since(daemon_exited.unwrap_or(ended));
        StopSample { total: elapsed, after_exit }
    }
}

/// Polls until the stop command (`child`) exits; meanwhile reaps the daemon (our child: the
/// bench is a subreaper) as soon as it dies, as init would.
///
/// When the daemon was seen gone, if it was before the stop command exited.
///
/// # Panics
/// When the stop command is still running after [`DEADLINE`].
pub fn reap_while_waiting(child: &OwnedFd, daemon: &OwnedFd, daemon_pid: u32) -> Option<Instant> {
    let deadline = Instant::now() + DEADLINE;
    let mut fds = [child.as_raw_fd(), daemon.as_raw_fd()];
    let mut daemon_exited = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the stop command still runs after {DEADLINE:?}");
        let ready = sys::poll_readable(&fds, left);
        if ready[1] {
            daemon_exited = Some(Instant::now());
            sys::reap(daemon_pid);
            fds[1] = -1; // poll(2) ignores negative descriptors
        }
        if ready[0] {
            return daemon_exited;
        }
    }
}

/// One timed stop.
pub struct StopSample {
    /// Spawning the stop command to its exit.
    pub total: Duration,
    /// The daemon seen gone (its pidfd readable) to the stop command's exit.
    pub after_exit: Duration,
}

/// Unrelated processes that fill the host: `sleep TAG`, children of the bench, each killed by
/// pid (`kill(2)` on our own unreaped child, whose pid cannot be reused) and reaped on drop.
#[derive(Default)]
pub struct Fillers {
    children: Vec<Child>,
}

impl Fillers {
    /// Starts fillers until /proc counts at least `target` processes.
    ///
    /// # Panics
    /// When a filler cannot be spawned.
    pub fn fill_host_to(&mut self, target: usize, tag_prefix: &str) {
        let missing = target.saturating_sub(procfs::process_count());
        for _ in 0..missing {
            let tag = format!("{tag_prefix}999999");
            let child = Command::new("sleep")
                .arg(tag)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn a filler `sleep`: {e}"));
            self.children.push(child);
        }
    }
}

impl Drop for Fillers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}
