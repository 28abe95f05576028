//! Episodes: recent points beyond the baseline's band, joined while they stay on one side
//! and keep coming, kept only if they last. One anomalous sample is noise; five minutes of
//! them is something an investigation should look at.

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, sample_interval_ms};
use crate::config::{ConfigError, DetectorConfig, Direction};
use crate::{Point, finite_sorted};

/// One anomalous episode and the evidence for it. The series it belongs to is named by the
/// caller (see [`key`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Time of the first sample beyond `sensitivity`.
    pub start_ms: i64,
    /// Time of the last sample still beyond `hold_fraction × sensitivity`.
    pub end_ms: i64,
    /// Time of the sample farthest from the baseline (the earliest, on a tie).
    pub peak_ms: i64,
    /// Its value.
    pub peak_value: f64,
    /// The baseline median at the peak: what the metric usually is at that time of day.
    pub expected: f64,
    /// The scaled MAD (after the floor) at the peak: the usual spread there.
    pub mad: f64,
    /// Robust z at the peak, `(peak_value − expected) / mad`: positive up, negative down.
    pub score: f64,
    /// `Up` or `Down`, never `Both`.
    pub direction: Direction,
    /// Finite history points behind `expected` and `mad` (few means a weak baseline).
    pub history_points: usize,
    /// The episode may have begun before the first sample of `recent`: the points leading to
    /// it reach back to the window's edge, so `start_ms` may be where the window cut it rather
    /// than where it began, and may change as the window slides.
    pub truncated: bool,
    /// A sample after the last one of `recent` could still extend it: it may be going on.
    pub ongoing: bool,
}

impl Anomaly {
    /// How long the episode covers: from its first sample to one sample interval after its
    /// last (each sample stands for one interval), given the interval used.
    pub fn duration_ms(&self, sample_interval_ms: i64) -> i64 {
        self.end_ms
            .saturating_sub(self.start_ms)
            .saturating_add(sample_interval_ms.max(0))
    }
}

/// Finds the anomalous episodes in `recent` (any order; NaN and infinite values skipped).
///
/// A point opens an episode when its robust z against `baseline` exceeds `sensitivity` on a
/// side that `direction` admits (points on the other side are then ignored altogether). The
/// episode goes on through points on the same side beyond `hold_fraction × sensitivity`, each
/// at most `max_gap_intervals` sample intervals after the previous one; a point beyond
/// `sensitivity` on the other side ends it and opens its own. An episode is kept when
/// [`Anomaly::duration_ms`] reaches `min_duration_ms`. The sample interval is the median gap
/// of `recent`, or of the history when `recent` has fewer than two distinct times. Episodes
/// come in time order.
///
/// `cfg` supplies `sensitivity`, `hold_fraction`, `min_duration_ms`, `direction` and
/// `max_gap_intervals`; the season, slots and MAD floors are the ones `baseline` was built
/// with. An empty baseline finds nothing.
pub fn detect(
    baseline: &Baseline,
    recent: &[Point],
    cfg: &DetectorConfig,
) -> Result<Vec<Anomaly>, ConfigError> {
    cfg.validate()?;
    let points = finite_sorted(recent);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(Vec::new());
    };
    let (first_t, last_t) = (first.t_ms, last.t_ms);
    let interval = sample_interval_ms(&points)
        .or(baseline.sample_interval_ms())
        .unwrap_or(0);
    let max_gap = interval.saturating_mul(i64::from(cfg.max_gap_intervals));
    let hold = cfg.hold_fraction * cfg.sensitivity;
    let edges = Edges {
        first_t,
        last_t,
        max_gap,
        interval,
        min_duration: cfg.min_duration_ms,
    };

    let mut found = Vec::new();
    let mut run: Option<Run> = None;
    for point in points {
        let Some(expected) = baseline.expected_at(point.t_ms) else {
            continue;
        };
        let z = (point.value - expected.median) / expected.mad;
        if z.is_nan() {
            continue;
        }
        let side = if z >= 0.0 {
            Direction::Up
        } else {
            Direction::Down
        };
        if !cfg.direction.admits(side) || z.abs() <= hold {
            continue;
        }
        let live = run
            .as_ref()
            .filter(|r| point.t_ms.saturating_sub(r.last_ms) <= max_gap);
        let same_side = live.is_some_and(|r| r.side == side);
        if live.is_some() && !same_side && z.abs() <= cfg.sensitivity {
            // Only a point beyond `sensitivity` ends a run on the other side.
            continue;
        }
        if !same_side && let Some(done) = run.take() {
            edges.keep(done, &mut found);
        }
        let current = run.get_or_insert(Run {
            side,
            start_ms: point.t_ms,
            last_ms: point.t_ms,
            episode: None,
        });
        current.last_ms = point.t_ms;
        match current.episode.as_mut() {
            Some(episode) => {
                episode.end_ms = point.t_ms;
                if z.abs() > episode.score.abs() {
                    episode.peak_ms = point.t_ms;
                    episode.peak_value = point.value;
                    episode.expected = expected.median;
                    episode.mad = expected.mad;
                    episode.score = z;
                    episode.history_points = expected.points;
                }
            }
            None if z.abs() > cfg.sensitivity => {
                current.episode = Some(Anomaly {
                    start_ms: point.t_ms,
                    end_ms: point.t_ms,
                    peak_ms: point.t_ms,
                    peak_value: point.value,
                    expected: expected.median,
                    mad: expected.mad,
                    score: z,
                    direction: side,
                    history_points: expected.points,
                    truncated: false,
                    ongoing: false,
                });
            }
            None => {}
        }
    }
    if let Some(done) = run.take() {
        edges.keep(done, &mut found);
    }
    Ok(found)
}

/// Consecutive points on one side beyond the hold level, each within the gap of the one
/// before. Its episode starts at the first of them beyond `sensitivity`, if any; the run's own
/// start tells whether the episode may have begun before the window (see `Edges::keep`).
struct Run {
    side: Direction,
    start_ms: i64,
    last_ms: i64,
    episode: Option<Anomaly>,
}

/// The window's ends and the rules that decide whether a closed episode is kept.
struct Edges {
    first_t: i64,
    last_t: i64,
    max_gap: i64,
    interval: i64,
    min_duration: i64,
}

impl Edges {
    fn keep(&self, run: Run, found: &mut Vec<Anomaly>) {
        let Some(mut episode) = run.episode else {
            return;
        };
        if episode.duration_ms(self.interval) < self.min_duration {
            return;
        }
        // The run leading to the episode could have reached back before the window when it
        // starts less than `max_gap` after the window's first sample: in a longer window an
        // earlier point of that run may have opened the episode already. Likewise a sample
        // after the window could still extend it.
        let before = run.start_ms.saturating_sub(self.first_t);
        episode.truncated = before == 0 || before < self.max_gap;
        let after = self.last_t.saturating_sub(episode.end_ms);
        episode.ongoing = after == 0 || after < self.max_gap;
        found.push(episode);
    }
}

/// Key for firing `a` once: `anomaly:v1:{up|down}:{start_ms}:{series}` (the series last, so
/// it may hold any character).
///
/// `start_ms` is the episode's first sample beyond `sensitivity`, which later samples do not
/// move: re-running [`detect`] every minute over a sliding window gives the same episode the
/// same key. It is not rounded to a bucket on purpose: rounding would not remove jitter (a
/// start near a bucket edge still flips) and would swallow a second, distinct episode that
/// begins in the same bucket after the first has ended.
///
/// Firing rule for a caller that re-evaluates a series every minute and stores keys under a
/// uniqueness constraint:
/// 1. Build the baseline from history before the window and rebuild it at most once a slot:
///    a rebuilt baseline can move a slow ramp's first sample beyond `sensitivity` by a sample
///    or two, which would give it a second key.
/// 2. Fire every anomaly that is not [`Anomaly::truncated`] and whose key is new.
/// 3. A truncated anomaly's start is where the window cut it and moves with the window.
///    Remember, per series and side, the `end_ms` of the last anomaly fired or continued. A
///    truncated anomaly continues that one when that end is no earlier than `max_gap` before
///    the window's first sample: update the end, fire nothing. Otherwise it began while no
///    evaluation saw it whole (the first run after a restart, or a lead-in at the hold level
///    longer than the window): fire it once under its key and remember its end.
///
/// With a window longer than `min_duration_ms`, `max_gap` and the evaluation period together
/// (hours, not minutes), rule 3 is rare.
pub fn key(series: &str, a: &Anomaly) -> String {
    format!(
        "anomaly:v1:{}:{}:{}",
        a.direction.as_str(),
        a.start_ms,
        series
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::baseline;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    fn p(t_ms: i64, value: f64) -> Point {
        Point { t_ms, value }
    }

    /// Two days of one sample a minute alternating 99 and 101: median 100, MAD 1.4826.
    fn steady_history() -> Vec<Point> {
        (0..2 * 24 * 60)
            .map(|i| p(i * MIN, if i % 2 == 0 { 99.0 } else { 101.0 }))
            .collect()
    }

    /// One sample a minute on day 2 from `from_min`, `values` in order.
    fn recent(from_min: i64, values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .zip(from_min..)
            .map(|(v, i)| p(2 * DAY + i * MIN, *v))
            .collect()
    }

    fn run(history: &[Point], recent: &[Point], cfg: &DetectorConfig) -> Vec<Anomaly> {
        let b = baseline(history, cfg).unwrap_or_else(|e| unreachable!("{e}"));
        detect(&b, recent, cfg).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn empty_recent_or_empty_history_finds_nothing() {
        let cfg = DetectorConfig::default();
        assert!(run(&steady_history(), &[], &cfg).is_empty());
        assert!(run(&[], &recent(0, &[1e9; 30]), &cfg).is_empty());
        assert!(run(&steady_history(), &recent(0, &[f64::NAN; 30]), &cfg).is_empty());
    }

    #[test]
    fn a_run_of_high_samples_is_one_episode_with_its_peak_and_evidence() {
        let mut values = vec![100.0; 10];
        values.extend([120.0, 130.0, 150.0, 125.0, 121.0, 119.0]);
        values.extend([100.0; 10]);
        let found = run(
            &steady_history(),
            &recent(600, &values),
            &DetectorConfig::default(),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!(a.direction, Direction::Up);
        assert_eq!(a.start_ms, 2 * DAY + 610 * MIN);
        assert_eq!(a.end_ms, 2 * DAY + 615 * MIN);
        assert_eq!((a.peak_ms, a.peak_value), (2 * DAY + 612 * MIN, 150.0));
        assert_eq!(a.expected, 100.0);
        // Deviations of 99 and 101 from 100 are all 1: the scaled MAD is above the 1 % floor.
        assert!((a.mad - 1.4826).abs() < 1e-12, "{}", a.mad);
        assert!((a.score - 50.0 / 1.4826).abs() < 1e-9);
        assert!(a.history_points >= 12);
        assert!(!a.truncated && !a.ongoing);
    }

    #[test]
    fn shorter_than_min_duration_is_dropped_and_exactly_min_duration_is_kept() {
        let cfg = DetectorConfig::default(); // 5 min at one sample a minute: 5 samples.
        let four = [vec![100.0; 5], vec![150.0; 4], vec![100.0; 5]].concat();
        assert!(run(&steady_history(), &recent(0, &four), &cfg).is_empty());
        let five = [vec![100.0; 5], vec![150.0; 5], vec![100.0; 5]].concat();
        let found = run(&steady_history(), &recent(0, &five), &cfg);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].duration_ms(MIN), 5 * MIN);
    }

    #[test]
    fn single_outliers_never_fire_however_large() {
        let mut values = vec![100.0; 60];
        for i in (0..60).step_by(10) {
            values[i] = 1e6;
        }
        assert!(
            run(
                &steady_history(),
                &recent(0, &values),
                &DetectorConfig::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn a_short_dip_inside_the_band_does_not_split_an_episode_but_a_long_one_does() {
        let cfg = DetectorConfig::default(); // joins across up to 3 intervals.
        let dip = [vec![150.0; 5], vec![100.0; 2], vec![150.0; 5]].concat();
        assert_eq!(run(&steady_history(), &recent(0, &dip), &cfg).len(), 1);
        let gap = [vec![150.0; 5], vec![100.0; 3], vec![150.0; 5]].concat();
        assert_eq!(run(&steady_history(), &recent(0, &gap), &cfg).len(), 2);
    }

    #[test]
    fn a_shift_hovering_around_the_threshold_is_one_episode_thanks_to_the_hold_level() {
        // z = (v - 100) / 1.4826: 110 -> 6.7 (opens), 106 -> 4.0 (holds, below 6).
        let hover: Vec<f64> = (0..40)
            .map(|i| if i % 4 == 0 { 110.0 } else { 106.0 })
            .collect();
        let values = [vec![100.0; 5], hover, vec![100.0; 5]].concat();
        let window = recent(0, &values);
        let held = run(&steady_history(), &window, &DetectorConfig::default());
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(
            held[0].duration_ms(MIN),
            40 * MIN,
            "from the first 110 to the last 106"
        );
        let no_hold = DetectorConfig {
            hold_fraction: 1.0,
            ..DetectorConfig::default()
        };
        let split = run(&steady_history(), &window, &no_hold);
        assert!(
            split.is_empty(),
            "110s every 4 min are too far apart alone: {split:?}"
        );
        // Points between the hold level and the threshold never open an episode themselves.
        let below = [vec![100.0; 5], vec![106.0; 30], vec![100.0; 5]].concat();
        assert!(
            run(
                &steady_history(),
                &recent(0, &below),
                &DetectorConfig::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn direction_selects_the_side_and_a_flip_of_side_ends_an_episode() {
        let values = [
            vec![100.0; 5],
            vec![150.0; 6],
            vec![50.0; 6],
            vec![100.0; 5],
        ]
        .concat();
        let window = recent(0, &values);
        let both = run(&steady_history(), &window, &DetectorConfig::default());
        let sides: Vec<Direction> = both.iter().map(|a| a.direction).collect();
        assert_eq!(sides, [Direction::Up, Direction::Down]);
        assert!(both[1].score < 0.0);
        let up = DetectorConfig {
            direction: Direction::Up,
            ..DetectorConfig::default()
        };
        let found = run(&steady_history(), &window, &up);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].direction, Direction::Up);
        let down = DetectorConfig {
            direction: Direction::Down,
            ..DetectorConfig::default()
        };
        let found = run(&steady_history(), &window, &down);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].direction, Direction::Down);
    }

    #[test]
    fn flat_series_does_not_fire_on_tiny_changes_but_does_on_real_ones() {
        let flat: Vec<Point> = (0..2 * 24 * 60).map(|i| p(i * MIN, 500.0)).collect();
        let cfg = DetectorConfig::default();
        // 500.5 is 0.1 %: within 6 × the 1 % floor (5.0) of the level.
        assert!(run(&flat, &recent(0, &[500.5; 30]), &cfg).is_empty());
        assert!(
            run(&flat, &recent(0, &[520.0; 30]), &cfg).is_empty(),
            "4 % < 6 %"
        );
        assert_eq!(
            run(&flat, &recent(0, &[540.0; 30]), &cfg).len(),
            1,
            "8 % > 6 %"
        );
        let zeros: Vec<Point> = (0..2 * 24 * 60).map(|i| p(i * MIN, 0.0)).collect();
        assert!(run(&zeros, &recent(0, &[1e-9; 30]), &cfg).is_empty());
        assert_eq!(run(&zeros, &recent(0, &[1.0; 30]), &cfg).len(), 1);
    }

    #[test]
    fn unsorted_and_duplicated_recent_gives_the_same_episodes_as_sorted() {
        let values = [vec![100.0; 5], vec![150.0; 8], vec![100.0; 5]].concat();
        let sorted = recent(0, &values);
        let mut shuffled = sorted.clone();
        shuffled.reverse();
        shuffled.swap(0, 9);
        let mut doubled = sorted.clone();
        doubled.extend(sorted.iter().copied());
        let cfg = DetectorConfig::default();
        let a = run(&steady_history(), &sorted, &cfg);
        assert_eq!(a.len(), 1);
        assert_eq!(a, run(&steady_history(), &shuffled, &cfg));
        assert_eq!(a, run(&steady_history(), &doubled, &cfg));
    }

    #[test]
    fn episodes_at_the_window_edges_are_marked_truncated_and_ongoing() {
        let values = [vec![150.0; 8], vec![100.0; 10], vec![150.0; 8]].concat();
        let found = run(
            &steady_history(),
            &recent(0, &values),
            &DetectorConfig::default(),
        );
        assert_eq!(found.len(), 2);
        assert!(found[0].truncated && !found[0].ongoing);
        assert!(!found[1].truncated && found[1].ongoing);
    }

    #[test]
    fn a_window_that_cuts_into_an_episode_held_open_marks_the_rest_truncated() {
        // 110 opens (z 6.7), 106 holds (z 4.0): 110 at 0, 106 for 20 min, 110 again at 21.
        let values = [
            vec![110.0],
            vec![106.0; 20],
            vec![110.0; 6],
            vec![100.0; 10],
        ]
        .concat();
        let all = recent(0, &values);
        let whole = run(&steady_history(), &all, &DetectorConfig::default());
        assert_eq!(whole.len(), 1);
        // Cut after the first 110: what is left starts with held points, then a 110 that
        // would look like a fresh start 17 min into the window.
        let cut = run(&steady_history(), &all[4..], &DetectorConfig::default());
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].start_ms, 2 * DAY + 21 * MIN);
        assert!(
            cut[0].truncated,
            "the run before it reaches the window's edge"
        );
    }

    #[test]
    fn key_is_stable_while_the_window_slides_and_differs_by_side_and_series() {
        let cfg = DetectorConfig::default();
        let history = steady_history();
        let b = baseline(&history, &cfg).unwrap_or_else(|e| unreachable!("{e}"));
        let values = [vec![100.0; 60], vec![150.0; 40], vec![100.0; 80]].concat();
        let all = recent(0, &values);
        let mut keys = std::collections::BTreeSet::new();
        // A 45-minute window moved one minute at a time, as an agent re-evaluating would.
        for end in 45..=all.len() {
            let window = &all[end - 45..end];
            for a in detect(&b, window, &cfg).unwrap_or_default() {
                if !a.truncated {
                    keys.insert(key("checkout:p99", &a));
                }
            }
        }
        let expected = format!("anomaly:v1:up:{}:checkout:p99", 2 * DAY + 60 * MIN);
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), [expected]);
        let mut down = run(&history, &all, &cfg).remove(0);
        down.direction = Direction::Down;
        assert_ne!(key("s", &down), key("t", &down));
        assert!(key("s", &down).starts_with("anomaly:v1:down:"));
    }

    #[test]
    fn an_invalid_config_is_an_error_not_a_panic() {
        let b = baseline(&steady_history(), &DetectorConfig::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let cfg = DetectorConfig {
            sensitivity: 0.0,
            ..DetectorConfig::default()
        };
        assert!(detect(&b, &recent(0, &[1.0]), &cfg).is_err());
    }

    #[test]
    fn extreme_timestamps_and_values_do_not_panic() {
        let cfg = DetectorConfig::default();
        let history = [
            p(i64::MIN, 1.0),
            p(i64::MAX, -1.0),
            p(0, f64::MAX),
            p(1, -f64::MAX),
        ];
        let b = baseline(&history, &cfg).unwrap_or_else(|e| unreachable!("{e}"));
        let recent = [p(i64::MIN, f64::MAX), p(i64::MAX, -f64::MAX), p(0, 0.0)];
        let found = detect(&b, &recent, &cfg).unwrap_or_else(|e| unreachable!("{e}"));
        for a in found {
            assert!(a.direction != Direction::Both);
        }
    }
}
