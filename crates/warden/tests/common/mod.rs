//! What the `warden` binary's tests share: `warden up` started on free ports and stopped
//! with SIGTERM, and one-shot `warden` commands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "test helpers fail loudly; each test file uses some of them"
)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `warden up` with its data in `dir/data` (so its key file, beside the data
/// directory, lands in `dir/data-keys`).
pub fn start(dir: &std::path::Path, extra: &[&str]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["up", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--gateway",
            "127.0.0.1:0",
            "--storage",
            "127.0.0.1:0",
            "--agent",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--webhooks",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let done = line.starts_with("Stop with Ctrl-C");
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    (child, lines)
}

pub fn stop(mut child: Child) -> String {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "warden up exited with {status}: {err}");
    err
}

/// Runs `warden ARGS...` to completion: whether it succeeded, and its stdout and stderr.
pub fn warden(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The address a service's banner line names (`gateway  https://ADDR  (...)`).
pub fn address(lines: &[String], service: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(&format!("{service}  https://")))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {service} address in {lines:?}"))
        .to_owned()
}

/// A port that was free a moment ago on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `warden` process, killed when the test ends, however it ends.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
