//! GitHub and Argo CD deployment webhooks: signatures, parsing, keys and triggers.
//!
//! Fixtures:
//! - the HMAC test vector of GitHub's "Validating webhook deliveries" page;
//! - `GH_DEPLOYMENT_STATUS`: GitHub's example `deployment_status` payload (the
//!   Codertocat/Hello-World one of the webhook events documentation and
//!   `@octokit/webhooks`' payload examples), user objects and URL lists trimmed;
//! - `GH_PING`: a `ping` delivery (`zen`, `hook_id`, `hook`);
//! - `ARGOCD_TEMPLATE`: the crate docs' recommended Argo CD template rendered for the
//!   guestbook application of Argo CD's `application.yaml` documentation;
//! - `ARGOCD_APPLICATION`: that documented guestbook Application with a `status` as the
//!   Application CRD defines it (sync, health, operationState, history).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use warden_triggers::{
    DeploySource, PayloadError, Trigger, TriggerKind, argocd_notification,
    github_deployment_status, github_signature_ok,
};

const GH_SECRET: &[u8] = b"It's a Secret to Everybody";
const GH_BODY: &[u8] = b"Hello, World!";
const GH_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn githubs_documented_signature_vector_verifies() {
    assert!(github_signature_ok(GH_SECRET, GH_BODY, Some(GH_SIGNATURE)));
    // Hex digits in upper case are the same bytes.
    let upper = format!("sha256={}", GH_SIGNATURE["sha256=".len()..].to_uppercase());
    assert!(github_signature_ok(GH_SECRET, GH_BODY, Some(&upper)));
}

#[test]
fn a_flipped_byte_a_wrong_secret_or_a_bad_header_fails() {
    let mut flipped = GH_BODY.to_vec();
    flipped[0] ^= 0x01;
    assert!(!github_signature_ok(
        GH_SECRET,
        &flipped,
        Some(GH_SIGNATURE)
    ));
    assert!(!github_signature_ok(
        b"It's a Secret to Everybody!",
        GH_BODY,
        Some(GH_SIGNATURE)
    ));
    let mut wrong_sig = GH_SIGNATURE.to_owned();
    wrong_sig.replace_range(wrong_sig.len() - 1.., "f");
    assert!(!github_signature_ok(GH_SECRET, GH_BODY, Some(&wrong_sig)));

    let hex = &GH_SIGNATURE["sha256=".len()..];
    let malformed = [
        None,
        Some(""),
        Some(hex),                                     // no prefix
        Some(&GH_SIGNATURE[..GH_SIGNATURE.len() - 2]), // 31 bytes
        Some("sha256=zz07ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
        Some("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
        Some("sha256="),
    ];
    for header in malformed {
        assert!(
            !github_signature_ok(GH_SECRET, GH_BODY, header),
            "{header:?}"
        );
    }
}

const GH_DEPLOYMENT_STATUS: &str = r#"{
  "action": "created",
  "deployment_status": {
    "url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/145988746/statuses/209916254",
    "id": 209916254,
    "node_id": "MDE2OkRlcGxveW1lbnRTdGF0dXMyMDk5MTYyNTQ=",
    "state": "success",
    "creator": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": false},
    "description": "",
    "environment": "production",
    "target_url": "",
    "created_at": "2019-05-15T15:20:55Z",
    "updated_at": "2019-05-15T15:20:55Z",
    "deployment_url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/145988746",
    "repository_url": "https://api.github.com/repos/Codertocat/Hello-World"
  },
  "deployment": {
    "url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/145988746",
    "id": 145988746,
    "node_id": "MDEwOkRlcGxveW1lbnQxNDU5ODg3NDY=",
    "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
    "ref": "master",
    "task": "deploy",
    "payload": {},
    "original_environment": "production",
    "environment": "production",
    "description": null,
    "creator": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": false},
    "created_at": "2019-05-15T15:20:53Z",
    "updated_at": "2019-05-15T15:20:55Z",
    "statuses_url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/145988746/statuses",
    "repository_url": "https://api.github.com/repos/Codertocat/Hello-World",
    "performed_via_github_app": null
  },
  "repository": {
    "id": 186853002,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
    "name": "Hello-World",
    "full_name": "Codertocat/Hello-World",
    "private": false,
    "owner": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": false},
    "html_url": "https://github.com/Codertocat/Hello-World",
    "default_branch": "master"
  },
  "sender": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": false}
}"#;

const GH_PING: &str = r#"{
  "zen": "Avoid administrative distraction.",
  "hook_id": 90753227,
  "hook": {"type": "Repository", "id": 90753227, "name": "web", "active": true,
           "events": ["deployment_status"], "config": {"content_type": "json", "insecure_ssl": "0", "secret": "********"}}
}"#;

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

#[test]
fn githubs_documented_deployment_status_parses_to_its_values() {
    let d = github_deployment_status(
        "deployment_status",
        DELIVERY,
        GH_DEPLOYMENT_STATUS.as_bytes(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(d.source, DeploySource::GitHub);
    assert_eq!(d.dedupe_key, format!("gh-delivery:{DELIVERY}"));
    assert_eq!(d.service, "Hello-World");
    assert_eq!(d.repository, "Codertocat/Hello-World");
    assert_eq!(d.environment, "production");
    assert_eq!(d.revision, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
    assert_eq!(d.previous_revision, None);
    assert_eq!(d.state, "success");
    assert_eq!(d.deployed_at_ms, 1_557_933_655_000);
    assert_eq!(
        d.url, "https://github.com/Codertocat/Hello-World",
        "target_url is empty, so the repository page"
    );

    let t = Trigger::from_deployment(&d);
    assert_eq!(t.kind, TriggerKind::Deployment);
    assert_eq!(t.keys, vec![d.dedupe_key.clone()]);
    assert_eq!(
        t.title,
        "Deployment success: Hello-World f95f852bd8fc to production"
    );
    assert_eq!(t.service, "Hello-World");
    assert_eq!(t.occurred_at_ms, d.deployed_at_ms);
    assert_eq!(t.labels["trigger.source"], "github");
    assert_eq!(t.labels["deployment.environment"], "production");
    assert!(
        t.description
            .contains("Revision: f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
    );
}

#[test]
fn a_redelivery_keeps_its_key_and_another_delivery_gets_another() {
    let parse = |id: &str| {
        github_deployment_status("deployment_status", id, GH_DEPLOYMENT_STATUS.as_bytes())
            .unwrap()
            .unwrap()
            .dedupe_key
    };
    assert_eq!(parse(DELIVERY), parse(DELIVERY));
    assert_ne!(
        parse(DELIVERY),
        parse("0b989ba4-242f-11e5-81e1-c7b6966d2516")
    );
}

#[test]
fn ping_and_unfinished_states_are_none_and_final_ones_are_deployments() {
    assert_eq!(
        github_deployment_status("ping", DELIVERY, GH_PING.as_bytes()),
        Ok(None)
    );
    for state in ["queued", "pending", "in_progress", "waiting", "inactive"] {
        let body = GH_DEPLOYMENT_STATUS
            .replace(r#""state": "success""#, &format!(r#""state": "{state}""#));
        assert_eq!(
            github_deployment_status("deployment_status", DELIVERY, body.as_bytes()),
            Ok(None),
            "{state}"
        );
    }
    for state in ["failure", "error"] {
        let body = GH_DEPLOYMENT_STATUS
            .replace(r#""state": "success""#, &format!(r#""state": "{state}""#));
        let d = github_deployment_status("deployment_status", DELIVERY, body.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(d.state, state);
    }
}

#[test]
fn malformed_github_deliveries_say_what_is_wrong() {
    let e = github_deployment_status("push", DELIVERY, b"{}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "github event `push` is not handled here: subscribe this webhook to `deployment_status` (and `pull_request`, for released proposals) only"
    );
    assert_eq!(
        github_deployment_status("deployment_status", "", GH_DEPLOYMENT_STATUS.as_bytes()),
        Err(PayloadError::BadGithubDeliveryId)
    );
    let cases = [
        ("{", "github deployment_status is not valid JSON"),
        (
            "{}",
            "github deployment_status: deployment_status is missing or not an object",
        ),
        (
            r#"{"deployment_status": {"state": "success"}, "deployment": {}}"#,
            "github deployment_status: deployment.sha is missing",
        ),
        (
            r#"{"deployment_status": {"state": "exploded"}, "deployment": {}}"#,
            "github deployment_status: deployment_status.state is \"exploded\"",
        ),
    ];
    for (body, expected) in cases {
        let e =
            github_deployment_status("deployment_status", DELIVERY, body.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with(expected), "{body}: {e}");
    }
}

const ARGOCD_TEMPLATE: &str = r#"{
  "app": "guestbook",
  "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
  "syncStatus": "Synced",
  "healthStatus": "Healthy",
  "phase": "Succeeded",
  "destinationNamespace": "guestbook",
  "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
  "finishedAt": "2024-05-01T10:15:42Z",
  "url": "https://argocd.example.com/applications/guestbook"
}"#;

const ARGOCD_APPLICATION: &str = r#"{
  "app": {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "guestbook", "namespace": "argocd"},
    "spec": {
      "project": "default",
      "source": {
        "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
        "targetRevision": "HEAD",
        "path": "guestbook"
      },
      "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook"}
    },
    "status": {
      "sync": {"status": "Synced", "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba"},
      "health": {"status": "Healthy", "lastTransitionTime": "2024-05-01T10:15:50Z"},
      "operationState": {
        "operation": {"sync": {"revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba"}},
        "phase": "Succeeded",
        "message": "successfully synced (all tasks run)",
        "startedAt": "2024-05-01T10:15:30Z",
        "finishedAt": "2024-05-01T10:15:42Z",
        "syncResult": {"revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba"}
      },
      "history": [
        {"id": 3, "revision": "0d521c6e049889134f3122eb32d7ed342f43ca0d", "deployedAt": "2024-04-28T09:00:00Z"},
        {"id": 4, "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba", "deployedAt": "2024-05-01T10:15:42Z"}
      ]
    }
  },
  "context": {"argocdUrl": "https://argocd.example.com"}
}"#;

const GUESTBOOK_FINISHED_MS: i64 = 1_714_558_542_000; // 2024-05-01T10:15:42Z

#[test]
fn the_recommended_argocd_template_parses_to_its_values() {
    let d = argocd_notification(ARGOCD_TEMPLATE.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(d.source, DeploySource::ArgoCd);
    assert_eq!(d.service, "guestbook");
    assert_eq!(d.environment, "guestbook");
    assert_eq!(d.revision, "53e28ff20cc530b9ada2173fbbd64d48338583ba");
    assert_eq!(d.state, "success");
    assert_eq!(d.deployed_at_ms, GUESTBOOK_FINISHED_MS);
    assert_eq!(
        d.repository,
        "https://github.com/argoproj/argocd-example-apps.git"
    );
    assert_eq!(d.url, "https://argocd.example.com/applications/guestbook");
    assert_eq!(
        d.dedupe_key,
        format!(
            "argocd:guestbook@53e28ff20cc530b9ada2173fbbd64d48338583ba:{GUESTBOOK_FINISHED_MS}:success"
        )
    );
    let t = Trigger::from_deployment(&d);
    assert_eq!(t.labels["trigger.source"], "argocd");
    assert_eq!(
        t.title,
        "Deployment success: guestbook 53e28ff20cc5 to guestbook"
    );
}

#[test]
fn the_whole_application_reads_like_the_template_and_adds_the_previous_revision() {
    let from_template = argocd_notification(ARGOCD_TEMPLATE.as_bytes())
        .unwrap()
        .unwrap();
    let from_app = argocd_notification(ARGOCD_APPLICATION.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        from_app.previous_revision.as_deref(),
        Some("0d521c6e049889134f3122eb32d7ed342f43ca0d")
    );
    let mut without_previous = from_app.clone();
    without_previous.previous_revision = None;
    assert_eq!(without_previous, from_template);
}

#[test]
fn argocd_keys_tell_retries_from_rollbacks_and_later_degradation() {
    let key = |body: &str| {
        argocd_notification(body.as_bytes())
            .unwrap()
            .unwrap()
            .dedupe_key
    };
    let first = key(ARGOCD_TEMPLATE);
    assert_eq!(
        first,
        key(ARGOCD_TEMPLATE),
        "a retried send is the same deployment"
    );
    let rollback = ARGOCD_TEMPLATE.replace("2024-05-01T10:15:42Z", "2024-05-03T08:00:00Z");
    assert_ne!(
        first,
        key(&rollback),
        "the same revision deployed again later"
    );
    let degraded = ARGOCD_TEMPLATE.replace(r#""Healthy""#, r#""Degraded""#);
    let d = argocd_notification(degraded.as_bytes()).unwrap().unwrap();
    assert_eq!(d.state, "degraded");
    assert_ne!(first, d.dedupe_key);
}

#[test]
fn running_syncs_are_none_and_failed_ones_are_failures() {
    let running = ARGOCD_TEMPLATE.replace("Succeeded", "Running");
    assert_eq!(argocd_notification(running.as_bytes()), Ok(None));
    let failed = ARGOCD_TEMPLATE.replace("Succeeded", "Failed");
    let d = argocd_notification(failed.as_bytes()).unwrap().unwrap();
    assert_eq!(d.state, "failure");
}

#[test]
fn malformed_argocd_bodies_say_how_to_fix_the_template() {
    let cases = [
        ("[1]", "argocd notification: the body must be a JSON object"),
        (
            r#"{"revision":"x"}"#,
            "argocd notification: app is missing: the template must send",
        ),
        (
            r#"{"app": 5}"#,
            "argocd notification: app must be the application's name",
        ),
        (
            r#"{"app":"guestbook","phase":"Succeeded","finishedAt":"2024-05-01T10:15:42Z"}"#,
            "argocd notification: revision is missing",
        ),
        (
            r#"{"app":"guestbook","revision":"x","phase":"Succeeded","finishedAt":"after lunch"}"#,
            "argocd notification: finishedAt is not an RFC 3339 time",
        ),
    ];
    for (body, expected) in cases {
        let e = argocd_notification(body.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with(expected), "{body}: {e}");
    }
}
