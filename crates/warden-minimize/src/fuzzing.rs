//! Bodies of the cargo-fuzz targets in `fuzz/`, kept in the library so that a plain
//! `cargo test` runs them on random inputs (tests/fuzz_bodies.rs) even where no nightly
//! toolchain is available. Each body asserts the engine's invariants; a panic is a finding.

use std::sync::LazyLock;

use warden_policy::{DataType, OnDisallowedData, TenantSettings};

use crate::{Engine, Part, Placeholders};

static ENGINE: LazyLock<Option<Engine>> = LazyLock::new(|| Engine::builtin().ok());

/// Any bytes as telemetry: spans are sorted, disjoint, on char boundaries, and redaction
/// removes every span's bytes.
pub fn find_spans(data: &[u8]) {
    let Some(engine) = ENGINE.as_ref() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let spans = engine.find_spans(&text);
    let mut at = 0;
    for s in &spans {
        assert!(
            at <= s.start && s.start < s.end && s.end <= text.len(),
            "bad span {s:?}"
        );
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        at = s.end;
    }
    let mut table = Placeholders::new(true);
    let out = table.replace(&text, &spans);
    let _ = table.into_pseudonyms().restore(&out);
}

/// Any text as a tenant rule file: loads or fails with an error, never panics.
pub fn tenant_rules(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // The tenant file alone: compiling the shipped pack on every input would leave the fuzzer
    // a dozen runs a second; `tests/fuzz_bodies.rs` covers the combination.
    if let Ok(engine) = Engine::from_sources(&[("tenant rules", src)]) {
        let _ = engine.find_spans(src);
    }
}

/// Any bytes split into parts of every data type, under either disallowed-data policy.
pub fn minimize(data: &[u8]) {
    let Some(engine) = ENGINE.as_ref() else {
        return;
    };
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut settings = TenantSettings::disabled("fuzz");
    settings.enabled = true;
    settings.github_integration = flags & 1 != 0;
    settings.pseudonymize = flags & 2 != 0;
    settings.on_disallowed_data = if flags & 4 != 0 {
        OnDisallowedData::Drop
    } else {
        OnDisallowedData::Refuse
    };
    for (i, dt) in DataType::ALL.iter().enumerate() {
        if flags & (8 << (i % 5)) != 0 {
            settings.allowed_data_types.insert(*dt);
        }
    }
    let parts: Vec<Part> = rest
        .split(|&b| b == 0)
        .enumerate()
        .map(|(i, chunk)| Part {
            data_type: DataType::ALL[i % DataType::ALL.len()],
            text: String::from_utf8_lossy(chunk).into_owned(),
        })
        .collect();
    let n = parts.len();
    if let Ok(out) = engine.minimize(&settings, parts) {
        assert_eq!(out.parts.len(), n);
        let _ = out.pseudonyms.restore(
            &out.parts
                .iter()
                .map(|p| p.text.as_str())
                .collect::<String>(),
        );
    }
}

/// Any bytes as tool-call arguments: JSON that parses still parses after redaction, and
/// after pseudonyms are restored into it (the gateway relies on both).
pub fn json(data: &[u8]) {
    let Some(engine) = ENGINE.as_ref() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if serde_json::from_str::<serde_json::Value>(text).is_err() {
        return;
    }
    let mut table = Placeholders::new(true);
    let out = crate::json::redact(engine, &mut table, text);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "redaction broke the JSON: {text:?} -> {out:?}"
    );
    let restored = table.into_pseudonyms().restore_json(&out);
    assert!(
        serde_json::from_str::<serde_json::Value>(&restored).is_ok(),
        "restoring broke the JSON: {out:?} -> {restored:?}"
    );
}
