//! A run's finding as a structure: summary, suspected cause, confidence, and evidence
//! that links to the audit records of the model calls and to the tool calls that
//! produced it. The model is asked to end with a JSON object; one that does not is
//! still a finding (its text is the summary, its confidence "unknown").

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub summary: String,
    pub suspected_cause: String,
    /// "high", "medium", "low" or "unknown".
    pub confidence: String,
    /// What the model cited.
    pub cited: Vec<String>,
}

/// The last JSON object in `text` (bare or in a code fence) that has a `summary`.
fn last_object(text: &str) -> Option<Value> {
    let mut found = None;
    for (i, _) in text.match_indices('{') {
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        if let Some(Ok(v @ Value::Object(_))) = stream.next()
            && v.get("summary").is_some_and(Value::is_string)
        {
            found = Some(v);
        }
    }
    found
}

/// Reads the model's final answer.
pub fn parse(text: &str) -> Finding {
    let Some(v) = last_object(text) else {
        return Finding {
            summary: text.trim().to_owned(),
            suspected_cause: String::new(),
            confidence: "unknown".into(),
            cited: Vec::new(),
        };
    };
    let s = |k: &str| v[k].as_str().unwrap_or_default().trim().to_owned();
    let confidence = match s("confidence").to_ascii_lowercase().as_str() {
        c @ ("high" | "medium" | "low") => c.to_owned(),
        _ => "unknown".to_owned(),
    };
    Finding {
        summary: s("summary"),
        suspected_cause: s("suspected_cause"),
        confidence,
        cited: v["evidence"]
            .as_array()
            .map(|a| {
                a.iter()
                    .take(50)
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The evidence a finding is stored with: the model calls (their audit records), the
/// tool calls, and what the model cited.
pub fn evidence(model_calls: &[Value], tool_calls: &[Value], cited: &[String]) -> String {
    json!({"model_calls": model_calls, "tool_calls": tool_calls, "cited": cited}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_json_object_is_the_structure() {
        let text = "Looked at logs {not json}.\n```json\n{\"summary\": \"DB pool exhausted\", \"suspected_cause\": \"deploy b2 halved the pool\", \"confidence\": \"High\", \"evidence\": [\"log_patterns step 1\", {\"tool\": \"get_trace\"}]}\n```";
        let f = parse(text);
        assert_eq!(f.summary, "DB pool exhausted");
        assert_eq!(f.suspected_cause, "deploy b2 halved the pool");
        assert_eq!(f.confidence, "high");
        assert_eq!(f.cited.len(), 2);
    }

    #[test]
    fn free_text_is_still_a_finding() {
        let f = parse("  The service recovered on its own.  ");
        assert_eq!(f.summary, "The service recovered on its own.");
        assert_eq!(f.confidence, "unknown");
        let odd = parse(r#"{"summary": "x", "confidence": "certain"}"#);
        assert_eq!(odd.confidence, "unknown", "only the three levels");
    }
}
