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
