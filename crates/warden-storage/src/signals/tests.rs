//! Signals through the real store functions and the real gRPC handlers, on SQLite and
//! PostgreSQL (`WARDEN_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`; under
//! `CI=true` a missing server fails the PostgreSQL tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
mod metrics_traces;

use std::sync::Arc;

use tonic::Request;
use warden_proto::telemetry::v1 as tm;
use warden_tls::{Caller, Role, Scope};

use crate::{Db, MemoryKeyProvider, Storage};

/// 2025-10-10T00:00:00Z: midnight, so steps of any readable length align with it.
pub(super) const T0: i64 = 1_760_054_400_000;
pub(super) const MIN: i64 = 60_000;

pub(crate) struct Store {
    pub s: Storage,
    /// Keeps the SQLite directory alive for the test's length.
    pub dir: Option<tempfile::TempDir>,
}

pub(crate) async fn sqlite() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let s = Storage::open(db, Arc::new(MemoryKeyProvider::new()))
        .await
        .unwrap();
    Store { s, dir: Some(dir) }
}

/// A store on a fresh schema of the test PostgreSQL server, or `None` (outside CI) when
/// no server answers.
pub(crate) async fn postgres() -> Option<Store> {
    let url = crate::test_pg::fresh_schema_url().await?;
    let db = Db::connect(&url).await.unwrap();
    let s = Storage::open(db, Arc::new(MemoryKeyProvider::new()))
        .await
        .unwrap();
    Some(Store { s, dir: None })
}

/// A request as the agent service sends it (the identity interceptor's work done).
pub(crate) fn agent<T>(msg: T) -> Request<T> {
    as_caller(msg, Role::AgentService, Scope::Platform)
}

pub(crate) fn as_caller<T>(msg: T, role: Role, scope: Scope) -> Request<T> {
    let mut req = Request::new(msg);
    req.extensions_mut().insert(Caller {
        role,
        name: "test".into(),
        scope,
        insecure_dev: false,
    });
    req
}

pub(super) fn window(since_ms: i64, until_ms: i64) -> Option<tm::Window> {
    Some(tm::Window {
        since: Some(crate::util::ts(since_ms)),
        until: Some(crate::util::ts(until_ms)),
    })
}

/// `name_sqlite` and `name_postgres` from one `async fn name(s: &Storage)`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = super::sqlite().await;
                    super::cases::$name(&store.s).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = super::postgres().await else { return };
                    super::cases::$name(&store.s).await;
                }
            )*
        }
    };
}

both!(
    logs_are_selected_by_window_service_severity_text_and_resource,
    log_patterns_put_new_and_grown_first_against_the_baseline,
    metrics_are_listed_matched_rated_and_downsampled,
    histograms_answer_p95_by_bucket_interpolation,
    traces_come_as_trees_and_the_slowest_or_failed_are_found,
    one_tenant_never_reads_anothers_signals,
    bad_input_is_refused_with_a_reason_and_stores_nothing,
    retention_prunes_old_rows_only,
    only_the_agent_service_may_query,
    tenant_key_rotation_and_shredding_cover_the_signals,
);

#[tokio::test]
async fn no_secret_reaches_the_raw_sqlite_files() {
    let store = sqlite().await;
    cases::store_secrets(&store.s).await;
    let dir = store.dir.as_ref().unwrap().path().to_owned();
    // Read back through the handlers first, so the values are known to be stored.
    cases::secrets_read_back(&store.s).await;
    let mut scanned = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for secret in cases::SECRETS {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} is in {} in the clear",
                path.display()
            );
        }
    }
    assert!(scanned > 0);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("-wal")), "{names:?}");
}
