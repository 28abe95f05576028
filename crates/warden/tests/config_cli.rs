//! Runs the real `warden config check FILE`: the shipped config passes; a bad file fails
//! with every error at its own line.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_warden");

fn check(file: &Path) -> Output {
    Command::new(BIN)
        .args(["config", "check"])
        .arg(file)
        .output()
        .unwrap()
}

fn fixture(name: &str, content: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn the_shipped_routing_config_passes() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/providers.toml");
    let out = check(&shipped);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": ok: "), "{stdout}");
    assert!(stdout.contains("anthropic"), "{stdout}");
}

#[test]
fn a_bad_routing_config_fails_naming_every_error_with_its_line() {
    let bad = "\
[routing]
profiles = [\"reasoning\"]
default_profile = \"reasoning\"

[[providers]]
name = \"anthropic\"
kind = \"anthropic\"
base_url = \"http://api.anthropic.com\"
api_key_env = \"ANTHROPIC_API_KEY\"
models = { reasoning = \"claude\" }

[[providers]]
name = \"mystery\"
kind = \"telepathy\"
no_training = true
models = { reasoning = \"m\" }
";
    let path = fixture("bad.toml", bad);
    let out = check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    // The plain-http URL (line 8), the missing no_training (provider at line 6) and the
    // unknown kind (line 14), each with its own line.
    for line in [6, 8, 14] {
        assert!(
            stderr.contains(&format!("{file}:{line}:")),
            "no error at line {line}:\n{stderr}"
        );
    }
    assert!(stderr.contains("no_training"), "{stderr}");
    assert!(stderr.contains("telepathy"), "{stderr}");
    assert!(stderr.matches(": error: ").count() >= 3, "{stderr}");
}

#[test]
fn a_missing_file_fails_with_a_clear_message() {
    let out = check(Path::new("/nonexistent/providers.toml"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the file"), "{stderr}");
}
