//! Recording: the control loop's tick records become dataset frames, and `handful record`
//! drives the robot by teleop (or the scripted expert) and records every tick.
//!
//! A frame pairs a tick's state and the command it actually sent (after safety) with the
//! reward that command earned, which is known one tick later (when the next state is
//! seen): [`EpisodeRecorder`] holds one tick back to make that pair. It runs on the main
//! thread, never on the control thread.

use std::path::Path;

use crossbeam::channel::Receiver;

use crate::control::{EpisodeSummary, TickRecord};
use crate::dataset::{DatasetError, DatasetWriter, EpisodeMeta, Frame};

/// Builds frames from tick records and writes them, one episode at a time.
pub struct EpisodeRecorder {
    writer: DatasetWriter,
    /// Expert (teleop, scripted expert) or learner (autonomous) data.
    is_expert: bool,
    task: String,
    /// The tick whose outcome the next tick reports.
    pending: Option<TickRecord>,
    /// The newest complete frame, held until it is known whether it ends the episode.
    last: Option<Frame>,
    active: bool,
    frames: u64,
    /// Every frame of the current (or last ended) episode, for the learner's buffers.
    episode: Vec<Frame>,
}

impl EpisodeRecorder {
    pub fn new(writer: DatasetWriter, task: &str, is_expert: bool) -> Self {
        Self {
            writer,
            is_expert,
            task: task.to_owned(),
            pending: None,
            last: None,
            active: false,
            frames: 0,
            episode: Vec::new(),
        }
    }

    pub fn writer(&self) -> &DatasetWriter {
        &self.writer
    }

    /// Frames recorded in the current episode.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The frames of the current episode, or of the last one ended (also when it was
    /// discarded from the dataset).
    pub fn episode_frames(&self) -> &[Frame] {
        &self.episode
    }

    /// Starts an episode in the dataset.
    pub fn begin(&mut self) -> Result<(), DatasetError> {
        self.writer.begin_episode(&self.task)?;
        self.pending = None;
        self.last = None;
        self.active = true;
        self.frames = 0;
        self.episode.clear();
        Ok(())
    }

    /// Takes one tick record (in tick order).
    pub fn on_tick(&mut self, record: &TickRecord) -> Result<(), DatasetError> {
        if !self.active {
            return Ok(());
        }
        if let (Some(step), Some(previous)) = (record.episode, self.pending.as_ref()) {
            let frame = Frame {
                state: previous.state().to_vec(),
                action: previous.action().to_vec(),
                reward: step.reward,
                done: false,
                host_time_us: previous.wake_us as i64,
                firmware_time_us: previous.firmware_us as i64,
                is_expert: self.is_expert,
                command_seq: previous.command_seq.map_or(-1, i64::from),
                applied_command_seq: if previous.armed && previous.state_count > 0 {
                    i64::from(previous.applied_seq)
                } else {
                    -1
                },
                phase: i64::from(previous.phase.index()),
                reset_score: previous.score,
            };
            if let Some(done) = self.last.replace(frame) {
                self.writer.push(&done)?;
                self.frames += 1;
                self.episode.push(done);
            }
        }
        self.pending = Some(*record);
        Ok(())
    }

    /// Ends the episode: its last frame is marked done; `keep = false` discards it.
    pub fn end(&mut self, keep: bool) -> Result<Option<EpisodeMeta>, DatasetError> {
        if !self.active {
            return Ok(None);
        }
        self.active = false;
        if let Some(mut last) = self.last.take() {
            last.done = true;
            self.writer.push(&last)?;
            self.frames += 1;
            self.episode.push(last);
        }
        self.pending = None;
        // An episode that never produced a frame (a fault at its start) has nothing to
        // keep: it is discarded, not an error.
        self.writer.end_episode(keep && self.frames > 0)
    }

    pub fn close(self) -> Result<(), DatasetError> {
        self.writer.close()
    }

    /// Feeds the records up to the tick that ended the episode `summary` reports (waiting
    /// for it: the loop publishes a tick's record after that tick's summary), then ends
    /// the episode. A record already past the episode is dropped (the loop is idle then).
    pub fn finish_episode(
        &mut self,
        records: &Receiver<TickRecord>,
        summary: &EpisodeSummary,
        keep: bool,
    ) -> Result<Option<EpisodeMeta>, DatasetError> {
        while let Ok(record) = records.recv_timeout(std::time::Duration::from_secs(2)) {
            if record.tick <= summary.last_tick {
                self.on_tick(&record)?;
            }
            if record.tick >= summary.last_tick {
                break;
            }
        }
        self.end(keep)
    }
}

impl crate::episodes::Watch for EpisodeRecorder {
    fn record(&mut self, record: &TickRecord) -> anyhow::Result<()> {
        Ok(self.on_tick(record)?)
    }
}

/// Opens `root` for appending, or creates it with `spec` if it does not exist.
pub fn open_or_create(
    root: &Path,
    spec: crate::dataset::DatasetSpec,
) -> anyhow::Result<DatasetWriter> {
    if !root.join("meta/info.json").exists() {
        return Ok(DatasetWriter::create(root, spec)?);
    }
    // Appending: the episodes must be this robot's, checked before it moves.
    let info = crate::dataset::Info::load(root)?;
    let differences = spec.differences(&info);
    if !differences.is_empty() {
        anyhow::bail!(
            "{} holds another robot's episodes, so this robot's cannot be appended: {}",
            root.display(),
            differences.join("; ")
        );
    }
    let mut writer = DatasetWriter::open_append(root)?;
    if !writer.recovery().is_clean() {
        tracing::warn!(dataset = %root.display(), report = ?writer.recovery(), "recovered what a crash left");
    }
    let provenance = &spec.provenance;
    if info.handful.provenance.calibration_sha256 != provenance.calibration_sha256 {
        tracing::warn!(
            dataset = %root.display(),
            calibration = &provenance.calibration_sha256[..12.min(provenance.calibration_sha256.len())],
            "appending under another calibration of the same robot: each episode names its own"
        );
    }
    writer.set_calibration(&provenance.calibration_sha256, &provenance.calibration_text);
    Ok(writer)
}

/// Who drives while recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TeleopKind {
    /// A gamepad (gilrs).
    Gamepad,
    /// The terminal keyboard.
    Keyboard,
    /// Operator inputs the firmware forwards (Teleop frames).
    Firmware,
    /// The task's scripted expert, episodes started automatically (simulators, tests).
    Expert,
}

/// A recording session, resolved.
#[derive(Clone, Debug)]
pub struct RecordConfig {
    pub robot: crate::run::RobotOptions,
    pub teleop: TeleopKind,
    pub dataset: std::path::PathBuf,
    /// The task string stored with each episode (lerobot's `task`).
    pub task: String,
    /// Expert only: how many episodes to record.
    pub episodes: u32,
    /// Steps per episode (expert: default the task's; devices: none, the operator stops).
    pub steps: Option<u32>,
    /// Scripted expert: what happens when an episode ends on a fault (an operator decides
    /// for themself when to start again).
    pub recovery: crate::recovery::RecoveryPolicy,
}

/// What a session recorded.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordSummary {
    pub episodes_kept: u32,
    pub episodes_discarded: u32,
    pub frames: u64,
    pub records_dropped: u64,
    /// Host, firmware and link faults in one place (printed at the end).
    pub faults: crate::faults::FaultAccount,
    /// Faulted episodes the session recovered from (re-armed and went on).
    pub recoveries: u32,
    /// Why the session stopped before its last episode, if it did (it then exits non-zero).
    pub stopped: Option<String>,
}

/// Drives the robot by teleop and records every tick of every episode into
/// `config.dataset` (created, or appended to). On a dataset error (a full disk) the robot
/// is disarmed before the error is returned.
pub fn record(
    config: &RecordConfig,
    calib: &crate::calib::Calibration,
    exe: &Path,
) -> anyhow::Result<RecordSummary> {
    use anyhow::Context;
    use std::sync::Arc;

    use crate::control::{self, LoopConfig, Mode, Phase, RecordPolicy, Request};
    use crate::teleop::{self, TeleopController, TeleopMapping, TeleopSource};

    if config.robot.lockstep && config.teleop != TeleopKind::Expert {
        anyhow::bail!(
            "lockstep runs faster than real time: a person cannot drive it (use --teleop expert)"
        );
    }
    let session = serde_json::json!({
        "teleop": config.teleop,
        "task": config.task,
        "lockstep": config.robot.lockstep,
        "seed": config.robot.seed,
        "sim_args": config.robot.sim_args,
        "port": config.robot.port,
    });
    let spec = crate::dataset::DatasetSpec::from_calibration(calib, session, None);
    // The dataset first: a refusal (another robot's) comes before anything starts.
    let writer = open_or_create(&config.dataset, spec)
        .with_context(|| format!("opening dataset {}", config.dataset.display()))?;
    std::fs::create_dir_all(&config.robot.dir).context("creating the session directory")?;
    let robot = crate::run::Robot::connect(calib, &config.robot, exe)?;
    let link = Arc::clone(&robot.link);
    let mut recorder = EpisodeRecorder::new(writer, &config.task, true);

    let source: Option<Arc<dyn TeleopSource>> = match config.teleop {
        TeleopKind::Expert => None,
        TeleopKind::Gamepad => Some(Arc::new(teleop::gamepad::GamepadSource::open(
            robot.clock.clone(),
        )?)),
        TeleopKind::Keyboard => Some(Arc::new(
            teleop::keyboard::KeyboardSource::open(robot.clock.clone())
                .context("the keyboard needs a terminal")?,
        )),
        TeleopKind::Firmware => {
            if !link.robot().has_teleop() {
                anyhow::bail!(
                    "this robot's firmware does not forward teleop inputs (no CAP_TELEOP)"
                );
            }
            Some(Arc::new(teleop::FirmwareSource::new(Arc::clone(&link))))
        }
    };
    let controller: Box<dyn control::Controller> = match &source {
        None => crate::run::expert_controller(calib, config.robot.lockstep)?,
        Some(source) => Box::new(TeleopController::new(
            Arc::clone(source),
            TeleopMapping {
                axis_for_action: (0..calib.action_dim()).collect(),
                limits: calib.actions.iter().map(|a| (a.min, a.max)).collect(),
                safe: calib.safe_action(),
                max_step_fraction: 0.25,
                stale_input_us: 200_000,
            },
            robot.clock.clone(),
        )),
    };
    let mut loop_config = LoopConfig::from_calibration(calib, config.robot.lockstep);
    loop_config.realtime = config.robot.realtime.clone();
    loop_config.record_policy = if config.robot.lockstep {
        RecordPolicy::Lossless
    } else {
        RecordPolicy::Lossy
    };
    let handle = control::spawn(
        loop_config,
        Arc::clone(&link),
        controller,
        robot.clock.clone(),
    )?;
    let mut driver = crate::episodes::EpisodeDriver::new(
        calib,
        Arc::clone(&link),
        config.robot.lockstep,
        config.robot.seed,
        config.recovery,
    );
    let mut summary = RecordSummary::default();
    let mut outcome: anyhow::Result<()> = Ok(());

    match &source {
        None => {
            let steps = config.steps.unwrap_or(calib.task.episode_steps() as u32);
            let phase = Phase::of_task(calib.task, Some(steps));
            for _ in 0..config.episodes {
                if let Err(e) = recorder.begin() {
                    outcome = Err(e.into());
                    break;
                }
                let episode = match driver.episode(&handle, Mode::Teleop, phase, &mut recorder) {
                    Ok(episode) => episode,
                    Err(e) => {
                        // Nothing of an episode that did not start or end is kept.
                        let _ = recorder.end(false);
                        match e.downcast::<crate::recovery::Stopped>() {
                            Ok(why) => {
                                tracing::error!(%why, "stopping the recording");
                                summary.stopped = Some(why.to_string());
                            }
                            Err(e) => outcome = Err(e),
                        }
                        break;
                    }
                };
                let keep = episode.end.finished();
                match recorder.end(keep) {
                    Ok(_) => tally(&mut summary, keep, recorder.frames()),
                    Err(e) => {
                        outcome = Err(e.into());
                        break;
                    }
                }
            }
            summary.recoveries = driver.recoveries();
            if summary.stopped.is_none() {
                summary.stopped = driver.ended_on_fault();
            }
        }
        Some(source) => {
            outcome = operator_session(
                &handle,
                &link,
                source.as_ref(),
                &mut recorder,
                &mut summary,
                &|index| driver.reset_seed(index),
                calib.task,
            )
            .map_err(anyhow::Error::new);
        }
    }
    if let Err(e) = outcome {
        // A full disk (or any write error): the robot goes to the safe state first.
        let _ = handle.requests.send(Request::Disarm);
        handle.stop();
        return Err(e.context(format!(
            "recording into {} failed; the robot was disarmed",
            config.dataset.display()
        )));
    }
    summary.records_dropped = handle.records_dropped();
    let report = handle.stop();
    summary.faults =
        crate::faults::FaultAccount::new(report.as_ref(), &link.stats(), summary.records_dropped);
    recorder.close().context("closing the dataset")?;
    Ok(summary)
}

fn tally(summary: &mut RecordSummary, kept: bool, frames: u64) {
    if kept {
        summary.episodes_kept += 1;
        summary.frames += frames;
    } else {
        summary.episodes_discarded += 1;
    }
}

/// The interactive session: button presses start, keep, discard and stop episodes; a
/// status line shows what is happening.
fn operator_session(
    handle: &crate::control::LoopHandle,
    link: &crate::link::Link,
    source: &dyn crate::teleop::TeleopSource,
    recorder: &mut EpisodeRecorder,
    summary: &mut RecordSummary,
    reset: &dyn Fn(u32) -> Option<u64>,
    task: crate::task::Task,
) -> Result<(), DatasetError> {
    use crate::control::{EpisodeStart, Mode, Phase, Request};
    use crate::teleop::{EpisodeButtons, EpisodeCommand};

    let clock = crate::clock::Clock::real();
    let mut buttons = EpisodeButtons::default();
    let mut keep_next = true;
    let mut last_status_us = 0;
    let mut index = 0u32;
    eprint!(
        "[record] {}: Enter/A start, k/B keep, x/X discard, space/guide e-stop, q/select quit; hold the dead-man to drive\r\n",
        source.name()
    );
    let mut interrupting = false;
    let mut quitting = false;
    // What the robot was last commanded (the status line's), and whether it drove.
    let mut last_command: Option<f32> = None;
    loop {
        while let Ok(record) = handle.records.try_recv() {
            if record.command_seq.is_some() {
                last_command = Some(record.action[0]);
            }
            recorder.on_tick(&record)?;
        }
        if quitting && !recorder.is_active() {
            return Ok(());
        }
        if let Some(signal) = crate::signals::requested() {
            if !recorder.is_active() {
                summary.stopped = Some(crate::recovery::Stopped::Signal(signal).to_string());
                return Ok(());
            }
            // Like a fault, a signal is not where the operator chose to end: discarded.
            if !interrupting {
                interrupting = true;
                keep_next = false;
                let _ = handle.requests.send(Request::Disarm);
            }
        }
        if let Ok(episode) = handle.episodes.try_recv() {
            // A faulted episode is never kept: the operator did not choose where it ended.
            let faulted = matches!(episode.end, crate::control::EpisodeEnd::Faulted(_));
            let keep = keep_next && episode.steps > 0 && !faulted;
            recorder.finish_episode(&handle.records, &episode, keep)?;
            tally(summary, keep, recorder.frames());
            eprint!(
                "\r\n[record] episode {} {} ({} frames)\r\n",
                episode.episode,
                if keep { "kept" } else { "discarded" },
                recorder.frames()
            );
            if let crate::control::EpisodeEnd::Faulted(fault) = episode.end {
                eprint!(
                    "[record] it ended on a fault ({}): the robot is disarmed; start again once the link shows ok\r\n",
                    fault.name()
                );
            }
        }
        let input = source.latest();
        match buttons.poll(input) {
            Some(EpisodeCommand::Start) if !recorder.is_active() => {
                recorder.begin()?;
                keep_next = true;
                let _ = handle
                    .requests
                    .send(Request::StartEpisode(EpisodeStart::arm(
                        Mode::Teleop,
                        Phase::of_task(task, None),
                        reset(index),
                    )));
                index += 1;
            }
            Some(EpisodeCommand::StopKeep) => {
                keep_next = true;
                let _ = handle.requests.send(Request::Disarm);
            }
            Some(EpisodeCommand::StopDiscard) => {
                keep_next = false;
                let _ = handle.requests.send(Request::Disarm);
            }
            Some(EpisodeCommand::EStop) => {
                keep_next = false;
                let _ = handle.requests.send(Request::EStop);
            }
            Some(EpisodeCommand::Quit) if !recorder.is_active() => return Ok(()),
            Some(EpisodeCommand::Quit) if !quitting => {
                // q or Ctrl-C while recording: the episode is stopped and discarded (the
                // operator did not end it where a demonstration ends), then the session.
                quitting = true;
                keep_next = false;
                let _ = handle.requests.send(Request::Disarm);
                eprint!("\r\n[record] quitting: the episode in progress is discarded\r\n");
            }
            _ => {}
        }
        let now = clock.now_us();
        if now - last_status_us > 250_000 {
            last_status_us = now;
            let stats = link.stats();
            let health = link.health(link.clock().now_us());
            let deadman = input.is_some_and(|i| i.buttons & crate::teleop::BUTTON_DEADMAN != 0);
            eprint!(
                "\r[record] {} | dead-man {} | command {} | episode frames {:>5} | link {} | crc {} drops {} | heartbeat {} ms   ",
                if recorder.is_active() {
                    "RECORDING"
                } else {
                    "idle     "
                },
                if deadman { "held    " } else { "released" },
                last_command.map_or_else(|| "     -".to_owned(), |c| format!("{c:>+6.2}")),
                recorder.frames(),
                if health.is_usable() { "ok  " } else { "LOST" },
                stats.crc_errors,
                stats.dropped_frames,
                health.heartbeat_age_us.map_or(-1, |a| (a / 1000) as i64),
            );
        }
        clock.sleep_us(10_000);
    }
}
