//! Kubernetes Events as exporters post them: core `v1` `Event` (involvedObject, message,
//! count, firstTimestamp/lastTimestamp, source) and `events.k8s.io/v1` `Event`
//! (regarding, note, deprecatedCount/series.count, eventTime, reportingController),
//! normalized to one [`KubeEvent`] so both APIs read the same.
//!
//! A body may be one Event, a JSON array of them, an `EventList` (any object with
//! `items`), or newline-delimited Events (what kubernetes-event-exporter's file and
//! batching sinks write). kubernetes-event-exporter's webhook sink posts one core `v1`
//! Event per request with `clusterName` and the involved object's labels added; those
//! extra fields are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{PayloadError, invalid, quoted};
use crate::json::{check_size, first_text, first_time_ms, not_json, text, uint};

/// The most events one body may carry.
pub const MAX_EVENTS: usize = 1000;

const WHAT: &str = "kubernetes events";

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for cluster-scoped objects (Node, PersistentVolume).
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// One event, whichever API it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeEvent {
    /// `type: Warning` (anything else, `Normal` included, is not a warning).
    pub warning: bool,
    pub reason: String,
    /// core `message` or events.k8s.io `note`.
    pub message: String,
    pub object: ObjectRef,
    /// How often the series occurred: the largest of `count`, `deprecatedCount` and
    /// `series.count`, at least 1.
    pub count: u64,
    /// First occurrence: `firstTimestamp`/`deprecatedFirstTimestamp`, else `eventTime`,
    /// else `metadata.creationTimestamp`.
    pub first_ms: i64,
    /// Last occurrence (never before `first_ms`): `lastTimestamp`/`deprecatedLastTimestamp`
    /// or `series.lastObservedTime`, whichever is later, else `first_ms`.
    pub last_ms: i64,
    /// `reportingComponent`/`reportingController`, else `source.component`.
    pub reporter: String,
}

/// Parses a body of Kubernetes Events in any of the accepted layouts.
pub fn kubernetes_events(body: &[u8]) -> Result<Vec<KubeEvent>, PayloadError> {
    check_size(WHAT, body)?;
    let mut values = Vec::new();
    for (i, value) in serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .enumerate()
    {
        if i == MAX_EVENTS {
            return Err(too_many());
        }
        values.push(value.map_err(|e| not_json(WHAT, &e))?);
    }
    let items: Vec<Value> = match values.len() {
        0 => return Err(invalid(WHAT, "the body is empty")),
        1 => match values.pop() {
            Some(Value::Array(items)) => items,
            Some(Value::Object(obj)) if obj.contains_key("items") => match obj.get("items") {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Null) => Vec::new(),
                _ => return Err(invalid(WHAT, "`items` must be an array of Events")),
            },
            Some(event @ Value::Object(_)) => vec![event],
            _ => {
                return Err(invalid(
                    WHAT,
                    "the body must be an Event object, an array of Events, a list with `items`, or one Event per line",
                ));
            }
        },
        _ => values,
    };
    if items.len() > MAX_EVENTS {
        return Err(too_many());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_event(item, &format!("kubernetes event {}", i + 1)))
        .collect()
}

fn too_many() -> PayloadError {
    PayloadError::TooMany {
        what: WHAT,
        items: "events",
        limit: MAX_EVENTS,
        hint: "lower the exporter's batch size",
    }
}

/// Field names of one API version, so errors name the field the sender actually sent.
struct Fields {
    object: &'static str,
    message: &'static str,
    count: &'static str,
    first: &'static str,
    last: &'static str,
    reporter: &'static str,
    source: &'static str,
}

const CORE_V1: Fields = Fields {
    object: "involvedObject",
    message: "message",
    count: "count",
    first: "firstTimestamp",
    last: "lastTimestamp",
    reporter: "reportingComponent",
    source: "source",
};

const EVENTS_V1: Fields = Fields {
    object: "regarding",
    message: "note",
    count: "deprecatedCount",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    reporter: "reportingController",
    source: "deprecatedSource",
};

fn parse_event(item: &Value, where_: &str) -> Result<KubeEvent, PayloadError> {
    if !item.is_object() {
        return Err(invalid(where_, "must be a JSON object"));
    }
    if let Some(kind) = text(item, &["kind"])
        && kind != "Event"
    {
        return Err(invalid(
            where_,
            format!("kind is {}, not \"Event\"", quoted(kind)),
        ));
    }
    let events_v1 = item.get("regarding").is_some_and(|r| !r.is_null())
        || text(item, &["apiVersion"]).is_some_and(|v| v.starts_with("events.k8s.io/"));
    let f = if events_v1 { &EVENTS_V1 } else { &CORE_V1 };

    let obj_text = |field: &str| text(item, &[f.object, field]).unwrap_or("").to_owned();
    if item
        .get(f.object)
        .is_some_and(|o| !o.is_null() && !o.is_object())
    {
        return Err(invalid(where_, format!("{} must be an object", f.object)));
    }
    let object = ObjectRef {
        kind: obj_text("kind"),
        namespace: obj_text("namespace"),
        name: obj_text("name"),
        uid: obj_text("uid"),
    };
    if object.name.is_empty() {
        return Err(invalid(where_, format!("{}.name is missing", f.object)));
    }
    let reason = text(item, &["reason"])
        .ok_or_else(|| invalid(where_, "reason is missing"))?
        .to_owned();

    let count = [
        uint(item, &[f.count], where_, f.count)?,
        uint(item, &["series", "count"], where_, "series.count")?,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(1)
    .max(1);

    let first_ms = first_time_ms(
        item,
        &[
            (&[f.first], f.first),
            (&["eventTime"], "eventTime"),
            (
                &["metadata", "creationTimestamp"],
                "metadata.creationTimestamp",
            ),
        ],
        where_,
    )?
    .ok_or_else(|| {
        invalid(
            where_,
            format!(
                "no time: {}, eventTime and metadata.creationTimestamp are all missing",
                f.first
            ),
        )
    })?;
    let last_ms = [
        first_time_ms(item, &[(&[f.last], f.last)], where_)?,
        first_time_ms(
            item,
            &[(&["series", "lastObservedTime"], "series.lastObservedTime")],
            where_,
        )?,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(first_ms)
    .max(first_ms);

    Ok(KubeEvent {
        warning: text(item, &["type"]).is_some_and(|t| t.eq_ignore_ascii_case("Warning")),
        reason,
        message: text(item, &[f.message]).unwrap_or("").to_owned(),
        object,
        count,
        first_ms,
        last_ms,
        reporter: first_text(item, &[&[f.reporter], &[f.source, "component"]])
            .unwrap_or("")
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE: &str = r#"{"kind":"Event","involvedObject":{"kind":"Pod","name":"p"},
        "reason":"BackOff","type":"Warning","firstTimestamp":"2024-01-01T00:00:00Z"}"#;

    #[test]
    fn every_layout_gives_the_same_events() {
        let single = kubernetes_events(CORE.as_bytes()).unwrap();
        let array = kubernetes_events(format!("[{CORE},{CORE}]").as_bytes()).unwrap();
        let list = kubernetes_events(
            format!(r#"{{"kind":"EventList","apiVersion":"v1","items":[{CORE},{CORE}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        let compact = CORE.replace('\n', "");
        let ndjson = kubernetes_events(format!("{compact}\n{compact}\n").as_bytes()).unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(array, list);
        assert_eq!(array, ndjson);
        assert_eq!(array[0], single[0]);
    }

    #[test]
    fn errors_name_the_event_and_the_field_of_its_api() {
        let core = r#"[{"involvedObject":{"kind":"Pod","name":"a"},"reason":"X","firstTimestamp":"2024-01-01T00:00:00Z"},
                       {"involvedObject":{"kind":"Pod"},"reason":"X"}]"#;
        assert_eq!(
            kubernetes_events(core.as_bytes()).unwrap_err().to_string(),
            "kubernetes event 2: involvedObject.name is missing"
        );
        let v1 = r#"{"apiVersion":"events.k8s.io/v1","regarding":{"kind":"Pod"},"reason":"X"}"#;
        assert_eq!(
            kubernetes_events(v1.as_bytes()).unwrap_err().to_string(),
            "kubernetes event 1: regarding.name is missing"
        );
        let no_time = r#"{"involvedObject":{"name":"a"},"reason":"X"}"#;
        assert_eq!(
            kubernetes_events(no_time.as_bytes())
                .unwrap_err()
                .to_string(),
            "kubernetes event 1: no time: firstTimestamp, eventTime and metadata.creationTimestamp are all missing"
        );
        let pod = r#"{"kind":"Pod","metadata":{"name":"a"}}"#;
        assert_eq!(
            kubernetes_events(pod.as_bytes()).unwrap_err().to_string(),
            "kubernetes event 1: kind is \"Pod\", not \"Event\""
        );
    }

    #[test]
    fn more_than_the_cap_is_refused_in_every_layout() {
        let compact = CORE.replace('\n', "");
        let many = vec![compact.as_str(); MAX_EVENTS + 1];
        assert!(matches!(
            kubernetes_events(format!("[{}]", many.join(",")).as_bytes()),
            Err(PayloadError::TooMany { .. })
        ));
        assert!(matches!(
            kubernetes_events(many.join("\n").as_bytes()),
            Err(PayloadError::TooMany { .. })
        ));
        let at_cap = vec![compact.as_str(); MAX_EVENTS];
        assert_eq!(
            kubernetes_events(at_cap.join("\n").as_bytes())
                .unwrap()
                .len(),
            MAX_EVENTS
        );
    }

    #[test]
    fn count_and_last_time_take_the_largest_of_the_fields_present() {
        let e = r#"{"involvedObject":{"name":"a"},"reason":"X","count":2,
            "series":{"count":7,"lastObservedTime":"2024-01-01T00:05:00.000000Z"},
            "firstTimestamp":"2024-01-01T00:00:00Z","lastTimestamp":"2024-01-01T00:01:00Z"}"#;
        let ev = &kubernetes_events(e.as_bytes()).unwrap()[0];
        assert_eq!(ev.count, 7);
        assert_eq!(ev.last_ms - ev.first_ms, 5 * 60_000);
        assert!(!ev.warning);
    }

    #[test]
    fn empty_bodies_and_empty_lists() {
        assert!(kubernetes_events(b"  \n").is_err());
        assert_eq!(kubernetes_events(br#"{"items":[]}"#).unwrap(), vec![]);
        assert_eq!(kubernetes_events(b"[]").unwrap(), vec![]);
    }
}
