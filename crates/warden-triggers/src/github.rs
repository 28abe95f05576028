//! GitHub webhooks: signature check (`X-Hub-Signature-256`) and `deployment_status`.
//!
//! GitHub signs each delivery with HMAC-SHA256 of the raw body under the webhook's
//! secret and sends `sha256=<hex>`; the check runs on the bytes received, before any
//! parsing, and compares in constant time. Each delivery carries a GUID
//! (`X-GitHub-Delivery`) that a redelivery repeats, so the exactly-once key of a
//! deployment status is `gh-delivery:<GUID>`.
//!
//! Which states are deployments: `success`, `failure` and `error` are final and become
//! a [`Deployment`]. `queued`, `pending`, `in_progress` and `waiting` are not final yet
//! (`Ok(None)`: the final status arrives as its own delivery). `inactive` is also
//! `Ok(None)`: GitHub marks the *previous* deployment of an environment inactive when a
//! newer one succeeds, so it announces nothing new. A state GitHub does not document is
//! an error, so a person sees it instead of it being dropped.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::deployment::{DeploySource, Deployment};
use crate::error::{PayloadError, invalid, quoted};
use crate::json::{first_text, first_time_ms, parse_body, text};

/// The header carrying `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The header naming the event (`deployment_status`, `ping`, ...).
pub const EVENT_HEADER: &str = "X-GitHub-Event";
/// The header carrying the delivery GUID.
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

const WHAT: &str = "github deployment_status";
const MAX_DELIVERY_ID_CHARS: usize = 128;

/// Whether `header` (the `X-Hub-Signature-256` value) is GitHub's signature of `body`
/// under `secret`. False for a missing header, one without the `sha256=` prefix, hex
/// that is not 32 bytes, a wrong signature, and an empty secret (an unset secret must
/// never make every body look signed). Compares in constant time.
pub fn github_signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_sig) else {
        return false;
    };
    if signature.len() != 32 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// A GitHub delivery as a deployment. `event_header` is `X-GitHub-Event`, `delivery_id`
/// is `X-GitHub-Delivery`; check [`github_signature_ok`] first.
///
/// `Ok(None)` for `ping` (sent when the webhook is created) and for states that are not
/// a finished deployment (see the module docs); an error for any other event.
pub fn github_deployment_status(
    event_header: &str,
    delivery_id: &str,
    body: &[u8],
) -> Result<Option<Deployment>, PayloadError> {
    match event_header.trim() {
        "ping" => return Ok(None),
        "deployment_status" => {}
        other => {
            let shown: String = other.chars().filter(|c| !c.is_control()).take(40).collect();
            return Err(PayloadError::UnsupportedGithubEvent(shown));
        }
    }
    let delivery_id = delivery_id.trim();
    if delivery_id.is_empty()
        || delivery_id.len() > MAX_DELIVERY_ID_CHARS
        || !delivery_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(PayloadError::BadGithubDeliveryId);
    }
    let root = parse_body(WHAT, body)?;
    if !root.is_object() {
        return Err(invalid(WHAT, "the body must be a JSON object"));
    }
    if let Some(action) = text(&root, &["action"])
        && action != "created"
    {
        // `created` is the only action GitHub sends for this event.
        return Ok(None);
    }
    for field in ["deployment_status", "deployment"] {
        if !root.get(field).is_some_and(Value::is_object) {
            return Err(invalid(
                WHAT,
                format!("{field} is missing or not an object"),
            ));
        }
    }
    let state = text(&root, &["deployment_status", "state"])
        .ok_or_else(|| invalid(WHAT, "deployment_status.state is missing"))?
        .to_ascii_lowercase();
    match state.as_str() {
        "success" | "failure" | "error" => {}
        "queued" | "pending" | "in_progress" | "waiting" | "inactive" => return Ok(None),
        other => {
            return Err(invalid(
                WHAT,
                format!(
                    "deployment_status.state is {}; GitHub documents success, failure, error, inactive, queued, pending, in_progress and waiting",
                    quoted(other)
                ),
            ));
        }
    }
    let revision = text(&root, &["deployment", "sha"])
        .ok_or_else(|| invalid(WHAT, "deployment.sha is missing"))?;
    let deployed_at_ms = first_time_ms(
        &root,
        &[
            (
                &["deployment_status", "updated_at"],
                "deployment_status.updated_at",
            ),
            (
                &["deployment_status", "created_at"],
                "deployment_status.created_at",
            ),
        ],
        WHAT,
    )?
    .ok_or_else(|| invalid(WHAT, "deployment_status.created_at is missing"))?;
    let repository = text(&root, &["repository", "full_name"]).unwrap_or("");
    let service = first_text(&root, &[&["repository", "name"]])
        .or_else(|| repository.rsplit('/').next())
        .unwrap_or("");
    Ok(Some(Deployment {
        source: DeploySource::GitHub,
        dedupe_key: format!("gh-delivery:{delivery_id}"),
        service: service.to_owned(),
        environment: first_text(
            &root,
            &[
                &["deployment_status", "environment"],
                &["deployment", "environment"],
            ],
        )
        .unwrap_or("")
        .to_owned(),
        revision: revision.to_owned(),
        previous_revision: None,
        state,
        deployed_at_ms,
        url: first_text(
            &root,
            &[
                &["deployment_status", "log_url"],
                &["deployment_status", "target_url"],
                &["deployment_status", "environment_url"],
                &["repository", "html_url"],
            ],
        )
        .unwrap_or("")
        .to_owned(),
        repository: repository.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secret_never_verifies_even_its_own_signature() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
        mac.update(b"body");
        let header = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(!github_signature_ok(b"", b"body", Some(&header)));
    }

    #[test]
    fn other_events_are_refused_with_their_name_cut_and_cleaned() {
        let e = github_deployment_status("push\n", "id", b"{}").unwrap_err();
        assert_eq!(e, PayloadError::UnsupportedGithubEvent("push".into()));
        let long = "x".repeat(500);
        let PayloadError::UnsupportedGithubEvent(shown) =
            github_deployment_status(&long, "id", b"{}").unwrap_err()
        else {
            unreachable!("always this variant")
        };
        assert_eq!(shown.len(), 40);
    }

    #[test]
    fn delivery_ids_must_be_printable_ascii() {
        for bad in ["", "  ", "a b", "é", &"x".repeat(129)] {
            assert_eq!(
                github_deployment_status("deployment_status", bad, b"{}"),
                Err(PayloadError::BadGithubDeliveryId),
                "{bad:?}"
            );
        }
    }
}
