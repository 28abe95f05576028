//! Argo CD notifications (the `webhook` service of argocd-notifications) as deployments.
//!
//! Argo CD has no fixed webhook body: the template decides. Two bodies are read: the
//! flat one this crate recommends (see the crate docs for the ConfigMap), whose `app` is
//! the application's name, and one whose `app` is the whole Application object
//! (`{"app": {{toJson .app}}}`). Go templates print `<no value>` for a missing field,
//! which reads as absent.
//!
//! Argo CD retries a failed send (5xx or network error) up to `retryMax` times, and a
//! sync can notify through several triggers (`on-sync-succeeded`, `on-deployed`) with
//! the same template. The key is therefore what the body says about the sync, not the
//! delivery: `argocd:<app>@<revision>:<finishedAt ms>:<state>`. The finish time tells a
//! rollback (A, B, then A again) from the first deploy of A; the state tells "synced"
//! from the later "synced but Degraded" of the same sync.

use serde_json::Value;

use crate::aggregate::key_part;
use crate::deployment::{DeploySource, Deployment};
use crate::error::{PayloadError, invalid, quoted};
use crate::json::{at, first_text, parse_body, text, time_ms};

const WHAT: &str = "argocd notification";

/// What the body says, whichever of the two shapes it has.
struct Report<'a> {
    app: Option<&'a str>,
    revision: Option<&'a str>,
    previous_revision: Option<String>,
    phase: Option<&'a str>,
    sync: Option<&'a str>,
    health: Option<&'a str>,
    namespace: Option<&'a str>,
    repo: Option<&'a str>,
    finished_at_ms: Option<i64>,
    url: Option<String>,
}

/// An Argo CD notification as a deployment. `Ok(None)` while the sync is still running
/// (phase `Running` or `Terminating`) or when nothing says it finished (no phase, not
/// Synced, not Degraded).
pub fn argocd_notification(body: &[u8]) -> Result<Option<Deployment>, PayloadError> {
    let root = parse_body(WHAT, body)?;
    if !root.is_object() {
        return Err(invalid(WHAT, "the body must be a JSON object"));
    }
    let report = match root.get("app") {
        Some(Value::Object(_)) => from_application(&root)?,
        Some(Value::String(_)) => from_template(&root)?,
        None | Some(Value::Null) => {
            return Err(invalid(
                WHAT,
                "app is missing: the template must send \"app\": \"{{.app.metadata.name}}\" (or the whole Application object)",
            ));
        }
        Some(_) => {
            return Err(invalid(
                WHAT,
                "app must be the application's name or the Application object",
            ));
        }
    };
    let app = report
        .app
        .ok_or_else(|| invalid(WHAT, "app (the application's name) is empty"))?;
    let Some(state) = outcome(report.phase, report.sync, report.health)? else {
        return Ok(None);
    };
    let revision = report
        .revision
        .ok_or_else(|| invalid(WHAT, "revision is missing"))?;
    let deployed_at_ms = report.finished_at_ms.ok_or_else(|| {
        invalid(
            WHAT,
            "finishedAt is missing: the template must send \"finishedAt\": \"{{.app.status.operationState.finishedAt}}\"",
        )
    })?;
    Ok(Some(Deployment {
        source: DeploySource::ArgoCd,
        dedupe_key: format!(
            "argocd:{}@{}:{deployed_at_ms}:{state}",
            key_part(app),
            key_part(revision)
        ),
        service: app.to_owned(),
        environment: report.namespace.unwrap_or("").to_owned(),
        revision: revision.to_owned(),
        previous_revision: report.previous_revision.filter(|p| p != revision),
        state: state.to_owned(),
        deployed_at_ms,
        url: report.url.unwrap_or_default(),
        repository: report.repo.unwrap_or("").to_owned(),
    }))
}

/// The flat body of the recommended template.
fn from_template(root: &Value) -> Result<Report<'_>, PayloadError> {
    Ok(Report {
        app: text(root, &["app"]),
        revision: text(root, &["revision"]),
        previous_revision: text(root, &["previousRevision"]).map(str::to_owned),
        phase: text(root, &["phase"]),
        sync: text(root, &["syncStatus"]),
        health: text(root, &["healthStatus"]),
        namespace: text(root, &["destinationNamespace"]),
        repo: text(root, &["repoURL"]),
        finished_at_ms: time_ms(root, &["finishedAt"], WHAT, "finishedAt")?,
        url: text(root, &["url"]).map(str::to_owned),
    })
}

/// `{"app": <Application>}`, optionally with `context.argocdUrl` for the link.
fn from_application(root: &Value) -> Result<Report<'_>, PayloadError> {
    let Some(app) = root.get("app") else {
        return Err(invalid(WHAT, "app is missing"));
    };
    let name = text(app, &["metadata", "name"]);
    let op = &["status", "operationState"];
    let revision = first_text(
        app,
        &[
            &["status", "operationState", "syncResult", "revision"],
            &["status", "operationState", "operation", "sync", "revision"],
            &["status", "sync", "revision"],
        ],
    )
    .or_else(|| {
        first_of_array(
            app,
            &["status", "operationState", "syncResult", "revisions"],
        )
    })
    .or_else(|| first_of_array(app, &["status", "sync", "revisions"]));
    let url = match (text(root, &["context", "argocdUrl"]), name) {
        (Some(base), Some(name)) => Some(format!(
            "{}/applications/{name}",
            base.trim_end_matches('/')
        )),
        _ => None,
    };
    Ok(Report {
        app: name,
        revision,
        previous_revision: revision.and_then(|r| previous_in_history(app, r)),
        phase: text(app, &[op[0], op[1], "phase"]),
        sync: text(app, &["status", "sync", "status"]),
        health: text(app, &["status", "health", "status"]),
        namespace: text(app, &["spec", "destination", "namespace"]),
        repo: text(app, &["spec", "source", "repoURL"]).or_else(|| {
            at(app, &["spec", "sources"])
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(|s| text(s, &["repoURL"]))
        }),
        finished_at_ms: time_ms(
            app,
            &[op[0], op[1], "finishedAt"],
            WHAT,
            "app.status.operationState.finishedAt",
        )?,
        url,
    })
}

fn first_of_array<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?
        .as_array()?
        .first()?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The latest revision in `status.history` other than `current`: after a successful
/// sync the newest entry is `current` itself; after a failed one it is what still runs.
fn previous_in_history(app: &Value, current: &str) -> Option<String> {
    let history = at(app, &["status", "history"])?.as_array()?;
    history.iter().rev().find_map(|entry| {
        text(entry, &["revision"])
            .or_else(|| first_of_array(entry, &["revisions"]))
            .filter(|r| *r != current)
            .map(str::to_owned)
    })
}

/// The deployment state, or `None` when the sync has not finished.
fn outcome(
    phase: Option<&str>,
    sync: Option<&str>,
    health: Option<&str>,
) -> Result<Option<&'static str>, PayloadError> {
    let degraded = health.is_some_and(|h| h.eq_ignore_ascii_case("Degraded"));
    let Some(phase) = phase else {
        // A template without the phase: Synced or Degraded is the best word there is.
        return Ok(if degraded {
            Some("degraded")
        } else if sync.is_some_and(|s| s.eq_ignore_ascii_case("Synced")) {
            Some("success")
        } else {
            None
        });
    };
    match phase.to_ascii_lowercase().as_str() {
        "succeeded" if degraded => Ok(Some("degraded")),
        "succeeded" => Ok(Some("success")),
        "failed" => Ok(Some("failure")),
        "error" => Ok(Some("error")),
        "running" | "terminating" => Ok(None),
        _ => Err(invalid(
            WHAT,
            format!(
                "phase is {}; Argo CD's phases are Running, Terminating, Succeeded, Failed and Error",
                quoted(phase)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_phase_then_health() {
        assert_eq!(
            outcome(Some("Succeeded"), None, Some("Healthy")),
            Ok(Some("success"))
        );
        assert_eq!(
            outcome(Some("Succeeded"), None, Some("Degraded")),
            Ok(Some("degraded"))
        );
        assert_eq!(outcome(Some("Failed"), None, None), Ok(Some("failure")));
        assert_eq!(outcome(Some("Error"), None, None), Ok(Some("error")));
        assert_eq!(outcome(Some("Running"), Some("Synced"), None), Ok(None));
        assert_eq!(
            outcome(None, Some("Synced"), Some("Healthy")),
            Ok(Some("success"))
        );
        assert_eq!(
            outcome(None, Some("OutOfSync"), Some("Progressing")),
            Ok(None)
        );
        assert!(outcome(Some("Exploded"), None, None).is_err());
    }

    #[test]
    fn go_no_value_reads_as_absent() {
        let body =
            br#"{"app":"shop","revision":"abc","phase":"<no value>","syncStatus":"OutOfSync",
            "finishedAt":"<no value>"}"#;
        assert_eq!(argocd_notification(body), Ok(None));
    }

    #[test]
    fn a_finished_sync_without_finished_at_says_how_to_fix_the_template() {
        let body = br#"{"app":"shop","revision":"abc","phase":"Succeeded"}"#;
        let e = argocd_notification(body).unwrap_err().to_string();
        assert!(
            e.starts_with("argocd notification: finishedAt is missing"),
            "{e}"
        );
        assert!(e.contains("operationState.finishedAt"), "{e}");
    }
}
