//! What the pid-recycling helpers (`recycle_pid`, `recycle_group`) share.

use std::path::Path;
use std::time::{Duration, Instant};

/// The pid written into `file`, waited for up to 10 s (the bystander writes it at once).
pub fn wait_for_pid(file: &Path) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok()) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
