//! `warden config check`: every shipped file passes as its kind; a file of no known kind, a
//! syntax error and bad redaction rules are each explained at their position.

use std::path::{Path, PathBuf};

use super::*;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

#[test]
fn every_shipped_file_is_classified_and_passes() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(config_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(&path).unwrap();
        let kind = classify(&name, &src).unwrap_or_else(|d| panic!("{d}"));
        let summary = check_source(&name, &src).unwrap_or_else(|d| panic!("{}", render(&d)));
        assert!(summary.starts_with(&format!("{name}: ok: ")), "{summary}");
        kinds.push((name, kind));
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("agent.toml".to_owned(), ConfigKind::Service),
            ("gateway.toml".to_owned(), ConfigKind::Service),
            ("providers.toml".to_owned(), ConfigKind::ProviderRouting),
            (
                "redaction-rules.toml".to_owned(),
                ConfigKind::RedactionRules
            ),
            ("storage.toml".to_owned(), ConfigKind::Service),
        ]
    );
}

#[test]
fn the_kind_comes_from_the_keys_then_the_name() {
    let kind = |file: &str, src: &str| classify(file, src).map_err(|d| d.to_string());
    // Keys of one kind decide, whatever the name.
    assert_eq!(
        kind("x.toml", "[[pattern]]\nid = \"a\"\n"),
        Ok(ConfigKind::RedactionRules)
    );
    assert_eq!(
        kind("agent.toml", "[routing]\nprofiles = [\"fast\"]\n"),
        Ok(ConfigKind::ProviderRouting)
    );
    // `providers` as a path is the gateway's key; as an array of tables, the routing config.
    assert_eq!(
        kind("x.toml", "providers = \"config/providers.toml\"\n"),
        Ok(ConfigKind::Service)
    );
    assert_eq!(
        kind("x.toml", "[[providers]]\nname = \"local\"\n"),
        Ok(ConfigKind::ProviderRouting)
    );
    // No known key: the name decides.
    assert_eq!(kind("providers.toml", ""), Ok(ConfigKind::ProviderRouting));
    assert_eq!(kind("acme-rules.toml", ""), Ok(ConfigKind::RedactionRules));
    assert_eq!(kind("storage.toml", "# x\n"), Ok(ConfigKind::Service));
    // `service` decides over everything.
    assert_eq!(
        kind("redaction-rules.toml", "service = \"agent\"\n"),
        Ok(ConfigKind::Service)
    );
}

#[test]
fn an_unclassifiable_file_names_the_kinds_it_knows() {
    let d = classify("notes.toml", "title = \"x\"\n").unwrap_err();
    assert_eq!(
        (d.line, d.col, d.message.as_str()),
        (0, 0, "cannot tell what kind of config this is")
    );
    let help = d.help.as_deref().unwrap_or_default();
    for kind in [
        "provider routing",
        "redaction rules",
        "agent, gateway and storage service configs",
    ] {
        assert!(help.contains(kind), "{help}");
    }
    let out = render(&check_source("notes.toml", "title = \"x\"\n").unwrap_err());
    assert!(
        out.starts_with("notes.toml: error: cannot tell what kind of config this is\n"),
        "{out}"
    );
    // Keys of two kinds, and a name that settles nothing.
    let d = classify("mixed.toml", "listen = \"127.0.0.1:1\"\n[routing]\n").unwrap_err();
    assert_eq!(
        d.message,
        "this file has the keys of more than one kind of config (service config and provider routing)"
    );
}

#[test]
fn a_syntax_error_is_reported_at_its_position_whatever_the_kind() {
    let d = check_source("providers.toml", "[routing]\nprofiles = [\"fast\"\n").unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].col), (2, 19), "{}", d[0]);
    assert_eq!(d[0].source_line, "profiles = [\"fast\"");
    assert!(d[0].help.is_some());
}

#[test]
fn bad_redaction_rules_are_each_explained_with_line_column_and_hint() {
    let src = "\
[[pattern]]
id = \"broken\"
kind = \"x\"
regex = '''(unclosed'''

[[key]]
id = \"broken\"
kind = \"Bad Kind\"
key = 'x'
keywords = ['x']
";
    let out = render(&check_source("acme-rules.toml", src).unwrap_err());
    assert_eq!(
        out,
        "\
acme-rules.toml:4:9: error: rule \"broken\": invalid regex: error: unclosed group
   |     regex = '''(unclosed'''
   = help: rules use the Rust `regex` syntax: no look-around, no back-references; `\\b`, `\\w`, `\\d` and `(?i)` are ASCII-only
acme-rules.toml:7:6: error: rule \"broken\": duplicate rule id
   |     id = \"broken\"
   = help: every rule needs an id of its own (a tenant's ids must differ from the shipped pack's too)
2 errors; nothing was loaded
"
    );
    // An unknown key in a rule: serde's error, at the key.
    let d = check_source("acme-rules.toml", "[[pattern]]\nid = \"a\"\nflavour = 1\n").unwrap_err();
    assert_eq!((d[0].line, d[0].col), (3, 1), "{}", d[0]);
    assert!(
        d[0].message.starts_with("unknown field `flavour`"),
        "{}",
        d[0]
    );
}

#[test]
fn a_routing_check_still_summarises_eligibility() {
    let src = "[[providers]]\nname = \"local\"\nkind = \"local\"\nno_training = false\nmodels = { reasoning = \"m\" }\n";
    let out = check_source("providers.toml", src).unwrap();
    assert!(
        out.contains("never eligible (no_training = false): local"),
        "{out}"
    );
}
