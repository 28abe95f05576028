//! The agent's sections: `[runs]` (the durable run queue), `[budget]` (hard limits of one
//! run), `[webhooks]` (alert, deployment and cluster-event webhooks), `[anomaly]` and
//! `[sandbox]` (where each run's untrusted part runs, and the confinement it must reach).
//!
//! Every field is optional; [`defaults`] holds the value a missing one takes and
//! [`bounds`] the values a written one may take, in one place. This crate only parses and
//! checks them; the agent service decides what an absent section means.

use std::net::SocketAddr;

use super::checks::Checker;
use super::raw::{RawAnomaly, RawBudget, RawRuns, RawSandbox, RawWebhooks};

/// The value each setting of the agent's sections takes when the file does not set it.
pub mod defaults {
    pub const RUNS_WORKERS: u32 = 4;
    pub const RUNS_LEASE_SECS: u64 = 30;
    pub const RUNS_MAX_QUEUED_PER_TENANT: u32 = 100;
    pub const RUNS_MAX_RUNNING_PER_TENANT: u32 = 4;
    pub const RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT: u32 = 30;

    pub const BUDGET_MAX_STEPS: u32 = 8;
    pub const BUDGET_MAX_WALL_SECS: u64 = 300;
    pub const BUDGET_MAX_TOOL_CALLS: u32 = 24;
    pub const BUDGET_MAX_INPUT_TOKENS: u64 = 400_000;
    pub const BUDGET_MAX_OUTPUT_TOKENS: u64 = 16_000;
    pub const BUDGET_MAX_BYTES_PER_DATA_TYPE: u64 = 256 * 1024;
    pub const BUDGET_MODEL_CONTEXT_TOKENS: u64 = 128_000;

    pub const WEBHOOKS_MAX_BODY_BYTES: u64 = 1024 * 1024;
    pub const WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS: u64 = 600;
    /// Kubernetes event reasons that fire a cluster-event investigation.
    pub const WEBHOOKS_CLUSTER_EVENT_REASONS: &[&str] = &[
        "BackOff",
        "CrashLoopBackOff",
        "OOMKilling",
        "OOMKilled",
        "FailedScheduling",
        "Unhealthy",
        "FailedMount",
        "Evicted",
        "NodeNotReady",
    ];

    pub const ANOMALY_INTERVAL_SECS: u64 = 60;

    pub const SANDBOX_MEMORY_MB: u64 = 1024;
    pub const SANDBOX_CPU_SECS: u64 = 600;
    pub const SANDBOX_MIN_LANDLOCK_ABI: u64 = 1;
    pub const SANDBOX_REQUIRE_SECCOMP: bool = true;
}

/// The values each numeric setting of the agent's sections may take.
pub mod bounds {
    use super::super::checks::Bounds;

    pub const RUNS_WORKERS: Bounds<u32> = Bounds {
        name: "runs.workers",
        min: 1,
        max: 256,
        meaning: "runs this replica executes at once",
    };
    pub const RUNS_LEASE_SECS: Bounds<u64> = Bounds {
        name: "runs.lease_secs",
        min: 5,
        max: 3600,
        meaning: "a dead worker's run is taken over after this many seconds",
    };
    pub const RUNS_MAX_QUEUED_PER_TENANT: Bounds<u32> = Bounds {
        name: "runs.max_queued_per_tenant",
        min: 1,
        max: 100_000,
        meaning: "runs one tenant may have waiting in the queue",
    };
    pub const RUNS_MAX_RUNNING_PER_TENANT: Bounds<u32> = Bounds {
        name: "runs.max_running_per_tenant",
        min: 1,
        max: 1000,
        meaning: "runs of one tenant executing at once, across replicas",
    };
    pub const RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT: Bounds<u32> = Bounds {
        name: "runs.max_started_per_minute_per_tenant",
        min: 1,
        max: 100_000,
        meaning: "runs one tenant may start per minute",
    };

    pub const BUDGET_MAX_STEPS: Bounds<u32> = Bounds {
        name: "budget.max_steps",
        min: 1,
        max: 200,
        meaning: "model turns one run may take",
    };
    pub const BUDGET_MAX_WALL_SECS: Bounds<u64> = Bounds {
        name: "budget.max_wall_secs",
        min: 10,
        max: 86_400,
        meaning: "seconds one run may last",
    };
    pub const BUDGET_MAX_TOOL_CALLS: Bounds<u32> = Bounds {
        name: "budget.max_tool_calls",
        min: 0,
        max: 1000,
        meaning: "tool calls one run may make (0: the model answers from the trigger alone)",
    };
    pub const BUDGET_MAX_INPUT_TOKENS: Bounds<u64> = Bounds {
        name: "budget.max_input_tokens",
        min: 1000,
        max: 100_000_000,
        meaning: "input tokens one run may send to models, all steps together",
    };
    pub const BUDGET_MAX_OUTPUT_TOKENS: Bounds<u64> = Bounds {
        name: "budget.max_output_tokens",
        min: 100,
        max: 10_000_000,
        meaning: "output tokens one run may receive from models, all steps together",
    };
    pub const BUDGET_MAX_BYTES_PER_DATA_TYPE: Bounds<u64> = Bounds {
        name: "budget.max_bytes_per_data_type",
        min: 1024,
        max: 1 << 30,
        meaning: "bytes of one data type (logs, metrics...) one run may send",
    };
    pub const BUDGET_MODEL_CONTEXT_TOKENS: Bounds<u64> = Bounds {
        name: "budget.model_context_tokens",
        min: 1000,
        max: 10_000_000,
        meaning: "the model's context window in tokens; one tool result takes at most an eighth of it",
    };

    pub const WEBHOOKS_MAX_BODY_BYTES: Bounds<u64> = Bounds {
        name: "webhooks.max_body_bytes",
        min: 1024,
        max: 64 << 20,
        meaning: "the largest webhook body accepted",
    };
    pub const WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS: Bounds<u64> = Bounds {
        name: "webhooks.cluster_event_window_secs",
        min: 10,
        max: 86_400,
        meaning: "cluster events of one object within this many seconds make one investigation",
    };

    pub const ANOMALY_INTERVAL_SECS: Bounds<u64> = Bounds {
        name: "anomaly.interval_secs",
        min: 10,
        max: 86_400,
        meaning: "seconds between two anomaly detection passes over the metrics",
    };

    pub const SANDBOX_MEMORY_MB: Bounds<u64> = Bounds {
        name: "sandbox.memory_mb",
        min: 64,
        max: 65_536,
        meaning: "the address space one run's worker may use, in MiB",
    };
    pub const SANDBOX_CPU_SECS: Bounds<u64> = Bounds {
        name: "sandbox.cpu_secs",
        min: 1,
        max: 86_400,
        meaning: "the CPU seconds one run's worker may use in its life",
    };
    pub const SANDBOX_MIN_LANDLOCK_ABI: Bounds<u64> = Bounds {
        name: "sandbox.min_landlock_abi",
        min: 0,
        max: 255,
        meaning: "the lowest Landlock ABI a worker must have enforced (0: Landlock not required)",
    };
}

/// `[runs]`: the durable run queue shared by agent replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsSection {
    /// Runs this replica executes at once (default 4; 1..=256).
    pub workers: Option<u32>,
    /// A dead worker's run is taken over after this many seconds (default 30; 5..=3600).
    pub lease_secs: Option<u64>,
    /// Queue depth per tenant (default 100; 1..=100000).
    pub max_queued_per_tenant: Option<u32>,
    /// Concurrent runs per tenant (default 4; 1..=1000).
    pub max_running_per_tenant: Option<u32>,
    /// Runs a tenant may start per minute (default 30; 1..=100000).
    pub max_started_per_minute_per_tenant: Option<u32>,
}

impl RunsSection {
    pub fn workers_or_default(&self) -> u32 {
        self.workers.unwrap_or(defaults::RUNS_WORKERS)
    }
    pub fn lease_secs_or_default(&self) -> u64 {
        self.lease_secs.unwrap_or(defaults::RUNS_LEASE_SECS)
    }
    pub fn max_queued_per_tenant_or_default(&self) -> u32 {
        self.max_queued_per_tenant
            .unwrap_or(defaults::RUNS_MAX_QUEUED_PER_TENANT)
    }
    pub fn max_running_per_tenant_or_default(&self) -> u32 {
        self.max_running_per_tenant
            .unwrap_or(defaults::RUNS_MAX_RUNNING_PER_TENANT)
    }
    pub fn max_started_per_minute_per_tenant_or_default(&self) -> u32 {
        self.max_started_per_minute_per_tenant
            .unwrap_or(defaults::RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT)
    }
}

/// `[budget]`: hard limits of one run, enforced outside the model (tenants may lower them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetSection {
    /// Model turns per run (default 8; 1..=200).
    pub max_steps: Option<u32>,
    /// Seconds per run (default 300; 10..=86400).
    pub max_wall_secs: Option<u64>,
    /// Tool calls per run (default 24; 0..=1000).
    pub max_tool_calls: Option<u32>,
    /// Input tokens per run, all steps together (default 400000; 1000..=100000000).
    pub max_input_tokens: Option<u64>,
    /// Output tokens per run, all steps together (default 16000; 100..=10000000).
    pub max_output_tokens: Option<u64>,
    /// Bytes of one data type per run (default 262144; 1024..=1073741824).
    pub max_bytes_per_data_type: Option<u64>,
    /// The model's context window in tokens (default 128000; 1000..=10000000).
    pub model_context_tokens: Option<u64>,
}

impl BudgetSection {
    pub fn max_steps_or_default(&self) -> u32 {
        self.max_steps.unwrap_or(defaults::BUDGET_MAX_STEPS)
    }
    pub fn max_wall_secs_or_default(&self) -> u64 {
        self.max_wall_secs.unwrap_or(defaults::BUDGET_MAX_WALL_SECS)
    }
    pub fn max_tool_calls_or_default(&self) -> u32 {
        self.max_tool_calls
            .unwrap_or(defaults::BUDGET_MAX_TOOL_CALLS)
    }
    pub fn max_input_tokens_or_default(&self) -> u64 {
        self.max_input_tokens
            .unwrap_or(defaults::BUDGET_MAX_INPUT_TOKENS)
    }
    pub fn max_output_tokens_or_default(&self) -> u64 {
        self.max_output_tokens
            .unwrap_or(defaults::BUDGET_MAX_OUTPUT_TOKENS)
    }
    pub fn max_bytes_per_data_type_or_default(&self) -> u64 {
        self.max_bytes_per_data_type
            .unwrap_or(defaults::BUDGET_MAX_BYTES_PER_DATA_TYPE)
    }
    pub fn model_context_tokens_or_default(&self) -> u64 {
        self.model_context_tokens
            .unwrap_or(defaults::BUDGET_MODEL_CONTEXT_TOKENS)
    }
}

/// `[webhooks]`: alert, deployment and cluster-event webhooks over HTTPS. When the section
/// is written, `listen` is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhooksSection {
    pub listen: SocketAddr,
    /// Largest body accepted (default 1048576; 1024..=67108864).
    pub max_body_bytes: Option<u64>,
    /// Events of one object within this many seconds make one investigation (default 600;
    /// 10..=86400).
    pub cluster_event_window_secs: Option<u64>,
    /// Kubernetes event reasons that fire an investigation (default
    /// [`defaults::WEBHOOKS_CLUSTER_EVENT_REASONS`]); an empty list turns cluster events off.
    pub cluster_event_reasons: Option<Vec<String>>,
}

impl WebhooksSection {
    pub fn max_body_bytes_or_default(&self) -> u64 {
        self.max_body_bytes
            .unwrap_or(defaults::WEBHOOKS_MAX_BODY_BYTES)
    }
    pub fn cluster_event_window_secs_or_default(&self) -> u64 {
        self.cluster_event_window_secs
            .unwrap_or(defaults::WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS)
    }
    pub fn cluster_event_reasons_or_default(&self) -> Vec<String> {
        self.cluster_event_reasons.clone().unwrap_or_else(|| {
            defaults::WEBHOOKS_CLUSTER_EVENT_REASONS
                .iter()
                .map(|r| (*r).to_owned())
                .collect()
        })
    }
}

/// `[anomaly]`: metric anomaly detection that fires ANOMALY investigations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnomalySection {
    /// Seconds between two detection passes (default 60; 10..=86400).
    pub interval_secs: Option<u64>,
}

impl AnomalySection {
    pub fn interval_secs_or_default(&self) -> u64 {
        self.interval_secs
            .unwrap_or(defaults::ANOMALY_INTERVAL_SECS)
    }
}

/// Where each run's untrusted part runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// A confined worker process per run (the default).
    #[default]
    Process,
    /// Inside the agent service, unconfined; recorded with every run.
    None,
}

/// `[sandbox]`: each run's worker process, its limits and the minimum confinement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSection {
    pub isolation: Isolation,
    /// The worker executable (default: this `warden` binary, as `warden worker`).
    pub worker: Option<std::path::PathBuf>,
    /// Address space of one worker in MiB (default 1024; 64..=65536).
    pub memory_mb: Option<u64>,
    /// CPU seconds of one worker (default 600; 1..=86400).
    pub cpu_secs: Option<u64>,
    /// Lowest Landlock ABI (default 1; 0..=255).
    pub min_landlock_abi: Option<u64>,
    /// A seccomp filter is required (default true).
    pub require_seccomp: Option<bool>,
    /// An empty network namespace per worker is required (default false; needs privileges).
    pub require_network_namespace: Option<bool>,
    /// Runs start even below this minimum, recorded as accepted (default false); never
    /// below a tenant's own minimum.
    pub accept_weaker: Option<bool>,
}

impl SandboxSection {
    pub fn memory_mb_or_default(&self) -> u64 {
        self.memory_mb.unwrap_or(defaults::SANDBOX_MEMORY_MB)
    }
    pub fn cpu_secs_or_default(&self) -> u64 {
        self.cpu_secs.unwrap_or(defaults::SANDBOX_CPU_SECS)
    }
    pub fn min_landlock_abi_or_default(&self) -> u8 {
        self.min_landlock_abi
            .unwrap_or(defaults::SANDBOX_MIN_LANDLOCK_ABI)
            .min(255) as u8
    }
    pub fn require_seccomp_or_default(&self) -> bool {
        self.require_seccomp
            .unwrap_or(defaults::SANDBOX_REQUIRE_SECCOMP)
    }
}

pub(super) fn sandbox(c: &mut Checker<'_>, raw: &RawSandbox) -> SandboxSection {
    let isolation = match raw.isolation.as_ref() {
        None => Isolation::Process,
        Some(v) => match v.get_ref().as_str() {
            "process" => Isolation::Process,
            "none" => Isolation::None,
            other => {
                c.error(
                    v.span(),
                    format!("`sandbox.isolation` {other:?} is not known"),
                    "\"process\" (a confined worker per run) or \"none\" (inside the agent service, unconfined)",
                );
                Isolation::Process
            }
        },
    };
    SandboxSection {
        isolation,
        worker: c.path(&raw.worker, "sandbox.worker"),
        memory_mb: c.number(&raw.memory_mb, &bounds::SANDBOX_MEMORY_MB),
        cpu_secs: c.number(&raw.cpu_secs, &bounds::SANDBOX_CPU_SECS),
        min_landlock_abi: c.number(&raw.min_landlock_abi, &bounds::SANDBOX_MIN_LANDLOCK_ABI),
        require_seccomp: raw.require_seccomp,
        require_network_namespace: raw.require_network_namespace,
        accept_weaker: raw.accept_weaker,
    }
}

pub(super) fn runs(c: &mut Checker<'_>, raw: &RawRuns) -> RunsSection {
    RunsSection {
        workers: c.number(&raw.workers, &bounds::RUNS_WORKERS),
        lease_secs: c.number(&raw.lease_secs, &bounds::RUNS_LEASE_SECS),
        max_queued_per_tenant: c.number(
            &raw.max_queued_per_tenant,
            &bounds::RUNS_MAX_QUEUED_PER_TENANT,
        ),
        max_running_per_tenant: c.number(
            &raw.max_running_per_tenant,
            &bounds::RUNS_MAX_RUNNING_PER_TENANT,
        ),
        max_started_per_minute_per_tenant: c.number(
            &raw.max_started_per_minute_per_tenant,
            &bounds::RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT,
        ),
    }
}

pub(super) fn budget(c: &mut Checker<'_>, raw: &RawBudget) -> BudgetSection {
    BudgetSection {
        max_steps: c.number(&raw.max_steps, &bounds::BUDGET_MAX_STEPS),
        max_wall_secs: c.number(&raw.max_wall_secs, &bounds::BUDGET_MAX_WALL_SECS),
        max_tool_calls: c.number(&raw.max_tool_calls, &bounds::BUDGET_MAX_TOOL_CALLS),
        max_input_tokens: c.number(&raw.max_input_tokens, &bounds::BUDGET_MAX_INPUT_TOKENS),
        max_output_tokens: c.number(&raw.max_output_tokens, &bounds::BUDGET_MAX_OUTPUT_TOKENS),
        max_bytes_per_data_type: c.number(
            &raw.max_bytes_per_data_type,
            &bounds::BUDGET_MAX_BYTES_PER_DATA_TYPE,
        ),
        model_context_tokens: c.number(
            &raw.model_context_tokens,
            &bounds::BUDGET_MODEL_CONTEXT_TOKENS,
        ),
    }
}

/// `header` is the span of `[webhooks]`, where a missing `listen` is reported.
pub(super) fn webhooks(
    c: &mut Checker<'_>,
    raw: &RawWebhooks,
    header: std::ops::Range<usize>,
) -> Option<WebhooksSection> {
    let listen = c.listen_addr(&raw.listen, "webhooks.listen");
    if raw.listen.is_none() {
        c.error(
            header,
            "[webhooks] needs `listen`".into(),
            "the address the webhook receiver listens on, e.g. listen = \"127.0.0.1:7446\"",
        );
    }
    let max_body_bytes = c.number(&raw.max_body_bytes, &bounds::WEBHOOKS_MAX_BODY_BYTES);
    let cluster_event_window_secs = c.number(
        &raw.cluster_event_window_secs,
        &bounds::WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS,
    );
    let cluster_event_reasons = raw.cluster_event_reasons.as_ref().map(|list| {
        let mut seen: Vec<String> = Vec::new();
        for reason in list.get_ref() {
            let r = reason.get_ref();
            let valid = (1..=64).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric());
            if !valid {
                c.error(
                    reason.span(),
                    format!("{r:?} is not a Kubernetes event reason"),
                    "event reasons are single CamelCase words, e.g. \"BackOff\" or \"OOMKilled\"",
                );
            } else if seen.contains(r) {
                c.error(
                    reason.span(),
                    format!("event reason {r:?} is listed twice"),
                    "remove one of them",
                );
            } else {
                seen.push(r.clone());
            }
        }
        seen
    });
    Some(WebhooksSection {
        listen: listen?,
        max_body_bytes,
        cluster_event_window_secs,
        cluster_event_reasons,
    })
}

pub(super) fn anomaly(c: &mut Checker<'_>, raw: &RawAnomaly) -> AnomalySection {
    AnomalySection {
        interval_secs: c.number(&raw.interval_secs, &bounds::ANOMALY_INTERVAL_SECS),
    }
}
