//! Messages for people: one line naming the step, the file and the OS error's text.
//!
//! `io::Error`'s `Display` ends in "(os error N)"; a person needs the text, not the number, so
//! every line `daemonize` prints or logs goes through here without it. No system calls.

use std::path::Path;
use std::time::Duration;

use daemonctx::{Error, Step};

/// `error` and its causes on one line ([`daemonctx::error::chain`]), without "(os error N)".
pub fn chain(error: &dyn std::error::Error) -> String {
    without_errno(&daemonctx::error::chain(error))
}

/// An OS error's text alone: "Permission denied".
pub fn os_text(error: &std::io::Error) -> String {
    without_errno(&error.to_string())
}

/// A failed start, for people. A readiness timeout reads the same in exec mode (the library's
/// [`Error::ReadyTimeout`]) and under a supervisor (which reports `ETIMEDOUT` at
/// [`Step::WaitReady`]): COMMAND was stopped with `SIGTERM` (and `SIGKILL` after
/// `--kill-after`, if it had to be).
pub fn start_failure(error: &Error, program: &Path, ready_timeout: Duration) -> String {
    let timed_out = match error {
        Error::ReadyTimeout { .. } => true,
        Error::Os { step: Step::WaitReady, source, .. } => {
            source.raw_os_error() == Some(libc::ETIMEDOUT)
        }
        _ => false,
    };
    if timed_out {
        return format!(
            "{} was not ready after {} s; stopped it with SIGTERM",
            program.display(),
            ready_timeout.as_secs_f64()
        );
    }
    chain(error)
}

/// Removes every " (os error N)" from `text`.
fn without_errno(text: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..at + MARK.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_are_dropped() {
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(os_text(&e), "Permission denied");
        assert_eq!(
            without_errno("cannot lock a: Busy (os error 11): more (os error 2)"),
            "cannot lock a: Busy: more"
        );
        assert_eq!(without_errno("file (os error x).log"), "file (os error x).log");
    }

    #[test]
    fn a_ready_timeout_reads_the_same_in_both_modes() {
        let exec = Error::ReadyTimeout { pid: 7, seconds: 2.0 };
        let timed_out = std::io::Error::from_raw_os_error(libc::ETIMEDOUT);
        let supervised = Error::os(Step::WaitReady, "app", timed_out);
        let (program, timeout) = (Path::new("app"), Duration::from_secs(2));
        let expected = "app was not ready after 2 s; stopped it with SIGTERM";
        assert_eq!(start_failure(&exec, program, timeout), expected);
        assert_eq!(start_failure(&supervised, program, timeout), expected);
    }
}
