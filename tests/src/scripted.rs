//! A cluster whose `local` provider is a scripted model on the real Anthropic wire
//! ([`ScriptedAnthropic`] behind a TLS mock), and alerts whose title carries a script's
//! marker: how run, sandbox and failover tests drive an investigation step by step.

use std::sync::Arc;

use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_testkit::{MockServer, ScriptHandle, ScriptedAnthropic, TestCa, Turn};

use crate::{Cluster, Options};

/// The API key the scripted model accepts.
pub const KEY: &str = "sk-ant-runs";

pub struct Scripted {
    pub c: Cluster,
    pub model: ScriptedAnthropic,
    _mock: MockServer,
}

impl Scripted {
    /// A cluster answering model calls from the scripts (`opts.provider` is replaced).
    pub async fn start(opts: Options) -> Scripted {
        let ca = TestCa::new().unwrap();
        let model = ScriptedAnthropic::new(KEY);
        let mock = MockServer::start(&ca, model.clone()).await.unwrap();
        let mut cfg = warden_providers::AnthropicConfig::new(
            "local",
            secrecy::SecretString::from(KEY),
            "claude-test",
        );
        cfg.base_url = mock.url();
        cfg.http.extra_root_ca_pem = vec![ca.ca_pem()];
        let provider = warden_providers::Anthropic::new(cfg).unwrap();
        let c = Cluster::start_with(Options {
            provider: Some(Arc::new(provider)),
            ..opts
        })
        .await;
        Scripted {
            c,
            model,
            _mock: mock,
        }
    }

    /// Submits an alert for `marker`'s script and waits for the run to end.
    pub async fn run_to_end(&self, marker: &str, turns: Vec<Turn>) -> (st::Run, ScriptHandle) {
        let script = self.model.script(marker, turns);
        let run = submit(&self.c, alert("acme", marker)).await;
        let run = self.c.wait_run("acme", &run.id).await;
        assert!(
            self.model.problems().is_empty(),
            "{:?}",
            self.model.problems()
        );
        (run, script)
    }

    /// Tenant `acme` with AI on and 40 logs of a payment timeout in `checkout`.
    pub async fn logs_tenant(&self) {
        self.c
            .issue(warden_tls::Role::Ingest, "otel-acme", &["acme"]);
        let lines: Vec<String> = (0..40)
            .map(|i| {
                format!("payment call failed for order {i}: context deadline exceeded after 3s")
            })
            .collect();
        let bodies: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.c.ingest_logs("otel-acme", "checkout", &bodies).await;
        self.c.set_tenant(crate::enabled_tenant("acme")).await;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An alert whose title carries the script's marker.
pub fn alert(tenant: &str, marker: &str) -> ag::SubmitTriggerRequest {
    ag::SubmitTriggerRequest {
        tenant_id: tenant.into(),
        purpose: pb::Purpose::Alert as i32,
        fingerprint: format!("fp-{marker}"),
        title: format!("checkout error rate above 5% [{marker}]"),
        service: "checkout".into(),
        labels: [("severity".to_owned(), "page".to_owned())].into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: now_ms() / 1000 - 60,
            nanos: 0,
        }),
        ..Default::default()
    }
}

pub async fn submit(c: &Cluster, t: ag::SubmitTriggerRequest) -> st::Run {
    c.agent("agent")
        .submit_trigger(t)
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap()
}
