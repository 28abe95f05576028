//! No input may panic: random and adversarial inputs through every method and the miner.
//!
//! Why: budgets run on customer bytes inside the gateway; a panic there is an outage. Also
//! checks the budget invariant (output never over budget once the input was) on each case.

use warden_budget::{Limits, Part, apply, apply_request, mine};
use warden_policy::DataType;

/// A small deterministic generator, so a failure reproduces without a seed file.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ALPHABET: &[&str] = &[
    "a",
    "Z",
    "0",
    "9",
    " ",
    "\n",
    "\r\n",
    "\t",
    "[",
    "]",
    "<",
    ">",
    "(",
    ")",
    "{",
    "}",
    "=",
    ":",
    ",",
    ";",
    "\"",
    "'",
    "-",
    "_",
    ".",
    "/",
    "<*>",
    "é",
    "日本",
    "🦀",
    "\u{202e}",
    "\u{0301}",
    "\0",
    "\u{7f}",
    "ERROR",
    "INFO",
    "Dec",
    "2024-01-01",
    "12:00:00",
    "blk_-1",
    "{\"resourceSpans\":",
    "{\"resourceMetrics\":",
    "\"spans\":[",
    "\"dataPoints\":[",
    "\"status\":{\"code\":2}",
    "\"asDouble\":",
    "1e999",
    "-0",
    "NaN",
    "duration=5ms",
];

fn random_text(rng: &mut XorShift, pieces: usize) -> String {
    (0..pieces)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

fn adversarial() -> Vec<String> {
    let mut cases = vec![
        String::new(),
        "\n".repeat(1000),
        " ".repeat(10_000),
        "x".repeat(1 << 20),
        "word ".repeat(50_000),
        "[".repeat(50_000),
        "]".repeat(50_000),
        "<*>".repeat(10_000),
        "é".repeat(100_000),
        "🦀 ".repeat(50_000),
        "{".repeat(10_000),
        r#"{"resourceSpans": 5}"#.to_owned(),
        r#"{"resourceSpans": [{"scopeSpans": "no"}]}"#.to_owned(),
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [1, "x", null, {"status": {"code": "2"}, "startTimeUnixNano": 5, "endTimeUnixNano": 1}]}]}]}"#.to_owned(),
        r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": [{"asDouble": "NaN"}, {"asInt": "99999999999999999999999"}, 3]}}]}]}]}"#.to_owned(),
        r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"sum": 5}, null]}]}]}"#.to_owned(),
        "cpu{a=\"b c\"} 1 2\ncpu 1e999\n# HELP\n{} NaN NaN\n".repeat(1000),
        "2024-01-01 12:00:00 ERROR [x] - \n".repeat(1000),
        "Dec 10 06:55:46 host tag[1]:\n".repeat(100),
    ];
    // One line per distinct token count: the worst case for the length layer of the tree.
    cases.push((1..300).map(|i| format!("{}\n", "w ".repeat(i))).collect());
    // Many distinct first tokens: the worst case for the children cap.
    cases.push(
        (0..2000)
            .map(|i| format!("k{}x{} same tail\n", "q".repeat(i % 97), i % 13))
            .collect(),
    );
    cases
}

const BUDGETS: [usize; 7] = [0, 1, 3, 40, 200, 4096, 1 << 20];

#[track_caller]
fn exercise(text: &str) {
    let mined = mine(text.lines());
    assert_eq!(mined.line_templates.len(), text.lines().count());
    for data_type in DataType::ALL {
        for budget in BUDGETS {
            let cut = apply(data_type, text, budget);
            if text.len() > budget {
                assert!(
                    cut.text.len() <= budget,
                    "{data_type} over budget {budget}: {}",
                    cut.text.len()
                );
            } else {
                assert_eq!(cut.text, text);
            }
            assert_eq!(cut.report.bytes_after, cut.text.len());
        }
    }
    let parts = [
        Part {
            data_type: DataType::Logs,
            text,
        },
        Part {
            data_type: DataType::Metrics,
            text,
        },
    ];
    let limits = Limits {
        request_bytes: 1000,
        ..Limits::default()
    };
    assert!(apply_request(&parts, &limits).bytes_after <= 1000);
}

#[test]
fn adversarial_inputs_do_not_panic() {
    for case in adversarial() {
        exercise(&case);
    }
}

#[test]
fn random_inputs_do_not_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let pieces = 1 + rng.below(if round % 10 == 0 { 5000 } else { 200 });
        exercise(&random_text(&mut rng, pieces));
    }
}
