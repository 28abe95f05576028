//! Keeping a conversation inside the model's context: before a step would overflow it,
//! the oldest tool results are cut to their first line and a note of what was elided
//! (the latest results stay whole), so a long investigation keeps its thread instead of
//! failing at the provider. Pure over the gateway's message types.

use warden_proto::gateway::v1 as gw;

/// About four bytes per token: the estimate the gateway's budgets use too.
pub fn estimate_tokens(messages: &[gw::Message]) -> u64 {
    let bytes: usize = messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .map(|p| match &p.content {
            Some(gw::content_part::Content::Text(t)) => t.len(),
            Some(gw::content_part::Content::ToolCall(c)) => c.name.len() + c.arguments_json.len(),
            Some(gw::content_part::Content::ToolResult(r)) => r.content.len(),
            _ => 0,
        })
        .sum();
    (bytes as u64).div_ceil(4)
}

/// Results shorter than this are left alone: cutting them saves little.
const KEEP_BELOW: usize = 240;
/// The newest messages are never compacted: the model is reasoning about them.
const KEEP_LAST_MESSAGES: usize = 2;

/// Compacts the oldest tool results until the conversation's estimate is at most
/// `target_tokens` or nothing more can be cut. Returns how many results were cut.
pub fn compact(messages: &mut [gw::Message], target_tokens: u64) -> usize {
    let mut cut = 0;
    let protected = messages.len().saturating_sub(KEEP_LAST_MESSAGES);
    'outer: while estimate_tokens(messages) > target_tokens {
        for m in messages[..protected].iter_mut() {
            for p in m.parts.iter_mut() {
                let Some(gw::content_part::Content::ToolResult(r)) = &mut p.content else {
                    continue;
                };
                if r.content.len() < KEEP_BELOW || r.content.starts_with("[compacted") {
                    continue;
                }
                let first: String = r
                    .content
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(160)
                    .collect();
                r.content = format!(
                    "[compacted to keep the conversation within the model's context: {} bytes elided; call the tool again with a narrower query if you need them] {first}",
                    r.content.len()
                );
                cut += 1;
                continue 'outer;
            }
        }
        break;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_proto::common::v1::DataType;

    fn result(text: String) -> gw::Message {
        gw::Message {
            role: gw::Role::User as i32,
            parts: vec![gw::ContentPart {
                data_type: DataType::Logs as i32,
                content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                    tool_call_id: "c".into(),
                    content: text,
                    is_error: false,
                })),
            }],
        }
    }

    fn content(m: &gw::Message) -> &str {
        match &m.parts[0].content {
            Some(gw::content_part::Content::ToolResult(r)) => &r.content,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_oldest_results_are_cut_first_and_the_latest_kept_whole() {
        let big = |tag: &str| format!("{tag} first line\n{}", "x".repeat(4000));
        let mut messages = vec![
            result(big("one")),
            result(big("two")),
            result(big("three")),
            result(big("four")),
        ];
        let before = estimate_tokens(&messages);
        let cut = compact(&mut messages, before - 900);
        assert_eq!(cut, 1, "one cut is enough");
        assert!(
            content(&messages[0]).starts_with("[compacted")
                && content(&messages[0]).ends_with("one first line")
        );
        assert_eq!(content(&messages[1]), big("two"));
        // Asking for far less cuts every unprotected result, never the last two.
        let cut = compact(&mut messages, 10);
        assert_eq!(cut, 1);
        assert_eq!(content(&messages[2]), big("three"));
        assert_eq!(content(&messages[3]), big("four"));
        assert!(estimate_tokens(&messages) < before);
    }
}
