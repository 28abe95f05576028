//! Measures the shipped rule pack on the labelled corpus in `../shared/data/secrets`, scoring
//! exactly as `shared/tools/score_redaction.py` does, and holds recall and precision to their
//! floors. Skips with a message when the data folder is absent (it is never copied in).

use std::collections::BTreeMap;

use warden_minimize::Engine;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");
const PII: [&str; 7] = [
    "email",
    "ip",
    "ipv4",
    "ipv6",
    "hostname",
    "phone",
    "credit_card",
];

#[derive(serde::Deserialize)]
struct Doc {
    id: u64,
    source: String,
    text: String,
    labels: Vec<Label>,
}

#[derive(serde::Deserialize)]
struct Label {
    start: usize,
    end: usize,
    kind: String,
}

#[test]
fn labelled_dev_corpus_recall_and_precision() {
    let path = format!("{DATA}/secrets/labelled-dev.jsonl");
    let Ok(corpus) = std::fs::read_to_string(&path) else {
        println!(
            "SKIPPED: {path} is absent; the corpus lives in shared/data and is never copied into the repo"
        );
        return;
    };
    let engine = Engine::builtin().unwrap();
    let (mut total, mut caught, mut tp, mut fp) = (0u64, 0u64, 0u64, 0u64);
    let mut missed: BTreeMap<String, u64> = BTreeMap::new();
    let mut fps: BTreeMap<String, u64> = BTreeMap::new();
    let verbose = std::env::var_os("WARDEN_CORPUS_VERBOSE").is_some();
    for line in corpus.lines() {
        let doc: Doc = serde_json::from_str(line).unwrap();
        let spans = engine.find_spans(&doc.text);
        let mut covered = vec![false; doc.text.len()];
        for s in &spans {
            for c in covered
                .iter_mut()
                .take(s.end.min(doc.text.len()))
                .skip(s.start)
            {
                *c = true;
            }
        }
        for l in &doc.labels {
            total += 1;
            if covered[l.start..l.end].iter().all(|c| *c) {
                caught += 1;
            } else {
                *missed.entry(l.kind.clone()).or_default() += 1;
                if verbose {
                    println!("MISS {} {} {:?}", doc.id, l.kind, &doc.text[l.start..l.end]);
                }
            }
        }
        let real_log = doc.source.starts_with("loghub:");
        for s in &spans {
            if doc
                .labels
                .iter()
                .any(|l| s.start < l.end && l.start < s.end)
            {
                tp += 1;
            } else if real_log && PII.contains(&s.kind.name()) {
                continue;
            } else {
                fp += 1;
                *fps.entry(s.kind.name().to_owned()).or_default() += 1;
                if verbose {
                    println!("FP {} {} {:?}", doc.id, s.kind, &doc.text[s.start..s.end]);
                }
            }
        }
    }
    let recall = caught as f64 / total as f64;
    let precision = tp as f64 / (tp + fp) as f64;
    println!(
        "recall={recall:.4} precision={precision:.4} missed={missed:?} false_positives={fps:?}"
    );
    assert!(
        recall >= 0.98,
        "recall {recall:.4} < 0.98; missed by kind: {missed:?}"
    );
    assert!(
        precision >= 0.95,
        "precision {precision:.4} < 0.95; false positives by kind: {fps:?}"
    );
}
