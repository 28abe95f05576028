//! Proposals end to end: what an investigation proposes reaches a customer only as the
//! exact content a human of its tenant approved, once, through the gateway's release, and
//! every step is audited and kept as history.
//!
//! Real agent, gateway and storage over mTLS; the model is scripted and GitHub is the
//! testkit's REST mock, which checks the bearer token (a read token cannot write) and
//! records every request, so each refusal can show that GitHub saw no write.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use serde_json::json;
use tonic::Code;
use warden_integration_tests::model::{ScriptedModel, Step};
use warden_integration_tests::proposals::{
    config_change, moves, pull_request_closed, receive_one, review,
};
use warden_integration_tests::{Cluster, Options, enabled_tenant, fresh_postgres_schema};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::releases_client::ReleasesClient;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;
use warden_testkit::github::{Auth, GitHubMock, sha_for};
use warden_tls::Role;

const READ_TOKEN: &str = "ghp_readonlytoken00000000000000000000000";
const WRITE_TOKEN: &str = "ghp_releasetoken000000000000000000000000";
const HOOK_SECRET: &str = "github-webhook-secret-of-acme";
const BASE: &str = "const PAYMENT_TIMEOUT_S: u64 = 3;\nfn charge() {}\n";
const FIXED: &str = "const PAYMENT_TIMEOUT_S: u64 = 30;\nfn charge() {}\n";
const DIFF: &str = "diff --git a/src/payments.rs b/src/payments.rs
index 1111111..2222222 100644
--- a/src/payments.rs
+++ b/src/payments.rs
@@ -1,2 +1,2 @@
-const PAYMENT_TIMEOUT_S: u64 = 3;
+const PAYMENT_TIMEOUT_S: u64 = 30;
 fn charge() {}
";

/// acme's repository on the GitHub mock (main at commit 1), a read token for the code
/// tools and a write token stored as acme's release credential.
struct GitHub {
    mock: GitHubMock,
    _server: warden_testkit::MockServer,
}

async fn github(c: &Cluster) -> GitHub {
    let ca = warden_testkit::TestCa::new().unwrap();
    let mock = GitHubMock::new()
        .with_token(READ_TOKEN)
        .with_write_token(WRITE_TOKEN)
        .with_ref("acme/api", "main", &sha_for(1))
        .with_file("acme/api", &sha_for(1), "src/payments.rs", BASE);
    let server = mock.start(&ca).await.unwrap();
    let read = c.source_token("acme", READ_TOKEN).await;
    let write = c.release_token("acme", WRITE_TOKEN).await;
    let hook = c.source_token("acme", HOOK_SECRET).await;
    let mut s = enabled_tenant("acme");
    s.github = Some(pb::GitHubSource {
        api_url: server.url(),
        credentials_id: read,
        webhook_secret_id: hook,
        repositories: vec![pb::ServiceRepository {
            service: "checkout".into(),
            repository: "acme/api".into(),
            default_ref: "main".into(),
        }],
        ca_pem: String::from_utf8(ca.ca_pem()).unwrap(),
    });
    s.proposal_release = Some(pb::ProposalRelease {
        github_credentials_id: write,
        ..Default::default()
    });
    c.set_tenant(s).await;
    GitHub {
        mock,
        _server: server,
    }
}

fn code_fix(title: &str, diff: &str, paths: &[&str]) -> st::ProposalContent {
    st::ProposalContent {
        kind: st::ProposalKind::CodeFix as i32,
        title: title.into(),
        rationale: "payments time out after 3 s while the processor's p99 is 12 s".into(),
        target: Some(st::ProposalTarget {
            target: Some(st::proposal_target::Target::Repository(
                st::RepositoryTarget {
                    repository: "acme/api".into(),
                    branch: "main".into(),
                    head_sha: sha_for(1),
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                },
            )),
        }),
        change: Some(st::ProposalChange {
            format: st::ChangeFormat::UnifiedDiff as i32,
            content: diff.into(),
        }),
        ..Default::default()
    }
}

fn release_req(p: &st::Proposal) -> gw::ReleaseProposalRequest {
    gw::ReleaseProposalRequest {
        tenant_id: p.tenant_id.clone(),
        proposal_id: p.id.clone(),
        digest: p.approved_digest.clone(),
    }
}

fn releases(c: &Cluster, who: &str) -> ReleasesClient<tonic::transport::Channel> {
    ReleasesClient::new(c.channel(who, c.gateway_addr))
}

async fn get(c: &Cluster, p: &st::Proposal) -> st::Proposal {
    c.agent("reviewer")
        .get_proposal(ag::GetProposalRequest {
            tenant_id: p.tenant_id.clone(),
            proposal_id: p.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn approve(c: &Cluster, p: &st::Proposal) -> st::Proposal {
    c.agent("reviewer")
        .review_proposal(review(&p.tenant_id, p, true))
        .await
        .unwrap()
        .into_inner()
}

async fn proposal_reasons(c: &Cluster) -> Vec<String> {
    c.audit_records("acme")
        .await
        .into_iter()
        .map(|r| r.reason)
        .filter(|r| r.starts_with("PROPOSAL_") && r != "PROPOSAL_CREATED")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_code_fix_from_a_run_becomes_exactly_one_pull_request_with_the_diff_byte_for_byte()
 {
    code_fix_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_fix_flow_and_the_release_refusals_hold_on_postgres() {
    let Some(url) = fresh_postgres_schema().await else {
        return;
    };
    code_fix_flow(Some(url)).await;
    let Some(url) = fresh_postgres_schema().await else {
        return;
    };
    release_refusals(Some(url)).await;
}

/// A run proposes a code fix; a reviewer approves and releases it; GitHub merges it.
async fn code_fix_flow(database_url: Option<String>) {
    let model = ScriptedModel::new([
        Step::Tool("query_logs", json!({"contains": "timeout"})),
        Step::Tool(
            "propose_change",
            json!({
                "kind": "code_fix",
                "title": "raise the payment timeout to 30 s",
                "rationale": "payments time out after 3 s while the processor's p99 is 12 s",
                "target": {"repository": {"repository": "checkout", "branch": "main", "head_sha": sha_for(1), "paths": ["src/payments.rs"]}},
                "change": {"format": "unified_diff", "content": DIFF}
            }),
        ),
        Step::Answer("proposed raising the timeout"),
    ]);
    let c = Cluster::start_with(Options {
        provider: Some(model.clone()),
        database_url,
        ..Default::default()
    })
    .await;
    let gh = github(&c).await;
    let run = c
        .agent("agent")
        .submit_trigger(ag::SubmitTriggerRequest {
            tenant_id: "acme".into(),
            purpose: pb::Purpose::Alert as i32,
            fingerprint: "fp-release".into(),
            title: "checkout payments time out".into(),
            service: "checkout".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let run = c.wait_run("acme", &run.id).await;
    assert_eq!(run.status, st::RunStatus::Succeeded as i32, "{run:?}");

    // What the reviewer sees: the exact diff, evidence from the run's records, history.
    let listed = c
        .agent("reviewer")
        .list_proposals(ag::ListProposalsRequest {
            tenant_id: "acme".into(),
            run_id: run.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .proposals;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        run.proposals
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        [listed[0].id.as_str()],
        "the run shows the proposal it made"
    );
    let p = get(&c, &listed[0]).await;
    let content = p.content.clone().unwrap();
    assert_eq!(content.change.as_ref().unwrap().content, DIFF);
    assert_eq!(content.run_id, run.id);
    let evidence = content.evidence.clone().unwrap();
    assert!(
        evidence.tool_calls.iter().any(|t| t.tool == "query_logs"),
        "{evidence:?}"
    );
    let audited: Vec<String> = c
        .audit_records("acme")
        .await
        .into_iter()
        .filter(|r| r.agent_run_id == run.id)
        .map(|r| r.id)
        .collect();
    assert!(!evidence.audit_record_ids.is_empty());
    assert!(
        evidence
            .audit_record_ids
            .iter()
            .all(|id| audited.contains(id)),
        "evidence names only this run's audit records"
    );
    assert_eq!(p.digest, warden_proposals::digest(&content));
    assert_eq!(p.status, st::ProposalStatus::PendingReview as i32);
    assert!(gh.mock.writes().is_empty(), "nothing was written yet");

    // Approved on the digest the reviewer saw, then released by that reviewer.
    let approved = approve(&c, &p).await;
    assert_eq!(approved.approved_digest, p.digest);
    let released = releases(&c, "reviewer")
        .release_proposal(release_req(&approved))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.status, st::ProposalStatus::Released as i32);
    let pulls = gh.mock.pulls();
    assert_eq!(pulls.len(), 1, "exactly one pull request: {pulls:?}");
    let pr = &pulls[0];
    assert_eq!(released.release_url, pr.html_url);
    assert_eq!(
        (pr.base.as_str(), pr.head.as_str()),
        ("main", format!("warden/proposal-{}", p.id).as_str())
    );
    assert!(
        pr.body.contains(&p.digest) && pr.body.contains("processor's p99"),
        "{}",
        pr.body
    );
    assert_eq!(
        gh.mock
            .file_at("acme/api", &pr.head, "src/payments.rs")
            .unwrap(),
        FIXED.as_bytes(),
        "the commit applies the approved diff byte for byte"
    );
    assert_eq!(
        gh.mock
            .file_at("acme/api", "main", "src/payments.rs")
            .unwrap(),
        BASE.as_bytes(),
        "main is untouched: the change waits in the customer's own review"
    );
    let writes = gh.mock.writes();
    assert_eq!(
        writes
            .iter()
            .map(|w| w.path.rsplit("acme/api/").next().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["git/trees", "git/commits", "git/refs", "pulls"]
    );
    assert!(writes.iter().all(|w| w.auth == Auth::WriteToken));
    assert!(
        gh.mock
            .requests()
            .iter()
            .filter(|r| r.auth == Auth::Token)
            .all(|r| r.method == "GET"),
        "the agent's read token never wrote"
    );

    // A second release is refused, and GitHub sees nothing more.
    let requests = gh.mock.requests().len();
    let err = releases(&c, "reviewer")
        .release_proposal(release_req(&approved))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(gh.mock.requests().len(), requests);
    assert_eq!(gh.mock.pulls().len(), 1);

    // GitHub reports the pull request merged: APPLIED.
    let (status, answer) = pull_request_closed(&c, HOOK_SECRET, &pr.html_url, true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "PROPOSAL_STATUS_APPLIED", "{answer}");

    // Every transition is in the history and in the audit log, linked.
    let p = get(&c, &p).await;
    assert_eq!(
        moves(&p),
        vec![
            (
                st::ProposalStatus::PendingReview,
                format!("run/{}", run.id),
                "PROPOSAL_CREATED".into()
            ),
            (
                st::ProposalStatus::Approved,
                "reviewer/reviewer".into(),
                "PROPOSAL_APPROVED".into()
            ),
            (
                st::ProposalStatus::Approved,
                "reviewer/reviewer".into(),
                "PROPOSAL_RELEASE_STARTED".into()
            ),
            (
                st::ProposalStatus::Released,
                "reviewer/reviewer".into(),
                "PROPOSAL_RELEASED".into()
            ),
            (
                st::ProposalStatus::Applied,
                "github/pull-request".into(),
                "PROPOSAL_APPLIED".into()
            ),
        ]
    );
    assert!(p.history.iter().all(|t| t.digest == p.digest));
    assert_eq!(p.history[3].detail, pr.html_url);
    let records = c.audit_records("acme").await;
    for (i, t) in p.history.iter().enumerate() {
        let r = records
            .iter()
            .find(|r| r.id == t.audit_record_id)
            .unwrap_or_else(|| panic!("no audit record for {t:?}"));
        assert_eq!(r.reason, t.reason);
        // The proposal is the agent service's; GitHub's report comes through it; every
        // other move is the human's, vouched for by the gateway or the agent service.
        let by = if i == 0 {
            "agent-service/agent-service"
        } else {
            t.actor.as_str()
        };
        assert_eq!(r.caller, by);
        let vouched = if t.reason.contains("RELEASE") {
            "gateway/gateway"
        } else {
            "agent-service/agent-service"
        };
        assert_eq!(r.recorded_by, vouched, "{t:?}");
        assert_eq!(r.agent_run_id, run.id);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_without_approval_of_changed_content_or_after_the_branch_moved_is_refused_and_github_sees_no_write()
 {
    release_refusals(None).await;
}

async fn release_refusals(database_url: Option<String>) {
    let c = Cluster::start_with(Options {
        database_url,
        ..Default::default()
    })
    .await;
    let gh = github(&c).await;
    let fix = |title: &str| code_fix(title, DIFF, &["src/payments.rs"]);

    // Not approved: refused before anything reaches GitHub.
    let pending = c.propose("acme", fix("pending")).await.unwrap();
    let err = releases(&c, "reviewer")
        .release_proposal(release_req(&pending))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(gh.mock.requests().is_empty(), "{:?}", gh.mock.requests());

    // Approve A, then try to release B (pending) under A's digest: refused.
    let a = approve(&c, &c.propose("acme", fix("A")).await.unwrap()).await;
    let b = c.propose("acme", fix("B")).await.unwrap();
    let err = releases(&c, "reviewer")
        .release_proposal(gw::ReleaseProposalRequest {
            proposal_id: b.id.clone(),
            ..release_req(&a)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // A's stored content replaced by B's behind storage's back: its digest is no longer
    // the approved one, so it is not released.
    c.swap_proposal_content(&b.id, &a.id).await;
    let err = releases(&c, "reviewer")
        .release_proposal(release_req(&a))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("digest"), "{}", err.message());
    assert_ne!(get(&c, &a).await.digest, a.approved_digest);
    assert!(gh.mock.requests().is_empty(), "{:?}", gh.mock.requests());

    // The branch moved after the proposal was made: refused after reading the head only.
    let moved = approve(&c, &c.propose("acme", fix("moved")).await.unwrap()).await;
    gh.mock.clone().with_ref("acme/api", "main", &sha_for(2));
    let err = releases(&c, "admin")
        .release_proposal(release_req(&moved))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("moved"), "{}", err.message());
    assert!(gh.mock.writes().is_empty(), "{:?}", gh.mock.writes());
    assert!(gh.mock.pulls().is_empty());
    let after = get(&c, &moved).await;
    assert_eq!(after.status, st::ProposalStatus::Approved as i32);
    assert_eq!(
        moves(&after).last().unwrap(),
        &(
            st::ProposalStatus::Approved,
            "admin/admin".into(),
            "PROPOSAL_RELEASE_FAILED".into()
        )
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_reviewer_of_the_tenant_approves_on_the_digest_seen_and_only_humans_release() {
    let c = Cluster::start().await;
    let gh = github(&c).await;
    c.issue(Role::Reviewer, "mallory", &["beta"]);
    c.issue(Role::Admin, "beta-admin", &["beta"]);
    let p = c
        .propose("acme", config_change("raise the timeout"))
        .await
        .unwrap();

    // The agent, the agent service (straight at storage, in its own name) and a reviewer
    // of another tenant cannot approve.
    let err = c
        .agent("agent")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .proposal_store()
        .review_proposal(st::ReviewProposalRequest {
            tenant_id: "acme".into(),
            proposal_id: p.id.clone(),
            approve: true,
            reviewer: "agent-service/agent-service".into(),
            digest: p.digest.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .agent("mallory")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A reviewer of the tenant, on a digest other than the stored content's: refused.
    let stale = ag::ReviewProposalRequest {
        digest: format!("sha256:{}", "0".repeat(64)),
        ..review("acme", &p, true)
    };
    let err = c
        .agent("reviewer")
        .review_proposal(stale)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&p.digest), "{}", err.message());
    assert_eq!(
        get(&c, &p).await.status,
        st::ProposalStatus::PendingReview as i32
    );
    assert!(proposal_reasons(&c).await.is_empty(), "nothing was decided");

    // Approved, it is still released by no agent, service or other tenant's human.
    let approved = approve(&c, &p).await;
    for who in ["agent", "agent-service", "gateway", "mallory", "beta-admin"] {
        let err = releases(&c, who)
            .release_proposal(release_req(&approved))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err:?}");
    }
    assert_eq!(
        get(&c, &p).await.status,
        st::ProposalStatus::Approved as i32
    );
    assert!(gh.mock.requests().is_empty());

    // The agent service cannot read the release credential, by either door.
    let release_id = TenantStoreClient::new(c.channel("gateway", c.storage_addr))
        .get_tenant_settings(st::GetTenantSettingsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .proposal_release
        .unwrap()
        .github_credentials_id;
    let err = c
        .proposal_store()
        .get_release_credentials(st::GetReleaseCredentialsRequest {
            tenant_id: "acme".into(),
            credentials_id: release_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = TenantStoreClient::new(c.channel("agent-service", c.storage_addr))
        .get_source_credentials(st::GetSourceCredentialsRequest {
            tenant_id: "acme".into(),
            credentials_id: release_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_pending_proposal_expires_and_can_no_longer_be_approved_or_released() {
    let c = Cluster::start().await;
    let gh = github(&c).await;
    let mut s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    s.proposal_ttl_secs = 1;
    c.set_tenant(s).await;
    let p = c
        .propose("acme", code_fix("late", DIFF, &["src/payments.rs"]))
        .await
        .unwrap();
    assert!(p.expires_at.is_some());
    // Let its time pass (expiry is decided on storage's clock).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let listed = c
        .agent("reviewer")
        .list_proposals(ag::ListProposalsRequest {
            tenant_id: "acme".into(),
            status: st::ProposalStatus::Expired as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .proposals;
    assert_eq!(listed.iter().map(|p| &p.id).collect::<Vec<_>>(), [&p.id]);
    let err = c
        .agent("reviewer")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = releases(&c, "reviewer")
        .release_proposal(release_req(&p))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let p = get(&c, &p).await;
    assert_eq!(p.status, st::ProposalStatus::Expired as i32);
    assert_eq!(
        moves(&p).last().unwrap(),
        &(
            st::ProposalStatus::Expired,
            "warden-storage/expiry".into(),
            "PROPOSAL_EXPIRED".into()
        )
    );
    assert_eq!(proposal_reasons(&c).await, ["PROPOSAL_EXPIRED"]);
    assert!(gh.mock.requests().is_empty());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_naming_the_reason_and_nothing_is_stored() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let cases = [
        (
            code_fix("x", "this is not a diff", &["src/payments.rs"]),
            "diff",
        ),
        (
            code_fix("x", DIFF, &["src/other.rs"]),
            "\"src/payments.rs\", which is not among the target's paths",
        ),
        (
            st::ProposalContent {
                change: Some(st::ProposalChange {
                    format: st::ChangeFormat::JsonPatch as i32,
                    content: "{not json".into(),
                }),
                ..config_change("x")
            },
            "not JSON",
        ),
        (
            st::ProposalContent {
                kind: st::ProposalKind::Unspecified as i32,
                ..config_change("x")
            },
            "kind",
        ),
    ];
    for (content, reason) in cases {
        let err = c.propose("acme", content).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(reason),
            "{reason}: {}",
            err.message()
        );
    }
    assert_eq!(c.db_count("SELECT COUNT(*) FROM proposals").await, 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_filter_and_page_proposals_and_secrets_in_them_are_never_stored() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let fix = c
        .propose("acme", code_fix("fix", DIFF, &["src/payments.rs"]))
        .await
        .unwrap();
    let secret = "AKIAIOSFODNN7EXAMPLE";
    let conf = c
        .propose(
            "acme",
            st::ProposalContent {
                rationale: format!("the old key {secret} was rotated"),
                ..config_change("conf")
            },
        )
        .await
        .unwrap();
    assert!(
        !format!("{conf:?}").contains(secret),
        "redacted before it was stored"
    );
    assert_eq!(conf.redactions, 1);
    let list = |r: ag::ListProposalsRequest| {
        let mut a = c.agent("reviewer");
        async move { a.list_proposals(r).await.unwrap().into_inner() }
    };
    let by_kind = list(ag::ListProposalsRequest {
        tenant_id: "acme".into(),
        kind: st::ProposalKind::CodeFix as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_kind.proposals.iter().map(|p| &p.id).collect::<Vec<_>>(),
        [&fix.id]
    );
    let first = list(ag::ListProposalsRequest {
        tenant_id: "acme".into(),
        limit: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(first.proposals.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let second = list(ag::ListProposalsRequest {
        tenant_id: "acme".into(),
        limit: 1,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(second.proposals.len(), 1);
    assert_ne!(second.proposals[0].id, first.proposals[0].id);
    assert!(second.next_page_token.is_empty());
    let approved_only = list(ag::ListProposalsRequest {
        tenant_id: "acme".into(),
        status: st::ProposalStatus::Approved as i32,
        ..Default::default()
    })
    .await;
    assert!(approved_only.proposals.is_empty());
    // Another tenant's reviewer sees none of them.
    c.issue(Role::Reviewer, "mallory", &["beta"]);
    let err = c
        .agent("mallory")
        .get_proposal(ag::GetProposalRequest {
            tenant_id: "acme".into(),
            proposal_id: fix.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let raw = ProposalStoreClient::new(c.channel("gateway", c.storage_addr))
        .get_proposal(st::GetProposalRequest {
            tenant_id: "beta".into(),
            proposal_id: fix.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        raw.code(),
        Code::NotFound,
        "a proposal is found only under its tenant"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_cannot_be_audited_does_not_happen() {
    let c = Cluster::start().await;
    let gh = github(&c).await;
    let p = approve(
        &c,
        &c.propose("acme", code_fix("fix", DIFF, &["src/payments.rs"]))
            .await
            .unwrap(),
    )
    .await;
    // The audit table refuses every insert, as a failing disk would.
    let db = c.db().await;
    sqlx::query(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    let err = releases(&c, "reviewer")
        .release_proposal(release_req(&p))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("AUDIT_FAIL_CLOSED"),
        "{}",
        err.message()
    );
    assert!(gh.mock.requests().is_empty(), "{:?}", gh.mock.requests());
    sqlx::query("DROP TRIGGER audit_down")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let after = get(&c, &p).await;
    assert_eq!(after.status, st::ProposalStatus::Approved as i32);
    assert_eq!(moves(&after).len(), 2, "created and approved only");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_kubernetes_change_is_one_signed_delivery_to_the_tenants_webhook() {
    use hmac::Mac;
    let c = Cluster::start().await;
    const KEY: &str = "whsec-release-key-of-acme";
    let key = c.release_token("acme", KEY).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/warden", listener.local_addr().unwrap());
    let mut s = enabled_tenant("acme");
    s.proposal_release = Some(pb::ProposalRelease {
        webhook_url: url.clone(),
        webhook_secret_id: key,
        ..Default::default()
    });
    c.set_tenant(s).await;
    let received = tokio::spawn(receive_one(listener));
    let p = approve(
        &c,
        &c.propose("acme", config_change("raise the timeout"))
            .await
            .unwrap(),
    )
    .await;
    let released = releases(&c, "reviewer")
        .release_proposal(release_req(&p))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.status, st::ProposalStatus::Released as i32);
    assert_eq!(released.release_url, url);
    let (headers, body) = received.await.unwrap();
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} header: {headers:?}"))
    };
    let ts = header("x-warden-timestamp");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    assert_eq!(
        header("x-warden-signature"),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        "signed with the tenant's release key over timestamp and body"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["digest"], p.approved_digest.as_str());
    assert_eq!(v["target"]["resource_version"], "4711");
    assert_eq!(
        v["change"]["content"],
        p.content.unwrap().change.unwrap().content.as_str()
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_pull_request_closed_unmerged_fails_and_other_pull_requests_change_nothing() {
    let c = Cluster::start().await;
    let gh = github(&c).await;
    let p = approve(
        &c,
        &c.propose("acme", code_fix("fix", DIFF, &["src/payments.rs"]))
            .await
            .unwrap(),
    )
    .await;
    let released = releases(&c, "reviewer")
        .release_proposal(release_req(&p))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gh.mock.pulls().len(), 1);
    // A pull request Warden did not open: acknowledged, nothing moves.
    let (status, answer) =
        pull_request_closed(&c, HOOK_SECRET, "https://github.com/acme/api/pull/99", true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        get(&c, &p).await.status,
        st::ProposalStatus::Released as i32
    );
    // Unsigned (another secret): refused, nothing moves.
    let (status, _) = pull_request_closed(&c, "not-the-secret", &released.release_url, true).await;
    assert_eq!(status, 401);
    assert_eq!(
        get(&c, &p).await.status,
        st::ProposalStatus::Released as i32
    );
    // Closed unmerged: FAILED, and nothing moves it again.
    let (status, answer) = pull_request_closed(&c, HOOK_SECRET, &released.release_url, false).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("PROPOSAL_STATUS_FAILED"))
    );
    let (status, answer) = pull_request_closed(&c, HOOK_SECRET, &released.release_url, true).await;
    assert_eq!(status, 200, "a redelivery is acknowledged: {answer}");
    assert!(
        answer["note"].as_str().unwrap().contains("FAILED"),
        "{answer}"
    );
    let p = get(&c, &p).await;
    assert_eq!(p.status, st::ProposalStatus::Failed as i32);
    assert_eq!(
        moves(&p).last().unwrap(),
        &(
            st::ProposalStatus::Failed,
            "github/pull-request".into(),
            "PROPOSAL_FAILED".into()
        )
    );
    c.stop().await;
}
