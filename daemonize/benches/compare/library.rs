//! Section 5: the library's `DaemonContext::open()` against a bare double fork.

use std::fs;
use std::time::Duration;

use crate::cleanup::RunGuard;
use crate::stats::summarize;
use crate::tools::quiet_command;
use crate::wait::{check_exit, status_within_deadline, wait_for};
use crate::{Bench, daemon_mode, sys};

impl Bench {
    // -- Section 5: the library's open() --------------------------------------------------

    /// Section 5: process start to `open()` returning in the daemon, library against bare.
    pub fn library_open(&self) {
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
    pub fn open_once(&self, mode: &str) -> Duration {
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
}
