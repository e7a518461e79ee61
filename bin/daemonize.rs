//! The `daemonize` command (to be written).
fn main() {}
