//! `warden proposals list|show|approve|reject|release`: what a reviewer does with what an
//! investigation proposed. Reads and reviews go to the agent service, a release to the
//! gateway, all over mTLS as the reviewer's (or admin's) own certificate; the services
//! decide from that certificate alone.
//!
//! `show` prints the exact change with its digest: approve names that digest, so what is
//! approved is what was read. Diffs are colored for a terminal (added lines green, removed
//! red, hunk headers cyan) through `anstream`, which prints plain text when stdout is not
//! a terminal or NO_COLOR is set (and colors under CLICOLOR_FORCE).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anstyle::{AnsiColor, Style};
use anyhow::Context;
use warden_proto::agent::v1 as ag;
use warden_proto::agent::v1::agent_client::AgentClient;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::releases_client::ReleasesClient;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_target::Target;
use warden_tls::Role;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The agent service (lists, shows and reviews).
    #[arg(long, global = true, default_value = "127.0.0.1:7445")]
    agent: String,
    /// The gateway (releases).
    #[arg(long, global = true, default_value = "127.0.0.1:7443")]
    gateway: String,
    /// Certificates directory, and the identity in it (a reviewer, or an admin to list).
    #[arg(long, global = true, default_value = ".warden/pki")]
    pki: PathBuf,
    #[arg(long, global = true, default_value = "reviewer")]
    identity: String,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// The tenant's proposals, oldest first.
    List {
        #[arg(long)]
        tenant: String,
        /// pending-review, approved, rejected, released, applied, failed or expired.
        #[arg(long)]
        status: Option<String>,
        /// config-change, code-fix or runbook-action.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        run: Option<String>,
        /// Created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Created before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The next page, as a previous list printed it.
        #[arg(long, default_value = "")]
        page: String,
    },
    /// One proposal: its change (colored on a terminal), digest, evidence and history.
    Show {
        id: String,
        #[arg(long)]
        tenant: String,
    },
    /// Approve the content with this digest (as `show` printed it).
    Approve {
        id: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        digest: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject the content with this digest.
    Reject {
        id: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        digest: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Release an approved proposal into the customer's review flow (a pull request, or a
    /// signed webhook delivery).
    Release {
        id: String,
        #[arg(long)]
        tenant: String,
        /// The approved digest you expect; empty: whatever was approved.
        #[arg(long, default_value = "")]
        digest: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::block_on(run_async(args))
}

fn enum_arg<E>(
    value: Option<&str>,
    what: &str,
    from: impl Fn(&str) -> Option<E>,
) -> anyhow::Result<Option<E>> {
    value
        .map(|v| {
            from(&format!(
                "{what}_{}",
                v.replace('-', "_").to_ascii_uppercase()
            ))
            .with_context(|| format!("unknown {} {v:?}", what.to_ascii_lowercase()))
        })
        .transpose()
}

fn timestamp(value: Option<&str>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    value
        .map(|v| {
            let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{v:?} is not an RFC 3339 time"))?;
            Ok(prost_types::Timestamp {
                seconds: t.unix_timestamp(),
                nanos: 0,
            })
        })
        .transpose()
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let agent = || -> anyhow::Result<AgentClient<tonic::transport::Channel>> {
        Ok(AgentClient::new(super::connect_as(
            &args.agent,
            &args.pki,
            &args.identity,
            Role::AgentService,
        )?))
    };
    let mut out = anstream::stdout().lock();
    match &args.action {
        Action::List {
            tenant,
            status,
            kind,
            run,
            since,
            until,
            limit,
            page,
        } => {
            let r = agent()?
                .list_proposals(ag::ListProposalsRequest {
                    tenant_id: tenant.clone(),
                    status: enum_arg(
                        status.as_deref(),
                        "PROPOSAL_STATUS",
                        st::ProposalStatus::from_str_name,
                    )?
                    .map_or(0, |s| s as i32),
                    kind: enum_arg(
                        kind.as_deref(),
                        "PROPOSAL_KIND",
                        st::ProposalKind::from_str_name,
                    )?
                    .map_or(0, |k| k as i32),
                    run_id: run.clone().unwrap_or_default(),
                    created_since: timestamp(since.as_deref())?,
                    created_until: timestamp(until.as_deref())?,
                    limit: *limit,
                    page_token: page.clone(),
                })
                .await
                .context("the agent service refused to list proposals")?
                .into_inner();
            write!(out, "{}", list(&r))?;
        }
        Action::Show { id, tenant } => {
            let p = agent()?
                .get_proposal(ag::GetProposalRequest {
                    tenant_id: tenant.clone(),
                    proposal_id: id.clone(),
                })
                .await
                .context("the agent service refused to show the proposal")?
                .into_inner();
            write!(out, "{}", show(&p))?;
        }
        Action::Approve {
            id,
            tenant,
            digest,
            comment,
        }
        | Action::Reject {
            id,
            tenant,
            digest,
            comment,
        } => {
            let approve = matches!(args.action, Action::Approve { .. });
            let p = agent()?
                .review_proposal(ag::ReviewProposalRequest {
                    tenant_id: tenant.clone(),
                    proposal_id: id.clone(),
                    approve,
                    comment: comment.clone(),
                    digest: digest.clone(),
                })
                .await
                .context("the review was refused")?
                .into_inner();
            writeln!(
                out,
                "proposal {} is {} ({} of {} approvals)",
                p.id,
                status(p.status),
                p.approvals.len(),
                p.required_approvals
            )?;
        }
        Action::Release { id, tenant, digest } => {
            let channel =
                super::connect_as(&args.gateway, &args.pki, &args.identity, Role::Gateway)?;
            let p = ReleasesClient::new(channel)
                .release_proposal(gw::ReleaseProposalRequest {
                    tenant_id: tenant.clone(),
                    proposal_id: id.clone(),
                    digest: digest.clone(),
                })
                .await
                .context("the release was refused")?
                .into_inner();
            writeln!(
                out,
                "proposal {} is {}: {}",
                p.id,
                status(p.status),
                p.release_url
            )?;
        }
    }
    Ok(())
}

fn status(s: i32) -> &'static str {
    st::ProposalStatus::try_from(s).map_or("UNKNOWN", |s| {
        s.as_str_name().trim_start_matches("PROPOSAL_STATUS_")
    })
}

fn kind(k: i32) -> &'static str {
    st::ProposalKind::try_from(k).map_or("UNKNOWN", |k| {
        k.as_str_name().trim_start_matches("PROPOSAL_KIND_")
    })
}

fn when(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

fn target(c: &st::ProposalContent) -> String {
    match c.target.as_ref().and_then(|t| t.target.as_ref()) {
        Some(Target::Repository(r)) => format!(
            "{} branch {} at {} ({})",
            r.repository,
            r.branch,
            r.head_sha,
            r.paths.join(", ")
        ),
        Some(Target::Kubernetes(k)) => format!(
            "{}/{} {}/{} at resourceVersion {}",
            k.cluster, k.namespace, k.kind, k.name, k.resource_version
        ),
        None => "-".into(),
    }
}

/// One line per proposal, then the next page's token.
pub(crate) fn list(r: &st::ListProposalsResponse) -> String {
    let mut s = String::new();
    for p in &r.proposals {
        let c = p.content.clone().unwrap_or_default();
        let _ = writeln!(
            s,
            "{}  {:<14}  {:<14}  {}  {}  {}",
            p.id,
            status(p.status),
            kind(c.kind),
            when(p.created_at.as_ref()),
            target(&c),
            c.title
        );
    }
    if r.proposals.is_empty() {
        s.push_str("no proposals\n");
    }
    if !r.next_page_token.is_empty() {
        let _ = writeln!(s, "more: --page {}", r.next_page_token);
    }
    s
}

/// A diff with ANSI styles: added lines green, removed red, hunk headers cyan, file
/// headers bold. The caller's stream strips them where color is not wanted.
pub(crate) fn colored_diff(diff: &str) -> String {
    let style = |line: &str| -> Style {
        if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff --git") {
            Style::new().bold()
        } else if line.starts_with('+') {
            AnsiColor::Green.on_default()
        } else if line.starts_with('-') {
            AnsiColor::Red.on_default()
        } else if line.starts_with("@@") {
            AnsiColor::Cyan.on_default()
        } else {
            Style::new()
        }
    };
    let mut s = String::with_capacity(diff.len() + diff.len() / 4);
    for line in diff.split_inclusive('\n') {
        let (text, end) = line.strip_suffix('\n').map_or((line, ""), |t| (t, "\n"));
        let st = style(text);
        let _ = write!(s, "{st}{text}{st:#}{end}");
    }
    if !diff.ends_with('\n') && !diff.is_empty() {
        s.push('\n');
    }
    s
}

/// Everything a reviewer needs to decide: the change, its digest, evidence and history.
pub(crate) fn show(p: &st::Proposal) -> String {
    let c = p.content.clone().unwrap_or_default();
    let change = c.change.clone().unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "proposal  {}  {}  {}",
        p.id,
        kind(c.kind),
        status(p.status)
    );
    let _ = writeln!(s, "title     {}", c.title);
    let _ = writeln!(s, "run       {}", p.run_id);
    let _ = writeln!(s, "target    {}", target(&c));
    let _ = writeln!(s, "digest    {}", p.digest);
    if !p.approved_digest.is_empty() {
        let _ = writeln!(
            s,
            "approved  {} by {}",
            p.approved_digest,
            p.approvals.join(", ")
        );
    } else {
        let _ = writeln!(
            s,
            "approvals {} of {} ({})",
            p.approvals.len(),
            p.required_approvals,
            p.approvals.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "created   {}  expires {}",
        when(p.created_at.as_ref()),
        when(p.expires_at.as_ref())
    );
    if !p.release_url.is_empty() {
        let _ = writeln!(s, "released  {}", p.release_url);
    }
    if p.redactions > 0 {
        let _ = writeln!(
            s,
            "redacted  {} secret(s) in the model's text",
            p.redactions
        );
    }
    let _ = writeln!(s, "\nrationale\n{}\n", c.rationale.trim_end());
    let format = st::ChangeFormat::try_from(change.format).map_or("UNKNOWN", |f| {
        f.as_str_name().trim_start_matches("CHANGE_FORMAT_")
    });
    let _ = writeln!(s, "change ({format})");
    if change.format == st::ChangeFormat::UnifiedDiff as i32 {
        s.push_str(&colored_diff(&change.content));
    } else {
        let _ = writeln!(s, "{}", change.content.trim_end());
    }
    let e = c.evidence.unwrap_or_default();
    let _ = writeln!(
        s,
        "\nevidence  {} finding(s), {} tool call(s), {} audit record(s)",
        e.finding_ids.len(),
        e.tool_calls.len(),
        e.audit_record_ids.len()
    );
    for t in &e.tool_calls {
        let _ = writeln!(
            s,
            "  step {} #{} {} ({})",
            t.step,
            t.index,
            t.tool,
            if t.allowed { "allowed" } else { "refused" }
        );
    }
    for id in &e.audit_record_ids {
        let _ = writeln!(s, "  audit {id}");
    }
    let _ = writeln!(s, "\nhistory");
    for t in &p.history {
        let _ = writeln!(
            s,
            "  {}  {:<14} {:<24} by {}  {}{}",
            when(t.time.as_ref()),
            status(t.to),
            t.reason,
            t.actor,
            t.digest,
            if t.detail.is_empty() {
                String::new()
            } else {
                format!("  {}", t.detail)
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_are_green_removed_red_hunks_cyan_and_stripping_gives_the_diff_back() {
        let diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n ctx";
        let c = colored_diff(diff);
        assert!(c.contains("\u{1b}[32m+new\u{1b}[0m"), "{c:?}");
        assert!(c.contains("\u{1b}[31m-old\u{1b}[0m"), "{c:?}");
        assert!(c.contains("\u{1b}[36m@@ -1 +1 @@\u{1b}[0m"), "{c:?}");
        let mut plain = Vec::new();
        let mut stream = anstream::StripStream::new(&mut plain);
        stream.write_all(c.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), format!("{diff}\n"));
    }
}
