//! The redaction engine for each tenant: the shipped rule pack, plus the tenant's own
//! `redaction_rules` when it has some.
//!
//! Compiling a rule pack costs milliseconds, so each distinct rules text is compiled once
//! and kept in a moka cache keyed by the SHA-256 of the text (tenants with the same text
//! share one engine; a changed text is a new key, so an edit takes effect on the next
//! request). Rules that do not compile refuse the request (fail closed): the tenant asked
//! for values to be hidden, and sending without its rules could leak them.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};
use warden_minimize::{Engine, RuleError};

/// Where a tenant's rules come from, as named in errors (`redaction_rules:3: rule "x": ...`).
pub const ORIGIN: &str = "redaction_rules";

/// The largest `redaction_rules` text a tenant may set.
pub const MAX_RULES_BYTES: usize = 256 * 1024;

/// Compiled engines by rules text.
#[derive(Clone)]
pub struct Engines {
    builtin: Engine,
    by_rules: Cache<[u8; 32], Engine>,
}

impl Engines {
    /// `builtin` serves tenants without rules of their own.
    pub fn new(builtin: Engine) -> Engines {
        Engines {
            builtin,
            by_rules: Cache::builder()
                .max_capacity(256)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// The engine for a tenant whose rules text is `rules`.
    pub async fn for_rules(&self, rules: &str) -> Result<Engine, Arc<RuleError>> {
        if rules.is_empty() {
            return Ok(self.builtin.clone());
        }
        let key: [u8; 32] = Sha256::digest(rules.as_bytes()).into();
        let text = rules.to_owned();
        self.by_rules
            .try_get_with(key, async move {
                // Regex compilation is CPU work: keep it off the async workers.
                tokio::task::spawn_blocking(move || compile(&text))
                    .await
                    .unwrap_or_else(|_| {
                        Err(RuleError {
                            origin: ORIGIN.into(),
                            line: 0,
                            col: 0,
                            rule: None,
                            message: "compiling the rules did not finish".into(),
                            help: None,
                        })
                    })
            })
            .await
    }

    /// How many compiled tenant engines are cached.
    pub async fn cached(&self) -> u64 {
        self.by_rules.run_pending_tasks().await;
        self.by_rules.entry_count()
    }
}

/// Compiles a tenant's rules on top of the shipped pack.
pub fn compile(rules: &str) -> Result<Engine, RuleError> {
    Engine::with_tenant_rules_from(ORIGIN, rules)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const RULES: &str = r#"
[[pattern]]
id = "acme_ticket"
kind = "acme_ticket"
class = "secret"
keywords = ["ACME-"]
regex = 'ACME-[0-9]{6}'
"#;

    #[tokio::test]
    async fn one_compile_per_rules_text() {
        let engines = Engines::new(Engine::builtin().unwrap());
        let a = engines.for_rules(RULES).await.unwrap();
        let b = engines.for_rules(RULES).await.unwrap();
        assert_eq!(engines.cached().await, 1);
        for e in [a, b] {
            let spans = e.find_spans("ticket ACME-123456 closed");
            assert_eq!(spans.len(), 1, "{spans:?}");
            assert_eq!(spans[0].kind.name(), "acme_ticket");
        }
        // No rules: the shipped pack, nothing compiled.
        let builtin = engines.for_rules("").await.unwrap();
        assert!(builtin.find_spans("ticket ACME-123456 closed").is_empty());
        assert_eq!(engines.cached().await, 1);
    }

    #[tokio::test]
    async fn broken_rules_are_an_error_naming_rule_and_line() {
        let engines = Engines::new(Engine::builtin().unwrap());
        let bad = RULES.replace("'ACME-[0-9]{6}'", "'ACME-[0-9'");
        let err = engines.for_rules(&bad).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("redaction_rules:"), "{msg}");
        assert!(msg.contains("acme_ticket"), "{msg}");
        assert_eq!(engines.cached().await, 0);
    }
}
