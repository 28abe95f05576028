//! `AuditLog/AppendStream` over mTLS: every message is checked and authorized as an
//! `Append` would be, by the stream's certificate; the gateway's `StorageAudit` appends
//! through it, acknowledges nothing that is not committed, refuses when the stream breaks
//! and opens a new one for the next append.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use warden_gateway::{AuditSink, StorageAudit};
use warden_integration_tests::*;
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::append_stream_response::Result as Answer;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;

fn record(kind: AuditKind, tenant: &str, caller: &str) -> AuditRecord {
    AuditRecord {
        kind: kind as i32,
        tenant_id: tenant.into(),
        caller: caller.into(),
        decision: AuditDecision::Denied as i32,
        reason: "OPT_IN_REQUIRED".into(),
        ..Default::default()
    }
}

/// Sends `records` (call numbers 10, 11, ...) on one stream as `identity`, closes its
/// side, and reads every answer until the stream ends: answers by call number.
async fn stream_as(
    c: &Cluster,
    identity: &str,
    records: Vec<Option<AuditRecord>>,
) -> Result<BTreeMap<u64, Result<st::AuditReceipt, (Code, String)>>, tonic::Status> {
    let messages: Vec<st::AppendStreamRequest> = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| st::AppendStreamRequest {
            call: 10 + i as u64,
            record,
        })
        .collect();
    let mut log = AuditLogClient::new(c.channel(identity, c.storage_addr));
    let mut answers = log
        .append_stream(tokio_stream::iter(messages))
        .await?
        .into_inner();
    let mut out = BTreeMap::new();
    while let Some(a) = answers.message().await? {
        let result = match a.result.expect("an answer holds a result") {
            Answer::Receipt(r) => Ok(r),
            Answer::Refused(r) => Err((Code::from_i32(r.code), r.message)),
        };
        assert!(
            out.insert(a.call, result).is_none(),
            "call {} answered twice",
            a.call
        );
    }
    Ok(out)
}

async fn recorded_by(c: &Cluster, tenant: &str) -> Vec<String> {
    let mut log = AuditLogClient::new(c.channel("gateway", c.storage_addr));
    log.query(st::QueryRequest {
        tenant_id: tenant.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .records
    .into_iter()
    .map(|r| r.recorded_by)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_of_an_append_stream_is_checked_by_the_streams_certificate() {
    let c = Cluster::start().await;
    let rows = || c.db_count("SELECT COUNT(*) FROM audit_log");
    let before = rows().await;

    // The gateway: good records are committed; each bad one is refused with the status
    // Append gives it, and the stream goes on.
    let forged = AuditRecord {
        recorded_by: "gateway/somebody-else".into(),
        ..record(AuditKind::Denial, "acme", "agent/a")
    };
    let answers = stream_as(
        &c,
        "gateway",
        vec![
            Some(record(AuditKind::Denial, "acme", "agent/a")),
            Some(forged),
            None,
            Some(record(AuditKind::Denial, "no such tenant!", "agent/a")),
            Some(record(AuditKind::Denial, "beta", "agent/b")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answers.len(), 5, "{answers:?}");
    let receipts: Vec<&st::AuditReceipt> = [10, 14]
        .iter()
        .map(|call| answers[call].as_ref().unwrap())
        .collect();
    assert_ne!(receipts[0].sequence, receipts[1].sequence);
    for call in [11, 12, 13] {
        let (code, why) = answers[&call].as_ref().unwrap_err();
        assert_eq!(*code, Code::InvalidArgument, "call {call}: {why}");
        assert!(!why.is_empty());
    }
    assert_eq!(rows().await, before + 2);

    // The agent service may append only its own admin actions, message by message.
    let answers = stream_as(
        &c,
        "agent-service",
        vec![
            Some(record(AuditKind::Intent, "acme", "agent/a")),
            Some(record(AuditKind::Admin, "acme", "admin/x")),
            Some(record(AuditKind::Outcome, "acme", "agent/a")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answers[&10].as_ref().unwrap_err().0, Code::PermissionDenied);
    assert!(answers[&11].is_ok(), "{answers:?}");
    assert_eq!(answers[&12].as_ref().unwrap_err().0, Code::PermissionDenied);
    assert_eq!(rows().await, before + 3);

    // Callers that may not append at all cannot open the stream.
    for identity in ["agent", "admin", "compliance", "reviewer"] {
        let err = stream_as(
            &c,
            identity,
            vec![Some(record(AuditKind::Admin, "acme", "admin/x"))],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{identity}: {err:?}");
    }
    assert_eq!(rows().await, before + 3);

    // Who vouches for each record comes from the stream's certificate.
    let mut by = recorded_by(&c, "acme").await;
    by.sort();
    assert_eq!(by, ["agent-service/agent-service", "gateway/gateway"]);
    assert_eq!(recorded_by(&c, "beta").await, ["gateway/gateway"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_acknowledges_only_committed_records_and_refuses_when_storage_stops() {
    let mut c = Cluster::start().await;
    let audit = Arc::new(StorageAudit::new(AuditLogClient::new(
        c.channel("gateway", c.storage_addr),
    )));
    // Many at once over the one stream: every record committed once.
    let appends: Vec<_> = (0..300)
        .map(|i| {
            let audit = audit.clone();
            tokio::spawn(async move {
                audit
                    .append(record(AuditKind::Denial, "acme", &format!("agent/a{i}")))
                    .await
            })
        })
        .collect();
    let mut sequences = BTreeSet::new();
    for a in appends {
        let receipt = a.await.unwrap().unwrap();
        assert!(sequences.insert(receipt.sequence));
    }
    assert_eq!(c.db_count("SELECT COUNT(*) FROM audit_log").await, 300);

    // Storage shuts down while appends keep coming: each is either acknowledged, and
    // then committed, or refused; none waits for the 5 s timeout; afterwards all refuse.
    let appends: Vec<_> = (0..400)
        .map(|i| {
            let audit = audit.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(250 * i)).await;
                let start = tokio::time::Instant::now();
                let r = audit
                    .append(record(AuditKind::Denial, "acme", &format!("agent/s{i}")))
                    .await;
                (r, start.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    c.stop_storage().await;
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for a in appends {
        let (r, took) = a.await.unwrap();
        assert!(took < Duration::from_secs(4), "an append waited {took:?}");
        match r {
            Ok(receipt) => assert!(acknowledged.insert(receipt.id)),
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused > 0,
        "storage stopped, yet every append was acknowledged"
    );
    assert!(
        audit
            .append(record(AuditKind::Denial, "acme", "agent/late"))
            .await
            .is_err()
    );
    let pool = c.db().await;
    for id in &acknowledged {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "record {id} was acknowledged but is not in the log");
    }
    pool.close().await;
    c.stop().await;
}

/// A TCP relay whose connections can all be cut at once.
struct Relay {
    addr: SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cuts = cuts.clone();
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broken_connection_the_next_append_opens_a_new_stream() {
    let c = Cluster::start().await;
    let relay = Relay::start(c.storage_addr).await;
    let channel = warden_rpc::connect(
        &relay.addr.to_string(),
        &warden_rpc::Security::Mtls(c.pki.files("gateway")),
        warden_tls::Role::Storage,
        Duration::from_secs(3),
    )
    .unwrap();
    let audit = StorageAudit::new(AuditLogClient::new(channel));
    let first = audit
        .append(record(AuditKind::Denial, "acme", "agent/a"))
        .await
        .unwrap();

    relay.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The stream died with its connection: at most the first appends after the cut are
    // refused while the channel notices; then a new connection and a new stream.
    let mut results = Vec::new();
    for i in 0..20 {
        results.push(
            audit
                .append(record(AuditKind::Denial, "acme", &format!("agent/r{i}")))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = results.iter().take_while(|r| r.is_err()).count();
    assert!(refused <= 3, "{refused} appends refused after the cut");
    let after: Vec<_> = results[refused..].iter().collect();
    assert!(
        after.iter().all(|r| r.is_ok()),
        "the gateway did not recover: {results:?}"
    );
    let last = after.last().unwrap().as_ref().unwrap();
    assert!(last.sequence > first.sequence);
    // A refused append may have been committed before its answer was lost with the
    // connection; an acknowledged one always was.
    let rows = c.db_count("SELECT COUNT(*) FROM audit_log").await;
    assert!(
        (1 + after.len() as i64..=1 + results.len() as i64).contains(&rows),
        "{rows} rows"
    );
    c.stop().await;
}
