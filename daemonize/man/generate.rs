//! Writes `man/daemonize.1` from the clap definition: `cargo run -p daemonize --example gen-man`.
//! `tests/man_page.rs` fails when the committed page differs from a fresh rendering.

mod render;

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/daemonize.1");
    if let Err(e) = std::fs::write(&path, render::render()) {
        eprintln!("gen-man: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    println!("wrote {}", path.display());
}
