//! `propose_change`: records a proposal for a human reviewer; nothing is ever applied.

use tonic::transport::Channel;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::run_store_client::RunStoreClient;

use super::args::Args;
use super::{Found, ToolError};

pub(crate) async fn run(
    runs: &RunStoreClient<Channel>,
    tenant_id: &str,
    run_id: &str,
    a: &Args<'_>,
) -> Result<Found, ToolError> {
    let kind = a.required("kind")?;
    if !matches!(kind, "config_change" | "code_fix") {
        return Err("kind must be config_change or code_fix".into());
    }
    let mut client = runs.clone();
    let p = client
        .create_proposal(st::CreateProposalRequest {
            tenant_id: tenant_id.to_owned(),
            run_id: run_id.to_owned(),
            kind: kind.to_owned(),
            title: a.required("title")?.to_owned(),
            body: a.required("body")?.to_owned(),
        })
        .await
        .map_err(|s| {
            ToolError(format!(
                "the proposal could not be recorded: {}",
                s.message()
            ))
        })?
        .into_inner();
    Ok(Found {
        text: format!(
            "proposal {} recorded; it awaits a human reviewer and will not be applied automatically",
            p.id
        ),
        rows: 1,
    })
}
