//! A --retry schedule comes from the command line: parsing must never panic, and what it
//! accepts must have the properties in `tests/properties/schedule.rs`, which the deterministic
//! test `tests/parsers.rs` checks too.
#![no_main]

#[path = "../../tests/properties/schedule.rs"]
mod properties;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    properties::check_parse(text);
});
