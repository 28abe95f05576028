//! Reading loosely shaped JSON. Senders template their payloads (Alertmanager templates,
//! Argo CD's Go templates, exporter layouts), so a field may be missing, `null`, empty,
//! or Go's `<no value>` (what `text/template` prints for a missing map key); all of
//! those mean "absent" here, and only a present value of the wrong shape is an error.

use std::collections::BTreeMap;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::MAX_BODY_BYTES;
use crate::error::{PayloadError, invalid};

/// What Go's `text/template` renders for a missing key of a map.
const GO_NO_VALUE: &str = "<no value>";

/// Parses a whole body as one JSON value, refusing bodies over [`MAX_BODY_BYTES`].
pub(crate) fn parse_body(what: &'static str, body: &[u8]) -> Result<Value, PayloadError> {
    check_size(what, body)?;
    serde_json::from_slice(body).map_err(|e| not_json(what, &e))
}

pub(crate) fn check_size(what: &'static str, body: &[u8]) -> Result<(), PayloadError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(PayloadError::TooLarge {
            what,
            bytes: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// serde_json's syntax errors say where (line, column) and what was expected, never the
/// content; the body itself is never quoted.
pub(crate) fn not_json(what: &'static str, e: &serde_json::Error) -> PayloadError {
    PayloadError::NotJson {
        what,
        reason: e.to_string(),
    }
}

/// The value at `path` through nested objects; `None` when any step is missing or null.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// A present, non-empty string at `path` (trimmed); `None` when absent, empty or
/// `<no value>`. A number or boolean there is absent too: callers that accept those
/// say so with [`scalar_text`].
pub(crate) fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let s = at(v, path)?.as_str()?.trim();
    (!s.is_empty() && s != GO_NO_VALUE).then_some(s)
}

/// The first present text among several paths.
pub(crate) fn first_text<'a>(v: &'a Value, paths: &[&[&str]]) -> Option<&'a str> {
    paths.iter().find_map(|p| text(v, p))
}

/// A string, number or boolean rendered as text (templated payloads sometimes turn one
/// into another); `None` for absent, null, empty or `<no value>`.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s != GO_NO_VALUE).then(|| s.to_owned())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-negative integer given as a number or as a decimal string; `Ok(None)` when absent.
pub(crate) fn uint(
    v: &Value,
    path: &[&str],
    where_: &str,
    shown: &str,
) -> Result<Option<u64>, PayloadError> {
    let Some(value) = at(v, path) else {
        return Ok(None);
    };
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.trim().is_empty() || s.trim() == GO_NO_VALUE => return Ok(None),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| invalid(where_, format!("{shown} must be a non-negative integer")))
}

/// A map of strings (labels, annotations). Absent is empty; numbers and booleans become
/// text; nested objects or arrays are refused with the field named.
pub(crate) fn string_map(
    v: &Value,
    path: &[&str],
    where_: &str,
    shown: &str,
) -> Result<BTreeMap<String, String>, PayloadError> {
    let Some(value) = at(v, path) else {
        return Ok(BTreeMap::new());
    };
    let Some(obj) = value.as_object() else {
        return Err(invalid(
            where_,
            format!("{shown} must be an object of strings"),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, item) in obj {
        match item {
            Value::Null => {}
            Value::Object(_) | Value::Array(_) => {
                return Err(invalid(
                    where_,
                    format!("{shown}.{k} must be a string, not an object or array"),
                ));
            }
            scalar => {
                if let Some(s) = scalar_text(scalar) {
                    out.insert(k.clone(), s);
                }
            }
        }
    }
    Ok(out)
}

/// An RFC 3339 time at `path` as Unix milliseconds. `Ok(None)` when absent or Go's zero
/// time (`0001-01-01T00:00:00Z`, which Alertmanager and Kubernetes send for "unset");
/// an error naming `shown` when present but not RFC 3339.
pub(crate) fn time_ms(
    v: &Value,
    path: &[&str],
    where_: &str,
    shown: &str,
) -> Result<Option<i64>, PayloadError> {
    let Some(s) = text(v, path) else {
        // A present non-string (a number, an object) is a shape error, not absence.
        if let Some(other) = at(v, path)
            && !other.is_string()
        {
            return Err(invalid(
                where_,
                format!("{shown} must be an RFC 3339 time string"),
            ));
        }
        return Ok(None);
    };
    match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) if t.year() <= 1 => Ok(None),
        Ok(t) => Ok(Some(unix_ms(t))),
        Err(_) => Err(invalid(
            where_,
            format!(
                "{shown} is not an RFC 3339 time (like 2024-05-01T10:00:00Z): {}",
                crate::error::quoted(s)
            ),
        )),
    }
}

/// The first present time among several paths (each checked for shape as it is reached).
pub(crate) fn first_time_ms(
    v: &Value,
    paths: &[(&[&str], &str)],
    where_: &str,
) -> Result<Option<i64>, PayloadError> {
    for (path, shown) in paths {
        if let Some(ms) = time_ms(v, path, where_, shown)? {
            return Ok(Some(ms));
        }
    }
    Ok(None)
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    // Years 2..=9999 keep nanoseconds / 10^6 well inside i64.
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 (UTC), for descriptions; the number itself when out of range.
pub(crate) fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms since the Unix epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_null_empty_and_go_no_value_are_all_absent() {
        let v = json!({"a": null, "b": "", "c": "<no value>", "d": "  x  ", "e": 5});
        for k in ["a", "b", "c", "missing"] {
            assert_eq!(text(&v, &[k]), None, "{k}");
        }
        assert_eq!(text(&v, &["d"]), Some("x"));
        assert_eq!(text(&v, &["e"]), None);
        assert_eq!(scalar_text(&v["e"]), Some("5".to_owned()));
    }

    #[test]
    fn times_parse_with_offsets_and_nanoseconds_and_zero_time_is_unset() {
        let v = json!({
            "ns": "2018-08-03T09:52:26.739266876+02:00",
            "z": "0001-01-01T00:00:00Z",
            "bad": "yesterday",
            "num": 17
        });
        assert_eq!(time_ms(&v, &["ns"], "x", "ns"), Ok(Some(1_533_282_746_739)));
        assert_eq!(time_ms(&v, &["z"], "x", "z"), Ok(None));
        assert_eq!(time_ms(&v, &["missing"], "x", "m"), Ok(None));
        let err = time_ms(&v, &["bad"], "alert 1", "startsAt").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("alert 1: startsAt is not an RFC 3339 time")
        );
        assert!(time_ms(&v, &["num"], "x", "num").is_err());
    }

    #[test]
    fn integers_accept_numbers_and_decimal_strings_only() {
        let v = json!({"n": 3, "s": "4", "neg": -1, "f": 1.5, "word": "many"});
        assert_eq!(uint(&v, &["n"], "x", "n"), Ok(Some(3)));
        assert_eq!(uint(&v, &["s"], "x", "s"), Ok(Some(4)));
        assert_eq!(uint(&v, &["none"], "x", "none"), Ok(None));
        for k in ["neg", "f", "word"] {
            assert!(uint(&v, &[k], "x", k).is_err(), "{k}");
        }
    }

    #[test]
    fn string_maps_stringify_scalars_and_refuse_nesting() {
        let v = json!({"m": {"a": "1", "b": 2, "c": true, "d": null}, "bad": {"x": {}}, "arr": []});
        let m = string_map(&v, &["m"], "x", "labels").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["b"], "2");
        let e = string_map(&v, &["bad"], "alert 1", "labels").unwrap_err();
        assert_eq!(
            e.to_string(),
            "alert 1: labels.x must be a string, not an object or array"
        );
        assert!(string_map(&v, &["arr"], "x", "labels").is_err());
    }

    #[test]
    fn format_ms_is_rfc3339_utc() {
        assert_eq!(format_ms(1_533_282_746_739), "2018-08-03T07:52:26.739Z");
    }
}
