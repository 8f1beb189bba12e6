//! One way to drive episodes, for `handful run`, `handful record` and the learning job:
//! the start of each episode (a seeded reset, or a given state from a list cycled through,
//! [`EpisodeDriver::with_start_states`]), the request, the wait for its end (tick records to a
//! [`Watch`], link health to the viewer, a time budget), and the recovery policy after
//! an episode that ended on a fault ([`crate::recovery`]).
//!
//! Runs on the main thread: it may block and allocate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use crossbeam::channel::RecvTimeoutError;

use crate::calib::Calibration;
use crate::clock::Clock;
use crate::control::{
    EpisodeEnd, EpisodeStart, EpisodeSummary, LoopHandle, Mode, Phase, Request, StartState,
    TickRecord,
};
use crate::link::Link;
use crate::recovery::{Recovery, RecoveryPolicy};

/// How often link health goes to the viewer while an episode runs.
const LINK_EVERY_US: u64 = 250_000;
/// How long the main thread sleeps between two looks at the loop's channels.
const POLL: Duration = Duration::from_millis(5);

/// What a driver's caller does with an episode while it runs.
pub trait Watch {
    /// Each tick record, in tick order, up to and including the episode's last tick.
    fn record(&mut self, _record: &TickRecord) -> anyhow::Result<()> {
        Ok(())
    }

    /// Every few milliseconds while waiting (e.g. forward a retrained controller).
    fn idle(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A watch that only drains the records.
pub struct Drain;

impl Watch for Drain {}

/// Drives a run's episodes, one after the other, on one control loop.
pub struct EpisodeDriver<'a> {
    calib: &'a Calibration,
    link: Arc<Link>,
    viz: Option<crate::viz::VizSender>,
    lockstep: bool,
    /// The run's seed: episode `i` resets from `seed · 1 000 003 + i`.
    seed: u64,
    /// Episodes requested so far (the next one's index).
    next: u32,
    /// Episode `i` starts at `start_states[i % len]` instead of a seeded reset (none:
    /// seeded resets).
    start_states: Vec<StartState>,
    recovery: Recovery,
    /// How the last episode ended (a fault is recovered from before the next starts).
    last_end: Option<(u32, EpisodeEnd)>,
}

impl<'a> EpisodeDriver<'a> {
    pub fn new(
        calib: &'a Calibration,
        link: Arc<Link>,
        lockstep: bool,
        seed: u64,
        policy: RecoveryPolicy,
    ) -> Self {
        Self {
            calib,
            link,
            viz: None,
            lockstep,
            seed,
            next: 0,
            start_states: Vec::new(),
            recovery: Recovery::new(policy),
            last_end: None,
        }
    }

    /// Sends link health to `viz` while episodes run and recoveries wait.
    pub fn with_viz(mut self, viz: crate::viz::VizSender) -> Self {
        self.viz = Some(viz);
        self
    }

    /// The viewer this driver reports to, if any.
    pub fn viz(&self) -> Option<&crate::viz::VizSender> {
        self.viz.as_ref()
    }

    /// Starts episode `i` at `states[i % states.len()]` (a reset to a given state) instead
    /// of a seeded reset: evaluation from a fixed set of states, or an episode replayed
    /// from a recorded start. Fails, naming the problem, if the robot does not announce
    /// `CAP_RESET_TO` or a state does not have one finite value per state channel; an
    /// empty list keeps the seeded resets.
    pub fn with_start_states(mut self, states: Vec<StartState>) -> anyhow::Result<Self> {
        if !states.is_empty() && !self.link.robot().has_reset_to() {
            bail!(
                "robot {} does not announce CAP_RESET_TO: it cannot start an episode at a \
                 given state (the simulator can; start from seeded resets instead)",
                self.link.robot().robot_id
            );
        }
        let dim = self.calib.state_dim();
        for (i, state) in states.iter().enumerate() {
            if state.values().len() != dim {
                bail!(
                    "start state {i} has {} values; the robot has {dim} state channels ({})",
                    state.values().len(),
                    self.calib
                        .states
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if let Some(j) = state.values().iter().position(|v| !v.is_finite()) {
                bail!("start state {i}: value {j} is not finite");
            }
        }
        self.start_states = states;
        Ok(self)
    }

    /// The given state episode `index` starts at, `None` for a seeded reset.
    pub fn start_state(&self, index: u32) -> Option<StartState> {
        let n = self.start_states.len();
        (n > 0).then(|| self.start_states[index as usize % n])
    }

    /// The index the next episode will take.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// The reset seed of episode `index`, `None` for a robot that cannot reset.
    pub fn reset_seed(&self, index: u32) -> Option<u64> {
        self.link.robot().has_reset().then(|| {
            self.seed
                .wrapping_mul(1_000_003)
                .wrapping_add(u64::from(index))
        })
    }

    /// Faulted episodes recovered from so far.
    pub fn recoveries(&self) -> u32 {
        self.recovery.used
    }

    /// How the last episode ended, if one did.
    pub fn last_end(&self) -> Option<EpisodeEnd> {
        self.last_end.map(|(_, end)| end)
    }

    /// Why a run whose last episode faulted counts as stopped (`None` otherwise).
    pub fn ended_on_fault(&self) -> Option<String> {
        match self.last_end() {
            Some(EpisodeEnd::Faulted(fault)) => Some(format!(
                "the last episode ended on a fault ({})",
                fault.name()
            )),
            _ => None,
        }
    }

    /// Drives the next episode from a reset (seeded, or to its given start state):
    /// `phase` in `mode`.
    pub fn episode(
        &mut self,
        handle: &LoopHandle,
        mode: Mode,
        phase: Phase,
        watch: &mut dyn Watch,
    ) -> anyhow::Result<EpisodeSummary> {
        let start = match self.start_state(self.next) {
            Some(state) => EpisodeStart::arm_at(mode, phase, state),
            None => EpisodeStart::arm(mode, phase, self.reset_seed(self.next)),
        };
        self.drive(handle, start, watch)
    }

    /// Drives one episode from `start`, whatever it asks (a reset, or going on armed with
    /// another phase, controller or objective). First, if the last episode ended on a
    /// fault, waits for the robot per the recovery policy, or fails with
    /// [`crate::recovery::Stopped`] (a `downcast` of the error) when the run must stop.
    pub fn drive(
        &mut self,
        handle: &LoopHandle,
        start: EpisodeStart,
        watch: &mut dyn Watch,
    ) -> anyhow::Result<EpisodeSummary> {
        if let Some((episode, end)) = self.last_end.take() {
            let (link, viz) = (&self.link, &self.viz);
            self.recovery
                .after(episode, end, link, self.calib, self.lockstep, || {
                    while handle.records.try_recv().is_ok() {}
                    if let Some(viz) = viz {
                        crate::run::send_link(link, viz);
                    }
                })?;
        }
        let budget_us = start.phase.steps.map(|steps| {
            // Generous: the machine may be loaded; a reset and an arm come first.
            8 * self.calib.control_period_us * u64::from(steps) + 60_000_000
        });
        // Every episode takes an index, continuing ones too: seeds never repeat.
        self.next += 1;
        handle
            .requests
            .send(Request::StartEpisode(start))
            .map_err(|_| anyhow::anyhow!("the control loop stopped"))?;
        let summary = self.wait(handle, budget_us, watch)?;
        self.last_end = Some((summary.episode, summary.end));
        if let Some(viz) = &self.viz {
            viz.send(crate::viz::VizEvent::Episode(summary));
        }
        Ok(summary)
    }

    fn wait(
        &self,
        handle: &LoopHandle,
        budget_us: Option<u64>,
        watch: &mut dyn Watch,
    ) -> anyhow::Result<EpisodeSummary> {
        let waiter = Clock::real();
        let give_up = budget_us.map(|b| waiter.now_us() + b);
        let mut next_link_us = 0;
        let mut last_tick = None;
        let summary = loop {
            while let Ok(record) = handle.records.try_recv() {
                last_tick = Some(record.tick);
                watch.record(&record)?;
            }
            watch.idle()?;
            if let Some(viz) = &self.viz
                && waiter.now_us() >= next_link_us
            {
                crate::run::send_link(&self.link, viz);
                next_link_us = waiter.now_us() + LINK_EVERY_US;
            }
            if let Some(signal) = crate::signals::requested() {
                return Err(self.interrupt(handle, signal, watch));
            }
            match handle.episodes.recv_timeout(POLL) {
                Ok(summary) => break summary,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the control loop stopped during an episode")
                }
            }
            if give_up.is_some_and(|t| waiter.now_us() > t) {
                bail!(
                    "the episode did not finish within {} s",
                    budget_us.unwrap_or(0) / 1_000_000
                );
            }
        };
        // The records up to the episode's last tick (the loop publishes a tick's record
        // after that tick's summary).
        while last_tick.is_none_or(|t| t < summary.last_tick) {
            match handle.records.recv_timeout(Duration::from_secs(2)) {
                Ok(record) if record.tick <= summary.last_tick => {
                    last_tick = Some(record.tick);
                    watch.record(&record)?;
                }
                Ok(_) | Err(_) => break,
            }
        }
        Ok(summary)
    }

    /// A stop signal arrived: disarm the episode in progress, keep its records, and end
    /// the run with [`crate::recovery::Stopped::Signal`].
    fn interrupt(
        &self,
        handle: &LoopHandle,
        signal: &'static str,
        watch: &mut dyn Watch,
    ) -> anyhow::Error {
        let _ = handle.requests.send(Request::Disarm);
        let waiter = Clock::real();
        let give_up = waiter.now_us() + 2_000_000;
        while waiter.now_us() < give_up {
            while let Ok(record) = handle.records.try_recv() {
                let _ = watch.record(&record);
            }
            if handle.episodes.recv_timeout(POLL).is_ok() {
                break;
            }
        }
        crate::recovery::Stopped::Signal(signal).into()
    }
}
