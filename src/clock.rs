//! The one source of time: a monotonic clock in microseconds with a simulated twin.
//!
//! Every module that needs "now" or a sleep takes a [`Clock`]; nothing else reads
//! `Instant::now` (clippy's `disallowed-methods` enforces it). [`Clock::real`] follows the
//! OS monotonic clock; [`Clock::simulated`] only moves when someone calls
//! [`Clock::sleep_until`] or [`Clock::advance`], so lockstep runs go as fast as the
//! machine allows and replays are deterministic.
//!
//! Real-time contract: `now_us` and `sleep_until` never allocate; `sleep_until` on the
//! real clock sleeps to an absolute deadline (no drift from the time spent working).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A shareable monotonic clock. Cloning shares the same time base.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Real { epoch: Instant },
    Simulated { now_us: Arc<AtomicU64> },
}

impl Clock {
    /// The OS monotonic clock; `now_us` counts from this call.
    pub fn real() -> Self {
        #[allow(clippy::disallowed_methods)] // the one place that reads the OS clock
        let epoch = Instant::now();
        Self {
            inner: Inner::Real { epoch },
        }
    }

    /// A clock that starts at 0 µs and moves only when told to.
    pub fn simulated() -> Self {
        Self {
            inner: Inner::Simulated {
                now_us: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self.inner, Inner::Simulated { .. })
    }

    /// Microseconds since the clock's epoch.
    pub fn now_us(&self) -> u64 {
        match &self.inner {
            Inner::Real { epoch } => epoch.elapsed().as_micros() as u64,
            Inner::Simulated { now_us } => now_us.load(Ordering::Acquire),
        }
    }

    /// Returns once `now_us() >= deadline_us`. The real clock sleeps; the simulated clock
    /// jumps forward to the deadline at once (never backwards).
    pub fn sleep_until(&self, deadline_us: u64) {
        match &self.inner {
            Inner::Real { .. } => loop {
                let now = self.now_us();
                if now >= deadline_us {
                    return;
                }
                std::thread::sleep(Duration::from_micros(deadline_us - now));
            },
            Inner::Simulated { now_us } => {
                now_us.fetch_max(deadline_us, Ordering::AcqRel);
            }
        }
    }

    /// Sleeps for `duration_us` from now (relative; for back-off and polling, never for
    /// periodic work, which uses absolute deadlines).
    pub fn sleep_us(&self, duration_us: u64) {
        self.sleep_until(self.now_us().saturating_add(duration_us));
    }

    /// Moves a simulated clock forward by `duration_us`; on the real clock it sleeps.
    pub fn advance(&self, duration_us: u64) {
        self.sleep_us(duration_us);
    }
}

/// Wall-clock time as seconds since the Unix epoch, for run metadata and file names
/// only; never for control (it can jump).
pub fn wall_time_unix_secs() -> f64 {
    #[allow(clippy::disallowed_methods)] // metadata only
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_jumps_and_never_goes_back() {
        let clock = Clock::simulated();
        assert_eq!(clock.now_us(), 0);
        clock.sleep_until(40_000);
        assert_eq!(clock.now_us(), 40_000);
        clock.sleep_until(10_000);
        assert_eq!(clock.now_us(), 40_000);
        let shared = clock.clone();
        shared.advance(5);
        assert_eq!(clock.now_us(), 40_005);
    }

    #[test]
    fn real_clock_sleeps_to_an_absolute_deadline() {
        let clock = Clock::real();
        let deadline = clock.now_us() + 2_000;
        clock.sleep_until(deadline);
        assert!(clock.now_us() >= deadline);
    }
}
