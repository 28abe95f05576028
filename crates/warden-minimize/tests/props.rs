//! Property tests: no labelled secret survives redaction, whatever surrounds it, and no input
//! makes the engine panic or produce spans that are not sorted, disjoint and on char boundaries.
//!
//! The secrets are generated (random values in the shapes of each rule), and, when the shared
//! corpus is present, also taken from `labelled-dev.jsonl` and wrapped in random noise.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors"
)]

use std::sync::LazyLock;

use proptest::prelude::*;
use warden_minimize::{Engine, Placeholders};

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::builtin().unwrap());

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");

fn redact(text: &str) -> String {
    let spans = ENGINE.find_spans(text);
    for w in spans.windows(2) {
        assert!(w[0].end <= w[1].start, "overlapping spans {spans:?}");
    }
    for s in &spans {
        assert!(s.start < s.end && text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    Placeholders::new(true).replace(text, &spans)
}

/// A secret and a line that carries it, in one of the shapes the rule pack promises to cover.
fn secret_line() -> impl Strategy<Value = (String, String)> {
    let pw = "[A-Za-z][A-Za-z0-9!#%^*_+-]{6,20}[0-9]";
    let b64 = "[A-Za-z0-9+/]{40}";
    prop_oneof![
        "[A-Z0-9]{16}".prop_map(|s| { let v = format!("AKIA{s}"); (v.clone(), format!("aws_access_key_id={v}")) }),
        b64.prop_map(|v| (v.clone(), format!("aws_secret_access_key = {v}"))),
        "[A-Za-z0-9]{36}".prop_map(|s| { let v = format!("ghp_{s}"); (v.clone(), format!("GITHUB_TOKEN: {v}")) }),
        "[A-Za-z0-9_]{20}".prop_map(|s| { let v = format!("glpat-{s}"); (v.clone(), format!("token {v} used")) }),
        "[0-9]{12}-[A-Za-z0-9]{24}".prop_map(|s| { let v = format!("xoxb-{s}"); (v.clone(), format!("SLACK={v}")) }),
        "[A-Za-z0-9]{24}".prop_map(|s| { let v = format!("sk_live_{s}"); (v.clone(), format!("{{\"stripe\":\"{v}\"}}")) }),
        "[A-Za-z0-9_]{40}".prop_map(|s| { let v = format!("sk-proj-{s}"); (v.clone(), format!("OPENAI_API_KEY={v}")) }),
        "[A-Za-z0-9_]{60}".prop_map(|s| { let v = format!("sk-ant-api03-{s}"); (v.clone(), format!("key: {v}")) }),
        "[A-Za-z0-9]{36}".prop_map(|s| { let v = format!("npm_{s}"); (v.clone(), format!("NPM_TOKEN={v}")) }),
        "[A-Za-z0-9_-]{35}".prop_map(|s| { let v = format!("AIza{s}"); (v.clone(), format!("k={v}")) }),
        ("[A-Za-z0-9_-]{20}", "[A-Za-z0-9_-]{30}", "[A-Za-z0-9_-]{43}").prop_map(|(a, b, c)| {
            let v = format!("eyJ{a}.eyJ{b}.{c}");
            (v.clone(), format!("Authorization: Bearer {v}"))
        }),
        "[A-Za-z0-9]{40}".prop_map(|v| (v.clone(), format!("Authorization: Bearer {v}"))),
        pw.prop_map(|v| (v.clone(), format!("postgresql://app:{v}@db:5432/orders"))),
        pw.prop_map(|v| (v.clone(), format!("{{\"user\":\"app\",\"password\":\"{v}\"}}"))),
        pw.prop_map(|v| (v.clone(), format!("  DB_PASSWORD={v}"))),
        pw.prop_map(|v| (v.clone(), format!("pg_dump --password={v} --format=custom"))),
        pw.prop_map(|v| (v.clone(), format!("password: \"{v}\""))),
        "[A-Za-z0-9+/]{86}".prop_map(|s| {
            let v = format!("{s}==");
            (v.clone(), format!("DefaultEndpointsProtocol=https;AccountName=a;AccountKey={v};EndpointSuffix=core.windows.net"))
        }),
        "[A-Za-z0-9+/]{16}".prop_map(|s| {
            let v = format!("{s}==");
            (v.clone(), format!("apiVersion: v1\nkind: Secret\ndata:\n  anything: {v}\n"))
        }),
        "[A-Za-z0-9+/]{64}".prop_map(|v| {
            (v.clone(), format!("-----BEGIN PRIVATE KEY-----\n{v}\n{v}\n-----END PRIVATE KEY-----"))
        }),
        "[a-z]{3,10}[0-9]{1,3}".prop_map(|u| { let v = format!("{u}@example.com"); (v.clone(), format!("user {v} logged in")) }),
        (1u8..=223, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_filter("public", |(a, b, _, _)| *a != 10 && *a != 127 && !(*a == 172 && (16..=31).contains(b)) && !(*a == 192 && *b == 168))
            .prop_map(|(a, b, c, d)| { let v = format!("{a}.{b}.{c}.{d}"); (v.clone(), format!("from {v} port 22")) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_secret_never_survives(
        (secret, line) in secret_line(),
        before in "[a-z =:,]{0,20}",
        after in "[a-z =,]{0,20}",
    ) {
        let text = format!("{before}\n{line}\n{after}");
        let out = redact(&text);
        prop_assert!(!out.contains(&secret), "secret {secret:?} survived in {out:?}");
    }

    #[test]
    fn any_input_is_safe(text in "\\PC{0,400}") {
        let _ = redact(&text);
    }

    #[test]
    fn ascii_soup_is_safe(text in "[ -~\n\\\\]{0,600}") {
        let _ = redact(&text);
    }
}

#[test]
fn labelled_corpus_secrets_never_survive_with_noise() {
    let path = format!("{DATA}/secrets/labelled-dev.jsonl");
    let Ok(corpus) = std::fs::read_to_string(&path) else {
        println!("SKIPPED: {path} is absent");
        return;
    };
    let docs: Vec<(String, Vec<String>)> = corpus
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let text = v["text"].as_str()?.to_owned();
            let labels = v["labels"]
                .as_array()?
                .iter()
                .filter_map(|l| {
                    Some(
                        text.get(l["start"].as_u64()? as usize..l["end"].as_u64()? as usize)?
                            .to_owned(),
                    )
                })
                .collect::<Vec<_>>();
            (!labels.is_empty()).then_some((text, labels))
        })
        .collect();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    });
    let strategy = (
        0..docs.len(),
        "[a-zA-Z0-9 =:\n]{0,40}",
        "[a-zA-Z0-9 =:\n]{0,40}",
    );
    runner
        .run(&strategy, |(i, before, after)| {
            let (text, secrets) = &docs[i];
            let out = redact(&format!("{before} {text} {after}"));
            for s in secrets {
                prop_assert!(
                    !out.contains(s.as_str()),
                    "doc {i}: {s:?} survived in {out:?}"
                );
            }
            Ok(())
        })
        .unwrap();
}
