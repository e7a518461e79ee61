//! The committed man page must be what the clap definition renders today.

#[path = "../man/render.rs"]
mod render;

#[test]
fn committed_man_page_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/daemonize.1");
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == render::render(),
        "{} is stale: run `cargo run -p daemonize --example gen-man` and commit the result",
        path.display()
    );
}
