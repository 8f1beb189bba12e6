//! The learning main job: seed the expert data (a recorded dataset, or episodes of the
//! scripted expert), train a first model, then alternate MPC trials with background
//! retraining on expert and learner data in equal measure, keeping every trial's
//! experience on disk and the best policy seen.
//!
//! Without expert data it is pure PETS: one trial of random actions first. Runs on the
//! main thread; the control loop and the retrainer run on their own threads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::{
    Kind, Retrainer, RetrainerConfig, SysidEvent, SysidRequest, applied_delay,
    transitions_from_frames,
};
use crate::calib::Calibration;
use crate::clock::{self, Clock};
use crate::control::{
    self, EpisodeEnd, EpisodeSummary, HostFault, LoopConfig, LoopHandle, Mode, RecordPolicy,
    Request,
};
use crate::dataset::{DatasetReader, DatasetSpec, Frame};
use crate::record::{EpisodeRecorder, open_or_create};
use crate::run::{Robot, RobotOptions, write_json};

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
    /// Without a dataset: episodes of the scripted expert to record first (0: pure PETS).
    pub expert_episodes: u32,
    /// A previous run whose expert and learner data seed this one.
    pub resume: Option<PathBuf>,
    #[serde(skip)]
    pub retrainer: RetrainerConfig,
    #[serde(skip)]
    pub viz: crate::viz::VizOptions,
    /// Wait for each retrain before the next trial (PETS's schedule). Otherwise trials
    /// run back to back and models are swapped in whenever they are ready.
    pub wait_for_model: bool,
}

/// One row of the learning curve.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrialRow {
    pub trial: u32,
    /// `expert`, `random` or `mpc`.
    pub policy: &'static str,
    /// The model the MPC trial planned with.
    pub model_version: Option<u32>,
    pub episode_return: f64,
    pub steps: u32,
    pub end: String,
    /// Validation NLL of the model published after this trial (if one was).
    pub validation_nll_after: Option<f64>,
    pub plan_p50_us: u64,
    pub plan_p99_us: u64,
    /// Ticks whose command was replaced by the safe command for lateness.
    pub deadline_misses: u32,
}

/// What a learning run produced (also `summary.json`).
#[derive(Clone, Debug, Serialize)]
pub struct LearnSummary {
    pub name: String,
    pub calibration_sha256: String,
    pub trials: Vec<TrialRow>,
    pub models: Vec<super::ModelVersion>,
    /// The model whose trial earned the highest return ("pick the best policy").
    pub best_model: Option<u32>,
    pub best_return: Option<f64>,
    /// The first MPC trial reaching 170 (the PETS benchmark's level), if any.
    pub first_trial_at_170: Option<u32>,
    pub loop_report: Option<control::LoopReport>,
    pub link: crate::link::LinkStats,
    pub started_unix: f64,
    pub finished_unix: f64,
}

struct Session<'a> {
    config: &'a LearnConfig,
    calib: &'a Calibration,
    handle: LoopHandle,
    retrainer: Retrainer,
    learner: EpisodeRecorder,
    rows: Vec<TrialRow>,
    models: Vec<super::ModelVersion>,
    episode_index: u32,
    csv: std::fs::File,
    viz: crate::viz::VizSender,
    link: Arc<crate::link::Link>,
}

/// Runs a learning session to the end.
pub fn learn(
    config: &LearnConfig,
    calib: &Calibration,
    exe: &Path,
) -> anyhow::Result<LearnSummary> {
    let started_unix = clock::wall_time_unix_secs();
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
            "software_version": env!("CARGO_PKG_VERSION"),
        }),
    )?;
    std::fs::write(config.out_dir.join("calibration.toml"), &calib.text)?;

    let robot = Robot::connect(calib, &config.robot, exe)?;
    write_json(&config.out_dir.join("robot.json"), robot.link.robot())?;
    let viz = crate::viz::Viz::start(&config.viz, calib).context("starting the visualization")?;
    let mut loop_config = LoopConfig::from_calibration(calib, config.robot.lockstep);
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
    retrainer_config.viz = viz.sender();
    let retrainer = Retrainer::spawn(
        retrainer_config,
        calib,
        handle.requests.clone(),
        robot.clock.clone(),
    )?;
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
        "trial,policy,model_version,return,steps,end,validation_nll_after,plan_p50_us,plan_p99_us,deadline_misses"
    )?;
    let mut session = Session {
        config,
        calib,
        handle,
        retrainer,
        learner: EpisodeRecorder::new(learner_writer, calib.task.name(), false),
        rows: Vec::new(),
        models: Vec::new(),
        episode_index: 0,
        csv,
        viz: viz.sender(),
        link: Arc::clone(&robot.link),
    };
    session.seed_data(&robot)?;
    for trial in 1..=config.trials {
        let version = session.models.last().map(|m| m.version);
        let row = session.trial(trial, "mpc", version, &robot)?;
        tracing::info!(trial, episode_return = format!("{:.1}", row.episode_return), model = ?version, "trial finished");
        if !config.wait_for_model {
            session.poll_events();
        }
    }

    let best = session
        .rows
        .iter()
        .filter(|r| r.policy == "mpc" && r.model_version.is_some())
        .max_by(|a, b| a.episode_return.total_cmp(&b.episode_return));
    let (best_model, best_return) = (
        best.and_then(|r| r.model_version),
        best.map(|r| r.episode_return),
    );
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
    let Session {
        handle,
        learner,
        rows,
        models,
        ..
    } = session;
    let loop_report = handle.stop();
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
        trials: rows,
        models,
        best_model,
        best_return,
        first_trial_at_170,
        loop_report,
        link: robot.link.stats(),
        started_unix,
        finished_unix: clock::wall_time_unix_secs(),
    };
    write_json(&config.out_dir.join("summary.json"), &summary)?;
    Ok(summary)
}

impl Session<'_> {
    /// Expert transitions (a dataset, resumed runs, or scripted-expert episodes), or a
    /// random trial; then the first model.
    fn seed_data(&mut self, robot: &Robot) -> anyhow::Result<()> {
        let mut expert_rows = 0;
        let mut sources: Vec<(PathBuf, Kind)> = Vec::new();
        if let Some(path) = &self.config.expert_dataset {
            sources.push((path.clone(), Kind::Expert));
        }
        if let Some(run) = &self.config.resume {
            sources.push((run.join("expert"), Kind::Expert));
            sources.push((run.join("learner"), Kind::Learner));
        }
        for (path, kind) in sources {
            if !path.join("meta/info.json").exists() {
                bail!("no dataset at {}", path.display());
            }
            let reader = DatasetReader::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // Recorded in lockstep or in real time: the provenance says (default: real time).
            let lockstep = reader.info().handful.provenance.config["lockstep"]
                .as_bool()
                .unwrap_or(false);
            let delay = applied_delay(lockstep);
            for episode in reader.episodes() {
                let frames: Vec<Frame> = reader
                    .episode_frames(episode.episode_index)?
                    .map(|f| f.map(|f| f.frame))
                    .collect::<Result<_, _>>()?;
                let transitions = transitions_from_frames(&frames, delay);
                if kind == Kind::Expert {
                    expert_rows += transitions.len();
                }
                self.add(kind, transitions)?;
            }
            tracing::info!(dataset = %path.display(), episodes = reader.episodes().len(), ?kind, "experience loaded");
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
                let seed = self.next_seed(robot);
                let outcome = run_episode(
                    &self.handle,
                    (&self.viz, &self.link),
                    self.calib,
                    self.config.steps,
                    seed,
                    Mode::Teleop,
                    &mut recorder,
                )?;
                let row = TrialRow {
                    policy: "expert",
                    ..row_from(0, &outcome.summary)
                };
                self.log_row(row)?;
                self.add(
                    Kind::Expert,
                    transitions_from_frames(&outcome.frames, self.delay()),
                )?;
                expert_rows += outcome.frames.len();
            }
            recorder.close()?;
        }
        if expert_rows == 0 {
            // Pure PETS: one trial of random actions.
            let limits = self.calib.actions.iter().map(|a| (a.min, a.max)).collect();
            let random = super::RandomController::new(limits, self.config.retrainer.seed ^ 0xa11);
            self.handle
                .requests
                .send(Request::SetController(Box::new(random)))
                .map_err(|_| anyhow::anyhow!("the control loop stopped"))?;
            self.trial(0, "random", None, robot)?;
        } else {
            self.retrain_and_wait()?;
        }
        if self.models.is_empty() {
            bail!("no model could be trained from the seed data");
        }
        Ok(())
    }

    fn add(&self, kind: Kind, transitions: Vec<super::Transition>) -> anyhow::Result<()> {
        self.retrainer
            .requests
            .send(SysidRequest::Add { kind, transitions })
            .map_err(|_| anyhow::anyhow!("the retrainer stopped"))
    }

    /// One trial of the loop's current controller, recorded as learner experience, then
    /// a retrain.
    fn trial(
        &mut self,
        trial: u32,
        policy: &'static str,
        version: Option<u32>,
        robot: &Robot,
    ) -> anyhow::Result<TrialRow> {
        let seed = self.next_seed(robot);
        let outcome = run_episode(
            &self.handle,
            (&self.viz, &self.link),
            self.calib,
            self.config.steps,
            seed,
            Mode::Autonomous,
            &mut self.learner,
        )?;
        self.add(
            Kind::Learner,
            transitions_from_frames(&outcome.frames, self.delay()),
        )?;
        let mut row = TrialRow {
            policy,
            model_version: version,
            plan_p50_us: outcome.plan_p50_us,
            plan_p99_us: outcome.plan_p99_us,
            deadline_misses: outcome.deadline_misses,
            ..row_from(trial, &outcome.summary)
        };
        if self.config.wait_for_model || policy == "random" {
            row.validation_nll_after = self.retrain_and_wait()?;
        } else {
            let _ = self.retrainer.requests.send(SysidRequest::Retrain);
        }
        self.log_row(row.clone())?;
        Ok(row)
    }

    /// The command-to-step delay of the data this session records.
    fn delay(&self) -> usize {
        applied_delay(self.config.robot.lockstep)
    }

    /// The reset seed of the next episode (none for a robot that cannot reset).
    fn next_seed(&mut self, robot: &Robot) -> Option<u64> {
        let seed = self
            .config
            .retrainer
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(u64::from(self.episode_index));
        self.episode_index += 1;
        robot.link.robot().has_reset().then_some(seed)
    }

    /// Asks for a retrain and waits for its outcome (draining telemetry meanwhile).
    fn retrain_and_wait(&mut self) -> anyhow::Result<Option<f64>> {
        self.retrainer
            .requests
            .send(SysidRequest::Retrain)
            .map_err(|_| anyhow::anyhow!("the retrainer stopped"))?;
        loop {
            while self.handle.records.try_recv().is_ok() {}
            while self.handle.retired.try_recv().is_ok() {}
            match self
                .retrainer
                .events
                .recv_timeout(Duration::from_millis(20))
            {
                Ok(event) => return Ok(self.note(event)),
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => {
                    bail!("the retrainer stopped")
                }
            }
        }
    }

    fn poll_events(&mut self) {
        while let Ok(event) = self.retrainer.events.try_recv() {
            self.note(event);
        }
    }

    /// Logs a retrain outcome; the validation NLL of a published model.
    fn note(&mut self, event: SysidEvent) -> Option<f64> {
        match event {
            SysidEvent::Published(model) => {
                tracing::info!(version = model.version, validation_nll = format!("{:.3}", model.validation_nll), rows = ?model.counts, train_ms = model.train_ms, "model published");
                let nll = model.validation_nll;
                self.models.push(model);
                Some(nll)
            }
            SysidEvent::Rejected {
                candidate_nll,
                current_nll,
                ..
            } => {
                tracing::info!(
                    candidate_nll,
                    current_nll,
                    "model not published: worse on validation"
                );
                None
            }
            SysidEvent::Failed { reason } => {
                tracing::warn!(%reason, "retraining failed");
                None
            }
        }
    }

    fn log_row(&mut self, row: TrialRow) -> anyhow::Result<()> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        writeln!(
            self.csv,
            "{},{},{},{:.4},{},{},{},{},{},{}",
            row.trial,
            row.policy,
            opt(row.model_version.map(|v| v.to_string())),
            row.episode_return,
            row.steps,
            row.end,
            opt(row.validation_nll_after.map(|v| format!("{v:.4}"))),
            row.plan_p50_us,
            row.plan_p99_us,
            row.deadline_misses
        )?;
        self.csv.flush()?;
        println!(
            "trial {:>3} {:<6} model {:>4} return {:>8.2}  nll {:>8}  plan p50 {:>6} µs p99 {:>6} µs  misses {}",
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
}

fn row_from(trial: u32, summary: &EpisodeSummary) -> TrialRow {
    TrialRow {
        trial,
        episode_return: summary.episode_return,
        steps: summary.steps,
        end: match summary.end {
            EpisodeEnd::Completed => "completed".into(),
            EpisodeEnd::Interrupted => "interrupted".into(),
            EpisodeEnd::Faulted(f) => format!("fault:{f:?}"),
        },
        ..TrialRow::default()
    }
}

/// Runs one episode of the loop's current controller in `mode`, recording it.
fn run_episode(
    handle: &LoopHandle,
    (viz, link): (&crate::viz::VizSender, &crate::link::Link),
    calib: &Calibration,
    steps: u32,
    reset_seed: Option<u64>,
    mode: Mode,
    recorder: &mut EpisodeRecorder,
) -> anyhow::Result<EpisodeOutcome> {
    recorder.begin()?;
    handle
        .requests
        .send(Request::StartEpisode {
            mode,
            steps: Some(steps),
            reset_seed,
        })
        .map_err(|_| anyhow::anyhow!("the control loop stopped"))?;
    let mut compute = Vec::with_capacity(steps as usize);
    let mut misses = 0;
    let waiter = Clock::real();
    let give_up = waiter.now_us() + 8 * calib.control_period_us * u64::from(steps) + 60_000_000;
    let mut next_link_us = 0;
    let summary = loop {
        while let Ok(record) = handle.records.try_recv() {
            if record.mode.is_driving() && record.command_seq.is_some() {
                compute.push(record.compute_us);
            }
            if matches!(
                record.fault,
                Some(HostFault::Overrun | HostFault::RepeatedOverrun)
            ) {
                misses += 1;
            }
            recorder.on_tick(&record)?;
        }
        // Controllers swapped out by the retrainer are dropped here, off the loop.
        while handle.retired.try_recv().is_ok() {}
        if waiter.now_us() >= next_link_us {
            crate::run::send_link(link, viz);
            next_link_us = waiter.now_us() + 250_000;
        }
        if let Ok(summary) = handle.episodes.recv_timeout(Duration::from_millis(5)) {
            break summary;
        }
        if waiter.now_us() > give_up {
            bail!("the episode did not finish");
        }
    };
    recorder.finish_episode(&handle.records, &summary, true)?;
    viz.send(crate::viz::VizEvent::Episode(summary));
    compute.sort_unstable();
    let pick = |q: f64| {
        compute
            .get(((compute.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    Ok(EpisodeOutcome {
        summary,
        frames: recorder.episode_frames().to_vec(),
        plan_p50_us: pick(0.5),
        plan_p99_us: pick(0.99),
        deadline_misses: misses,
    })
}

/// One recorded episode and its timing.
struct EpisodeOutcome {
    summary: EpisodeSummary,
    frames: Vec<Frame>,
    plan_p50_us: u64,
    plan_p99_us: u64,
    deadline_misses: u32,
}
