//! What the detector is told: the season and its slots, how far is too far, for how long, and
//! in which direction. Checked once by [`DetectorConfig::validate`] so the pure steps never
//! divide by zero or allocate without bound on a mistyped setting.

use serde::{Deserialize, Serialize};
use thiserror::Error;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Most slots a season may have: a baseline holds one median and MAD per slot.
pub const MAX_SLOTS: i64 = 100_000;

/// Which side of the baseline counts. In a [`crate::Anomaly`] it is always `Up` or `Down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Values above the baseline (latency, error rate, queue depth rising).
    Up,
    /// Values below the baseline (throughput, success count falling, a drop to zero).
    Down,
    /// Either side.
    Both,
}

impl Direction {
    /// `up`, `down` or `both`: as it appears in keys and serialized evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
        }
    }

    /// Whether an anomaly going `side` (`Up` or `Down`) is one this setting asks for.
    pub fn admits(self, side: Direction) -> bool {
        self == Direction::Both || self == side
    }
}

/// Settings of one detector. `Default` suits a metric with a daily rhythm sampled every minute
/// or faster with at least two days of history (six days when sampled every five minutes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// Length of the repeating pattern (default one day). A point's place in the season is
    /// `t_ms mod season_ms`, so seasons start at the Unix epoch (midnight UTC for a day).
    pub season_ms: i64,
    /// Width of one time-of-day slot (default 10 min); must divide `season_ms`. Each slot gets
    /// its own median and MAD. Narrow slots follow the daily shape closely; a daily change of
    /// level inside a slot makes the part of the slot on the minority side look anomalous
    /// every day, for less than half a slot: with `slot_ms <= 2 * min_duration_ms` that part
    /// never lasts long enough to fire. Wide slots need less history per slot.
    pub slot_ms: i64,
    /// Robust z (deviation from the slot median in scaled MADs) beyond which a point is
    /// anomalous (default 6).
    pub sensitivity: f64,
    /// An episode is kept only if it covers at least this long (default 5 min), so single
    /// outliers and short blips never fire.
    pub min_duration_ms: i64,
    /// A slot with fewer finite history points than this uses the whole history's median and
    /// MAD instead (default 12: a 10-minute slot gains 10 points a day at one sample a minute,
    /// 2 at one every five minutes).
    pub min_history_points_per_slot: usize,
    /// Which side of the baseline counts (default both).
    pub direction: Direction,
    /// Once an episode is open it goes on through points beyond `hold_fraction × sensitivity`
    /// on its side (default 0.5), so a shift that hovers around the threshold is one episode,
    /// and one investigation, rather than several. Must be in (0, 1]; 1 turns it off.
    pub hold_fraction: f64,
    /// Two anomalous points (same direction) belong to one episode when they are at most this
    /// many sample intervals apart (default 3: up to two samples inside the band, or missing,
    /// between them).
    pub max_gap_intervals: u32,
    /// The MAD used is at least this fraction of the slot median's magnitude (default 0.01),
    /// so a noise-free series needs a change of `sensitivity` percent of its level to fire.
    pub mad_floor_relative: f64,
    /// The MAD used is at least this, in the metric's unit (default 1e-6), so a series that
    /// sits at exactly zero does not fire on rounding noise. Set it to the smallest change of
    /// the metric that matters divided by `sensitivity`.
    pub mad_floor_absolute: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            season_ms: DAY_MS,
            slot_ms: 10 * MINUTE_MS,
            sensitivity: 6.0,
            min_duration_ms: 5 * MINUTE_MS,
            min_history_points_per_slot: 12,
            direction: Direction::Both,
            hold_fraction: 0.5,
            max_gap_intervals: 3,
            mad_floor_relative: 0.01,
            mad_floor_absolute: 1e-6,
        }
    }
}

/// A setting the detector cannot work with; the message names the field and the value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("season_ms must be positive, got {0}")]
    Season(i64),
    #[error("slot_ms must be positive and at most season_ms ({season_ms}), got {slot_ms}")]
    Slot { slot_ms: i64, season_ms: i64 },
    #[error("slot_ms ({slot_ms}) must divide season_ms ({season_ms}) evenly")]
    SlotNotDivisor { slot_ms: i64, season_ms: i64 },
    #[error(
        "season_ms / slot_ms gives {slots} slots; at most {MAX_SLOTS} are allowed (widen slot_ms)"
    )]
    TooManySlots { slots: i64 },
    #[error("sensitivity must be a finite number above zero, got {0}")]
    Sensitivity(f64),
    #[error("min_duration_ms must not be negative, got {0}")]
    MinDuration(i64),
    #[error("min_history_points_per_slot must be at least 1, got 0")]
    MinHistory,
    #[error("hold_fraction must be above 0 and at most 1, got {0}")]
    HoldFraction(f64),
    #[error("max_gap_intervals must be at least 1, got 0")]
    MaxGap,
    #[error("mad_floor_relative must be a finite number of at least zero, got {0}")]
    FloorRelative(f64),
    #[error("mad_floor_absolute must be a finite number above zero, got {0}")]
    FloorAbsolute(f64),
    #[error("direction {0:?} is not up, down or both")]
    UnknownDirection(String),
    #[error("min_duration_secs is {0}; at most a day (86400) is allowed")]
    DurationTooLong(u32),
}

impl DetectorConfig {
    /// The defaults with what a tenant sets: `sensitivity` (0: the default), how long a
    /// deviation must last (0: the default) and the direction ("up", "down", "both" or
    /// empty for both). Checked: a tenant's bad setting is refused when it is made.
    pub fn tenant(
        sensitivity: f64,
        min_duration_secs: u32,
        direction: &str,
    ) -> Result<DetectorConfig, ConfigError> {
        let mut cfg = DetectorConfig::default();
        if sensitivity != 0.0 {
            cfg.sensitivity = sensitivity;
        }
        if min_duration_secs > 86_400 {
            return Err(ConfigError::DurationTooLong(min_duration_secs));
        }
        if min_duration_secs != 0 {
            cfg.min_duration_ms = i64::from(min_duration_secs) * 1000;
        }
        cfg.direction = match direction {
            "" | "both" => Direction::Both,
            "up" => Direction::Up,
            "down" => Direction::Down,
            other => return Err(ConfigError::UnknownDirection(other.to_owned())),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.season_ms <= 0 {
            return Err(ConfigError::Season(self.season_ms));
        }
        if self.slot_ms <= 0 || self.slot_ms > self.season_ms {
            return Err(ConfigError::Slot {
                slot_ms: self.slot_ms,
                season_ms: self.season_ms,
            });
        }
        if self.season_ms % self.slot_ms != 0 {
            return Err(ConfigError::SlotNotDivisor {
                slot_ms: self.slot_ms,
                season_ms: self.season_ms,
            });
        }
        let slots = self.season_ms / self.slot_ms;
        if slots > MAX_SLOTS {
            return Err(ConfigError::TooManySlots { slots });
        }
        if !(self.sensitivity.is_finite() && self.sensitivity > 0.0) {
            return Err(ConfigError::Sensitivity(self.sensitivity));
        }
        if self.min_duration_ms < 0 {
            return Err(ConfigError::MinDuration(self.min_duration_ms));
        }
        if self.min_history_points_per_slot == 0 {
            return Err(ConfigError::MinHistory);
        }
        if !(self.hold_fraction > 0.0 && self.hold_fraction <= 1.0) {
            return Err(ConfigError::HoldFraction(self.hold_fraction));
        }
        if self.max_gap_intervals == 0 {
            return Err(ConfigError::MaxGap);
        }
        if !(self.mad_floor_relative.is_finite() && self.mad_floor_relative >= 0.0) {
            return Err(ConfigError::FloorRelative(self.mad_floor_relative));
        }
        if !(self.mad_floor_absolute.is_finite() && self.mad_floor_absolute > 0.0) {
            return Err(ConfigError::FloorAbsolute(self.mad_floor_absolute));
        }
        Ok(())
    }

    /// Number of slots in one season; meaningful once [`Self::validate`] passed.
    pub(crate) fn slot_count(&self) -> usize {
        usize::try_from(self.season_ms / self.slot_ms).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_slot_fits_twice_in_min_duration() {
        let cfg = DetectorConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert!(cfg.slot_ms <= 2 * cfg.min_duration_ms);
        assert_eq!(cfg.slot_count(), 144);
    }

    #[test]
    fn each_bad_field_is_named_in_the_message() {
        let base = DetectorConfig::default();
        let cases: Vec<(DetectorConfig, &str)> = vec![
            (
                DetectorConfig {
                    season_ms: 0,
                    ..base.clone()
                },
                "season_ms",
            ),
            (
                DetectorConfig {
                    slot_ms: 0,
                    ..base.clone()
                },
                "slot_ms",
            ),
            (
                DetectorConfig {
                    slot_ms: 7 * MINUTE_MS,
                    ..base.clone()
                },
                "divide",
            ),
            (
                DetectorConfig {
                    slot_ms: 1,
                    ..base.clone()
                },
                "slots",
            ),
            (
                DetectorConfig {
                    sensitivity: f64::NAN,
                    ..base.clone()
                },
                "sensitivity",
            ),
            (
                DetectorConfig {
                    sensitivity: -1.0,
                    ..base.clone()
                },
                "sensitivity",
            ),
            (
                DetectorConfig {
                    min_duration_ms: -1,
                    ..base.clone()
                },
                "min_duration_ms",
            ),
            (
                DetectorConfig {
                    min_history_points_per_slot: 0,
                    ..base.clone()
                },
                "min_history",
            ),
            (
                DetectorConfig {
                    max_gap_intervals: 0,
                    ..base.clone()
                },
                "max_gap_intervals",
            ),
            (
                DetectorConfig {
                    hold_fraction: 0.0,
                    ..base.clone()
                },
                "hold_fraction",
            ),
            (
                DetectorConfig {
                    hold_fraction: f64::NAN,
                    ..base.clone()
                },
                "hold_fraction",
            ),
            (
                DetectorConfig {
                    hold_fraction: 1.5,
                    ..base.clone()
                },
                "hold_fraction",
            ),
            (
                DetectorConfig {
                    mad_floor_relative: f64::INFINITY,
                    ..base.clone()
                },
                "relative",
            ),
            (
                DetectorConfig {
                    mad_floor_absolute: 0.0,
                    ..base.clone()
                },
                "absolute",
            ),
        ];
        for (cfg, word) in cases {
            let err = cfg
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(word),
                "{cfg:?} gave {err:?}, expected it to mention {word}"
            );
        }
    }

    #[test]
    fn direction_admits_its_own_side_and_both_admits_either() {
        assert!(Direction::Both.admits(Direction::Up));
        assert!(Direction::Both.admits(Direction::Down));
        assert!(Direction::Up.admits(Direction::Up));
        assert!(!Direction::Up.admits(Direction::Down));
        assert!(!Direction::Down.admits(Direction::Up));
    }
}
