//! The real-time loop: the firmware ticks at absolute deadlines on the real clock
//! (`next += period`; a missed slot is skipped and counted, never caught up), and host
//! bytes are handled as they arrive between ticks.
//!
//! Firmware time is the real clock since the loop started; fault windows (stall,
//! disconnect, latency spikes, mute) are on it too. While stalled the firmware neither
//! reads nor ticks nor publishes, and the plant keeps moving under the held action;
//! while disconnected the firmware runs on and its frames are lost; a latency spike's
//! frames go out when it ends.

use std::sync::atomic::{AtomicBool, Ordering};

use super::SimError;
use super::engine::{Outage, Sim};
use crate::clock::Clock;

/// Longest single wait, so `stop` is seen promptly whatever the control period.
const MAX_WAIT_US: u64 = 50_000;

impl Sim {
    /// Runs until `stop` is set or a fatal pty error.
    pub fn run_realtime(&mut self, stop: &AtomicBool) -> Result<(), SimError> {
        let clock = Clock::real();
        let period_us = self.period_us;
        let mut next_us = clock.now_us();
        let started_us = next_us;
        while !stop.load(Ordering::Relaxed) {
            let now_us = clock.now_us();
            self.update_connection(now_us)?;
            let stalled = self.update_stall(now_us);
            if !stalled {
                self.update_gate(now_us)?;
            }
            if now_us >= next_us {
                if stalled {
                    self.step_stalled(now_us);
                } else {
                    if let Some(script) = self.options.operator {
                        let input = script.input(now_us.saturating_sub(started_us));
                        self.forward_teleop(now_us, input);
                    }
                    let action = self.tick(now_us);
                    self.step(&action);
                    self.publish(now_us)?;
                }
                next_us += period_us;
                let after_us = clock.now_us();
                if after_us >= next_us {
                    let missed = (after_us - next_us) / period_us + 1;
                    self.report.overruns += missed;
                    next_us += missed * period_us;
                }
                continue;
            }
            let wait_us = (next_us - now_us).min(MAX_WAIT_US);
            if stalled || !self.is_connected() {
                clock.sleep_until(now_us + wait_us);
                continue;
            }
            if self.wait_readable(wait_us)? {
                self.receive(clock.now_us(), |sim, frame| {
                    let now_us = clock.now_us();
                    sim.handle(frame, now_us);
                    sim.publish(now_us)
                })?;
            }
        }
        Ok(())
    }

    /// `true` while inside the stall window.
    fn update_stall(&mut self, now_us: u64) -> bool {
        let Some(window) = self.options.stall else {
            return false;
        };
        let ended = window.end_us().is_some_and(|end| now_us >= end);
        match self.stall {
            Outage::Pending if now_us >= window.at_us && !ended => {
                self.stall = Outage::Active;
                self.report.stalls += 1;
                self.trace.inject(now_us, "stall_start");
                tracing::info!(now_us, "sim: firmware stalled");
            }
            Outage::Active if ended => {
                self.stall = Outage::Done;
                self.trace.inject(now_us, "stall_end");
            }
            _ => {}
        }
        self.stall == Outage::Active
    }

    /// Pulls and replugs the cable at the disconnect window's edges.
    fn update_connection(&mut self, now_us: u64) -> Result<(), SimError> {
        let Some(window) = self.options.disconnect else {
            return Ok(());
        };
        let ended = window.end_us().is_some_and(|end| now_us >= end);
        match self.disconnect {
            Outage::Pending if now_us >= window.at_us => {
                self.disconnect(now_us);
                self.disconnect = Outage::Active;
            }
            Outage::Active if ended => {
                self.reconnect(now_us)?;
                self.disconnect = Outage::Done;
            }
            _ => {}
        }
        Ok(())
    }
}
