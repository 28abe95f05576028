//! Audit API for compliance: query, export and verify the audit log. Only the
//! compliance role; queries are always scoped to one tenant; every export is itself audited.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::{self as pb, AuditDecision, AuditKind, AuditRecord};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_tls::authorize;

use crate::{Gateway, for_tenant};

type ExportStream = Pin<Box<dyn Stream<Item = Result<gw::ExportAuditRecordsChunk, Status>> + Send>>;

/// One record as a JSON object (the export format). Never holds payload: records don't.
pub fn record_json(r: &AuditRecord) -> serde_json::Value {
    let name = |v: i32, f: fn(i32) -> Option<&'static str>| f(v).unwrap_or("UNKNOWN");
    serde_json::json!({
        "id": r.id,
        "sequence": r.sequence,
        "time": r.time.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000)),
        "kind": name(r.kind, |v| AuditKind::try_from(v).ok().map(|k| k.as_str_name())),
        "tenant_id": r.tenant_id,
        "caller": r.caller,
        "purpose": name(r.purpose, |v| pb::Purpose::try_from(v).ok().map(|k| k.as_str_name())),
        "agent_run_id": r.agent_run_id,
        "decision": name(r.decision, |v| AuditDecision::try_from(v).ok().map(|k| k.as_str_name())),
        "reason": r.reason,
        "reason_message": r.reason_message,
        "attempts": r.attempts.iter().map(|a| serde_json::json!({
            "provider": a.provider, "model": a.model, "outcome": a.outcome, "latency_ms": a.latency_ms})).collect::<Vec<_>>(),
        "provider": r.provider,
        "model": r.model,
        "data_types": r.data_types.iter().map(|d| name(*d, |v| pb::DataType::try_from(v).ok().map(|k| k.as_str_name()))).collect::<Vec<_>>(),
        "bytes_before": r.minimization.as_ref().map_or(0, |m| m.bytes_before),
        "bytes_after": r.minimization.as_ref().map_or(0, |m| m.bytes_after),
        "redactions": r.minimization.as_ref().map(|m| m.redactions.iter().map(|c| (c.kind.clone(), c.count)).collect::<std::collections::BTreeMap<_, _>>()),
        "input_tokens": r.usage.as_ref().map_or(0, |u| u.input_tokens),
        "output_tokens": r.usage.as_ref().map_or(0, |u| u.output_tokens),
        "latency_ms": r.latency_ms,
        "outcome": r.outcome,
        "intent_id": r.intent_id,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

const CSV_COLUMNS: [&str; 14] = [
    "sequence",
    "id",
    "time",
    "kind",
    "tenant_id",
    "caller",
    "decision",
    "reason",
    "provider",
    "model",
    "outcome",
    "intent_id",
    "prev_hash",
    "hash",
];

fn record_csv(r: &AuditRecord) -> String {
    let v = record_json(r);
    let cells: Vec<String> = CSV_COLUMNS
        .iter()
        .map(|c| match &v[*c] {
            serde_json::Value::String(s) => csv_field(s),
            serde_json::Value::Null => String::new(),
            other => csv_field(&other.to_string()),
        })
        .collect();
    format!("{}\n", cells.join(","))
}

impl Gateway {
    async fn storage_query(&self, q: st::QueryRequest) -> Result<Vec<AuditRecord>, Status> {
        let mut client = self.inner.audit_log.clone();
        Ok(client.query(q).await?.into_inner().records)
    }
}

#[tonic::async_trait]
impl gw::audit_server::Audit for Gateway {
    async fn query_audit_records(
        &self,
        req: Request<gw::QueryAuditRecordsRequest>,
    ) -> Result<Response<gw::QueryAuditRecordsResponse>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Audit/QueryAuditRecords")?;
        let r = req.into_inner();
        for_tenant(&auth, &r.tenant_id)?;
        let after_sequence = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("page_token is not one this API returned"))?
        };
        let limit = if r.page_size == 0 {
            100
        } else {
            r.page_size.min(1000)
        };
        let records = self
            .storage_query(st::QueryRequest {
                tenant_id: r.tenant_id,
                since: r.since,
                until: r.until,
                decision: r.decision,
                limit,
                after_sequence,
            })
            .await?;
        let next_page_token = if records.len() == limit as usize {
            records
                .last()
                .map(|l| l.sequence.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(gw::QueryAuditRecordsResponse {
            records,
            next_page_token,
        }))
    }

    type ExportAuditRecordsStream = ExportStream;

    async fn export_audit_records(
        &self,
        req: Request<gw::ExportAuditRecordsRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Audit/ExportAuditRecords")?;
        let r = req.into_inner();
        let caller = for_tenant(&auth, &r.tenant_id)?;
        let csv = match gw::ExportFormat::try_from(r.format) {
            Ok(gw::ExportFormat::Csv) => true,
            Ok(_) => false,
            Err(_) => {
                return Err(Status::invalid_argument(
                    "format must be EXPORT_FORMAT_JSONL or EXPORT_FORMAT_CSV",
                ));
            }
        };
        // The export is itself audited, before any record is handed out.
        let record = AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: r.tenant_id.clone(),
            caller: caller.subject(),
            decision: AuditDecision::Allowed as i32,
            reason: "AUDIT_EXPORT".into(),
            reason_message: format!("format={}", if csv { "csv" } else { "jsonl" }),
            outcome: "ok".into(),
            ..Default::default()
        };
        self.inner.audit.append(record).await.map_err(|_| {
            Status::unavailable("the export could not be audited, so it was not started")
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let gw = self.clone();
        tokio::spawn(async move {
            if csv {
                let _ = tx
                    .send(Ok(gw::ExportAuditRecordsChunk {
                        data: format!("{}\n", CSV_COLUMNS.join(",")).into_bytes(),
                    }))
                    .await;
            }
            let mut after = 0;
            loop {
                let page = gw
                    .storage_query(st::QueryRequest {
                        tenant_id: r.tenant_id.clone(),
                        since: r.since,
                        until: r.until,
                        decision: 0,
                        limit: 1000,
                        after_sequence: after,
                    })
                    .await;
                let records = match page {
                    Ok(p) => p,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
                let Some(last) = records.last() else { return };
                after = last.sequence;
                let mut data = String::new();
                for rec in &records {
                    if csv {
                        data.push_str(&record_csv(rec));
                    } else {
                        data.push_str(&record_json(rec).to_string());
                        data.push('\n');
                    }
                }
                if tx
                    .send(Ok(gw::ExportAuditRecordsChunk {
                        data: data.into_bytes(),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn verify_audit_log(
        &self,
        req: Request<gw::VerifyAuditLogRequest>,
    ) -> Result<Response<gw::VerifyAuditLogResponse>, Status> {
        authorize(&req, "warden.gateway.v1.Audit/VerifyAuditLog")?.platform()?;
        let r = req.into_inner();
        let mut client = self.inner.audit_log.clone();
        let v = client
            .verify(st::VerifyRequest {
                from_sequence: r.from_sequence,
                to_sequence: r.to_sequence,
            })
            .await?
            .into_inner();
        Ok(Response::new(gw::VerifyAuditLogResponse {
            ok: v.ok,
            records_checked: v.records_checked,
            first_bad_sequence: v.first_bad_sequence,
            problem: v.problem,
            head_hash: v.head_hash,
        }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<gw::GetCheckpointRequest>,
    ) -> Result<Response<gw::SignedCheckpoint>, Status> {
        authorize(&req, "warden.gateway.v1.Audit/GetCheckpoint")?.platform()?;
        Err(Status::unimplemented(
            "signed checkpoints arrive with the Merkle-tree audit log; today use VerifyAuditLog, which checks the hash chain",
        ))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<gw::GetInclusionProofRequest>,
    ) -> Result<Response<gw::InclusionProof>, Status> {
        authorize(&req, "warden.gateway.v1.Audit/GetInclusionProof")?.platform()?;
        Err(Status::unimplemented(
            "inclusion proofs arrive with the Merkle-tree audit log",
        ))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<gw::GetConsistencyProofRequest>,
    ) -> Result<Response<gw::ConsistencyProof>, Status> {
        authorize(&req, "warden.gateway.v1.Audit/GetConsistencyProof")?.platform()?;
        Err(Status::unimplemented(
            "consistency proofs arrive with the Merkle-tree audit log",
        ))
    }
}
