//! Webhooks: alerts, deployments and cluster events in the formats their senders post,
//! over HTTPS on a listener of the agent service's own.
//!
//! `POST /webhooks/alertmanager`, `/webhooks/kubernetes` and `/webhooks/argocd` take the
//! sender's tenant from its credential: an ingest certificate scoped to exactly one tenant
//! (the access matrix's `Webhooks/Deliver` row), or `Authorization: Bearer` with one of
//! the tenant's ingest tokens (stored hashed). `POST /webhooks/github/{tenant}` is
//! authenticated by GitHub's `X-Hub-Signature-256` over the body with the tenant's
//! webhook secret (stored sealed): only the named tenant's secret verifies it. Besides
//! `deployment_status` it takes `pull_request`: a closed pull request that a release of a
//! proposal opened moves that proposal to APPLIED (merged) or FAILED (closed unmerged).
//!
//! Answers follow what senders do with them: 202 once every trigger is durably queued
//! (or recorded SKIPPED for a tenant that has not opted in), 200 for a delivery that
//! starts nothing, 4xx with the reason for a body that can never be accepted (senders do
//! not retry those), 503 with `Retry-After` when the tenant's queue is full or storage
//! cannot be reached (Alertmanager retries those until they succeed). Exactly-once keys
//! (`warden-triggers`) make every retry and repeat notification start nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tonic::{Code, Status};
use warden_proto::common::v1::{Purpose, source_credentials};
use warden_proto::storage::v1 as st;
use warden_proto::telemetry::v1 as tm;
use warden_rpc::https::PeerCertificates;
use warden_tls::Caller;
use warden_triggers::{EventFilter, PayloadError, Trigger, TriggerKind};

use crate::{Agent, NewRun, brief};

/// The listener's limits.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Largest body read; a larger one is refused with 413.
    pub max_body_bytes: usize,
    /// Which Kubernetes warnings start an investigation, and the window that groups them.
    pub cluster_events: EventFilter,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            max_body_bytes: 1024 * 1024,
            cluster_events: EventFilter::default(),
        }
    }
}

struct Hooks {
    agent: Agent,
    opts: WebhookOptions,
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A refusal: the status and the reason, as JSON (with the access matrix's reason code
/// and rule when the matrix refused the sender).
struct Refusal(StatusCode, String, Option<(String, String)>);

fn refusal(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into(), None)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.1});
        if let Some((code, rule)) = self.2 {
            body["reason"] = json!(code);
            body["rpc"] = json!(rule);
        }
        let mut r = json_response(self.0, &body);
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        }
        r
    }
}

impl From<PayloadError> for Refusal {
    fn from(e: PayloadError) -> Self {
        let status = match e {
            PayloadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        refusal(status, e.to_string())
    }
}

impl From<Status> for Refusal {
    fn from(s: Status) -> Self {
        let status = match s.code() {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            // Queue full, storage or settings unreachable: retry later.
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        use tonic_types::StatusExt;
        let reason = s.get_details_error_info().map(|i| {
            let rule = i.metadata.get("rpc").cloned().unwrap_or_default();
            (i.reason, rule)
        });
        Refusal(status, s.message().to_owned(), reason)
    }
}

/// The webhook routes, for [`warden_rpc::https::serve`].
pub fn router(agent: Agent, opts: WebhookOptions) -> axum::Router {
    axum::Router::new()
        .route("/webhooks/alertmanager", post(alertmanager))
        .route("/webhooks/kubernetes", post(kubernetes))
        .route("/webhooks/argocd", post(argocd))
        .route("/webhooks/github/{tenant}", post(github))
        .with_state(Arc::new(Hooks { agent, opts }))
}

fn record(source: &'static str, outcome: &'static str) {
    metrics::counter!("warden_webhook_deliveries_total", "source" => source, "outcome" => outcome)
        .increment(1);
}

/// Runs a handler, answering and counting by outcome.
async fn answer(
    source: &'static str,
    work: impl Future<Output = Result<Response, Refusal>>,
) -> Response {
    match work.await {
        Ok(r) => {
            record(source, "accepted");
            r
        }
        Err(refusal) => {
            record(
                source,
                if refusal.0.is_server_error() {
                    "retry"
                } else {
                    "refused"
                },
            );
            tracing::info!(source, status = refusal.0.as_u16(), reason = %refusal.1, "webhook refused");
            refusal.into_response()
        }
    }
}

impl Hooks {
    /// The sender's tenant: from its bearer ingest token, else its ingest certificate.
    async fn tenant(
        &self,
        headers: &HeaderMap,
        ext: &axum::http::Extensions,
    ) -> Result<String, Refusal> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    refusal(
                        StatusCode::UNAUTHORIZED,
                        "Authorization must be `Bearer <ingest token>`",
                    )
                })?;
            let mut tokens = self.agent.inner.tokens.clone();
            let r = tokens
                .resolve_ingest_token(tm::ResolveIngestTokenRequest {
                    token: token.to_owned(),
                })
                .await
                .map_err(|s| match s.code() {
                    Code::NotFound => refusal(StatusCode::UNAUTHORIZED, s.message()),
                    _ => Refusal::from(s),
                })?;
            return Ok(r.into_inner().tenant_id);
        }
        let leaf = ext
            .get::<PeerCertificates>()
            .and_then(PeerCertificates::leaf)
            .ok_or_else(|| {
                refusal(
                    StatusCode::UNAUTHORIZED,
                    "a webhook needs an ingest certificate scoped to one tenant or `Authorization: Bearer <ingest token>`",
                )
            })?;
        let caller = Caller::from_der(leaf.as_ref())
            .map_err(|e| refusal(StatusCode::UNAUTHORIZED, e.to_string()))?;
        Ok(
            warden_tls::authorize_caller(caller, "warden.agent.v1.Webhooks/Deliver")?
                .own_tenant()?,
        )
    }

    /// Reads the body up to the limit (413 past it).
    async fn body(&self, body: Body) -> Result<Bytes, Refusal> {
        let limit = self.opts.max_body_bytes;
        let limited = http_body_util::Limited::new(body, limit);
        match limited.collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than the {limit} bytes this listener accepts"),
            )),
            Err(_) => Err(refusal(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            )),
        }
    }

    /// Queues each trigger and says what became of it.
    async fn start(&self, tenant: &str, triggers: Vec<Trigger>) -> Result<Response, Refusal> {
        if triggers.is_empty() {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"runs": [], "note": "nothing to investigate in this delivery"}),
            ));
        }
        let mut runs = Vec::new();
        for t in triggers {
            let purpose = match t.kind {
                TriggerKind::Alert => Purpose::Alert,
                TriggerKind::ClusterEvent => Purpose::ClusterEvent,
                TriggerKind::Deployment => Purpose::Deployment,
            };
            let keys = t.keys.clone();
            let created = self
                .agent
                .enqueue(NewRun {
                    tenant_id: tenant.to_owned(),
                    purpose,
                    keys: keys.clone(),
                    trigger: brief::Trigger {
                        title: t.title,
                        description: t.description,
                        service: t.service,
                        labels: t.labels,
                        occurred_at_ms: t.occurred_at_ms,
                        detail: t.detail,
                    },
                })
                .await?;
            let run = created.run.unwrap_or_default();
            if created.duplicate && purpose == Purpose::ClusterEvent {
                self.attach(
                    tenant,
                    &keys,
                    "repeat",
                    json!({"note": "the same warning was reported again"}),
                )
                .await;
            }
            runs.push(json!({
                "id": run.id,
                "status": st::RunStatus::try_from(run.status).map_or("unknown", |s| s.as_str_name()),
                "duplicate": created.duplicate,
            }));
        }
        Ok(json_response(StatusCode::ACCEPTED, &json!({"runs": runs})))
    }

    /// Attaches an event to the run holding the first of `keys` that has one.
    async fn attach(&self, tenant: &str, keys: &[String], kind: &str, detail: serde_json::Value) {
        let mut runs = self.agent.inner.runs.clone();
        for key in keys {
            let r = runs
                .attach_run_event(st::AttachRunEventRequest {
                    tenant_id: tenant.to_owned(),
                    key: key.clone(),
                    event: Some(st::RunEvent {
                        kind: kind.to_owned(),
                        detail_json: detail.to_string(),
                        ..Default::default()
                    }),
                })
                .await;
            match r {
                Ok(_) => return,
                Err(s) if s.code() == Code::NotFound => continue,
                Err(s) => {
                    tracing::warn!(code = ?s.code(), "could not attach an event to a run");
                    return;
                }
            }
        }
    }
}

async fn alertmanager(State(h): State<Arc<Hooks>>, req: Request) -> Response {
    answer("alertmanager", async {
        let (parts, body) = req.into_parts();
        let tenant = h.tenant(&parts.headers, &parts.extensions).await?;
        let body = h.body(body).await?;
        let n = warden_triggers::alertmanager_notification(&body)?;
        for a in &n.resolved {
            let key = warden_triggers::alert_key(a);
            let detail = json!({"alertname": a.labels.get("alertname"), "ends_at_ms": a.ends_at_ms, "fingerprint": a.fingerprint});
            h.attach(&tenant, &[key], "resolved", detail).await;
        }
        h.start(&tenant, Trigger::from_alerts(&n).into_iter().collect()).await
    })
    .await
}

async fn kubernetes(State(h): State<Arc<Hooks>>, req: Request) -> Response {
    answer("kubernetes", async {
        let (parts, body) = req.into_parts();
        let tenant = h.tenant(&parts.headers, &parts.extensions).await?;
        let body = h.body(body).await?;
        let events = warden_triggers::kubernetes_events(&body)?;
        let incidents = warden_triggers::aggregate(&events, &h.opts.cluster_events);
        h.start(
            &tenant,
            incidents.iter().map(Trigger::from_incident).collect(),
        )
        .await
    })
    .await
}

async fn argocd(State(h): State<Arc<Hooks>>, req: Request) -> Response {
    answer("argocd", async {
        let (parts, body) = req.into_parts();
        let tenant = h.tenant(&parts.headers, &parts.extensions).await?;
        let body = h.body(body).await?;
        let deployment = warden_triggers::argocd_notification(&body)?;
        h.start(
            &tenant,
            deployment.iter().map(Trigger::from_deployment).collect(),
        )
        .await
    })
    .await
}

async fn github(State(h): State<Arc<Hooks>>, Path(tenant): Path<String>, req: Request) -> Response {
    answer("github", async {
        if !warden_tls::valid_tenant_id(&tenant) {
            return Err(refusal(StatusCode::NOT_FOUND, "no such tenant"));
        }
        let (parts, body) = req.into_parts();
        let body = h.body(body).await?;
        let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let secret = h.github_secret(&tenant).await?;
        if !warden_triggers::github_signature_ok(&secret, &body, header_str(warden_triggers::SIGNATURE_HEADER)) {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "X-Hub-Signature-256 is missing or does not match the body signed with this tenant's webhook secret",
            ));
        }
        let event = header_str(warden_triggers::EVENT_HEADER)
            .ok_or_else(|| refusal(StatusCode::BAD_REQUEST, "X-GitHub-Event is missing"))?;
        let delivery = header_str(warden_triggers::DELIVERY_HEADER).unwrap_or_default();
        if event.trim() == "pull_request" {
            let closed = warden_triggers::github_pull_request_closed(&body)?;
            return h.proposal_outcome(&tenant, closed, delivery).await;
        }
        let deployment = warden_triggers::github_deployment_status(event, delivery, &body)?;
        h.start(&tenant, deployment.iter().map(Trigger::from_deployment).collect()).await
    })
    .await
}

impl Hooks {
    /// A released proposal's pull request was closed: APPLIED if merged, else FAILED.
    /// Pull requests Warden did not open are acknowledged and change nothing.
    async fn proposal_outcome(
        &self,
        tenant: &str,
        closed: Option<warden_triggers::PullRequestClosed>,
        delivery: &str,
    ) -> Result<Response, Refusal> {
        let Some(closed) = closed else {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"note": "only a closed pull request changes a proposal"}),
            ));
        };
        let recorded = self
            .agent
            .proposal_store()
            .record_outcome(st::RecordOutcomeRequest {
                tenant_id: tenant.to_owned(),
                release_url: closed.html_url,
                merged: closed.merged,
                delivery: delivery.chars().take(128).collect(),
            })
            .await;
        match recorded {
            Ok(p) => {
                let p = p.into_inner();
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"proposal": p.id, "status": st::ProposalStatus::try_from(p.status).map_or("", |s| s.as_str_name())}),
                ))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(json_response(
                StatusCode::OK,
                &json!({"note": "no released proposal is this pull request"}),
            )),
            // A redelivery, or a report for a proposal already applied or failed:
            // acknowledged (so it is not sent again), and nothing moves.
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                Ok(json_response(StatusCode::OK, &json!({"note": s.message()})))
            }
            Err(s) => Err(s.into()),
        }
    }

    /// The tenant's GitHub webhook secret; a tenant without one accepts no deliveries.
    async fn github_secret(&self, tenant: &str) -> Result<Vec<u8>, Refusal> {
        let unknown = || {
            refusal(
                StatusCode::NOT_FOUND,
                "this tenant has no GitHub webhook secret configured",
            )
        };
        let settings = self
            .agent
            .tenant_settings(tenant)
            .await
            .map_err(|_| unknown())?;
        let id = settings
            .github
            .as_ref()
            .map(|g| g.webhook_secret_id.clone())
            .filter(|id| !id.is_empty())
            .ok_or_else(unknown)?;
        let mut tenants = self.agent.inner.tenants.clone();
        let creds = tenants
            .get_source_credentials(st::GetSourceCredentialsRequest {
                tenant_id: tenant.to_owned(),
                credentials_id: id,
            })
            .await?
            .into_inner();
        match creds.credentials {
            Some(source_credentials::Credentials::BearerToken(secret)) if !secret.is_empty() => {
                Ok(secret.into_bytes())
            }
            _ => Err(unknown()),
        }
    }
}
