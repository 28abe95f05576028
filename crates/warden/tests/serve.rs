//! `warden serve` as an operator runs it: `warden certs init`, then storage, gateway and
//! agent as three processes started from the shipped `config/*.toml` (only the ports
//! changed), talking mTLS. The opt-in walk goes through them, and an investigation runs
//! from a trigger on the agent through the gateway to the model and back to storage.

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
use std::time::Duration;

use tonic::Code;
use warden_proto::agent::v1 as ag;
use warden_proto::agent::v1::agent_client::AgentClient;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::admin_client::AdminClient;
use warden_proto::gateway::v1::gateway_client::GatewayClient;
use warden_proto::storage::v1 as st;
use warden_rpc::Security;
use warden_tls::{Role, TlsFiles};

/// The shipped config for `name`, with every `127.0.0.1:PORT` moved to a free port.
fn config(dir: &Path, name: &str, ports: &[(u16, u16)]) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../config/{name}.toml"));
    let mut text = std::fs::read_to_string(shipped).unwrap();
    for (from, to) in ports {
        // Quoted, so moving 4317 never rewrites the head of an already-moved 43175.
        text = text.replace(
            &format!("\"127.0.0.1:{from}\""),
            &format!("\"127.0.0.1:{to}\""),
        );
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(dir: &Path, service: &str, config: &Path) -> Service {
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(["serve", service, "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Service(child)
}

fn identity(dir: &Path, name: &str) -> Security {
    let pki = dir.join(".warden/pki");
    Security::Mtls(TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("{name}.pem")),
        key: pki.join(format!("{name}-key.pem")),
    })
}

/// Waits (bounded) until the service at `port` answers its health check over mTLS.
async fn wait_serving(dir: &Path, port: u16, service: Role) {
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..300 {
        let ch = warden_rpc::connect(
            &addr,
            &identity(dir, "agent"),
            service,
            Duration::from_secs(1),
        )
        .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
        let ok = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status == 1);
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service on {addr} never became healthy");
}

fn ask(tenant: &str) -> gw::CompleteRequest {
    gw::CompleteRequest {
        tenant_id: tenant.into(),
        purpose: pb::Purpose::Alert as i32,
        messages: vec![gw::Message {
            role: gw::Role::User as i32,
            parts: vec![gw::ContentPart {
                data_type: pb::DataType::Logs as i32,
                content: Some(gw::content_part::Content::Text(
                    "checkout ERROR payment timeout".into(),
                )),
            }],
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_from_the_shipped_configs_walk_opt_in() {
    tokio::time::timeout(Duration::from_secs(120), walk())
        .await
        .expect("the walk finished in time");
}

async fn walk() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let init = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(["certs", "init"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");

    let (g, s, a) = (free_port(), free_port(), free_port());
    let ports = [
        (7443, g),
        (7444, s),
        (7445, a),
        (9465, free_port()),
        (9466, free_port()),
        (9467, free_port()),
        (4317, free_port()),
        (4318, free_port()),
        (7446, free_port()),
    ];
    let _storage = serve(dir, "storage", &config(dir, "storage", &ports));
    wait_serving(dir, s, Role::Storage).await;
    let _gateway = serve(dir, "gateway", &config(dir, "gateway", &ports));
    let _agent = serve(dir, "agent", &config(dir, "agent", &ports));
    wait_serving(dir, g, Role::Gateway).await;
    wait_serving(dir, a, Role::AgentService).await;

    let channel = |name: &str, port: u16, service: Role| {
        warden_rpc::connect(
            &format!("127.0.0.1:{port}"),
            &identity(dir, name),
            service,
            Duration::from_secs(3),
        )
        .unwrap()
    };
    let mut gateway = GatewayClient::new(channel("agent", g, Role::Gateway));
    let mut admin = AdminClient::new(channel("admin", g, Role::Gateway));

    // Unknown tenant: refused, with a reason a person understands.
    let err = gateway.complete(ask("acme")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains("AI features are not enabled for tenant acme"),
        "{err:?}"
    );

    // Enable through Admin: the call succeeds through the tenant's provider, with an audit id.
    let settings = pb::TenantSettings {
        tenant_id: "acme".into(),
        enabled: true,
        allowed_data_types: vec![pb::DataType::Logs as i32],
        allowed_providers: vec!["local".into()],
        ..Default::default()
    };
    admin
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(settings.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ok = gateway.complete(ask("acme")).await.unwrap().into_inner();
    assert_eq!(ok.provider, "local");
    assert!(!ok.audit_record_id.is_empty());

    // A trigger on the agent process runs an investigation through the gateway process.
    let mut agent = AgentClient::new(channel("agent", a, Role::AgentService));
    let run = agent
        .submit_trigger(ag::SubmitTriggerRequest {
            tenant_id: "acme".into(),
            purpose: pb::Purpose::Alert as i32,
            title: "checkout errors".into(),
            service: "checkout".into(),
            fingerprint: "alert-serve-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let mut finished = None;
    for _ in 0..200 {
        let r = agent
            .get_run(ag::GetRunRequest {
                tenant_id: "acme".into(),
                run_id: run.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.status == st::RunStatus::Succeeded as i32 {
            finished = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = finished.expect("the run succeeded");
    assert!(!finished.findings.is_empty(), "{finished:?}");

    // Disable: the very next call is refused.
    admin
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(pb::TenantSettings {
                enabled: false,
                ..settings
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = gateway.complete(ask("acme")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}
