//! Odd JSON for the tests that hold a typed reading (`crate::lenient`) to the `Value` reading it
//! replaced: every value of a real answer replaced in turn by values of every type, repeated
//! before and after itself, and next to an unknown member; and members that are not JSON for
//! `serde_json` in ways a parser that only skips would miss.

use serde_json::Value;

/// JSON texts put in place of each value in turn.
pub(crate) const ODD: &[&str] = &[
    "null",
    "true",
    "0",
    "7",
    "-3",
    "-0",
    "1.5",
    "2e3",
    "18446744073709551616",
    "1e400",
    r#""""#,
    r#""x""#,
    r#""caf\u00e9 \ud83e\udd80 \"q\" \n""#,
    r#""\ud800""#,
    r#""{\"a\":1}""#,
    "[]",
    "[null]",
    r#"[{"x":1},"y"]"#,
    "{}",
    r#"{"x":[1,{"y":null}]}"#,
    r#"{"content":"hi","arguments":"{}","id":"c","prompt_tokens":5,"code":"rate_limit"}"#,
    r#"{"$serde_json::private::RawValue":"[1]"}"#,
];

/// Where a value sits: the keys and indexes from the root.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                paths(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(Step::Index(i));
                out.push(at.clone());
                paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

const HOLE: &str = "\u{1}hole";

/// `base` as text with the value at `path` replaced by the text `with`.
fn replaced(base: &Value, path: &[Step], with: &str) -> String {
    let mut v = base.clone();
    *at(&mut v, path) = Value::String(HOLE.into());
    v.to_string()
        .replace(&serde_json::to_string(HOLE).unwrap_or_default(), with)
}

/// Every variant of `base`: each value replaced by each of [`ODD`]; each object member
/// repeated with an odd value before and after its own; an unknown member with each odd
/// value in each object.
pub(crate) fn variants(base: &Value) -> Vec<String> {
    let mut all = Vec::new();
    paths(base, &mut Vec::new(), &mut all);
    let mut out = vec![base.to_string()];
    for path in &all {
        let own = at(&mut base.clone(), path).to_string();
        for odd in ODD {
            out.push(replaced(base, path, odd));
            if let Some(Step::Key(k)) = path.last() {
                let k = serde_json::to_string(k).unwrap_or_default();
                out.push(replaced(base, path, &format!("{odd},{k}:{own}")));
                out.push(replaced(base, path, &format!("{own},{k}:{odd}")));
            }
        }
    }
    for path in std::iter::once(Vec::new()).chain(all) {
        let mut v = base.clone();
        if at(&mut v, &path).is_object() {
            for odd in ODD {
                at(&mut v, &path)["zz_unknown"] = Value::String(HOLE.into());
                out.push(replaced(&v, &[], odd));
            }
        }
    }
    out
}

/// `valid` (an object's text) with one more member in front, whose value is each of the texts
/// `serde_json` refuses that a skipping parser would take (lone surrogates, bytes that are not
/// UTF-8, numbers out of range, nesting past the depth limit of 128), and a few it takes.
pub(crate) fn bad_members(valid: &str) -> Vec<Vec<u8>> {
    let rest = valid.strip_prefix('{').unwrap_or(valid);
    let mut values: Vec<Vec<u8>> = [
        r#""\ud800\u0041""#,
        r#""\udc00""#,
        r#""\ud800\udc00""#,
        "\"tab\tin string\"",
        r#""\q""#,
        "01",
        "-",
        "1e",
        "tru",
        "-1e-400",
        "1e400",
        "123456789012345678901234567890",
        r#"{"$serde_json::private::Number":"1"}"#,
    ]
    .iter()
    .map(|v| v.as_bytes().to_vec())
    .collect();
    values.push(b"\"\xff\"".to_vec());
    values.push(b"{\"\xc3\":1}".to_vec());
    for depth in [125, 126, 127, 128, 200] {
        values.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes());
        values.push(format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)).into_bytes());
    }
    values
        .into_iter()
        .map(|v| [&b"{\"x\":"[..], &v, b",", rest.as_bytes()].concat())
        .collect()
}

/// Whether `body` holds one of `serde_json`'s private keys, where a typed reading gives up.
pub(crate) fn private(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("$serde_json::private::")
}

/// An adapter's answer parse held to the `Value` reading it replaced, over `bodies`: the
/// production parse and the typed reading (`None` only on a private key) both give what the
/// reference gives, the table reaches every outcome in `outcomes`, and it is large and has
/// private keys in it.
pub(crate) fn check_answer_parse(
    bodies: &[Vec<u8>],
    parse: impl Fn(&[u8]) -> Result<crate::ChatResponse, crate::ProviderError>,
    typed: impl Fn(&[u8]) -> Option<Result<crate::ChatResponse, crate::ProviderError>>,
    reference: impl Fn(&[u8]) -> Result<crate::ChatResponse, crate::ProviderError>,
    outcomes: &[&str],
) {
    let (mut answers, mut gave_up) = (std::collections::BTreeSet::new(), 0);
    for body in bodies {
        let text = String::from_utf8_lossy(body);
        let want = reference(body);
        assert_eq!(parse(body), want, "{text}");
        match typed(body) {
            Some(got) => assert_eq!(got, want, "{text}"),
            None => {
                assert!(private(body), "gave up on {text}");
                gave_up += 1;
            }
        }
        answers.insert(match want {
            Ok(r) => format!("ok, {} parts", r.content.len()),
            Err(e) => e.to_string(),
        });
    }
    for outcome in outcomes {
        assert!(answers.contains(*outcome), "{outcome} not in {answers:?}");
    }
    assert!(
        gave_up > 0 && bodies.len() > 2000,
        "{gave_up} of {}",
        bodies.len()
    );
}
