//! Small helpers shared by the storage services: time, ids, input checks, error mapping.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use crate::DbError;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub(crate) fn ms_of(ts: Option<&prost_types::Timestamp>) -> Option<i64> {
    ts.map(|t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos / 1_000_000))
    })
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Tenant ids are short, printable identifiers; anything else is refused before it
/// reaches SQL, logs or metrics.
pub(crate) fn check_tenant(tenant_id: &str) -> Result<(), Status> {
    if tenant_id.is_empty() {
        return Err(Status::invalid_argument("tenant_id is required"));
    }
    if tenant_id.len() > 128
        || !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Status::invalid_argument(
            "tenant_id must be 1 to 128 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

impl From<DbError> for Status {
    fn from(e: DbError) -> Self {
        // The full error goes to the log once; callers get a reference-free, data-free text.
        tracing::error!(error = %e, "storage database error");
        Status::unavailable("storage database error; the operation was not applied")
    }
}
