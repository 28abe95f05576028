#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use prost::Message;
use serde_json::json;
use tonic::{Code, Request};
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::config::marker;
use warden_telemetry::pprof::wire;
use warden_tls::{Caller, Role, Scope};

use crate::ingest_auth::IngestTenant;
use crate::util::{now_ms, ts};
use crate::{Db, Storage};

// === backends ===

async fn open(url: &str) -> Storage {
    let db = Db::connect(url).await.unwrap();
    Storage::open(db, std::sync::Arc::new(crate::MemoryKeyProvider::new()))
        .await
        .unwrap()
}

async fn sqlite() -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&format!("sqlite://{}", dir.path().join("c.db").display())).await;
    (s, dir)
}

/// A store on a fresh schema of the test PostgreSQL server (`WARDEN_TEST_PG`); `None`
/// when there is none, except under `CI=true`, where that fails the test.
async fn postgres() -> Option<Storage> {
    Some(open(&crate::test_pg::fresh_schema_url().await?).await)
}

/// Runs `case` once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                let (s, _dir) = super::sqlite().await;
                super::$case(&s).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(s) = super::postgres().await {
                    super::$case(&s).await;
                }
            }
        }
    )*};
}

on_both_backends!(
    profiles_give_top_functions_per_service_sample_type_and_tenant,
    a_kubectl_list_gives_latest_objects_and_events,
    a_secret_value_never_reaches_a_query,
    helm_values_are_redacted_snapshots_with_diffs,
    malformed_and_oversized_input_is_refused_and_stores_nothing,
    queries_need_the_agent_service_and_a_window,
    pruning_removes_what_is_older,
);

// === requests ===

fn ingest<T>(tenant: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.extensions_mut().insert(IngestTenant(tenant.into()));
    r
}

fn as_role<T>(role: Role, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.extensions_mut().insert(Caller {
        role,
        name: "test".into(),
        scope: Scope::Platform,
        insecure_dev: false,
    });
    r
}

fn query<T>(msg: T) -> Request<T> {
    as_role(Role::AgentService, msg)
}

fn window(since: i64, until: i64) -> Option<tm::Window> {
    Some(tm::Window {
        since: Some(ts(since)),
        until: Some(ts(until)),
    })
}

/// Everything up to an hour from now.
fn all_time() -> Option<tm::Window> {
    window(0, now_ms() + 3_600_000)
}

async fn rows(s: &Storage) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "profiles",
        "cluster_objects",
        "cluster_events",
        "config_snapshots",
    ] {
        let n: i64 = sqlx::Row::get(
            &sqlx::query(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one(&s.inner.db.pool)
                .await
                .unwrap(),
            0,
        );
        out.push(n);
    }
    out
}

// === pprof ===

/// A Go-style CPU profile (samples/count, cpu/nanoseconds; `fib` recursing under
/// `handler` under `main`), gzip-compressed as Go writes it.
fn go_cpu_profile(scale: i64) -> Vec<u8> {
    let strings = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "main.main",
        "main.go",
        "main.handler",
        "handler.go",
        "main.fib",
        "fib.go",
    ];
    let f = |id, name, file| wire::Function {
        id,
        name,
        filename: file,
        ..Default::default()
    };
    let loc = |id: u64| wire::Location {
        id,
        address: 0x400000 + id,
        line: vec![wire::Line {
            function_id: id,
            line: 10,
        }],
        ..Default::default()
    };
    let sample = |locs: &[u64], count: i64, ns: i64| wire::Sample {
        location_id: locs.to_vec(),
        value: vec![count * scale, ns * scale],
        label: vec![],
    };
    let p = wire::Profile {
        sample_type: vec![
            wire::ValueType { r#type: 1, unit: 2 },
            wire::ValueType { r#type: 3, unit: 4 },
        ],
        sample: vec![
            sample(&[3, 3, 3, 2, 1], 3, 30_000_000),
            sample(&[2, 1], 1, 10_000_000),
        ],
        location: vec![loc(1), loc(2), loc(3)],
        function: vec![f(1, 5, 6), f(2, 7, 8), f(3, 9, 10)],
        string_table: strings.map(String::from).to_vec(),
        period_type: Some(wire::ValueType { r#type: 3, unit: 4 }),
        period: 10_000_000,
        ..Default::default()
    };
    gzip(&p.encode_to_vec())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn profile(service: &str, pprof: Vec<u8>) -> tm::IngestProfileRequest {
    tm::IngestProfileRequest {
        service: service.into(),
        time: Some(ts(now_ms())),
        pprof,
    }
}

async fn top(
    s: &Storage,
    tenant: &str,
    service: &str,
    sample_type: &str,
) -> tm::TopFunctionsResponse {
    s.top_functions_rpc(query(tm::TopFunctionsRequest {
        tenant_id: tenant.into(),
        window: all_time(),
        service: service.into(),
        sample_type: sample_type.into(),
        limit: 10,
    }))
    .await
    .unwrap()
    .into_inner()
}

async fn profiles_give_top_functions_per_service_sample_type_and_tenant(s: &Storage) {
    for (tenant, service, scale) in [
        ("t", "api", 1),
        ("t", "api", 1),
        ("t", "worker", 5),
        ("u", "api", 100),
    ] {
        let r = s
            .ingest_profile_rpc(ingest(tenant, profile(service, go_cpu_profile(scale))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted, 1);
    }
    // Default: the last sample type (cpu), both "api" profiles merged.
    let t = top(s, "t", "api", "").await;
    assert_eq!(
        (t.sample_type.as_str(), t.unit.as_str()),
        ("cpu", "nanoseconds")
    );
    assert_eq!((t.profiles, t.total), (2, 80_000_000));
    let fib = &t.by_self[0];
    assert_eq!(
        (fib.function.as_str(), fib.file.as_str()),
        ("main.fib", "fib.go")
    );
    assert_eq!(
        (fib.self_value, fib.total_value),
        (60_000_000, 60_000_000),
        "recursion once"
    );
    assert!((fib.self_share - 0.75).abs() < 1e-9);
    let by_total: Vec<_> = t
        .by_total
        .iter()
        .map(|f| (f.function.as_str(), f.total_value))
        .collect();
    assert_eq!(
        by_total,
        [
            ("main.handler", 80_000_000),
            ("main.main", 80_000_000),
            ("main.fib", 60_000_000)
        ]
    );
    assert_eq!(t.by_self.len(), 2, "main.main has no self value");

    let samples = top(s, "t", "api", "samples").await;
    assert_eq!((samples.total, samples.by_self[0].self_value), (8, 6));
    // Another service, another tenant: their own numbers only.
    assert_eq!(top(s, "t", "worker", "").await.total, 200_000_000);
    assert_eq!(top(s, "t", "", "").await.profiles, 3);
    assert_eq!(top(s, "u", "api", "").await.total, 4_000_000_000);
    let none = top(s, "nobody", "api", "").await;
    assert_eq!((none.profiles, none.total, none.by_self.len()), (0, 0, 0));

    let e = s
        .top_functions_rpc(query(tm::TopFunctionsRequest {
            tenant_id: "t".into(),
            window: all_time(),
            service: "api".into(),
            sample_type: "alloc_space".into(),
            limit: 0,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "the profiles in this window have no sample type \"alloc_space\" (they have: cpu, samples)"
    );
    // The aggregates are sealed: no function name in the clear.
    let raw: String = sqlx::Row::get(
        &sqlx::query("SELECT summary FROM profiles LIMIT 1")
            .fetch_one(&s.inner.db.pool)
            .await
            .unwrap(),
        0,
    );
    assert!(raw.starts_with("w2.") && !raw.contains("main.fib"));
}

// === cluster ===

fn pods_and_events(restarts: u32) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [
            {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "api-1", "namespace": "shop", "uid": "u-1",
                    "resourceVersion": format!("{}", 100 + restarts),
                    "managedFields": [{"manager": "kubelet"}]},
                "spec": {"containers": [{"name": "api", "image": "api:1"}]},
                "status": {"phase": "Running", "containerStatuses": [{"restartCount": restarts}]}
            },
            {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "front"},
                "status": {"phase": "Running"}
            },
            {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "api-1.a", "namespace": "shop"},
                "involvedObject": {"kind": "Pod", "name": "api-1"},
                "type": "Warning", "reason": "BackOff",
                "message": "Back-off restarting failed container api",
                "count": restarts,
                "lastTimestamp": "2024-05-01T10:05:00Z"
            },
            {
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "api.b", "namespace": "shop"},
                "regarding": {"kind": "Deployment", "name": "api"},
                "type": "Normal", "reason": "ScalingReplicaSet",
                "note": "Scaled up replica set api-5d to 2",
                "eventTime": "2024-05-01T10:01:00.000000Z"
            }
        ]
    })
    .to_string()
}

async fn cluster(
    s: &Storage,
    tenant: &str,
    q: tm::QueryClusterRequest,
) -> tm::QueryClusterResponse {
    s.query_cluster_rpc(query(tm::QueryClusterRequest {
        tenant_id: tenant.into(),
        ..q
    }))
    .await
    .unwrap()
    .into_inner()
}

const MAY_1: i64 = 1_714_521_600_000;

async fn a_kubectl_list_gives_latest_objects_and_events(s: &Storage) {
    let send = |restarts| tm::IngestClusterRequest {
        cluster: "prod-eu".into(),
        json: pods_and_events(restarts),
    };
    let r = s
        .ingest_cluster_rpc(ingest("t", send(3)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 4);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.ingest_cluster_rpc(ingest("t", send(7))).await.unwrap();

    let win = window(MAY_1, now_ms() + 1000);
    let all = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            window: win,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.objects.len(), 2, "one per object: its latest state");
    assert_eq!(
        all.events.len(),
        2,
        "a repeated event is updated, not duplicated"
    );
    assert!(!all.truncated);
    let pod = all.objects.iter().find(|o| o.name == "api-1").unwrap();
    assert_eq!(
        (
            pod.cluster.as_str(),
            pod.kind.as_str(),
            pod.namespace.as_str()
        ),
        ("prod-eu", "Pod", "shop")
    );
    let v: serde_json::Value = serde_json::from_str(&pod.json).unwrap();
    assert_eq!(v["status"]["containerStatuses"][0]["restartCount"], 7);
    assert!(v["metadata"].get("managedFields").is_none());
    let backoff = all.events.iter().find(|e| e.reason == "BackOff").unwrap();
    assert_eq!(
        (
            backoff.r#type.as_str(),
            backoff.involved_kind.as_str(),
            backoff.involved_name.as_str(),
            backoff.count
        ),
        ("Warning", "Pod", "api-1", 7)
    );
    assert_eq!(backoff.time, Some(ts(MAY_1 + 10 * 3_600_000 + 5 * 60_000)));
    assert_eq!(backoff.message, "Back-off restarting failed container api");
    let scaled = all
        .events
        .iter()
        .find(|e| e.reason == "ScalingReplicaSet")
        .unwrap();
    assert_eq!(
        (scaled.involved_kind.as_str(), scaled.count),
        ("Deployment", 1)
    );

    // The state as it was before the second report.
    let before = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            kind: "Pod".into(),
            name: "api-1".into(),
            window: window(MAY_1, between),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(before.objects.len(), 1);
    assert!(before.objects[0].json.contains("\"restartCount\":3"));
    // kind/name select the object and the events about it.
    let pod_only = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            kind: "Pod".into(),
            name: "api-1".into(),
            window: window(MAY_1, now_ms() + 1000),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pod_only.events.len(), 1);
    assert_eq!(pod_only.events[0].reason, "BackOff");
    let ns = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            namespace: "front".into(),
            window: window(MAY_1, now_ms() + 1000),
            ..Default::default()
        },
    )
    .await;
    assert_eq!((ns.objects.len(), ns.events.len()), (1, 0));
    // Events outside the window are left out; a limit says it cut.
    let late = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            window: window(MAY_1 + 10 * 3_600_000 + 2 * 60_000, now_ms() + 1000),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(late.events.len(), 1);
    let one = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            window: window(MAY_1, now_ms() + 1000),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (one.objects.len(), one.events.len(), one.truncated),
        (1, 1, true)
    );
    // Another tenant sees none of it.
    let other = cluster(
        s,
        "u",
        tm::QueryClusterRequest {
            window: window(MAY_1, now_ms() + 1000),
            ..Default::default()
        },
    )
    .await;
    assert!(other.objects.is_empty() && other.events.is_empty());
}

const PLAIN: &str = "hunter2-plain-Zq81";
const ENCODED: &str = "c2VjcmV0LWJhc2U2NC1ZcDcz"; // "secret-base64-Yp73"

async fn a_secret_value_never_reaches_a_query(s: &Storage) {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "shop",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                format!("{{\"data\":{{\"password\":\"{ENCODED}\"}}}}")}},
        "data": {"password": ENCODED},
        "stringData": {"dsn": PLAIN}
    });
    s.ingest_cluster_rpc(ingest(
        "t",
        tm::IngestClusterRequest {
            cluster: "c".into(),
            json: secret.to_string(),
        },
    ))
    .await
    .unwrap();
    let r = cluster(
        s,
        "t",
        tm::QueryClusterRequest {
            kind: "Secret".into(),
            window: all_time(),
            ..Default::default()
        },
    )
    .await;
    let json = &r.objects[0].json;
    assert!(!json.contains(PLAIN) && !json.contains(ENCODED), "{json}");
    assert!(
        json.contains(&marker(ENCODED)) && json.contains(&marker(PLAIN)),
        "{json}"
    );
}

/// On SQLite, the database files themselves hold neither form of the value.
#[tokio::test]
async fn a_secret_value_never_reaches_the_sqlite_files() {
    let (s, dir) = sqlite().await;
    a_secret_value_never_reaches_a_query(&s).await;
    let mut seen = 0;
    for f in ["c.db", "c.db-wal"] {
        let Ok(bytes) = std::fs::read(dir.path().join(f)) else {
            continue;
        };
        seen += bytes.len();
        for needle in [PLAIN, ENCODED, "secret-base64-Yp73"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in {f}"
            );
        }
    }
    assert!(seen > 0);
}

// === configuration ===

const VALUES: &str = "\
replicaCount: 2
image:
  tag: 1.4.2
postgresql:
  auth:
    username: api
    password: Tr0ub4dor-and-3
";

async fn config(s: &Storage, tenant: &str, content: &str, at: i64) -> tm::IngestResponse {
    s.ingest_config_rpc(ingest(
        tenant,
        tm::IngestConfigRequest {
            kind: "HelmValues".into(),
            namespace: "shop".into(),
            name: "api".into(),
            content: content.into(),
            time: Some(ts(at)),
        },
    ))
    .await
    .unwrap()
    .into_inner()
}

async fn snapshots(s: &Storage, tenant: &str) -> Vec<tm::ConfigSnapshot> {
    s.query_config_rpc(query(tm::QueryConfigRequest {
        tenant_id: tenant.into(),
        kind: "HelmValues".into(),
        window: window(MAY_1, MAY_1 + 3_600_000),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
    .snapshots
}

async fn helm_values_are_redacted_snapshots_with_diffs(s: &Storage) {
    config(s, "t", VALUES, MAY_1 + 1000).await;
    let rotated = VALUES
        .replace("Tr0ub4dor-and-3", "correct-horse-9")
        .replace("replicaCount: 2", "replicaCount: 4");
    config(s, "t", &rotated, MAY_1 + 2000).await;
    // The same content again is not a new snapshot.
    assert_eq!(config(s, "t", &rotated, MAY_1 + 3000).await.accepted, 1);

    let snaps = snapshots(s, "t").await;
    assert_eq!(snaps.len(), 2);
    let (new, old) = (&snaps[0], &snaps[1]);
    assert_eq!(new.observed, Some(ts(MAY_1 + 2000)));
    assert_eq!(
        (old.kind.as_str(), old.namespace.as_str(), old.name.as_str()),
        ("HelmValues", "shop", "api")
    );
    assert!(
        old.content
            .contains(&format!("password: \"{}\"", marker("Tr0ub4dor-and-3"))),
        "{}",
        old.content
    );
    assert!(old.content.contains("username: api"));
    assert_eq!(old.diff_from_previous, "");
    let d = &new.diff_from_previous;
    assert!(d.contains("-replicaCount: 2\n+replicaCount: 4\n"), "{d}");
    assert!(
        d.contains(&format!("-    password: \"{}\"", marker("Tr0ub4dor-and-3"))),
        "{d}"
    );
    assert!(
        d.contains(&format!("+    password: \"{}\"", marker("correct-horse-9"))),
        "{d}"
    );
    for sn in &snaps {
        for leaked in ["Tr0ub4dor", "correct-horse"] {
            assert!(!sn.content.contains(leaked) && !sn.diff_from_previous.contains(leaked));
        }
    }
    assert!(
        snapshots(s, "u").await.is_empty(),
        "another tenant's snapshots"
    );

    // A ConfigMap in a cluster report is a snapshot too.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-env", "namespace": "shop"},
        "data": {"LOG_LEVEL": "info", "API_TOKEN": "tok-abc-123"}});
    s.ingest_cluster_rpc(ingest(
        "t",
        tm::IngestClusterRequest {
            cluster: "c".into(),
            json: cm.to_string(),
        },
    ))
    .await
    .unwrap();
    let cms = s
        .query_config_rpc(query(tm::QueryConfigRequest {
            tenant_id: "t".into(),
            kind: "ConfigMap".into(),
            window: all_time(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(cms.len(), 1);
    assert_eq!(
        cms[0].content,
        format!("API_TOKEN: {}\nLOG_LEVEL: info\n", marker("tok-abc-123"))
    );
}

async fn malformed_and_oversized_input_is_refused_and_stores_nothing(s: &Storage) {
    let before = rows(s).await;
    let good = go_cpu_profile(1);
    let mut bad_index = wire::Profile::decode(&*{
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&good[..]), &mut out).unwrap();
        out
    })
    .unwrap();
    bad_index.function[1].name = 500;
    let profiles: Vec<(Vec<u8>, &str)> = vec![
        (
            b"garbage, not a profile".to_vec(),
            "pprof: not a pprof profile (profile.proto)",
        ),
        (
            good[..good.len() - 10].to_vec(),
            "pprof: the gzip stream is damaged or truncated",
        ),
        (
            gzip(&bad_index.encode_to_vec()),
            "pprof: invalid pprof profile: function[1].name = 500 is outside the string table",
        ),
        (
            gzip(&vec![0u8; 17 << 20]),
            "pprof: the profile is larger than 16777216 bytes once decompressed",
        ),
        (
            vec![7u8; (16 << 20) + 1],
            "pprof is 16777217 bytes; the limit is 16777216",
        ),
        (vec![], "pprof is empty"),
    ];
    for (bytes, want) in profiles {
        let e = s
            .ingest_profile_rpc(ingest("t", profile("api", bytes)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want}");
        assert!(e.message().starts_with(want), "{} / {want}", e.message());
    }
    let e = s
        .ingest_profile_rpc(ingest("t", profile("", good.clone())))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "service is required");

    let reports = [
        (
            "{\"kind\": \"Pod\",".to_owned(),
            "cluster report: the cluster report is not JSON",
        ),
        (
            json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fine"}},
                {"apiVersion": "v1", "metadata": {"name": "no-kind"}}
            ]})
            .to_string(),
            "cluster report: items[1]: kind is required",
        ),
        (
            format!("{{\"pad\": \"{}\"}}", "x".repeat(8 << 20)),
            "cluster report: the cluster report is 8388619 bytes; the limit is 8388608",
        ),
    ];
    for (json, want) in reports {
        let e = s
            .ingest_cluster_rpc(ingest(
                "t",
                tm::IngestClusterRequest {
                    cluster: "c".into(),
                    json,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with(want), "{} / {want}", e.message());
    }
    let e = s
        .ingest_cluster_rpc(ingest(
            "t",
            tm::IngestClusterRequest {
                cluster: String::new(),
                json: pods_and_events(1),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "cluster is required");
    let e = s
        .ingest_config_rpc(ingest(
            "t",
            tm::IngestConfigRequest {
                kind: "HelmValues".into(),
                name: "x".into(),
                content: "a".repeat((4 << 20) + 1),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "content is 4194305 bytes; the limit is 4194304"
    );

    // Without an authenticated ingest tenant nothing is taken, whatever the payload.
    let e = s
        .ingest_profile_rpc(Request::new(profile("api", good)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = s
        .ingest_cluster_rpc(Request::new(tm::IngestClusterRequest {
            cluster: "c".into(),
            json: pods_and_events(1),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    assert_eq!(rows(s).await, before, "nothing stored");
}

async fn queries_need_the_agent_service_and_a_window(s: &Storage) {
    let q = || tm::QueryConfigRequest {
        tenant_id: "t".into(),
        window: all_time(),
        ..Default::default()
    };
    for role in [Role::Agent, Role::Admin, Role::Gateway] {
        let e = s.query_config_rpc(as_role(role, q())).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?}");
    }
    let e = s
        .top_functions_rpc(as_role(
            Role::Reviewer,
            tm::TopFunctionsRequest {
                tenant_id: "t".into(),
                window: all_time(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    for (w, want) in [
        (None, "window is required"),
        (
            Some(tm::Window {
                since: Some(ts(5)),
                until: None,
            }),
            "window.until is required",
        ),
        (window(10, 10), "window.since must be before window.until"),
    ] {
        let e = s
            .query_cluster_rpc(query(tm::QueryClusterRequest {
                tenant_id: "t".into(),
                window: w,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, want));
    }
    let e = s
        .query_config_rpc(query(tm::QueryConfigRequest {
            tenant_id: "bad tenant".into(),
            window: all_time(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn pruning_removes_what_is_older(s: &Storage) {
    config(s, "t", VALUES, MAY_1).await;
    config(s, "u", VALUES, MAY_1).await;
    s.ingest_profile_rpc(ingest(
        "t",
        tm::IngestProfileRequest {
            service: "api".into(),
            time: Some(ts(MAY_1)),
            pprof: go_cpu_profile(1),
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        s.prune_cluster("t", MAY_1 + 1).await.unwrap(),
        3,
        "one snapshot, two sample types"
    );
    assert_eq!(
        rows(s).await,
        vec![0, 0, 0, 1],
        "the other tenant's snapshot stays"
    );
}
