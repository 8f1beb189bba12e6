//! The control thread: a fixed-rate loop with absolute deadlines that reads the latest
//! state, runs the controller, applies the safety layer and sends one command per tick.
//!
//! Real-time contract (after [`spawn`] returns): a tick never allocates, never takes a
//! lock held across I/O and never blocks, except in lockstep mode where waiting for the
//! simulator's answer *is* the clock. Telemetry leaves on bounded channels with
//! `try_send`; drops are counted. Every path that cannot produce a good command produces
//! the calibrated safe command and a [`HostFault`]; nothing here panics on bad data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, TrySendError, bounded};
use handful_protocol::{ArmState, MAX_ACTION_DIM, MAX_STATE_DIM};

use super::fault_count::FaultCounts;
use super::timing::{Timing, TimingReport, next_deadline};
use super::{
    AtEnd, Controller, EpisodeEnd, EpisodeStart, EpisodeStep, EpisodeSummary, HostFault, Mode,
    Objective, Observation, Phase, PhaseKind, Request, Start, TickRecord,
};
use crate::calib::Calibration;
use crate::clock::Clock;
use crate::link::{self, Link, StateSample};
use crate::thread::{JoinOnDrop, spawn_named};

/// Lockstep, idle: how long the loop waits for a request between two idle ticks.
const LOCKSTEP_IDLE_WAIT: Duration = Duration::from_millis(2);
/// Lossless telemetry, full channel: how long the loop waits before trying again.
const LOSSLESS_RETRY: Duration = Duration::from_micros(200);

/// Whether telemetry may be dropped when its consumer lags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordPolicy {
    /// `try_send`; a full channel drops the record (counted). Real-time runs.
    Lossy,
    /// Wait for room: every tick is recorded. Lockstep runs only, with a consumer.
    Lossless,
}

/// The loop's configuration, derived from the calibration.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub period_us: u64,
    pub stale_state_us: u64,
    /// A command is valid this long after the firmware time of the state it answers.
    pub command_validity_us: u64,
    /// Wait for the simulator's answer to each command (simulated clock).
    pub lockstep: bool,
    /// In lockstep, how long (real time) an answer may take before the link counts as lost.
    pub lockstep_timeout: Duration,
    /// Ticks to wait for the firmware to report itself armed after an arm request.
    pub arming_grace_ticks: u32,
    /// Overruns in a row that latch a fault.
    pub max_consecutive_overruns: u32,
    pub safe_action: Vec<f32>,
    /// `(min, max)` per action channel: every command is clamped to them.
    pub action_limits: Vec<(f32, f32)>,
    pub record_policy: RecordPolicy,
    pub record_capacity: usize,
    /// Every tick record is also offered here (the viewer, in a run with one):
    /// non-blocking, non-allocating, drops counted by the sink.
    pub telemetry: super::Telemetry,
}

impl LoopConfig {
    pub fn from_calibration(calib: &Calibration, lockstep: bool) -> Self {
        Self {
            period_us: calib.control_period_us,
            stale_state_us: calib.stale_state_us,
            command_validity_us: 2 * calib.control_period_us,
            lockstep,
            lockstep_timeout: Duration::from_micros(calib.link_timeout_us.max(1_000_000)),
            arming_grace_ticks: 25,
            max_consecutive_overruns: 3,
            safe_action: calib.safe_action(),
            action_limits: calib.actions.iter().map(|a| (a.min, a.max)).collect(),
            record_policy: RecordPolicy::Lossy,
            record_capacity: 4096,
            telemetry: super::Telemetry::none(),
        }
    }
}

/// What the loop measured and counted over its life, returned when it stops.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LoopReport {
    pub timing: TimingReport,
    pub faults: FaultCounts,
    pub records_dropped: u64,
    pub episodes: u32,
    pub final_mode: Mode,
}

/// The running loop: its channels and its thread (joined on drop, after a stop request).
pub struct LoopHandle {
    pub requests: Sender<Request>,
    pub records: Receiver<TickRecord>,
    pub episodes: Receiver<EpisodeSummary>,
    /// Controllers replaced by [`Request::SetController`] or a phase, to be dropped off
    /// the loop.
    pub retired: Receiver<Box<dyn Controller>>,
    /// Objectives replaced by a phase (or refused by the controller), likewise.
    pub retired_objectives: Receiver<Objective>,
    records_dropped: Arc<AtomicU64>,
    thread: Option<JoinOnDrop<LoopReport>>,
}

impl LoopHandle {
    pub fn records_dropped(&self) -> u64 {
        self.records_dropped.load(Ordering::Relaxed)
    }

    /// Asks the loop to disarm and stop, and waits for its report.
    pub fn stop(mut self) -> Option<LoopReport> {
        let _ = self.requests.send(Request::Stop);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        let _ = self.requests.try_send(Request::Stop);
    }
}

/// Starts the control thread `handful-control`.
pub fn spawn(
    config: LoopConfig,
    link: Arc<Link>,
    controller: Box<dyn Controller>,
    clock: Clock,
) -> std::io::Result<LoopHandle> {
    let (request_tx, request_rx) = bounded(16);
    let (record_tx, record_rx) = bounded(config.record_capacity);
    let (episode_tx, episode_rx) = bounded(64);
    let (retired_tx, retired_rx) = bounded(4);
    let (retired_objective_tx, retired_objective_rx) = bounded(4);
    let records_dropped = Arc::new(AtomicU64::new(0));
    let mut limits = [(0.0, 0.0); MAX_ACTION_DIM];
    for (slot, &limit) in limits.iter_mut().zip(&config.action_limits) {
        *slot = limit;
    }
    let mut ticker = Ticker {
        timing: Timing::new(config.period_us),
        safe: array_from(&config.safe_action),
        action_dim: config.safe_action.len(),
        config,
        link,
        controller,
        profiler: Clock::real(),
        clock,
        requests: request_rx,
        records: record_tx,
        episodes: episode_tx,
        retired: retired_tx,
        retired_objectives: retired_objective_tx,
        records_dropped: Arc::clone(&records_dropped),
        mode: Mode::Idle,
        phase: PhaseKind::Forward,
        holding: false,
        faults: FaultCounts::default(),
        episode: None,
        episodes_started: 0,
        last_count: 0,
        expect_answer: false,
        consecutive_overruns: 0,
        last_fault: None,
        limits,
        tick: 0,
    };
    let thread = spawn_named("handful-control", move || ticker.run())?;
    Ok(LoopHandle {
        requests: request_tx,
        records: record_rx,
        episodes: episode_rx,
        retired: retired_rx,
        retired_objectives: retired_objective_rx,
        records_dropped,
        thread: Some(thread),
    })
}

struct Episode {
    index: u32,
    phase: Phase,
    step: u32,
    episode_return: f64,
    /// Set until the first state after the reset and arm has been seen.
    awaiting_start: Option<StartPhase>,
    /// The action sent last tick and the state count it answered, awaiting its outcome.
    pending: Option<([f32; MAX_ACTION_DIM], u64)>,
    first_tick: u64,
    /// Ticks the start may still take (no state yet, firmware not yet armed).
    start_grace_left: u32,
}

enum StartPhase {
    /// Send the reset (if any) and the arm at the next tick, once the previous command's
    /// answer has been read (so the reset's answer is the next state).
    Arm { reset_seed: Option<u64> },
    /// Sent; waiting for a state newer than `after_count` (and armed, in real time).
    Wait { after_count: u64 },
}

/// What a tick sends.
enum Send {
    Command,
    /// Nothing (lockstep: the tick that resets, whose answer is the next state, and the
    /// ticks between two phases).
    Nothing,
}

struct Ticker {
    config: LoopConfig,
    link: Arc<Link>,
    controller: Box<dyn Controller>,
    clock: Clock,
    /// Real time for measuring compute, even when `clock` is simulated.
    profiler: Clock,
    requests: Receiver<Request>,
    records: Sender<TickRecord>,
    episodes: Sender<EpisodeSummary>,
    retired: Sender<Box<dyn Controller>>,
    retired_objectives: Sender<Objective>,
    records_dropped: Arc<AtomicU64>,
    timing: Timing,
    safe: [f32; MAX_ACTION_DIM],
    action_dim: usize,
    mode: Mode,
    /// The phase started last.
    phase: PhaseKind,
    /// A phase ended and held the robot armed for the next one (driving, no episode).
    holding: bool,
    faults: FaultCounts,
    episode: Option<Episode>,
    episodes_started: u32,
    /// State count of the sample used last tick.
    last_count: u64,
    /// Lockstep: last tick sent something the simulator answers with a state.
    expect_answer: bool,
    consecutive_overruns: u32,
    last_fault: Option<HostFault>,
    /// Calibrated action limits `(min, max)` per channel.
    limits: [(f32, f32); MAX_ACTION_DIM],
    tick: u64,
}

enum Flow {
    Continue,
    Exit,
}

impl Ticker {
    fn run(&mut self) -> LoopReport {
        let period = self.config.period_us;
        let mut deadline = self.clock.now_us();
        loop {
            self.clock.sleep_until(deadline);
            let wake = self.clock.now_us();
            let started = self.profiler.now_us();
            if let Flow::Exit = self.take_requests() {
                break;
            }
            let mut record = self.tick_once(deadline, wake);
            let compute_us = self.profiler.now_us().saturating_sub(started);
            record.compute_us = compute_us;
            self.timing
                .record(wake.saturating_sub(deadline), compute_us);
            let (next, skipped) = next_deadline(deadline, period, self.clock.now_us());
            if skipped > 0 {
                self.timing.record_overrun(skipped);
            }
            self.publish(record);
            // Lockstep, between two phases: the plant waits where the last phase left it
            // (nothing is sent), and so does the simulated clock, so the held state does
            // not age and the link does not look silent.
            if !(self.config.lockstep && self.holding && self.mode.is_driving()) {
                deadline = next;
            }
            self.tick += 1;
            if let Flow::Exit = self.idle_in_lockstep() {
                break;
            }
        }
        self.end_episode(EpisodeEnd::Interrupted);
        let _ = self.link.send(link::Request::Disarm);
        self.mode = Mode::Idle;
        LoopReport {
            timing: self.timing.report(),
            faults: self.faults,
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            episodes: self.episodes_started,
            final_mode: self.mode,
        }
    }

    fn take_requests(&mut self) -> Flow {
        while let Ok(request) = self.requests.try_recv() {
            if let Flow::Exit = self.obey(request) {
                return Flow::Exit;
            }
        }
        Flow::Continue
    }

    /// Lockstep and not driving: nothing needs the plant to move, so wait (a few ms at
    /// most) for a request instead of spinning the simulator through idle steps.
    fn idle_in_lockstep(&mut self) -> Flow {
        if !self.config.lockstep || (self.mode.is_driving() && !self.holding) {
            return Flow::Continue;
        }
        // A plain sleep, then a non-blocking look: a blocking channel receive would
        // register this thread with the channel (allocating on some wake-ups).
        std::thread::sleep(LOCKSTEP_IDLE_WAIT);
        match self.requests.try_recv() {
            Ok(request) => self.obey(request),
            Err(_) => Flow::Continue,
        }
    }

    fn obey(&mut self, request: Request) -> Flow {
        {
            match request {
                Request::StartEpisode(start) => self.start_episode(start),
                Request::Disarm => {
                    self.end_episode(EpisodeEnd::Interrupted);
                    let _ = self.link.send(link::Request::Disarm);
                    self.mode = Mode::Idle;
                    self.holding = false;
                }
                Request::EStop => {
                    self.end_episode(EpisodeEnd::Interrupted);
                    let _ = self.link.send(link::Request::EStop);
                    self.mode = Mode::EStop;
                    self.holding = false;
                }
                Request::SetController(controller) => self.set_controller(controller),
                Request::Stop => return Flow::Exit,
            }
        }
        Flow::Continue
    }

    fn set_controller(&mut self, controller: Box<dyn Controller>) {
        let old = std::mem::replace(&mut self.controller, controller);
        // Dropping a model can free megabytes: never on this thread if avoidable.
        if let Err(TrySendError::Full(old) | TrySendError::Disconnected(old)) =
            self.retired.try_send(old)
        {
            drop(old);
        }
    }

    fn retire_objective(&mut self, objective: Objective) {
        if let Err(TrySendError::Full(old) | TrySendError::Disconnected(old)) =
            self.retired_objectives.try_send(objective)
        {
            drop(old);
        }
    }

    fn start_episode(&mut self, request: EpisodeStart) {
        let EpisodeStart {
            mode,
            phase,
            start,
            controller,
            objective,
        } = request;
        let was_driving = self.mode.is_driving();
        self.end_episode(EpisodeEnd::Interrupted);
        if let Some(controller) = controller {
            self.set_controller(controller);
        }
        let refused = match objective.map(|o| self.controller.replace_objective(o)) {
            Some(Ok(old)) => {
                self.retire_objective(old);
                false
            }
            Some(Err(objective)) => {
                self.retire_objective(objective);
                true
            }
            None => false,
        };
        self.controller.reset();
        self.phase = phase.kind;
        self.holding = false;
        self.mode = if mode.is_driving() {
            mode
        } else {
            Mode::Autonomous
        };
        let awaiting_start = match start {
            Start::Arm { reset_seed } => Some(StartPhase::Arm { reset_seed }),
            Start::Continue => None,
        };
        self.episode = Some(Episode {
            index: self.episodes_started,
            phase,
            step: 0,
            episode_return: 0.0,
            awaiting_start,
            pending: None,
            first_tick: self.tick,
            start_grace_left: self.config.arming_grace_ticks,
        });
        self.episodes_started += 1;
        if start == Start::Continue && !was_driving {
            self.latch(HostFault::NotArmed);
        } else if refused {
            self.latch(HostFault::Controller);
        }
    }

    fn end_episode(&mut self, end: EpisodeEnd) {
        if let Some(episode) = self.episode.take() {
            let summary = EpisodeSummary {
                episode: episode.index,
                phase: episode.phase.kind,
                steps: episode.step,
                episode_return: episode.episode_return,
                end,
                first_tick: episode.first_tick,
                last_tick: self.tick,
            };
            let _ = self.episodes.try_send(summary);
        }
    }

    /// Latches `fault`: safe command from now on, the firmware disarmed, the episode ended.
    fn latch(&mut self, fault: HostFault) {
        self.end_episode(EpisodeEnd::Faulted(fault));
        let _ = self.link.send(link::Request::Disarm);
        self.mode = Mode::Fault;
        self.holding = false;
    }

    fn read_state(&mut self) -> Option<StateSample> {
        if self.config.lockstep && self.expect_answer {
            self.expect_answer = false;
            return self
                .link
                .wait_for_state_after(self.last_count, self.config.lockstep_timeout);
        }
        self.link.latest_state()
    }

    fn tick_once(&mut self, deadline: u64, wake: u64) -> TickRecord {
        let sample = self.read_state();
        let now = self.clock.now_us();
        let mut record = TickRecord {
            tick: self.tick,
            deadline_us: deadline,
            wake_us: wake,
            compute_us: 0,
            mode: self.mode,
            phase: self.phase,
            state: [0.0; MAX_STATE_DIM],
            state_dim: 0,
            state_count: 0,
            state_age_us: 0,
            firmware_us: 0,
            applied_seq: 0,
            armed: false,
            action: self.safe,
            action_dim: self.action_dim as u8,
            command_seq: None,
            fault: None,
            episode: None,
        };
        if let Some(s) = &sample {
            record.state = s.values;
            record.state_dim = s.dim as u8;
            record.state_count = s.count;
            record.state_age_us = now.saturating_sub(s.host_time_us);
            record.firmware_us = s.timestamp_us;
            record.applied_seq = s.last_command_seq;
            record.armed = s.arm_state == handful_protocol::ArmState::Armed;
            self.last_count = s.count;
        }

        // Safety checks on what came in.
        let health = self.link.health(now);
        let input_fault = if !health.connected || health.is_lost {
            Some(HostFault::LinkLost)
        } else {
            match &sample {
                None => Some(HostFault::StaleState),
                Some(_) if record.state_age_us > self.config.stale_state_us => {
                    Some(HostFault::StaleState)
                }
                Some(s) if !s.values[..s.dim].iter().all(|v| v.is_finite()) => {
                    Some(HostFault::NonFiniteState)
                }
                Some(_) => None,
            }
        };

        let mut action = self.safe;
        let mut fault = input_fault;
        let mut send = Send::Command;
        if self.config.lockstep && self.holding && self.mode.is_driving() {
            // Between two phases in lockstep: nothing is sent, so the plant waits where
            // the last phase left it (and the loop's clock with it, see `run`).
            send = Send::Nothing;
        } else if self.mode.is_driving() {
            // While an episode starts, a missing or old state is expected for a few
            // ticks (nothing published yet, a reset in flight): wait, within the grace.
            let starting = self
                .episode
                .as_mut()
                .filter(|e| e.awaiting_start.is_some() && fault == Some(HostFault::StaleState));
            if let Some(episode) = starting {
                if episode.start_grace_left > 0 {
                    episode.start_grace_left -= 1;
                    fault = None;
                } else {
                    fault = Some(HostFault::NotArmed);
                }
            }
            match (fault, sample) {
                (Some(f), _) => self.latch(f),
                (None, Some(s)) => match self.drive(&s, now, &mut action, &mut record) {
                    Ok(what) => send = what,
                    Err(f) => {
                        fault = Some(f);
                        if f.latches() {
                            self.latch(f);
                        }
                        action = self.safe;
                    }
                },
                (None, None) => {}
            }
        }

        // Overrun: a command computed too late is not sent; the safe command is.
        if !self.config.lockstep
            && self.mode.is_driving()
            && self.clock.now_us() >= deadline + self.config.period_us
        {
            action = self.safe;
            self.consecutive_overruns += 1;
            fault = Some(HostFault::Overrun);
            if self.consecutive_overruns >= self.config.max_consecutive_overruns {
                fault = Some(HostFault::RepeatedOverrun);
                self.latch(HostFault::RepeatedOverrun);
            }
        } else {
            self.consecutive_overruns = 0;
        }

        let valid_until = record.firmware_us + self.config.command_validity_us;
        let sent = match send {
            Send::Command => Some(
                self.link
                    .send_command(&action[..self.action_dim], valid_until),
            ),
            Send::Nothing => None,
        };
        match sent {
            None => {}
            Some(Ok(seq)) => {
                record.command_seq = Some(seq);
                self.expect_answer = true;
                if let Some(episode) = &mut self.episode
                    && self.mode.is_driving()
                    && episode.awaiting_start.is_none()
                {
                    episode.pending = Some((action, record.state_count));
                }
            }
            Some(Err(link::SendError::Disconnected)) => fault = fault.or(Some(HostFault::LinkLost)),
            Some(Err(_)) => fault = fault.or(Some(HostFault::SendFailed)),
        }
        record.action = action;
        record.mode = self.mode;
        record.fault = fault;
        // Count fault events, not ticks: a fault lasting many ticks counts once. Idle,
        // the record shows them but they are not counted (no state yet at start-up is
        // not an event).
        if let Some(f) = fault
            && self.last_fault != Some(f)
            && (record.mode.is_driving() || self.mode == Mode::Fault)
        {
            self.faults.add(f);
        }
        self.last_fault = fault;
        record
    }

    /// The driving modes' work: episode bookkeeping, the controller, the action checks.
    fn drive(
        &mut self,
        sample: &StateSample,
        now: u64,
        action: &mut [f32; MAX_ACTION_DIM],
        record: &mut TickRecord,
    ) -> Result<Send, HostFault> {
        let state = &sample.values[..sample.dim];
        if let Some(episode) = &mut self.episode {
            match &mut episode.awaiting_start {
                Some(StartPhase::Arm { reset_seed }) => {
                    let mut send = Send::Command;
                    if let Some(seed) = *reset_seed {
                        self.link
                            .send(link::Request::Reset { seed })
                            .map_err(|_| HostFault::SendFailed)?;
                        if self.config.lockstep {
                            send = Send::Nothing;
                            self.expect_answer = true;
                        }
                    }
                    self.link
                        .send(link::Request::Arm)
                        .map_err(|_| HostFault::SendFailed)?;
                    episode.awaiting_start = Some(StartPhase::Wait {
                        after_count: sample.count,
                    });
                    *action = self.safe;
                    return Ok(send);
                }
                Some(StartPhase::Wait { after_count }) => {
                    let started = sample.count > *after_count
                        && (self.config.lockstep || sample.arm_state == ArmState::Armed);
                    if !started {
                        if episode.start_grace_left == 0 {
                            return Err(HostFault::NotArmed);
                        }
                        episode.start_grace_left -= 1;
                        *action = self.safe;
                        return Ok(Send::Command);
                    }
                    episode.awaiting_start = None;
                }
                None if sample.arm_state != ArmState::Armed => return Err(HostFault::Firmware),
                None => {}
            }
            if let Some((previous, answered_count)) = episode.pending
                && sample.count > answered_count
            {
                let reward = (episode.phase.reward)(state, &previous[..self.action_dim]);
                episode.episode_return += f64::from(reward);
                record.episode = Some(EpisodeStep {
                    episode: episode.index,
                    step: episode.step,
                    reward,
                });
                episode.step += 1;
                episode.pending = None;
                let phase = episode.phase;
                let end = if phase.steps.is_some_and(|n| episode.step >= n) {
                    Some(EpisodeEnd::Completed)
                } else if phase.success.is_some_and(|passed| passed(state)) {
                    Some(EpisodeEnd::Succeeded)
                } else {
                    None
                };
                if let Some(end) = end {
                    self.end_episode(end);
                    match phase.at_end {
                        AtEnd::Disarm => {
                            let _ = self.link.send(link::Request::Disarm);
                            self.mode = Mode::Idle;
                            *action = self.safe;
                            return Ok(Send::Command);
                        }
                        // Real time: the controller goes on acting below; lockstep:
                        // nothing is sent until the next phase starts.
                        AtEnd::Hold => {
                            self.holding = true;
                            if self.config.lockstep {
                                *action = self.safe;
                                return Ok(Send::Nothing);
                            }
                        }
                    }
                }
            }
        } else if sample.arm_state != ArmState::Armed {
            return Err(HostFault::Firmware);
        }

        let obs = Observation {
            state,
            now_us: now,
            state_age_us: record.state_age_us,
            tick: self.tick,
        };
        let out = &mut action[..self.action_dim];
        if self.controller.act(&obs, out).is_err() {
            return Err(HostFault::Controller);
        }
        if !out.iter().all(|v| v.is_finite()) {
            return Err(HostFault::NonFiniteAction);
        }
        for (value, &(lo, hi)) in out.iter_mut().zip(&self.limits) {
            *value = value.clamp(lo, hi);
        }
        Ok(Send::Command)
    }

    fn publish(&mut self, record: TickRecord) {
        self.config.telemetry.offer_tick(&record);
        match self.config.record_policy {
            RecordPolicy::Lossy => {
                if self.records.try_send(record).is_err() {
                    self.records_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            RecordPolicy::Lossless => {
                // Wait for room without a blocking send (which registers this thread with
                // the channel and may allocate): lockstep only, where waiting is allowed.
                let mut record = record;
                loop {
                    match self.records.try_send(record) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            record = back;
                            std::thread::sleep(LOSSLESS_RETRY);
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            self.records_dropped.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
        }
    }
}

fn array_from(values: &[f32]) -> [f32; MAX_ACTION_DIM] {
    let mut out = [0.0; MAX_ACTION_DIM];
    out[..values.len()].copy_from_slice(values);
    out
}
