//! Tools over the tenant's own systems: PromQL against its Prometheus, and its GitHub
//! repositories. Credentials are fetched from storage for each call and dropped after it.

use warden_proto::common::v1 as pb;

use super::args::Args;
use super::window::Window;
use super::{Found, ToolError};
use crate::Agent;

pub(crate) async fn prometheus(
    _agent: &Agent,
    _settings: &pb::TenantSettings,
    name: &str,
    _a: &Args<'_>,
    _w: Window,
) -> Result<Found, ToolError> {
    Err(format!("{name}: the Prometheus source is not wired yet").into())
}

pub(crate) async fn code(
    _agent: &Agent,
    _settings: &pb::TenantSettings,
    name: &str,
    _a: &Args<'_>,
) -> Result<Found, ToolError> {
    Err(format!("{name}: the GitHub source is not wired yet").into())
}
