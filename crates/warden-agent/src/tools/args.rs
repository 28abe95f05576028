//! Reading a model's tool arguments: typed accessors that turn a wrong type into a
//! sentence the model can act on.

use serde_json::{Map, Value};

pub(crate) struct Args<'a>(pub &'a Map<String, Value>);

impl Args<'_> {
    pub fn str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    }

    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.str(key)?.ok_or_else(|| format!("{key} is required"))
    }

    pub fn string(&self, key: &str) -> Result<String, String> {
        Ok(self.str(key)?.unwrap_or("").to_owned())
    }

    /// A positive integer, clamped to `max`; `default` when absent.
    pub fn limit(&self, key: &str, default: u32, max: u32) -> Result<u32, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default.min(max)),
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= 1)
                .map(|n| n.min(u64::from(max)) as u32)
                .ok_or_else(|| format!("{key} must be a positive integer")),
        }
    }

    /// A minimum severity name as OTLP's SeverityNumber (0: any).
    pub fn severity(&self, key: &str) -> Result<i32, String> {
        Ok(
            match self.str(key)?.map(str::to_ascii_lowercase).as_deref() {
                None => 0,
                Some("trace") => 1,
                Some("debug") => 5,
                Some("info") => 9,
                Some("warn" | "warning") => 13,
                Some("error") => 17,
                Some("fatal") => 21,
                Some(other) => {
                    return Err(format!(
                        "{key} {other:?} is not one of trace, debug, info, warn, error, fatal"
                    ));
                }
            },
        )
    }

    /// An object of string values.
    pub fn string_map(
        &self,
        key: &str,
    ) -> Result<std::collections::HashMap<String, String>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Default::default()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(format!("{key}.{k} must be a string")),
                })
                .collect(),
            Some(_) => Err(format!("{key} must be an object of strings")),
        }
    }
}

/// Short name of an OTLP SeverityNumber.
pub(crate) fn severity_name(n: i32) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "-",
    }
}
