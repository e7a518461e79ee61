//! Section 3: stop latency.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::cleanup::RunGuard;
use crate::stats::summarize;
use crate::tools::{Names, Starter, Stopper, ours_start, ours_stop, ssd_start, ssd_stop};
use crate::wait::{check_exit, status_within_deadline};
use crate::{Bench, DEADLINE, sys};

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
    pub fn stop_once(&self, stopper: &Stopper) -> Duration {
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
}

/// Polls until the stop command (`child`) exits; meanwhile reaps the daemon (our child: the
/// bench is a subreaper) as soon as it dies, as init would.
///
/// # Panics
/// When the stop command is still running after [`DEADLINE`].
pub fn reap_while_waiting(child: &OwnedFd, daemon: &OwnedFd, daemon_pid: u32) {
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
