//! The properties every `--retry` schedule the parser accepts must have, shared by the fuzz
//! target `fuzz/fuzz_targets/parse_schedule.rs` and the deterministic stand-in for it in
//! `tests/parsers.rs` (both include this file with `#[path]`): a timeout to wait on, every wait
//! a deadline an `Instant` can hold (now + wait does not overflow), `forever` only last and
//! never with zero waits only, a signal sent and no wait right after a wait, and each item what
//! its field says (a bare number a timeout, a signal a name or `-NUMBER`).

use std::time::{Duration, Instant};

use daemonctx::stop::{MAX_TIMEOUT, Schedule, ScheduleItem, parse_signal};

/// Parses `text` with two default signals: they must agree on accepting it (the default signal
/// only fills in a bare timeout), and what is accepted must pass [`check_accepted`]. Returns
/// whether it was accepted.
pub fn check_parse(text: &str) -> bool {
    let with_term = Schedule::parse(text, libc::SIGTERM);
    let with_int = Schedule::parse(text, libc::SIGINT);
    match (&with_term, &with_int) {
        (Ok(term), Ok(int)) => {
            check_accepted(text, libc::SIGTERM, term);
            check_accepted(text, libc::SIGINT, int);
            true
        }
        (Err(_), Err(_)) => false,
        _ => panic!("{text:?}: the default signal decided: {with_term:?} {with_int:?}"),
    }
}

/// Checks what every accepted schedule must satisfy.
pub fn check_accepted(text: &str, signal: i32, schedule: &Schedule) {
    let items = schedule.items();
    let now = Instant::now();
    assert!(items.iter().any(|i| matches!(i, ScheduleItem::Wait(_))), "{text:?}: no timeout");
    for item in items {
        match *item {
            ScheduleItem::Wait(wait) => {
                assert!(wait <= MAX_TIMEOUT, "{text:?}: {wait:?} is over the maximum");
                // follow_schedule's deadline, now + wait, must not overflow.
                assert!(now.checked_add(wait).is_some(), "{text:?}: {wait:?} overflows");
            }
            ScheduleItem::Signal(number) => {
                assert!((1..=64).contains(&number), "{text:?}: signal {number}")
            }
            ScheduleItem::Forever => {}
        }
    }
    if let Some(at) = items.iter().position(|i| *i == ScheduleItem::Forever) {
        assert_eq!(at, items.len() - 1, "{text:?}: forever before the end");
        // Repeating with only zero waits would signal in a tight loop.
        let waits = items.iter().any(|i| matches!(i, ScheduleItem::Wait(w) if !w.is_zero()));
        assert!(waits, "{text:?}: forever with no timeout above 0");
    }
    let fields: Vec<&str> = text.split('/').collect();
    if let [bare] = fields[..] {
        // A bare timeout N is SIGNAL/N/KILL/N.
        let ScheduleItem::Wait(wait) = items[1] else { panic!("{text:?}: {items:?}") };
        let expected = [
            ScheduleItem::Signal(signal),
            ScheduleItem::Wait(wait),
            ScheduleItem::Signal(libc::SIGKILL),
            ScheduleItem::Wait(wait),
        ];
        assert_eq!(items[..], expected, "{text:?}");
        check_seconds(text, bare, wait);
        return;
    }
    // Otherwise one item per field, each what its field says; a signal is sent, and no wait
    // follows a wait (a number there was meant as a signal: start-stop-daemon would wait).
    assert_eq!(items.len(), fields.len(), "{text:?}: {items:?}");
    assert!(items.iter().any(|i| matches!(i, ScheduleItem::Signal(_))), "{text:?}: no signal");
    let waits_in_a_row =
        items.windows(2).any(|w| matches!(w, [ScheduleItem::Wait(_), ScheduleItem::Wait(_)]));
    assert!(!waits_in_a_row, "{text:?}: {items:?}");
    for (field, item) in fields.iter().zip(items) {
        match *item {
            ScheduleItem::Signal(number) => {
                // start-stop-daemon's `-NUMBER` and `[-]NAME`.
                let signal = field.strip_prefix('-').unwrap_or(field);
                assert_eq!(parse_signal(signal), Ok(number), "{text:?}: {field:?}");
                assert!(!field.starts_with(|c: char| c.is_ascii_digit()), "{text:?}: {field:?}");
            }
            ScheduleItem::Wait(wait) => check_seconds(text, field, wait),
            ScheduleItem::Forever => {
                assert!(field.eq_ignore_ascii_case("forever"), "{text:?}: {field:?}")
            }
        }
    }
}

/// `field`, a number of seconds starting with a digit, is `wait` to the nanosecond.
pub fn check_seconds(text: &str, field: &str, wait: Duration) {
    assert!(field.starts_with(|c: char| c.is_ascii_digit()), "{text:?}: {field:?}");
    let seconds: f64 = field.parse().unwrap_or_else(|_| panic!("{text:?}: {field:?}"));
    let error = (seconds - wait.as_secs_f64()).abs();
    assert!(error <= 1e-9 + seconds * 1e-15, "{text:?}: {field:?} became {wait:?}");
}
