//! Logs over budget: fold lines into templates with counts and exemplars.
//!
//! Shows the most informative templates first: errors, then warnings, then rare before
//! frequent, then first seen. Each template is `[xCOUNT] template` followed by up to
//! [`EXEMPLARS`] distinct lines, each cut to [`EXEMPLAR_BYTES`].
//! OTLP/JSON logs fold the same way, one `SEVERITY body` line per log record.

use serde_json::Value;

use super::{Method, array};
use crate::template::{floor_char_boundary, mine};

/// Exemplar lines shown under a template.
const EXEMPLARS: usize = 2;

/// Bytes of one exemplar line shown; longer lines end in `…`.
const EXEMPLAR_BYTES: usize = 300;

/// How alarming a line reads: 3 error, 2 warning, 1 plain, 0 debug.
pub(crate) fn severity(line: &str) -> u8 {
    let head = &line[..floor_char_boundary(line, 1024)];
    let mut sev = 1;
    for word in head
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = word.to_ascii_lowercase();
        let s = match w.as_str() {
            "error" | "err" | "errors" | "fatal" | "panic" | "critical" | "crit" | "severe"
            | "emerg" | "alert" | "traceback" => 3,
            _ if w.ends_with("exception") || w.ends_with("error") => 3,
            "warn" | "warning" | "fail" | "failed" | "failure" | "failures" | "denied"
            | "refused" | "timeout" | "invalid" | "unable" => 2,
            _ => 1,
        };
        sev = sev.max(s);
        if sev == 3 {
            break;
        }
    }
    sev
}

struct Group {
    template: String,
    count: usize,
    first: usize,
    severity: u8,
    exemplars: Vec<usize>,
}

/// OTLP/JSON logs (`resourceLogs[].scopeLogs[].logRecords[]`) as one `SEVERITY body` line per
/// record, so they fold like text logs; `None` when `text` is not that shape.
fn otlp_lines(text: &str) -> Option<Vec<String>> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') || !trimmed.contains("\"resourceLogs\"") {
        return None;
    }
    let doc: Value = serde_json::from_str(text).ok()?;
    let mut out = Vec::new();
    for rl in array(doc.get("resourceLogs")) {
        for sl in array(rl.get("scopeLogs")) {
            for rec in array(sl.get("logRecords")) {
                let severity = rec
                    .get("severityText")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let body = match rec.get("body").and_then(|b| b.get("stringValue")) {
                    Some(Value::String(s)) => s.clone(),
                    _ => rec.get("body").map(Value::to_string).unwrap_or_default(),
                };
                // One record is one line, whatever newlines its body holds.
                let line = format!("{severity} {body}").replace(['\n', '\r'], " ");
                out.push(line.trim().to_owned());
            }
        }
    }
    Some(out)
}

pub(crate) fn cut(text: &str, budget: usize) -> (String, Method) {
    let records = otlp_lines(text);
    let lines: Vec<&str> = match &records {
        Some(r) => r.iter().map(String::as_str).collect(),
        None => text.lines().collect(),
    };
    let mined = mine(lines.iter().copied());
    let mut groups: Vec<Group> = mined
        .templates
        .iter()
        .map(|t| Group {
            template: t.text(),
            count: 0,
            first: usize::MAX,
            severity: 0,
            exemplars: Vec::new(),
        })
        .collect();
    for (i, id) in mined.line_templates.iter().enumerate() {
        let Some(g) = groups.get_mut((id.0 as usize).saturating_sub(1)) else {
            continue;
        };
        let line = lines[i];
        g.count += 1;
        g.first = g.first.min(i);
        g.severity = g.severity.max(severity(line));
        if g.exemplars.len() < EXEMPLARS && g.exemplars.iter().all(|&e| lines[e] != line) {
            g.exemplars.push(i);
        }
    }
    groups.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.count.cmp(&b.count))
            .then(a.first.cmp(&b.first))
    });

    let head = format!(
        "[warden: {} log lines folded into {} templates; errors, warnings and rare templates first]\n",
        lines.len(),
        groups.len()
    );
    let mut out = String::with_capacity(budget);
    out.push_str(&head);
    // Room for the closing line that counts what was left out.
    let tail_room = format!(
        "[warden: {} more templates ({} lines) not shown]\n",
        groups.len(),
        lines.len()
    )
    .len();
    let room = budget.saturating_sub(tail_room);
    // Coverage before depth: a title for as many templates as fit (errors and warnings with
    // their first exemplar), then the other exemplars breadth first.
    let titles: Vec<String> = groups
        .iter()
        .map(|g| format!("[x{}] {}\n", g.count, g.template))
        .collect();
    let render = |e: usize| {
        let line = lines[e];
        let cut = floor_char_boundary(line, EXEMPLAR_BYTES);
        let ellipsis = if cut < line.len() { "…" } else { "" };
        format!("    {}{ellipsis}\n", &line[..cut])
    };
    let mut used = out.len();
    let mut shown_flags = vec![false; groups.len()];
    let mut exemplars: Vec<Vec<String>> = vec![Vec::new(); groups.len()];
    let mut hidden_lines = 0;
    for (i, g) in groups.iter().enumerate() {
        if used + titles[i].len() > room {
            hidden_lines += g.count;
            continue;
        }
        used += titles[i].len();
        shown_flags[i] = true;
        if g.severity >= 2
            && let Some(&e) = g.exemplars.first()
        {
            let rendered = render(e);
            if used + rendered.len() <= room {
                used += rendered.len();
                exemplars[i].push(rendered);
            }
        }
    }
    for round in 0..EXEMPLARS {
        for (i, g) in groups.iter().enumerate() {
            let Some(&e) = g.exemplars.get(round) else {
                continue;
            };
            if !shown_flags[i] || exemplars[i].len() != round {
                continue;
            }
            let rendered = render(e);
            if used + rendered.len() <= room {
                used += rendered.len();
                exemplars[i].push(rendered);
            }
        }
    }
    let mut shown = 0;
    let mut exemplar_lines = 0;
    for (i, title) in titles.iter().enumerate() {
        if shown_flags[i] {
            shown += 1;
            out.push_str(title);
            for ex in &exemplars[i] {
                out.push_str(ex);
                exemplar_lines += 1;
            }
        }
    }
    if shown < groups.len() {
        out.push_str(&format!(
            "[warden: {} more templates ({hidden_lines} lines) not shown]\n",
            groups.len() - shown
        ));
    }
    let method = Method::LogTemplates {
        lines: lines.len(),
        templates: groups.len(),
        templates_shown: shown,
        exemplar_lines,
    };
    (out, method)
}
