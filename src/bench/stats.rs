//! Latency statistics and timing for the benches: percentiles over a sample of
//! microsecond timings, and a closure timed on a [`Clock`].

use serde::Serialize;

use crate::clock::Clock;

/// Percentiles of a latency sample, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub min_us: u64,
    pub mean_us: f64,
}

impl LatencySummary {
    /// Nearest-rank percentiles; all zero for an empty sample.
    pub fn from_samples(samples_us: &[u64]) -> Self {
        if samples_us.is_empty() {
            return Self::default();
        }
        let mut sorted = samples_us.to_vec();
        sorted.sort_unstable();
        let rank = |q: f64| {
            let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[index - 1]
        };
        Self {
            count: sorted.len(),
            p50_us: rank(0.50),
            p99_us: rank(0.99),
            max_us: sorted[sorted.len() - 1],
            min_us: sorted[0],
            mean_us: sorted.iter().sum::<u64>() as f64 / sorted.len() as f64,
        }
    }
}

/// CPU time consumed by the calling thread, µs (`CLOCK_THREAD_CPUTIME_ID`): unlike
/// wall time it does not grow while other processes hold the cores, so the planner's
/// own cost stays measurable on a loaded machine. 0 if the OS refuses.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if ok {
        ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
    } else {
        0
    }
}

/// Runs `f` once and returns the µs it took by `clock`, with its result.
pub fn time_us<T>(clock: &Clock, f: impl FnOnce() -> T) -> (u64, T) {
    let start = clock.now_us();
    let out = f();
    (clock.now_us().saturating_sub(start), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).rev().collect();
        let s = LatencySummary::from_samples(&samples);
        assert_eq!((s.count, s.p50_us, s.p99_us, s.max_us), (100, 50, 99, 100));
        assert_eq!(LatencySummary::from_samples(&[]).count, 0);
        let one = LatencySummary::from_samples(&[7]);
        assert_eq!((one.p50_us, one.p99_us, one.max_us), (7, 7, 7));
    }
}
