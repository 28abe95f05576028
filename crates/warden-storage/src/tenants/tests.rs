#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tokio_stream::StreamExt;
use tonic::Code;
use warden_proto::common::v1::{AssumeRole, CustomerBedrock, TenantSettings};

use super::*;
use crate::{Db, StorageOptions};

async fn storage(dir: &tempfile::TempDir, watch_capacity: usize) -> Storage {
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    Storage::open_with(
        db,
        std::sync::Arc::new(crate::MemoryKeyProvider::new()),
        StorageOptions {
            watch_capacity,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn with_role(tenant: &str, role_arn: &str, external_id: &str) -> TenantSettings {
    TenantSettings {
        tenant_id: tenant.into(),
        enabled: true,
        customer_bedrock: Some(CustomerBedrock {
            region: "eu-central-1".into(),
            credentials: Some(Credentials::AssumeRole(AssumeRole {
                role_arn: role_arn.into(),
                external_id: external_id.into(),
            })),
        }),
        ..Default::default()
    }
}

fn external_id(s: &TenantSettings) -> String {
    match s
        .customer_bedrock
        .as_ref()
        .and_then(|c| c.credentials.as_ref())
    {
        Some(Credentials::AssumeRole(a)) => a.external_id.clone(),
        other => panic!("{other:?}"),
    }
}

const ROLE_A: &str = "arn:aws:iam::111122223333:role/warden";
const ROLE_A2: &str = "arn:aws:iam::111122223333:role/warden-other";
const ROLE_B: &str = "arn:aws:iam::444455556666:role/warden";

#[tokio::test]
async fn the_external_id_is_generated_once_per_tenant_and_account_and_never_chosen_by_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&dir, 16).await;
    let first = s
        .put_tenant_settings(with_role("acme", ROLE_A, ""), 0, "t")
        .await
        .unwrap();
    let id = external_id(&first);
    assert!(id.starts_with("warden-") && id.len() == 7 + 32, "{id}");
    assert!(id[7..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    // Stable: empty, or the stored value sent back, or another role in the same account.
    for (role, sent) in [(ROLE_A, ""), (ROLE_A, id.as_str()), (ROLE_A2, "")] {
        let again = s
            .put_tenant_settings(with_role("acme", role, sent), 0, "t")
            .await
            .unwrap();
        assert_eq!(external_id(&again), id);
    }
    assert_eq!(
        external_id(&s.tenant_settings("acme").await.unwrap().unwrap()),
        id
    );

    // A client-chosen value is refused without echoing it, and nothing is written.
    let before = s.tenant_settings("acme").await.unwrap().unwrap().version;
    let err = s
        .put_tenant_settings(with_role("acme", ROLE_A, "chosen-by-client-123"), 0, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(!err.message().contains("chosen-by-client-123"));
    assert_eq!(
        s.tenant_settings("acme").await.unwrap().unwrap().version,
        before
    );

    // Another tenant naming the same role gets its own id, and cannot present acme's
    // (the confused deputy).
    let err = s
        .put_tenant_settings(with_role("globex", ROLE_A, &id), 0, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let globex = s
        .put_tenant_settings(with_role("globex", ROLE_A, ""), 0, "t")
        .await
        .unwrap();
    assert_ne!(external_id(&globex), id);

    // Another account: another id; back to the first account: the first id again.
    let b = s
        .put_tenant_settings(with_role("acme", ROLE_B, ""), 0, "t")
        .await
        .unwrap();
    assert_ne!(external_id(&b), id);
    let back = s
        .put_tenant_settings(with_role("acme", ROLE_A, ""), 0, "t")
        .await
        .unwrap();
    assert_eq!(external_id(&back), id);

    // Not a role ARN: refused (no account to bind the id to).
    let err = s
        .put_tenant_settings(with_role("acme", "arn:aws:s3:::bucket", ""), 0, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[test]
fn aws_accounts_come_from_role_arns_only() {
    assert_eq!(aws_account(ROLE_A), Some("111122223333"));
    assert_eq!(
        aws_account("arn:aws-cn:iam::444455556666:role/x/y"),
        Some("444455556666")
    );
    assert_eq!(aws_account("arn:aws:iam::1234:role/x"), None);
    assert_eq!(aws_account("arn:aws:iam::111122223333:user/x"), None);
    assert_eq!(aws_account("arn:aws:sts::111122223333:role/x"), None);
    assert_eq!(aws_account(""), None);
}

fn plain(tenant: &str, enabled: bool) -> TenantSettings {
    TenantSettings {
        tenant_id: tenant.into(),
        enabled,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_watcher_gets_sync_then_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&dir, 16).await;
    let mut w = s.watch_changes().unwrap();
    assert!(w.next().await.unwrap().unwrap().sync);
    s.put_tenant_settings(plain("acme", true), 0, "t")
        .await
        .unwrap();
    s.put_tenant_settings(plain("acme", false), 0, "t")
        .await
        .unwrap();
    let one = w.next().await.unwrap().unwrap();
    let two = w.next().await.unwrap().unwrap();
    assert_eq!((one.version, two.version), (1, 2));
    assert!(!two.settings.unwrap().enabled);
}

#[tokio::test]
async fn a_lagged_watcher_is_ended_so_it_resynchronises_instead_of_missing_an_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&dir, 2).await;
    let mut w = s.watch_changes().unwrap();
    assert!(w.next().await.unwrap().unwrap().sync);
    // Five changes while the watcher reads nothing; the opt-out is among the missed ones.
    s.put_tenant_settings(plain("acme", false), 0, "t")
        .await
        .unwrap();
    for i in 0..4 {
        s.put_tenant_settings(plain(&format!("other{i}"), true), 0, "t")
            .await
            .unwrap();
    }
    let err = w.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert!(err.message().contains("watch again"), "{}", err.message());
    // Ended: the watcher cannot carry on as if nothing had been missed.
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn a_resync_ends_every_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&dir, 16).await;
    let mut a = s.watch_changes().unwrap();
    let mut b = s.watch_changes().unwrap();
    s.resync_watchers();
    for w in [&mut a, &mut b] {
        assert!(w.next().await.unwrap().unwrap().sync);
        assert_eq!(
            w.next().await.unwrap().unwrap_err().code(),
            Code::Unavailable
        );
        assert!(w.next().await.is_none());
    }
}
