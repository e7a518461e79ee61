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

#[test]
fn man_page_has_signals_environment_and_files() {
    let page = String::from_utf8(render::render()).unwrap();
    for section in [".SH SIGNALS", ".SH ENVIRONMENT", ".SH FILES", ".SH \"EXIT STATUS\""] {
        assert!(page.contains(section), "no {section} section");
    }
    for signal in ["SIGTERM", "SIGHUP", "SIGCHLD", "SIGRTMIN"] {
        assert!(
            page.contains(&format!("\\fB{signal}\\fR")),
            "SIGNALS does not say what {signal} does"
        );
    }
}
