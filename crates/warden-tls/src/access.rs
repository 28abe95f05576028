//! Who may call what: one table for every RPC of every Warden service, consulted by
//! each handler, decided from the peer certificate alone.
//!
//! A row names the roles that may call the RPC and how its tenant is checked:
//! [`TenantCheck::Named`] RPCs act on the tenant named in the request, which a
//! tenant-scoped identity must cover; [`TenantCheck::Platform`] RPCs act across tenants
//! and need a platform-wide identity; [`TenantCheck::Own`] RPCs act for the one tenant
//! the caller's certificate is scoped to, which the request never names (telemetry
//! ingest: a sender writes its own tenant's data, whatever its payload claims). [`decide`] is pure; [`authorize`] adapts it to
//! tonic. ARCHITECTURE.md renders this table; `tests/tests/access.rs` calls every row
//! with every identity kind over mTLS.

use tonic::{Request, Status};

use crate::identity::{Caller, Role, caller_of};

/// How an RPC's tenant is checked against the caller's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCheck {
    /// The request names a tenant; the caller's scope must cover it.
    Named,
    /// The RPC spans tenants: the caller must be platform-wide.
    Platform,
    /// The RPC acts for the sender's own tenant: the caller must be scoped to exactly one
    /// tenant, and that tenant is the one acted for.
    Own,
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// `package.Service/Method`, as in the gRPC path.
    pub rpc: &'static str,
    pub allowed: &'static [Role],
    pub tenant: TenantCheck,
}

use Role::{Admin, Agent, AgentService, Compliance, Gateway, Ingest, Reviewer, Viewer};
use TenantCheck::{Named, Own, Platform};

const fn row(rpc: &'static str, allowed: &'static [Role], tenant: TenantCheck) -> Rule {
    Rule {
        rpc,
        allowed,
        tenant,
    }
}

/// Every RPC of every service. An RPC missing here is refused to everyone.
pub const MATRIX: &[Rule] = &[
    // gateway
    row(
        "warden.gateway.v1.Gateway/Complete",
        &[Agent, AgentService],
        Named,
    ),
    row(
        "warden.gateway.v1.Gateway/CompleteStream",
        &[Agent, AgentService],
        Named,
    ),
    row("warden.gateway.v1.Admin/GetTenantSettings", &[Admin], Named),
    row("warden.gateway.v1.Admin/SetTenantSettings", &[Admin], Named),
    row(
        "warden.gateway.v1.Admin/PutCustomerCredentials",
        &[Admin],
        Named,
    ),
    row(
        "warden.gateway.v1.Admin/PutSourceCredentials",
        &[Admin],
        Named,
    ),
    row(
        "warden.gateway.v1.Admin/PutReleaseCredentials",
        &[Admin],
        Named,
    ),
    // the only way a change leaves Warden: a human of the tenant releases it
    row(
        "warden.gateway.v1.Releases/ReleaseProposal",
        &[Reviewer, Admin],
        Named,
    ),
    row(
        "warden.gateway.v1.Audit/QueryAuditRecords",
        &[Compliance],
        Named,
    ),
    row(
        "warden.gateway.v1.Audit/ExportAuditRecords",
        &[Compliance],
        Named,
    ),
    row(
        "warden.gateway.v1.Audit/VerifyAuditLog",
        &[Compliance],
        Platform,
    ),
    row(
        "warden.gateway.v1.Audit/GetCheckpoint",
        &[Compliance],
        Platform,
    ),
    row(
        "warden.gateway.v1.Audit/GetInclusionProof",
        &[Compliance],
        Platform,
    ),
    row(
        "warden.gateway.v1.Audit/GetConsistencyProof",
        &[Compliance],
        Platform,
    ),
    row(
        "warden.gateway.v1.Audit/ExportAuditTiles",
        &[Compliance],
        Platform,
    ),
    // agent service
    row(
        "warden.agent.v1.Agent/SubmitTrigger",
        &[Agent, Admin],
        Named,
    ),
    row(
        "warden.agent.v1.Agent/GetRun",
        &[Agent, Admin, Reviewer, Viewer],
        Named,
    ),
    row(
        "warden.agent.v1.Agent/ListRuns",
        &[Agent, Admin, Reviewer, Viewer],
        Named,
    ),
    row("warden.agent.v1.Agent/CancelRun", &[Agent, Admin], Named),
    row(
        "warden.agent.v1.Agent/ListProposals",
        &[Reviewer, Admin],
        Named,
    ),
    row(
        "warden.agent.v1.Agent/GetProposal",
        &[Reviewer, Admin],
        Named,
    ),
    row("warden.agent.v1.Agent/ReviewProposal", &[Reviewer], Named),
    // storage: each write only from the service that owns it
    row(
        "warden.storage.v1.TenantStore/GetTenantSettings",
        &[Gateway, AgentService],
        Named,
    ),
    row(
        "warden.storage.v1.TenantStore/ListEnabledTenants",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.TenantStore/PutTenantSettings",
        &[Gateway],
        Named,
    ),
    row(
        "warden.storage.v1.TenantStore/WatchTenantSettings",
        &[Gateway, AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.TenantStore/PutCustomerCredentials",
        &[Gateway],
        Named,
    ),
    row(
        "warden.storage.v1.TenantStore/GetCustomerCredentials",
        &[Gateway],
        Named,
    ),
    row(
        "warden.storage.v1.TenantStore/PutSourceCredentials",
        &[Gateway],
        Named,
    ),
    row(
        "warden.storage.v1.TenantStore/GetSourceCredentials",
        &[AgentService],
        Named,
    ),
    row(
        "warden.storage.v1.AuditLog/Append",
        &[Gateway, AgentService],
        Named,
    ),
    row(
        "warden.storage.v1.AuditLog/AppendStream",
        &[Gateway, AgentService],
        Named,
    ),
    row("warden.storage.v1.AuditLog/Query", &[Gateway], Platform),
    row("warden.storage.v1.AuditLog/Verify", &[Gateway], Platform),
    row(
        "warden.storage.v1.AuditLog/GetCheckpoint",
        &[Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.AuditLog/GetInclusionProof",
        &[Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.AuditLog/GetConsistencyProof",
        &[Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.AuditLog/ExportTiles",
        &[Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/CreateRun",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/UpdateRun",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/GetRun",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/AddFinding",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/RecordToolCall",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/LeaseRun",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/RenewLease",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/CheckpointRun",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/CancelRun",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/ListRuns",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/AttachRunEvent",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.RunStore/AttestRun",
        &[AgentService],
        Platform,
    ),
    // proposals: created, listed and reviewed through the agent service; released only
    // through the gateway, which alone reads release credentials
    row(
        "warden.storage.v1.ProposalStore/CreateProposal",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.ProposalStore/ListProposals",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.ProposalStore/GetProposal",
        &[AgentService, Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.ProposalStore/ReviewProposal",
        &[AgentService],
        Platform,
    ),
    row(
        "warden.storage.v1.ProposalStore/ClaimRelease",
        &[Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.ProposalStore/CompleteRelease",
        &[Gateway],
        Platform,
    ),
    row(
        "warden.storage.v1.ProposalStore/RecordOutcome",
        &[AgentService],
        Named,
    ),
    row(
        "warden.storage.v1.ProposalStore/PutReleaseCredentials",
        &[Gateway],
        Named,
    ),
    row(
        "warden.storage.v1.ProposalStore/GetReleaseCredentials",
        &[Gateway],
        Named,
    ),
    row(
        "warden.storage.v1.Keys/RotateKeyEncryptionKey",
        &[Admin],
        Platform,
    ),
    row("warden.storage.v1.Keys/RotateTenantKey", &[Admin], Platform),
    row("warden.storage.v1.Keys/ShredTenant", &[Admin], Platform),
    // storage: telemetry ingest tokens, managed by admins on storage's mTLS port
    row(
        "warden.telemetry.v1.IngestTokens/CreateIngestToken",
        &[Admin],
        Named,
    ),
    row(
        "warden.telemetry.v1.IngestTokens/ListIngestTokens",
        &[Admin],
        Named,
    ),
    row(
        "warden.telemetry.v1.IngestTokens/RevokeIngestToken",
        &[Admin],
        Named,
    ),
    // storage: API keys of the gateway's HTTP front, managed by admins; resolved by gateways
    row("warden.storage.v1.ApiKeys/CreateApiKey", &[Admin], Named),
    row("warden.storage.v1.ApiKeys/ListApiKeys", &[Admin], Named),
    row("warden.storage.v1.ApiKeys/RevokeApiKey", &[Admin], Named),
    row(
        "warden.storage.v1.ApiKeys/ResolveApiKey",
        &[Gateway],
        Platform,
    ),
    // storage's ingest listener: senders write their own tenant's telemetry (an ingest
    // token stands for an ingest identity of its tenant)
    row(
        "warden.telemetry.v1.IngestTokens/ResolveIngestToken",
        &[AgentService],
        Platform,
    ),
    // agent service: alert, deployment and cluster-event webhooks over HTTPS, for the
    // sender's own tenant (an ingest certificate or token; GitHub signs with its secret)
    row("warden.agent.v1.Webhooks/Deliver", &[Ingest], Own),
    row("warden.telemetry.v1.Ingest/IngestProfile", &[Ingest], Own),
    row("warden.telemetry.v1.Ingest/IngestCluster", &[Ingest], Own),
    row("warden.telemetry.v1.Ingest/IngestConfig", &[Ingest], Own),
    row(
        "opentelemetry.proto.collector.logs.v1.LogsService/Export",
        &[Ingest],
        Own,
    ),
    row(
        "opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        &[Ingest],
        Own,
    ),
    row(
        "opentelemetry.proto.collector.trace.v1.TraceService/Export",
        &[Ingest],
        Own,
    ),
    // telemetry queries (served by storage): raw telemetry, for the agent service only
    row(
        "warden.telemetry.v1.TelemetryQuery/QueryLogs",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/LogPatterns",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/ListMetrics",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/QueryMetrics",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/GetTrace",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/FindTraces",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/TopFunctions",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/QueryCluster",
        &[AgentService],
        Named,
    ),
    row(
        "warden.telemetry.v1.TelemetryQuery/QueryConfig",
        &[AgentService],
        Named,
    ),
];

/// The row for `rpc`, if any.
pub fn rule(rpc: &str) -> Option<&'static Rule> {
    MATRIX.iter().find(|r| r.rpc == rpc)
}

/// Why a call was refused: `reason` is the rule id carried in `ErrorInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: &'static str,
    pub message: String,
}

pub const ROLE_NOT_ALLOWED: &str = "ROLE_NOT_ALLOWED";
pub const TENANT_OUT_OF_SCOPE: &str = "TENANT_OUT_OF_SCOPE";
pub const PLATFORM_SCOPE_REQUIRED: &str = "PLATFORM_SCOPE_REQUIRED";
pub const RPC_NOT_IN_MATRIX: &str = "RPC_NOT_IN_MATRIX";
pub const SINGLE_TENANT_SCOPE_REQUIRED: &str = "SINGLE_TENANT_SCOPE_REQUIRED";

/// The decision for `caller` calling `rule.rpc` on `tenant` (`None`: no tenant named).
pub fn decide(rule: &Rule, caller: &Caller, tenant: Option<&str>) -> Result<(), Denial> {
    if caller.insecure_dev {
        return Ok(());
    }
    if !rule.allowed.contains(&caller.role) {
        let need = rule
            .allowed
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(Denial {
            reason: ROLE_NOT_ALLOWED,
            message: format!(
                "{} requires role {need}; caller {} has role {}",
                rule.rpc,
                caller.subject(),
                caller.role
            ),
        });
    }
    match (rule.tenant, tenant) {
        (TenantCheck::Own, _) => match caller.scope.tenants() {
            [own] if tenant.is_none_or(|t| t == own) => Ok(()),
            [_] => Err(Denial {
                reason: TENANT_OUT_OF_SCOPE,
                message: format!(
                    "{} is scoped to {} and may not act for tenant {}",
                    caller.subject(),
                    caller.scope,
                    tenant.unwrap_or_default()
                ),
            }),
            _ => Err(Denial {
                reason: SINGLE_TENANT_SCOPE_REQUIRED,
                message: format!(
                    "{} acts for the sender's own tenant and needs an identity scoped to exactly one tenant; {} is {}",
                    rule.rpc,
                    caller.subject(),
                    caller.scope
                ),
            }),
        },
        (TenantCheck::Named, Some(t)) if !caller.scope.covers(t) => Err(Denial {
            reason: TENANT_OUT_OF_SCOPE,
            message: format!(
                "{} is scoped to {} and may not act for tenant {t}",
                caller.subject(),
                caller.scope
            ),
        }),
        (TenantCheck::Named, Some(_)) => Ok(()),
        (_, _) if !caller.scope.is_platform() => Err(Denial {
            reason: PLATFORM_SCOPE_REQUIRED,
            message: format!(
                "{} spans tenants and needs a platform-wide identity; {} is scoped to {}",
                rule.rpc,
                caller.subject(),
                caller.scope
            ),
        }),
        _ => Ok(()),
    }
}

fn denied(d: Denial, rpc: &'static str, caller: Option<&Caller>, tenant: Option<&str>) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    // Labels are the matrix's own strings: bounded, never caller input.
    metrics::counter!("warden_access_denied_total", "rpc" => rpc, "reason" => d.reason)
        .increment(1);
    let mut meta = std::collections::HashMap::new();
    meta.insert("rpc".to_owned(), rpc.to_owned());
    if let Some(c) = caller {
        meta.insert("caller".to_owned(), c.subject());
    }
    if let Some(t) = tenant {
        meta.insert("tenant".to_owned(), t.to_owned());
    }
    Status::with_error_details(
        tonic::Code::PermissionDenied,
        d.message,
        ErrorDetails::with_error_info(d.reason, "warden", meta),
    )
}

/// A caller whose role passed `rule`; tenant-named RPCs still need [`Authorized::for_tenant`].
#[derive(Debug, Clone)]
pub struct Authorized {
    rule: &'static Rule,
    caller: Caller,
}

impl Authorized {
    /// The caller, allowed to act for `tenant` (PERMISSION_DENIED naming the tenant if not).
    pub fn for_tenant(&self, tenant: &str) -> Result<Caller, Status> {
        decide(self.rule, &self.caller, Some(tenant))
            .map_err(|d| denied(d, self.rule.rpc, Some(&self.caller), Some(tenant)))?;
        Ok(self.caller.clone())
    }

    /// The caller, for an RPC (or a request) that names no single tenant: only a
    /// platform-wide identity passes.
    pub fn platform(&self) -> Result<Caller, Status> {
        decide(self.rule, &self.caller, None)
            .map_err(|d| denied(d, self.rule.rpc, Some(&self.caller), None))?;
        Ok(self.caller.clone())
    }

    /// The one tenant the caller is scoped to, for [`TenantCheck::Own`] RPCs
    /// (PERMISSION_DENIED unless the identity names exactly one tenant).
    pub fn own_tenant(&self) -> Result<String, Status> {
        decide(self.rule, &self.caller, None)
            .map_err(|d| denied(d, self.rule.rpc, Some(&self.caller), None))?;
        match self.caller.scope.tenants() {
            [own] => Ok(own.clone()),
            _ => Err(denied(
                Denial {
                    reason: SINGLE_TENANT_SCOPE_REQUIRED,
                    message: format!(
                        "{} acts for the sender's own tenant; {} names none",
                        self.rule.rpc,
                        self.caller.subject()
                    ),
                },
                self.rule.rpc,
                Some(&self.caller),
                None,
            )),
        }
    }

    /// The caller, without the tenant check (for tenant-named RPCs whose tenant has yet
    /// to be read from the request; the handler must still call [`Self::for_tenant`]).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// The role check of `rpc` for the request's caller. Fails closed for an RPC that is not
/// in the matrix.
pub fn authorize<T>(req: &Request<T>, rpc: &'static str) -> Result<Authorized, Status> {
    authorize_caller(caller_of(req)?, rpc)
}

/// [`authorize`] for a caller identified outside a tonic request (the ingest listener
/// reads the certificate in a layer, before the gRPC or HTTP handler).
pub fn authorize_caller(caller: Caller, rpc: &'static str) -> Result<Authorized, Status> {
    let Some(rule) = rule(rpc) else {
        return Err(denied(
            Denial {
                reason: RPC_NOT_IN_MATRIX,
                message: format!("{rpc} has no row in the access matrix; refused"),
            },
            rpc,
            Some(&caller),
            None,
        ));
    };
    if !caller.insecure_dev && !rule.allowed.contains(&caller.role) {
        let d = decide(rule, &caller, None).err().unwrap_or(Denial {
            reason: ROLE_NOT_ALLOWED,
            message: format!("{rpc} refused"),
        });
        return Err(denied(d, rpc, Some(&caller), None));
    }
    Ok(Authorized { rule, caller })
}

/// The matrix as a Markdown table (rows: RPCs; columns: roles), as ARCHITECTURE.md shows it.
pub fn markdown() -> String {
    let mut out = String::from("| RPC | tenant |");
    for r in Role::ALL {
        out.push_str(&format!(" {r} |"));
    }
    out.push_str("\n|---|---|");
    for _ in Role::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for rule in MATRIX {
        let tenant = match rule.tenant {
            TenantCheck::Named => "named",
            TenantCheck::Platform => "platform",
            TenantCheck::Own => "own",
        };
        out.push_str(&format!("| `{}` | {tenant} |", rule.rpc));
        for r in Role::ALL {
            out.push_str(if rule.allowed.contains(&r) {
                " ✓ |"
            } else {
                " |"
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Scope;

    fn caller(role: Role, tenants: &[&str]) -> Caller {
        Caller {
            role,
            name: "x".into(),
            scope: Scope::from_tenants(tenants.iter().map(|t| (*t).to_owned()).collect()),
            insecure_dev: false,
        }
    }

    #[test]
    fn rows_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in MATRIX {
            assert!(seen.insert(r.rpc), "{} twice", r.rpc);
            assert!(!r.allowed.is_empty(), "{} allows nobody", r.rpc);
        }
    }

    #[test]
    fn scoped_callers_act_only_for_their_tenants() {
        let review = rule("warden.agent.v1.Agent/ReviewProposal").unwrap();
        let alice = caller(Role::Reviewer, &["acme"]);
        assert!(decide(review, &alice, Some("acme")).is_ok());
        let d = decide(review, &alice, Some("beta")).unwrap_err();
        assert_eq!(d.reason, TENANT_OUT_OF_SCOPE);
        assert!(d.message.contains("beta"), "{}", d.message);
        assert!(decide(review, &caller(Role::Reviewer, &[]), Some("beta")).is_ok());
        let d = decide(review, &caller(Role::AgentService, &[]), Some("acme")).unwrap_err();
        assert_eq!(d.reason, ROLE_NOT_ALLOWED);
    }

    #[test]
    fn cross_tenant_rpcs_need_a_platform_identity() {
        let verify = rule("warden.gateway.v1.Audit/VerifyAuditLog").unwrap();
        assert!(decide(verify, &caller(Role::Compliance, &[]), None).is_ok());
        let d = decide(verify, &caller(Role::Compliance, &["acme"]), None).unwrap_err();
        assert_eq!(d.reason, PLATFORM_SCOPE_REQUIRED);
        let query = rule("warden.gateway.v1.Audit/QueryAuditRecords").unwrap();
        let d = decide(query, &caller(Role::Compliance, &["acme"]), None).unwrap_err();
        assert_eq!(d.reason, PLATFORM_SCOPE_REQUIRED);
    }

    #[test]
    fn ingest_acts_for_its_own_tenant_only() {
        let export = rule("opentelemetry.proto.collector.logs.v1.LogsService/Export").unwrap();
        let sender = caller(Role::Ingest, &["acme"]);
        assert!(decide(export, &sender, None).is_ok());
        assert_eq!(
            decide(export, &sender, Some("beta")).unwrap_err().reason,
            TENANT_OUT_OF_SCOPE
        );
        let agent = caller(Role::Agent, &["acme"]);
        assert_eq!(
            decide(export, &agent, None).unwrap_err().reason,
            ROLE_NOT_ALLOWED
        );
        // A hand-made identity without exactly one tenant never passes.
        for tenants in [&[][..], &["acme", "beta"][..]] {
            let d = decide(export, &caller(Role::Ingest, tenants), None).unwrap_err();
            assert_eq!(d.reason, SINGLE_TENANT_SCOPE_REQUIRED);
        }
        let auth = Authorized {
            rule: export,
            caller: sender,
        };
        assert_eq!(auth.own_tenant().unwrap(), "acme");
    }

    #[test]
    fn refusals_are_counted_with_bounded_labels() {
        use metrics_util::debugging::DebuggingRecorder;
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let rule = rule("warden.agent.v1.Agent/ReviewProposal").unwrap();
            let alice = caller(Role::Reviewer, &["acme"]);
            let d = decide(rule, &alice, Some("tenant-from-the-request")).unwrap_err();
            let _ = denied(d, rule.rpc, Some(&alice), Some("tenant-from-the-request"));
        });
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(snapshot.len(), 1);
        let (key, _, _, _) = &snapshot[0];
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        assert_eq!(key.key().name(), "warden_access_denied_total");
        assert_eq!(
            labels,
            vec![
                "rpc=warden.agent.v1.Agent/ReviewProposal".to_owned(),
                "reason=TENANT_OUT_OF_SCOPE".to_owned()
            ],
            "no tenant, caller or other request input in the labels"
        );
    }

    #[test]
    fn markdown_has_a_row_per_rpc() {
        let md = markdown();
        assert_eq!(md.lines().count(), MATRIX.len() + 2);
    }
}

#[cfg(test)]
mod architecture {
    /// ARCHITECTURE.md shows the table the code consults, generated from it.
    #[test]
    fn architecture_md_renders_the_matrix() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ARCHITECTURE.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        let table = super::markdown();
        assert!(
            doc.contains(&table),
            "ARCHITECTURE.md must contain the access matrix exactly as rendered:\n{table}"
        );
    }
}
