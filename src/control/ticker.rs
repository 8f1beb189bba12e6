//! The control thread: a fixed-rate loop with absolute deadlines that takes requests,
//! reads the latest state, runs the controller and sends one command per tick, and
//! publishes a [`TickRecord`] for each.
//!
//! It owns the loop and the tick: deadlines and timing, the requests it obeys, the mode,
//! the controller (swaps, objectives, retiring the old ones off the loop), reading the
//! state (in lockstep, waiting for the simulator's answer), sending the command and
//! publishing the record. What an episode is and how it starts and ends is
//! `episode`'s; which fault a tick raises and the safe command that replaces the
//! controller's is `safety`'s.
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
use handful_protocol::{MAX_ACTION_DIM, MAX_STATE_DIM};

use super::episode::{Advance, Episodes, Send};
use super::fault_count::FaultCounts;
use super::safety::Safety;
use super::timing::{Timing, TimingReport, next_deadline};
use super::{
    Controller, EpisodeEnd, EpisodeStart, EpisodeSummary, HostFault, Mode, Objective, Observation,
    Request, TickRecord,
};
use crate::calib::Calibration;
use crate::clock::Clock;
use crate::link::{self, Link, StateSample};
use crate::realtime::{RealtimeConfig, RealtimeStatus};
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
    /// In lockstep, how long (real time) an answer may take before the state counts as
    /// stale. Generous: only the simulator answers in lockstep, and a host loaded by
    /// builds can starve it for over a second (seen: a lockstep practice stopped on
    /// stale states under a load of 10 on 2 cores); a simulator that died is seen at
    /// once by the link.
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
    /// In real time, the firmware's heartbeat intervals (as it announced them) that may
    /// pass without one before [`HostFault::HeartbeatLost`]: 5, MAVLink's convention
    /// (0: not checked). Lockstep has no heartbeat contract and is not checked.
    pub heartbeats_missed: u32,
    /// Every tick record is also offered here (the viewer, in a run with one):
    /// non-blocking, non-allocating, drops counted by the sink.
    pub telemetry: super::Telemetry,
    /// The real-time set-up of the control thread ([`crate::realtime`]; off by default,
    /// and not applied in lockstep, whose clock is the simulator's answers).
    pub realtime: RealtimeConfig,
}

impl LoopConfig {
    pub fn from_calibration(calib: &Calibration, lockstep: bool) -> Self {
        Self {
            period_us: calib.control_period_us,
            stale_state_us: calib.stale_state_us,
            command_validity_us: 2 * calib.control_period_us,
            lockstep,
            lockstep_timeout: Duration::from_micros(calib.link_timeout_us.max(5_000_000)),
            arming_grace_ticks: 25,
            max_consecutive_overruns: 3,
            safe_action: calib.safe_action(),
            action_limits: calib.actions.iter().map(|a| (a.min, a.max)).collect(),
            record_policy: RecordPolicy::Lossy,
            record_capacity: 4096,
            heartbeats_missed: 5,
            telemetry: super::Telemetry::none(),
            realtime: RealtimeConfig::default(),
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
    /// What the real-time set-up achieved (all `false`/`None` when not asked for).
    pub realtime: RealtimeStatus,
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
    realtime: RealtimeStatus,
    thread: Option<JoinOnDrop<LoopReport>>,
}

impl LoopHandle {
    pub fn records_dropped(&self) -> u64 {
        self.records_dropped.load(Ordering::Relaxed)
    }

    /// Drops what the loop has published (records, retired controllers and objectives)
    /// while the caller waits for something else.
    pub fn drain(&self) {
        while self.records.try_recv().is_ok() {}
        while self.retired.try_recv().is_ok() {}
        while self.retired_objectives.try_recv().is_ok() {}
    }

    /// What the real-time set-up achieved.
    pub fn realtime(&self) -> RealtimeStatus {
        self.realtime
    }

    /// Asks the loop to disarm and stop, and waits for its report.
    pub fn stop(mut self) -> Option<LoopReport> {
        let _ = self.requests.send(Request::Stop);
        let realtime = self.realtime;
        let thread = self.thread.take()?;
        // A lossless (lockstep) loop waits for room to publish a record before it takes
        // the next request: drain until it has ended, or it never reads the stop.
        while !thread.is_finished() {
            while self.records.try_recv().is_ok() {}
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        thread
            .join()
            .ok()
            .map(|report| LoopReport { realtime, ..report })
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        let _ = self.requests.try_send(Request::Stop);
    }
}

/// Starts the control thread `handful-control`, with the real-time set-up its config asks
/// for: memory locked before it starts, its CPU and SCHED_FIFO set on it before its first
/// tick, the link's threads beside it and every other thread off its CPU. Set-up refused
/// with `require`: an error, and no tick runs. Logs `control loop started` as the first
/// tick is due.
pub fn spawn(
    config: LoopConfig,
    link: Arc<Link>,
    controller: Box<dyn Controller>,
    clock: Clock,
) -> std::io::Result<LoopHandle> {
    let realtime = config.realtime.clone();
    if realtime.enabled && config.lockstep {
        tracing::warn!(
            "--rt is ignored in lockstep: the loop's clock is the simulator's answers, not \
             deadlines"
        );
    }
    let realtime_on = realtime.enabled && !config.lockstep;
    let refused = |e: crate::realtime::RealtimeError| {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, e)
    };
    let memory_locked = match realtime_on {
        true => crate::realtime::lock_memory(&realtime).map_err(refused)?,
        false => false,
    };
    let (request_tx, request_rx) = bounded(16);
    let (record_tx, record_rx) = bounded(config.record_capacity);
    let (episode_tx, episode_rx) = bounded(64);
    let (retired_tx, retired_rx) = bounded(4);
    let (retired_objective_tx, retired_objective_rx) = bounded(4);
    let records_dropped = Arc::new(AtomicU64::new(0));
    let mut ticker = Ticker {
        timing: Timing::new(config.period_us),
        safety: Safety::new(&config, heartbeat_timeout_us(&config, &link)),
        episodes: Episodes::new(
            episode_tx,
            config.arming_grace_ticks,
            config.safe_action.len(),
        ),
        action_dim: config.safe_action.len(),
        config,
        link,
        controller,
        profiler: Clock::real(),
        clock,
        requests: request_rx,
        records: record_tx,
        retired: retired_tx,
        retired_objectives: retired_objective_tx,
        records_dropped: Arc::clone(&records_dropped),
        mode: Mode::Idle,
        last_count: 0,
        expect_answer: false,
        tick: 0,
    };
    let (setup_tx, setup_rx) = bounded(1);
    let thread_config = realtime.clone();
    let thread = spawn_named("handful-control", move || {
        if realtime_on {
            let setup = crate::realtime::enter_control_thread(&thread_config);
            let go = match &setup {
                Ok(setup) => setup.fifo.is_ok() || !thread_config.require,
                Err(_) => false,
            };
            let _ = setup_tx.send(setup);
            if !go {
                return ticker.report();
            }
        }
        ticker.run()
    })?;
    let mut status = RealtimeStatus {
        requested: realtime.enabled,
        memory_locked,
        ..Default::default()
    };
    if realtime_on {
        let setup = setup_rx
            .recv()
            .map_err(|_| std::io::Error::other("the control thread ended before its first tick"))?
            .map_err(refused)?;
        match &setup.fifo {
            Ok(priority) => status.fifo_priority = Some(*priority),
            Err(reason) if realtime.require => {
                return Err(refused(crate::realtime::RealtimeError::Scheduling {
                    priority: realtime.priority,
                    reason: reason.clone(),
                }));
            }
            Err(reason) => tracing::warn!(
                "the control thread runs with normal scheduling: SCHED_FIFO at priority {} \
                 refused ({reason}); its ticks may be late while other work loads the \
                 machine; to fix: {} (`handful doctor` checks it; --require-rt makes this an \
                 error)",
                realtime.priority,
                crate::realtime::FIX_RTPRIO
            ),
        }
        status.cpu = setup.cpu;
        let (io_threads, moved) = crate::realtime::place_other_threads(&realtime, &setup);
        status.io_threads = io_threads;
        status.threads_moved = moved;
        tracing::info!(
            fifo_priority = ?status.fifo_priority,
            cpu = ?status.cpu,
            others = %setup.others.as_ref().map_or_else(|| "unchanged".to_owned(), |o| o.to_string()),
            memory_locked,
            io_threads,
            threads_moved = moved,
            "control loop started (real-time set-up)"
        );
    } else {
        tracing::info!("control loop started");
    }
    Ok(LoopHandle {
        requests: request_tx,
        records: record_rx,
        episodes: episode_rx,
        retired: retired_rx,
        retired_objectives: retired_objective_rx,
        records_dropped,
        realtime: status,
        thread: Some(thread),
    })
}

/// How long the firmware may go without a heartbeat (`None`: not checked).
fn heartbeat_timeout_us(config: &LoopConfig, link: &Link) -> Option<u64> {
    let interval_us = u64::from(link.robot().heartbeat_interval_us).max(config.period_us);
    (!config.lockstep && config.heartbeats_missed > 0)
        .then(|| interval_us.saturating_mul(u64::from(config.heartbeats_missed)))
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
    retired: Sender<Box<dyn Controller>>,
    retired_objectives: Sender<Objective>,
    records_dropped: Arc<AtomicU64>,
    timing: Timing,
    safety: Safety,
    episodes: Episodes,
    action_dim: usize,
    mode: Mode,
    /// State count of the sample used last tick.
    last_count: u64,
    /// Lockstep: last tick sent something the simulator answers with a state.
    expect_answer: bool,
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
            if !(self.config.lockstep && self.episodes.holding() && self.mode.is_driving()) {
                deadline = next;
            }
            self.tick += 1;
            if let Flow::Exit = self.idle_in_lockstep() {
                break;
            }
        }
        self.episodes.end(EpisodeEnd::Interrupted, self.tick);
        let _ = self.link.send(link::Request::Disarm);
        self.mode = Mode::Idle;
        self.report()
    }

    fn report(&self) -> LoopReport {
        LoopReport {
            timing: self.timing.report(),
            faults: self.safety.faults(),
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            episodes: self.episodes.started(),
            final_mode: self.mode,
            realtime: RealtimeStatus::default(),
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
        if !self.config.lockstep || (self.mode.is_driving() && !self.episodes.holding()) {
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
        match request {
            Request::StartEpisode(start) => self.start_episode(start),
            Request::Disarm => {
                self.episodes.end(EpisodeEnd::Interrupted, self.tick);
                let _ = self.link.send(link::Request::Disarm);
                self.mode = Mode::Idle;
                self.episodes.release();
            }
            Request::EStop => {
                self.episodes.end(EpisodeEnd::Interrupted, self.tick);
                let _ = self.link.send(link::Request::EStop);
                self.mode = Mode::EStop;
                self.episodes.release();
            }
            Request::SetController(controller) => self.set_controller(controller),
            Request::Stop => return Flow::Exit,
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

    /// Ends the episode in progress, sets up the controller (a new one, a new
    /// objective) and the mode, and starts the requested one.
    fn start_episode(&mut self, request: EpisodeStart) {
        let EpisodeStart {
            mode,
            phase,
            start,
            controller,
            objective,
        } = request;
        let was_driving = self.mode.is_driving();
        self.episodes.end(EpisodeEnd::Interrupted, self.tick);
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
        self.mode = if mode.is_driving() {
            mode
        } else {
            Mode::Autonomous
        };
        if let Err(fault) = self.episodes.begin(phase, start, was_driving, self.tick) {
            self.latch(fault);
        } else if refused {
            self.latch(HostFault::Controller);
        }
    }

    /// Latches `fault`: safe command from now on, the firmware disarmed, the episode ended.
    fn latch(&mut self, fault: HostFault) {
        self.episodes.end(EpisodeEnd::Faulted(fault), self.tick);
        let _ = self.link.send(link::Request::Disarm);
        self.mode = Mode::Fault;
        self.episodes.release();
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
        let safe = self.safety.safe();
        let mut record = TickRecord {
            tick: self.tick,
            deadline_us: deadline,
            wake_us: wake,
            compute_us: 0,
            mode: self.mode,
            phase: self.episodes.phase(),
            state: [0.0; MAX_STATE_DIM],
            state_dim: 0,
            state_count: 0,
            state_age_us: 0,
            firmware_us: 0,
            applied_seq: 0,
            armed: false,
            action: safe,
            action_dim: self.action_dim as u8,
            command_seq: None,
            fault: None,
            episode: None,
            score: f32::NAN,
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

        let health = self.link.health(now);
        let mut fault = self
            .safety
            .check_input(&health, sample.as_ref(), record.state_age_us);
        let mut action = safe;
        let mut send = Send::Command;
        if self.config.lockstep && self.episodes.holding() && self.mode.is_driving() {
            // Between two phases in lockstep: nothing is sent, so the plant waits where
            // the last phase left it (and the loop's clock with it, see `run`).
            send = Send::Nothing;
        } else if self.mode.is_driving() {
            fault = self.episodes.excuse_start(fault);
            match (fault, sample) {
                (Some(f), _) => self.latch(f),
                (None, Some(s)) => match self.drive(&s, now, &mut action, &mut record) {
                    Ok(what) => send = what,
                    Err(f) => {
                        fault = Some(f);
                        if f.latches() {
                            self.latch(f);
                        }
                        action = safe;
                    }
                },
                (None, None) => {}
            }
        }

        // Overrun: a command computed too late is not sent; the safe command is.
        let late = !self.config.lockstep
            && self.mode.is_driving()
            && self.clock.now_us() >= deadline + self.config.period_us;
        if let Some(f) = self.safety.overrun(late) {
            action = safe;
            fault = Some(f);
            if f == HostFault::RepeatedOverrun {
                self.latch(f);
            }
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
                if self.mode.is_driving() {
                    self.episodes.sent(action, record.state_count);
                }
            }
            Some(Err(link::SendError::Disconnected)) => fault = fault.or(Some(HostFault::LinkLost)),
            Some(Err(_)) => fault = fault.or(Some(HostFault::SendFailed)),
        }
        record.action = action;
        record.mode = self.mode;
        record.fault = fault;
        self.safety.count(fault, self.mode);
        record
    }

    /// The driving modes' work: the episode's step, then the controller, its action
    /// checked and clamped by the safety layer.
    fn drive(
        &mut self,
        sample: &StateSample,
        now: u64,
        action: &mut [f32; MAX_ACTION_DIM],
        record: &mut TickRecord,
    ) -> Result<Send, HostFault> {
        let score = self
            .controller
            .objective_score(&sample.values[..sample.dim], self.tick);
        record.score = score.unwrap_or(f32::NAN);
        let advance = self.episodes.advance(
            sample,
            score,
            &self.link,
            self.config.lockstep,
            &mut self.expect_answer,
            &mut record.episode,
            self.tick,
        )?;
        match advance {
            Advance::Act => {}
            Advance::Safe(send) => {
                *action = self.safety.safe();
                return Ok(send);
            }
            Advance::Disarm => {
                let _ = self.link.send(link::Request::Disarm);
                self.mode = Mode::Idle;
                *action = self.safety.safe();
                return Ok(Send::Command);
            }
        }
        let obs = Observation {
            state: &sample.values[..sample.dim],
            now_us: now,
            state_age_us: record.state_age_us,
            tick: self.tick,
        };
        let out = &mut action[..self.action_dim];
        let acted = self.controller.act(&obs, out);
        self.safety.check_action(acted, out)?;
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
