//! Durable runs across agent replicas: two `warden serve agent` processes share one
//! storage; the one running an investigation is killed with SIGKILL in the middle of a
//! model call, and the other takes the run over when the lease expires, resumes it after
//! the last recorded step, and finishes it. No recorded step runs twice. Each replica
//! runs the step in a confined `warden worker` of its own; the killed replica's worker
//! dies with it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod common;

use common::{Service, free_port};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warden::services;
use warden_proto::agent::v1 as ag;
use warden_proto::agent::v1::agent_client::AgentClient;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::admin_client::AdminClient;
use warden_proto::storage::v1 as st;
use warden_rpc::{Limits, Security};
use warden_testkit::process::alive;
use warden_testkit::{MockServer, ScriptedAnthropic, TestCa, Turn};
use warden_tls::{DevPki, Role};

const KEY: &str = "sk-ant-failover";

/// Starts an agent replica with one worker and a 5 s lease, on fresh ports.
fn agent(dir: &Path, pki: &DevPki, name: &str, gateway: u16, storage: u16) -> (Service, u16) {
    let port = free_port();
    let files = pki.files("agent-service");
    let config = format!(
        "service = \"agent\"\nlisten = \"127.0.0.1:{port}\"\ngateway = \"127.0.0.1:{gateway}\"\nstorage = \"127.0.0.1:{storage}\"\n\
         [runs]\nworkers = 1\nlease_secs = 5\n\
         [tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
        files.ca, files.cert, files.key
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "agent", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    (Service(child), port)
}

async fn wait_healthy(pki: &DevPki, port: u16) {
    for _ in 0..500 {
        let ch = warden_rpc::connect(
            &format!("127.0.0.1:{port}"),
            &Security::Mtls(pki.files("agent")),
            Role::AgentService,
            Duration::from_secs(1),
        )
        .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
        if health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status == 1)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("agent on {port} never became healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_worker_is_killed_mid_step_is_finished_by_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::load_or_create(dir.path().join("pki")).unwrap();
    let sec = |name: &str| Security::Mtls(pki.files(name));
    let limits = Limits::default();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let any = "127.0.0.1:0".parse().unwrap();
    let (sl, storage_addr) = services::bind(any).await.unwrap();
    let (gl, gateway_addr) = services::bind(any).await.unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let kek = dir.path().join("keys/kek");
    let _storage = services::start_storage_with(
        sl,
        sec("storage"),
        limits,
        &format!("sqlite://{}", dir.path().join("data/warden.db").display()),
        &kek,
        services::AuditLogConfig::beside(&kek),
        None,
        rx.clone(),
    )
    .await
    .unwrap();
    // The model: a scripted Anthropic on the real wire, behind the real gateway.
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
    let adapter = warden_providers::Anthropic::new(cfg).unwrap();
    let gateway = services::gateway(
        &storage_addr.to_string(),
        &sec("gateway"),
        warden_gateway::Providers::with_local(Arc::new(adapter)),
    )
    .unwrap();
    let _gateway =
        services::start_gateway(gl, sec("gateway"), limits, gateway, rx.clone()).unwrap();
    let admin_ch = warden_rpc::connect(
        &gateway_addr.to_string(),
        &sec("admin"),
        Role::Gateway,
        Duration::from_secs(5),
    )
    .unwrap();
    let mut admin = AdminClient::new(admin_ch);
    let mut settings = None;
    for _ in 0..200 {
        let r = admin
            .set_tenant_settings(gw::SetTenantSettingsRequest {
                settings: Some(pb::TenantSettings {
                    tenant_id: "acme".into(),
                    enabled: true,
                    allowed_data_types: vec![pb::DataType::Logs as i32],
                    allowed_providers: vec!["local".into()],
                    ..Default::default()
                }),
                expected_version: 0,
            })
            .await;
        if let Ok(s) = r {
            settings = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(settings.is_some(), "the gateway never came up");

    let script = model.script(
        "failover-7",
        vec![
            Turn::tool("query_logs", json!({"limit": 1})),
            Turn::tool("query_logs", json!({"limit": 2})),
            Turn::tool("query_logs", json!({"limit": 3})).held(),
            Turn::answer(
                "{\"summary\": \"finished by the other replica\", \"confidence\": \"low\"}",
            ),
        ],
    );
    let (first, first_port) = agent(
        dir.path(),
        &pki,
        "agent-a",
        gateway_addr.port(),
        storage_addr.port(),
    );
    wait_healthy(&pki, first_port).await;
    let agent_ch = |port: u16| {
        AgentClient::new(
            warden_rpc::connect(
                &format!("127.0.0.1:{port}"),
                &sec("agent"),
                Role::AgentService,
                Duration::from_secs(5),
            )
            .unwrap(),
        )
    };
    let run = agent_ch(first_port)
        .submit_trigger(ag::SubmitTriggerRequest {
            tenant_id: "acme".into(),
            purpose: pb::Purpose::UserQuestion as i32,
            title: "why is checkout slow [failover-7]".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let log =
        |n: &str| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default();
    // Steps 1 and 2 are recorded; step 3's model call is in flight on replica A.
    let reached = tokio::time::timeout(Duration::from_secs(20), script.reached()).await;
    if reached.is_err() {
        let r = agent_ch(first_port)
            .get_run(ag::GetRunRequest {
                tenant_id: "acme".into(),
                run_id: run.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        panic!(
            "A never reached step 3: {} {:?}\n{}",
            r.status_reason,
            model.problems(),
            log("agent-a")
        );
    }
    assert_eq!(reached.unwrap(), 2);
    let (_second, second_port) = agent(
        dir.path(),
        &pki,
        "agent-b",
        gateway_addr.port(),
        storage_addr.port(),
    );
    wait_healthy(&pki, second_port).await;
    let held = agent_ch(second_port)
        .get_run(ag::GetRunRequest {
            tenant_id: "acme".into(),
            run_id: run.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let a_worker = held.sandbox.expect("A's worker is recorded").pid;
    assert!(alive(a_worker), "A's confined worker runs the step");
    drop(first); // SIGKILL
    // A's worker dies with its broker (parent-death signal), mid-step.
    let mut waited = 0;
    while alive(a_worker) && waited < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert!(
        !alive(a_worker),
        "A's worker outlived the killed agent service"
    );
    // B takes the run over once A's lease expires and asks for step 3 again.
    let reached = tokio::time::timeout(Duration::from_secs(20), script.reached()).await;
    assert_eq!(
        reached.unwrap_or_else(|_| panic!("B never resumed: {}", log("agent-b"))),
        2
    );
    script.release();
    let mut client = agent_ch(second_port);
    let mut done = None;
    for _ in 0..300 {
        let r = client
            .get_run(ag::GetRunRequest {
                tenant_id: "acme".into(),
                run_id: run.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.status != st::RunStatus::Running as i32 && r.status != st::RunStatus::Queued as i32 {
            done = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = done.expect("the run finished");
    assert_eq!(
        done.status,
        st::RunStatus::Succeeded as i32,
        "{}\n{}",
        done.status_reason,
        log("agent-b")
    );
    assert_eq!(done.attempts, 2, "two workers took it");
    let b_worker = done.sandbox.as_ref().expect("B's worker is recorded").pid;
    assert_ne!(b_worker, a_worker, "B ran the rest in a worker of its own");
    assert!(!alive(b_worker), "B's worker ended with the run");
    assert!(done.events.iter().any(|e| e.kind == "resumed"));
    assert_eq!(done.findings[0].summary, "finished by the other replica");
    // Positions 0 and 1 (recorded steps) reached the model once each; only the step that
    // was in flight when A died was asked again.
    let positions: Vec<usize> = script.calls().iter().map(|c| c.position).collect();
    assert_eq!(positions, [0, 1, 2, 2, 3], "{positions:?}");
    let steps: Vec<(u32, u32)> = done.tool_calls.iter().map(|c| (c.step, c.index)).collect();
    assert_eq!(
        steps,
        [(1, 0), (2, 0), (3, 0)],
        "one record per step and call"
    );
    assert!(model.problems().is_empty(), "{:?}", model.problems());
    drop(mock);
}
