//! Service configs: the shipped files load with the values they show, and each class of
//! error is reported at its exact line and column with a hint.

use std::path::Path;

use super::*;
use crate::render;

fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../config/{name}"));
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("config/{name}: {e}"))
}

#[track_caller]
fn errors(file: &str, src: &str) -> Vec<Diagnostic> {
    match parse_service(file, src) {
        Ok(cfg) => panic!("expected diagnostics, got {cfg:?}"),
        Err(d) => d,
    }
}

/// (line, col, message) of each diagnostic.
fn positions(diags: &[Diagnostic]) -> Vec<(usize, usize, &str)> {
    diags
        .iter()
        .map(|d| (d.line, d.col, d.message.as_str()))
        .collect()
}

const AGENT: &str = "\
listen = \"127.0.0.1:7445\"
gateway = \"127.0.0.1:7443\"
storage = \"127.0.0.1:7444\"
";

#[test]
fn the_shipped_agent_config_loads_with_its_sections() {
    let cfg = parse_service("config/agent.toml", &shipped("agent.toml"))
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(cfg.listen, "127.0.0.1:7445".parse().unwrap());
    let ServiceSettings::Agent(agent) = cfg.settings else {
        panic!("not an agent config: {cfg:?}");
    };
    assert_eq!(
        (agent.gateway.as_str(), agent.storage.as_str()),
        ("127.0.0.1:7443", "127.0.0.1:7444")
    );
    assert_eq!(
        (agent.lookback_secs, agent.tool_result_max_bytes),
        (Some(3600), Some(16384))
    );
    let runs = agent.runs.expect("[runs]");
    assert_eq!(runs.workers, Some(4));
    assert_eq!(runs.max_started_per_minute_per_tenant, Some(30));
    let budget = agent.budget.expect("[budget]");
    assert_eq!(budget.max_tool_calls, Some(24));
    assert_eq!(budget.model_context_tokens, Some(128_000));
    let webhooks = agent.webhooks.expect("[webhooks]");
    assert_eq!(webhooks.listen, "127.0.0.1:7446".parse().unwrap());
    assert_eq!(
        webhooks.cluster_event_reasons.as_deref(),
        Some(
            &defaults::WEBHOOKS_CLUSTER_EVENT_REASONS
                .iter()
                .map(|r| (*r).to_owned())
                .collect::<Vec<_>>()[..]
        )
    );
    assert_eq!(agent.anomaly.expect("[anomaly]").interval_secs, Some(60));
    // The shipped [sandbox] spells out every default.
    let sandbox = agent.sandbox.expect("[sandbox]");
    assert_eq!(sandbox.isolation, super::Isolation::Process);
    assert_eq!(sandbox.memory_mb_or_default(), defaults::SANDBOX_MEMORY_MB);
    assert_eq!(sandbox.memory_mb, Some(defaults::SANDBOX_MEMORY_MB));
    assert_eq!(sandbox.cpu_secs, Some(defaults::SANDBOX_CPU_SECS));
    assert_eq!(
        sandbox.min_landlock_abi,
        Some(defaults::SANDBOX_MIN_LANDLOCK_ABI)
    );
    assert_eq!(
        sandbox.require_seccomp,
        Some(defaults::SANDBOX_REQUIRE_SECCOMP)
    );
    assert_eq!(sandbox.accept_weaker, Some(false));
    assert!(cfg.tls.is_some());
}

#[test]
fn a_sandbox_section_is_checked_like_the_others() {
    let src = format!("{AGENT}\n[sandbox]\nisolation = \"vm\"\nmemory_mb = 16\nworker = \"\"\n");
    let d = errors("agent.toml", &src);
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"`sandbox.isolation` \"vm\" is not known"),
        "{}",
        render(&d)
    );
    assert!(
        messages.contains(&"`sandbox.memory_mb` must be between 64 and 65536 (it is 16)"),
        "{}",
        render(&d)
    );
    assert!(
        messages.contains(&"`sandbox.worker` is empty"),
        "{}",
        render(&d)
    );
    let none = format!("{AGENT}\n[sandbox]\nisolation = \"none\"\n");
    let cfg = parse_service("agent.toml", &none).unwrap_or_else(|d| panic!("{}", render(&d)));
    let ServiceSettings::Agent(agent) = cfg.settings else {
        panic!("an agent config")
    };
    assert_eq!(agent.sandbox.unwrap().isolation, super::Isolation::None);
}

#[test]
fn the_shipped_gateway_and_storage_configs_load() {
    let gw = parse_service("config/gateway.toml", &shipped("gateway.toml"))
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(
        gw.settings,
        ServiceSettings::Gateway(GatewaySettings {
            storage: "127.0.0.1:7444".into(),
            providers: None,
            http_listen: Some("127.0.0.1:7447".parse().unwrap()),
        })
    );
    assert_eq!(
        (gw.max_message_bytes, gw.shutdown_deadline_secs),
        (Some(16 << 20), Some(10))
    );
    let st = parse_service("config/storage.toml", &shipped("storage.toml"))
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    let ServiceSettings::Storage(s) = st.settings else {
        panic!("not a storage config: {st:?}");
    };
    assert_eq!(s.database, "sqlite://.warden/warden.db");
    assert_eq!(s.key_file, Path::new(".warden-keys/kek"));
    let ingest = s.ingest.expect("[ingest]");
    assert_eq!(
        (ingest.grpc_listen.port(), ingest.http_listen.port()),
        (4317, 4318)
    );
    assert_eq!(ingest.max_in_flight, Some(64));
}

/// The shipped agent.toml shows every default and range of the new sections beside its
/// key (`workers = 4  # ... (1..=256)`): they must be the ones this crate enforces.
#[test]
fn the_shipped_agent_comments_state_the_enforced_defaults_and_ranges() {
    let table: &[(&str, u64, u64, u64)] = &[
        (
            agent_bounds::RUNS_WORKERS.name,
            defaults::RUNS_WORKERS.into(),
            agent_bounds::RUNS_WORKERS.min.into(),
            agent_bounds::RUNS_WORKERS.max.into(),
        ),
        (
            agent_bounds::RUNS_LEASE_SECS.name,
            defaults::RUNS_LEASE_SECS,
            agent_bounds::RUNS_LEASE_SECS.min,
            agent_bounds::RUNS_LEASE_SECS.max,
        ),
        (
            agent_bounds::RUNS_MAX_QUEUED_PER_TENANT.name,
            defaults::RUNS_MAX_QUEUED_PER_TENANT.into(),
            agent_bounds::RUNS_MAX_QUEUED_PER_TENANT.min.into(),
            agent_bounds::RUNS_MAX_QUEUED_PER_TENANT.max.into(),
        ),
        (
            agent_bounds::RUNS_MAX_RUNNING_PER_TENANT.name,
            defaults::RUNS_MAX_RUNNING_PER_TENANT.into(),
            agent_bounds::RUNS_MAX_RUNNING_PER_TENANT.min.into(),
            agent_bounds::RUNS_MAX_RUNNING_PER_TENANT.max.into(),
        ),
        (
            agent_bounds::RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT.name,
            defaults::RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT.into(),
            agent_bounds::RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT
                .min
                .into(),
            agent_bounds::RUNS_MAX_STARTED_PER_MINUTE_PER_TENANT
                .max
                .into(),
        ),
        (
            agent_bounds::BUDGET_MAX_STEPS.name,
            defaults::BUDGET_MAX_STEPS.into(),
            agent_bounds::BUDGET_MAX_STEPS.min.into(),
            agent_bounds::BUDGET_MAX_STEPS.max.into(),
        ),
        (
            agent_bounds::BUDGET_MAX_WALL_SECS.name,
            defaults::BUDGET_MAX_WALL_SECS,
            agent_bounds::BUDGET_MAX_WALL_SECS.min,
            agent_bounds::BUDGET_MAX_WALL_SECS.max,
        ),
        (
            agent_bounds::BUDGET_MAX_TOOL_CALLS.name,
            defaults::BUDGET_MAX_TOOL_CALLS.into(),
            agent_bounds::BUDGET_MAX_TOOL_CALLS.min.into(),
            agent_bounds::BUDGET_MAX_TOOL_CALLS.max.into(),
        ),
        (
            agent_bounds::BUDGET_MAX_INPUT_TOKENS.name,
            defaults::BUDGET_MAX_INPUT_TOKENS,
            agent_bounds::BUDGET_MAX_INPUT_TOKENS.min,
            agent_bounds::BUDGET_MAX_INPUT_TOKENS.max,
        ),
        (
            agent_bounds::BUDGET_MAX_OUTPUT_TOKENS.name,
            defaults::BUDGET_MAX_OUTPUT_TOKENS,
            agent_bounds::BUDGET_MAX_OUTPUT_TOKENS.min,
            agent_bounds::BUDGET_MAX_OUTPUT_TOKENS.max,
        ),
        (
            agent_bounds::BUDGET_MAX_BYTES_PER_DATA_TYPE.name,
            defaults::BUDGET_MAX_BYTES_PER_DATA_TYPE,
            agent_bounds::BUDGET_MAX_BYTES_PER_DATA_TYPE.min,
            agent_bounds::BUDGET_MAX_BYTES_PER_DATA_TYPE.max,
        ),
        (
            agent_bounds::BUDGET_MODEL_CONTEXT_TOKENS.name,
            defaults::BUDGET_MODEL_CONTEXT_TOKENS,
            agent_bounds::BUDGET_MODEL_CONTEXT_TOKENS.min,
            agent_bounds::BUDGET_MODEL_CONTEXT_TOKENS.max,
        ),
        (
            agent_bounds::WEBHOOKS_MAX_BODY_BYTES.name,
            defaults::WEBHOOKS_MAX_BODY_BYTES,
            agent_bounds::WEBHOOKS_MAX_BODY_BYTES.min,
            agent_bounds::WEBHOOKS_MAX_BODY_BYTES.max,
        ),
        (
            agent_bounds::WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS.name,
            defaults::WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS,
            agent_bounds::WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS.min,
            agent_bounds::WEBHOOKS_CLUSTER_EVENT_WINDOW_SECS.max,
        ),
        (
            agent_bounds::ANOMALY_INTERVAL_SECS.name,
            defaults::ANOMALY_INTERVAL_SECS,
            agent_bounds::ANOMALY_INTERVAL_SECS.min,
            agent_bounds::ANOMALY_INTERVAL_SECS.max,
        ),
        (
            agent_bounds::SANDBOX_MEMORY_MB.name,
            defaults::SANDBOX_MEMORY_MB,
            agent_bounds::SANDBOX_MEMORY_MB.min,
            agent_bounds::SANDBOX_MEMORY_MB.max,
        ),
        (
            agent_bounds::SANDBOX_CPU_SECS.name,
            defaults::SANDBOX_CPU_SECS,
            agent_bounds::SANDBOX_CPU_SECS.min,
            agent_bounds::SANDBOX_CPU_SECS.max,
        ),
        (
            agent_bounds::SANDBOX_MIN_LANDLOCK_ABI.name,
            defaults::SANDBOX_MIN_LANDLOCK_ABI,
            agent_bounds::SANDBOX_MIN_LANDLOCK_ABI.min,
            agent_bounds::SANDBOX_MIN_LANDLOCK_ABI.max,
        ),
    ];
    let text = shipped("agent.toml");
    let mut section = "";
    let mut seen = 0;
    for line in text.lines() {
        if let Some(header) = line.strip_prefix('[') {
            section = header.split(']').next().unwrap_or_default();
            continue;
        }
        let Some((assign, comment)) = line.split_once('#') else {
            continue;
        };
        let Some((key, value)) = assign.split_once('=') else {
            continue;
        };
        let Some((lo, hi)) = comment
            .trim()
            .trim_end_matches(')')
            .rsplit(['(', ' '])
            .next()
            .and_then(|r| r.split_once("..="))
        else {
            continue;
        };
        let name = format!("{section}.{}", key.trim());
        let &(_, default, min, max) = table
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("{name} has a range in agent.toml but no bounds"));
        assert_eq!(value.trim().parse::<u64>().ok(), Some(default), "{name}");
        assert_eq!(
            (lo.parse().ok(), hi.parse().ok()),
            (Some(min), Some(max)),
            "{name}"
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        table.len(),
        "every bounded setting is shown in agent.toml"
    );
}

#[test]
fn an_unknown_key_in_budget_is_reported_at_the_key() {
    let src = format!("{AGENT}\n[budget]\nmax_steps = 8\nmax_stepz = 9\n");
    let d = errors("agent.toml", &src);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!((d[0].line, d[0].col), (7, 1), "{}", d[0]);
    assert!(
        d[0].message
            .starts_with("unknown field `max_stepz`, expected one of"),
        "{}",
        d[0]
    );
    assert_eq!(d[0].source_line, "max_stepz = 9");
    assert!(d[0].help.as_deref().is_some_and(|h| h.contains("spelling")));
}

#[test]
fn out_of_range_values_are_each_reported_at_the_value() {
    let src = format!(
        "{AGENT}lookback_secs = 30\n\n[runs]\nworkers = 0\n\n[budget]\nmax_steps = 500\n\n[anomaly]\ninterval_secs = 86401\n"
    );
    let d = errors("agent.toml", &src);
    assert_eq!(
        positions(&d),
        [
            (
                4,
                17,
                "`lookback_secs` must be between 60 and 2678400 (it is 30)"
            ),
            (7, 11, "`runs.workers` must be between 1 and 256 (it is 0)"),
            (
                10,
                13,
                "`budget.max_steps` must be between 1 and 200 (it is 500)"
            ),
            (
                13,
                17,
                "`anomaly.interval_secs` must be between 10 and 86400 (it is 86401)"
            ),
        ],
        "{}",
        render(&d)
    );
    assert_eq!(
        d[1].help.as_deref(),
        Some("runs.workers: runs this replica executes at once")
    );
}

#[test]
fn a_wrong_type_is_reported_at_the_value() {
    let src = format!("{AGENT}tool_result_max_bytes = \"16k\"\n");
    let d = errors("agent.toml", &src);
    assert_eq!(
        positions(&d),
        [(4, 25, "invalid type: string \"16k\", expected u64")]
    );
    assert!(
        d[0].help
            .as_deref()
            .is_some_and(|h| h.contains("without quotes"))
    );
}

#[test]
fn a_syntax_error_is_reported_where_it_is() {
    let d = errors("agent.toml", "listen = \"127.0.0.1:7445\"\n[tls\n");
    assert_eq!(
        positions(&d),
        [(2, 5, "unclosed table, expected `]`")],
        "{}",
        render(&d)
    );
    assert_eq!(d[0].source_line, "[tls");
    assert!(d[0].help.as_deref().is_some_and(|h| h.contains("toml.io")));
}

#[test]
fn a_missing_required_key_is_reported_at_the_service_key_or_listen() {
    // `service` written: the error points at it.
    let d = errors(
        "s.toml",
        "service = \"storage\"\nlisten = \"127.0.0.1:7444\"\nkey_file = \"k\"\n",
    );
    assert_eq!(
        positions(&d),
        [(1, 11, "`database` is required for the storage service")]
    );
    let help = d[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("database = \"sqlite://PATH\""), "{help}");
    assert!(
        help.contains("the file says service = \"storage\""),
        "{help}"
    );
    // Named by the file: at `listen`, and the hint says why the file is the agent's.
    let d = errors(
        "agent.toml",
        "# agent\nlisten = \"127.0.0.1:7445\"\nstorage = \"s:1\"\n",
    );
    assert_eq!(
        positions(&d),
        [(2, 10, "`gateway` is required for the agent service")]
    );
    assert!(
        d[0].help
            .as_deref()
            .is_some_and(|h| h.contains("its name says agent"))
    );
    // Missing from a table: at the table's header.
    let d = errors(
        "agent.toml",
        &format!("{AGENT}\n[webhooks]\nmax_body_bytes = 2048\n"),
    );
    assert_eq!(positions(&d), [(5, 1, "[webhooks] needs `listen`")]);
    // Nothing to point at: the file.
    let d = errors("gateway.toml", "storage = \"s:1\"\n");
    assert_eq!(
        positions(&d),
        [(0, 0, "`listen` is required for the gateway service")]
    );
}

#[test]
fn addresses_must_parse() {
    let src = "listen = \"localhost:7445\"\ngateway = \"127.0.0.1\"\nstorage = \"s:1\"\n";
    let d = errors("agent.toml", src);
    assert_eq!(
        positions(&d),
        [
            (
                1,
                10,
                "`listen` \"localhost:7445\" is not an IP address and port"
            ),
            (2, 11, "`gateway` \"127.0.0.1\" is not a host and port"),
        ]
    );
}

#[test]
fn two_listeners_on_one_address_are_refused() {
    let src = format!("{AGENT}metrics_listen = \"127.0.0.1:7445\"\n");
    let d = errors("agent.toml", &src);
    assert_eq!(
        positions(&d),
        [(4, 18, "`metrics_listen` is 127.0.0.1:7445, as `listen` is")]
    );
    assert!(
        d[0].help
            .as_deref()
            .is_some_and(|h| h.contains("on line 1"))
    );
    // Port 0 picks a free port each time: never a clash.
    let zero = "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nstorage = \"s:1\"\n";
    parse_service("gateway.toml", zero).unwrap_or_else(|d| panic!("{}", render(&d)));
}

#[test]
fn a_key_of_another_service_is_refused_at_the_key() {
    let src = format!("{AGENT}database = \"sqlite://x.db\"\n");
    let d = errors("agent.toml", &src);
    assert_eq!(
        positions(&d),
        [(4, 1, "`database` does not apply to the agent service")]
    );
    assert!(
        d[0].help
            .as_deref()
            .is_some_and(|h| h.starts_with("it configures storage"))
    );
}

#[test]
fn which_service_comes_from_the_service_key_then_the_name_then_the_keys() {
    let kind = |file: &str, src: &str| parse_service(file, src).map(|c| c.kind());
    let gateway = "listen = \"127.0.0.1:1\"\nstorage = \"s:1\"\n";
    assert_eq!(kind("gateway.toml", gateway), Ok(ServiceKind::Gateway));
    assert_eq!(kind("gateway-eu.toml", gateway), Ok(ServiceKind::Gateway));
    // By its keys: only the gateway accepts them all and has what it needs.
    assert_eq!(kind("edge.toml", gateway), Ok(ServiceKind::Gateway));
    assert_eq!(kind("a.toml", AGENT), Ok(ServiceKind::Agent));
    // The key overrides the name.
    assert_eq!(
        kind("agent.toml", &format!("service = \"gateway\"\n{gateway}")),
        Ok(ServiceKind::Gateway)
    );
    // Nothing tells.
    let d = kind("x.toml", "listen = \"127.0.0.1:1\"\n").unwrap_err();
    assert_eq!(
        positions(&d),
        [(0, 0, "cannot tell which service this file configures")]
    );
    assert!(
        d[0].help
            .as_deref()
            .is_some_and(|h| h.contains("service = \"agent\""))
    );
    let d = kind("x.toml", "service = \"proxy\"\n").unwrap_err();
    assert_eq!(
        positions(&d),
        [(1, 11, "`service` \"proxy\" is not a Warden service")]
    );
}

#[test]
fn serve_runs_a_file_only_as_the_service_it_names() {
    let src = format!("service = \"agent\"\n{AGENT}");
    let cfg = parse_service_as("a.toml", &src, ServiceKind::Agent).unwrap();
    assert_eq!(cfg.kind(), ServiceKind::Agent);
    let d = parse_service_as("a.toml", &src, ServiceKind::Gateway).unwrap_err();
    assert_eq!(
        positions(&d),
        [(
            1,
            11,
            "this file is the agent service's config, not the gateway service's"
        )]
    );
    // Without `service`, the command decides, whatever the name says.
    let gateway = "listen = \"127.0.0.1:1\"\nstorage = \"s:1\"\n";
    let d = parse_service_as("agent.toml", gateway, ServiceKind::Agent).unwrap_err();
    assert_eq!(
        positions(&d),
        [(1, 10, "`gateway` is required for the agent service")]
    );
}

#[test]
fn every_problem_of_a_file_is_reported_in_file_order() {
    let src = "\
service = \"storage\"
listen = \"127.0.0.1:7444\"
database = \"mysql://db\"
key_file = \"\"
lookback_secs = 3600

[ingest]
grpc_listen = \"127.0.0.1:4317\"
max_in_flight = 0

[tls]
ca = \"ca.pem\"
cert = \"storage.pem\"
";
    let out = render(&errors("storage.toml", src));
    assert_eq!(
        out,
        "\
storage.toml:3:12: error: `database` is not a sqlite: or postgres: URL
   |     database = \"mysql://db\"
   = help: sqlite://PATH for one machine, postgres://USER@HOST:PORT/DB when you outgrow it
storage.toml:4:12: error: `key_file` is empty
   |     key_file = \"\"
   = help: name a file, e.g. \".warden/pki/ca.pem\"; relative paths are relative to the directory the service runs in
storage.toml:5:1: error: `lookback_secs` does not apply to the storage service
   |     lookback_secs = 3600
   = help: it configures agent; remove it (this file is for storage because the file says service = \"storage\")
storage.toml:7:1: error: [ingest] needs `http_listen`
   |     [ingest]
   = help: e.g. http_listen = \"127.0.0.1:4318\"
storage.toml:9:17: error: `ingest.max_in_flight` must be between 1 and 65536 (it is 0)
   |     max_in_flight = 0
   = help: ingest.max_in_flight: OTLP requests handled at once; more are told to retry (default 64)
storage.toml:11:1: error: [tls] needs `key`
   |     [tls]
   = help: e.g. key = \".warden/pki/SERVICE-key.pem\" (`warden certs init` creates them)
6 errors; nothing was loaded
"
    );
}

#[test]
fn a_secret_pasted_into_a_service_config_is_never_echoed() {
    const KEY: &str = "sk-proj-Zx9QwErTy7UiOp1AsDfGhJkL";
    const PASSWORD: &str = "hunter2-Qw7z";
    let cases = [
        (
            "an unknown key named like one",
            format!("{AGENT}api_key = \"{KEY}\"\n"),
        ),
        (
            "a credential under an innocent key",
            format!("{AGENT}lookback_secs = \"{KEY}\"\n"),
        ),
        (
            "a token under a key named token",
            format!("{AGENT}ingest_token = \"q7Zx9QwErTy7UiOp1AsDfGhJkL\"\n"),
        ),
    ];
    for (case, src) in cases {
        let out = render(&errors("agent.toml", &src));
        assert!(out.contains("agent.toml:4:"), "{case}: {out}");
        assert!(out.contains("<value not shown>"), "{case}: {out}");
        assert!(!out.contains(KEY), "{case}: the key is echoed: {out}");
        assert!(!out.contains("q7Zx9QwErTy7"), "{case}: echoed: {out}");
    }
    // A database URL with a password: hidden in errors, and only its scheme in a summary.
    let storage = |url: &str| {
        format!("listen = \"127.0.0.1:7444\"\ndatabase = \"{url}\"\nkey_file = \"k\"\n")
    };
    let out = render(&errors(
        "storage.toml",
        &storage(&format!("mysql://app:{PASSWORD}@db/warden")),
    ));
    assert!(
        out.contains("storage.toml:2:12: error: `database` is not"),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "the password is echoed: {out}");
    let summary = crate::check_source(
        "storage.toml",
        &storage(&format!("postgres://app:{PASSWORD}@db:5432/warden")),
    )
    .unwrap_or_else(|d| panic!("{}", render(&d)));
    assert!(summary.contains("database postgres"), "{summary}");
    assert!(
        !summary.contains(PASSWORD),
        "the password is shown: {summary}"
    );
}

/// Every top-level key the schema accepts says which services it configures: one missing
/// from `owners` would be accepted for every service and tell nothing about a file. The
/// list comes from serde's own "expected one of" message, so a field added later is seen.
#[test]
fn every_key_of_the_schema_names_its_services() {
    let err = toml::from_str::<raw::RawService>("no_such_key = 1\n").unwrap_err();
    let expected: Vec<&str> = err
        .message()
        .split_once("expected one of ")
        .map(|(_, list)| {
            list.split(", ")
                .map(|k| k.trim().trim_matches('`'))
                .collect()
        })
        .unwrap_or_default();
    assert!(expected.len() > 20, "{}", err.message());
    for key in expected {
        assert!(is_service_key(key), "`{key}` has no owners");
    }
}
