//! Kubernetes state as `kubectl get -o json` reports it (one object, or a `List` of
//! them): objects with their latest reported state, events, and ConfigMaps as
//! configuration snapshots.
//!
//! Before anything leaves this module, `metadata.managedFields` and the
//! last-applied-configuration annotation (a second copy of the object) are dropped, every
//! value of a Secret's `data` and `stringData` is replaced by a digest marker, and other
//! objects' secret-looking values (ConfigMap entries, env vars named as secrets, tokens
//! the rule pack finds) likewise; so no secret is stored, however it is sealed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::{Redactor, marker, render_data};

/// The largest `kubectl get -o json` output accepted at once.
pub const MAX_JSON_BYTES: usize = 8 << 20;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Why a report was refused; names the item and field, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubeError {
    #[error("the cluster report is {0} bytes; the limit is {MAX_JSON_BYTES}")]
    TooLarge(usize),
    #[error("the cluster report is not JSON: {0}")]
    NotJson(String),
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

/// One object's reported state (events excluded).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// The object as reported, cleaned and redacted (compact JSON).
    pub json: String,
}

/// One event, from `v1` or `events.k8s.io/v1`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KubeEvent {
    pub namespace: String,
    /// The Event object's own name (unique per namespace; repeated reports update it).
    pub name: String,
    /// Normal or Warning.
    pub r#type: String,
    pub reason: String,
    pub involved_kind: String,
    pub involved_name: String,
    pub message: String,
    pub count: u32,
    /// Last seen, Unix ms; `None` when the event carries no time at all.
    pub time_ms: Option<i64>,
}

/// A ConfigMap's data as a configuration snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMapSnapshot {
    pub namespace: String,
    pub name: String,
    /// [`render_data`] of its data, redacted.
    pub content: String,
}

/// Everything one report holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub objects: Vec<KubeObject>,
    pub events: Vec<KubeEvent>,
    pub configs: Vec<ConfigMapSnapshot>,
}

/// Parses and checks a report; any bad item refuses the whole report.
pub fn parse(json: &str, redactor: &Redactor) -> Result<Report, KubeError> {
    if json.len() > MAX_JSON_BYTES {
        return Err(KubeError::TooLarge(json.len()));
    }
    let v: Value = serde_json::from_str(json).map_err(|e| KubeError::NotJson(e.to_string()))?;
    let Value::Object(top) = v else {
        return Err(KubeError::Invalid {
            at: "the report".into(),
            reason: "must be a JSON object (one Kubernetes object or a List)".into(),
        });
    };
    let is_list = top
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && top.contains_key("items");
    let items: Vec<(String, Value)> = if is_list {
        match top.get("items") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("items[{i}]"), v.clone()))
                .collect(),
            _ => {
                return Err(KubeError::Invalid {
                    at: "the List".into(),
                    reason: "items must be an array".into(),
                });
            }
        }
    } else {
        vec![("the object".into(), Value::Object(top))]
    };
    let mut report = Report::default();
    for (at, item) in items {
        item_into(&mut report, &at, item, redactor)?;
    }
    Ok(report)
}

fn invalid(at: &str, reason: impl Into<String>) -> KubeError {
    KubeError::Invalid {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn required<'a>(item: &'a Value, at: &str, path: &[&str]) -> Result<&'a str, KubeError> {
    let s = str_at(item, path);
    if s.is_empty() {
        return Err(invalid(at, format!("{} is required", path.join("."))));
    }
    Ok(s)
}

fn item_into(
    report: &mut Report,
    at: &str,
    mut item: Value,
    redactor: &Redactor,
) -> Result<(), KubeError> {
    if !item.is_object() {
        return Err(invalid(at, "must be a JSON object"));
    }
    required(&item, at, &["apiVersion"])?;
    let kind = required(&item, at, &["kind"])?.to_owned();
    let name = required(&item, at, &["metadata", "name"])?.to_owned();
    if !item.get("metadata").is_some_and(Value::is_object) {
        return Err(invalid(at, "metadata must be an object"));
    }
    let namespace = str_at(&item, &["metadata", "namespace"]).to_owned();
    if kind == "Event" {
        report
            .events
            .push(event(&item, at, namespace, name, redactor)?);
        return Ok(());
    }
    if let Some(Value::Object(meta)) = item.get_mut("metadata") {
        meta.remove("managedFields");
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.remove(LAST_APPLIED);
        }
    }
    let mut config = None;
    match kind.as_str() {
        "Secret" => {
            for field in ["data", "stringData"] {
                match item.get_mut(field) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(m)) => {
                        for v in m.values_mut() {
                            let text = match &*v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            *v = Value::String(marker(&text));
                        }
                    }
                    Some(_) => return Err(invalid(at, format!("{field} must be an object"))),
                }
            }
        }
        "ConfigMap" => {
            let data = string_map(item.get("data"), at, "data")?;
            config = Some(ConfigMapSnapshot {
                namespace: namespace.clone(),
                name: name.clone(),
                content: render_data(&data, redactor),
            });
            if let Some(Value::Object(m)) = item.get_mut("data") {
                for (k, v) in m.iter_mut() {
                    if let Value::String(s) = v {
                        *s = redactor.redact_entry(k, s);
                    }
                }
            }
            if let Some(Value::Object(m)) = item.get_mut("binaryData") {
                for v in m.values_mut() {
                    *v = Value::String(marker(v.as_str().unwrap_or_default()));
                }
            }
        }
        _ => redactor.redact_json(&mut item, false),
    }
    report.objects.push(KubeObject {
        uid: str_at(&item, &["metadata", "uid"]).to_owned(),
        resource_version: str_at(&item, &["metadata", "resourceVersion"]).to_owned(),
        json: item.to_string(),
        kind,
        namespace,
        name,
    });
    report.configs.extend(config);
    Ok(())
}

fn string_map(
    v: Option<&Value>,
    at: &str,
    field: &str,
) -> Result<BTreeMap<String, String>, KubeError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid(at, format!("{field}.{k} must be a string"))),
            })
            .collect(),
        Some(_) => Err(invalid(at, format!("{field} must be an object"))),
    }
}

/// An event of either API: core `v1` (involvedObject, message, count, lastTimestamp) or
/// `events.k8s.io/v1` (regarding, note, series, eventTime).
fn event(
    item: &Value,
    at: &str,
    namespace: String,
    name: String,
    redactor: &Redactor,
) -> Result<KubeEvent, KubeError> {
    let obj = |k: &str| item.get(k).and_then(Value::as_object);
    let involved: Option<&Map<String, Value>> = obj("involvedObject").or_else(|| obj("regarding"));
    let involved_str = |k: &str| {
        involved
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let message = [str_at(item, &["message"]), str_at(item, &["note"])]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let count = ["count", "deprecatedCount"]
        .iter()
        .filter_map(|k| item.get(*k))
        .chain(item.get("series").and_then(|s| s.get("count")))
        .find_map(Value::as_u64)
        .unwrap_or(1);
    let mut time_ms = None;
    for path in [
        &["lastTimestamp"][..],
        &["series", "lastObservedTime"],
        &["deprecatedLastTimestamp"],
        &["eventTime"],
        &["firstTimestamp"],
        &["deprecatedFirstTimestamp"],
        &["metadata", "creationTimestamp"],
    ] {
        let s = str_at(item, path);
        if s.is_empty() {
            continue;
        }
        time_ms =
            Some(rfc3339_ms(s).ok_or_else(|| {
                invalid(at, format!("{} is not an RFC 3339 time", path.join(".")))
            })?);
        break;
    }
    Ok(KubeEvent {
        namespace,
        name,
        r#type: str_at(item, &["type"]).to_owned(),
        reason: str_at(item, &["reason"]).to_owned(),
        involved_kind: involved_str("kind"),
        involved_name: involved_str("name"),
        message: redactor.redact_text(message),
        count: u32::try_from(count).unwrap_or(u32::MAX),
        time_ms,
    })
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests;
