//! Runs the cargo-fuzz target bodies (`warden_minimize::fuzzing`) on random inputs under plain
//! `cargo test`, so they stay compiled and exercised without nightly, and checks that time
//! grows linearly with input size on adversarial shapes.

use std::time::{Duration, Instant};

use warden_minimize::{Engine, fuzzing};

/// Pieces that reach deep paths: keywords, separators, quotes, escapes, PEM and YAML shapes.
const FRAGMENTS: &[&str] = &[
    "password",
    "=",
    ":",
    " ",
    "\n",
    "\"",
    "'",
    "\\",
    "\\\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    "&",
    "@",
    ".",
    "-",
    "--password",
    "-p",
    "token",
    "secret",
    "api_key",
    "AKIA",
    "ghp_",
    "sk-ant-",
    "sk-",
    "eyJ",
    "xoxb-",
    "https://",
    "://",
    "user:pw@",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "-----BEGIN ",
    "PRIVATE KEY",
    "kind: Secret",
    "\"kind\":\"Secret\"",
    "data:",
    "stringData:",
    "  ",
    "  k: dmFsdWU=",
    "|",
    "---",
    "Authorization: Bearer ",
    "bearer ",
    "AccountKey=",
    "sig=",
    "10.0.0.",
    "203.0.113.9",
    "::",
    "fe80::1",
    "2001:db8::",
    "4111 1111 1111 1111",
    "4111111111111111",
    "é",
    "日本",
    "\u{0}",
    "<password>",
    "</password>",
    "mysql -p",
    "AIza",
    "glpat-",
    "npm_",
    "sk_live_",
    "Q",
    "7",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn input(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..self.below(60) {
            match self.below(4) {
                0 => v.extend((0..self.below(12)).map(|_| self.next() as u8)),
                1 => v.extend((0..self.below(30)).map(|_| b"aZ09+/=_-.:@ "[self.below(13)])),
                _ => v.extend_from_slice(FRAGMENTS[self.below(FRAGMENTS.len())].as_bytes()),
            }
        }
        v
    }
}

#[test]
fn fuzz_bodies_survive_random_inputs() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let input = rng.input();
        fuzzing::find_spans(&input);
        fuzzing::minimize(&input);
    }
    for _ in 0..300 {
        let mut src = b"[[pattern]]\nid = \"t\"\nkind = \"t\"\nregex = '''".to_vec();
        src.extend(rng.input().into_iter().filter(|b| *b != b'\''));
        src.extend_from_slice(b"'''\nkeywords = [\"a\"]\n");
        fuzzing::tenant_rules(&src);
        fuzzing::tenant_rules(&rng.input());
    }
}

impl Rng {
    /// A random JSON value built from the fragments: strings and keys that hold secrets,
    /// identifiers, quotes and escapes, nested in objects and arrays.
    fn json(&mut self, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        let text = |rng: &mut Rng| {
            let mut s = String::new();
            for _ in 0..rng.below(6) {
                s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
            }
            s
        };
        match self.below(if depth == 0 { 3 } else { 5 }) {
            0 => Value::String(text(self)),
            1 => Value::from(self.next() % 100_000),
            2 => Value::Bool(self.next() & 1 == 0),
            3 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (text(self), self.json(depth - 1)))
                    .collect(),
            ),
        }
    }
}

#[test]
fn tool_call_json_stays_json_through_redaction_and_restore() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..2000 {
        let value = rng.json(3);
        let text = if rng.below(2) == 0 {
            value.to_string()
        } else {
            serde_json::to_string_pretty(&value).unwrap()
        };
        fuzzing::json(text.as_bytes());
        fuzzing::json(&rng.input());
    }
}

/// Seconds to scan `unit` repeated `n` times.
fn time(engine: &Engine, unit: &str, n: usize) -> Duration {
    let text = unit.repeat(n);
    let t = Instant::now();
    let _ = engine.find_spans(&text);
    t.elapsed()
}

#[test]
fn time_is_linear_on_adversarial_shapes() {
    let engine = Engine::builtin().unwrap();
    let shapes = [
        "a=",
        "password=a=",
        "\"password\":\"",
        "-----BEGIN PRIVATE KEY-----\nQUFB ",
        "kind: Secret\ndata:\n  a: b\n",
        "Secret ",
        "x@",
        "1.1.1.1.",
        "1:",
        "4111 ",
        "--password ",
        "https://a:b@",
        "bearer ",
        "<password>",
    ];
    for unit in shapes {
        // Big enough to time reliably; smaller in debug builds, where scanning is slower.
        let base = if cfg!(debug_assertions) {
            10_000
        } else {
            100_000
        };
        let n = (base / unit.len()).max(1);
        // Best of five each, the two sizes interleaved, so that a busy spell of the
        // machine slows both alike rather than only the large runs.
        let (mut small, mut large) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            small = small.min(time(&engine, unit, n));
            large = large.min(time(&engine, unit, n * 32));
        }
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-4);
        // Linear is 32x, quadratic 1 024x: the bound sits at their geometric mean, a factor
        // of 5.6 from either, which absorbs a busy machine (other builds, fuzzers).
        println!("{unit:?}: {ratio:.1}x");
        assert!(
            ratio < 181.0,
            "{unit:?}: 32x input took {ratio:.1}x time ({small:?} -> {large:?})"
        );
    }
}
