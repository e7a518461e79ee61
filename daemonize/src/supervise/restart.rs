//! The restart policy: when COMMAND is stopped, killed, started again, or given up on.
//!
//! A pure state machine over [`Instant`]: it makes no system call and holds no process. The
//! supervisor tells it what happened (COMMAND started, exited, every descendant is gone, a stop
//! was asked for, time passed) and gets back the [`Action`]s to take. Its one deadline
//! ([`Lifecycle::next_deadline`]) is the `SIGKILL` time, the end of the wait after `SIGKILL`,
//! or the restart time, whichever the phase has.
//!
//! The ordering rule: COMMAND's tree is always drained (every descendant gone, or given up on
//! [`Policy::kill_grace`] after `SIGKILL`) before a restart or an exit.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// The furthest deadline set (about 31 years): longer delays and timeouts count as this long,
/// so that `Instant` arithmetic never overflows.
pub const LONGEST_WAIT: Duration = crate::cli::LONGEST;

/// The exit status when the supervisor gives up (too many restarts) after a successful exit.
const EXIT_GAVE_UP: i32 = 1;

/// When COMMAND is started again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Never: the supervisor exits with COMMAND.
    No,
    /// When COMMAND exits non-zero or dies of a signal.
    OnFailure,
    /// Whenever COMMAND exits.
    Always,
}

/// The restart and stop settings.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// When to restart.
    pub restart: Restart,
    /// The first restart delay; it doubles at each restart up to `max_delay`.
    pub delay: Duration,
    /// The longest restart delay; a COMMAND that ran this long resets the delay.
    pub max_delay: Duration,
    /// Give up after this many restarts within `window`.
    pub max_restarts: Option<u32>,
    /// The window for `max_restarts`.
    pub window: Duration,
    /// How long a stop waits after `SIGTERM` before `SIGKILL`.
    pub kill_after: Duration,
    /// How long to wait for the descendants to go after `SIGKILL` before giving up on them.
    pub kill_grace: Duration,
}

/// What the supervisor must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `SIGTERM` to COMMAND's tree: a stop begins.
    Terminate,
    /// Send `SIGKILL` to COMMAND's tree: `--kill-after` has passed.
    Kill,
    /// Send `SIGKILL` again to what is left (a descendant forked before it died).
    KillAgain,
    /// Descendants are still there `kill_grace` after `SIGKILL`: no longer wait for them.
    StopWaiting,
    /// COMMAND will be started again after this delay.
    RestartIn(Duration),
    /// Too many restarts (`max_restarts` within `window`): the supervisor exits.
    GiveUp {
        /// The limit reached.
        restarts: u32,
        /// The window it was reached in.
        window: Duration,
    },
    /// Start COMMAND now.
    Start,
}

/// What happens once every child is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Restart,
    Exit,
}

/// Where a stop stands with `SIGKILL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// To be sent at this instant (`--kill-after` after `SIGTERM`).
    At(Instant),
    /// Sent; sent again on each reap that leaves children; waited for until this instant.
    Sent { give_up_at: Instant },
}

/// The phase between events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// COMMAND runs (or is about to be started for the first time).
    Running,
    /// COMMAND is gone or being stopped; waiting for every descendant to go.
    Draining { kill: Kill, then: After },
    /// Waiting out the restart delay.
    Waiting { restart_at: Instant },
    /// Done: exit with this status.
    Done(i32),
}

/// The restart state machine (see the module docs).
#[derive(Debug)]
pub struct Lifecycle {
    policy: Policy,
    phase: Phase,
    /// When each restart within the window happened.
    restarts: VecDeque<Instant>,
    /// The next restart delay.
    delay: Duration,
    /// When the running COMMAND started.
    started: Option<Instant>,
    last_status: Option<ExitStatus>,
    gave_up: bool,
}

impl Lifecycle {
    /// A lifecycle about to start COMMAND for the first time.
    pub fn new(policy: Policy) -> Lifecycle {
        Lifecycle {
            policy,
            phase: Phase::Running,
            restarts: VecDeque::new(),
            delay: policy.delay,
            started: None,
            last_status: None,
            gave_up: false,
        }
    }

    /// COMMAND was started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started = Some(now);
        self.phase = Phase::Running;
    }

    /// A restart could not start COMMAND (`code`: 126 or 127, as a shell's): counts as an
    /// exit with that status, and is tried again by policy.
    pub fn start_failed(&mut self, code: i32, now: Instant) -> Vec<Action> {
        self.last_status = Some(daemonctx::process::status_from_shell(code));
        self.schedule_restart(now)
    }

    /// A stop was asked for (`SIGTERM`, or readiness ran out of time).
    pub fn stop(&mut self, now: Instant) -> Option<Action> {
        match self.phase {
            Phase::Running => {
                let kill = Kill::At(deadline(now, self.policy.kill_after));
                self.phase = Phase::Draining { kill, then: After::Exit };
                Some(Action::Terminate)
            }
            // Already stopping: exit rather than restart, but keep the SIGKILL deadline (more
            // stops must not postpone it).
            Phase::Draining { kill, .. } => {
                self.phase = Phase::Draining { kill, then: After::Exit };
                None
            }
            Phase::Waiting { .. } => {
                self.phase = Phase::Done(self.exit_code());
                None
            }
            Phase::Done(_) => None,
        }
    }

    /// COMMAND exited with `status`; `exit` says the supervisor exits whatever the policy
    /// (COMMAND exited before it was ready). What it left behind is stopped next.
    pub fn exited(&mut self, status: ExitStatus, exit: bool, now: Instant) -> Option<Action> {
        self.last_status = Some(status);
        // A run as long as the longest delay was no crash loop: back off from the start again.
        if self.started.take().is_some_and(|t| now.duration_since(t) >= self.policy.max_delay) {
            self.delay = self.policy.delay;
        }
        let then = match self.phase {
            Phase::Draining { then, .. } => then,
            _ if exit => After::Exit,
            _ if self.should_restart(status) => After::Restart,
            _ => After::Exit,
        };
        let (kill, action) = match self.phase {
            Phase::Draining { kill, .. } => (kill, None),
            _ => (Kill::At(deadline(now, self.policy.kill_after)), Some(Action::Terminate)),
        };
        self.phase = Phase::Draining { kill, then };
        action
    }

    /// Children were reaped and some are still there: after `SIGKILL`, they get it again.
    pub fn children_left(&self) -> Option<Action> {
        match self.phase {
            Phase::Draining { kill: Kill::Sent { .. }, .. } => Some(Action::KillAgain),
            _ => None,
        }
    }

    /// No child at all is left: restart or exit, as decided.
    pub fn all_gone(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Draining { then, .. } => self.after_draining(then, now),
            _ => Vec::new(),
        }
    }

    /// Time passed: whatever deadline is due now.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Draining { kill: Kill::At(at), then } if now >= at => {
                let kill = Kill::Sent { give_up_at: deadline(now, self.policy.kill_grace) };
                self.phase = Phase::Draining { kill, then };
                vec![Action::Kill]
            }
            Phase::Draining { kill: Kill::Sent { give_up_at }, then } if now >= give_up_at => {
                let mut actions = vec![Action::StopWaiting];
                actions.extend(self.after_draining(then, now));
                actions
            }
            Phase::Waiting { restart_at } if now >= restart_at => vec![Action::Start],
            _ => Vec::new(),
        }
    }

    /// The next instant [`Lifecycle::tick`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { kill: Kill::At(at), .. } => Some(at),
            Phase::Draining { kill: Kill::Sent { give_up_at }, .. } => Some(give_up_at),
            Phase::Waiting { restart_at } => Some(restart_at),
            _ => None,
        }
    }

    /// The supervisor's exit status once it is done.
    pub fn done(&self) -> Option<i32> {
        match self.phase {
            Phase::Done(code) => Some(code),
            _ => None,
        }
    }

    /// Whether COMMAND runs and no stop has begun.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// COMMAND's last status as an exit code: its code, or 128 + the signal; 1 after giving up
    /// on a COMMAND whose last exit was a success.
    pub fn exit_code(&self) -> i32 {
        let code = self.last_status.map_or(0, daemonctx::process::shell_status);
        if self.gave_up && code == 0 { EXIT_GAVE_UP } else { code }
    }

    fn should_restart(&self, status: ExitStatus) -> bool {
        match self.policy.restart {
            Restart::No => false,
            Restart::OnFailure => !status.success(),
            Restart::Always => true,
        }
    }

    fn after_draining(&mut self, then: After, now: Instant) -> Vec<Action> {
        match then {
            After::Exit => {
                self.phase = Phase::Done(self.exit_code());
                Vec::new()
            }
            After::Restart => self.schedule_restart(now),
        }
    }

    /// Counts the restart against the limit and waits out the (growing) delay.
    fn schedule_restart(&mut self, now: Instant) -> Vec<Action> {
        let window = self.policy.window;
        while self.restarts.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.restarts.pop_front();
        }
        if let Some(max) = self.policy.max_restarts
            && self.restarts.len() >= max as usize
        {
            self.gave_up = true;
            self.phase = Phase::Done(self.exit_code());
            return vec![Action::GiveUp { restarts: max, window }];
        }
        self.restarts.push_back(now);
        let delay = self.delay.min(LONGEST_WAIT);
        self.delay = delay.saturating_mul(2).min(self.policy.max_delay);
        self.phase = Phase::Waiting { restart_at: now + delay };
        vec![Action::RestartIn(delay)]
    }
}

/// The instant `after` past `now`, `after` capped at [`LONGEST_WAIT`].
pub fn deadline(now: Instant, after: Duration) -> Instant {
    now + after.min(LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const S: Duration = Duration::from_secs(1);

    fn policy(restart: Restart) -> Policy {
        Policy {
            restart,
            delay: S,
            max_delay: 8 * S,
            max_restarts: None,
            window: 60 * S,
            kill_after: 10 * S,
            kill_grace: 5 * S,
        }
    }

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn killed(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    /// Exits at `now`, every descendant gone at once: what follows.
    fn crash(life: &mut Lifecycle, status: ExitStatus, now: Instant) -> Vec<Action> {
        assert_eq!(life.exited(status, false, now), Some(Action::Terminate));
        life.all_gone(now)
    }

    #[test]
    fn no_restart_exits_with_the_status_once_drained() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::No));
        life.started(t0);
        assert_eq!(life.exited(exit(3), false, t0 + S), Some(Action::Terminate));
        assert_eq!(life.done(), None, "not before the tree is gone");
        assert_eq!(life.all_gone(t0 + S), vec![]);
        assert_eq!(life.done(), Some(3));
    }

    #[test]
    fn a_signal_death_exits_128_plus_the_signal() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::No));
        life.started(t0);
        crash(&mut life, killed(libc::SIGKILL), t0);
        assert_eq!(life.done(), Some(128 + libc::SIGKILL));
    }

    #[test]
    fn on_failure_restarts_a_failure_not_a_success() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::OnFailure));
        life.started(t0);
        assert_eq!(crash(&mut life, exit(1), t0), vec![Action::RestartIn(S)]);
        assert_eq!(life.tick(t0 + S), vec![Action::Start]);
        life.started(t0 + S);
        assert_eq!(crash(&mut life, exit(0), t0 + S), vec![]);
        assert_eq!(life.done(), Some(0));
    }

    #[test]
    fn delays_double_up_to_the_longest_and_reset_after_a_long_run() {
        let mut now = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::Always));
        let mut delays = Vec::new();
        for _ in 0..6 {
            life.started(now);
            match crash(&mut life, exit(1), now)[..] {
                [Action::RestartIn(delay)] => {
                    delays.push(delay.as_secs());
                    now += delay;
                }
                ref other => panic!("{other:?}"),
            }
            assert_eq!(life.tick(now), vec![Action::Start]);
        }
        assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
        life.started(now);
        now += 8 * S; // ran as long as the longest delay
        assert_eq!(crash(&mut life, exit(1), now), vec![Action::RestartIn(S)]);
    }

    #[test]
    fn gives_up_after_max_restarts_within_the_window() {
        let mut now = Instant::now();
        let mut life = Lifecycle::new(Policy { max_restarts: Some(2), ..policy(Restart::Always) });
        for _ in 0..2 {
            life.started(now);
            assert!(matches!(crash(&mut life, exit(0), now)[..], [Action::RestartIn(_)]));
            now += 10 * S;
            assert_eq!(life.tick(now), vec![Action::Start]);
        }
        life.started(now);
        let window = 60 * S;
        assert_eq!(crash(&mut life, exit(0), now), vec![Action::GiveUp { restarts: 2, window }]);
        assert_eq!(life.done(), Some(1), "a successful last exit still says it gave up");
    }

    #[test]
    fn restarts_older_than_the_window_do_not_count() {
        let mut now = Instant::now();
        let mut life = Lifecycle::new(Policy { max_restarts: Some(1), ..policy(Restart::Always) });
        life.started(now);
        assert!(matches!(crash(&mut life, exit(1), now)[..], [Action::RestartIn(_)]));
        now += 61 * S;
        life.started(now);
        assert!(matches!(crash(&mut life, exit(1), now)[..], [Action::RestartIn(_)]));
    }

    #[test]
    fn a_stop_terminates_then_kills_then_stops_waiting() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::Always));
        life.started(t0);
        assert_eq!(life.stop(t0), Some(Action::Terminate));
        assert_eq!(life.next_deadline(), Some(t0 + 10 * S));
        assert_eq!(life.tick(t0 + 9 * S), vec![]);
        assert_eq!(life.tick(t0 + 10 * S), vec![Action::Kill]);
        assert_eq!(life.children_left(), Some(Action::KillAgain));
        assert_eq!(life.next_deadline(), Some(t0 + 15 * S));
        assert_eq!(life.tick(t0 + 15 * S), vec![Action::StopWaiting]);
        assert_eq!(life.done(), Some(0));
    }

    #[test]
    fn a_second_stop_keeps_the_kill_deadline_and_exits_rather_than_restarts() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::Always));
        life.started(t0);
        assert_eq!(life.exited(exit(1), false, t0), Some(Action::Terminate));
        assert_eq!(life.stop(t0 + 5 * S), None);
        assert_eq!(life.next_deadline(), Some(t0 + 10 * S));
        assert_eq!(life.all_gone(t0 + 6 * S), vec![]);
        assert_eq!(life.done(), Some(1));
    }

    #[test]
    fn a_stop_while_waiting_to_restart_exits_at_once() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::Always));
        life.started(t0);
        crash(&mut life, exit(2), t0);
        assert_eq!(life.stop(t0), None);
        assert_eq!(life.done(), Some(2));
    }

    #[test]
    fn exiting_before_ready_exits_whatever_the_policy() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::Always));
        life.started(t0);
        assert_eq!(life.exited(exit(4), true, t0), Some(Action::Terminate));
        assert_eq!(life.all_gone(t0), vec![]);
        assert_eq!(life.done(), Some(4));
    }

    #[test]
    fn a_failed_restart_counts_as_an_exit_and_is_tried_again() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(policy(Restart::Always));
        life.started(t0);
        crash(&mut life, exit(1), t0);
        assert_eq!(life.tick(t0 + S), vec![Action::Start]);
        assert_eq!(life.start_failed(127, t0 + S), vec![Action::RestartIn(2 * S)]);
        assert_eq!(life.exit_code(), 127);
    }

    #[test]
    fn idle_has_no_deadline_and_huge_delays_do_not_overflow() {
        let t0 = Instant::now();
        let huge = Duration::from_secs(u64::MAX / 4);
        let mut life = Lifecycle::new(Policy {
            delay: huge,
            max_delay: huge,
            kill_after: huge,
            ..policy(Restart::Always)
        });
        life.started(t0);
        assert_eq!(life.next_deadline(), None);
        assert_eq!(life.stop(t0), Some(Action::Terminate));
        assert_eq!(life.next_deadline(), Some(t0 + LONGEST_WAIT));
    }
}
