//! Audit API for compliance: query, export and verify the audit log, its signed
//! checkpoints and Merkle proofs. Only the compliance role; queries and exports are
//! always scoped to one tenant (the tiles of the whole log, which hold no record content,
//! to platform-wide compliance only); every export is itself audited.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::{self as pb, AuditDecision, AuditKind, AuditRecord};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_tls::authorize;

use crate::{Gateway, for_tenant};

type ExportStream = Pin<Box<dyn Stream<Item = Result<gw::ExportAuditRecordsChunk, Status>> + Send>>;
type TilesStream = Pin<Box<dyn Stream<Item = Result<gw::AuditTileFile, Status>> + Send>>;

/// The first line of a provable export (`EXPORT_FORMAT_PROVABLE`).
pub const PROVABLE_FORMAT: &str = "warden-audit-export/v1";

fn minimization_json(m: &pb::MinimizationSummary) -> serde_json::Value {
    let dt = |v: i32| {
        pb::DataType::try_from(v)
            .ok()
            .map_or("UNKNOWN", |k| k.as_str_name())
    };
    serde_json::json!({
        "bytes_before": m.bytes_before,
        "bytes_after": m.bytes_after,
        "by_data_type": m.by_data_type.iter().map(|d| serde_json::json!({
            "data_type": dt(d.data_type), "parts": d.parts, "dropped_parts": d.dropped_parts,
            "bytes_before": d.bytes_before, "bytes_after": d.bytes_after})).collect::<Vec<_>>(),
        "redactions": m.redactions.iter().map(|c| serde_json::json!({"kind": c.kind, "count": c.count})).collect::<Vec<_>>(),
        "budget_cuts": m.budget_cuts.iter().map(|c| serde_json::json!({
            "data_type": dt(c.data_type), "method": c.method,
            "bytes_before": c.bytes_before, "bytes_after": c.bytes_after})).collect::<Vec<_>>(),
    })
}

/// One record as a JSON object (the export format): every field a record has, so an
/// export drops nothing. Never holds payload: records don't.
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
        "minimization": r.minimization.as_ref().map(minimization_json),
        "usage": r.usage.as_ref().map(|u| serde_json::json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens})),
        "input_tokens": r.usage.as_ref().map_or(0, |u| u.input_tokens),
        "output_tokens": r.usage.as_ref().map_or(0, |u| u.output_tokens),
        "latency_ms": r.latency_ms,
        "outcome": r.outcome,
        "intent_id": r.intent_id,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
        "recorded_by": r.recorded_by,
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Every field of a record; nested ones (attempts, data types, minimization, usage) as
/// JSON in their cell.
const CSV_COLUMNS: [&str; 24] = [
    "sequence",
    "id",
    "time",
    "kind",
    "tenant_id",
    "caller",
    "purpose",
    "agent_run_id",
    "decision",
    "reason",
    "reason_message",
    "attempts",
    "provider",
    "model",
    "data_types",
    "minimization",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "outcome",
    "intent_id",
    "prev_hash",
    "hash",
    "recorded_by",
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
        Ok(self.storage_query_full(q).await?.records)
    }

    async fn storage_query_full(&self, q: st::QueryRequest) -> Result<st::QueryResponse, Status> {
        let mut client = self.inner.audit_log.clone();
        Ok(client.query(q).await?.into_inner())
    }

    /// Audits an export before anything is handed out (no record, no export).
    async fn audit_export(
        &self,
        tenant_id: &str,
        caller: String,
        what: String,
    ) -> Result<(), Status> {
        let record = AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: tenant_id.to_owned(),
            caller,
            decision: AuditDecision::Allowed as i32,
            reason: "AUDIT_EXPORT".into(),
            reason_message: what,
            outcome: "ok".into(),
            ..Default::default()
        };
        self.inner.audit.append(record).await.map_err(|_| {
            Status::unavailable("the export could not be audited, so it was not started")
        })?;
        Ok(())
    }
}

/// One line of a provable export: the record as JSON, its encoding, its leaf entry and
/// its tlog-proof. Public so that what checks exports (tests, benches) reads the lines
/// the gateway writes.
pub fn provable_line(r: &AuditRecord, p: &st::RecordProof) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    // The chain hash is left out: it is not in the record's encoding, and the leaf,
    // which covers everything else, is its proof here.
    let mut json = record_json(r);
    if let Some(o) = json.as_object_mut() {
        o.remove("hash");
    }
    let mut line = serde_json::json!({
        "record": json,
        "pb": b64.encode(&p.record),
        "entry": b64.encode(&p.entry),
        "proof": p.tlog_proof,
    })
    .to_string();
    line.push('\n');
    line
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
                ..Default::default()
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
        let format = match gw::ExportFormat::try_from(r.format) {
            Ok(f @ (gw::ExportFormat::Csv | gw::ExportFormat::Provable)) => f,
            Ok(_) => gw::ExportFormat::Jsonl,
            Err(_) => {
                return Err(Status::invalid_argument(
                    "format must be EXPORT_FORMAT_JSONL, EXPORT_FORMAT_CSV or EXPORT_FORMAT_PROVABLE",
                ));
            }
        };
        let csv = format == gw::ExportFormat::Csv;
        let provable = format == gw::ExportFormat::Provable;
        // The export is itself audited, before any record is handed out.
        let name = match format {
            gw::ExportFormat::Csv => "csv",
            gw::ExportFormat::Provable => "provable",
            _ => "jsonl",
        };
        self.audit_export(&r.tenant_id, caller.subject(), format!("format={name}"))
            .await?;
        // A provable export proves every record against the checkpoint signed now (which
        // already covers the export's own record).
        let header = if provable {
            let mut client = self.inner.audit_log.clone();
            let c = client
                .get_checkpoint(st::GetCheckpointRequest { tree_size: 0 })
                .await?
                .into_inner();
            Some((
                c.tree_size,
                serde_json::json!({
                    "format": PROVABLE_FORMAT,
                    "tenant_id": r.tenant_id,
                    "origin": c.origin,
                    "verifier_key": c.verifier_key,
                    "tree_size": c.tree_size,
                    "checkpoint": c.note,
                }),
            ))
        } else {
            None
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let gw = self.clone();
        tokio::spawn(async move {
            let first = match &header {
                Some((_, h)) => Some(format!("{h}\n")),
                None if csv => Some(format!("{}\n", CSV_COLUMNS.join(","))),
                None => None,
            };
            if let Some(first) = first {
                let _ = tx
                    .send(Ok(gw::ExportAuditRecordsChunk {
                        data: first.into_bytes(),
                    }))
                    .await;
            }
            let mut after = 0;
            loop {
                let page = gw
                    .storage_query_full(st::QueryRequest {
                        tenant_id: r.tenant_id.clone(),
                        since: r.since,
                        until: r.until,
                        decision: 0,
                        limit: 1000,
                        after_sequence: after,
                        with_proofs: provable,
                        proof_tree_size: header.as_ref().map_or(0, |(s, _)| *s),
                    })
                    .await;
                let page = match page {
                    Ok(p) => p,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
                let records = page.records;
                let Some(last) = records.last() else { return };
                after = last.sequence;
                let mut data = String::new();
                for (i, rec) in records.iter().enumerate() {
                    // Never another tenant's record, whatever storage answered.
                    if rec.tenant_id != r.tenant_id {
                        let _ = tx
                            .send(Err(Status::internal(
                                "storage answered with another tenant's record; the export was stopped",
                            )))
                            .await;
                        return;
                    }
                    if provable {
                        let Some(p) = page.proofs.get(i) else {
                            let _ = tx
                                .send(Err(Status::internal(
                                    "storage sent a record without its proof",
                                )))
                                .await;
                            return;
                        };
                        data.push_str(&provable_line(rec, p));
                    } else if csv {
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
        let mut client = self.inner.audit_log.clone();
        let c = client
            .get_checkpoint(st::GetCheckpointRequest {
                tree_size: req.get_ref().tree_size,
            })
            .await?
            .into_inner();
        let note = warden_merkle::note::parse(c.note.as_bytes())
            .map_err(|_| Status::internal("storage sent a checkpoint that is not a signed note"))?;
        let signature = note
            .signatures
            .iter()
            .find(|s| s.key_id == c.key_id)
            .map(|s| s.bytes.clone())
            .unwrap_or_default();
        Ok(Response::new(gw::SignedCheckpoint {
            tree_size: c.tree_size,
            root_hash: hex::encode(&c.root_hash),
            time: c.time,
            signature,
            key_id: format!("{:08x}", c.key_id),
            note: c.note,
            origin: c.origin,
            verifier_key: c.verifier_key,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<gw::GetInclusionProofRequest>,
    ) -> Result<Response<gw::InclusionProof>, Status> {
        authorize(&req, "warden.gateway.v1.Audit/GetInclusionProof")?.platform()?;
        let r = req.into_inner();
        let mut client = self.inner.audit_log.clone();
        let p = client
            .get_inclusion_proof(st::GetInclusionProofRequest {
                record_id: r.record_id,
                sequence: r.sequence,
                tree_size: r.tree_size,
            })
            .await?
            .into_inner();
        Ok(Response::new(gw::InclusionProof {
            leaf_index: p.leaf_index,
            tree_size: p.tree_size,
            hashes: p.hashes.iter().map(hex::encode).collect(),
            leaf_hash: hex::encode(&p.leaf_hash),
            entry: p.entry,
            checkpoint: p.checkpoint,
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<gw::GetConsistencyProofRequest>,
    ) -> Result<Response<gw::ConsistencyProof>, Status> {
        authorize(&req, "warden.gateway.v1.Audit/GetConsistencyProof")?.platform()?;
        let r = req.into_inner();
        let mut client = self.inner.audit_log.clone();
        let p = client
            .get_consistency_proof(st::GetConsistencyProofRequest {
                old_size: r.old_size,
                new_size: r.new_size,
            })
            .await?
            .into_inner();
        Ok(Response::new(gw::ConsistencyProof {
            old_size: p.old_size,
            new_size: p.new_size,
            hashes: p.hashes.iter().map(hex::encode).collect(),
            old_checkpoint: p.old_checkpoint,
            new_checkpoint: p.new_checkpoint,
        }))
    }

    type ExportAuditTilesStream = TilesStream;

    async fn export_audit_tiles(
        &self,
        req: Request<gw::ExportAuditTilesRequest>,
    ) -> Result<Response<TilesStream>, Status> {
        let caller = authorize(&req, "warden.gateway.v1.Audit/ExportAuditTiles")?.platform()?;
        // Audited under the platform's own name: the tiles span every tenant.
        self.audit_export(
            "_platform",
            caller.subject(),
            "format=tlog-tiles (the whole log: hashes and leaf entries, no record content)".into(),
        )
        .await?;
        let mut client = self.inner.audit_log.clone();
        let stream = client
            .export_tiles(st::ExportTilesRequest {})
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            stream,
            |f| {
                f.map(|f| gw::AuditTileFile {
                    path: f.path,
                    data: f.data,
                })
            },
        ))))
    }
}
