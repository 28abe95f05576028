//! The baseline: what a metric usually does at this time of day, learned from history as a
//! median and MAD per slot of the season. Medians, not means, so that last Tuesday's incident
//! in the history does not become today's normal.

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, DetectorConfig};
use crate::stats::median_mad_in_place;
use crate::{Point, finite_sorted};

/// Median and scaled MAD of the history points behind one slot (or the whole history).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlotStats {
    /// Median of the finite values.
    pub median: f64,
    /// 1.4826 × median absolute deviation: estimates the standard deviation of normal noise.
    /// Zero for a constant series; the floor is applied when scoring, not here.
    pub mad: f64,
    /// How many finite history points these come from.
    pub points: usize,
}

/// Where a point's expected value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The history points in this slot of the season (its index).
    Slot(usize),
    /// The slot had too little history: the whole history's median and MAD.
    Global,
}

/// What the baseline expects at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Median of the history behind it.
    pub median: f64,
    /// Scaled MAD after the floor: what a deviation is divided by to give a robust z.
    pub mad: f64,
    /// Finite history points behind `median` and `mad`.
    pub points: usize,
    /// A slot of its own, or the whole history.
    pub source: Source,
}

/// A learned baseline: one [`SlotStats`] per slot that had enough history, the whole
/// history's as a fallback, and the floors on the MAD. Built by [`baseline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    season_ms: i64,
    slot_ms: i64,
    slots: Vec<Option<SlotStats>>,
    global: Option<SlotStats>,
    sample_interval_ms: Option<i64>,
    mad_floor_relative: f64,
    mad_floor_absolute: f64,
}

/// Learns the baseline from `history` (any order; NaN and infinite values are ignored).
///
/// Each finite point goes to slot `(t_ms mod season_ms) / slot_ms`. A slot with at least
/// `min_history_points_per_slot` points gets the median and scaled MAD of its own values;
/// other slots use the whole history's. The baseline keeps the season, slot width and MAD
/// floors of `cfg`; [`crate::detect`] reads the rest of its settings from the `cfg` it is given.
pub fn baseline(history: &[Point], cfg: &DetectorConfig) -> Result<Baseline, ConfigError> {
    cfg.validate()?;
    let points = finite_sorted(history);
    let mut per_slot: Vec<Vec<f64>> = vec![Vec::new(); cfg.slot_count()];
    let mut all: Vec<f64> = Vec::with_capacity(points.len());
    for p in &points {
        if let Some(values) = per_slot.get_mut(slot_index(p.t_ms, cfg.season_ms, cfg.slot_ms)) {
            values.push(p.value);
        }
        all.push(p.value);
    }
    let slots = per_slot
        .into_iter()
        .map(|mut values| {
            if values.len() < cfg.min_history_points_per_slot {
                return None;
            }
            let points = values.len();
            median_mad_in_place(&mut values).map(|(median, mad)| SlotStats {
                median,
                mad,
                points,
            })
        })
        .collect();
    let total = all.len();
    let global = median_mad_in_place(&mut all).map(|(median, mad)| SlotStats {
        median,
        mad,
        points: total,
    });
    Ok(Baseline {
        season_ms: cfg.season_ms,
        slot_ms: cfg.slot_ms,
        slots,
        global,
        sample_interval_ms: sample_interval_ms(&points),
        mad_floor_relative: cfg.mad_floor_relative,
        mad_floor_absolute: cfg.mad_floor_absolute,
    })
}

impl Baseline {
    /// True when the history held no finite point: nothing can be judged against it.
    pub fn is_empty(&self) -> bool {
        self.global.is_none()
    }

    /// Number of slots in the season.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Index of the slot that holds instant `t_ms` (negative times wrap like positive ones).
    pub fn slot_of(&self, t_ms: i64) -> usize {
        slot_index(t_ms, self.season_ms, self.slot_ms)
    }

    /// The slot's own statistics, or `None` when it had too little history (or no such slot).
    pub fn slot(&self, index: usize) -> Option<&SlotStats> {
        self.slots.get(index).and_then(Option::as_ref)
    }

    /// Median and MAD of the whole history; `None` when it was empty.
    pub fn global(&self) -> Option<&SlotStats> {
        self.global.as_ref()
    }

    /// Typical spacing of the history's samples (median of the positive gaps).
    pub fn sample_interval_ms(&self) -> Option<i64> {
        self.sample_interval_ms
    }

    /// What the baseline expects at `t_ms`, with the MAD floor applied:
    /// `max(mad, mad_floor_relative × |median|, mad_floor_absolute)`.
    /// `None` only when the history was empty.
    pub fn expected_at(&self, t_ms: i64) -> Option<Expected> {
        let index = self.slot_of(t_ms);
        let (stats, source) = match self.slot(index) {
            Some(stats) => (stats, Source::Slot(index)),
            None => (self.global.as_ref()?, Source::Global),
        };
        let floor = (self.mad_floor_relative * stats.median.abs()).max(self.mad_floor_absolute);
        Some(Expected {
            median: stats.median,
            mad: stats.mad.max(floor),
            points: stats.points,
            source,
        })
    }

    /// Robust z of `point`: `(value − median) / floored MAD`. `None` for a non-finite value or
    /// an empty baseline.
    pub fn score(&self, point: Point) -> Option<f64> {
        if !point.value.is_finite() {
            return None;
        }
        let expected = self.expected_at(point.t_ms)?;
        Some((point.value - expected.median) / expected.mad)
    }
}

fn slot_index(t_ms: i64, season_ms: i64, slot_ms: i64) -> usize {
    if season_ms <= 0 || slot_ms <= 0 {
        return 0;
    }
    usize::try_from(t_ms.rem_euclid(season_ms) / slot_ms).unwrap_or(0)
}

/// Median of the positive gaps between consecutive (sorted) timestamps.
pub(crate) fn sample_interval_ms(sorted: &[Point]) -> Option<i64> {
    let mut gaps: Vec<i64> = sorted
        .windows(2)
        .map(|w| w[1].t_ms.saturating_sub(w[0].t_ms))
        .filter(|gap| *gap > 0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    fn p(t_ms: i64, value: f64) -> Point {
        Point { t_ms, value }
    }

    fn hourly() -> DetectorConfig {
        DetectorConfig {
            slot_ms: HOUR,
            min_history_points_per_slot: 3,
            ..DetectorConfig::default()
        }
    }

    #[test]
    fn points_go_to_their_time_of_day_slot_across_days_and_before_the_epoch() {
        let b = baseline(&[], &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(b.slot_count(), 24);
        assert_eq!(b.slot_of(0), 0);
        assert_eq!(b.slot_of(HOUR - 1), 0);
        assert_eq!(b.slot_of(HOUR), 1);
        assert_eq!(b.slot_of(3 * DAY + 5 * HOUR + 59 * MIN), 5);
        // 23:30 the day before the epoch.
        assert_eq!(b.slot_of(-30 * MIN), 23);
    }

    #[test]
    fn each_slot_learns_its_own_median_and_mad_from_every_day() {
        // Slot 2 holds 10, 11, 12 on three days; slot 14 holds 100, 110, 120.
        let mut history = Vec::new();
        for (day, (low, high)) in [(10.0, 100.0), (11.0, 110.0), (12.0, 120.0)]
            .into_iter()
            .enumerate()
        {
            let day = i64::try_from(day).unwrap_or(0);
            history.push(p(day * DAY + 2 * HOUR + 5 * MIN, low));
            history.push(p(day * DAY + 14 * HOUR + 50 * MIN, high));
        }
        let b = baseline(&history, &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        let low = b.slot(2).copied();
        let high = b.slot(14).copied();
        assert_eq!(low.map(|s| (s.median, s.points)), Some((11.0, 3)));
        assert_eq!(high.map(|s| s.median), Some(110.0));
        assert!((high.map(|s| s.mad).unwrap_or_default() - 10.0 * 1.4826).abs() < 1e-9);
        let at = b.expected_at(9 * DAY + 2 * HOUR + 30 * MIN);
        assert_eq!(
            at.map(|e| (e.median, e.source)),
            Some((11.0, Source::Slot(2)))
        );
    }

    #[test]
    fn a_slot_with_too_little_history_falls_back_to_the_whole_history() {
        let history = [
            p(HOUR, 1.0),
            p(DAY + HOUR, 2.0),
            p(2 * DAY + HOUR, 3.0),
            p(5 * HOUR, 50.0),
        ];
        let b = baseline(&history, &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(b.slot(1).is_some());
        assert!(b.slot(5).is_none(), "one point is fewer than three");
        let at = b.expected_at(5 * HOUR).unwrap_or_else(|| unreachable!());
        assert_eq!(at.source, Source::Global);
        assert_eq!(at.median, 2.5);
        assert_eq!(at.points, 4);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let history = [
            p(HOUR, 1.0),
            p(HOUR + MIN, f64::NAN),
            p(HOUR + 2 * MIN, f64::INFINITY),
            p(HOUR + 3 * MIN, 3.0),
            p(HOUR + 4 * MIN, f64::NEG_INFINITY),
            p(HOUR + 5 * MIN, 2.0),
        ];
        let b = baseline(&history, &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(b.slot(1).map(|s| (s.median, s.points)), Some((2.0, 3)));
        assert_eq!(b.score(p(HOUR, f64::NAN)), None);
    }

    #[test]
    fn empty_history_gives_an_empty_baseline_that_expects_nothing() {
        let b = baseline(&[], &DetectorConfig::default()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(b.is_empty());
        assert_eq!(b.expected_at(0), None);
        assert_eq!(b.score(p(0, 1.0)), None);
        assert_eq!(b.sample_interval_ms(), None);
    }

    #[test]
    fn flat_history_uses_the_floor_relative_to_the_level_and_an_absolute_one_at_zero() {
        let cfg = hourly();
        let flat: Vec<Point> = (0..300).map(|i| p(i * MIN, 200.0)).collect();
        let b = baseline(&flat, &cfg).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(b.slot(0).map(|s| s.mad), Some(0.0));
        assert_eq!(b.expected_at(0).map(|e| e.mad), Some(2.0), "1 % of 200");
        let zeros: Vec<Point> = (0..300).map(|i| p(i * MIN, 0.0)).collect();
        let b = baseline(&zeros, &cfg).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            b.expected_at(0).map(|e| e.mad),
            Some(cfg.mad_floor_absolute)
        );
    }

    #[test]
    fn unsorted_and_duplicated_history_gives_the_same_baseline_as_sorted() {
        let sorted: Vec<Point> = (0..500).map(|i| p(i * MIN, (i * 37 % 11) as f64)).collect();
        let mut shuffled = sorted.clone();
        shuffled.reverse();
        shuffled.swap(3, 400);
        let a = baseline(&sorted, &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        let b = baseline(&shuffled, &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a, b);
        assert_eq!(a.sample_interval_ms(), Some(MIN));
        let mut doubled = sorted.clone();
        doubled.extend(sorted.iter().copied());
        let c = baseline(&doubled, &hourly()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.sample_interval_ms(), Some(MIN), "duplicates are not gaps");
    }

    #[test]
    fn an_invalid_config_is_an_error_not_a_panic() {
        let cfg = DetectorConfig {
            slot_ms: 0,
            ..DetectorConfig::default()
        };
        assert!(baseline(&[p(0, 1.0)], &cfg).is_err());
    }
}
