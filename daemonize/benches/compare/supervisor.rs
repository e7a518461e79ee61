//! Section 4: what an idle supervisor costs.

use crate::cleanup::RunGuard;
use crate::tools::{Names, Run, Starter, libslack_respawn, ours_supervise};
use crate::wait::{check_exit, status_within_deadline};
use crate::{Bench, IDLE, procfs};

impl Bench {
    // -- Section 4: supervisor cost -------------------------------------------------------

    pub fn supervisors(&self) -> Vec<Starter> {
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
            threads: status("Threads"),
            schedstat: procfs::schedstat(pid),
            voluntary: procfs::task_status_sum(pid, "voluntary_ctxt_switches"),
            nonvoluntary: procfs::task_status_sum(pid, "nonvoluntary_ctxt_switches"),
        }
    }
}
