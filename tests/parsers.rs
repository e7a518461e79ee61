//! The parsers of untrusted text, `--retry` schedules here, checked over deterministic streams
//! of inputs with the same properties their fuzz targets (`fuzz/`) check.

#[path = "properties/schedule.rs"]
mod properties;

use daemonctx::stop::{MAX_TIMEOUT, Schedule, ScheduleItem};

/// The fuzz target `parse_schedule`, over a deterministic stream of inputs built from pieces that matter.
#[test]
fn accepted_schedules_keep_their_properties() {
    let pieces = [
        "TERM",
        "KILL",
        "9",
        "0",
        "0.5",
        "/",
        "forever",
        "x",
        "-1",
        "1e9",
        "",
        "SIGHUP",
        "1e19",
        "315360000",
        "315360000.5",
        "1e-10",
        "FOREVER",
        "usr1",
        "-15",
        "-TERM",
        "15",
        "2",
        "-",
    ];
    let (mut accepted, mut refused) = (0, 0);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let text: String = (0..(state % 6))
            .map(|i| pieces[((state >> (i * 5)) % pieces.len() as u64) as usize])
            .collect();
        match properties::check_parse(&text) {
            true => accepted += 1,
            false => refused += 1,
        }
    }
    // Neither side empty: the checks above ran on many schedules.
    assert!(accepted > 500 && refused > 500, "accepted {accepted}, refused {refused}");
}

#[test]
fn timeouts_longer_than_ten_years_are_refused() {
    // These panicked in follow_schedule (Instant + Duration overflow) after the first signal.
    for bad in ["1e19", "TERM/1e19", "TERM/5/KILL/1e19", "315360000.001", "TERM/1e300"] {
        let error = Schedule::parse(bad, libc::SIGTERM).unwrap_err();
        assert!(error.to_string().contains("longer than ten years"), "{bad:?}: {error}");
    }
    for good in ["315360000", "TERM/315360000/forever", "3.1536e8"] {
        let schedule = Schedule::parse(good, libc::SIGTERM).unwrap();
        properties::check_accepted(good, libc::SIGTERM, &schedule);
        assert!(schedule.items().contains(&ScheduleItem::Wait(MAX_TIMEOUT)), "{good:?}");
    }
}

/// start-stop-daemon reads `15/2/9/1` as four timeouts (it sends nothing and waits 27 s); a
/// signal number needs a minus sign there. We take `-15` as signal 15, and refuse schedules
/// whose bare numbers look meant as signals instead of waiting without signalling.
#[test]
fn numeric_signals_take_a_minus_and_timeouts_in_a_row_are_refused() {
    for (bad, named) in [("15/2/9/1", "\"2\""), ("TERM/5/9/1", "\"9\""), ("1/1", "\"1\"")] {
        let error = Schedule::parse(bad, libc::SIGTERM).unwrap_err().to_string();
        assert!(
            error.contains("follows another timeout") && error.contains(named),
            "{bad}: {error}"
        );
        assert!(error.contains("-NUMBER"), "{bad}: {error}");
    }
    let error = Schedule::parse("5/forever", libc::SIGTERM).unwrap_err().to_string();
    assert!(error.contains("no signal is sent"), "{error}");
    let schedule = Schedule::parse("-15/2/-9/1", libc::SIGHUP).unwrap();
    let expected = [
        ScheduleItem::Signal(libc::SIGTERM),
        ScheduleItem::Wait(std::time::Duration::from_secs(2)),
        ScheduleItem::Signal(libc::SIGKILL),
        ScheduleItem::Wait(std::time::Duration::from_secs(1)),
    ];
    assert_eq!(schedule.items(), expected);
    let named = Schedule::parse("-TERM/2/KILL/1", libc::SIGHUP).unwrap();
    assert_eq!(named.items(), expected);
    // A leading wait, then a signal, is start-stop-daemon's too: accepted.
    assert!(Schedule::parse("2/-9/1", libc::SIGTERM).is_ok());
    for bad in ["-0/5", "-65/5", "--15/5", "-/5", "-forever/5"] {
        assert!(Schedule::parse(bad, libc::SIGTERM).is_err(), "{bad} accepted");
    }
}
