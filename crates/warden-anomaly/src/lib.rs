//! Anomalies in one metric series, judged against what the series usually does at that time of
//! day, so that the agent service can open an ANOMALY investigation with the evidence.
//!
//! Two pure steps over plain points: [`baseline`] learns a median and MAD per time-of-day slot
//! from history (robust, so past incidents in the history do not become normal, and seasonal,
//! so the daily peak is not an anomaly), and [`detect`] finds episodes in recent points that
//! open beyond `sensitivity` MADs and last at least `min_duration_ms`. [`key`] names an episode
//! so that re-running detection over a sliding window fires it once (its docs give the firing
//! rule). No I/O, no clock, no async; the caller fetches the points and names the series.
//!
//! ```
//! use warden_anomaly::{DetectorConfig, Direction, Point, baseline, detect, key};
//!
//! const MIN: i64 = 60_000;
//! let cfg = DetectorConfig::default();
//! // Three days of one sample a minute: 100 ± 1, busier (200 ± 2) from 12:00 to 14:00.
//! let usual = |t_ms: i64| {
//!     let busy = (12 * 60..14 * 60).contains(&(t_ms / MIN % 1440));
//!     let wobble = if t_ms / MIN % 2 == 0 { -1.0 } else { 1.0 };
//!     if busy { 200.0 + 2.0 * wobble } else { 100.0 + wobble }
//! };
//! let history: Vec<Point> = (0..3 * 1440).map(|i| Point { t_ms: i * MIN, value: usual(i * MIN) }).collect();
//! let base = baseline(&history, &cfg)?;
//!
//! // Day four: the usual noon rush, and 20 minutes at 200 in the night.
//! let day4 = 3 * 1440 * MIN;
//! let recent: Vec<Point> = (0..1440)
//!     .map(|i| {
//!         let t_ms = day4 + i * MIN;
//!         let night_rush = (3 * 60..3 * 60 + 20).contains(&i);
//!         Point { t_ms, value: if night_rush { 200.0 } else { usual(t_ms) } }
//!     })
//!     .collect();
//! let found = detect(&base, &recent, &cfg)?;
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].direction, Direction::Up);
//! assert_eq!(found[0].start_ms, day4 + 3 * 60 * MIN);
//! assert_eq!(found[0].expected, 100.0);
//! assert_eq!(key("api:rps", &found[0]), format!("anomaly:v1:up:{}:api:rps", day4 + 180 * MIN));
//! # Ok::<(), warden_anomaly::ConfigError>(())
//! ```
//!
//! Invariant: no input panics (empty, unsorted, duplicated, NaN or infinite values, extreme
//! timestamps); the same points in any order give the same result; a bad setting is a
//! [`ConfigError`] that names the field.

mod baseline;
mod config;
mod detect;
mod stats;

use serde::{Deserialize, Serialize};

pub use baseline::{Baseline, Expected, SlotStats, Source, baseline};
pub use config::{ConfigError, DetectorConfig, Direction, MAX_SLOTS};
pub use detect::{Anomaly, detect, key};
pub use stats::MAD_SCALE;

/// One sample of a metric: milliseconds since the Unix epoch and its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub t_ms: i64,
    pub value: f64,
}

/// The finite points of `points`, sorted by time and then value (a total order, so any input
/// order gives the same sequence).
pub(crate) fn finite_sorted(points: &[Point]) -> Vec<Point> {
    let mut kept: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.value.is_finite())
        .collect();
    kept.sort_unstable_by(|a, b| a.t_ms.cmp(&b.t_ms).then(a.value.total_cmp(&b.value)));
    kept
}
