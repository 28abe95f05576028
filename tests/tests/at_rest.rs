//! Sealing at rest with envelope encryption: every tenant's values under its own data
//! key, data keys wrapped by a key-encryption key kept apart from the data, and storage
//! refusing to start, loudly, when that key is missing, wrong, exposed or misplaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use warden::services;
use warden_integration_tests::{Cluster, enabled_tenant};
use warden_proto::gateway::v1 as gw;
use warden_rpc::{Limits, Security};

/// Starts storage on `db_url` with `key_file`; the error text if it refuses.
async fn start(db_url: &str, key_file: &Path, pki: &warden_tls::DevPki) -> Result<(), String> {
    let (listener, _) = services::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (stop, rx) = watch::channel(false);
    let task = services::start_storage(
        listener,
        Security::Mtls(pki.files("storage")),
        Limits {
            shutdown_deadline: Duration::from_secs(1),
            ..Limits::default()
        },
        db_url,
        key_file,
        rx,
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    Ok(())
}

async fn put_credentials(c: &Cluster, tenant: &str, secret: &str) {
    c.admin("admin")
        .put_customer_credentials(gw::PutCustomerCredentialsRequest {
            tenant_id: tenant.into(),
            access_key_id: "AKIDEXAMPLEATREST01".into(),
            secret_access_key: secret.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_is_sealed_under_its_own_data_key_wrapped_by_the_kek() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.set_tenant(enabled_tenant("beta")).await;
    put_credentials(&c, "acme", "acme-secret-value-123").await;
    put_credentials(&c, "beta", "beta-secret-value-456").await;
    put_credentials(&c, "acme", "acme-secret-value-789").await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&c.db_url).await.unwrap();
    let keys: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, tenant_id, kek_id, wrapped FROM data_keys WHERE active = 1 AND tenant_id NOT LIKE '%/audit' ORDER BY tenant_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(keys.len(), 2, "one active data key per tenant: {keys:?}");
    // Audit records have keys of their own (re-encrypting them would break their hashes).
    let audit_keys: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE tenant_id LIKE '%/audit'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audit_keys, 2);
    assert_eq!((keys[0].1.as_str(), keys[1].1.as_str()), ("acme", "beta"));
    assert_ne!(keys[0].0, keys[1].0);
    let kek = warden_storage::FileKeyProvider::load(&c.dir.path().join("keys/kek")).unwrap();
    assert_eq!(
        kek.kek_ids(),
        vec![keys[0].2.clone()],
        "wrapped by the key file's KEK"
    );
    let sealed: Vec<(String, String)> =
        sqlx::query_as("SELECT tenant_id, sealed FROM customer_credentials ORDER BY tenant_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (tenant, value) in &sealed {
        assert!(!value.contains("secret-value"), "{value}");
        let key = if tenant == "acme" {
            &keys[0].0
        } else {
            &keys[1].0
        };
        assert!(
            value.starts_with(&format!("w2.{key}.")),
            "a sealed value names its tenant's data key: {value}"
        );
    }
    pool.close().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_refuses_to_start_without_the_right_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = warden_tls::DevPki::load_or_create(dir.path().join("pki")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("data/warden.db").display());
    let key = dir.path().join("keys/kek");

    // Inside the data directory: refused before anything is created.
    let inside = dir.path().join("data/kek");
    let err = start(&db_url, &inside, &pki).await.unwrap_err();
    assert!(err.contains("inside the data directory"), "{err}");
    assert!(!inside.exists());

    // First run: the key file is created, 0600; data keys get wrapped under it.
    start(&db_url, &key, &pki).await.unwrap();
    {
        let c_db = warden_storage::Db::connect(&db_url).await.unwrap();
        let s = warden_storage::Storage::open(
            c_db,
            std::sync::Arc::new(warden_storage::FileKeyProvider::load(&key).unwrap()),
        )
        .await
        .unwrap();
        // Through the real handler, as the gateway would call it.
        use warden_proto::storage::v1::tenant_store_server::TenantStore;
        let mut req =
            tonic::Request::new(warden_proto::storage::v1::PutCustomerCredentialsRequest {
                tenant_id: "acme".into(),
                access_key_id: "AKIDEXAMPLEATREST01".into(),
                secret_access_key: "s3cret".into(),
                ..Default::default()
            });
        req.extensions_mut().insert(warden_tls::Caller {
            role: warden_tls::Role::Gateway,
            name: "gateway".into(),
            scope: warden_tls::Scope::Platform,
            insecure_dev: false,
        });
        TenantStore::put_customer_credentials(&s, req)
            .await
            .unwrap();
    }
    let kek_id = warden_storage::FileKeyProvider::load(&key)
        .unwrap()
        .kek_ids()[0]
        .clone();

    // Others can read it: refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = start(&db_url, &key, &pki).await.unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // Missing while the database holds data keys: refused, naming the KEK, and no fresh
    // key is made over the data.
    let moved = dir.path().join("kek.bak");
    std::fs::rename(&key, &moved).unwrap();
    let err = start(&db_url, &key, &pki).await.unwrap_err();
    assert!(err.contains("missing") && err.contains(&kek_id), "{err}");
    assert!(!key.exists(), "no fresh key over existing data");

    // Another key file (another KEK): refused, naming the KEK it needs.
    warden_storage::FileKeyProvider::create(&key).unwrap();
    let err = start(&db_url, &key, &pki).await.unwrap_err();
    assert!(err.contains(&kek_id), "{err}");

    // The right one again: starts.
    std::fs::remove_file(&key).unwrap();
    std::fs::rename(&moved, &key).unwrap();
    start(&db_url, &key, &pki).await.unwrap();
}

/// Every file SQLite keeps for the database: the database, its WAL and shared memory.
fn raw_files(db_url: &str) -> Vec<u8> {
    let path = db_url.trim_start_matches("sqlite://");
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    memchr::memmem::find(haystack, needle.as_bytes()).is_some()
}

/// A full walk for tenant acme (settings with a customer role, credentials, telemetry, a
/// run with a finding, a proposal); returns the plaintexts that must never be stored.
async fn walk(c: &Cluster) -> Vec<String> {
    use warden_proto::agent::v1 as ag;
    use warden_proto::common::v1 as pb;
    use warden_proto::storage::v1 as st;
    const ROLE: &str = "arn:aws:iam::123456789012:role/warden-at-rest-probe";
    const SECRET: &str = "wJalrXUtnFEMI-at-rest-probe-secret";
    const LOG: &str = "checkout ERROR payment-gateway-at-rest-probe timeout";
    const TITLE: &str = "at-rest-probe alert title";
    const PROPOSAL: &str = "at-rest-probe proposal: raise the timeout";
    let saved = c
        .set_tenant(pb::TenantSettings {
            customer_bedrock: Some(pb::CustomerBedrock {
                region: "eu-central-1".into(),
                credentials: Some(pb::customer_bedrock::Credentials::AssumeRole(
                    pb::AssumeRole {
                        role_arn: ROLE.into(),
                        external_id: String::new(),
                    },
                )),
            }),
            allow_platform_providers: true,
            ..enabled_tenant("acme")
        })
        .await;
    let external_id = match saved.customer_bedrock.and_then(|cb| cb.credentials) {
        Some(pb::customer_bedrock::Credentials::AssumeRole(a)) => a.external_id,
        other => panic!("no role: {other:?}"),
    };
    assert!(!external_id.is_empty());
    put_credentials(c, "acme", SECRET).await;
    c.issue(warden_tls::Role::Ingest, "otel-acme", &["acme"]);
    c.ingest_logs("otel-acme", "checkout", &[LOG]).await;
    let run = c
        .agent("agent")
        .submit_trigger(ag::SubmitTriggerRequest {
            tenant_id: "acme".into(),
            purpose: pb::Purpose::Alert as i32,
            title: TITLE.into(),
            service: "checkout".into(),
            fingerprint: "at-rest-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let finished = c.wait_run("acme", &run.id).await;
    let finding = finished
        .findings
        .first()
        .unwrap_or_else(|| panic!("no finding: {finished:?}"))
        .summary
        .clone();
    assert!(
        finding.contains("payment-gateway-at-rest-probe"),
        "{finding}"
    );
    c.proposal_store()
        .create_proposal(st::CreateProposalRequest {
            tenant_id: "acme".into(),
            run_id: run.id.clone(),
            content: Some(st::ProposalContent {
                rationale: PROPOSAL.into(),
                ..warden_integration_tests::proposals::config_change(PROPOSAL)
            }),
        })
        .await
        .unwrap();
    // Everything reads back in the clear through the APIs...
    let s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(format!("{s:?}").contains(ROLE));
    [
        ROLE,
        external_id.as_str(),
        SECRET,
        LOG,
        TITLE,
        PROPOSAL,
        "payment-gateway-at-rest-probe",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_customer_plaintext_is_in_the_raw_sqlite_files() {
    let c = Cluster::start().await;
    let probes = walk(&c).await;
    // None of it is in the database files, while running and after a stop.
    let running = raw_files(&c.db_url);
    assert!(running.len() > 4096);
    for p in &probes {
        assert!(!contains(&running, p), "{p:?} is in the raw database files");
    }
    let url = c.db_url.clone();
    c.stop().await;
    let stopped = raw_files(&url);
    for p in &probes {
        assert!(
            !contains(&stopped, p),
            "{p:?} is in the raw database files after a stop"
        );
    }
}

fn keys_client(
    c: &Cluster,
) -> warden_proto::storage::v1::keys_client::KeysClient<tonic::transport::Channel> {
    warden_proto::storage::v1::keys_client::KeysClient::new(c.channel("admin", c.storage_addr))
}

/// `n` log lines for `tenant`, sent over OTLP/gRPC with an ingest identity of the tenant.
async fn ingest(c: &Cluster, tenant: &str, n: usize) {
    let name = format!("otel-{tenant}");
    if !c.pki.files(&name).cert.exists() {
        c.issue(warden_tls::Role::Ingest, &name, &[tenant]);
    }
    let lines: Vec<String> = (0..n)
        .map(|i| format!("{tenant} line {i} ERROR payment timeout"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    c.ingest_logs(&name, "checkout", &lines).await;
}

/// From a day ago to a minute ahead.
fn last_day() -> warden_proto::telemetry::v1::Window {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    warden_proto::telemetry::v1::Window {
        since: Some(at(now - 86_400)),
        until: Some(at(now + 60)),
    }
}

/// The tenant's log bodies, as the agent service reads them.
async fn logs(c: &Cluster, tenant: &str) -> Result<Vec<String>, tonic::Status> {
    use warden_proto::telemetry::v1 as tm;
    Ok(tm::telemetry_query_client::TelemetryQueryClient::new(
        c.channel("agent-service", c.storage_addr),
    )
    .query_logs(tm::QueryLogsRequest {
        tenant_id: tenant.into(),
        window: Some(last_day()),
        limit: 1000,
        ..Default::default()
    })
    .await?
    .into_inner()
    .records
    .into_iter()
    .map(|r| r.body)
    .collect())
}

async fn audit_reasons(c: &Cluster, tenant: &str) -> Vec<String> {
    c.audit_records(tenant)
        .await
        .into_iter()
        .map(|r| r.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_a_tenant_key_under_load_loses_no_request_and_keeps_every_value_readable() {
    let c = std::sync::Arc::new(Cluster::start().await);
    c.set_tenant(enabled_tenant("acme")).await;
    put_credentials(&c, "acme", "acme-secret-before-rotation").await;
    ingest(&c, "acme", 600).await;
    let old: String = {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&c.db_url).await.unwrap();
        let id = sqlx::query_scalar("SELECT id FROM data_keys WHERE tenant_id = 'acme'")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        id
    };
    // Steady load: reads and writes of the tenant's sealed values, none may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ok = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let s = c
                    .admin("admin")
                    .get_tenant_settings(gw::GetTenantSettingsRequest {
                        tenant_id: "acme".into(),
                    })
                    .await
                    .expect("settings stay readable during the rotation");
                assert!(s.into_inner().enabled);
                assert_eq!(
                    logs(&c, "acme")
                        .await
                        .expect("telemetry stays readable")
                        .len(),
                    600
                );
                put_credentials(&c, "acme", "acme-secret-during-rotation").await;
                ok += 1;
            }
            ok
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut progress = keys_client(&c)
        .rotate_tenant_key(warden_proto::storage::v1::RotateTenantKeyRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    let mut updates = 0;
    while let Some(p) = progress.message().await.unwrap() {
        updates += 1;
        last = Some(p);
    }
    let last = last.unwrap();
    assert!(last.finished && last.done >= 602, "{last:?}");
    assert!(
        updates > 2,
        "progress was reported along the way ({updates} updates)"
    );
    // A new key-encryption key under the same load: every data key re-wrapped.
    let new_kek = warden_storage::FileKeyProvider::rotate(&c.dir.path().join("keys/kek")).unwrap();
    let r = keys_client(&c)
        .rotate_key_encryption_key(warden_proto::storage::v1::RotateKeyEncryptionKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.kek_id, new_kek);
    assert!(r.data_keys_rewrapped >= 2, "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = load.await.unwrap();
    assert!(rounds > 0);
    // The old key is gone, nothing is sealed under it, everything opens under the new one.
    assert_eq!(
        c.db_count(&format!(
            "SELECT COUNT(*) FROM data_keys WHERE id = '{old}'"
        ))
        .await,
        0
    );
    assert_eq!(
        c.db_count(&format!(
            "SELECT COUNT(*) FROM log_records WHERE sealed LIKE 'w2.{old}.%'"
        ))
        .await,
        0
    );
    assert_eq!(
        c.db_count(&format!(
            "SELECT COUNT(*) FROM customer_credentials WHERE sealed LIKE 'w2.{}.%'",
            last.new_key_id
        ))
        .await,
        c.db_count("SELECT COUNT(*) FROM customer_credentials")
            .await
    );
    assert_eq!(logs(&c, "acme").await.unwrap().len(), 600);
    assert_eq!(
        c.db_count(&format!(
            "SELECT COUNT(*) FROM data_keys WHERE kek_id <> '{new_kek}'"
        ))
        .await,
        0
    );
    assert!(
        audit_reasons(&c, "acme")
            .await
            .contains(&"TENANT_KEY_ROTATED".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kek_rewraps_every_data_key_and_values_stay_readable() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.set_tenant(enabled_tenant("beta")).await;
    ingest(&c, "acme", 5).await;
    ingest(&c, "beta", 5).await;
    let key_file = c.dir.path().join("keys/kek");
    let new = warden_storage::FileKeyProvider::rotate(&key_file).unwrap();
    let r = keys_client(&c)
        .rotate_key_encryption_key(warden_proto::storage::v1::RotateKeyEncryptionKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.kek_id, new);
    assert_eq!(
        r.data_keys_rewrapped, 4,
        "each tenant's data and audit keys"
    );
    assert_eq!(
        c.db_count(&format!(
            "SELECT COUNT(*) FROM data_keys WHERE kek_id <> '{new}'"
        ))
        .await,
        0
    );
    assert_eq!(logs(&c, "acme").await.unwrap().len(), 5);
    assert_eq!(logs(&c, "beta").await.unwrap().len(), 5);
    for t in ["acme", "beta"] {
        assert!(
            audit_reasons(&c, t)
                .await
                .contains(&"DATA_KEYS_REWRAPPED".to_owned())
        );
    }
    // Only a platform-wide admin may rotate.
    let err = warden_proto::storage::v1::keys_client::KeysClient::new(
        c.channel("agent-service", c.storage_addr),
    )
    .rotate_key_encryption_key(warden_proto::storage::v1::RotateKeyEncryptionKeyRequest {})
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_a_tenant_makes_its_data_unreadable_and_the_log_still_verifies() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.set_tenant(enabled_tenant("beta")).await;
    ingest(&c, "acme", 5).await;
    ingest(&c, "beta", 5).await;
    c.gateway("agent")
        .complete(warden_integration_tests::logs_request(
            "acme",
            "checkout ERROR",
        ))
        .await
        .unwrap();
    let r = keys_client(&c)
        .shred_tenant(warden_proto::storage::v1::ShredTenantRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.data_keys_destroyed, 2, "the tenant's data and audit keys");
    // Its signal rows go with its keys (they could not be opened any more).
    assert_eq!(logs(&c, "acme").await.unwrap(), Vec::<String>::new());
    assert_eq!(
        c.db_count("SELECT COUNT(*) FROM log_records WHERE tenant_id = 'acme'")
            .await,
        0
    );
    assert_eq!(
        logs(&c, "beta").await.unwrap().len(),
        5,
        "other tenants untouched"
    );
    // AI is off for the shredded tenant, at once.
    let err = c
        .gateway("agent")
        .complete(warden_integration_tests::logs_request(
            "acme",
            "checkout ERROR",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let v = c
        .audit("compliance")
        .verify_audit_log(gw::VerifyAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{}", v.problem);
    // Compliance still sees every record: those sealed before are marked shredded.
    let reasons = audit_reasons(&c, "acme").await;
    assert!(
        reasons.contains(&"TENANT_SHREDDED".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"RECORD_SHREDDED".to_owned()),
        "{reasons:?}"
    );
    assert!(!reasons.contains(&"ALLOWED".to_owned()), "{reasons:?}");
    assert!(
        audit_reasons(&c, "beta")
            .await
            .contains(&"SETTINGS_CHANGE".to_owned()),
        "another tenant's records stay readable"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_customer_plaintext_is_in_postgres_table_files_or_wal() {
    let Some(url) = warden_integration_tests::fresh_postgres_schema().await else {
        return;
    };
    let c = Cluster::start_with(warden_integration_tests::Options {
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let probes = walk(&c).await;
    // Flush every page to the table files, then read them and the WAL as they lie on disk.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&pool).await.unwrap();
    let data_dir: String =
        sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let files: Vec<String> = sqlx::query_scalar(
        "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 't', 'i')
           AND pg_relation_filepath(c.oid) IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let root = Path::new(&data_dir);
    let readable = std::fs::read_dir(root.join("pg_wal")).is_ok();
    if !readable {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but PostgreSQL's data directory {data_dir} cannot be read"
        );
        eprintln!("SKIPPED: cannot read PostgreSQL's data directory {data_dir}");
        return;
    }
    let mut bytes = Vec::new();
    let mut tables = 0;
    for f in &files {
        // A relation may span segments `N`, `N.1`, ...; and have a TOAST table (listed too).
        for seg in std::iter::once(f.clone()).chain((1..8).map(|i| format!("{f}.{i}"))) {
            if let Ok(b) = std::fs::read(root.join(&seg)) {
                bytes.extend(b);
                tables += 1;
            }
        }
    }
    assert!(
        tables >= 10,
        "only {tables} relation files found: {files:?}"
    );
    assert!(bytes.len() > 8192 * 10);
    for entry in std::fs::read_dir(root.join("pg_wal")).unwrap().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            bytes.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    // The control: the walk's tenant id is there in the clear, so the scan sees the data.
    assert!(
        contains(&bytes, "at-rest-1"),
        "the scan does not see the walk's rows"
    );
    for p in &probes {
        assert!(!contains(&bytes, p), "{p:?} is in PostgreSQL's files");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_can_hold_the_key_encryption_key() {
    use warden_keys::KmsKeyProvider;
    use warden_testkit::kms::MockKms;
    let kms = MockKms::new();
    let arn = kms.create_key(Some("alias/warden-at-rest"));
    let provider = || -> std::sync::Arc<dyn warden_keys::KeyProvider> {
        std::sync::Arc::new(KmsKeyProvider::new(
            std::sync::Arc::new(kms.clone()),
            "alias/warden-at-rest",
        ))
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kms.db").display());
    let storage =
        warden_storage::Storage::open(warden_storage::Db::connect(&url).await.unwrap(), provider())
            .await
            .unwrap();
    let receipt = storage
        .append_audit(warden_proto::common::v1::AuditRecord {
            kind: warden_proto::common::v1::AuditKind::Admin as i32,
            tenant_id: "acme".into(),
            caller: "admin/kms-probe".into(),
            decision: 1,
            reason: "KMS_PROBE".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let read = storage
        .query_audit(&warden_proto::storage::v1::QueryRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(read[0].caller, "admin/kms-probe");
    assert_eq!(read[0].hash, receipt.hash);
    // KMS answered with the key's ARN; that is what every wrapped data key names.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let keks: Vec<String> = sqlx::query_scalar("SELECT DISTINCT kek_id FROM data_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(keks, vec![arn.clone()]);
    assert!(kms.calls().contains(&(
        "GenerateDataKey".to_owned(),
        "alias/warden-at-rest".to_owned()
    )));
    drop(storage);
    // The KMS key disabled: storage refuses to start, naming the key it needs.
    kms.disable(&arn);
    let err =
        warden_storage::Storage::open(warden_storage::Db::connect(&url).await.unwrap(), provider())
            .await
            .err()
            .expect("a disabled KMS key stops storage")
            .to_string();
    assert!(err.contains(&arn) && err.contains("disabled"), "{err}");
}
