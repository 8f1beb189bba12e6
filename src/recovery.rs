//! What a run does when an episode ends on a fault, the same for `run`, `record` and the
//! learning job (PX4's rule: every loss of link or sensor has a defined action).
//!
//! The control loop has already done the immediate part: the safe command from the
//! faulted tick on, the firmware disarmed, the episode ended ([`crate::control`]). The
//! driver then either stops the run, or — while its budget of recoveries lasts — waits
//! until the robot is healthy again and starts the next episode, which re-arms it:
//!
//! 1. an e-stop is never recovered from: someone pressed it, and the host's disarm after
//!    the fault releases it in the firmware, so any `EStop` report the link has received
//!    during the run stops it;
//! 2. wait (bounded by [`RecoveryPolicy::wait_us`]) until the link is connected, frames
//!    arrive, and — in real time — a heartbeat within two of the firmware's intervals and
//!    a state fresher than the calibration's staleness
//!    bound has been seen for [`SETTLE_US`] without a break;
//! 3. start the next episode as usual (reset, arm, steps).
//!
//! A run that stops on a fault, or whose robot does not come back, says why and exits
//! non-zero; a run that recovered says how often (`summary.json`, the printout).

use std::time::Duration;

use serde::Serialize;

use crate::calib::Calibration;
use crate::clock::Clock;
use crate::control::EpisodeEnd;
use crate::link::Link;

/// A heartbeat older than this many of the firmware's intervals is not healthy (the
/// control loop faults at 5: `LoopConfig::heartbeats_missed`).
const HEARTBEAT_FRESH_INTERVALS: u64 = 2;

/// How long the robot must look healthy, without a break, before it is re-armed.
pub const SETTLE_US: u64 = 500_000;

/// How a run treats episodes that end on a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveryPolicy {
    /// Faulted episodes the run recovers from before it stops (0: stop at the first).
    pub max_recoveries: u32,
    /// Longest wait, each time, for the robot to be healthy again.
    pub wait_us: u64,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            max_recoveries: 3,
            wait_us: 30_000_000,
        }
    }
}

/// Why a run stopped instead of recovering.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error(
        "episode {episode} ended on a fault ({fault}) and the run has no recoveries left \
         (it recovered {used} of at most {max} times; `--max-recoveries` sets the budget)"
    )]
    NoRecoveriesLeft {
        episode: u32,
        fault: &'static str,
        used: u32,
        max: u32,
    },
    #[error("the robot is e-stopped: release the e-stop and start the run again")]
    EStopped,
    #[error("the robot was not healthy again within {waited_s:.0} s after a fault ({why})")]
    NotHealthy { waited_s: f64, why: String },
    #[error("{0} received: the episode in progress was disarmed")]
    Signal(&'static str),
}

/// A run's recoveries so far.
#[derive(Debug)]
pub struct Recovery {
    policy: RecoveryPolicy,
    /// Recoveries done.
    pub used: u32,
}

impl Recovery {
    pub fn new(policy: RecoveryPolicy) -> Self {
        Self { policy, used: 0 }
    }

    /// After an episode ended with `end` (episode `episode`): nothing to do unless it was
    /// faulted; then waits for the robot (see the module docs) and counts a recovery, or
    /// says why the run must stop. `idle` runs every few ms while waiting (drain
    /// telemetry, forward link health to the viewer).
    pub fn after(
        &mut self,
        episode: u32,
        end: EpisodeEnd,
        link: &Link,
        calib: &Calibration,
        lockstep: bool,
        mut idle: impl FnMut(),
    ) -> Result<(), Stopped> {
        let EpisodeEnd::Faulted(fault) = end else {
            return Ok(());
        };
        if self.used >= self.policy.max_recoveries {
            return Err(Stopped::NoRecoveriesLeft {
                episode,
                fault: fault.name(),
                used: self.used,
                max: self.policy.max_recoveries,
            });
        }
        tracing::warn!(
            episode,
            fault = fault.name(),
            recovery = self.used + 1,
            of = self.policy.max_recoveries,
            "episode ended on a fault: waiting for the robot to be healthy, then re-arming"
        );
        let waited = wait_until_healthy(link, calib, lockstep, self.policy.wait_us, &mut idle)?;
        self.used += 1;
        tracing::info!(
            episode,
            waited_ms = waited / 1000,
            "robot healthy again: the next episode re-arms it"
        );
        Ok(())
    }
}

/// Waits until the robot can start an episode; returns how long it took (µs).
fn wait_until_healthy(
    link: &Link,
    calib: &Calibration,
    lockstep: bool,
    wait_us: u64,
    idle: &mut impl FnMut(),
) -> Result<u64, Stopped> {
    // Wall time: in lockstep the loop's clock stands still while nothing is driven.
    let clock = Clock::real();
    let start = clock.now_us();
    let mut healthy_since = None;
    loop {
        let now = clock.now_us();
        let health = link.health(link.clock().now_us());
        let state = link.latest_state();
        let flagged = state.is_some_and(|s| s.fault_flags & handful_protocol::FAULT_ESTOP != 0);
        if flagged || link.stats().estops_received > 0 {
            return Err(Stopped::EStopped);
        }
        // In lockstep the simulator only answers commands: a connected link is all an
        // idle robot can show, and the next episode's reset brings its first state.
        let why = if !health.connected {
            Some("the link is not connected".to_string())
        } else if lockstep {
            None
        } else if health.is_lost {
            Some("nothing arrives from the robot".to_string())
        } else if let Some(age) = health.heartbeat_age_us
            && age > HEARTBEAT_FRESH_INTERVALS * u64::from(link.robot().heartbeat_interval_us)
        {
            Some(format!(
                "the firmware's last heartbeat is {} ms old",
                age / 1000
            ))
        } else {
            match health.state_age_us {
                Some(age) if age <= calib.stale_state_us => None,
                Some(age) => Some(format!("the latest state is {} ms old", age / 1000)),
                None => Some("no state has arrived".to_string()),
            }
        };
        if let Some(signal) = crate::signals::requested() {
            return Err(Stopped::Signal(signal));
        }
        match why {
            None => {
                let since = *healthy_since.get_or_insert(now);
                if lockstep || now - since >= SETTLE_US {
                    return Ok(now - start);
                }
            }
            Some(why) => {
                healthy_since = None;
                if now - start > wait_us {
                    return Err(Stopped::NotHealthy {
                        waited_s: (now - start) as f64 * 1e-6,
                        why,
                    });
                }
            }
        }
        idle();
        std::thread::sleep(Duration::from_millis(10));
    }
}
