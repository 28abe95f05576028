//! Table tests for loading and validation: each case is a file and the exact diagnostics.

use std::path::Path;

use super::*;

#[track_caller]
fn check_errors(src: &str, expected: &str) {
    let diags = parse("p.toml", src).expect_err("expected diagnostics");
    assert_eq!(render(&diags), expected);
}

const OK: &str = r#"
[[providers]]
name = "local"
kind = "local"
no_training = true
models = { reasoning = "m" }
"#;

#[test]
fn a_minimal_file_loads_with_defaults() {
    let cfg = parse("p.toml", OK).unwrap();
    assert_eq!(cfg.profiles, ["reasoning", "fast"]);
    assert_eq!(cfg.default_profile, "reasoning");
    let p = cfg.provider("local").unwrap();
    assert_eq!(p.retry, warden_providers::RetryPolicy::default());
    assert!(p.no_training && !p.allow_plain_http);
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/providers.toml");
    let cfg = load(&path).unwrap_or_else(|d| panic!("{}", render(&d)));
    let names: Vec<_> = cfg.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "anthropic",
            "openai",
            "bedrock",
            "bedrock-customer",
            "local"
        ]
    );
    let anthropic = cfg.provider("anthropic").unwrap();
    assert_eq!(
        anthropic.timeouts.first_byte,
        std::time::Duration::from_secs(120)
    );
    assert_eq!(
        anthropic.timeouts.idle,
        std::time::Duration::from_secs(30),
        "from [defaults]"
    );
    assert_eq!(
        cfg.provider("bedrock-customer").unwrap().retry.max_attempts,
        1
    );
    let cat = catalogue(&cfg);
    assert!(cat.iter().all(|p| p.no_training));
    assert_eq!(
        cat.iter()
            .filter(|p| p.customer_account)
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["bedrock-customer"]
    );
    let summary = check(&path).unwrap();
    assert!(
        summary.contains("ok: 5 provider(s); profiles reasoning, fast (default reasoning)"),
        "{summary}"
    );
}

#[test]
fn every_problem_is_reported_at_its_position() {
    check_errors(
        r#"[routing]
profiles = ["reasoning", "fast"]
default_profile = "smart"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://api.anthropic.com"
api_key_env = "sk-ant-123"
models = { reasoning = "claude", resoning = "claude" }

[[providers]]
name = "anthropic"
kind = "bedrok"
no_training = true
models = { fast = "m" }

[[providers]]
name = "bedrock"
kind = "bedrock"
no_training = false
base_url = "https://x"
models = { fast = "" }
[providers.retry]
max_attempts = 0
"#,
        r#"p.toml:3:19: error: default_profile "smart" is not a declared profile
   |     default_profile = "smart"
   = help: declared profiles: reasoning, fast
p.toml:13:8: error: provider "anthropic" is defined twice
   |     name = "anthropic"
   = help: the first definition is on line 6; names must be unique because tenants refer to them
p.toml:6:8: error: provider "anthropic" does not say whether it trains on submitted data
   |     name = "anthropic"
   = help: add `no_training = true` only if the contract forbids training on our data, else `no_training = false`; a provider without it is never eligible
p.toml:8:12: error: provider endpoints must use https:// (`base_url` is "http://api.anthropic.com")
   |     base_url = "http://api.anthropic.com"
   = help: use https://, or set allow_plain_http = true for a local model or a test server
p.toml:9:15: error: `api_key_env` must be an environment variable name
   |     api_key_env = <value not shown>
   = help: this looks like a key itself (not shown): put the key in an environment variable, name the variable here, and rotate the key if this file was shared
p.toml:10:45: error: provider "anthropic" names profile "resoning", which is not declared
   |     models = { reasoning = "claude", resoning = "claude" }
   = help: declared profiles: reasoning, fast (see [routing] profiles)
p.toml:14:8: error: provider "anthropic" has unknown kind "bedrok"
   |     kind = "bedrok"
   = help: kind is one of: anthropic, openai, bedrock, local
p.toml:22:12: error: `base_url` does not apply to kind "bedrock"
   |     base_url = "https://x"
   = help: `base_url` is only for kind anthropic or openai; remove it
p.toml:20:8: error: provider "bedrock" needs `region`
   |     kind = "bedrock"
   = help: the platform account's region, e.g. region = "us-east-1" (for customer accounts: the STS region; each tenant's own region comes from its settings)
p.toml:23:19: error: provider "bedrock" has an empty model id for profile "fast"
   |     models = { fast = "" }
p.toml:25:16: error: `max_attempts` must be between 1 and 10
   |     max_attempts = 0
   = help: 1 means no retry on the same provider; failover still happens
11 errors; nothing was loaded
"#,
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_with_a_position() {
    let diags = parse("p.toml", &format!("{OK}trains = false\n")).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!((diags[0].line, diags[0].col), (7, 1), "{}", diags[0]);
    assert!(
        diags[0].message.contains("unknown field `trains`"),
        "{}",
        diags[0]
    );
    let diags = parse(
        "p.toml",
        &OK.replace("no_training = true", "no_training = \"yes\""),
    )
    .unwrap_err();
    assert_eq!((diags[0].line, diags[0].col), (5, 15), "{}", diags[0]);
}

#[test]
fn plain_http_needs_an_explicit_opt_in() {
    let vllm = r#"
[[providers]]
name = "vllm"
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
no_training = true
models = { fast = "qwen" }
"#;
    assert!(parse("p.toml", vllm).is_err());
    let cfg = parse(
        "p.toml",
        &vllm.replace("no_training", "allow_plain_http = true\nno_training"),
    )
    .unwrap();
    assert!(cfg.provider("vllm").unwrap().allow_plain_http);
}

#[test]
fn a_provider_that_may_train_is_never_eligible() {
    let src = OK.replace("no_training = true", "no_training = false");
    let cfg = parse("p.toml", &src).unwrap();
    let settings = warden_policy::TenantSettings {
        enabled: true,
        allowed_providers: vec!["local".into()],
        ..warden_policy::TenantSettings::disabled("acme")
    };
    assert!(warden_policy::eligible_providers(&settings, &catalogue(&cfg)).is_empty());
}

#[test]
fn an_unreadable_file_is_a_diagnostic() {
    let diags = load(Path::new("/nonexistent/providers.toml")).unwrap_err();
    assert!(
        diags[0]
            .to_string()
            .starts_with("/nonexistent/providers.toml: error: cannot read the file"),
        "{}",
        diags[0]
    );
}

#[test]
fn a_key_pasted_into_api_key_env_is_never_echoed() {
    const KEY: &str = "sk-ant-api03-Zx9QwErTy7UiOp1AsDfGh";
    let provider = |value: &str| {
        format!(
            "[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nno_training = true\napi_key_env = {value}\nmodels = {{ reasoning = \"m\" }}\n"
        )
    };
    for (case, value) in [
        ("quoted", format!("\"{KEY}\"")),
        ("unquoted: a TOML syntax error on that line", KEY.to_owned()),
        ("a multi-line string", format!("\"\"\"{KEY}\n\"\"\"")),
        (
            "a key without a known prefix",
            "\"q7Zx9QwErTy7UiOp1AsDfGhJkL\"".to_owned(),
        ),
    ] {
        let out = render(&parse("p.toml", &provider(&value)).unwrap_err());
        assert!(
            out.contains("api_key_env") || out.contains("line 5"),
            "{case}: {out}"
        );
        assert!(!out.contains(KEY), "{case}: the key is echoed: {out}");
        assert!(
            !out.contains("q7Zx9QwErTy7UiOp1"),
            "{case}: the key is echoed: {out}"
        );
    }
    // The diagnostic still says what is wrong.
    let out = render(&parse("p.toml", &provider(&format!("\"{KEY}\""))).unwrap_err());
    assert!(out.contains("looks like a key itself (not shown)"), "{out}");
}
