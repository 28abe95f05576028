//! The point of a seasonal baseline: a peak that comes every day at the same time is normal,
//! the same peak at another time is not, and a day without the usual peak is noticed too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod synthetic;

use synthetic::{DAY, HOUR, MIN, Rng};
use warden_anomaly::{Anomaly, DetectorConfig, Direction, Point, baseline, detect};

/// A daily peak from `from` to `to` (times of day), sharp-edged or smooth.
#[derive(Clone, Copy)]
struct Peak {
    from: i64,
    to: i64,
    smooth: bool,
}

impl Peak {
    fn lift(self, time_of_day: i64) -> f64 {
        if !(self.from..self.to).contains(&time_of_day) {
            return 0.0;
        }
        if !self.smooth {
            return 100.0;
        }
        // A half-sine bump: rises from 0 to 100 and back.
        let share = (time_of_day - self.from) as f64 / (self.to - self.from) as f64;
        100.0 * (share * std::f64::consts::PI).sin()
    }
}

/// Level 100 with noise σ = 2, one sample a minute, and `peak(day)` on each day.
fn series(rng: &mut Rng, days: std::ops::Range<i64>, peak: impl Fn(i64) -> Peak) -> Vec<Point> {
    let mut points = Vec::new();
    for day in days {
        let p = peak(day);
        for minute in 0..24 * 60 {
            let tod = minute * MIN;
            let value = 100.0 + p.lift(tod) + 2.0 * rng.normal();
            points.push(Point {
                t_ms: day * DAY + tod,
                value,
            });
        }
    }
    points
}

fn overlaps(a: &Anomaly, from: i64, to: i64) -> bool {
    a.start_ms < to && from <= a.end_ms
}

/// 09:17 to 10:43: edges that fall inside 10-minute slots, not on their boundaries.
fn usual(smooth: bool) -> Peak {
    Peak {
        from: 9 * HOUR + 17 * MIN,
        to: 10 * HOUR + 43 * MIN,
        smooth,
    }
}

fn night(smooth: bool) -> Peak {
    Peak {
        from: 2 * HOUR + 17 * MIN,
        to: 3 * HOUR + 43 * MIN,
        smooth,
    }
}

#[test]
fn the_daily_peak_at_its_usual_time_does_not_fire() {
    let cfg = DetectorConfig::default();
    for smooth in [false, true] {
        for seed in [1, 2, 3] {
            let mut rng = Rng::new(seed);
            let history = series(&mut rng, 0..7, |_| usual(smooth));
            let today = series(&mut rng, 7..8, |_| usual(smooth));
            let base = baseline(&history, &cfg).unwrap();
            let found = detect(&base, &today, &cfg).unwrap();
            assert!(found.is_empty(), "smooth={smooth} seed {seed}: {found:?}");
        }
    }
}

#[test]
fn the_same_peak_at_an_unusual_time_fires_and_so_does_its_absence() {
    let cfg = DetectorConfig::default();
    for smooth in [false, true] {
        for seed in [1, 2, 3] {
            let mut rng = Rng::new(seed);
            let history = series(&mut rng, 0..7, |_| usual(smooth));
            let today = series(&mut rng, 7..8, |_| night(smooth));
            let base = baseline(&history, &cfg).unwrap();
            let found = detect(&base, &today, &cfg).unwrap();
            let (n, u) = (night(smooth), usual(smooth));
            let up: Vec<&Anomaly> = found
                .iter()
                .filter(|a| a.direction == Direction::Up)
                .collect();
            let down: Vec<&Anomaly> = found
                .iter()
                .filter(|a| a.direction == Direction::Down)
                .collect();
            assert_eq!(up.len(), 1, "smooth={smooth} seed {seed}: {found:?}");
            assert!(overlaps(up[0], 7 * DAY + n.from, 7 * DAY + n.to));
            assert!(
                (up[0].expected - 100.0).abs() < 2.0,
                "expected the quiet night level"
            );
            assert!(up[0].peak_value > 150.0);
            assert_eq!(down.len(), 1, "the missing usual peak: {found:?}");
            assert!(overlaps(down[0], 7 * DAY + u.from, 7 * DAY + u.to));
        }
    }
}

#[test]
fn without_seasonality_the_usual_peak_would_fire_every_day() {
    // One slot spanning the whole day is a plain robust z-score: the contrast that shows why
    // the baseline is per time of day.
    let flat = DetectorConfig {
        slot_ms: DAY,
        ..DetectorConfig::default()
    };
    let mut rng = Rng::new(1);
    let history = series(&mut rng, 0..7, |_| usual(false));
    let today = series(&mut rng, 7..8, |_| usual(false));
    let base = baseline(&history, &flat).unwrap();
    let found = detect(&base, &today, &flat).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(overlaps(
        &found[0],
        7 * DAY + usual(false).from,
        7 * DAY + usual(false).to
    ));
}

#[test]
fn hour_wide_slots_fire_every_day_where_the_peak_begins_inside_a_slot() {
    // Why the default slot is 10 minutes (at most twice `min_duration_ms`): the 09:00 slot
    // holds 17 quiet minutes and 43 busy ones on every day, so its median is busy and the quiet
    // 17 minutes look like a drop, every day. With 10-minute slots the 09:10 slot holds 7 quiet
    // minutes and 3 busy ones: its median is quiet, and the busy 3 minutes are shorter than
    // `min_duration_ms` (the test above shows that day passes quietly).
    let hourly = DetectorConfig {
        slot_ms: HOUR,
        ..DetectorConfig::default()
    };
    let mut rng = Rng::new(1);
    let history = series(&mut rng, 0..7, |_| usual(false));
    let today = series(&mut rng, 7..8, |_| usual(false));
    let base = baseline(&history, &hourly).unwrap();
    let found = detect(&base, &today, &hourly).unwrap();
    assert!(
        found.iter().any(|a| a.direction == Direction::Down
            && overlaps(a, 7 * DAY + 9 * HOUR, 7 * DAY + usual(false).from)),
        "{found:?}"
    );
}
