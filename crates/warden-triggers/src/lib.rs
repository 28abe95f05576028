//! Webhook payloads that real senders post, turned into normalized investigation
//! [`Trigger`]s. Plain bytes in, plain data out: no I/O, no async, no clock, so the
//! HTTPS listener around it stays thin and every decision here is a table test.
//!
//! | sender | parse | becomes |
//! |---|---|---|
//! | Prometheus Alertmanager `webhook_config` (v4) | [`alertmanager_notification`] | [`Trigger::from_alerts`] |
//! | Kubernetes Events (core `v1`, `events.k8s.io/v1`; kubernetes-event-exporter) | [`kubernetes_events`], then [`aggregate`] | [`Trigger::from_incident`] |
//! | GitHub `deployment_status` (after [`github_signature_ok`]) | [`github_deployment_status`] | [`Trigger::from_deployment`] |
//! | Argo CD notifications, webhook service | [`argocd_notification`] | [`Trigger::from_deployment`] |
//!
//! # Why the keys are what they are
//!
//! Every sender here delivers *at least once*. Alertmanager re-sends a whole alert group
//! every `repeat_interval` while it fires, again whenever the group changes, and retries
//! a 5xx answer until it gets a 2xx; GitHub redelivers on request; Argo CD retries a
//! failed send; event exporters re-post an Event each time its count rises. A listener
//! that started an investigation per request would start dozens for one problem. So
//! each trigger carries exactly-once keys derived only from *what happened*, never from
//! the delivery (time received, request id, replica), and any number of listener
//! replicas compute the same keys for the same problem without sharing state:
//!
//! - an alert: its fingerprint (a hash of its labels) and its `startsAt`
//!   ([`alert_key`]). Repeats keep both; an alert that resolves and fires again has a
//!   new `startsAt`, so a new key. With no fingerprint (old senders), one is derived
//!   from the sorted labels ([`derive_fingerprint`]), so label order does not matter.
//! - a Kubernetes incident: involved object, reason and the fixed window its first
//!   occurrence falls in ([`cluster_event_key`]).
//! - a GitHub deployment: the delivery GUID, which a redelivery repeats.
//! - an Argo CD deployment: application, revision, finish time and outcome (a rollback
//!   to an earlier revision finishes at another time, so it is a new deployment).
//!
//! A listener answers 2xx once it has durably recorded the keys (so a retry is
//! harmless), 4xx for every [`PayloadError`] (Alertmanager never retries 4xx, but
//! retries 5xx forever), and 5xx only for its own failures.
//!
//! # Bounds
//!
//! Bodies over [`MAX_BODY_BYTES`], more than [`MAX_ALERTS`] alerts or more than
//! [`MAX_EVENTS`] events are refused whole; a trigger's title, description and labels
//! are cut to [`MAX_TITLE_BYTES`], [`MAX_DESCRIPTION_BYTES`] and [`MAX_LABELS`] on
//! character boundaries. Nothing here panics on any input (a property test feeds
//! arbitrary and mangled bodies to every parser).
//!
//! # The Argo CD template we recommend
//!
//! Argo CD has no fixed webhook body, so the body is ours to choose. Put this in
//! `argocd-notifications-cm` (the URL and the token secret are yours; the names are
//! Warden's own so they clobber none of the catalog's templates) and subscribe
//! applications with the annotation
//! `notifications.argoproj.io/subscribe.on-warden-deployment.warden: ""`:
//!
//! ```yaml
//! apiVersion: v1
//! kind: ConfigMap
//! metadata:
//!   name: argocd-notifications-cm
//! data:
//!   service.webhook.warden: |
//!     url: https://warden.example.com/hooks/argocd
//!     headers:
//!     - name: Content-Type
//!       value: application/json
//!     - name: Authorization
//!       value: Bearer $warden-token
//!   template.warden-deployment: |
//!     webhook:
//!       warden:
//!         method: POST
//!         body: |
//!           {
//!             "app": "{{.app.metadata.name}}",
//!             "revision": "{{.app.status.sync.revision}}",
//!             "syncStatus": "{{.app.status.sync.status}}",
//!             "healthStatus": "{{.app.status.health.status}}",
//!             "phase": "{{.app.status.operationState.phase}}",
//!             "destinationNamespace": "{{.app.spec.destination.namespace}}",
//!             "repoURL": "{{.app.spec.source.repoURL}}",
//!             "finishedAt": "{{.app.status.operationState.finishedAt}}",
//!             "url": "{{.context.argocdUrl}}/applications/{{.app.metadata.name}}"
//!           }
//!   trigger.on-warden-deployment: |
//!     - description: A sync finished (Succeeded, Failed or Error), once per operation
//!       when: app.status.operationState != nil and app.status.operationState.phase in ['Succeeded', 'Failed', 'Error']
//!       oncePer: app.status.operationState.finishedAt
//!       send: [warden-deployment]
//!     - description: The application turned Degraded (after a deploy, most often)
//!       when: app.status.health.status == 'Degraded'
//!       send: [warden-deployment]
//! ```
//!
//! Only `app`, `revision`, `finishedAt` and one of `phase` / `syncStatus` /
//! `healthStatus` are needed; `previousRevision` is read when a template adds it. A
//! template may instead send the whole Application, `{"app": {{toJson .app}}}`, which is
//! read the same way (with `status.history` giving the previous revision).

mod aggregate;
mod alertmanager;
mod argocd;
mod deployment;
mod error;
mod github;
mod json;
mod kubernetes;
mod pull_request;
mod trigger;

pub use aggregate::{
    ClusterIncident, DEFAULT_WARNING_REASONS, DEFAULT_WINDOW_MS, EventFilter,
    MAX_INCIDENT_MESSAGE_BYTES, MAX_INCIDENT_MESSAGES, aggregate, cluster_event_key,
};
pub use alertmanager::{
    Alert, AlertNotification, MAX_ALERTS, alert_key, alertmanager_notification, derive_fingerprint,
};
pub use argocd::argocd_notification;
pub use deployment::{DeploySource, Deployment};
pub use error::PayloadError;
pub use github::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, github_deployment_status, github_signature_ok,
};
pub use kubernetes::{KubeEvent, MAX_EVENTS, ObjectRef, kubernetes_events};
pub use pull_request::{PullRequestClosed, github_pull_request_closed};
pub use trigger::{
    MAX_DESCRIPTION_BYTES, MAX_DETAIL_ALERTS, MAX_LABEL_NAME_BYTES, MAX_LABEL_VALUE_BYTES,
    MAX_LABELS, MAX_TITLE_BYTES, Trigger, TriggerKind, workload_name,
};

/// The largest body any parser here accepts (16 MiB). A listener should stop reading
/// there too, before the body is in memory.
pub const MAX_BODY_BYTES: usize = 16 << 20;
