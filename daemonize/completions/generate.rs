//! Writes the bash, zsh and fish completions in `completions/` from the clap definition:
//! `cargo run -p daemonize --example gen-completions`. `tests/completions.rs` fails when a
//! committed file differs from a fresh rendering.

mod render;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, name) in render::SHELLS {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, render::render(shell)) {
            eprintln!("gen-completions: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("wrote {}", path.display());
    }
}
