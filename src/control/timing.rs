//! Loop timing statistics: wake-up jitter, compute time and deadline misses.
//!
//! Histograms are preallocated with fixed bounds (auto-resize off), so recording on the
//! control thread never allocates; values past the bound saturate at it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest value the histograms resolve, µs (10 s). Larger values saturate.
const MAX_TRACKED_US: u64 = 10_000_000;

/// Percentiles of one quantity, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// What the control loop measured over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TimingReport {
    pub period_us: u64,
    pub ticks: u64,
    /// Ticks whose work ended after the next deadline: their command was replaced by the
    /// safe command.
    pub overruns: u64,
    /// Deadline slots skipped after overruns (never caught up).
    pub skipped_slots: u64,
    /// Wake-up time minus deadline.
    pub jitter: Percentiles,
    /// Work per tick: state read to command sent (real time, even in lockstep).
    pub compute: Percentiles,
}

/// Accumulates the loop's timing. Allocates only in [`Timing::new`].
#[derive(Debug)]
pub struct Timing {
    period_us: u64,
    ticks: u64,
    overruns: u64,
    skipped_slots: u64,
    jitter: Histogram<u64>,
    compute: Histogram<u64>,
}

impl Timing {
    pub fn new(period_us: u64) -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
                .expect("static histogram bounds are valid")
        };
        Self {
            period_us,
            ticks: 0,
            overruns: 0,
            skipped_slots: 0,
            jitter: histogram(),
            compute: histogram(),
        }
    }

    /// Records one tick. Allocation-free.
    pub fn record(&mut self, jitter_us: u64, compute_us: u64) {
        self.ticks += 1;
        self.jitter.saturating_record(jitter_us.max(1));
        self.compute.saturating_record(compute_us.max(1));
    }

    pub fn record_overrun(&mut self, skipped_slots: u64) {
        self.overruns += 1;
        self.skipped_slots += skipped_slots;
    }

    pub fn report(&self) -> TimingReport {
        TimingReport {
            period_us: self.period_us,
            ticks: self.ticks,
            overruns: self.overruns,
            skipped_slots: self.skipped_slots,
            jitter: percentiles(&self.jitter),
            compute: percentiles(&self.compute),
        }
    }
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        mean_us: h.mean(),
    }
}

/// Next absolute deadline after a tick that was due at `deadline_us` and finished at
/// `now_us`: `deadline + period`, or the first slot still in the future if the tick
/// overran (skipped slots are returned, never caught up).
pub fn next_deadline(deadline_us: u64, period_us: u64, now_us: u64) -> (u64, u64) {
    let next = deadline_us + period_us;
    if now_us < next {
        return (next, 0);
    }
    let behind = (now_us - next) / period_us + 1;
    (next + behind * period_us, behind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_absolute_and_skip_after_overruns() {
        let check = |deadline, now, expected| {
            assert_eq!(
                next_deadline(deadline, 40, now),
                expected,
                "deadline {deadline} now {now}"
            )
        };
        check(0, 5, (40, 0));
        check(0, 39, (40, 0));
        check(0, 40, (80, 1));
        check(0, 95, (120, 2));
        check(1000, 1001, (1040, 0));
    }

    #[test]
    fn report_has_percentiles() {
        let mut timing = Timing::new(40_000);
        for us in 1..=100 {
            timing.record(us, 10 * us);
        }
        timing.record_overrun(2);
        let report = timing.report();
        assert_eq!(report.ticks, 100);
        assert_eq!(report.overruns, 1);
        assert_eq!(report.skipped_slots, 2);
        assert_eq!(report.jitter.p50_us, 50);
        assert_eq!(report.compute.max_us, 1000);
    }
}
