//! Semantic checks: every problem in the file, each at its own position, each with a
//! sentence saying what is wrong and how to fix it.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;
use warden_providers::{BreakerPolicy, RetryPolicy, Timeouts};

use crate::raw::{RawBreaker, RawConfig, RawProvider, RawRetry, RawTimeouts};
use crate::{Config, Diagnostic, ProviderConfig, ProviderKind, Source};

const DEFAULT_PROFILES: &[&str] = &["reasoning", "fast"];

/// Turns a parsed file into a [`Config`], or returns every problem found.
pub fn validate(src: &Source<'_>, raw: RawConfig) -> Result<Config, Vec<Diagnostic>> {
    let mut errs = Vec::new();
    let (profiles, default_profile) = check_routing(src, &raw, &mut errs);
    check_unique_names(src, &raw.providers, &mut errs);
    if raw.providers.is_empty() {
        errs.push(
            Diagnostic::file_error(src.file, "no providers are defined")
                .with_help("add at least one [[providers]] table (kind = \"local\" works offline)"),
        );
    }
    let defaults = raw.defaults.unwrap_or_default();
    // Zero is reported where a provider inherits it; here it just falls back.
    let deadline = defaults
        .timeouts
        .as_ref()
        .and_then(|t| t.total_ms.as_ref())
        .map(|s| *s.get_ref())
        .filter(|ms| *ms > 0)
        .map_or(Timeouts::default().total, Duration::from_millis);
    let mut providers = Vec::new();
    for p in &raw.providers {
        if let Some(pc) = check_provider(src, p, &defaults, &profiles, &mut errs) {
            providers.push(pc);
        }
    }
    if errs.is_empty() {
        Ok(Config {
            providers,
            profiles,
            default_profile,
            deadline,
        })
    } else {
        Err(errs)
    }
}

fn check_routing(
    src: &Source<'_>,
    raw: &RawConfig,
    errs: &mut Vec<Diagnostic>,
) -> (Vec<String>, String) {
    let routing = raw.routing.as_ref().map(Spanned::get_ref);
    let profiles: Vec<String> = match routing.and_then(|r| r.profiles.as_ref()) {
        Some(list) => {
            if list.get_ref().is_empty() {
                errs.push(
                    src.at(list.span(), "`profiles` is empty")
                        .with_help("declare at least one profile, e.g. [\"reasoning\", \"fast\"]"),
                );
            }
            let mut seen = Vec::new();
            for p in list.get_ref() {
                if !valid_name(p.get_ref()) {
                    errs.push(
                        src.at(
                            p.span(),
                            format!("profile name {:?} is not valid", p.get_ref()),
                        )
                        .with_help(NAME_HELP),
                    );
                } else if seen.contains(p.get_ref()) {
                    errs.push(src.at(
                        p.span(),
                        format!("profile {:?} is declared twice", p.get_ref()),
                    ));
                } else {
                    seen.push(p.get_ref().clone());
                }
            }
            seen
        }
        None => DEFAULT_PROFILES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let default_profile = match routing.and_then(|r| r.default_profile.as_ref()) {
        Some(d) => {
            if !profiles.contains(d.get_ref()) {
                errs.push(
                    src.at(
                        d.span(),
                        format!(
                            "default_profile {:?} is not a declared profile",
                            d.get_ref()
                        ),
                    )
                    .with_help(format!("declared profiles: {}", profiles.join(", "))),
                );
            }
            d.get_ref().clone()
        }
        None => profiles.first().cloned().unwrap_or_default(),
    };
    (profiles, default_profile)
}

const NAME_HELP: &str =
    "use lowercase letters, digits and '-', starting with a letter (e.g. \"bedrock-customer\")";

/// A value that is more likely a credential than a variable name.
fn looks_like_a_key(s: &str) -> bool {
    const PREFIXES: &[&str] = &["sk-", "AKIA", "ASIA", "ghp_", "github_pat_", "xox"];
    PREFIXES.iter().any(|p| s.starts_with(p))
        || (s.len() >= 20
            && s.chars().any(|c| c.is_ascii_digit())
            && s.chars().any(|c| c.is_ascii_lowercase()))
}

fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.len() <= 64
}

fn check_unique_names(
    src: &Source<'_>,
    providers: &[Spanned<RawProvider>],
    errs: &mut Vec<Diagnostic>,
) {
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for p in providers {
        let name = &p.get_ref().name;
        if let Some(&at) = first.get(name.get_ref().as_str()) {
            let line = src.at(at..at, "").line;
            errs.push(
                src.at(name.span(), format!("provider {:?} is defined twice", name.get_ref()))
                    .with_help(format!("the first definition is on line {line}; names must be unique because tenants refer to them")),
            );
        } else {
            first.insert(name.get_ref(), name.span().start);
        }
    }
}

/// An optional field that only some kinds accept.
fn only_for<T>(
    src: &Source<'_>,
    field: &Option<Spanned<T>>,
    name: &str,
    kind_name: &str,
    allowed: &[&str],
    errs: &mut Vec<Diagnostic>,
) {
    if let Some(f) = field
        && !allowed.contains(&kind_name)
    {
        errs.push(
            src.at(
                f.span(),
                format!("`{name}` does not apply to kind {kind_name:?}"),
            )
            .with_help(format!(
                "`{name}` is only for kind {}; remove it",
                allowed.join(" or ")
            )),
        );
    }
}

fn check_url(
    src: &Source<'_>,
    url: &Spanned<String>,
    field: &str,
    allow_plain_http: bool,
    errs: &mut Vec<Diagnostic>,
) {
    let u = url.get_ref();
    let lower = u.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if host.is_none_or(str::is_empty) || u.chars().any(char::is_whitespace) {
        errs.push(
            src.at(url.span(), format!("`{field}` {u:?} is not an http(s) URL"))
                .with_help("write it as https://host[:port][/path]"),
        );
    } else if lower.starts_with("http://") && !allow_plain_http {
        errs.push(
            src.at(
                url.span(),
                format!("provider endpoints must use https:// (`{field}` is {u:?})"),
            )
            .with_help(
                "use https://, or set allow_plain_http = true for a local model or a test server",
            ),
        );
    }
}

fn check_provider(
    src: &Source<'_>,
    sp: &Spanned<RawProvider>,
    defaults: &crate::raw::RawDefaults,
    profiles: &[String],
    errs: &mut Vec<Diagnostic>,
) -> Option<ProviderConfig> {
    let before = errs.len();
    let p = sp.get_ref();
    let name = p.name.get_ref().clone();
    if !valid_name(&name) {
        errs.push(
            src.at(
                p.name.span(),
                format!("provider name {name:?} is not valid"),
            )
            .with_help(NAME_HELP),
        );
    }
    let kind = ProviderKind::parse(p.kind.get_ref());
    if kind.is_none() {
        errs.push(
            src.at(
                p.kind.span(),
                format!("provider {name:?} has unknown kind {:?}", p.kind.get_ref()),
            )
            .with_help(format!(
                "kind is one of: {}",
                ProviderKind::NAMES.join(", ")
            )),
        );
    }
    let kind_name = p.kind.get_ref().as_str();
    let no_training = match &p.no_training {
        Some(v) => *v.get_ref(),
        None => {
            errs.push(
                src.at(p.name.span(), format!("provider {name:?} does not say whether it trains on submitted data"))
                    .with_help("add `no_training = true` only if the contract forbids training on our data, else `no_training = false`; a provider without it is never eligible"),
            );
            false
        }
    };
    let allow_plain_http = p.allow_plain_http.as_ref().is_some_and(|v| *v.get_ref());
    only_for(
        src,
        &p.base_url,
        "base_url",
        kind_name,
        &["anthropic", "openai"],
        errs,
    );
    only_for(
        src,
        &p.api_key_env,
        "api_key_env",
        kind_name,
        &["anthropic", "openai"],
        errs,
    );
    only_for(
        src,
        &p.api_version,
        "api_version",
        kind_name,
        &["anthropic"],
        errs,
    );
    only_for(
        src,
        &p.organization,
        "organization",
        kind_name,
        &["openai"],
        errs,
    );
    only_for(
        src,
        &p.legacy_max_tokens,
        "legacy_max_tokens",
        kind_name,
        &["openai"],
        errs,
    );
    only_for(src, &p.region, "region", kind_name, &["bedrock"], errs);
    only_for(src, &p.endpoint, "endpoint", kind_name, &["bedrock"], errs);
    only_for(
        src,
        &p.sts_endpoint,
        "sts_endpoint",
        kind_name,
        &["bedrock"],
        errs,
    );
    only_for(
        src,
        &p.customer_account,
        "customer_account",
        kind_name,
        &["bedrock"],
        errs,
    );
    for (field, url) in [
        ("base_url", &p.base_url),
        ("endpoint", &p.endpoint),
        ("sts_endpoint", &p.sts_endpoint),
    ] {
        if let Some(u) = url {
            check_url(src, u, field, allow_plain_http, errs);
        }
    }
    if kind == Some(ProviderKind::Anthropic) && p.api_key_env.is_none() {
        errs.push(
            src.at(p.kind.span(), format!("provider {name:?} needs `api_key_env`"))
                .with_help("name the environment variable that holds the key, e.g. api_key_env = \"ANTHROPIC_API_KEY\"; keys never go in this file"),
        );
    }
    if let Some(env) = &p.api_key_env {
        let e = env.get_ref();
        let ok = e
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && e.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            // Never the value itself: it may be the key. (`Source::at` hides it in the
            // quoted line too.)
            let help = if looks_like_a_key(e) {
                "this looks like a key itself (not shown): put the key in an environment variable, name the variable here, and rotate the key if this file was shared"
            } else {
                "use an environment variable name such as ANTHROPIC_API_KEY"
            };
            errs.push(
                src.at(
                    env.span(),
                    "`api_key_env` must be an environment variable name",
                )
                .with_help(help),
            );
        }
    }
    if kind == Some(ProviderKind::Bedrock) && p.region.is_none() {
        errs.push(
            src.at(p.kind.span(), format!("provider {name:?} needs `region`"))
                .with_help("the platform account's region, e.g. region = \"us-east-1\" (for customer accounts: the STS region; each tenant's own region comes from its settings)"),
        );
    }
    if let Some(r) = &p.region {
        let ok = !r.get_ref().is_empty()
            && r.get_ref()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            errs.push(
                src.at(
                    r.span(),
                    format!("region {:?} is not an AWS region name", r.get_ref()),
                )
                .with_help("e.g. \"eu-central-1\""),
            );
        }
    }
    let models = check_models(src, p, &name, profiles, errs);
    let timeouts = timeouts(src, p.timeouts.as_ref(), defaults.timeouts.as_ref(), errs);
    let retry = retry(src, p.retry.as_ref(), defaults.retry.as_ref(), errs);
    let breaker = breaker(src, p.breaker.as_ref(), defaults.breaker.as_ref(), errs);
    if errs.len() > before {
        return None;
    }
    Some(ProviderConfig {
        name,
        kind: kind?,
        base_url: p.base_url.as_ref().map(|v| v.get_ref().clone()),
        region: p.region.as_ref().map(|v| v.get_ref().clone()),
        endpoint: p.endpoint.as_ref().map(|v| v.get_ref().clone()),
        sts_endpoint: p.sts_endpoint.as_ref().map(|v| v.get_ref().clone()),
        api_key_env: p.api_key_env.as_ref().map(|v| v.get_ref().clone()),
        api_version: p.api_version.as_ref().map(|v| v.get_ref().clone()),
        organization: p.organization.as_ref().map(|v| v.get_ref().clone()),
        legacy_max_tokens: p.legacy_max_tokens.as_ref().is_some_and(|v| *v.get_ref()),
        models,
        timeouts,
        retry,
        breaker,
        no_training,
        customer_account: p.customer_account.as_ref().is_some_and(|v| *v.get_ref()),
        allow_plain_http,
    })
}

fn check_models(
    src: &Source<'_>,
    p: &RawProvider,
    name: &str,
    profiles: &[String],
    errs: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let Some(models) = &p.models else {
        errs.push(
            src.at(p.name.span(), format!("provider {name:?} has no `models`"))
                .with_help(format!(
                    "map each profile to a model id, e.g. models = {{ {} = \"model-id\" }}",
                    profiles.first().map_or("reasoning", String::as_str)
                )),
        );
        return BTreeMap::new();
    };
    if models.get_ref().is_empty() {
        errs.push(src.at(
            models.span(),
            format!("provider {name:?} maps no profile to a model"),
        ));
    }
    let mut out = BTreeMap::new();
    for (profile, model) in models.get_ref() {
        if !profiles.contains(profile) {
            errs.push(
                src.at(
                    model.span(),
                    format!("provider {name:?} names profile {profile:?}, which is not declared"),
                )
                .with_help(format!(
                    "declared profiles: {} (see [routing] profiles)",
                    profiles.join(", ")
                )),
            );
        }
        if model.get_ref().trim().is_empty() {
            errs.push(src.at(
                model.span(),
                format!("provider {name:?} has an empty model id for profile {profile:?}"),
            ));
        }
        out.insert(profile.clone(), model.get_ref().clone());
    }
    out
}

fn pick<'a, T>(
    own: Option<&'a Spanned<T>>,
    default: Option<&'a Spanned<T>>,
) -> Option<&'a Spanned<T>> {
    own.or(default)
}

fn positive_ms(
    src: &Source<'_>,
    v: Option<&Spanned<u64>>,
    field: &str,
    fallback: Duration,
    errs: &mut Vec<Diagnostic>,
) -> Duration {
    match v {
        Some(s) if *s.get_ref() == 0 => {
            errs.push(
                src.at(s.span(), format!("`{field}` must be greater than zero"))
                    .with_help("a zero timeout would fail every call"),
            );
            fallback
        }
        Some(s) => Duration::from_millis(*s.get_ref()),
        None => fallback,
    }
}

fn timeouts(
    src: &Source<'_>,
    own: Option<&RawTimeouts>,
    def: Option<&RawTimeouts>,
    errs: &mut Vec<Diagnostic>,
) -> Timeouts {
    let d = Timeouts::default();
    let get = |f: fn(&RawTimeouts) -> Option<&Spanned<u64>>| pick(own.and_then(f), def.and_then(f));
    let t = Timeouts {
        connect: positive_ms(
            src,
            get(|t| t.connect_ms.as_ref()),
            "connect_ms",
            d.connect,
            errs,
        ),
        first_byte: positive_ms(
            src,
            get(|t| t.first_byte_ms.as_ref()),
            "first_byte_ms",
            d.first_byte,
            errs,
        ),
        idle: positive_ms(src, get(|t| t.idle_ms.as_ref()), "idle_ms", d.idle, errs),
        total: positive_ms(src, get(|t| t.total_ms.as_ref()), "total_ms", d.total, errs),
    };
    if t.total < t.first_byte
        && let Some(s) = get(|t| t.total_ms.as_ref())
    {
        errs.push(
            src.at(
                s.span(),
                format!(
                    "`total_ms` ({} ms) is shorter than `first_byte_ms` ({} ms)",
                    t.total.as_millis(),
                    t.first_byte.as_millis()
                ),
            )
            .with_help("the whole call cannot finish before its first byte; raise total_ms"),
        );
    }
    t
}

fn retry(
    src: &Source<'_>,
    own: Option<&RawRetry>,
    def: Option<&RawRetry>,
    errs: &mut Vec<Diagnostic>,
) -> RetryPolicy {
    let d = RetryPolicy::default();
    let max_attempts = match pick(
        own.and_then(|r| r.max_attempts.as_ref()),
        def.and_then(|r| r.max_attempts.as_ref()),
    ) {
        Some(s) if !(1..=10).contains(s.get_ref()) => {
            errs.push(
                src.at(s.span(), "`max_attempts` must be between 1 and 10")
                    .with_help("1 means no retry on the same provider; failover still happens"),
            );
            d.max_attempts
        }
        Some(s) => *s.get_ref(),
        None => d.max_attempts,
    };
    let get = |f: fn(&RawRetry) -> Option<&Spanned<u64>>| pick(own.and_then(f), def.and_then(f));
    let r = RetryPolicy {
        max_attempts,
        base_delay: positive_ms(
            src,
            get(|r| r.base_delay_ms.as_ref()),
            "base_delay_ms",
            d.base_delay,
            errs,
        ),
        max_delay: positive_ms(
            src,
            get(|r| r.max_delay_ms.as_ref()),
            "max_delay_ms",
            d.max_delay,
            errs,
        ),
        max_retry_after: get(|r| r.max_retry_after_ms.as_ref())
            .map_or(d.max_retry_after, |s| Duration::from_millis(*s.get_ref())),
    };
    if r.base_delay > r.max_delay
        && let Some(s) = get(|r| r.base_delay_ms.as_ref())
    {
        errs.push(
            src.at(s.span(), "`base_delay_ms` is larger than `max_delay_ms`")
                .with_help("backoff starts at base_delay_ms and is capped at max_delay_ms"),
        );
    }
    r
}

fn breaker(
    src: &Source<'_>,
    own: Option<&RawBreaker>,
    def: Option<&RawBreaker>,
    errs: &mut Vec<Diagnostic>,
) -> BreakerPolicy {
    let d = BreakerPolicy::default();
    let failure_threshold = match pick(
        own.and_then(|b| b.failure_threshold.as_ref()),
        def.and_then(|b| b.failure_threshold.as_ref()),
    ) {
        Some(s) if *s.get_ref() == 0 => {
            errs.push(src.at(s.span(), "`failure_threshold` must be at least 1"));
            d.failure_threshold
        }
        Some(s) => *s.get_ref(),
        None => d.failure_threshold,
    };
    let cooldown = positive_ms(
        src,
        pick(
            own.and_then(|b| b.cooldown_ms.as_ref()),
            def.and_then(|b| b.cooldown_ms.as_ref()),
        ),
        "cooldown_ms",
        d.cooldown,
        errs,
    );
    BreakerPolicy {
        failure_threshold,
        cooldown,
    }
}
