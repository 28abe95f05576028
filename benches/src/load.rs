//! Open-loop load and what a process spent on it.
//!
//! A closed-loop generator (N callers, each waiting for its answer before sending the
//! next) slows down with the server and so hides the queueing a slow server causes
//! ("coordinated omission"). [`open_loop`] sends at fixed intervals whatever happens and
//! times each call from the instant it was *scheduled*, so a stall shows up in the
//! latency of every call that should have been sent meanwhile, as a real user would
//! see it. The schedule runs on its own OS thread (precise to tens of microseconds,
//! unlike the runtime's millisecond timer) and hands each call to the runtime.
//!
//! [`ProcStat`] reads CPU time and memory of a process from `/proc`, and [`summary_sum`]
//! reads a Prometheus summary's running sum and count from the exporter's text.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one phase of load measured.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Sorted latencies of the calls that succeeded.
    pub latencies: Vec<Duration>,
    pub errors: usize,
    /// From the first scheduled call to the last answer.
    pub wall: Duration,
    /// The first error's text, if any.
    pub first_error: Option<String>,
}

impl Phase {
    /// Nearest-rank percentile (`p` in 0..=1); zero when nothing succeeded.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// Successful calls per second of wall time.
    pub fn achieved(&self) -> f64 {
        if self.wall.is_zero() {
            return 0.0;
        }
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    pub fn calls(&self) -> usize {
        self.latencies.len() + self.errors
    }
}

/// Calls `call` `rate` times a second for `duration`, each timed from its scheduled
/// instant to the instant its future returns (for a stream: when its first text
/// arrived). Waits up to `drain` for calls still in flight when the schedule ends;
/// those that do not finish count as errors.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, drain: Duration, call: F) -> Phase
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Instant>> + Send + 'static,
{
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let results: Arc<Mutex<Vec<Result<Duration, String>>>> =
        Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let runtime = tokio::runtime::Handle::current();
    let call = Arc::new(call);
    let start = Instant::now() + Duration::from_millis(5);
    let scheduler = {
        let results = results.clone();
        std::thread::spawn(move || {
            for i in 0..total {
                let scheduled = start + interval.mul_f64(i as f64);
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                let (call, results) = (call.clone(), results.clone());
                runtime.spawn(async move {
                    let r = call()
                        .await
                        .map(|at| at.saturating_duration_since(scheduled))
                        .map_err(|e| format!("{e:#}"));
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                });
            }
        })
    };
    while !scheduler.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = scheduler.join();
    let deadline = Instant::now() + drain;
    let done = || results.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    while done() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = start.elapsed();
    let taken = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    let mut phase = Phase {
        wall,
        errors: (total as usize).saturating_sub(taken.len()),
        ..Phase::default()
    };
    if phase.errors > 0 {
        phase.first_error = Some(format!(
            "{} calls still in flight {drain:?} after the schedule ended",
            phase.errors
        ));
    }
    for r in taken {
        match r {
            Ok(d) => phase.latencies.push(d),
            Err(e) => {
                phase.errors += 1;
                phase.first_error.get_or_insert(e);
            }
        }
    }
    phase.latencies.sort_unstable();
    phase
}

/// CPU time and memory of one process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// User plus system time of all its threads.
    pub cpu: Duration,
    /// Resident set now, in bytes.
    pub rss: u64,
    /// Peak resident set, in bytes.
    pub hwm: u64,
}

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, which is 100 on every architecture
/// this runs on.
const USER_HZ: u64 = 100;

impl ProcStat {
    /// This process.
    pub fn me() -> std::io::Result<ProcStat> {
        ProcStat::of("self")
    }

    /// `pid` may be a number or `self`.
    pub fn of(pid: &str) -> std::io::Result<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        ProcStat::parse(&stat, &status).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected /proc/{pid} format"),
            )
        })
    }

    fn parse(stat: &str, status: &str) -> Option<ProcStat> {
        // The command name (field 2) may hold spaces; fields after its `)` are fixed.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime is field 14, stime field 15.
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let kib = |key: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(ProcStat {
            cpu: Duration::from_millis(ticks * 1000 / USER_HZ),
            rss: kib("VmRSS:")? * 1024,
            hwm: kib("VmHWM:")? * 1024,
        })
    }
}

/// The `_sum` and `_count` of a Prometheus summary or histogram named `name` whose labels
/// contain every one of `labels` (each written `key="value"`), added over matching series.
pub fn summary_sum(text: &str, name: &str, labels: &[&str]) -> Option<(f64, f64)> {
    let mut found = None;
    for (suffix, slot) in [("_sum", 0), ("_count", 1)] {
        let prefix = format!("{name}{suffix}");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                continue;
            }
            let (series, value) = rest.rsplit_once(' ')?;
            if !labels.iter().all(|l| series.contains(l)) {
                continue;
            }
            let v: f64 = value.parse().ok()?;
            let acc: &mut (f64, f64) = found.get_or_insert((0.0, 0.0));
            if slot == 0 {
                acc.0 += v;
            } else {
                acc.1 += v;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let phase = Phase {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Phase::default()
        };
        assert_eq!(phase.percentile(0.50), Duration::from_millis(50));
        assert_eq!(phase.percentile(0.99), Duration::from_millis(99));
        assert_eq!(phase.percentile(1.0), Duration::from_millis(100));
        assert_eq!(phase.percentile(0.0), Duration::from_millis(1));
        assert_eq!(Phase::default().percentile(0.5), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_times_calls_from_their_schedule_not_their_start() {
        // Every call waits for one lock held 20 ms a call: at 200 calls/s they queue, and
        // the latency measured from the schedule must show the queue (a closed-loop timer
        // started at the call would see about 20 ms each).
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let phase = open_loop(
            200.0,
            Duration::from_millis(250),
            Duration::from_secs(10),
            move || {
                let lock = lock.clone();
                async move {
                    let _held = lock.lock().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(Instant::now())
                }
            },
        )
        .await;
        assert_eq!(phase.calls(), 50);
        assert_eq!(phase.errors, 0);
        // The 50th call was scheduled at 245 ms and finishes after 50 × 20 ms = 1 s.
        assert!(
            phase.max() > Duration::from_millis(600),
            "{:?}",
            phase.max()
        );
        assert!(phase.percentile(0.5) > Duration::from_millis(200));
    }

    #[tokio::test]
    async fn errors_and_unfinished_calls_are_counted() {
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let phase = open_loop(
            100.0,
            Duration::from_millis(100),
            Duration::from_millis(100),
            move || {
                let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    match i % 3 {
                        0 => Ok(Instant::now()),
                        1 => anyhow::bail!("refused"),
                        _ => std::future::pending().await,
                    }
                }
            },
        )
        .await;
        assert_eq!(phase.calls(), 10);
        assert_eq!(phase.latencies.len(), 4);
        assert_eq!(phase.errors, 6);
        assert!(phase.first_error.is_some());
    }

    #[test]
    fn proc_stat_parses_cpu_and_memory() {
        let stat =
            "4242 (warden (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        let status = "Name:\twarden\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        let p = ProcStat::parse(stat, status).unwrap();
        assert_eq!(p.cpu, Duration::from_secs(3));
        assert_eq!(p.rss, 10 * 1024 * 1024);
        assert_eq!(p.hwm, 20 * 1024 * 1024);
        let me = ProcStat::me().unwrap();
        assert!(me.rss > 0 && me.hwm >= me.rss);
    }

    #[test]
    fn summary_sums_add_matching_series() {
        let text = "# TYPE d summary\n\
            d{service=\"a.AuditLog\",method=\"Append\",quantile=\"0.5\"} 0.001\n\
            d_sum{service=\"a.AuditLog\",method=\"Append\"} 1.5\n\
            d_count{service=\"a.AuditLog\",method=\"Append\"} 1000\n\
            d_sum{service=\"a.Other\",method=\"Get\"} 9\n\
            d_count{service=\"a.Other\",method=\"Get\"} 9\n";
        assert_eq!(
            summary_sum(text, "d", &["method=\"Append\""]),
            Some((1.5, 1000.0))
        );
        assert_eq!(summary_sum(text, "d", &[]), Some((10.5, 1009.0)));
        assert_eq!(summary_sum(text, "e", &[]), None);
    }
}
