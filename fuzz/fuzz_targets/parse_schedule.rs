//! A --retry schedule comes from the command line: parsing must never panic, and what it
//! accepts always contains a timeout.
#![no_main]

use daemonctx::stop::{Schedule, ScheduleItem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(schedule) = Schedule::parse(text, libc::SIGTERM) {
        assert!(schedule.0.iter().any(|item| matches!(item, ScheduleItem::Wait(_))));
    }
});
