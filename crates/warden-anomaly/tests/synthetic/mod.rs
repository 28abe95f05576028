//! Synthetic metric series with known anomalies: a daily rhythm (and, on half the series, quieter
//! weekends in the history), autocorrelated noise with a heavier tail than Gaussian, single-point
//! outliers that must not fire, a past incident in the history that must not become normal, and
//! injected anomalies of four kinds in the last day, some of them barely above the threshold.
//! Seeded, so every run is the same.

#![allow(dead_code)]

use warden_anomaly::Point;

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

/// SplitMix64: small, fast and good enough for test data; no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Whole minutes in [lo, hi], as milliseconds.
    pub fn minutes(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        (lo + i64::try_from(self.next_u64() % span).unwrap_or(0)) * MIN
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// +6..20 σ for 10–60 min.
    Spike,
    /// ±6..15 σ for 2–6 h.
    LevelShift,
    /// Exactly zero for 15–90 min.
    DropToZero,
    /// Linear rise to 10..30 σ over 1–3 h, held 30 min, then back.
    SlowRamp,
}

pub const KINDS: [Kind; 4] = [
    Kind::Spike,
    Kind::LevelShift,
    Kind::DropToZero,
    Kind::SlowRamp,
];

#[derive(Debug, Clone, Copy)]
pub struct Injected {
    pub kind: Kind,
    pub start_ms: i64,
    /// Exclusive.
    pub end_ms: i64,
    /// Size in noise standard deviations (sign gives the side); 0 for a drop to zero.
    pub size: f64,
}

pub struct Series {
    pub history: Vec<Point>,
    pub recent: Vec<Point>,
    pub injected: Vec<Injected>,
    pub outliers_in_recent: usize,
}

/// The usual shape of one series: level, daily rhythm, noise.
struct Shape {
    level: f64,
    daily: f64,
    phase: f64,
    twice_daily: f64,
    phase2: f64,
    noise: f64,
    noise_follows_level: bool,
    /// AR(1) coefficient of the noise: real metrics drift, they do not jump independently.
    memory: f64,
    /// Saturday and Sunday are this much quieter (a share of the level).
    weekend_dip: f64,
}

impl Shape {
    fn random(rng: &mut Rng) -> Self {
        Self {
            level: 10f64.powf(rng.range(1.7, 3.7)), // 50 .. 5 000
            daily: rng.range(0.1, 0.45),
            phase: rng.range(0.0, std::f64::consts::TAU),
            twice_daily: rng.range(0.0, 0.1),
            phase2: rng.range(0.0, std::f64::consts::TAU),
            noise: rng.range(0.01, 0.05),
            noise_follows_level: rng.chance(0.5),
            memory: rng.range(0.0, 0.7),
            weekend_dip: if rng.chance(0.5) {
                rng.range(0.05, 0.15)
            } else {
                0.0
            },
        }
    }

    fn usual(&self, t_ms: i64) -> f64 {
        let day = (t_ms.rem_euclid(DAY)) as f64 / DAY as f64 * std::f64::consts::TAU;
        // The epoch was a Thursday: days 2 and 3 (mod 7) are the weekend.
        let weekend = matches!(t_ms.div_euclid(DAY).rem_euclid(7), 2 | 3);
        let dip = if weekend { self.weekend_dip } else { 0.0 };
        self.level
            * (1.0 - dip
                + self.daily * (day + self.phase).sin()
                + self.twice_daily * (2.0 * day + self.phase2).sin())
    }

    fn sigma(&self, t_ms: i64) -> f64 {
        if self.noise_follows_level {
            self.noise * self.usual(t_ms)
        } else {
            self.noise * self.level
        }
    }
}

/// One series: `days` days at one sample a minute, the last day being `recent`.
pub fn generate(rng: &mut Rng, days: i64) -> Series {
    let shape = Shape::random(rng);
    let recent_from = (days - 1) * DAY;
    let injected = place_anomalies(rng, recent_from);
    // A past incident on one day of the history (half the series): the baseline must not
    // learn it as normal.
    let past = rng.chance(0.5).then(|| {
        let start = rng.minutes(0, (days - 1) * 24 * 60 - 120);
        Injected {
            kind: Kind::Spike,
            start_ms: start,
            end_ms: start + rng.minutes(30, 90),
            size: rng.range(10.0, 20.0),
        }
    });
    let mut history = Vec::new();
    let mut recent = Vec::new();
    let mut outliers_in_recent = 0;
    let mut drift = 0.0;
    let innovation = (1.0 - shape.memory * shape.memory).sqrt();
    for i in 0..days * 24 * 60 {
        let t_ms = i * MIN;
        let sigma = shape.sigma(t_ms);
        // One draw in twenty comes from a three times wider normal: a heavier tail.
        let wide = if rng.chance(0.05) { 3.0 } else { 1.0 };
        drift = shape.memory * drift + innovation * wide * rng.normal();
        let mut value = shape.usual(t_ms) + sigma * drift;
        if let Some(a) = past
            .iter()
            .chain(&injected)
            .find(|a| (a.start_ms..a.end_ms).contains(&t_ms))
        {
            value = apply(a, t_ms, value, sigma);
        } else if rng.chance(1.0 / 500.0) {
            // A single-point outlier: one scrape gone wrong. Must never fire on its own.
            let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
            value = (value + side * rng.range(8.0, 40.0) * sigma).max(0.0);
            if t_ms >= recent_from {
                outliers_in_recent += 1;
            }
        }
        let point = Point { t_ms, value };
        if t_ms < recent_from {
            history.push(point);
        } else {
            recent.push(point);
        }
    }
    Series {
        history,
        recent,
        injected,
        outliers_in_recent,
    }
}

fn apply(a: &Injected, t_ms: i64, value: f64, sigma: f64) -> f64 {
    match a.kind {
        Kind::Spike | Kind::LevelShift => value + a.size * sigma,
        Kind::DropToZero => 0.0,
        Kind::SlowRamp => {
            let rise_end = a.end_ms - 30 * MIN;
            let share = if t_ms >= rise_end {
                1.0
            } else {
                (t_ms - a.start_ms) as f64 / (rise_end - a.start_ms) as f64
            };
            value + share * a.size * sigma
        }
    }
}

/// Zero to three anomalies in the last day, one per equal segment, 30 min clear of its edges.
fn place_anomalies(rng: &mut Rng, day_start: i64) -> Vec<Injected> {
    let roll = rng.uniform();
    let count = if roll < 0.2 {
        0
    } else if roll < 0.5 {
        1
    } else if roll < 0.8 {
        2
    } else {
        3
    };
    let mut out = Vec::new();
    for segment in 0..count {
        let seg_len = DAY / count;
        let seg_start = day_start + segment * seg_len + 30 * MIN;
        let seg_end = day_start + (segment + 1) * seg_len - 30 * MIN;
        let kind = KINDS[usize::try_from(rng.next_u64() % 4).unwrap_or(0)];
        let (length, size) = match kind {
            Kind::Spike => (rng.minutes(10, 60), rng.range(6.0, 20.0)),
            Kind::LevelShift => {
                let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
                (rng.minutes(120, 360), side * rng.range(6.0, 15.0))
            }
            Kind::DropToZero => (rng.minutes(15, 90), 0.0),
            Kind::SlowRamp => (rng.minutes(60, 180) + 30 * MIN, rng.range(10.0, 30.0)),
        };
        let length = length.min(seg_end - seg_start);
        let latest_start = seg_end - length;
        let start =
            seg_start + (rng.uniform() * (latest_start - seg_start) as f64) as i64 / MIN * MIN;
        out.push(Injected {
            kind,
            start_ms: start,
            end_ms: start + length,
            size,
        });
    }
    out
}
