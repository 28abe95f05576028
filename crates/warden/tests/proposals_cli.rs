//! `warden proposals` as a reviewer runs it against a real `warden up`: list finds the
//! proposal, show prints its exact diff with the digest (colored only when asked for a
//! terminal, plain when piped or under NO_COLOR), and approve takes that digest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::{address, start, stop};
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_proto::storage::v1::run_store_client::RunStoreClient;

const DIFF: &str = "--- a/src/payments.rs\n+++ b/src/payments.rs\n@@ -1 +1 @@\n-const PAYMENT_TIMEOUT_S: u64 = 3;\n+const PAYMENT_TIMEOUT_S: u64 = 30;\n";

/// Runs `warden` with extra environment: success, stdout, stderr.
fn warden_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A run and a code-fix proposal of acme, recorded as the agent service does.
async fn propose(storage: &str, pki: &std::path::Path) -> st::Proposal {
    let files = warden_tls::TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join("agent-service.pem"),
        key: pki.join("agent-service-key.pem"),
    };
    let channel = warden_rpc::connect(
        storage,
        &warden_rpc::Security::Mtls(files),
        warden_tls::Role::Storage,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let run = RunStoreClient::new(channel.clone())
        .create_run(st::CreateRunRequest {
            tenant_id: "acme".into(),
            purpose: pb::Purpose::Alert as i32,
            fingerprint: "cli".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    ProposalStoreClient::new(channel)
        .create_proposal(st::CreateProposalRequest {
            tenant_id: "acme".into(),
            run_id: run.id,
            content: Some(st::ProposalContent {
                kind: st::ProposalKind::CodeFix as i32,
                title: "raise the payment timeout".into(),
                rationale: "the processor's p99 is 12 s".into(),
                target: Some(st::ProposalTarget {
                    target: Some(st::proposal_target::Target::Repository(
                        st::RepositoryTarget {
                            repository: "acme/api".into(),
                            branch: "main".into(),
                            head_sha: "a".repeat(40),
                            paths: vec!["src/payments.rs".into()],
                        },
                    )),
                }),
                change: Some(st::ProposalChange {
                    format: st::ChangeFormat::UnifiedDiff as i32,
                    content: DIFF.into(),
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

#[test]
fn a_reviewer_lists_shows_the_colored_diff_and_approves_the_digest_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(dir.path(), &[]);
    let storage = address(&lines, "storage");
    let agent = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("agent"))
        .and_then(|rest| rest.trim().strip_prefix("https://"))
        .unwrap_or_else(|| panic!("no agent address in {lines:?}"))
        .to_owned();
    let pki = dir.path().join("data/pki");
    let p = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(propose(&storage, &pki));
    let pki = pki.to_str().unwrap();
    let common = ["--agent", agent.as_str(), "--pki", pki, "--tenant", "acme"];
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let all: Vec<&str> = ["proposals"]
            .iter()
            .chain(args)
            .chain(&common)
            .copied()
            .collect();
        warden_env(&all, env)
    };

    let (ok, out, err) = run(&["list", "--status", "pending-review"], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&p.id) && out.contains("PENDING_REVIEW") && out.contains("CODE_FIX"),
        "{out}"
    );
    let (ok, out, _) = run(&["list", "--status", "approved"], &[]);
    assert!(ok && out.contains("no proposals"), "{out}");

    // Piped: plain text, the diff exactly as proposed.
    let (ok, plain, err) = run(&["show", &p.id], &[]);
    assert!(ok, "{err}");
    assert!(
        !plain.contains('\u{1b}'),
        "no color when stdout is not a terminal: {plain:?}"
    );
    assert!(plain.contains(DIFF), "{plain}");
    assert!(plain.contains(&p.digest), "{plain}");
    assert!(plain.contains("PROPOSAL_CREATED"), "the history: {plain}");
    // As for a terminal: added green, removed red, hunks cyan; NO_COLOR wins.
    let (_, colored, _) = run(&["show", &p.id], &[("CLICOLOR_FORCE", "1")]);
    assert!(
        colored.contains("\u{1b}[32m+const PAYMENT_TIMEOUT_S: u64 = 30;"),
        "{colored:?}"
    );
    assert!(
        colored.contains("\u{1b}[31m-const PAYMENT_TIMEOUT_S: u64 = 3;"),
        "{colored:?}"
    );
    assert!(colored.contains("\u{1b}[36m@@ -1 +1 @@"), "{colored:?}");
    let (_, no_color, _) = run(
        &["show", &p.id],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert_eq!(no_color, plain);

    // Approving another digest is refused; the digest shown is approved.
    let other = format!("sha256:{}", "0".repeat(64));
    let (ok, _, err) = run(&["approve", &p.id, "--digest", &other], &[]);
    assert!(!ok && err.contains("digest"), "{err}");
    let (ok, out, err) = run(&["approve", &p.id, "--digest", &p.digest], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("APPROVED"), "{out}");
    stop(child);
}
