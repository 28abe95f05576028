use super::*;

fn settings(types: &[DataType]) -> TenantSettings {
    let mut s = TenantSettings::disabled("acme");
    s.enabled = true;
    s.allowed_data_types = types.iter().copied().collect();
    s
}

fn part(data_type: DataType, text: &str) -> Part {
    Part {
        data_type,
        text: text.to_owned(),
    }
}

#[test]
fn placeholders_consistent_across_parts() {
    let s = settings(&[DataType::Logs, DataType::ConfigMetadata]);
    let out = ENGINE
        .minimize(
            &s,
            vec![
                part(
                    DataType::Instruction,
                    "why does ann@example.com fail with AKIAIOSFODNN7EXAMPLE?",
                ),
                part(
                    DataType::Logs,
                    "login ann@example.com key=AKIAIOSFODNN7EXAMPLE from bob@example.com",
                ),
                part(DataType::ConfigMetadata, "owner: bob@example.com"),
            ],
        )
        .unwrap();
    let texts: Vec<&str> = out.parts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "why does [EMAIL:1] fail with [SECRET:aws_access_key_id:2]?",
            "login [EMAIL:1] key=[SECRET:aws_access_key_id:2] from [EMAIL:3]",
            "owner: [EMAIL:3]",
        ]
    );
    assert_eq!(out.summary.redactions["email"], 4);
    assert_eq!(out.summary.redactions["aws_access_key_id"], 2);
    let logs = out.summary.by_data_type[&DataType::Logs];
    assert_eq!((logs.parts, logs.dropped), (1, 0));
    assert_eq!(
        logs.bytes_before,
        "login ann@example.com key=AKIAIOSFODNN7EXAMPLE from bob@example.com".len() as u64
    );
    assert_eq!(logs.bytes_after, texts[1].len() as u64);
    // Counts only: the summary never carries a value.
    let shown = format!("{:?} {}", out.summary, out.summary);
    assert!(
        !shown.contains("ann@") && !shown.contains("AKIA"),
        "{shown}"
    );
}

#[test]
fn pseudonymization_restores_identifiers_never_secrets() {
    let mut s = settings(&[DataType::Logs]);
    s.pseudonymize = true;
    let out = ENGINE
        .minimize(
            &s,
            vec![part(
                DataType::Logs,
                "ann@example.com from 203.0.113.9 used password=Hunter2Hunter2",
            )],
        )
        .unwrap();
    assert_eq!(
        out.parts[0].text,
        "[EMAIL:1] from [IPV4:2] used password=[SECRET:password:3]"
    );
    let answer =
        "Ask [EMAIL:1] whether [IPV4:2] may use [SECRET:password:3]; [EMAIL:9] is unknown.";
    assert_eq!(
        out.pseudonyms.restore(answer),
        "Ask ann@example.com whether 203.0.113.9 may use [SECRET:password:3]; [EMAIL:9] is unknown."
    );
    assert_eq!(out.pseudonyms.len(), 2);
    assert!(!format!("{:?}", out.pseudonyms).contains("ann@"));

    // Without pseudonymization nothing can be restored.
    s.pseudonymize = false;
    let out = ENGINE
        .minimize(&s, vec![part(DataType::Logs, "ann@example.com")])
        .unwrap();
    assert_eq!(out.pseudonyms.restore("[EMAIL:1]"), "[EMAIL:1]");
}

#[test]
fn source_code_refused_while_github_off() {
    let mut s = settings(&[DataType::Logs, DataType::SourceCode]);
    let parts = vec![
        part(DataType::Logs, "ok"),
        part(DataType::SourceCode, "fn main() {}"),
    ];
    let err = ENGINE.minimize(&s, parts.clone()).unwrap_err();
    assert_eq!(err.rule(), Rule::SourceCodeRequiresGithub);
    let msg = err.to_string();
    assert!(
        msg.contains("SOURCE_CODE_REQUIRES_GITHUB")
            && msg.contains("source_code")
            && msg.contains("part 1"),
        "{msg}"
    );
    assert!(!msg.contains("fn main"), "{msg}");

    s.github_integration = true;
    let out = ENGINE.minimize(&s, parts).unwrap();
    assert_eq!(out.parts[1].text, "fn main() {}");
}

#[test]
fn disallowed_type_refused_or_dropped() {
    let mut s = settings(&[DataType::Logs]);
    let parts = vec![
        part(DataType::Logs, "a"),
        part(DataType::Traces, "trace with bob@example.com"),
    ];
    let err = ENGINE.minimize(&s, parts.clone()).unwrap_err();
    assert_eq!(err.rule(), Rule::DataTypeNotAllowed);
    assert!(err.to_string().contains("traces"), "{err}");

    s.on_disallowed_data = OnDisallowedData::Drop;
    let out = ENGINE.minimize(&s, parts).unwrap();
    assert!(out.parts[1].dropped && out.parts[1].text.is_empty());
    assert!(!out.parts[0].dropped);
    let traces = out.summary.by_data_type[&DataType::Traces];
    assert_eq!(
        (
            traces.parts,
            traces.dropped,
            traces.bytes_before,
            traces.bytes_after
        ),
        (1, 1, 26, 0)
    );
    assert_eq!(out.summary.dropped_parts(), 1);
    assert!(
        out.summary.redactions.is_empty(),
        "dropped parts are not scanned"
    );
}

#[test]
fn instruction_always_passes_and_is_scanned() {
    let s = settings(&[]);
    let out = ENGINE
        .minimize(
            &s,
            vec![part(
                DataType::Instruction,
                "use ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X",
            )],
        )
        .unwrap();
    assert_eq!(out.parts[0].text, "use [SECRET:github_token:1]");
}

// === rule files ===

#[test]
fn tenant_rules_add_patterns() {
    let tenant = r#"
[[pattern]]
id = "acme-employee-id"
kind = "employee_id"
class = "personal"
keywords = ["EMP-"]
regex = '''\bEMP-[0-9]{6}\b'''
priority = 30
"#;
    let engine = Engine::with_tenant_rules(tenant).unwrap();
    let spans = engine.find_spans("badge EMP-123456 and ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X");
    let kinds: Vec<&str> = spans.iter().map(|s| s.kind.name()).collect();
    assert_eq!(kinds, ["employee_id", "github_token"]);
}

#[test]
fn rule_errors_name_rule_and_line() {
    let bad = "# tenant\n\n[[pattern]]\nid = \"broken\"\nkind = \"x\"\nregex = '''(unclosed'''\n";
    let err = Engine::with_tenant_rules_from("acme.toml", bad).unwrap_err();
    assert_eq!(
        (err.origin.as_str(), err.line, err.rule.as_deref()),
        ("acme.toml", 6, Some("broken"))
    );
    assert!(
        err.to_string()
            .starts_with("acme.toml:6: rule \"broken\": invalid regex"),
        "{err}"
    );

    let dup = "[[pattern]]\nid = \"email\"\nkind = \"email\"\nregex = 'x'\n";
    let err = Engine::with_tenant_rules(dup).unwrap_err();
    assert_eq!((err.line, err.rule.as_deref()), (2, Some("email")));
    assert!(err.message.contains("duplicate"), "{err}");

    let unknown = "[[pattern]]\nid = \"a\"\nkind = \"a\"\nregex = 'x'\nflavour = 1\n";
    let err = Engine::with_tenant_rules(unknown).unwrap_err();
    assert_eq!(err.line, 5, "{err}");

    let kind = "[[key]]\nid = \"k\"\nkind = \"Bad Kind\"\nkey = 'x'\nkeywords = ['x']\n";
    let err = Engine::with_tenant_rules(kind).unwrap_err();
    assert_eq!((err.line, err.rule.as_deref()), (3, Some("k")), "{err}");
}

#[test]
fn check_rules_reports_every_bad_rule_at_its_line_and_column_in_line_order() {
    let bad = "\
[[key]]
id = \"k\"
kind = \"Bad Kind\"
key = 'x'
keywords = ['x']

[[pattern]]
id = \"broken\"
kind = \"x\"
regex = '''(unclosed'''

[[pattern]]
id = \"broken\"
kind = \"x\"
regex = 'y'
";
    let errs = crate::check_rules("acme.toml", bad).unwrap_err();
    let got: Vec<(usize, usize, Option<&str>)> = errs
        .iter()
        .map(|e| (e.line, e.col, e.rule.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (3, 8, Some("k")),
            (10, 9, Some("broken")),
            (13, 6, Some("broken"))
        ],
        "{errs:?}"
    );
    assert!(errs[1].message.starts_with("invalid regex"), "{errs:?}");
    assert!(errs[1].help.is_some_and(|h| h.contains("look-around")));
    assert!(errs[2].message.contains("duplicate"), "{errs:?}");
    // An engine stops at the first of them.
    let err = Engine::with_tenant_rules_from("acme.toml", bad).unwrap_err();
    assert_eq!((err.line, err.col), (3, 8), "{err}");
}

#[test]
fn check_rules_counts_what_the_shipped_pack_holds() {
    let counts = crate::check_rules("builtin", crate::BUILTIN_RULES).unwrap();
    let ids = |section: &str| {
        crate::BUILTIN_RULES
            .matches(&format!("\n[[{section}]]\n"))
            .count()
    };
    assert_eq!(counts.patterns, ids("pattern"));
    assert_eq!(counts.keys, ids("key"));
    assert_eq!(counts.structures, ids("structure"));
    assert!(counts.kinds > 0 && counts.kinds <= counts.patterns + counts.keys + counts.structures);
}

#[test]
fn engine_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Engine>();
}
