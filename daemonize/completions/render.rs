//! Renders the shell completions in `completions/` from the clap definition in `src/cli.rs`
//! (`clap_complete`). Shared by `completions/generate.rs` and the freshness test in
//! `tests/completions.rs`.

use clap::CommandFactory;
use clap_complete::Shell;

#[path = "../src/cli.rs"]
#[allow(dead_code)]
mod cli;

/// Each shell with the file its completions go in, relative to `completions/`.
pub const SHELLS: [(Shell, &str); 3] =
    [(Shell::Bash, "daemonize.bash"), (Shell::Zsh, "_daemonize"), (Shell::Fish, "daemonize.fish")];

/// The completion script for `shell`.
pub fn render(shell: Shell) -> Vec<u8> {
    let mut command = cli::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "daemonize", &mut script);
    script
}
