//! Settings that can never be stale: a change made while a gateway's watch is down never
//! enters its cache, a SYNC starts a fresh cache, and with several storage replicas on one
//! PostgreSQL database a change through one reaches the gateways of every other within a
//! second (LISTEN/NOTIFY), with a lost listener connection resynchronising the watchers.
//! Customer-owned Bedrock: the external id is storage's, shown to admins, never a client's.
//! PostgreSQL over TLS: `sslmode=verify-full` with the dev CA works, another CA fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use tonic::Code;
use warden_gateway::Gateway;
use warden_integration_tests::mocks::{self, Mocks, Tuning};
use warden_integration_tests::{Cluster, Options, enabled_tenant, logs_request};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::admin_client::AdminClient;
use warden_proto::gateway::v1::gateway_client::GatewayClient;

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took over 60 s");
}

fn gateway2(c: &Cluster) -> GatewayClient<tonic::transport::Channel> {
    GatewayClient::new(c.channel("agent", c.gateway2_addr.unwrap()))
}

fn admin2(c: &Cluster) -> AdminClient<tonic::transport::Channel> {
    AdminClient::new(c.channel("admin", c.gateway2_addr.unwrap()))
}

async fn set_via(admin: &mut AdminClient<tonic::transport::Channel>, s: pb::TenantSettings) {
    admin
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(s),
            expected_version: 0,
        })
        .await
        .unwrap();
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// Refused as a disabled tenant: FAILED_PRECONDITION and nothing reached the provider.
async fn assert_refused(c: &Cluster, g: &mut GatewayClient<tonic::transport::Channel>) {
    let before = c.local.requests().len();
    let err = g
        .complete(logs_request("acme", "checkout ERROR timeout"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        c.local.requests().len(),
        before,
        "a disabled tenant's call left"
    );
}

#[tokio::test]
async fn a_change_made_while_the_watch_was_down_never_serves_a_stale_enabled() {
    bounded(async {
        let c = Cluster::start_with(Options {
            second_gateway: true,
            ..Options::default()
        })
        .await;
        let a: &Gateway = &c.gateway_service;
        c.set_tenant(enabled_tenant("acme")).await;
        let mut ga = c.gateway("agent");
        ga.complete(logs_request("acme", "warm the cache"))
            .await
            .unwrap();

        // Break A's watch; A goes dark (reads storage directly).
        let syncs = a.tenants().syncs();
        a.tenants().suspend_watch(true);
        wait_until("A's watch going down", || !a.tenants().is_live()).await;

        // A change through A while its watch is down (still enabled)...
        set_via(
            &mut c.admin("admin"),
            pb::TenantSettings {
                pseudonymize: true,
                ..enabled_tenant("acme")
            },
        )
        .await;
        // ...then a disable through B, which A's watch never sees (it is down).
        set_via(
            &mut admin2(&c),
            pb::TenantSettings {
                enabled: false,
                ..enabled_tenant("acme")
            },
        )
        .await;

        // A's watch returns: a fresh SYNC, and A must not serve its own older "enabled".
        a.tenants().suspend_watch(false);
        wait_until("A's watch coming back", || {
            a.tenants().is_live() && a.tenants().syncs() > syncs
        })
        .await;
        assert_refused(&c, &mut ga).await;
        // And again, now that A has cached what it read after the SYNC.
        assert_refused(&c, &mut ga).await;
        assert_refused(&c, &mut gateway2(&c)).await;
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn while_the_watch_is_down_every_call_reads_storage() {
    bounded(async {
        let c = Cluster::start_with(Options {
            second_gateway: true,
            ..Options::default()
        })
        .await;
        let a = &c.gateway_service;
        c.set_tenant(enabled_tenant("acme")).await;
        let mut ga = c.gateway("agent");
        ga.complete(logs_request("acme", "warm the cache"))
            .await
            .unwrap();
        a.tenants().suspend_watch(true);
        wait_until("A's watch going down", || !a.tenants().is_live()).await;
        // A disable A's watch cannot see is still honoured: A reads storage directly.
        set_via(
            &mut admin2(&c),
            pb::TenantSettings {
                enabled: false,
                ..enabled_tenant("acme")
            },
        )
        .await;
        assert_refused(&c, &mut ga).await;
        a.tenants().suspend_watch(false);
        c.stop().await;
    })
    .await;
}

// --- Several storage replicas on one PostgreSQL database -----------------------------

/// A fresh schema on the test PostgreSQL server; under `CI=true` its absence fails.
async fn postgres() -> Option<String> {
    let url = warden_integration_tests::fresh_postgres_schema().await;
    if url.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but no PostgreSQL server answers: the replica tests cannot run");
    }
    url
}

/// The schema a [`postgres`] URL points its connections at.
fn schema_of(url: &str) -> String {
    url.rsplit("search_path%3D").next().unwrap().to_owned()
}

async fn two_replicas(url: &str) -> Cluster {
    Cluster::start_with(Options {
        database_url: Some(url.to_owned()),
        second_storage: true,
        ..Options::default()
    })
    .await
}

/// Polls gateway 2 until it refuses the tenant; returns how long that took.
async fn time_until_refused(c: &Cluster) -> Duration {
    let mut g2 = gateway2(c);
    let started = Instant::now();
    loop {
        match g2.complete(logs_request("acme", "still on?")).await {
            Err(e) if e.code() == Code::FailedPrecondition => return started.elapsed(),
            Err(e) => panic!("unexpected refusal: {e:?}"),
            Ok(_) if started.elapsed() > Duration::from_secs(10) => {
                panic!("gateway 2 still serves the disabled tenant after 10 s")
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::test]
async fn a_disable_through_one_storage_replica_reaches_a_gateway_on_another_within_one_second() {
    let Some(url) = postgres().await else { return };
    bounded(async {
        let c = two_replicas(&url).await;
        assert_ne!(c.storage2_addr, Some(c.storage_addr));
        c.set_tenant(enabled_tenant("acme")).await;
        // Gateway 2 (on replica 2) serves, and caches "enabled" while its watch is live.
        let g2 = c.gateway2_service.clone().unwrap();
        assert!(g2.tenants().is_live());
        gateway2(&c)
            .complete(logs_request("acme", "warm the cache"))
            .await
            .unwrap();
        gateway2(&c)
            .complete(logs_request("acme", "from the cache"))
            .await
            .unwrap();

        // Disable through gateway 1, which writes through replica 1.
        c.set_tenant(pb::TenantSettings {
            enabled: false,
            ..enabled_tenant("acme")
        })
        .await;
        let took = time_until_refused(&c).await;
        eprintln!("replica-to-replica opt-out reached gateway 2 after {took:?}");
        assert!(
            took < Duration::from_secs(1),
            "the disable took {took:?} to reach a gateway on another replica"
        );
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_lost_listener_connection_resynchronises_the_watchers_of_that_replica() {
    let Some(url) = postgres().await else { return };
    bounded(async {
        let c = two_replicas(&url).await;
        c.set_tenant(enabled_tenant("acme")).await;
        let g2 = c.gateway2_service.clone().unwrap();
        gateway2(&c)
            .complete(logs_request("acme", "warm the cache"))
            .await
            .unwrap();
        let syncs = g2.tenants().syncs();

        // Kill both replicas' LISTEN connections (notifications sent meanwhile are lost).
        sqlx::any::install_default_drivers();
        let admin_pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(format!("warden-listener:{}", schema_of(&url)))
        .fetch_one(&admin_pool)
        .await
        .unwrap();
        assert_eq!(killed, 2, "one listener per replica");

        // Gateway 2's watch was ended and began again with a fresh SYNC (empty cache).
        wait_until("gateway 2 resynchronising", || {
            g2.tenants().syncs() > syncs && g2.tenants().is_live()
        })
        .await;
        // The listeners are back: a disable through replica 1 again reaches gateway 2 fast.
        c.set_tenant(pb::TenantSettings {
            enabled: false,
            ..enabled_tenant("acme")
        })
        .await;
        let took = time_until_refused(&c).await;
        assert!(took < Duration::from_secs(1), "{took:?}");
        admin_pool.close().await;
        c.stop().await;
    })
    .await;
}

// --- Customer-owned Bedrock: the external id is storage's ---------------------------

fn customer_role(tenant: &str, external_id: &str) -> pb::TenantSettings {
    pb::TenantSettings {
        tenant_id: tenant.into(),
        enabled: true,
        allowed_data_types: vec![pb::DataType::Logs as i32],
        allowed_providers: vec!["bedrock-customer".into()],
        customer_bedrock: Some(pb::CustomerBedrock {
            region: "eu-central-1".into(),
            credentials: Some(pb::customer_bedrock::Credentials::AssumeRole(
                pb::AssumeRole {
                    role_arn: mocks::ROLE_ARN.into(),
                    external_id: external_id.into(),
                },
            )),
        }),
        ..Default::default()
    }
}

async fn shown_external_id(c: &Cluster, tenant: &str) -> (String, u64) {
    let s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: tenant.into(),
        })
        .await
        .unwrap()
        .into_inner();
    match s.customer_bedrock.and_then(|cb| cb.credentials) {
        Some(pb::customer_bedrock::Credentials::AssumeRole(a)) => (a.external_id, s.version),
        other => panic!("{other:?}"),
    }
}

fn sent_external_ids(m: &Mocks) -> Vec<String> {
    m.sts
        .requests()
        .iter()
        .map(|r| {
            warden_testkit::sts::form_fields(r)
                .into_iter()
                .find(|(k, _)| k == "ExternalId")
                .map(|(_, v)| v)
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn the_gateway_sends_sts_only_the_external_id_storage_generated() {
    bounded(async {
        let m = Mocks::start().await;
        let c = Cluster::start_with(Options {
            providers: Some(m.providers_file(&Tuning::default(), None)),
            ..Options::default()
        })
        .await;
        let mut admin = c.admin("admin");

        // A client cannot choose the id: refused, not echoed, nothing stored or sent.
        let err = admin
            .set_tenant_settings(gw::SetTenantSettingsRequest {
                settings: Some(customer_role("acme", mocks::EXTERNAL_ID)),
                expected_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            !err.message().contains(mocks::EXTERNAL_ID),
            "{}",
            err.message()
        );
        assert!(err.message().contains("external_id"), "{}", err.message());
        assert_eq!(shown_external_id_or_none(&c, "acme").await, None);

        // Left empty: storage generates one, and Admin.GetTenantSettings shows it.
        c.set_tenant(customer_role("acme", "")).await;
        let (id, v1) = shown_external_id(&c, "acme").await;
        assert!(id.starts_with("warden-") && id.len() == 39, "{id}");
        // Stable across later updates (empty, or the shown value sent back).
        c.set_tenant(pb::TenantSettings {
            pseudonymize: true,
            ..customer_role("acme", "")
        })
        .await;
        c.set_tenant(customer_role("acme", &id)).await;
        let (again, v3) = shown_external_id(&c, "acme").await;
        assert_eq!((again.as_str(), v3), (id.as_str(), v1 + 2));

        // Before the customer's trust policy names it, STS refuses; after, it accepts.
        let err = c
            .gateway("agent")
            .complete(logs_request("acme", "checkout ERROR"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(m.bedrock.calls(), 0);
        m.sts_trust.set(id.clone());
        let ok = c
            .gateway("agent")
            .complete(logs_request("acme", "checkout ERROR"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.provider, "bedrock-customer");
        // Every AssumeRole carried exactly the stored id.
        let sent = sent_external_ids(&m);
        assert!(!sent.is_empty());
        assert!(sent.iter().all(|s| *s == id), "{sent:?}");

        // Another tenant on the same role gets its own id and cannot present acme's.
        let err = admin
            .set_tenant_settings(gw::SetTenantSettingsRequest {
                settings: Some(customer_role("globex", &id)),
                expected_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        c.set_tenant(customer_role("globex", "")).await;
        let (globex, _) = shown_external_id(&c, "globex").await;
        assert_ne!(globex, id);
        // acme's trust policy does not name globex's id: globex is refused by STS, and
        // nothing reached Bedrock in acme's account on globex's behalf.
        let bedrock_before = m.bedrock.calls();
        let err = c
            .gateway("agent")
            .complete(logs_request("globex", "checkout ERROR"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(m.bedrock.calls(), bedrock_before);
        assert_eq!(sent_external_ids(&m).last(), Some(&globex));
        c.stop().await;
    })
    .await;
}

async fn shown_external_id_or_none(c: &Cluster, tenant: &str) -> Option<String> {
    let s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: tenant.into(),
        })
        .await
        .unwrap()
        .into_inner();
    match s.customer_bedrock.and_then(|cb| cb.credentials) {
        Some(pb::customer_bedrock::Credentials::AssumeRole(a)) => Some(a.external_id),
        _ => None,
    }
}

// --- PostgreSQL over TLS (sslmode=verify-full) ---------------------------------------

/// The CA of the local PostgreSQL server's certificate (`scripts/pg-tls`, run by `.ci/run`).
fn pg_ca() -> Option<std::path::PathBuf> {
    match std::env::var("WARDEN_TEST_PG_CA") {
        Ok(p) if std::path::Path::new(&p).is_file() => Some(p.into()),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but WARDEN_TEST_PG_CA names no CA file: run scripts/pg-tls (as .ci/run does) so PostgreSQL serves TLS"
        ),
        _ => {
            eprintln!(
                "SKIPPED: set WARDEN_TEST_PG_CA (see scripts/pg-tls) to test PostgreSQL over TLS"
            );
            None
        }
    }
}

fn verify_full(url: &str, ca: &std::path::Path) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=verify-full&sslrootcert={}", ca.display())
}

#[tokio::test]
async fn storage_reaches_postgres_over_tls_with_verify_full_and_refuses_another_ca() {
    let Some(ca) = pg_ca() else { return };
    let Some(plain) = postgres().await else {
        return;
    };
    bounded(async {
        let url = verify_full(&plain, &ca);
        // The whole service over TLS: two replicas (pools and LISTEN connections), a change
        // through one reaching the other's gateway, a call served.
        let c = two_replicas(&url).await;
        c.set_tenant(enabled_tenant("acme")).await;
        gateway2(&c)
            .complete(logs_request("acme", "over tls"))
            .await
            .unwrap();
        c.set_tenant(pb::TenantSettings {
            enabled: false,
            ..enabled_tenant("acme")
        })
        .await;
        assert!(time_until_refused(&c).await < Duration::from_secs(1));

        // The connections really are encrypted, the listeners' included.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let own: bool = sqlx::query_scalar(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(own, "a verify-full connection without TLS");
        let listeners: Vec<bool> = sqlx::query_scalar(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
        )
        .bind(format!("warden-listener:{}", schema_of(&plain)))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(listeners, vec![true, true]);
        pool.close().await;
        c.stop().await;

        // A server certificate from another CA is refused: no connection at all.
        let other = tempfile::tempdir().unwrap();
        let foreign = warden_tls::DevPki::load_or_create(other.path().join("pki")).unwrap();
        let err = warden_storage::Db::connect(&verify_full(&plain, &foreign.ca_cert_path()))
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").to_lowercase().contains("certificate"),
            "{err:?}"
        );
    })
    .await;
}

// --- No secret in a reload diagnostic --------------------------------------------------

#[tokio::test]
async fn a_key_pasted_into_api_key_env_is_not_in_the_reload_diagnostic() {
    bounded(async {
        let m = Mocks::start().await;
        let c = Cluster::start_with(Options {
            providers: Some(m.providers_file(&Tuning::default(), Some(Duration::from_millis(50)))),
            ..Options::default()
        })
        .await;
        let mut reloads = c.reloads.clone().unwrap();
        // The operator pastes the key itself where the variable's name belongs.
        let bad = m.routing_config(&Tuning::default()).replace(
            "api_key_env = \"E2E_ANTHROPIC_KEY\"",
            &format!("api_key_env = \"{}\"", mocks::ANTHROPIC_KEY),
        );
        assert!(bad.contains(mocks::ANTHROPIC_KEY));
        m.write_config(&bad);
        reloads.wait_for(|r| r.rejected == 1).await.unwrap();
        let why = reloads.borrow().last_error.clone().unwrap();
        assert!(why.contains("api_key_env"), "{why}");
        assert!(why.contains("not shown"), "{why}");
        assert!(
            !why.contains(mocks::ANTHROPIC_KEY),
            "the key is in the diagnostic: {why}"
        );
        c.stop().await;
    })
    .await;
}

/// A Prometheus source is checked when an admin sets it: a bad URL or CA is refused with the
/// field named (never echoing a password put in the URL), and nothing is stored or audited.
#[tokio::test]
async fn a_bad_prometheus_source_is_refused_when_set_and_changes_nothing() {
    bounded(async {
        let c = Cluster::start().await;
        let saved = c.set_tenant(enabled_tenant("acme")).await;
        let audited = c.audit_records("acme").await.len();
        let with = |url: &str, ca_pem: &str| {
            let mut s = enabled_tenant("acme");
            s.prometheus = Some(pb::PrometheusSource {
                url: url.into(),
                ca_pem: ca_pem.into(),
                credentials_id: String::new(),
            });
            s
        };
        for (settings, why) in [
            (
                with("http://prometheus.example:9090", ""),
                "prometheus.url must be https://",
            ),
            (
                with("https://alice:hunter2@prometheus.example", ""),
                "prometheus.url must not contain a user or password",
            ),
            (
                with("https://prometheus.example", "not a certificate"),
                "prometheus.ca_pem holds no certificate",
            ),
        ] {
            let err = c
                .admin("admin")
                .set_tenant_settings(gw::SetTenantSettingsRequest {
                    settings: Some(settings),
                    expected_version: 0,
                })
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(err.message().starts_with(why), "{}", err.message());
            assert!(!err.message().contains("hunter2"), "{}", err.message());
        }
        let now = c
            .admin("admin")
            .get_tenant_settings(gw::GetTenantSettingsRequest {
                tenant_id: "acme".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.version, saved.version);
        assert!(now.prometheus.is_none());
        assert_eq!(c.audit_records("acme").await.len(), audited);

        // A good one is kept.
        let kept = c
            .set_tenant(with("https://prometheus.example:9090", ""))
            .await;
        assert_eq!(
            kept.prometheus.unwrap().url,
            "https://prometheus.example:9090"
        );
        c.stop().await;
    })
    .await;
}
