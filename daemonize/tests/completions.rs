//! The committed shell completions must be what the clap definition renders today.

#[path = "../completions/render.rs"]
mod render;

#[test]
fn committed_completions_are_fresh() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, name) in render::SHELLS {
        let path = dir.join(name);
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == render::render(shell),
            "{} ({shell}) is stale: run `cargo run -p daemonize --example gen-completions` and \
             commit the result",
            path.display()
        );
    }
}

#[test]
fn completions_offer_every_mode_and_option() {
    for (shell, _) in render::SHELLS {
        let script = String::from_utf8(render::render(shell)).unwrap();
        for option in ["supervise", "send", "forward", "stop", "status", "child-pidfile"] {
            assert!(script.contains(option), "{shell} completions lack --{option}");
        }
    }
}
