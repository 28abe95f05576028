//! The time a tool call covers. Unless the model asks otherwise, every query covers the
//! incident window: from a lookback before the trigger's time to a little after it (never
//! past now). The model may name RFC 3339 times or offsets from the trigger's time
//! ("-30m", "+10m"); a window is never empty, reversed, or longer than the maximum.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest window one call may cover.
pub const MAX_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

/// A half-open window in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since_ms: i64,
    pub until_ms: i64,
}

/// The incident window of a trigger at `trigger_ms`, evaluated at `now_ms`.
pub fn incident(trigger_ms: i64, lookback: Duration, now_ms: i64) -> Window {
    let lookback_ms = lookback.as_millis() as i64;
    let since_ms = trigger_ms - lookback_ms;
    // After the trigger, as long again as a quarter of the lookback, but never past now.
    let until_ms = (trigger_ms + lookback_ms / 4)
        .min(now_ms)
        .max(trigger_ms + 1000);
    Window { since_ms, until_ms }
}

/// The window of one call: the model's `since`/`until` where given, the incident window's
/// ends where not.
pub fn resolve(
    incident: Window,
    trigger_ms: i64,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<Window, String> {
    let since_ms = match since {
        Some(s) => point(s, trigger_ms).map_err(|e| format!("since: {e}"))?,
        None => incident.since_ms,
    };
    let until_ms = match until {
        Some(s) => point(s, trigger_ms).map_err(|e| format!("until: {e}"))?,
        None if since.is_some() => incident.until_ms.max(since_ms + 1000),
        None => incident.until_ms,
    };
    if until_ms <= since_ms {
        return Err("until must be after since".into());
    }
    if (until_ms - since_ms) as u128 > MAX_WINDOW.as_millis() {
        return Err("a window may cover at most 31 days; narrow it".into());
    }
    Ok(Window { since_ms, until_ms })
}

/// An RFC 3339 time, or a signed offset from the trigger time ("-30m", "+2h", "-90s").
fn point(s: &str, trigger_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        let d = humantime::parse_duration(rest)
            .map_err(|e| format!("{s:?} is not an offset like -30m or +2h ({e})"))?;
        if d > MAX_WINDOW {
            return Err(format!("{s:?} is further than 31 days from the trigger"));
        }
        let ms = d.as_millis() as i64;
        return Ok(if s.starts_with('-') {
            trigger_ms - ms
        } else {
            trigger_ms + ms
        });
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        format!("{s:?} is neither an RFC 3339 time (2026-12-05T14:03:00Z) nor an offset like -30m")
    })?;
    Ok(millis(t))
}

/// A protobuf timestamp for a Unix millisecond time.
pub fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// Unix milliseconds of a protobuf timestamp (0 when unset).
pub fn ms_of(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
        .unwrap_or(0)
}

pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// RFC 3339 (seconds) for a Unix millisecond time, as the model reads it.
pub fn rfc3339(ms: i64) -> String {
    let t = if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_900_000_000;
    const MIN: i64 = 60_000;

    #[test]
    fn the_default_is_the_incident_window_and_never_reaches_past_now() {
        let w = incident(T, Duration::from_secs(3600), T + 5 * MIN);
        assert_eq!(w.since_ms, T - 60 * MIN);
        assert_eq!(w.until_ms, T + 5 * MIN);
        let later = incident(T, Duration::from_secs(3600), T + 600 * MIN);
        assert_eq!(later.until_ms, T + 15 * MIN);
        assert_eq!(resolve(w, T, None, None).unwrap(), w);
    }

    #[test]
    fn offsets_are_from_the_trigger_and_times_are_rfc3339() {
        let w = incident(T, Duration::from_secs(3600), T);
        let r = resolve(w, T, Some("-15m"), Some("+5m")).unwrap();
        assert_eq!((r.since_ms, r.until_ms), (T - 15 * MIN, T + 5 * MIN));
        let at = rfc3339(T - 10 * MIN);
        let r = resolve(w, T, Some(&at), None).unwrap();
        assert_eq!(r.since_ms, T - 10 * MIN);
    }

    #[test]
    fn bad_windows_are_explained() {
        let w = incident(T, Duration::from_secs(3600), T);
        assert!(
            resolve(w, T, Some("yesterday"), None)
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(
            resolve(w, T, Some("+5m"), Some("-5m"))
                .unwrap_err()
                .contains("after")
        );
        assert!(
            resolve(w, T, Some("-40days"), None)
                .unwrap_err()
                .contains("31 days")
        );
    }
}
