use std::collections::BTreeSet;

use super::*;

fn catalogue() -> Vec<ProviderInfo> {
    let p = |name: &str, no_training, customer_account| ProviderInfo {
        name: name.into(),
        no_training,
        customer_account,
    };
    vec![
        p("anthropic", true, false),
        p("openai", true, false),
        p("trainy", false, false),
        p("bedrock", true, false),
        p("bedrock-customer", true, true),
        p("local", true, false),
    ]
}

fn enabled(providers: &[&str], types: &[DataType]) -> TenantSettings {
    TenantSettings {
        tenant_id: "acme".into(),
        enabled: true,
        allowed_providers: providers.iter().map(|s| s.to_string()).collect(),
        allowed_data_types: types.iter().copied().collect(),
        ..TenantSettings::default()
    }
}

fn ask(types: &[DataType]) -> Ask {
    Ask {
        tenant_id: "acme".into(),
        data_types: types.iter().copied().collect(),
        preferred_provider: None,
    }
}

#[track_caller]
fn check(settings: Option<&TenantSettings>, ask: &Ask, expected: &str) {
    let got = match decide(settings, ask, &catalogue()) {
        Ok(d) => format!("allow {}", d.eligible.join(",")),
        Err(d) => format!("deny {}: {}", d.rule, d.message),
    };
    assert_eq!(got, expected);
}

#[test]
fn unknown_tenant_is_refused() {
    check(
        None,
        &ask(&[]),
        "deny TENANT_UNKNOWN: AI features are not enabled for tenant acme (tenant unknown)",
    );
}

#[test]
fn default_settings_are_off() {
    let s = TenantSettings::disabled("acme");
    check(
        Some(&s),
        &ask(&[DataType::Instruction]),
        "deny OPT_IN_REQUIRED: AI features are not enabled for tenant acme",
    );
}

#[test]
fn opt_in_is_checked_before_anything_else() {
    let mut s = enabled(&[], &[]);
    s.enabled = false;
    check(
        Some(&s),
        &ask(&[DataType::SourceCode]),
        "deny OPT_IN_REQUIRED: AI features are not enabled for tenant acme",
    );
}

#[test]
fn enabled_tenant_gets_its_providers_in_its_order() {
    let s = enabled(&["openai", "anthropic"], &[DataType::Logs]);
    check(
        Some(&s),
        &ask(&[DataType::Instruction, DataType::Logs]),
        "allow openai,anthropic",
    );
}

#[test]
fn training_providers_are_never_eligible() {
    let s = enabled(&["trainy", "local"], &[]);
    check(Some(&s), &ask(&[]), "allow local");
    let s = enabled(&["trainy"], &[]);
    check(
        Some(&s),
        &ask(&[]),
        "deny NO_ELIGIBLE_PROVIDER: tenant acme allows no configured provider that is bound not to train on data",
    );
}

#[test]
fn unconfigured_providers_are_skipped() {
    let s = enabled(&["nonexistent", "anthropic"], &[]);
    check(Some(&s), &ask(&[]), "allow anthropic");
}

#[test]
fn disallowed_data_type_is_refused_with_its_name() {
    let s = enabled(&["local"], &[DataType::Logs]);
    check(
        Some(&s),
        &ask(&[DataType::Metrics]),
        "deny DATA_TYPE_NOT_ALLOWED: tenant acme does not allow data type metrics to be sent to a model",
    );
}

#[test]
fn drop_mode_leaves_gating_to_minimization() {
    let mut s = enabled(&["local"], &[DataType::Logs]);
    s.on_disallowed_data = OnDisallowedData::Drop;
    check(Some(&s), &ask(&[DataType::Metrics]), "allow local");
}

#[test]
fn source_code_needs_github_even_if_listed() {
    let mut s = enabled(&["local"], &[DataType::SourceCode]);
    check(
        Some(&s),
        &ask(&[DataType::SourceCode]),
        "deny SOURCE_CODE_REQUIRES_GITHUB: tenant acme has not enabled the GitHub integration, so source code may not be sent",
    );
    s.github_integration = true;
    check(Some(&s), &ask(&[DataType::SourceCode]), "allow local");
}

#[test]
fn instruction_always_passes_the_gate() {
    let s = enabled(&["local"], &[]);
    assert_eq!(data_type_gate(&s, DataType::Instruction), Ok(()));
}

#[test]
fn customer_account_tenant_stays_on_its_account() {
    let mut s = enabled(&["bedrock-customer", "anthropic"], &[]);
    s.customer_bedrock = Some(CustomerBedrock {
        region: "eu-west-1".into(),
        credentials: CustomerCredentials::AssumeRole {
            role_arn: "arn:aws:iam::1:role/x".into(),
            external_id: "e".into(),
        },
    });
    check(Some(&s), &ask(&[]), "allow bedrock-customer");
    s.allow_platform_providers = true;
    check(Some(&s), &ask(&[]), "allow bedrock-customer,anthropic");
}

#[test]
fn customer_account_provider_needs_customer_settings() {
    let s = enabled(&["bedrock-customer", "local"], &[]);
    check(Some(&s), &ask(&[]), "allow local");
}

#[test]
fn preference_reorders_but_never_widens() {
    let s = enabled(&["anthropic", "openai"], &[]);
    let mut a = ask(&[]);
    a.preferred_provider = Some("openai".into());
    check(Some(&s), &a, "allow openai,anthropic");
    a.preferred_provider = Some("bedrock".into());
    check(Some(&s), &a, "allow anthropic,openai");
}

#[test]
fn data_type_names_round_trip() {
    for dt in DataType::ALL {
        assert_eq!(dt.as_str().parse::<DataType>(), Ok(dt));
    }
    assert_eq!("code".parse::<DataType>(), Ok(DataType::SourceCode));
    assert!("videos".parse::<DataType>().is_err());
    let set: BTreeSet<DataType> = DataType::TELEMETRY.into_iter().collect();
    assert!(!set.contains(&DataType::Instruction));
}
