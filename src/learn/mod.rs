//! The learning job (`handful run`): seed the expert data (a recorded dataset, or
//! episodes of the scripted expert), train a first model, then alternate MPC trials with
//! background retraining on expert and learner data in equal measure, keeping every
//! trial's experience on disk and the best policy seen.
//!
//! Without expert data it is pure PETS: one trial of random actions first. Runs on the
//! main thread; the control loop and the retrainer ([`crate::sysid::Retrainer`]) run on
//! their own threads. It owns the orchestration: the robot and the viewer, the loop, the
//! run directory (`config.json`, the `expert/` and `learner/` datasets,
//! `learning_curve.csv`, `best.onnx`, `summary.json`) and the episodes
//! ([`crate::episodes::EpisodeDriver`]); [`crate::sysid`] owns the experience and the
//! retrainer and knows none of this.
//!
//! Which model drove which steps is `swaps`'s: each controller the retrainer publishes
//! is forwarded to the loop wrapped in a counter, so every trial row names the models
//! that drove it. Where the experience comes from (`--expert`, `--resume RUN`) is
//! `sources`'s; model versions continue after the resumed run's last one.

mod evaluate;
mod practice;
mod sources;
mod swaps;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use crossbeam::channel::bounded;
use serde::Serialize;

use crate::calib::Calibration;
use crate::clock;
use crate::control::{
    self, EpisodeSummary, HostFault, LoopConfig, LoopHandle, Mode, RecordPolicy, Request,
};
use crate::dataset::{DatasetReader, DatasetSpec, Frame};
use crate::record::{EpisodeRecorder, open_or_create};
use crate::run::{Robot, RobotOptions, write_json};
use crate::sysid::{
    Kind, ModelVersion, PairingCounts, RandomController, Retrainer, RetrainerConfig, Stepping,
    SysidEvent, SysidRequest, Transition, transitions_from_frames,
};
pub use practice::{PhaseRow, PracticeSummary};
use sources::{last_model_version, remove_stray_candidate, seed_sources};
use swaps::Swaps;
pub use swaps::{Driver, ModelUse};

/// A learning run, resolved.
#[derive(Clone, Debug, Serialize)]
pub struct LearnConfig {
    pub name: String,
    pub out_dir: PathBuf,
    #[serde(skip)]
    pub robot: RobotOptions,
    pub trials: u32,
    pub steps: u32,
    /// Demonstrations to learn from (a LeRobot v3 dataset).
    pub expert_dataset: Option<PathBuf>,
    /// Scripted-expert episodes to record first when no expert data was loaded (0: none;
    /// with no data at all, pure PETS: one random trial first).
    pub expert_episodes: u32,
    /// A previous learning run whose experience (everything it learned from) seeds this one.
    pub resume: Option<PathBuf>,
    #[serde(skip)]
    pub retrainer: RetrainerConfig,
    #[serde(skip)]
    pub viz: crate::viz::VizOptions,
    /// Wait for each retrain before the next trial (PETS's schedule). Otherwise trials
    /// run back to back and models are swapped in whenever they are ready.
    pub wait_for_model: bool,
    /// What happens when an episode ends on a fault.
    pub recovery: crate::recovery::RecoveryPolicy,
    /// Reset-free practice after the first model instead of `trials` episodic trials
    /// (`handful practice`).
    pub practice: Option<crate::medal::PracticeConfig>,
}

impl LearnConfig {
    /// Checks everything that can be checked before the robot is touched: the expert
    /// fraction, the trainer settings, the datasets and the run to resume. The error says
    /// what is wrong; nothing is clamped or guessed.
    pub fn validate(&self, calib: &Calibration) -> anyhow::Result<()> {
        let fraction = self.retrainer.expert_fraction;
        if !(fraction.is_finite() && (0.0..=1.0).contains(&fraction)) {
            bail!(
                "expert fraction {fraction} is out of range: it is the share of each training \
                 batch drawn from expert data, a number from 0 to 1"
            );
        }
        if self.steps == 0 {
            bail!("steps per episode must be at least 1");
        }
        if let Some(practice) = &self.practice {
            practice.validate(calib.task)?;
            if practice.reset == crate::medal::ResetMode::Oracle && self.robot.port.is_some() {
                bail!("--reset oracle needs the simulator: a real robot cannot be teleported");
            }
            if self.expert_episodes == 0 && self.expert_dataset.is_none() && self.resume.is_none() {
                bail!(
                    "practice needs demonstrations (their start states are where it resets \
                     to): give --expert DATASET or --expert-episodes N ≥ 1"
                );
            }
        }
        crate::train::Trainer::new(
            self.retrainer.trainer.clone(),
            calib.state_dim(),
            calib.action_dim(),
            self.retrainer.seed,
        )
        .context("trainer settings")?;
        // The planner every model will drive, checked now rather than after the
        // demonstrations and the first fit (the robot would have moved for nothing).
        let bounds: Vec<(f32, f32)> = calib.actions.iter().map(|a| (a.min, a.max)).collect();
        let trainer = &self.retrainer.trainer;
        let members = if trainer.export_elites_only {
            trainer.elite_count
        } else {
            trainer.ensemble_size
        };
        crate::mpc::Planner::new(
            self.retrainer.planner.clone(),
            calib.state_dim(),
            calib.action_dim(),
            &bounds,
            members,
        )
        .context("planner settings")?;
        // Every dataset learned from must be this robot's: refused now, naming what
        // differs, not as "no model could be trained" after the demonstrations.
        let spec = DatasetSpec::from_calibration(calib, serde_json::Value::Null, None);
        for (path, kind) in seed_sources(self)? {
            let reader = DatasetReader::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let differences = spec.differences(reader.info());
            if !differences.is_empty() {
                bail!(
                    "{} ({kind:?} data) was recorded on another robot: {}",
                    path.display(),
                    differences.join("; ")
                );
            }
            if !reader.info().has_provenance() {
                tracing::warn!(
                    dataset = %path.display(),
                    robot_type = reader.info().robot_type.as_deref().unwrap_or(""),
                    "no `handful` block in meta/info.json (another tool wrote it): taken as \
                     this robot's by its robot_type, rate and channel names; its calibration \
                     is unknown, and its steps are paired as recorded in real time"
                );
            }
            let sha = &reader.info().handful.provenance.calibration_sha256;
            if !sha.is_empty() && *sha != calib.hash {
                tracing::warn!(dataset = %path.display(), "recorded under another calibration of this robot");
            }
        }
        if let Some(run) = &self.resume
            && let (Ok(run), Ok(out)) = (run.canonicalize(), self.out_dir.canonicalize())
            && run == out
        {
            bail!(
                "cannot resume {} into itself: give the new run its own directory",
                run.display()
            );
        }
        Ok(())
    }
}

/// One row of the learning curve.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrialRow {
    pub trial: u32,
    /// `expert`, `random` or `mpc`.
    pub policy: &'static str,
    /// The model that computed most of this trial's commands (MPC trials).
    pub model_version: Option<u32>,
    /// Every model that computed some of this trial's commands, in order.
    pub drivers: Vec<Driver>,
    pub episode_return: f64,
    pub steps: u32,
    pub end: String,
    /// The loop's ticks this trial spanned (start and end included).
    pub first_tick: u64,
    pub last_tick: u64,
    /// Validation NLL of the model published after this trial (if one was, and the trial
    /// waited for it).
    pub validation_nll_after: Option<f64>,
    pub plan_p50_us: u64,
    pub plan_p99_us: u64,
    /// Ticks whose command was replaced by the safe command for lateness.
    pub deadline_misses: u32,
}

/// A dataset this run was seeded with, and what it gave.
#[derive(Clone, Debug, Serialize)]
pub struct SeedSource {
    pub path: PathBuf,
    pub kind: Kind,
    /// Episodes used.
    pub episodes: usize,
    /// Expert episodes not used: recovered after a crash, never kept by an operator.
    pub skipped_recovered: usize,
    pub transitions: usize,
}

/// The run this one resumed.
#[derive(Clone, Debug, Serialize)]
pub struct Resumed {
    pub run: PathBuf,
    /// Its newest model version; this run's versions continue after it.
    pub last_model_version: u32,
    /// Whether its `models/candidate.onnx`, left by an interrupted retrain, was removed.
    pub removed_stray_candidate: bool,
}

/// What the retrainer was asked and what it answered.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RetrainCounts {
    pub requested: u32,
    pub published: u32,
    pub rejected: u32,
    pub failed: u32,
    /// Retrains still running when the last trial ended (their outcome is counted above
    /// and their model, if published, drove no trial).
    pub running_at_end: u32,
    /// Retrains asked for while another ran and not yet started when the last trial
    /// ended: never run.
    pub queued_at_end: u32,
}

/// What a learning run produced (also `summary.json`).
#[derive(Clone, Debug, Serialize)]
pub struct LearnSummary {
    pub name: String,
    pub calibration_sha256: String,
    /// The plant's physics (the calibration's `[plant]`): what the simulator ran and
    /// the expert assumed.
    pub plant: crate::plant::PlantParams,
    pub resumed_from: Option<Resumed>,
    /// The datasets loaded before the first trial, in order.
    pub seed: Vec<SeedSource>,
    pub trials: Vec<TrialRow>,
    pub models: Vec<ModelVersion>,
    pub model_use: Vec<ModelUse>,
    pub retrains: RetrainCounts,
    /// The model that computed most of the commands of the trial with the highest return.
    pub best_model: Option<u32>,
    pub best_return: Option<f64>,
    /// The share of that trial's steps the best model computed (1: all of them).
    pub best_model_share: Option<f64>,
    /// The first MPC trial reaching 170 (the PETS benchmark's level), if any.
    pub first_trial_at_170: Option<u32>,
    pub loop_report: Option<control::LoopReport>,
    pub link: crate::link::LinkStats,
    /// Host, firmware and link faults in one place (printed at the end).
    pub faults: crate::faults::FaultAccount,
    /// Faulted episodes the run recovered from (re-armed and went on).
    pub recoveries: u32,
    /// Why the run stopped before its last trial, if it did (it then exits non-zero).
    pub stopped: Option<String>,
    /// How recorded steps were paired with the commands applied by them: transitions
    /// kept, chains ended at gaps, steps dropped for an unknown command.
    pub pairing: PairingCounts,
    /// Reset-free practice, when the run practised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practice: Option<PracticeSummary>,
    pub started_unix: f64,
    pub finished_unix: f64,
}

/// The retrainer, its swaps, and what it published.
struct Retraining {
    retrainer: Retrainer,
    swaps: Swaps,
    models: Vec<ModelVersion>,
    counts: RetrainCounts,
    /// A retrain is running (sent, not answered).
    running: bool,
    /// Another was asked for meanwhile (one suffices: it trains on all data by then).
    queued: bool,
}

struct Session<'a> {
    config: &'a LearnConfig,
    calib: &'a Calibration,
    handle: LoopHandle,
    retraining: Retraining,
    learner: EpisodeRecorder,
    rows: Vec<TrialRow>,
    seed: Vec<SeedSource>,
    /// The demonstrations' states, per episode (the practice classifier's positives).
    demos: Vec<Vec<Vec<f32>>>,
    csv: std::fs::File,
    pairing: PairingCounts,
    driver: crate::episodes::EpisodeDriver<'a>,
}

/// Runs a learning session to the end.
pub fn learn(
    config: &LearnConfig,
    calib: &Calibration,
    exe: &Path,
) -> anyhow::Result<LearnSummary> {
    let started_unix = clock::wall_time_unix_secs();
    config.validate(calib)?;
    // Recorded with absolute paths, so a later --resume of this run finds them.
    let mut resolved = config.clone();
    resolved.resume = config
        .resume
        .as_deref()
        .map(Path::canonicalize)
        .transpose()?;
    resolved.expert_dataset = config
        .expert_dataset
        .as_deref()
        .map(Path::canonicalize)
        .transpose()?;
    let resumed_from = match resolved.resume.as_ref() {
        Some(run) => Some(Resumed {
            run: run.clone(),
            last_model_version: last_model_version(run),
            removed_stray_candidate: remove_stray_candidate(run)
                .with_context(|| format!("resuming {}", run.display()))?,
        }),
        None => None,
    };
    if let Some(resumed) = &resumed_from {
        resolved.retrainer.first_version = resumed.last_model_version;
    }
    let config = &resolved;
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("creating run directory {}", config.out_dir.display()))?;
    write_json(
        &config.out_dir.join("config.json"),
        &serde_json::json!({
            "learn": config,
            "trainer": config.retrainer.trainer,
            "planner": config.retrainer.planner,
            "experience": config.retrainer.experience,
            "expert_fraction": config.retrainer.expert_fraction,
            "seed": config.retrainer.seed,
            "calibration_sha256": calib.hash,
            // The simulator command, when not `handful sim` (`--sim-cmd`, `[link] sim_cmd`).
            "sim_cmd": config.robot.sim_cmd.as_ref().or(calib.sim_cmd.as_ref()),
            "software_version": env!("CARGO_PKG_VERSION"),
        }),
    )?;
    std::fs::write(config.out_dir.join("calibration.toml"), &calib.text)?;

    let robot = Robot::connect(calib, &config.robot, exe)?;
    crate::run::write_robot_json(&config.out_dir, &robot.link, calib)?;
    let viz = crate::viz::Viz::start(&config.viz, calib).context("starting the visualization")?;
    let mut loop_config = LoopConfig::from_calibration(calib, config.robot.lockstep);
    loop_config.realtime = config.robot.realtime.clone();
    loop_config.telemetry = crate::control::Telemetry::to(viz.sender());
    loop_config.record_policy = if config.robot.lockstep {
        RecordPolicy::Lossless
    } else {
        RecordPolicy::Lossy
    };
    // The first controller: the scripted expert (it records demonstrations); MPC
    // controllers replace it as models are published.
    let handle = control::spawn(
        loop_config,
        Arc::clone(&robot.link),
        crate::run::expert_controller(calib, config.robot.lockstep)?,
        robot.clock.clone(),
    )?;
    let mut retrainer_config = config.retrainer.clone();
    retrainer_config.learning = crate::telemetry::LearningTelemetry::to(viz.sender());
    retrainer_config.plans = viz.sender().plan_observers();
    // The retrainer's controllers go through this thread (see `Swaps`).
    let (swap_tx, swap_rx) = bounded(16);
    let retrainer = Retrainer::spawn(retrainer_config, calib, swap_tx, robot.clock.clone())?;
    let spec = |kind: &str| {
        DatasetSpec::from_calibration(
            calib,
            serde_json::json!({ "run": config.name, "data": kind, "lockstep": config.robot.lockstep }),
            None,
        )
    };
    let learner_writer = open_or_create(&config.out_dir.join("learner"), spec("learner"))?;
    let mut csv = std::fs::File::create(config.out_dir.join("learning_curve.csv"))?;
    writeln!(
        csv,
        "trial,policy,model_version,return,steps,end,validation_nll_after,plan_p50_us,plan_p99_us,deadline_misses,driver_versions,driver_from_ticks,driver_from_steps,driver_steps"
    )?;
    let mut session = Session {
        config,
        calib,
        retraining: Retraining {
            retrainer,
            swaps: Swaps::new(swap_rx, handle.requests.clone()),
            models: Vec::new(),
            counts: RetrainCounts::default(),
            running: false,
            queued: false,
        },
        handle,
        learner: EpisodeRecorder::new(learner_writer, calib.task.name(), false),
        rows: Vec::new(),
        seed: Vec::new(),
        demos: Vec::new(),
        csv,
        pairing: PairingCounts::default(),
        driver: crate::episodes::EpisodeDriver::new(
            calib,
            Arc::clone(&robot.link),
            config.robot.lockstep,
            config.retrainer.seed,
            config.recovery,
        )
        .with_viz(viz.sender()),
    };
    let mut stopped = None;
    // Stopped while seeding (a fault, or a signal during the demonstrations or the
    // first fit): the run so far is written out, then it fails.
    if let Err(e) = session.seed_data() {
        match e.downcast::<crate::recovery::Stopped>() {
            Ok(why) => {
                tracing::error!(%why, "stopping the run");
                stopped = Some(why.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let mut practice = None;
    if stopped.is_none()
        && let Some(practice_config) = &config.practice
    {
        // Filled as the practice goes: a practice stopped by a fault or a signal still
        // reports what it did.
        match session.practice(practice_config, &mut practice) {
            Ok(()) => {}
            Err(e) => match e.downcast::<crate::recovery::Stopped>() {
                Ok(why) => {
                    tracing::error!(%why, "stopping the practice");
                    stopped = Some(why.to_string());
                }
                Err(e) => return Err(e),
            },
        }
    }
    let trials = if config.practice.is_some() || stopped.is_some() {
        0
    } else {
        config.trials
    };
    for trial in 1..=trials {
        match session.trial(trial, "mpc") {
            Ok(row) => {
                tracing::info!(trial, episode_return = format!("{:.1}", row.episode_return), model = ?row.model_version, drivers = row.drivers.len(), "trial finished");
            }
            Err(e) => match e.downcast::<crate::recovery::Stopped>() {
                // Stopped on a fault: the run so far is still written out, then it fails.
                Ok(why) => {
                    tracing::error!(%why, "stopping the run");
                    stopped = Some(why.to_string());
                    break;
                }
                Err(e) => return Err(e),
            },
        }
    }
    let stopped = stopped.or_else(|| session.driver.ended_on_fault());

    // The best trial, credited to the model that computed most of its commands.
    let best = session
        .rows
        .iter()
        .filter(|r| r.policy == "mpc" && r.model_version.is_some())
        .max_by(|a, b| a.episode_return.total_cmp(&b.episode_return));
    let (best_model, best_return) = (
        best.and_then(|r| r.model_version),
        best.map(|r| r.episode_return),
    );
    let best_model_share = best.map(|r| {
        let total: u32 = r.drivers.iter().map(|d| d.steps).sum();
        let of_best: u32 = r
            .drivers
            .iter()
            .filter(|d| Some(d.version) == r.model_version)
            .map(|d| d.steps)
            .sum();
        f64::from(of_best) / f64::from(total.max(1))
    });
    if let Some(version) = best_model {
        let from = config
            .out_dir
            .join("models")
            .join(format!("v{version}.onnx"));
        std::fs::copy(&from, config.out_dir.join("best.onnx")).context("keeping the best model")?;
    }
    let first_trial_at_170 = session
        .rows
        .iter()
        .find(|r| r.policy == "mpc" && r.episode_return >= 170.0)
        .map(|r| r.trial);
    // A retrain still running finishes (its files belong to this run); one only asked
    // for is not started.
    session.retraining.finish()?;
    let Session {
        handle,
        learner,
        rows,
        pairing,
        seed,
        retraining,
        driver,
        ..
    } = session;
    let records_dropped = handle.records_dropped();
    let loop_report = handle.stop();
    let faults = crate::faults::FaultAccount::new(
        loop_report.as_ref(),
        &robot.link.stats(),
        records_dropped,
    );
    let model_use = retraining.swaps.model_use();
    let Retraining {
        retrainer,
        models,
        counts: retrains,
        ..
    } = retraining;
    drop(retrainer);
    let viz_report = viz.finish();
    tracing::info!(
        logged = viz_report.logged,
        dropped = viz_report.dropped,
        "visualization finished"
    );
    learner.close()?;
    let summary = LearnSummary {
        name: config.name.clone(),
        calibration_sha256: calib.hash.clone(),
        plant: calib.plant,
        resumed_from,
        seed,
        trials: rows,
        models,
        model_use,
        retrains,
        best_model,
        best_return,
        best_model_share,
        first_trial_at_170,
        loop_report,
        link: robot.link.stats(),
        faults,
        recoveries: driver.recoveries(),
        stopped,
        pairing,
        practice,
        started_unix,
        finished_unix: clock::wall_time_unix_secs(),
    };
    write_json(&config.out_dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// A stop signal received: disarm, and end the run with [`crate::recovery::Stopped`].
fn stop_on_signal(handle: &LoopHandle) -> anyhow::Result<()> {
    if let Some(signal) = crate::signals::requested() {
        let _ = handle.requests.send(crate::control::Request::Disarm);
        return Err(crate::recovery::Stopped::Signal(signal).into());
    }
    Ok(())
}

impl Retraining {
    /// Asks for a retrain now, or (one already running) as soon as it has finished.
    fn request(&mut self) -> anyhow::Result<()> {
        if self.running {
            self.queued = true;
            return Ok(());
        }
        self.retrainer
            .requests
            .send(SysidRequest::Retrain)
            .map_err(|_| anyhow::anyhow!("the retrainer stopped"))?;
        self.counts.requested += 1;
        self.running = true;
        Ok(())
    }

    /// Waits for the retrainer's next outcome and notes it.
    fn wait_event(&mut self, handle: &LoopHandle) -> anyhow::Result<Option<f64>> {
        loop {
            handle.drain();
            self.swaps.forward()?;
            // A stop signal does not wait for the fit (seconds to minutes; the trainer
            // stops at its next epoch): the robot, held armed between practice phases,
            // is let go, and the run ends now.
            stop_on_signal(handle)?;
            match self
                .retrainer
                .events
                .recv_timeout(Duration::from_millis(20))
            {
                Ok(event) => {
                    let nll = self.note(event)?;
                    // The fit the signal stopped reports a failure: it is the signal's.
                    stop_on_signal(handle)?;
                    return Ok(nll);
                }
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => {
                    bail!("the retrainer stopped")
                }
            }
        }
    }

    /// Notes every outcome that has arrived.
    fn poll(&mut self) -> anyhow::Result<()> {
        while let Ok(event) = self.retrainer.events.try_recv() {
            self.note(event)?;
        }
        Ok(())
    }

    /// Logs a retrain outcome (and starts a queued retrain); the validation NLL of a
    /// published model.
    fn note(&mut self, event: SysidEvent) -> anyhow::Result<Option<f64>> {
        self.running = false;
        // The retrainer handed the controller over before it reported: forward it first.
        self.swaps.forward()?;
        let nll = match event {
            SysidEvent::Published(model) => {
                tracing::info!(version = model.version, validation_nll = format!("{:.3}", model.validation_nll), rows = %model.counts, train_ms = model.train_ms, "model published");
                self.counts.published += 1;
                self.swaps.name(model.version);
                let nll = model.validation_nll;
                self.models.push(model);
                Some(nll)
            }
            SysidEvent::Rejected {
                candidate_nll,
                current_nll,
                candidate_mse,
                current_mse,
                gate,
                error_gate,
                ..
            } => {
                self.counts.rejected += 1;
                tracing::info!(
                    candidate_nll,
                    current_nll,
                    candidate_mse,
                    current_mse,
                    trimmed_difference = gate.trimmed_difference,
                    better_rows = format!("{} of {}", gate.candidate_better_rows, gate.rows),
                    error_trimmed_difference = error_gate.trimmed_difference,
                    error_better_rows = format!(
                        "{} of {}",
                        error_gate.candidate_better_rows, error_gate.rows
                    ),
                    "model not published: worse on validation"
                );
                None
            }
            SysidEvent::Failed { reason } => {
                self.counts.failed += 1;
                tracing::warn!(%reason, "retraining failed");
                None
            }
        };
        if std::mem::take(&mut self.queued) {
            self.request()?;
        }
        Ok(nll)
    }

    /// After the last trial: a retrain still running is waited for (its model is this
    /// run's, and drove nothing); one only queued is not started. Both are counted.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.counts.queued_at_end = u32::from(std::mem::take(&mut self.queued));
        if !self.running {
            return Ok(());
        }
        self.counts.running_at_end = 1;
        let event = self
            .retrainer
            .events
            .recv_timeout(Duration::from_secs(600))
            .map_err(|_| anyhow::anyhow!("the last retrain did not finish"))?;
        self.running = false;
        // Not forwarded: no trial is left to drive; the controller is dropped here.
        while self.swaps.from_retrainer.try_recv().is_ok() {}
        match event {
            SysidEvent::Published(model) => {
                self.counts.published += 1;
                self.models.push(model);
            }
            SysidEvent::Rejected { .. } => self.counts.rejected += 1,
            SysidEvent::Failed { reason } => {
                tracing::warn!(%reason, "the last retraining failed");
                self.counts.failed += 1;
            }
        }
        Ok(())
    }
}

impl Session<'_> {
    /// Expert transitions (a dataset, resumed runs, or scripted-expert episodes), or a
    /// random trial; then the first model.
    fn seed_data(&mut self) -> anyhow::Result<()> {
        let (mut expert_rows, mut learner_rows) = (0, 0);
        for (path, kind) in seed_sources(self.config)? {
            let reader = DatasetReader::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // Recorded in lockstep or in real time: the provenance says (default: real time).
            let lockstep = reader.info().handful.provenance.config["lockstep"]
                .as_bool()
                .unwrap_or(false);
            let stepping = Stepping::new(lockstep);
            let mut loaded = 0;
            let mut skipped = 0;
            for episode in reader.episodes() {
                // An episode a crash left staged was never kept by an operator: it is no
                // demonstration. (The robot's own recovered trials are still experience.)
                if episode.recovered && kind == Kind::Expert {
                    skipped += 1;
                    continue;
                }
                let frames: Vec<Frame> = reader
                    .episode_frames(episode.episode_index)?
                    .map(|f| f.map(|f| f.frame))
                    .collect::<Result<_, _>>()?;
                if kind == Kind::Expert {
                    self.demos
                        .push(frames.iter().map(|f| f.state.clone()).collect());
                }
                let transitions = self.pair(&frames, stepping);
                loaded += transitions.len();
                self.add(kind, transitions)?;
            }
            match kind {
                Kind::Expert => expert_rows += loaded,
                Kind::Learner => learner_rows += loaded,
            }
            if skipped > 0 {
                tracing::warn!(dataset = %path.display(), skipped, "episodes recovered after a crash are not used as demonstrations");
            }
            tracing::info!(dataset = %path.display(), episodes = reader.episodes().len() - skipped, transitions = loaded, ?kind, "experience loaded");
            self.seed.push(SeedSource {
                path,
                kind,
                episodes: reader.episodes().len() - skipped,
                skipped_recovered: skipped,
                transitions: loaded,
            });
        }
        if expert_rows == 0 && self.config.expert_episodes > 0 {
            let spec = DatasetSpec::from_calibration(
                self.calib,
                serde_json::json!({ "run": self.config.name, "data": "expert", "lockstep": self.config.robot.lockstep }),
                None,
            );
            let writer = open_or_create(&self.config.out_dir.join("expert"), spec)?;
            let mut recorder = EpisodeRecorder::new(writer, self.calib.task.name(), true);
            for _ in 0..self.config.expert_episodes {
                let outcome = self.run_episode(Mode::Teleop, Some(&mut recorder))?;
                let row = TrialRow {
                    policy: "expert",
                    ..row_from(0, &outcome.summary)
                };
                self.log_row(row)?;
                self.demos
                    .push(outcome.frames.iter().map(|f| f.state.clone()).collect());
                let transitions = self.pair(&outcome.frames, self.stepping());
                expert_rows += transitions.len();
                self.add(Kind::Expert, transitions)?;
            }
            recorder.close()?;
        }
        if expert_rows + learner_rows == 0 {
            // Pure PETS: one trial of random actions.
            let limits = self.calib.actions.iter().map(|a| (a.min, a.max)).collect();
            let random = RandomController::new(limits, self.config.retrainer.seed ^ 0xa11);
            self.handle
                .requests
                .send(Request::SetController(Box::new(random)))
                .map_err(|_| anyhow::anyhow!("the control loop stopped"))?;
            self.trial(0, "random")?;
        } else {
            self.retrain_and_wait()?;
        }
        if self.retraining.models.is_empty() {
            bail!("no model could be trained from the seed data");
        }
        Ok(())
    }

    fn add(&self, kind: Kind, transitions: Vec<Transition>) -> anyhow::Result<()> {
        self.retraining
            .retrainer
            .requests
            .send(SysidRequest::Add { kind, transitions })
            .map_err(|_| anyhow::anyhow!("the retrainer stopped"))
    }

    /// One trial of the loop's current controller, recorded as learner experience, then
    /// a retrain (waited for, or in the background with `--overlap`).
    fn trial(&mut self, trial: u32, policy: &'static str) -> anyhow::Result<TrialRow> {
        let outcome = self.run_episode(Mode::Autonomous, None)?;
        if let Some(viz) = self.driver.viz() {
            // The console counts trials, the viewer's `episode` timeline every episode
            // (demonstrations too): say which is which where the viewer shows it.
            let text = format!(
                "trial {trial} ({policy}) is episode {}: return {:.2}",
                outcome.summary.episode, outcome.summary.episode_return
            );
            viz.send(crate::viz::VizEvent::text(
                crate::viz::TextLevel::Info,
                &text,
            ));
        }
        let transitions = self.pair(&outcome.frames, self.stepping());
        self.add(Kind::Learner, transitions)?;
        let model_version = outcome
            .drivers
            .iter()
            .max_by_key(|d| (d.steps, d.from_tick))
            .map(|d| d.version);
        let mut row = TrialRow {
            policy,
            model_version,
            drivers: outcome.drivers,
            plan_p50_us: outcome.plan_p50_us,
            plan_p99_us: outcome.plan_p99_us,
            deadline_misses: outcome.deadline_misses,
            ..row_from(trial, &outcome.summary)
        };
        if self.config.wait_for_model || policy == "random" {
            row.validation_nll_after = self.retrain_and_wait()?;
        } else {
            self.retraining.request()?;
        }
        self.log_row(row.clone())?;
        Ok(row)
    }

    /// How the robot this session drives steps.
    fn stepping(&self) -> Stepping {
        Stepping::new(self.config.robot.lockstep)
    }

    /// An episode's transitions, each step paired with the command applied by it; the
    /// counts go to the summary.
    fn pair(&mut self, frames: &[Frame], stepping: Stepping) -> Vec<Transition> {
        let (transitions, counts) =
            transitions_from_frames(frames, stepping, self.calib.control_period_us);
        if counts.gaps + counts.unpaired > 0 {
            tracing::debug!(?counts, "episode paired with gaps");
        }
        self.pairing += counts;
        transitions
    }

    /// Asks for a retrain and waits for its outcome (forwarding swaps and draining
    /// telemetry meanwhile).
    fn retrain_and_wait(&mut self) -> anyhow::Result<Option<f64>> {
        let r = &mut self.retraining;
        // One already running first: the one asked for here must see all data.
        while r.running {
            r.wait_event(&self.handle)?;
        }
        r.request()?;
        let mut nll = None;
        while r.running {
            nll = r.wait_event(&self.handle)?;
        }
        Ok(nll)
    }

    fn log_row(&mut self, row: TrialRow) -> anyhow::Result<()> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let join =
            |f: &dyn Fn(&Driver) -> String| row.drivers.iter().map(f).collect::<Vec<_>>().join(";");
        writeln!(
            self.csv,
            "{},{},{},{:.4},{},{},{},{},{},{},{},{},{},{}",
            row.trial,
            row.policy,
            opt(row.model_version.map(|v| v.to_string())),
            row.episode_return,
            row.steps,
            row.end,
            opt(row.validation_nll_after.map(|v| format!("{v:.4}"))),
            row.plan_p50_us,
            row.plan_p99_us,
            row.deadline_misses,
            join(&|d| d.version.to_string()),
            join(&|d| d.from_tick.to_string()),
            join(&|d| d.from_step.to_string()),
            join(&|d| d.steps.to_string()),
        )?;
        self.csv.flush()?;
        let swaps = if row.drivers.len() > 1 {
            let list: Vec<String> = row.drivers[1..]
                .iter()
                .map(|d| format!("v{} at step {}", d.version, d.from_step))
                .collect();
            format!("  swapped: {}", list.join(", "))
        } else {
            String::new()
        };
        println!(
            "trial {:>3} {:<6} model {:>4} return {:>8.2}  nll {:>8}  plan p50 {:>6} µs p99 {:>6} µs  misses {}{swaps}",
            row.trial,
            row.policy,
            opt(row.model_version.map(|v| format!("v{v}"))),
            row.episode_return,
            opt(row.validation_nll_after.map(|v| format!("{v:.3}"))),
            row.plan_p50_us,
            row.plan_p99_us,
            row.deadline_misses
        );
        self.rows.push(row);
        Ok(())
    }

    /// Runs one episode of the loop's current controller in `mode`, recording it (into
    /// `expert`, or the learner dataset), forwarding the retrainer's swaps meanwhile.
    fn run_episode(
        &mut self,
        mode: Mode,
        expert: Option<&mut EpisodeRecorder>,
    ) -> anyhow::Result<EpisodeOutcome> {
        let phase = control::Phase::of_task(self.calib.task, Some(self.config.steps));
        self.run_phase(Begin::Reset(mode, phase), expert, None)
    }

    /// Runs one phase as `begin` says, recording it (into `expert`, or the learner
    /// dataset) and showing each tick record to `on_tick` (if given), forwarding the
    /// retrainer's swaps meanwhile.
    fn run_phase(
        &mut self,
        begin: Begin,
        expert: Option<&mut EpisodeRecorder>,
        on_tick: Option<TickHook<'_>>,
    ) -> anyhow::Result<EpisodeOutcome> {
        let recorder = match expert {
            Some(r) => r,
            None => &mut self.learner,
        };
        recorder.begin()?;
        let mut watch = LearningWatch {
            tally: Tally::default(),
            recorder,
            handle: &self.handle,
            retraining: &mut self.retraining,
            on_tick,
        };
        let driven = match begin {
            Begin::Reset(mode, phase) => self.driver.episode(&self.handle, mode, phase, &mut watch),
            Begin::Given(start) => self.driver.drive(&self.handle, start, &mut watch),
        };
        let summary = match driven {
            Ok(summary) => summary,
            Err(e) => {
                // A recovery that gave up (or a loop that stopped): nothing to keep.
                let _ = watch.recorder.end(false);
                return Err(e);
            }
        };
        let LearningWatch {
            mut tally,
            recorder,
            retraining,
            ..
        } = watch;
        recorder.end(true)?;
        let frames = recorder.episode_frames().to_vec();
        // A model that drove is named by its `Published` event, sent right after its
        // controller: wait for it if the episode ended first.
        retraining.poll()?;
        while retraining.swaps.acting_unnamed() {
            let event = retraining
                .retrainer
                .events
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| anyhow::anyhow!("a swapped-in model was never reported"))?;
            retraining.note(event)?;
        }
        let drivers = retraining
            .swaps
            .drivers(&tally.counted_ticks, summary.steps);
        let (plan_p50_us, plan_p99_us) = tally.compute_percentiles();
        Ok(EpisodeOutcome {
            summary,
            frames,
            drivers,
            plan_p50_us,
            plan_p99_us,
            deadline_misses: tally.misses,
        })
    }
}

/// A learning episode as it runs: its records to the tally and the dataset, and the
/// retrainer's controllers forwarded to the loop meanwhile.
struct LearningWatch<'s, 'f> {
    tally: Tally,
    recorder: &'s mut EpisodeRecorder,
    handle: &'s LoopHandle,
    retraining: &'s mut Retraining,
    on_tick: Option<TickHook<'f>>,
}

/// Shown each tick record of a phase as it arrives (the practice's classifier data).
type TickHook<'f> = &'f mut dyn FnMut(&control::TickRecord) -> anyhow::Result<()>;

/// How a phase of the learning job begins.
enum Begin {
    /// From a reset (seeded, or to a given start state), `Phase` in `Mode`.
    Reset(Mode, control::Phase),
    /// Exactly as this start says (e.g. going on armed with another objective).
    Given(control::EpisodeStart),
}

impl crate::episodes::Watch for LearningWatch<'_, '_> {
    fn record(&mut self, record: &control::TickRecord) -> anyhow::Result<()> {
        self.tally.take(record);
        self.recorder.on_tick(record)?;
        match &mut self.on_tick {
            Some(f) => f(record),
            None => Ok(()),
        }
    }

    fn idle(&mut self) -> anyhow::Result<()> {
        // Controllers and objectives swapped out are dropped here, off the loop; new
        // ones go in.
        while self.handle.retired.try_recv().is_ok() {}
        while self.handle.retired_objectives.try_recv().is_ok() {}
        self.retraining.swaps.forward()?;
        self.retraining.poll()
    }
}

/// What the main thread gathers from an episode's tick records.
#[derive(Default)]
struct Tally {
    /// Compute time of each driving tick that sent a command.
    compute: Vec<u64>,
    /// Ticks that completed an episode step, in order.
    counted_ticks: Vec<u64>,
    misses: u32,
    last_tick: Option<u64>,
}

impl Tally {
    fn take(&mut self, record: &control::TickRecord) {
        if record.mode.is_driving() && record.command_seq.is_some() {
            self.compute.push(record.compute_us);
        }
        if record.episode.is_some() {
            self.counted_ticks.push(record.tick);
        }
        if matches!(
            record.fault,
            Some(HostFault::Overrun | HostFault::RepeatedOverrun)
        ) {
            self.misses += 1;
        }
        self.last_tick = Some(record.tick);
    }

    fn compute_percentiles(&mut self) -> (u64, u64) {
        self.compute.sort_unstable();
        let pick = |q: f64| {
            self.compute
                .get(((self.compute.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        (pick(0.5), pick(0.99))
    }
}

fn row_from(trial: u32, summary: &EpisodeSummary) -> TrialRow {
    TrialRow {
        trial,
        episode_return: summary.episode_return,
        steps: summary.steps,
        first_tick: summary.first_tick,
        last_tick: summary.last_tick,
        end: summary.end.label(),
        ..TrialRow::default()
    }
}

/// One recorded episode, who drove it, and its timing.
struct EpisodeOutcome {
    summary: EpisodeSummary,
    frames: Vec<Frame>,
    drivers: Vec<Driver>,
    plan_p50_us: u64,
    plan_p99_us: u64,
    deadline_misses: u32,
}
