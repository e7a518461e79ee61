//! Section 3: stop latency.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemonctx::process::Pinned;

use crate::cleanup::RunGuard;
use crate::stats::summarize;
use crate::tools::{Names, Run, Starter, Stopper, ours_start, ours_stop, ssd_start, ssd_stop};
use crate::wait::{check_exit, pin_tagged_sleep_in, status_within_deadline, wait_for};
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

    /// Section 3b: our stop with 150, 1,000 and 3,000 processes on the host, the rows
    /// interleaved: [`BLOCKS`] blocks, each running every row in turn, from 150 up in the even
    /// blocks and from 3,000 down in the odd ones, so that no row always comes right after
    /// thousands of fillers were started or killed. Unrelated `sleep` processes (children of
    /// the bench, killed by pid) fill the host up to each count and are killed down to the
    /// next; when the host already runs more, the count is what it runs. Nothing walks /proc
    /// between a start and its timed stop: [`Bench::stop_once_pinned`].
    pub fn stop_scaling(&self) {
        println!("### 3b. Our stop by the number of processes on the host\n");
        let stopper =
            Stopper { start: Starter::ours(ours_start, Names::Daemon), stop_args: ours_stop };
        let blocks = BLOCKS.min(self.runs);
        let mut rows: Vec<ScalingRow> = HOST_PROCESSES.iter().map(|_| Default::default()).collect();
        let mut fillers = Fillers::default();
        for block in 0..blocks {
            let runs = self.runs / blocks + usize::from(block < self.runs % blocks);
            let mut order: Vec<(&usize, &mut ScalingRow)> =
                HOST_PROCESSES.iter().zip(&mut rows).collect();
            if block % 2 == 1 {
                order.reverse(); // from 3,000 down: fillers change only between neighbouring rows
            }
            for (target, row) in order {
                row.counted.push(fillers.adjust_host_to(*target, &self.scratch.tag_prefix));
                let _untimed = self.stop_once_pinned(&stopper);
                row.samples.extend((0..runs).map(|_| self.stop_once_pinned(&stopper)));
            }
        }
        drop(fillers);
        println!(
            "| Processes on the host (target) | Processes on the host (counted) | Stop median ms | Stop p90 ms | vs the first row | After the daemon exited, median ms | p90 ms |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut first = None;
        for (target, row) in HOST_PROCESSES.iter().zip(&rows) {
            let total: Vec<Duration> = row.samples.iter().map(|s| s.total).collect();
            let after: Vec<Duration> = row.samples.iter().map(|s| s.after_exit).collect();
            let (total, after) = (summarize(&total), summarize(&after));
            let first = *first.get_or_insert(total.median);
            println!(
                "| {target} | {} | {:.2} | {:.2} | {:.2}× | {:.3} | {:.3} |",
                row.counted_range(),
                total.median,
                total.p90,
                total.median / first,
                after.median,
                after.p90
            );
        }
        println!();
        self.note(format!("Command: `{}` on a daemon started by `{}` (not timed). {} runs per row, interleaved: {blocks} blocks, each running every row, from 150 up in the 1st, 3rd, ... block and from 3,000 down in the 2nd, 4th, ... (a row that follows the start or the killing of thousands of fillers in one block does not in the next), with one untimed run at the start of each row of a block.", stopper.shown(), stopper.start.shown(), self.runs));
        self.note("Processes on the host: the numeric entries of /proc when a row of a block starts, lowest–highest over the blocks (the machine is shared, so the count may exceed the target). The fillers are `sleep` processes, children of the bench: started to reach a row's count, and killed by pid (newest first, `kill(2)` on an unreaped child, `poll(2)` on its pidfd, bounded, then reaped) down to the next row's count.".into());
        self.note("Between a start and its timed stop nothing walks /proc: the daemon is the pid in the pidfile, pinned with `pidfd_open(2)`, its `/proc/PID/cmdline` checked to be `sleep TAG` (sections 1-3 check the start fully, by a scan of /proc). After the stop, the daemon seen exited through its pidfd ends the run; the scan of /proc that kills what a run left runs only when a run fails.".into());
        self.note("After the daemon exited: from the moment the bench saw the daemon's pidfd readable (it had exited) to the stop command's exit: the stop's own work after the daemon is gone.".into());
        self.print_notes();
    }

    /// One stop: start (untimed, checked by a scan of /proc), then time the stop command.
    pub fn stop_once(&self, stopper: &Stopper) -> StopSample {
        let run = self.next_run();
        let _guard = RunGuard::new(run.tag.as_ref());
        self.start_for_stop(stopper, &run);
        let daemon = stopper.start.check_started(&run).sleep;
        let daemon = Pinned::open(daemon).expect("pidfd_open(daemon)");
        self.timed_stop(stopper, &run, &daemon)
    }

    /// One stop of a daemon started by our `daemonize`, found in O(1): the pid its pidfile
    /// names, pinned and checked to run `sleep TAG` ([`pin_tagged_sleep_in`]). The run's
    /// [`RunGuard`] scans /proc for what is left only on a panic; once the daemon was seen
    /// exited through its pidfd nothing of the run is left running (the start command and its
    /// intermediate child exited before the start returned), and the guard is disarmed.
    pub fn stop_once_pinned(&self, stopper: &Stopper) -> StopSample {
        let run = self.next_run();
        let mut guard = RunGuard::new(run.tag.as_ref());
        self.start_for_stop(stopper, &run);
        let daemon =
            wait_for(|| pin_tagged_sleep_in(&run.pidfile, &run.tag)).unwrap_or_else(|| {
                panic!(
                    "{}: pidfile {} never named a running `sleep {}`",
                    stopper.start.label,
                    run.pidfile.display(),
                    run.tag
                )
            });
        let sample = self.timed_stop(stopper, &run, &daemon);
        if daemon.has_exited() {
            guard.disarm();
        }
        sample
    }

    /// Runs the start command of `stopper` for `run` to its exit (untimed, bounded); it must
    /// exit 0.
    fn start_for_stop(&self, stopper: &Stopper, run: &Run) {
        let mut start = stopper.start.command(run);
        let status = status_within_deadline(&mut start);
        check_exit(&start, status, run);
    }

    /// Times the stop command of `stopper` on the running `daemon`: from spawning it to its
    /// exit, reaping the daemon as soon as it dies.
    ///
    /// # Panics
    /// When the stop command fails or the daemon still runs after it.
    fn timed_stop(&self, stopper: &Stopper, run: &Run, daemon: &Pinned) -> StopSample {
        let mut command = stopper.command(run);
        let started = Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let child_fd =
            daemonctx::process::pidfd_open(child.id()).expect("pidfd_open(stop command)");
        let daemon_exited = reap_while_waiting(&child_fd, daemon.pidfd(), daemon.pid());
        let status = child.wait();
        let ended = Instant::now();
        let elapsed = ended - started;
        check_exit(&command, status, run);
        assert!(daemon.has_exited(), "{}: daemon still runs after the stop", stopper.start.label);
        let after_exit = ended.saturating_duration_since(daemon_exited.unwrap_or(ended));
        StopSample { total: elapsed, after_exit }
    }
}

/// The counts of processes on the host of section 3b.
const HOST_PROCESSES: [usize; 3] = [150, 1_000, 3_000];
/// How many blocks section 3b splits its runs into (fewer when there are fewer runs), each
/// running every row once.
const BLOCKS: usize = 10;

/// The samples of one row of section 3b, over every block.
#[derive(Default)]
struct ScalingRow {
    /// The processes on the host when the row started, per block.
    counted: Vec<usize>,
    samples: Vec<StopSample>,
}

impl ScalingRow {
    /// `lowest–highest` of the counts, or the count when they are all equal.
    fn counted_range(&self) -> String {
        let (low, high) = (self.counted.iter().min(), self.counted.iter().max());
        match (low, high) {
            (Some(low), Some(high)) if low != high => format!("{low}–{high}"),
            (Some(low), _) => low.to_string(),
            _ => "-".into(),
        }
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
/// pid (`kill(2)` on our own unreaped child, whose pid cannot be reused) and reaped, when there
/// are too many and on drop.
#[derive(Default)]
pub struct Fillers {
    children: Vec<Child>,
}

impl Fillers {
    /// Starts fillers until /proc counts at least `target` processes, or kills the newest ones
    /// until it counts at most `target` (or none is left); up to three times, as the host's
    /// other processes come and go meanwhile. The count afterwards.
    ///
    /// # Panics
    /// When a filler cannot be spawned.
    pub fn adjust_host_to(&mut self, target: usize, tag_prefix: &str) -> usize {
        let mut count = procfs::process_count();
        for _ in 0..3 {
            if count < target {
                self.spawn(target - count, tag_prefix);
            } else if count > target && !self.children.is_empty() {
                let excess = (count - target).min(self.children.len());
                kill_and_reap(self.children.split_off(self.children.len() - excess));
            } else {
                break;
            }
            count = procfs::process_count();
        }
        count
    }

    /// Starts `count` fillers.
    ///
    /// # Panics
    /// When one cannot be spawned.
    fn spawn(&mut self, count: usize, tag_prefix: &str) {
        let tag = format!("{tag_prefix}999999");
        for _ in 0..count {
            let child = Command::new("sleep")
                .arg(&tag)
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
        kill_and_reap(std::mem::take(&mut self.children));
    }
}

/// Kills our own unreaped children (`kill(2)`: their pids cannot have been reused), then waits
/// for each to exit (`poll(2)` on its pidfd, until [`DEADLINE`] from the start) and reaps it.
fn kill_and_reap(mut children: Vec<Child>) {
    for child in &mut children {
        let _ = child.kill();
    }
    let deadline = Instant::now() + DEADLINE;
    for mut child in children {
        let exited = daemonctx::process::pidfd_open(child.id())
            .is_ok_and(|pidfd| daemonctx::process::wait_exit(&pidfd, deadline));
        if exited {
            let _ = child.wait();
        } else {
            eprintln!("compare: filler {} still there after SIGKILL", child.id());
        }
    }
}
