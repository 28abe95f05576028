//! Tests of the conversions from GitHub's JSON: decoding, refusals and every bound.

use serde_json::json;

use super::*;

fn limits() -> Limits {
    Limits {
        max_file_bytes: 10,
        max_items: 2,
        max_patch_bytes: 8,
        max_total_patch_bytes: 12,
        max_message_bytes: 5,
        ..Limits::default()
    }
}

fn file(content: &[u8], encoding: &str) -> WireContents {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    serde_json::from_value(json!({"type": "file", "encoding": encoding, "size": content.len(),
        "name": "x", "path": "src/x", "content": format!("{}\n{}\n", &b64[..b64.len() / 2], &b64[b64.len() / 2..]), "sha": "abc"}))
    .unwrap()
}

#[test]
fn cut_respects_character_boundaries() {
    let mut s = "héllo".to_owned();
    assert!(cut(&mut s, 2));
    assert_eq!(s, "h");
    let mut s = "abc".to_owned();
    assert!(!cut(&mut s, 3));
    assert_eq!(s, "abc");
}

#[test]
fn files_decode_and_truncate() {
    let Contents::File(f) = contents(
        file(b"fn main() {}\n", "base64"),
        "acme/api",
        "src/x",
        Some("v1"),
        &limits(),
    )
    .unwrap() else {
        panic!("a file")
    };
    assert_eq!(f.text, "fn main() ");
    assert!(f.truncated);
    assert_eq!(f.size, 13);
    assert_eq!(f.git_ref.as_deref(), Some("v1"));
    let Contents::File(f) = contents(
        file(b"short", "base64"),
        "acme/api",
        "src/x",
        None,
        &limits(),
    )
    .unwrap() else {
        panic!("a file")
    };
    assert_eq!((f.text.as_str(), f.truncated), ("short", false));
}

#[test]
fn binary_and_oversized_files_are_refused_clearly() {
    let e = contents(
        file(b"\x7fELF\0\0", "base64"),
        "acme/api",
        "src/x",
        None,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "src/x is a binary file; only text files can be read"
    );
    let e = contents(
        file(&[0xff, 0xfe, 0x41], "base64"),
        "acme/api",
        "src/x",
        None,
        &limits(),
    )
    .unwrap_err();
    assert!(matches!(e, SourceError::Binary { .. }));
    let big: WireContents = serde_json::from_value(
        json!({"type": "file", "encoding": "none", "size": 5_000_000,
        "name": "x", "path": "big.bin", "content": "", "sha": "abc"}),
    )
    .unwrap();
    let e = contents(big, "acme/api", "big.bin", None, &limits()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "big.bin is 5000000 bytes, more than GitHub's contents API returns"
    );
}

#[test]
fn directories_list_bounded() {
    let dir: WireContents = serde_json::from_value(json!([
        {"type": "file", "name": "a.rs", "path": "src/a.rs", "size": 3},
        {"type": "dir", "name": "b", "path": "src/b", "size": 0},
        {"type": "symlink", "name": "c", "path": "src/c", "size": 1},
    ]))
    .unwrap();
    let Contents::Directory(d) = contents(dir, "acme/api", "src", None, &limits()).unwrap() else {
        panic!("a directory")
    };
    assert_eq!(d.path, "src");
    assert!(d.truncated);
    assert_eq!(
        d.entries
            .iter()
            .map(|e| (e.name.as_str(), e.kind))
            .collect::<Vec<_>>(),
        [("a.rs", EntryKind::File), ("b", EntryKind::Directory)]
    );
}

fn change(name: &str, patch: Option<&str>) -> serde_json::Value {
    json!({"filename": name, "status": "modified", "additions": 1, "deletions": 1, "patch": patch})
}

#[test]
fn patches_share_one_budget() {
    let wire: WireCommit = serde_json::from_value(json!({
        "sha": "abc", "commit": {"message": "fix: a long message", "author": {"name": "Ada", "date": "2026-03-01T12:00:00Z"}},
        "author": {"login": "ada"}, "parents": [{"sha": "p1"}],
        "files": [change("a", Some("@@ -1 +1 @@ 0123456789")), change("b", Some("@@ 01234")), change("c", None)],
    })).unwrap();
    let c = commit(wire, &limits());
    assert_eq!(c.summary.message, "fix: ");
    assert!(c.summary.message_truncated);
    assert_eq!(c.summary.author_login.as_deref(), Some("ada"));
    assert_eq!(c.parents, ["p1"]);
    assert!(c.files_truncated, "three files, two kept");
    assert_eq!(c.files.len(), 2);
    assert_eq!(
        (c.files[0].patch.as_deref(), c.files[0].patch_truncated),
        (Some("@@ -1 +1"), true)
    );
    // 8 of 12 bytes used: the second patch gets the remaining 4.
    assert_eq!(
        (c.files[1].patch.as_deref(), c.files[1].patch_truncated),
        (Some("@@ 0"), true)
    );
}

#[test]
fn exhausted_budget_drops_patches_and_says_so() {
    let l = Limits {
        max_total_patch_bytes: 8,
        max_items: 5,
        ..limits()
    };
    let wire: WireCompare = serde_json::from_value(json!({
        "status": "ahead", "ahead_by": 3, "behind_by": 0, "total_commits": 3,
        "commits": [
            {"sha": "1", "commit": {"message": "one"}, "author": null},
            {"sha": "2", "commit": {"message": "two"}},
        ],
        "files": [change("a", Some("01234567")), change("b", Some("x")), change("c", None)],
    }))
    .unwrap();
    let c = comparison(wire, "v1", "v2", &l);
    assert_eq!(
        (c.base.as_str(), c.head.as_str(), c.status.as_str()),
        ("v1", "v2", "ahead")
    );
    assert!(c.commits_truncated, "GitHub said three, sent two");
    assert_eq!(c.commits.len(), 2);
    assert_eq!(c.files[0].patch.as_deref(), Some("01234567"));
    assert_eq!(
        (c.files[1].patch.as_deref(), c.files[1].patch_truncated),
        (None, true)
    );
    assert_eq!(
        (c.files[2].patch.as_deref(), c.files[2].patch_truncated),
        (None, false)
    );
}

#[test]
fn search_keeps_fragments_bounded() {
    let wire: WireSearch = serde_json::from_value(json!({
        "total_count": 3, "incomplete_results": false,
        "items": [
            {"path": "a.rs", "text_matches": [{"fragment": "let timeout = 5;"}]},
            {"path": "b.rs"},
            {"path": "c.rs"},
        ],
    }))
    .unwrap();
    let s = search(wire, "acme/api", "timeout repo:acme/api".into(), vec![], 2);
    assert!(s.truncated);
    assert_eq!(s.matches.len(), 2);
    assert_eq!(s.matches[0].fragments, ["let timeout = 5;"]);
    assert!(s.matches[1].fragments.is_empty());
}
