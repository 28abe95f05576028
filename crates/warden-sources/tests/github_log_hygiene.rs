//! No credential reaches the logs: every log line (TRACE, all crates: reqwest, hyper,
//! rustls) is captured while the GitHub client succeeds and fails with a token and with a
//! GitHub App. In its own test binary because tracing's per-callsite interest cache is
//! process-wide.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use warden_testkit::Fault;
use warden_testkit::github::app_key;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_reach_the_logs() {
    let capture = Capture::default();
    let c = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || c.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = app_key().unwrap();
    let env = start(
        repos()
            .with_app(APP_ID, INSTALLATION, &key.public_key_pem)
            .unwrap(),
    )
    .await;
    for creds in [
        token(TOKEN),
        token("ghp_wrongWrongWrong000000000000000000000"),
        app(&key.private_key_pem),
    ] {
        let gh = client(&env, &creds);
        let _ = gh.read_file("acme/api", "src/main.rs", None).await;
        let _ = gh.search_code("acme/api", "timeout", 5).await;
        env.server.script([Fault::status(500), Fault::Reset]);
        let _ = gh.commit("acme/api", "v1").await;
        let _ = gh.compare("acme/api", "v1", "v2").await;
    }

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("github request"),
        "the client logged nothing: {logs}"
    );
    let secrets: Vec<String> = env
        .server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .flat_map(|a| {
            let v = a.split_once(' ').map_or(a.clone(), |(_, v)| v.to_owned());
            [a, v]
        })
        .chain([TOKEN.to_owned(), "ghp_wrong".to_owned()])
        .collect();
    assert!(secrets.len() > 4);
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a credential reached the logs");
    }
    let key_body: String = key
        .private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!logs.contains(&key_body[..40]) && !logs.contains("PRIVATE KEY"));
}
