//! The rig behind Warden's gateway benchmarks: one OpenAI-compatible mock provider over
//! TLS on loopback, and two ways to reach it with the same request.
//!
//! - **direct**: the OpenAI adapter straight to the mock, as an agent without Warden
//!   would call a provider (the baseline);
//! - **gateway**: `Gateway.Complete` over mTLS to a real gateway, which reads the
//!   tenant's settings, decides, redacts, writes the audit intent to a real storage
//!   service (SQLite with `synchronous=FULL`, or PostgreSQL) over gRPC, calls the same
//!   adapter and the same mock, and writes the audit outcome.
//!
//! The difference between the two is what Warden costs. Benchmarks report it as a ratio
//! against the baseline measured in the same process, so machine load cancels out.

use std::sync::Arc;

use secrecy::SecretString;
use tonic::transport::Channel;
use warden_integration_tests::{Cluster, Options};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::gateway_client::GatewayClient;
use warden_providers::{
    ChatRequest, Content, HttpSettings, LOCAL_MODEL, Message, MessageRole, OpenAi, OpenAiConfig,
    Provider,
};
use warden_testkit::{MockServer, TestCa};

const API_KEY: &str = "sk-bench-not-a-real-key";
/// The model the gateway asks for (the harness maps every profile to it), so both paths
/// send the same body.
const MODEL: &str = LOCAL_MODEL;
pub const TENANT: &str = "bench";

/// Where storage keeps its data.
#[derive(Debug, Clone)]
pub enum Database {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A PostgreSQL URL.
    Postgres(String),
}

/// Storage, a gateway and a mock provider on loopback: the integration tests' cluster
/// (three mTLS servers), whose gateway routes to the OpenAI adapter pointed at the mock.
pub struct Rig {
    pub mock: MockServer,
    direct: Arc<dyn Provider>,
    gateway: GatewayClient<Channel>,
    cluster: Cluster,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("gateway_addr", &self.cluster.gateway_addr)
            .finish_non_exhaustive()
    }
}

fn openai(ca: &TestCa, mock: &MockServer) -> anyhow::Result<Arc<dyn Provider>> {
    let mut cfg = OpenAiConfig::new("openai", Some(SecretString::from(API_KEY)), MODEL);
    cfg.base_url = format!("{}/v1", mock.url());
    cfg.http = HttpSettings {
        extra_root_ca_pem: vec![ca.ca_pem()],
        ..HttpSettings::default()
    };
    Ok(Arc::new(OpenAi::new(cfg)?))
}

impl Rig {
    pub async fn start(database: Database) -> anyhow::Result<Rig> {
        let ca = TestCa::new()?;
        let mock = MockServer::start(
            &ca,
            warden_testkit::openai::OpenAiMock {
                expected_key: Some(API_KEY.into()),
            },
        )
        .await?;
        let cluster = Cluster::start_with(Options {
            database_url: match database {
                Database::Sqlite => None,
                Database::Postgres(url) => Some(url),
            },
            provider: Some(openai(&ca, &mock)?),
            ..Options::default()
        })
        .await;
        cluster
            .set_tenant(pb::TenantSettings {
                tenant_id: TENANT.into(),
                enabled: true,
                allowed_data_types: vec![pb::DataType::Logs as i32],
                allowed_providers: vec!["openai".into()],
                ..Default::default()
            })
            .await;
        Ok(Rig {
            direct: openai(&ca, &mock)?,
            mock,
            gateway: cluster.gateway("agent"),
            cluster,
        })
    }

    /// One request straight to the mock provider.
    pub async fn direct(&self, logs: &str) -> anyhow::Result<()> {
        let req = ChatRequest {
            model: Some(MODEL.into()),
            tenant_id: None,
            system: None,
            messages: vec![Message {
                role: MessageRole::User,
                content: vec![Content::Text { text: logs.into() }],
            }],
            tools: Vec::new(),
            max_tokens: 1024,
            temperature: None,
        };
        self.direct.complete(&req).await?;
        Ok(())
    }

    /// The same request through the gateway.
    pub async fn through_gateway(&self, logs: &str) -> anyhow::Result<()> {
        let mut gateway = self.gateway.clone();
        gateway.complete(complete_request(logs)).await?;
        Ok(())
    }

    /// Stops the services, front ones before storage.
    pub async fn stop(self) {
        self.cluster.stop().await;
    }
}

/// The gateway request that carries `logs` (the integration tests' request shape).
pub fn complete_request(logs: &str) -> gw::CompleteRequest {
    warden_integration_tests::logs_request(TENANT, logs)
}

/// About `bytes` of realistic service logs: varied lines with timestamps, ids, an IP
/// address and, every twentieth line, a credential that redaction must catch.
pub fn sample_logs(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 200);
    let mut i = 0u64;
    while out.len() < bytes {
        let line = match i % 20 {
            0 => format!(
                "2026-11-30T10:{:02}:{:02}Z checkout ERROR db connect failed url=postgres://app:s3cr3t-{i:04}@10.0.0.7:5432/orders\n",
                i / 60 % 60,
                i % 60
            ),
            1..=5 => format!(
                "2026-11-30T10:{:02}:{:02}Z checkout WARN payment timeout after {} ms order={:08x} client=203.0.113.{}\n",
                i / 60 % 60,
                i % 60,
                800 + i * 7 % 900,
                i * 2_654_435_761 % 0xffff_ffff,
                i % 250
            ),
            _ => format!(
                "2026-11-30T10:{:02}:{:02}Z checkout INFO request served path=/api/cart/{} status=200 took={}ms trace={:016x}\n",
                i / 60 % 60,
                i % 60,
                i % 97,
                10 + i % 40,
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ),
        };
        out.push_str(&line);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sample_logs_reach_the_size_and_carry_credentials() {
        let logs = sample_logs(4096);
        assert!(logs.len() >= 4096 && logs.len() < 4096 + 200);
        assert!(logs.contains("postgres://app:s3cr3t-0000@"));
    }

    #[tokio::test]
    async fn both_paths_reach_the_mock_and_the_gateway_redacts() {
        let rig = Rig::start(Database::Sqlite).await.unwrap();
        let logs = sample_logs(2048);
        rig.direct(&logs).await.unwrap();
        rig.through_gateway(&logs).await.unwrap();
        let seen = rig.mock.requests();
        assert_eq!(seen.len(), 2);
        let direct = String::from_utf8_lossy(&seen[0].body).into_owned();
        let gateway = String::from_utf8_lossy(&seen[1].body).into_owned();
        assert!(direct.contains("s3cr3t-0000"));
        assert!(
            !gateway.contains("s3cr3t-0000"),
            "the gateway path must redact"
        );
        rig.stop().await;
    }
}
