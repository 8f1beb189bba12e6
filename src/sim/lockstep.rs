//! The lockstep loop: sim time `T` (µs from 0) is the firmware clock, and the plant
//! advances one control period per Command. One Command in, exactly one State out:
//! `handle(cmd, T)`; if Armed, `plant.step(firmware.actuation())` (a refused command
//! leaves the previous one applied); `T += period`; `tick(T)` publishes the new State.
//! A robot that is not Armed is paused (README §10): its State repeats the values.
//! After a Reset or an accepted ResetTo, one State (a tick without a step) gives the host
//! the new start state; a refused one is answered by its Fault only.
//! Nothing else publishes a State, so the host can pair every State with what it sent:
//! a Hello is answered by Capabilities and ChannelInfos only, and the host's first
//! Command fetches the first State.
//!
//! Fault windows are on `T` and checked after every frame, so runs are deterministic.
//! A stall or disconnect lasts its duration in real time (nothing else makes time pass
//! while nobody commands), the plant is paused meanwhile, and `T` then jumps to the
//! window's end.

use std::sync::atomic::{AtomicBool, Ordering};

use handful_protocol::{ArmState, Frame, Message};

use super::SimError;
use super::engine::{Outage, Sim};
use crate::clock::Clock;

/// Longest single wait, so `stop` is seen promptly.
const MAX_WAIT_US: u64 = 50_000;

impl Sim {
    /// Runs until `stop` is set or a fatal pty error.
    pub fn run_lockstep(&mut self, stop: &AtomicBool) -> Result<(), SimError> {
        let clock = Clock::real();
        let mut now_us = 0u64;
        while !stop.load(Ordering::Relaxed) {
            self.lockstep_outages(&mut now_us, &clock, stop)?;
            if self.wait_readable(MAX_WAIT_US)? {
                self.receive(now_us, |sim, frame| {
                    sim.lockstep_frame(frame, &mut now_us)?;
                    sim.lockstep_outages(&mut now_us, &clock, stop)
                })?;
            }
            if !self.is_connected() {
                // Disconnected for good: nothing to do but wait for `stop`.
                clock.sleep_us(MAX_WAIT_US);
            }
        }
        Ok(())
    }

    fn lockstep_frame(&mut self, frame: &Frame, now_us: &mut u64) -> Result<(), SimError> {
        let event = self.handle(frame, *now_us);
        match &frame.message {
            Message::Command(_) => {
                if self.firmware.arm_state() == ArmState::Armed {
                    let action = self.firmware.actuation();
                    self.step(&action);
                }
                *now_us += self.period_us;
                self.tick(*now_us);
            }
            Message::Reset(_) | Message::ResetTo(_) if event.is_some() => {
                self.tick(*now_us);
            }
            _ => {}
        }
        self.publish(*now_us)
    }

    /// Runs any stall or disconnect whose window has begun at `T = now_us`.
    fn lockstep_outages(
        &mut self,
        now_us: &mut u64,
        clock: &Clock,
        stop: &AtomicBool,
    ) -> Result<(), SimError> {
        if let Some(window) = self.options.stall
            && self.stall == Outage::Pending
            && *now_us >= window.at_us
        {
            self.stall = Outage::Active;
            self.report.stalls += 1;
            self.trace.inject(*now_us, "stall_start");
            let end_us = window.end_us().unwrap_or(u64::MAX);
            pace(clock, stop, end_us.saturating_sub(*now_us));
            *now_us = (*now_us).max(end_us);
            self.stall = Outage::Done;
            self.trace.inject(*now_us, "stall_end");
        }
        if let Some(window) = self.options.disconnect
            && self.disconnect == Outage::Pending
            && *now_us >= window.at_us
        {
            self.disconnect(*now_us);
            self.disconnect = Outage::Active;
            let Some(end_us) = window.end_us() else {
                return Ok(());
            };
            pace(clock, stop, end_us.saturating_sub(*now_us));
            *now_us = (*now_us).max(end_us);
            if !stop.load(Ordering::Relaxed) {
                self.reconnect(*now_us)?;
                self.disconnect = Outage::Done;
            }
        }
        self.report.sim_time_us = *now_us;
        Ok(())
    }
}

/// Lets `duration_us` of real time pass, returning early when `stop` is set.
fn pace(clock: &Clock, stop: &AtomicBool, duration_us: u64) {
    let end_us = clock.now_us().saturating_add(duration_us);
    while !stop.load(Ordering::Relaxed) {
        let now_us = clock.now_us();
        if now_us >= end_us {
            return;
        }
        clock.sleep_until(end_us.min(now_us + MAX_WAIT_US));
    }
}
