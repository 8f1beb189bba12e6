//! The safety layer: what stands between the robot and a bad command.
//!
//! It owns the checks on what comes in (the link lost, the firmware's heartbeats
//! stopped, no state or a stale one, a non-finite state value), the checks on what goes out (a controller error, a
//! non-finite action, the calibrated limits every command is clamped to), overruns (a
//! command computed too late is not sent; several in a row latch), the calibrated safe
//! command that replaces the controller's whenever any of these fails, and the count of
//! fault events. It decides which [`HostFault`] a tick raises; the loop
//! ([`super::ticker`]) decides what a latched one does to the mode and the episode.
//! Everything here is plain arithmetic on fixed-size arrays: no allocation, no panic.

use handful_protocol::MAX_ACTION_DIM;

use super::fault_count::FaultCounts;
use super::ticker::LoopConfig;
use super::{ControlError, HostFault, Mode};
use crate::link::{Health, StateSample};

pub(super) struct Safety {
    safe: [f32; MAX_ACTION_DIM],
    /// Calibrated action limits `(min, max)` per channel.
    limits: [(f32, f32); MAX_ACTION_DIM],
    stale_state_us: u64,
    /// The firmware's heartbeats may be this old (`None`: not checked).
    heartbeat_timeout_us: Option<u64>,
    max_consecutive_overruns: u32,
    consecutive_overruns: u32,
    /// The fault raised last tick (a fault lasting many ticks is one event).
    last_fault: Option<HostFault>,
    faults: FaultCounts,
}

impl Safety {
    pub(super) fn new(config: &LoopConfig, heartbeat_timeout_us: Option<u64>) -> Self {
        let mut limits = [(0.0, 0.0); MAX_ACTION_DIM];
        for (slot, &limit) in limits.iter_mut().zip(&config.action_limits) {
            *slot = limit;
        }
        let mut safe = [0.0; MAX_ACTION_DIM];
        safe[..config.safe_action.len()].copy_from_slice(&config.safe_action);
        Self {
            safe,
            limits,
            stale_state_us: config.stale_state_us,
            heartbeat_timeout_us,
            max_consecutive_overruns: config.max_consecutive_overruns,
            consecutive_overruns: 0,
            last_fault: None,
            faults: FaultCounts::default(),
        }
    }

    /// The calibrated safe command.
    pub(super) const fn safe(&self) -> [f32; MAX_ACTION_DIM] {
        self.safe
    }

    /// The fault counts so far.
    pub(super) const fn faults(&self) -> FaultCounts {
        self.faults
    }

    /// What is wrong with the input of a tick: the link, or the latest state `sample`
    /// (`state_age_us` old), if anything.
    pub(super) fn check_input(
        &self,
        health: &Health,
        sample: Option<&StateSample>,
        state_age_us: u64,
    ) -> Option<HostFault> {
        let heartbeat_late = match (self.heartbeat_timeout_us, health.heartbeat_age_us) {
            (Some(limit), Some(age)) => age > limit,
            // None before the first heartbeat: the link's own timeout covers silence.
            _ => false,
        };
        if !health.connected || health.is_lost {
            Some(HostFault::LinkLost)
        } else if heartbeat_late {
            Some(HostFault::HeartbeatLost)
        } else {
            match sample {
                None => Some(HostFault::StaleState),
                Some(_) if state_age_us > self.stale_state_us => Some(HostFault::StaleState),
                Some(s) if !s.values[..s.dim].iter().all(|v| v.is_finite()) => {
                    Some(HostFault::NonFiniteState)
                }
                Some(_) => None,
            }
        }
    }

    /// Checks what the controller wrote into `action` (its result `acted`) and clamps it
    /// to the calibrated limits.
    pub(super) fn check_action(
        &self,
        acted: Result<(), ControlError>,
        action: &mut [f32],
    ) -> Result<(), HostFault> {
        if acted.is_err() {
            return Err(HostFault::Controller);
        }
        if !action.iter().all(|v| v.is_finite()) {
            return Err(HostFault::NonFiniteAction);
        }
        for (value, &(lo, hi)) in action.iter_mut().zip(&self.limits) {
            *value = value.clamp(lo, hi);
        }
        Ok(())
    }

    /// Whether this tick's command is dropped as `late` (computed after the next
    /// deadline): [`HostFault::Overrun`], or [`HostFault::RepeatedOverrun`] (which the
    /// loop latches) once too many in a row. An on-time tick ends the run of overruns.
    pub(super) fn overrun(&mut self, late: bool) -> Option<HostFault> {
        if !late {
            self.consecutive_overruns = 0;
            return None;
        }
        self.consecutive_overruns += 1;
        if self.consecutive_overruns >= self.max_consecutive_overruns {
            Some(HostFault::RepeatedOverrun)
        } else {
            Some(HostFault::Overrun)
        }
    }

    /// Counts fault events, not ticks: a fault lasting many ticks counts once. Idle, the
    /// record shows them but they are not counted (no state yet at start-up is not an
    /// event).
    pub(super) fn count(&mut self, fault: Option<HostFault>, mode: Mode) {
        if let Some(f) = fault
            && self.last_fault != Some(f)
            && (mode.is_driving() || mode == Mode::Fault)
        {
            self.faults.add(f);
        }
        self.last_fault = fault;
    }
}
