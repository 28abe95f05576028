//! `warden config check FILE`: works out which kind of config a file is, checks it with
//! the parser that kind's loader uses, and explains every error at `file:line:col`.
//!
//! **Which kind a file is:** a service config when it says `service = "..."`; else by
//! its keys when they are of one kind only (`[routing]`, `[defaults]` or `[[providers]]`:
//! provider routing; `[[pattern]]`, `[[key]]`, `[[structure]]` or `[values]`: redaction
//! rules; `listen` or another service key: a service config); else by its name
//! (`providers*.toml`, `*rules.toml` or `redaction*.toml`, `agent*.toml`, `gateway*.toml`,
//! `storage*.toml`). Otherwise the check fails, listing the kinds it knows.
//!
//! Redaction rules are checked on their own, as the shipped pack is; a tenant's file is
//! also checked against the shipped pack's rule ids when it is loaded (`warden redact
//! --rules FILE`, or by the gateway).

use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::service::{ServiceConfig, ServiceSettings, parse_service};
use crate::{Config, Diagnostic, Source, parse, render};

/// The kinds of config file `warden config check` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `config/providers.toml`: which providers exist and how calls are routed.
    ProviderRouting,
    /// `config/redaction-rules.toml`, or a tenant's rules of the same format.
    RedactionRules,
    /// `config/agent.toml`, `gateway.toml`, `storage.toml`.
    Service,
}

impl ConfigKind {
    fn describe(self) -> &'static str {
        match self {
            ConfigKind::ProviderRouting => "provider routing",
            ConfigKind::RedactionRules => "redaction rules",
            ConfigKind::Service => "service config",
        }
    }
}

const KNOWN_KINDS: &str = "warden config check knows: provider routing (providers.toml: [routing], [defaults], [[providers]]), redaction rules (redaction-rules.toml: [[pattern]], [[key]], [[structure]], [values]) and the agent, gateway and storage service configs (agent.toml, gateway.toml, storage.toml: `listen = ...`, or say service = \"agent\")";

/// The kinds whose keys `key = value` belongs to.
fn kind_of_key(key: &str, value: &DeValue<'_>) -> Option<ConfigKind> {
    let array = matches!(value, DeValue::Array(_));
    match key {
        "routing" | "defaults" => Some(ConfigKind::ProviderRouting),
        "providers" if array => Some(ConfigKind::ProviderRouting),
        "pattern" | "key" | "structure" if array => Some(ConfigKind::RedactionRules),
        "values" if matches!(value, DeValue::Table(_)) => Some(ConfigKind::RedactionRules),
        // `providers` as a path: the gateway's routing config file.
        k if crate::service::is_service_key(k) => Some(ConfigKind::Service),
        _ => None,
    }
}

fn kind_of_name(file: &str) -> Option<ConfigKind> {
    let name = Path::new(file).file_stem()?.to_str()?.to_ascii_lowercase();
    if name.starts_with("redaction") || name.ends_with("rules") {
        Some(ConfigKind::RedactionRules)
    } else if name.starts_with("providers") || name.starts_with("routing") {
        Some(ConfigKind::ProviderRouting)
    } else if crate::ServiceKind::from_file_name(file).is_some() {
        Some(ConfigKind::Service)
    } else {
        None
    }
}

/// Which kind of config `src` (named `file`) is, as the module documentation says. A file
/// that is not TOML fails here, at the syntax error's position.
pub fn classify(file: &str, src: &str) -> Result<ConfigKind, Diagnostic> {
    let source = Source::new(file, src);
    let doc = DeTable::parse(src).map_err(|e| source.from_toml_error(&e))?;
    let mut by_keys: Vec<ConfigKind> = Vec::new();
    for (key, value) in doc.get_ref() {
        if key.get_ref() == "service" {
            return Ok(ConfigKind::Service);
        }
        if let Some(kind) = kind_of_key(key.get_ref(), value.get_ref())
            && !by_keys.contains(&kind)
        {
            by_keys.push(kind);
        }
    }
    let by_name = kind_of_name(file);
    match (by_keys.as_slice(), by_name) {
        ([only], _) => Ok(*only),
        ([], Some(kind)) => Ok(kind),
        (many, Some(kind)) if many.contains(&kind) => Ok(kind),
        ([], None) => Err(
            Diagnostic::file_error(file, "cannot tell what kind of config this is")
                .with_help(KNOWN_KINDS),
        ),
        (many, _) => {
            let kinds: Vec<&str> = many.iter().map(|k| k.describe()).collect();
            Err(Diagnostic::file_error(
                file,
                &format!(
                    "this file has the keys of more than one kind of config ({})",
                    kinds.join(" and ")
                ),
            )
            .with_help(format!("keep one kind per file; {KNOWN_KINDS}")))
        }
    }
}

/// Checks `src` (named `file`): `Ok` with a summary of what it configures, or every
/// problem found.
pub fn check_source(file: &str, src: &str) -> Result<String, Vec<Diagnostic>> {
    match classify(file, src).map_err(|d| vec![d])? {
        ConfigKind::ProviderRouting => parse(file, src).map(|cfg| routing_summary(file, &cfg)),
        ConfigKind::RedactionRules => check_rules(file, src),
        ConfigKind::Service => parse_service(file, src).map(|cfg| service_summary(file, &cfg)),
    }
}

/// `warden config check FILE`: `Ok` with a short summary, or `Err` with every diagnostic
/// rendered for a terminal (the caller prints it and exits non-zero).
pub fn check(path: &Path) -> Result<String, String> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        render(&[Diagnostic::file_error(
            &file,
            &format!("cannot read the file: {e}"),
        )])
    })?;
    check_source(&file, &src).map_err(|d| render(&d))
}

fn check_rules(file: &str, src: &str) -> Result<String, Vec<Diagnostic>> {
    let source = Source::new(file, src);
    match warden_minimize::check_rules(file, src) {
        Ok(n) => Ok(format!(
            "{file}: ok: redaction rules: {} pattern, {} key and {} structure rule(s) naming {} kind(s)\n  checked on their own; a tenant's rules are also checked against the shipped pack's ids when loaded (`warden redact --rules FILE`)\n",
            n.patterns, n.keys, n.structures, n.kinds
        )),
        Err(errs) => Err(errs
            .into_iter()
            .map(|e| {
                let message = match &e.rule {
                    Some(rule) => format!("rule {rule:?}: {}", e.message),
                    None => e.message.clone(),
                };
                let d = source.at_line_col(e.line, e.col, message);
                match e.help {
                    Some(h) => d.with_help(h),
                    None => d,
                }
            })
            .collect()),
    }
}

fn routing_summary(file: &str, cfg: &Config) -> String {
    let names = |no_training: bool| -> Vec<&str> {
        cfg.providers
            .iter()
            .filter(|p| p.no_training == no_training)
            .map(|p| p.name.as_str())
            .collect()
    };
    let (eligible, excluded) = (names(true), names(false));
    let mut out = format!(
        "{file}: ok: {} provider(s); profiles {} (default {})\n  may be eligible (no_training = true): {}\n",
        cfg.providers.len(),
        cfg.profiles.join(", "),
        cfg.default_profile,
        if eligible.is_empty() {
            "none".to_owned()
        } else {
            eligible.join(", ")
        },
    );
    if !excluded.is_empty() {
        out.push_str(&format!(
            "  never eligible (no_training = false): {}\n",
            excluded.join(", ")
        ));
    }
    out
}

/// What a service config sets, without values that may be secret (a database URL may hold
/// a password: only its scheme is shown).
fn service_summary(file: &str, cfg: &ServiceConfig) -> String {
    let mut out = format!("{file}: ok: {} service config\n", cfg.kind());
    out.push_str(&format!("  listen {}", cfg.listen));
    if let Some(m) = cfg.metrics_listen {
        out.push_str(&format!(", metrics {m}"));
    }
    match &cfg.tls {
        Some(t) => out.push_str(&format!("; mTLS with {}\n", t.cert.display())),
        None => out.push_str("; no [tls]: `warden serve` needs --insecure-dev to run it\n"),
    }
    match &cfg.settings {
        ServiceSettings::Storage(s) => {
            let scheme = s.database.split(':').next().unwrap_or_default();
            out.push_str(&format!(
                "  database {scheme}, key file {}\n",
                s.key_file.display()
            ));
            if let Some(i) = &s.ingest {
                out.push_str(&format!(
                    "  OTLP in: gRPC {}, HTTP {}\n",
                    i.grpc_listen, i.http_listen
                ));
            }
        }
        ServiceSettings::Gateway(g) => {
            out.push_str(&format!("  storage {}\n", g.storage));
            match &g.providers {
                Some(p) => out.push_str(&format!("  providers from {}\n", p.display())),
                None => out.push_str("  no providers file: only the offline `local` provider\n"),
            }
        }
        ServiceSettings::Agent(a) => {
            out.push_str(&format!("  gateway {}, storage {}\n", a.gateway, a.storage));
            let mut sections: Vec<String> = Vec::new();
            if a.runs.is_some() {
                sections.push("[runs]".into());
            }
            if a.budget.is_some() {
                sections.push("[budget]".into());
            }
            if let Some(w) = &a.webhooks {
                sections.push(format!("[webhooks] on {}", w.listen));
            }
            if a.anomaly.is_some() {
                sections.push("[anomaly]".into());
            }
            if !sections.is_empty() {
                out.push_str(&format!("  {}\n", sections.join(", ")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
