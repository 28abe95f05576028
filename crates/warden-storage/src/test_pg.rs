//! Tests only (this crate's, and others' through the `test-pg` feature): a URL on a
//! fresh schema of the test PostgreSQL server, so that every test starts from an empty
//! database without dropping anyone else's.

/// The PostgreSQL server tests use: `WARDEN_TEST_PG`, default the local server's `test`
/// database.
pub fn base_url() -> String {
    std::env::var("WARDEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `WARDEN_TEST_PG` (default the local server's `test` database) on a new schema; `None`
/// when no server answers, except under `CI=true`, where that fails the test.
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "a test whose database cannot be set up fails"
)]
pub async fn fresh_schema_url() -> Option<String> {
    sqlx::any::install_default_drivers();
    let base = base_url();
    let pool = match sqlx::AnyPool::connect(&base).await {
        Ok(p) => p,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and no PostgreSQL at {base}: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no PostgreSQL at {base} ({e}); set WARDEN_TEST_PG to run it");
            return None;
        }
    };
    let schema = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}
