//! Table tests for the rule pack and the request-level API: one `check` helper per shape so the
//! API can change without rewriting every case.

use super::*;

#[track_caller]
fn redact(text: &str) -> String {
    let engine = Engine::builtin().unwrap();
    let spans = engine.find_spans(text);
    Placeholders::new(false).replace(text, &spans)
}

#[test]
fn smoke() {
    assert_eq!(redact("login by ann@example.com"), "login by [EMAIL:1]");
}
