//! The background retrainer (`handful-sysid`): aggregates experience, trains the
//! ensemble on both kinds in equal measure, validates it on held-out transitions of both
//! kinds, and publishes it to the control loop only if it is at least as good as the
//! model in use.
//!
//! Publishing: the model is exported to `models/v<N>.onnx` (with `v<N>.json`, its
//! metrics), loaded back through onnxruntime (the same checks as any model file), its
//! predictions checked finite, wrapped in a fresh MPC controller that is warmed up *on
//! this thread* (so its first buffers are allocated here, not on the control thread),
//! and handed to the loop with `Request::SetController`, which swaps it in between two
//! ticks. The loop hands the old controller back to be dropped off the control thread.
//!
//! The thread runs at a lower priority (nice 10) with one compute thread, so the control
//! loop keeps its deadlines while it trains.

use std::path::PathBuf;

use anyhow::Context;
use crossbeam::channel::{Receiver, Sender, bounded};
use ndarray::{Array3, ArrayView2, Axis};
use serde::Serialize;

use super::experience::{Experience, ExperienceConfig, ExperienceCounts, Kind, Transition};
use crate::calib::Calibration;
use crate::clock::{self, Clock};
use crate::control::{self, Controller, Observation};
use crate::model::{Ensemble, ModelExpectation, ModelOptions};
use crate::mpc::{Dynamics, MpcController, Planner, PlannerConfig, TaskCost};
use crate::thread::{JoinOnDrop, spawn_named};
use crate::train::{ExportMetadata, Mixture, Trainer, TrainerConfig, Transitions};

/// What the retrainer is told.
pub enum SysidRequest {
    /// New transitions of one kind (an episode's).
    Add {
        kind: Kind,
        transitions: Vec<Transition>,
    },
    /// Train now, validate, publish if at least as good.
    Retrain,
    /// The same, with another learning rate and epoch budget for this one fit (an
    /// operator trying a more aggressive setting mid-run; the gate still decides).
    RetrainWith(Schedule),
}

/// One fit's learning rate and epoch budget, and whether it starts fresh.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub learning_rate: f32,
    pub max_epochs: usize,
    /// Start from a fresh initialisation even when the retrainer warm-starts.
    pub fresh: bool,
}

/// A published model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelVersion {
    pub version: u32,
    pub path: PathBuf,
    pub sha256: String,
    /// The file's identity and metadata as the loader read them (producer, created_unix,
    /// training_data_sha256, ensemble shape, elites, angle channels, contract version).
    pub info: Box<crate::model::ModelInfo>,
    /// Mean Gaussian NLL per state dimension on the validation transitions (both kinds).
    pub validation_nll: f64,
    pub validation_mse: f64,
    /// How it compared with the model it replaced (none for the first model): NLL, and
    /// the squared error of the members' means.
    pub gate: Option<GateScore>,
    pub error_gate: Option<GateScore>,
    pub counts: ExperienceCounts,
    pub epochs: usize,
    pub train_ms: u64,
}

/// What came of a retrain.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SysidEvent {
    Published(ModelVersion),
    /// The candidate was worse on validation than the model in use, which stays.
    Rejected {
        /// Mean validation NLL of each (informative; the gate decides on `gate`).
        candidate_nll: f64,
        current_nll: f64,
        /// Mean squared error of the members' means on the same rows (informative).
        candidate_mse: f64,
        current_mse: f64,
        gate: GateScore,
        error_gate: GateScore,
        /// The version still in use (0: none published yet).
        version_in_use: u32,
        counts: ExperienceCounts,
    },
    Failed {
        reason: String,
    },
}

/// Everything the retrainer needs, resolved.
#[derive(Clone, Debug)]
pub struct RetrainerConfig {
    pub trainer: TrainerConfig,
    pub experience: ExperienceConfig,
    /// Fraction of each training batch drawn from expert transitions (DAgger: 0.5).
    pub expert_fraction: f64,
    pub planner: PlannerConfig,
    pub seed: u64,
    /// Where model versions are written.
    pub models_dir: PathBuf,
    /// Start each candidate from the model in use (weights, statistics and optimiser,
    /// re-standardised to the grown data) instead of a fresh initialisation. Off by
    /// default: measured on the cart-pole in lockstep (seed 0, return at trial 5), warm
    /// starts reached 7 and 82 (with and without keeping the function across the new
    /// statistics) where fresh fits reached 176–177 — a network fitted to three
    /// demonstrations adapts to the controller's own states worse than a new one learns
    /// them (ARCHITECTURE.md, "Measured choices").
    pub warm_start: bool,
    /// Versions continue after this one (a resumed run's last; 0: the first is v1).
    pub first_version: u32,
    /// Training curves and published versions go here (the viewer, in a run with one).
    pub learning: crate::telemetry::LearningTelemetry,
    /// Each published model's controller shows its plans to an observer made here.
    pub plans: Option<crate::mpc::PlanObserverFactory>,
}

/// The running retrainer: its channels and thread (joined on drop).
pub struct Retrainer {
    pub requests: Sender<SysidRequest>,
    pub events: Receiver<SysidEvent>,
    _thread: JoinOnDrop<()>,
}

impl Retrainer {
    /// Starts `handful-sysid`. `loop_requests` is the control loop's request channel;
    /// `clock` the loop's clock (the planner's deadlines).
    pub fn spawn(
        config: RetrainerConfig,
        calib: &Calibration,
        loop_requests: Sender<control::Request>,
        clock: Clock,
    ) -> anyhow::Result<Retrainer> {
        let trainer = Trainer::new(
            config.trainer.clone(),
            calib.state_dim(),
            calib.action_dim(),
            config.seed,
        )
        .context("trainer configuration")?;
        std::fs::create_dir_all(&config.models_dir)
            .with_context(|| format!("creating {}", config.models_dir.display()))?;
        let (request_tx, request_rx) = bounded(64);
        let (event_tx, event_rx) = bounded(64);
        let version = config.first_version;
        let mut worker = Worker {
            experience: Experience::new(config.experience.clone(), config.seed ^ 0x5eed),
            config,
            calib: calib.clone(),
            trainer,
            current: None,
            retrains: 0,
            version,
            loop_requests,
            clock,
        };
        let thread = spawn_named("handful-sysid", move || {
            crate::thread::lower_priority();
            while let Ok(request) = request_rx.recv() {
                match request {
                    SysidRequest::Add { kind, transitions } => {
                        worker.experience.add(kind, transitions)
                    }
                    SysidRequest::Retrain | SysidRequest::RetrainWith(_) => {
                        let schedule = match request {
                            SysidRequest::RetrainWith(schedule) => Some(schedule),
                            _ => None,
                        };
                        let event =
                            worker
                                .retrain(schedule)
                                .unwrap_or_else(|e| SysidEvent::Failed {
                                    reason: format!("{e:#}"),
                                });
                        if event_tx.send(event).is_err() {
                            break;
                        }
                    }
                }
            }
        })?;
        Ok(Retrainer {
            requests: request_tx,
            events: event_rx,
            _thread: thread,
        })
    }
}

struct Worker {
    config: RetrainerConfig,
    calib: Calibration,
    experience: Experience,
    /// The training state of the model in use (the initial ensemble before the first
    /// publication): with `warm_start`, every candidate is a clone of it.
    trainer: Trainer,
    /// The model in use, kept here to score it on the (growing) validation set.
    current: Option<Ensemble>,
    version: u32,
    /// Retrains started (published or not): seeds each fresh candidate.
    retrains: u32,
    loop_requests: Sender<control::Request>,
    clock: Clock,
}

impl Worker {
    /// One retrain. The candidate is a fresh ensemble or, with `warm_start`, a copy of the
    /// model in use's training state (never a rejected candidate's); it is exported and
    /// loaded through onnxruntime, and candidate and model in use are scored by the same
    /// runtime on the same held-out blocks of both kinds, so the gate compares like with
    /// like. Only a candidate at least as good is published; a rejected one leaves the
    /// model in use, the trainer state and the version number as they were.
    fn retrain(&mut self, schedule: Option<Schedule>) -> anyhow::Result<SysidEvent> {
        let (data, expert_rows) = self.experience.training_set()?;
        let validation = self.experience.validation_set()?;
        let counts = self.experience.counts();
        let mut candidate = match schedule {
            Some(Schedule { fresh: false, .. }) | None if self.config.warm_start => {
                self.trainer.clone()
            }
            // A fresh ensemble per retrain, its seed drawn from the run's and the number
            // of retrains so far: reproducible, and different from the last one's.
            _ => Trainer::new(
                self.config.trainer.clone(),
                self.calib.state_dim(),
                self.calib.action_dim(),
                self.config.seed ^ 0x7e57_0000 ^ u64::from(self.retrains),
            )?,
        };
        self.retrains += 1;
        if let Some(schedule) = schedule {
            candidate.set_schedule(schedule.learning_rate, schedule.max_epochs)?;
        }
        let mut mixture = Mixture::new(expert_rows, self.config.expert_fraction);
        // A progress line every few seconds of a long fit (the robot may be waiting).
        let version = self.version + 1;
        let mut next_line_us = PROGRESS_EVERY_US;
        let report = candidate.fit_observed(&data, &mut mixture, &mut |p| {
            if p.elapsed_us < next_line_us {
                return;
            }
            next_line_us = p.elapsed_us + PROGRESS_EVERY_US;
            let bound = if p.max_steps > 0 {
                format!("{}–{}", p.min_steps, p.max_steps)
            } else {
                format!("at least {}", p.min_steps)
            };
            tracing::info!(
                "training v{version}: {} steps of {bound}, holdout NLL {:.3}, {:.0} s",
                p.steps,
                p.holdout_nll,
                p.elapsed_us as f64 * 1e-6
            );
        })?;
        let mean = |v: &[f32]| v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len().max(1) as f64;
        for (epoch, e) in report.epochs.iter().enumerate() {
            let members = self.config.trainer.ensemble_size.max(1) as f64;
            self.config
                .learning
                .training_point(&crate::telemetry::TrainingPoint {
                    model_version: self.version + 1,
                    epoch: epoch as u32,
                    train_nll: (e.train_loss / members) as f32,
                    validation_nll: Some(mean(&e.holdout.nll) as f32),
                    last_epoch: epoch + 1 == report.epochs.len(),
                });
        }
        let meta = ExportMetadata {
            state_names: self.calib.states.iter().map(|s| s.name.clone()).collect(),
            action_names: self.calib.actions.iter().map(|a| a.name.clone()).collect(),
            control_period_us: self.calib.control_period_us,
            created_unix: Some(clock::wall_time_unix_secs() as u64),
        };
        let candidate_path = self.config.models_dir.join(super::CANDIDATE_FILE);
        candidate.write_onnx(&candidate_path, &meta)?;
        let expect = ModelExpectation::from_calibration(&self.calib);
        let mut evaluator = Ensemble::load_with(&candidate_path, &expect, ModelOptions::default())?;
        let members = evaluator.ensemble_size();
        let scored = if validation.is_empty() {
            &data
        } else {
            &validation
        };
        let candidate_score = score(scored, members, |s, a| predict_with(&mut evaluator, s, a))?;
        let candidate_nll = candidate_score.mean_nll();
        if !candidate_nll.is_finite() {
            let _ = std::fs::remove_file(&candidate_path);
            anyhow::bail!("the candidate model predicts non-finite values");
        }
        let (mut gate, mut error_gate) = (None, None);
        if let Some(current) = self.current.as_mut() {
            let members = current.ensemble_size();
            let current_score = score(scored, members, |s, a| predict_with(current, s, a))?;
            let compared = GateScore::compare(&candidate_score.row_nll, &current_score.row_nll);
            let errors = GateScore::compare(&candidate_score.row_se, &current_score.row_se);
            gate = Some(compared);
            error_gate = Some(errors);
            if !compared.accepts() {
                let _ = std::fs::remove_file(&candidate_path);
                return Ok(SysidEvent::Rejected {
                    candidate_nll,
                    current_nll: current_score.mean_nll(),
                    candidate_mse: candidate_score.mse,
                    current_mse: current_score.mse,
                    gate: compared,
                    error_gate: errors,
                    version_in_use: self.version,
                    counts,
                });
            }
        }
        let version = self.version + 1;
        let path = self.config.models_dir.join(format!("v{version}.onnx"));
        std::fs::rename(&candidate_path, &path)
            .with_context(|| format!("keeping the model as {}", path.display()))?;
        let deployed = Ensemble::load(&path, &expect)?;
        let info = Box::new(deployed.info().clone());
        let controller = self.warmed_controller(deployed, &validation)?;
        self.loop_requests
            .send(control::Request::SetController(controller))
            .map_err(|_| anyhow::anyhow!("the control loop stopped"))?;
        self.current = Some(evaluator);
        self.trainer = candidate;
        self.version = version;
        self.config.learning.model_deployed(
            version,
            &format!("v{version}: validation NLL {candidate_nll:.3}"),
        );
        let published = ModelVersion {
            version,
            sha256: crate::calib::hex_sha256(&std::fs::read(&path)?),
            path: path.clone(),
            info,
            validation_nll: candidate_nll,
            validation_mse: candidate_score.mse,
            gate,
            error_gate,
            counts,
            epochs: report.epochs_run,
            train_ms: report.wall_time_us / 1000,
        };
        crate::json::write_json(
            &path.with_extension("json"),
            &serde_json::json!({
                "model": published,
                "train_report": report,
            }),
        )?;
        Ok(SysidEvent::Published(published))
    }

    /// A controller around `ensemble`, run twice here so every lazily built buffer
    /// exists before it reaches the control thread.
    fn warmed_controller(
        &self,
        ensemble: Ensemble,
        validation: &Transitions,
    ) -> anyhow::Result<Box<dyn Controller>> {
        let bounds: Vec<(f32, f32)> = self.calib.actions.iter().map(|a| (a.min, a.max)).collect();
        let planner = Planner::new(
            self.config.planner.clone(),
            self.calib.state_dim(),
            self.calib.action_dim(),
            &bounds,
            ensemble.ensemble_size(),
        )?;
        // In lockstep simulated time does not pass while the planner plans, so its budget
        // never cuts a plan. It gets a clock of its own: the loop's moves while this
        // thread warms the controller up, which would make the warm-up (and the planner
        // state it leaves) depend on timing.
        let clock = if self.clock.is_simulated() {
            Clock::simulated()
        } else {
            self.clock.clone()
        };
        let mut controller = MpcController::new(
            planner,
            Box::new(ensemble),
            Box::new(TaskCost(self.calib.task)),
            clock,
        )
        .map_err(|e| anyhow::anyhow!("the model does not fit the planner: {e}"))?;
        let state: Vec<f32> = if !validation.is_empty() {
            validation.states.row(0).to_vec()
        } else {
            vec![0.0; self.calib.state_dim()]
        };
        let mut action = vec![0.0; self.calib.action_dim()];
        for tick in 0..2 {
            let obs = Observation {
                state: &state,
                now_us: 0,
                state_age_us: 0,
                tick,
            };
            controller
                .act(&obs, &mut action)
                .map_err(|e| anyhow::anyhow!("the new controller failed its warm-up: {e}"))?;
        }
        controller.reset();
        // The viewer sees the plans the robot acts on, not the warm-up's (they would be
        // drawn at ticks 0 and 1, over the demonstrations).
        if let Some(plans) = &self.config.plans {
            controller.set_plan_observer(plans.make());
        }
        Ok(Box::new(controller))
    }
}

fn predict_with(
    model: &mut Ensemble,
    states: ndarray::ArrayView3<'_, f32>,
    actions: ndarray::ArrayView3<'_, f32>,
) -> anyhow::Result<(Array3<f32>, Array3<f32>)> {
    let (e, n, s) = states.dim();
    let mut mean = Array3::zeros((e, n, s));
    let mut logvar = Array3::zeros((e, n, s));
    model.predict(states, actions, mean.view_mut(), logvar.view_mut())?;
    Ok((mean, logvar))
}

/// How often a fit in progress says where it is.
const PROGRESS_EVERY_US: u64 = 5_000_000;

/// Share of the paired per-row differences the gate drops at each end before averaging.
///
/// A few held-out rows can dominate a mean NLL: a cart-pole run without demonstrations
/// holds out the cart's impacts on the rail stops, where an overconfident member scores
/// an NLL in the thousands, so one such row outweighs hundreds of ordinary ones and the
/// mean gate rejected six candidates in a row that predicted every other row better
/// (seed 4, real time). Trimming 5 % of the differences at each end makes the gate
/// decide on what most rows say, in either direction: a candidate that is far better on
/// a few rows and worse on the rest is rejected as well.
pub const GATE_TRIM: f64 = 0.05;

/// The gate's comparison of a candidate with the model in use on the same held-out rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GateScore {
    /// Trimmed mean over rows of (candidate NLL − model in use NLL), each row's NLL the
    /// mean over members and state dimensions; ≤ 0 publishes the candidate.
    pub trimmed_difference: f64,
    /// Rows where the candidate's NLL is lower.
    pub candidate_better_rows: usize,
    pub rows: usize,
}

impl GateScore {
    /// Pairs the two models' per-row NLLs (same rows, same order) and trims
    /// [`GATE_TRIM`] of the differences at each end. A non-finite candidate row is worse
    /// than anything (it sorts last); rows neither model can score are skipped.
    pub fn compare(candidate: &[f64], current: &[f64]) -> GateScore {
        assert_eq!(candidate.len(), current.len(), "the gate pairs rows");
        let mut differences: Vec<f64> = candidate
            .iter()
            .zip(current)
            .filter_map(|(c, m)| match (c.is_finite(), m.is_finite()) {
                (true, true) => Some(c - m),
                (false, true) => Some(f64::INFINITY),
                (true, false) => Some(f64::NEG_INFINITY),
                (false, false) => None,
            })
            .collect();
        let rows = differences.len();
        let candidate_better_rows = differences.iter().filter(|d| **d < 0.0).count();
        differences.sort_by(f64::total_cmp);
        // At most (rows − 1) / 2 from each end, so at least one difference is kept.
        let cut = ((rows as f64 * GATE_TRIM) as usize).min(rows.saturating_sub(1) / 2);
        let kept = &differences[cut..rows - cut];
        let trimmed_difference = if kept.is_empty() {
            f64::INFINITY
        } else {
            kept.iter().sum::<f64>() / kept.len() as f64
        };
        GateScore {
            trimmed_difference,
            candidate_better_rows,
            rows,
        }
    }

    /// Whether the candidate is at least as good as the model in use.
    pub fn accepts(&self) -> bool {
        self.trimmed_difference <= 0.0
    }
}

/// A model's score on the validation rows.
struct Score {
    /// Gaussian NLL of each row: the mean over members and state dimensions.
    row_nll: Vec<f64>,
    /// Squared error of each row: the mean over members and state dimensions of
    /// (member mean − target)².
    row_se: Vec<f64>,
    /// MSE per state dimension over every member and row.
    mse: f64,
}

impl Score {
    /// Mean Gaussian NLL per state dimension over every member and row.
    fn mean_nll(&self) -> f64 {
        if self.row_nll.is_empty() {
            return f64::INFINITY;
        }
        self.row_nll.iter().sum::<f64>() / self.row_nll.len() as f64
    }
}

/// Gaussian NLL of each validation row and the MSE of the change of state, for an
/// `ensemble_size` ensemble predicting every row with every member. Rows go in chunks so
/// memory stays bounded.
fn score(
    data: &Transitions,
    ensemble_size: usize,
    mut predict: impl FnMut(
        ndarray::ArrayView3<'_, f32>,
        ndarray::ArrayView3<'_, f32>,
    ) -> anyhow::Result<(Array3<f32>, Array3<f32>)>,
) -> anyhow::Result<Score> {
    const CHUNK: usize = 1024;
    let mut out = Score {
        row_nll: Vec::with_capacity(data.len()),
        row_se: Vec::with_capacity(data.len()),
        mse: f64::INFINITY,
    };
    if data.is_empty() {
        return Ok(out);
    }
    // Every member predicts for every row: [N, ·] becomes [E, N, ·].
    let members = |view: ArrayView2<'_, f32>| {
        let (n, d) = view.dim();
        view.insert_axis(Axis(0))
            .broadcast((ensemble_size, n, d))
            .map(|b| b.to_owned())
            .ok_or_else(|| anyhow::anyhow!("cannot broadcast the validation rows"))
    };
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let (mut sq, mut count) = (0.0f64, 0usize);
    let mut start = 0;
    while start < data.len() {
        let end = (start + CHUNK).min(data.len());
        let rows = ndarray::s![start..end, ..];
        let (mean, logvar) = predict(
            members(data.states.slice(rows))?.view(),
            members(data.actions.slice(rows))?.view(),
        )?;
        let targets = &data.next_states.slice(rows) - &data.states.slice(rows);
        let mut row_nll = vec![0.0f64; end - start];
        let mut row_se = vec![0.0f64; end - start];
        let per_row = (ensemble_size * targets.ncols()).max(1) as f64;
        for (m, lv) in mean.outer_iter().zip(logvar.outer_iter()) {
            for (((m, lv), y), row) in m
                .outer_iter()
                .zip(lv.outer_iter())
                .zip(targets.outer_iter())
                .zip(row_nll.iter_mut().zip(row_se.iter_mut()))
            {
                let (row, se) = row;
                for ((m, lv), y) in m.iter().zip(lv.iter()).zip(y.iter()) {
                    let (m, lv, y) = (f64::from(*m), f64::from(*lv), f64::from(*y));
                    let err = (m - y) * (m - y);
                    *row += (0.5 * (lv + err * (-lv).exp()) + half_ln_2pi) / per_row;
                    *se += err / per_row;
                    sq += err;
                    count += 1;
                }
            }
        }
        out.row_nll.extend(row_nll);
        out.row_se.extend(row_se);
        start = end;
    }
    out.mse = sq / count as f64;
    Ok(out)
}
