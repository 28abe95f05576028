//! Proposals as the agent service records them, for tests: a run, then a proposal through
//! storage's `ProposalStore` with the agent service's certificate.

use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_proto::storage::v1::run_store_client::RunStoreClient;

use crate::Cluster;

/// A configuration change to a Kubernetes ConfigMap, as a JSON patch.
pub fn config_change(title: &str) -> st::ProposalContent {
    st::ProposalContent {
        kind: st::ProposalKind::ConfigChange as i32,
        title: title.into(),
        rationale: "the payment timeout is shorter than the gateway's p99".into(),
        target: Some(st::ProposalTarget {
            target: Some(st::proposal_target::Target::Kubernetes(
                st::KubernetesTarget {
                    cluster: "prod".into(),
                    namespace: "shop".into(),
                    kind: "ConfigMap".into(),
                    name: "checkout".into(),
                    resource_version: "4711".into(),
                },
            )),
        }),
        change: Some(st::ProposalChange {
            format: st::ChangeFormat::JsonPatch as i32,
            content: r#"[{"op":"replace","path":"/data/PAYMENT_TIMEOUT","value":"30s"}]"#.into(),
        }),
        ..Default::default()
    }
}

impl Cluster {
    /// Storage's proposal API as the agent service.
    pub fn proposal_store(&self) -> ProposalStoreClient<tonic::transport::Channel> {
        ProposalStoreClient::new(self.channel("agent-service", self.storage_addr))
    }

    /// A new run of `tenant` (as the agent service creates one).
    pub async fn new_run(&self, tenant: &str) -> st::Run {
        RunStoreClient::new(self.channel("agent-service", self.storage_addr))
            .create_run(st::CreateRunRequest {
                tenant_id: tenant.into(),
                purpose: pb::Purpose::Alert as i32,
                fingerprint: format!("fp-{}", uuid::Uuid::new_v4()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap()
    }

    /// Records `content` as a proposal of a new run of `tenant`.
    pub async fn propose(
        &self,
        tenant: &str,
        content: st::ProposalContent,
    ) -> Result<st::Proposal, tonic::Status> {
        let run = self.new_run(tenant).await;
        self.proposal_store()
            .create_proposal(st::CreateProposalRequest {
                tenant_id: tenant.into(),
                run_id: run.id,
                content: Some(content),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// A review of `p` on the digest it was read with.
pub fn review(tenant: &str, p: &st::Proposal, approve: bool) -> ag::ReviewProposalRequest {
    ag::ReviewProposalRequest {
        tenant_id: tenant.into(),
        proposal_id: p.id.clone(),
        approve,
        comment: "looks right".into(),
        digest: p.digest.clone(),
    }
}

/// Who moved the proposal, in order: `(to, actor, reason)` for each transition.
pub fn moves(p: &st::Proposal) -> Vec<(st::ProposalStatus, String, String)> {
    p.history
        .iter()
        .map(|t| {
            (
                st::ProposalStatus::try_from(t.to).unwrap_or_default(),
                t.actor.clone(),
                t.reason.clone(),
            )
        })
        .collect()
}

/// A `pull_request` `closed` delivery from GitHub to acme's webhook, signed with `secret`.
pub async fn pull_request_closed(
    c: &Cluster,
    secret: &str,
    url: &str,
    merged: bool,
) -> (u16, serde_json::Value) {
    use hmac::Mac;
    let body = serde_json::json!({"action": "closed", "number": 1, "pull_request": {"html_url": url, "merged": merged}})
        .to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("agent.warden.internal", c.webhooks_addr)
        .build()
        .unwrap();
    let res = http
        .post(format!(
            "https://agent.warden.internal:{}/webhooks/github/acme",
            c.webhooks_addr.port()
        ))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

/// One HTTP/1.1 request received on `listener`, answered 200: (headers, body).
pub async fn receive_one(listener: tokio::net::TcpListener) -> (Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                break (head.to_owned(), body.to_owned());
            }
        }
    };
    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (headers, body)
}
