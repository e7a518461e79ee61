//! A pidfile's content is untrusted: parsing must never panic, and must accept only what
//! `PID\n` formatting produces.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|content: &[u8]| {
    if let Some(pid) = daemonctx::pidfile::parse_pid(content) {
        assert!(pid > 0);
        let canonical = format!("{pid}\n");
        assert!(
            content == canonical.as_bytes()
                || content == &canonical.as_bytes()[..canonical.len() - 1]
        );
    }
});
