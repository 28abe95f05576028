//! Service configs (`config/agent.toml`, `gateway.toml`, `storage.toml`): the one schema
//! `warden serve` runs from and `warden config check` explains.
//!
//! As for the routing config, serde reads `Raw*` types (unknown keys refused, values
//! spanned) and the checks then gather every semantic problem as a [`Diagnostic`] at
//! `file:line:col` with the line and a hint: numbers out of range, addresses that do not
//! parse, a key of another service, a required key missing.
//!
//! **Which service a file is for:** `service = "agent"` (or `"gateway"`, `"storage"`) when
//! the file says so; else `warden serve X` runs it as X; else (`warden config check`) its
//! file name (`agent.toml`, `agent-eu.toml`, `agent.prod.toml`); else its keys: the one
//! service that accepts all of them and finds its required ones there. A file that says
//! one service is refused by `warden serve` for another.
//!
//! **Where a missing key is reported:** one missing from a table at the table's header;
//! a top-level one at the `service` key when written, else at `listen`, else for the file.

mod agent;
mod checks;
mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

pub use agent::{
    AnomalySection, BudgetSection, Isolation, RunsSection, SandboxSection, WebhooksSection,
    bounds as agent_bounds, defaults,
};
pub use checks::{Bounds, bounds};

use crate::{Diagnostic, Source};
use checks::Checker;
use raw::{RawIngest, RawService, RawTls, owners};

/// One of the three services `warden serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Agent,
    Gateway,
    Storage,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 3] = [
        ServiceKind::Agent,
        ServiceKind::Gateway,
        ServiceKind::Storage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Agent => "agent",
            ServiceKind::Gateway => "gateway",
            ServiceKind::Storage => "storage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// From a file name: `agent.toml`, `agent-eu.toml`, `agent_2.toml`, `agent.prod.toml`.
    pub fn from_file_name(file: &str) -> Option<Self> {
        let name = Path::new(file).file_name()?.to_str()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|k| {
            name.strip_prefix(k.name())
                .is_some_and(|rest| rest.starts_with(['.', '-', '_']))
        })
    }

    /// The keys this service cannot run without.
    fn required(self) -> &'static [&'static str] {
        match self {
            ServiceKind::Agent => &["gateway", "storage"],
            ServiceKind::Gateway => &["storage"],
            ServiceKind::Storage => &["database", "key_file"],
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[tls]`: this service's certificate and key, and the CA its peers' certificates chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// storage's `[ingest]`: the OTLP ports and their limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSection {
    /// OTLP/gRPC (and warden.telemetry.v1.Ingest), conventionally port 4317.
    pub grpc_listen: SocketAddr,
    /// OTLP/HTTP, conventionally port 4318.
    pub http_listen: SocketAddr,
    /// Largest request after decompression (default 4 MiB).
    pub max_request_bytes: Option<usize>,
    /// Requests handled at once; more are told to retry (default 64).
    pub max_in_flight: Option<usize>,
}

/// What only storage has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// The key-encryption key file, outside the data directory (created on first run only,
    /// 0600; refused if others can read it).
    pub key_file: PathBuf,
    /// Close audit intents left without an outcome for longer than this as `unknown`
    /// (default 3600; must exceed the longest call a gateway runs).
    pub audit_reconcile_after_secs: Option<u64>,
    /// Receive telemetry (OTLP/gRPC and OTLP/HTTP) on ports of its own.
    pub ingest: Option<IngestSection>,
    /// The audit log's checkpoint signing key (default: `audit-log.key` beside `key_file`;
    /// created on first run for an empty log only, 0600).
    pub audit_log_key_file: Option<PathBuf>,
    /// The audit log's origin line in its checkpoints (default `warden.local/audit`).
    pub audit_log_origin: Option<String>,
    /// Replace this file atomically with each new signed checkpoint.
    pub audit_checkpoint_file: Option<PathBuf>,
    /// POST each new signed checkpoint to this URL (a witness or the customer).
    pub audit_checkpoint_url: Option<String>,
}

/// What only the gateway has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// The storage service's address.
    pub storage: String,
    /// The routing config (config/providers.toml). Without it, only the offline `local`
    /// provider.
    pub providers: Option<PathBuf>,
    /// The HTTP front (OpenAI- and Anthropic-compatible APIs); none: not served.
    pub http_listen: Option<SocketAddr>,
}

/// What only the agent has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// The gateway's address.
    pub gateway: String,
    /// The storage service's address.
    pub storage: String,
    /// How far before a trigger's time tool queries look by default (default 3600).
    pub lookback_secs: Option<u64>,
    /// The most bytes one tool result may take (default 16384; never more than an eighth
    /// of the model's context).
    pub tool_result_max_bytes: Option<usize>,
    pub runs: Option<RunsSection>,
    pub budget: Option<BudgetSection>,
    pub webhooks: Option<WebhooksSection>,
    pub anomaly: Option<AnomalySection>,
    pub sandbox: Option<SandboxSection>,
}

/// The settings of the one service a file is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSettings {
    Agent(AgentSettings),
    Gateway(GatewaySettings),
    Storage(StorageSettings),
}

/// A checked service config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    /// Prometheus metrics on their own port.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest gRPC message (default 16 MiB).
    pub max_message_bytes: Option<usize>,
    /// How long calls in flight may finish after a stop signal (default 10).
    pub shutdown_deadline_secs: Option<u64>,
    /// Required unless the service runs with `--insecure-dev`.
    pub tls: Option<TlsPaths>,
    pub settings: ServiceSettings,
}

impl ServiceConfig {
    pub fn kind(&self) -> ServiceKind {
        match self.settings {
            ServiceSettings::Agent(_) => ServiceKind::Agent,
            ServiceSettings::Gateway(_) => ServiceKind::Gateway,
            ServiceSettings::Storage(_) => ServiceKind::Storage,
        }
    }
}

/// Why a file was read as the config of one service; said in hints about required keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Declared,
    Command,
    FileName,
    Keys,
}

impl Reason {
    fn explain(self, kind: ServiceKind) -> String {
        match self {
            Reason::Declared => format!("the file says service = \"{kind}\""),
            Reason::Command => format!("`warden serve {kind}` runs it"),
            Reason::FileName => format!("its name says {kind}"),
            Reason::Keys => format!("its keys are {kind}'s"),
        }
    }
}

/// Parses and checks a service config (`file` names it in diagnostics), working out which
/// service it is for as the module documentation says.
pub fn parse_service(file: &str, src: &str) -> Result<ServiceConfig, Vec<Diagnostic>> {
    parse(file, src, None)
}

/// Parses and checks `src` as the config of `service` (what `warden serve SERVICE` runs);
/// a file that says `service = "..."` must say this one.
pub fn parse_service_as(
    file: &str,
    src: &str,
    service: ServiceKind,
) -> Result<ServiceConfig, Vec<Diagnostic>> {
    parse(file, src, Some(service))
}

fn parse(
    file: &str,
    src: &str,
    command: Option<ServiceKind>,
) -> Result<ServiceConfig, Vec<Diagnostic>> {
    let source = Source::new(file, src);
    let raw: RawService = toml::from_str(src).map_err(|e| vec![source.from_toml_error(&e)])?;
    let keys = top_level_keys(src);
    let (kind, reason) = which_service(&source, &raw, &keys, command).map_err(|d| vec![d])?;
    let mut c = Checker::new(source);
    for (key, span) in &keys {
        // Every key serde accepted has owners; a missing entry would only relax this check.
        let serves = owners(key).unwrap_or(&ServiceKind::ALL);
        if !serves.contains(&kind) {
            let names: Vec<&str> = serves.iter().map(|k| k.name()).collect();
            c.error(
                span.clone(),
                format!("`{key}` does not apply to the {kind} service"),
                format!(
                    "it configures {}; remove it (this file is for {kind} because {})",
                    names.join(" and "),
                    reason.explain(kind)
                ),
            );
        }
    }
    // Where a missing top-level key is reported.
    let anchor = raw
        .service
        .as_ref()
        .or(raw.listen.as_ref())
        .map(Spanned::span);
    let missing = |c: &mut Checker<'_>, key: &str, example: &str| {
        let message = format!("`{key}` is required for the {kind} service");
        let help = format!(
            "add {example} among the top-level keys (before the first [table]); this file is for {kind} because {}",
            reason.explain(kind)
        );
        match &anchor {
            Some(span) => c.error(span.clone(), message, help),
            None => c
                .errs
                .push(Diagnostic::file_error(file, &message).with_help(help)),
        }
    };
    let listen = c.listen_addr(&raw.listen, "listen");
    if raw.listen.is_none() {
        missing(&mut c, "listen", "listen = \"127.0.0.1:PORT\"");
    }
    let metrics_listen = c.listen_addr(&raw.metrics_listen, "metrics_listen");
    let max_message_bytes = c
        .number(&raw.max_message_bytes, &bounds::MAX_MESSAGE_BYTES)
        .map(to_usize);
    let shutdown_deadline_secs =
        c.number(&raw.shutdown_deadline_secs, &bounds::SHUTDOWN_DEADLINE_SECS);
    let tls = raw.tls.as_ref().and_then(|t| tls(&mut c, t));
    for key in kind.required() {
        let written = keys.iter().any(|(k, _)| k == key);
        if !written {
            let example = match *key {
                "database" => "database = \"sqlite://PATH\"",
                "key_file" => "key_file = \"PATH\" (outside the data directory)",
                "gateway" => "gateway = \"HOST:7443\"",
                _ => "storage = \"HOST:7444\"",
            };
            missing(&mut c, key, example);
        }
    }
    let settings = match kind {
        ServiceKind::Storage => storage(&mut c, &raw).map(ServiceSettings::Storage),
        ServiceKind::Gateway => gateway(&mut c, &raw).map(ServiceSettings::Gateway),
        ServiceKind::Agent => agent(&mut c, &raw).map(ServiceSettings::Agent),
    };
    let config = settings
        .zip(listen)
        .map(|(settings, listen)| ServiceConfig {
            listen,
            metrics_listen,
            max_message_bytes,
            shutdown_deadline_secs,
            tls,
            settings,
        });
    if let Some(cfg) = &config {
        distinct_listen_addrs(&mut c, &raw, cfg);
    }
    match config {
        Some(cfg) if c.errs.is_empty() => Ok(cfg),
        _ => {
            let mut errs = c.errs;
            if errs.is_empty() {
                errs.push(Diagnostic::file_error(file, "the config did not load"));
            }
            // File order; a file-level problem (line 0) first.
            errs.sort_by_key(|d| (d.line, d.col));
            Err(errs)
        }
    }
}

/// Whether `key` is a top-level key of the service config schema (`service` included).
pub(crate) fn is_service_key(key: &str) -> bool {
    key == "service" || owners(key).is_some()
}

/// The file's top-level keys (but `service`) with their spans, in file order. Called only
/// once serde parsed the file, so the document is valid TOML.
fn top_level_keys(src: &str) -> Vec<(String, Range<usize>)> {
    let Ok(doc) = toml::de::DeTable::parse(src) else {
        return Vec::new();
    };
    let mut keys: Vec<(String, Range<usize>)> = doc
        .get_ref()
        .keys()
        .filter(|k| k.get_ref() != "service")
        .map(|k| (k.get_ref().to_string(), k.span()))
        .collect();
    keys.sort_by_key(|(_, span)| span.start);
    keys
}

fn which_service(
    src: &Source<'_>,
    raw: &RawService,
    keys: &[(String, Range<usize>)],
    command: Option<ServiceKind>,
) -> Result<(ServiceKind, Reason), Diagnostic> {
    let names = || ServiceKind::ALL.map(|k| format!("\"{k}\"")).join(", ");
    if let Some(declared) = &raw.service {
        let Some(kind) = ServiceKind::parse(declared.get_ref()) else {
            return Err(src
                .at(
                    declared.span(),
                    format!("`service` {:?} is not a Warden service", declared.get_ref()),
                )
                .with_help(format!("service is one of: {}", names())));
        };
        if let Some(want) = command
            && want != kind
        {
            return Err(src
                .at(
                    declared.span(),
                    format!("this file is the {kind} service's config, not the {want} service's"),
                )
                .with_help(format!(
                    "run it with `warden serve {kind}`, or give `warden serve {want}` its own config"
                )));
        }
        return Ok((kind, Reason::Declared));
    }
    if let Some(kind) = command {
        return Ok((kind, Reason::Command));
    }
    if let Some(kind) = ServiceKind::from_file_name(src.file) {
        return Ok((kind, Reason::FileName));
    }
    let accepting: Vec<ServiceKind> = ServiceKind::ALL
        .into_iter()
        .filter(|k| {
            keys.iter()
                .all(|(key, _)| owners(key).is_none_or(|o| o.contains(k)))
        })
        .collect();
    let complete: Vec<ServiceKind> = accepting
        .iter()
        .copied()
        .filter(|k| {
            k.required()
                .iter()
                .all(|r| keys.iter().any(|(key, _)| key == r))
        })
        .collect();
    match (accepting.as_slice(), complete.as_slice()) {
        ([only], _) | (_, [only]) => Ok((*only, Reason::Keys)),
        _ => Err(Diagnostic::file_error(
            src.file,
            "cannot tell which service this file configures",
        )
        .with_help(format!(
            "add service = \"agent\" (or {}) at the top, or name the file agent.toml, gateway.toml or storage.toml",
            names()
        ))),
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn tls(c: &mut Checker<'_>, t: &Spanned<RawTls>) -> Option<TlsPaths> {
    let raw = t.get_ref();
    let mut field = |v: &Option<Spanned<String>>, name: &str, example: &str| {
        if v.is_none() {
            c.error(
                t.span(),
                format!("[tls] needs `{name}`"),
                format!("e.g. {name} = \"{example}\" (`warden certs init` creates them)"),
            );
        }
        c.path(v, &format!("tls.{name}"))
    };
    let ca = field(&raw.ca, "ca", ".warden/pki/ca.pem");
    let cert = field(&raw.cert, "cert", ".warden/pki/SERVICE.pem");
    let key = field(&raw.key, "key", ".warden/pki/SERVICE-key.pem");
    Some(TlsPaths {
        ca: ca?,
        cert: cert?,
        key: key?,
    })
}

fn storage(c: &mut Checker<'_>, raw: &RawService) -> Option<StorageSettings> {
    let database = raw.database.as_ref().and_then(|d| {
        let url = d.get_ref();
        let known = ["sqlite:", "postgres:", "postgresql:"];
        if known.iter().any(|p| url.starts_with(p)) {
            Some(url.clone())
        } else {
            c.error(
                d.span(),
                "`database` is not a sqlite: or postgres: URL".into(),
                "sqlite://PATH for one machine, postgres://USER@HOST:PORT/DB when you outgrow it",
            );
            None
        }
    });
    let key_file = c.path(&raw.key_file, "key_file");
    let audit_reconcile_after_secs = c.number(
        &raw.audit_reconcile_after_secs,
        &bounds::AUDIT_RECONCILE_AFTER_SECS,
    );
    let ingest = raw.ingest.as_ref().and_then(|i| ingest(c, i));
    let audit_log_key_file = c.path(&raw.audit_log_key_file, "audit_log_key_file");
    let audit_log_origin = raw.audit_log_origin.as_ref().and_then(|o| {
        let origin = o.get_ref();
        if origin.is_empty() || origin.trim() != origin || origin.chars().any(char::is_control) {
            c.error(
                o.span(),
                "`audit_log_origin` must be non-empty, without leading or trailing spaces".into(),
                "it names the log in every signed checkpoint, e.g. \"warden.example/audit\"",
            );
            return None;
        }
        Some(origin.clone())
    });
    let audit_checkpoint_file = c.path(&raw.audit_checkpoint_file, "audit_checkpoint_file");
    let audit_checkpoint_url = c.url(&raw.audit_checkpoint_url, "audit_checkpoint_url");
    Some(StorageSettings {
        database: database?,
        key_file: key_file?,
        audit_reconcile_after_secs,
        ingest,
        audit_log_key_file,
        audit_log_origin,
        audit_checkpoint_file,
        audit_checkpoint_url,
    })
}

fn ingest(c: &mut Checker<'_>, i: &Spanned<RawIngest>) -> Option<IngestSection> {
    let raw = i.get_ref();
    for (v, name, port) in [
        (&raw.grpc_listen, "grpc_listen", 4317),
        (&raw.http_listen, "http_listen", 4318),
    ] {
        if v.is_none() {
            c.error(
                i.span(),
                format!("[ingest] needs `{name}`"),
                format!("e.g. {name} = \"127.0.0.1:{port}\""),
            );
        }
    }
    let grpc_listen = c.listen_addr(&raw.grpc_listen, "ingest.grpc_listen");
    let http_listen = c.listen_addr(&raw.http_listen, "ingest.http_listen");
    let max_request_bytes = c
        .number(&raw.max_request_bytes, &bounds::INGEST_MAX_REQUEST_BYTES)
        .map(to_usize);
    let max_in_flight = c
        .number(&raw.max_in_flight, &bounds::INGEST_MAX_IN_FLIGHT)
        .map(to_usize);
    Some(IngestSection {
        grpc_listen: grpc_listen?,
        http_listen: http_listen?,
        max_request_bytes,
        max_in_flight,
    })
}

fn gateway(c: &mut Checker<'_>, raw: &RawService) -> Option<GatewaySettings> {
    let storage = c.peer_addr(&raw.storage, "storage");
    let providers = c.path(&raw.providers, "providers");
    let http_listen = c.listen_addr(&raw.http_listen, "http_listen");
    Some(GatewaySettings {
        storage: storage?,
        providers,
        http_listen,
    })
}

fn agent(c: &mut Checker<'_>, raw: &RawService) -> Option<AgentSettings> {
    let gateway = c.peer_addr(&raw.gateway, "gateway");
    let storage = c.peer_addr(&raw.storage, "storage");
    let lookback_secs = c.number(&raw.lookback_secs, &bounds::LOOKBACK_SECS);
    let tool_result_max_bytes = c
        .number(&raw.tool_result_max_bytes, &bounds::TOOL_RESULT_MAX_BYTES)
        .map(to_usize);
    let runs = raw.runs.as_ref().map(|r| agent::runs(c, r.get_ref()));
    let budget = raw.budget.as_ref().map(|b| agent::budget(c, b.get_ref()));
    let webhooks = raw
        .webhooks
        .as_ref()
        .map(|w| agent::webhooks(c, w.get_ref(), w.span()));
    let anomaly = raw.anomaly.as_ref().map(|a| agent::anomaly(c, a.get_ref()));
    let sandbox = raw.sandbox.as_ref().map(|s| agent::sandbox(c, s.get_ref()));
    Some(AgentSettings {
        gateway: gateway?,
        storage: storage?,
        lookback_secs,
        tool_result_max_bytes,
        runs,
        budget,
        // A written [webhooks] that did not check is an error already; `None` is never kept.
        webhooks: webhooks.flatten(),
        anomaly,
        sandbox,
    })
}

/// Two listeners of one service on one address cannot both bind (port 0 picks a free port
/// each time, so it never clashes).
fn distinct_listen_addrs(c: &mut Checker<'_>, raw: &RawService, cfg: &ServiceConfig) {
    let mut addrs: Vec<(&str, SocketAddr, Range<usize>)> = Vec::new();
    let mut add = |name: &'static str, addr: Option<SocketAddr>, v: Option<&Spanned<String>>| {
        if let (Some(a), Some(v)) = (addr, v) {
            addrs.push((name, a, v.span()));
        }
    };
    add("listen", Some(cfg.listen), raw.listen.as_ref());
    add(
        "metrics_listen",
        cfg.metrics_listen,
        raw.metrics_listen.as_ref(),
    );
    match &cfg.settings {
        ServiceSettings::Storage(s) => {
            let raw_ingest = raw.ingest.as_ref().map(Spanned::get_ref);
            let ingest = s.ingest.as_ref();
            add(
                "ingest.grpc_listen",
                ingest.map(|i| i.grpc_listen),
                raw_ingest.and_then(|i| i.grpc_listen.as_ref()),
            );
            add(
                "ingest.http_listen",
                ingest.map(|i| i.http_listen),
                raw_ingest.and_then(|i| i.http_listen.as_ref()),
            );
        }
        ServiceSettings::Agent(a) => add(
            "webhooks.listen",
            a.webhooks.as_ref().map(|w| w.listen),
            raw.webhooks
                .as_ref()
                .and_then(|w| w.get_ref().listen.as_ref()),
        ),
        ServiceSettings::Gateway(g) => add("http_listen", g.http_listen, raw.http_listen.as_ref()),
    }
    addrs.sort_by_key(|(_, _, span)| span.start);
    for (i, (name, addr, span)) in addrs.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        if let Some((first, _, first_span)) = addrs[..i].iter().find(|(_, a, _)| a == addr) {
            let line = c.src.at(first_span.clone(), "").line;
            c.error(
                span.clone(),
                format!("`{name}` is {addr}, as `{first}` is"),
                format!("two listeners cannot share an address; `{first}` is on line {line}"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
