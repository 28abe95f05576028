//! Value checks shared by every service config: numbers in their range, addresses that
//! parse, paths and URLs that are not empty, each error at its value with a hint.

use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use crate::{Diagnostic, Source};

/// The values a numeric setting may take, and what it is for (shown as the hint when a
/// value is out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds<T> {
    /// As written in TOML: `lookback_secs`, `budget.max_steps`.
    pub name: &'static str,
    pub min: T,
    pub max: T,
    pub meaning: &'static str,
}

impl<T: Copy + PartialOrd> Bounds<T> {
    pub fn contains(&self, v: T) -> bool {
        self.min <= v && v <= self.max
    }
}

/// Top-level settings every service (or storage) has; the agent's are in `agent.rs`.
pub mod bounds {
    use super::Bounds;

    pub const MAX_MESSAGE_BYTES: Bounds<u64> = Bounds {
        name: "max_message_bytes",
        min: 1024,
        max: 1 << 30,
        meaning: "the largest gRPC message this service accepts or sends (default 16 MiB)",
    };
    pub const SHUTDOWN_DEADLINE_SECS: Bounds<u64> = Bounds {
        name: "shutdown_deadline_secs",
        min: 0,
        max: 3600,
        meaning: "how long calls in flight may finish after a stop signal (default 10)",
    };
    pub const AUDIT_RECONCILE_AFTER_SECS: Bounds<u64> = Bounds {
        name: "audit_reconcile_after_secs",
        min: 60,
        max: 30 * 24 * 3600,
        meaning: "audit intents without an outcome for this long are closed as `unknown` (default 3600); keep it above the longest call a gateway runs",
    };
    pub const INGEST_MAX_REQUEST_BYTES: Bounds<u64> = Bounds {
        name: "ingest.max_request_bytes",
        min: 1024,
        max: 1 << 30,
        meaning: "the largest OTLP request after decompression (default 4 MiB)",
    };
    pub const INGEST_MAX_IN_FLIGHT: Bounds<u64> = Bounds {
        name: "ingest.max_in_flight",
        min: 1,
        max: 65536,
        meaning: "OTLP requests handled at once; more are told to retry (default 64)",
    };
    pub const LOOKBACK_SECS: Bounds<u64> = Bounds {
        name: "lookback_secs",
        min: 60,
        max: 31 * 24 * 3600,
        meaning: "how far before a trigger's time tool queries look by default (default 3600)",
    };
    pub const TOOL_RESULT_MAX_BYTES: Bounds<u64> = Bounds {
        name: "tool_result_max_bytes",
        min: 1024,
        max: 1024 * 1024,
        meaning: "the most bytes one tool result may take (default 16384; never more than an eighth of the model's context)",
    };
}

/// Collects every problem of one file.
pub struct Checker<'a> {
    pub src: Source<'a>,
    pub errs: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub fn new(src: Source<'a>) -> Self {
        Checker {
            src,
            errs: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Range<usize>, message: String, help: impl Into<String>) {
        self.errs.push(self.src.at(span, message).with_help(help));
    }

    /// The value when it is in range; out of range: an error, and `None`.
    pub fn number<T>(&mut self, v: &Option<Spanned<T>>, b: &Bounds<T>) -> Option<T>
    where
        T: Copy + PartialOrd + Display,
    {
        let v = v.as_ref()?;
        let n = *v.get_ref();
        if b.contains(n) {
            return Some(n);
        }
        self.error(
            v.span(),
            format!(
                "`{}` must be between {} and {} (it is {n})",
                b.name, b.min, b.max
            ),
            format!("{}: {}", b.name, b.meaning),
        );
        None
    }

    /// An address this service listens on: IP and port.
    pub fn listen_addr(&mut self, v: &Option<Spanned<String>>, name: &str) -> Option<SocketAddr> {
        let v = v.as_ref()?;
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    v.span(),
                    format!("`{name}` {:?} is not an IP address and port", v.get_ref()),
                    "write it as IP:PORT, e.g. \"127.0.0.1:7445\" (\"0.0.0.0:PORT\" listens on every interface, port 0 on any free port)",
                );
                None
            }
        }
    }

    /// Another service's address: `HOST:PORT`, optionally after `https://` (or `http://`
    /// for `--insecure-dev`).
    pub fn peer_addr(&mut self, v: &Option<Spanned<String>>, name: &str) -> Option<String> {
        let v = v.as_ref()?;
        if valid_peer(v.get_ref()) {
            return Some(v.get_ref().clone());
        }
        self.error(
            v.span(),
            format!("`{name}` {:?} is not a host and port", v.get_ref()),
            "write it as HOST:PORT, e.g. \"127.0.0.1:7444\" or \"storage.internal:7444\"",
        );
        None
    }

    /// A file path: anything but empty.
    pub fn path(&mut self, v: &Option<Spanned<String>>, name: &str) -> Option<PathBuf> {
        let v = v.as_ref()?;
        if v.get_ref().trim().is_empty() {
            self.error(
                v.span(),
                format!("`{name}` is empty"),
                "name a file, e.g. \".warden/pki/ca.pem\"; relative paths are relative to the directory the service runs in",
            );
            return None;
        }
        Some(PathBuf::from(v.get_ref()))
    }

    /// An http(s) URL. The value is not repeated in the message: a URL may carry a password.
    pub fn url(&mut self, v: &Option<Spanned<String>>, name: &str) -> Option<String> {
        let v = v.as_ref()?;
        let u = v.get_ref();
        let host = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        if host.is_none_or(str::is_empty) || u.chars().any(char::is_whitespace) {
            self.error(
                v.span(),
                format!("`{name}` is not an http(s) URL"),
                "write it as https://host[:port][/path]",
            );
            return None;
        }
        Some(u.clone())
    }
}

/// `HOST:PORT` with a non-zero port, after an optional `https://` or `http://`.
fn valid_peer(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@');
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}
