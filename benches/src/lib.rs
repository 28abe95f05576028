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
//!
//! The mock is [`mock::BenchMock`] (it answers after a configurable delay and keeps no
//! per-request record); [`load`] is the open-loop driver and the process figures.

pub mod load;
pub mod mock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::SecretString;
use tonic::transport::Channel;
use warden_integration_tests::{Cluster, Options};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::gateway_client::GatewayClient;
use warden_providers::{
    ChatRequest, Content, EventStream, HttpSettings, LOCAL_MODEL, Message, MessageRole, OpenAi,
    OpenAiConfig, Provider, StreamEvent,
};
use warden_testkit::TestCa;

use mock::{BenchMock, MockOptions};

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

impl Database {
    /// `sqlite`, or a postgres:// URL in which a fresh schema is created (storage refuses
    /// an audit log signed by another run's key, so each run starts empty).
    pub async fn fresh(spec: &str) -> anyhow::Result<Database> {
        if spec == "sqlite" {
            return Ok(Database::Sqlite);
        }
        if !spec.starts_with("postgres://") {
            anyhow::bail!("the database must be `sqlite` or a postgres:// URL, not {spec:?}");
        }
        let schema = format!(
            "warden_bench_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
        );
        let pool = sqlx::PgPool::connect(spec).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await?;
        pool.close().await;
        let sep = if spec.contains('?') { '&' } else { '?' };
        Ok(Database::Postgres(format!(
            "{spec}{sep}options=-c%20search_path%3D{schema}"
        )))
    }
}

/// Storage, a gateway and a mock provider on loopback: the integration tests' cluster
/// (three mTLS servers), whose gateway routes to the OpenAI adapter pointed at the mock.
pub struct Rig {
    pub mock: BenchMock,
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

fn openai(ca: &TestCa, mock: &BenchMock) -> anyhow::Result<Arc<dyn Provider>> {
    let mut cfg = OpenAiConfig::new("openai", Some(SecretString::from(API_KEY)), MODEL);
    cfg.base_url = format!("{}/v1", mock.url());
    cfg.http = HttpSettings {
        extra_root_ca_pem: vec![ca.ca_pem()],
        ..HttpSettings::default()
    };
    Ok(Arc::new(OpenAi::new(cfg)?))
}

impl Rig {
    /// Starts the mock (answering after `mock_delay`), storage and a gateway.
    pub async fn start(database: Database, mock_delay: Duration) -> anyhow::Result<Rig> {
        let ca = TestCa::new()?;
        let mock = BenchMock::start(
            ([127, 0, 0, 1], 0).into(),
            Some(ca.server_config()),
            MockOptions {
                delay: mock_delay,
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
            // The rig's agent service runs nothing; it needs no worker program.
            isolation: Some(warden_agent::isolation::Isolation::InProcess),
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
        self.direct.complete(&chat_request(logs)).await?;
        Ok(())
    }

    /// The same request through the gateway.
    pub async fn through_gateway(&self, logs: &str) -> anyhow::Result<()> {
        let mut gateway = self.gateway.clone();
        gateway.complete(complete_request(logs)).await?;
        Ok(())
    }

    /// A streamed request straight to the mock, read to its end; returns when the first
    /// text arrived.
    pub async fn direct_stream(&self, logs: &str) -> anyhow::Result<Instant> {
        let mut events = self.direct.stream(&chat_request(logs)).await?;
        let first = first_text(&mut events).await?;
        while let Some(e) = events.next().await {
            e?;
        }
        Ok(first)
    }

    /// The same streamed request through the gateway (`CompleteStream`), read to its end;
    /// returns when the first text arrived.
    pub async fn gateway_stream(&self, logs: &str) -> anyhow::Result<Instant> {
        let mut events = self.open_gateway_stream(logs).await?;
        let first = first_gateway_text(&mut events).await?;
        while events.message().await?.is_some() {}
        Ok(first)
    }

    /// A stream straight to the mock that has delivered its first words and stays open
    /// (`logs` must carry [`mock::HOLD_MARKER`]); dropping it closes it.
    pub async fn direct_held(&self, logs: &str) -> anyhow::Result<EventStream> {
        let mut events = self.direct.stream(&chat_request(logs)).await?;
        first_text(&mut events).await?;
        Ok(events)
    }

    /// The same held stream through the gateway.
    pub async fn gateway_held(
        &self,
        logs: &str,
    ) -> anyhow::Result<tonic::Streaming<gw::CompleteStreamEvent>> {
        let mut events = self.open_gateway_stream(logs).await?;
        first_gateway_text(&mut events).await?;
        Ok(events)
    }

    async fn open_gateway_stream(
        &self,
        logs: &str,
    ) -> anyhow::Result<tonic::Streaming<gw::CompleteStreamEvent>> {
        let mut gateway = self.gateway.clone();
        Ok(gateway
            .complete_stream(complete_request(logs))
            .await?
            .into_inner())
    }

    /// Stops the services, front ones before storage.
    pub async fn stop(self) {
        self.cluster.stop().await;
    }
}

/// The adapter's request that carries `logs` (what the gateway sends, before redaction).
fn chat_request(logs: &str) -> ChatRequest {
    ChatRequest {
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
    }
}

async fn first_text(events: &mut EventStream) -> anyhow::Result<Instant> {
    while let Some(e) = events.next().await {
        if let StreamEvent::TextDelta { text } = e?
            && !text.is_empty()
        {
            return Ok(Instant::now());
        }
    }
    anyhow::bail!("the stream ended before any text")
}

async fn first_gateway_text(
    events: &mut tonic::Streaming<gw::CompleteStreamEvent>,
) -> anyhow::Result<Instant> {
    use gw::complete_stream_event::Event;
    while let Some(e) = events.message().await? {
        if let Some(Event::TextDelta(t)) = e.event
            && !t.text.is_empty()
        {
            return Ok(Instant::now());
        }
    }
    anyhow::bail!("the gateway's stream ended before any text")
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

    fn last_body(rig: &Rig) -> String {
        String::from_utf8_lossy(&rig.mock.last_body().unwrap()).into_owned()
    }

    #[tokio::test]
    async fn both_paths_reach_the_mock_and_the_gateway_redacts() {
        let rig = Rig::start(Database::Sqlite, Duration::ZERO).await.unwrap();
        let logs = sample_logs(2048);
        rig.direct(&logs).await.unwrap();
        assert!(last_body(&rig).contains("s3cr3t-0000"));
        rig.through_gateway(&logs).await.unwrap();
        assert!(
            !last_body(&rig).contains("s3cr3t-0000"),
            "the gateway path must redact"
        );
        rig.direct_stream(&logs).await.unwrap();
        rig.gateway_stream(&logs).await.unwrap();
        assert!(!last_body(&rig).contains("s3cr3t-0000"));
        assert_eq!(rig.mock.calls(), 4);
        rig.stop().await;
    }

    #[tokio::test]
    async fn held_streams_stay_open_until_dropped_on_both_paths() {
        let rig = Rig::start(Database::Sqlite, Duration::from_millis(1))
            .await
            .unwrap();
        let logs = format!("{}{}", sample_logs(512), mock::HOLD_MARKER);
        let direct = rig.direct_held(&logs).await.unwrap();
        let gateway = rig.gateway_held(&logs).await.unwrap();
        assert_eq!(rig.mock.open_streams(), 2);
        drop((direct, gateway));
        for _ in 0..200 {
            if rig.mock.open_streams() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            rig.mock.open_streams(),
            0,
            "closing a stream reaches the mock"
        );
        rig.stop().await;
    }
}
