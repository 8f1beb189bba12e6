//! Reset-free practice (`handful practice`): after the demonstrations and the first
//! model, the robot alternates forward phases (the task) and backward phases (back to
//! where the demonstrations start) on one armed robot, with no reset in between. See
//! [`crate::medal`] for the objectives; this is the loop.
//!
//! Each phase is an episode for accounting and in the learner dataset (its frames carry
//! the phase). Forward, backward and demonstration data all train the one dynamics model
//! (the DAgger mixture is kept: the demonstrations are the expert half). The classifier
//! is fitted on this thread every K backward steps, as the tick records arrive, and
//! published to the backward cost through a [`ClassifierSlot`]: in real time a new version
//! is planned with from the next tick that finds it; in lockstep from the tick after the
//! record it was fitted on, exactly (the loop waits for it), so a lockstep practice is
//! reproducible. A model swapped in mid-phase is given the phase's
//! objective before it reaches the loop (`Swaps::set_objective`).
//!
//! Faults: a phase that ends on a fault is followed, once the robot is healthy again
//! (the driver's recovery policy), by an arm where the robot is, never a reset. Stuck:
//! `stuck_cycles` cycles in a row with neither a forward success nor a backward phase
//! that reached the start make one intervention: the simulator's one counted reset, or
//! on hardware a message and a wait for the operator.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;

use super::evaluate::{EvalSetup, Evaluator};
use super::{Begin, Session};
use crate::control::{
    self, AtEnd, EpisodeEnd, EpisodeStart, Mode, Phase, PhaseKind, ScoreTest, Start,
};
use crate::medal::{
    Classifier, ClassifierCost, ClassifierSlot, Evaluation, FitReport, PracticeConfig, ResetMode,
    ResetTask,
};
use crate::mpc::{RewardCost, TaskCost};
use crate::sysid::Kind;

/// The longest a deployed evaluation may take.
const EVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Fits of the classifier before the first backward phase.
const INITIAL_FITS: u32 = 10;

/// Visited states kept as the classifier's negatives (the newest).
const NEGATIVES_KEPT: usize = 20_000;

/// One phase of practice.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseRow {
    /// The phase's number in the practice (from 1).
    pub index: u32,
    pub phase: PhaseKind,
    /// How it began: `reset` (the practice's first), `continue` (armed, where the last
    /// left the robot), `arm` (after a fault, where the robot is), `intervention`.
    pub start: &'static str,
    pub steps: u32,
    pub episode_return: f64,
    pub end: String,
    /// Forward: the task done (return share); backward: the start reached (`C(s)` at the
    /// threshold, or at rest for the hand-written reset).
    pub success: bool,
    /// The robot at rest where the demonstrations start when the phase ended.
    pub at_rest: bool,
    /// `C(s)` of the phase's last state (the classifier in use then).
    pub last_score: Option<f32>,
    pub classifier_version: u32,
    pub model_version: Option<u32>,
    pub first_tick: u64,
    pub last_tick: u64,
    /// Practice steps so far, and forward successes so far (EARL's continuing
    /// performance), after this phase.
    pub steps_total: u64,
    pub successes_total: u32,
    pub plan_p99_us: u64,
    pub deadline_misses: u32,
}

/// What a practice run did.
#[derive(Clone, Debug, Serialize)]
pub struct PracticeSummary {
    pub config: PracticeConfig,
    pub steps: u64,
    pub forward_phases: u32,
    pub forward_successes: u32,
    pub backward_phases: u32,
    /// Backward phases that reached the start (ended on their test, not their budget).
    pub backward_reached: u32,
    /// Backward phases that left the robot at rest where the demonstrations start.
    pub backward_at_rest: u32,
    /// Phase changes on the armed robot (no reset, no re-arm).
    pub switches: u32,
    /// Resets no one would have done on a real robot: the goal is 0.
    pub interventions: u32,
    /// `--reset oracle`: the simulator's resets between forward phases.
    pub oracle_resets: u32,
    pub classifier_fits: u32,
    pub last_fit: Option<FitReport>,
    /// Lockstep: ticks whose classifier hand-over gave up waiting for the learner (0 in a
    /// healthy run; more means the run was not reproducible).
    pub classifier_waits_timed_out: u32,
    pub phases: Vec<PhaseRow>,
    /// EARL's deployed performance over the practice (every `eval_every` steps), each
    /// beside the continuing count at its step.
    pub evaluations: Vec<Evaluation>,
    /// Evaluations not run because the one before was still running (real time).
    pub evaluations_skipped: u32,
}

/// How the next phase begins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Reset,
    Continue,
    Arm,
    Intervention,
}

impl Next {
    const fn label(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Continue => "continue",
            Self::Arm => "arm",
            Self::Intervention => "intervention",
        }
    }
}

/// The classifier, its data and its log, fitted from the tick records.
struct Learner {
    classifier: Classifier,
    slot: Arc<ClassifierSlot>,
    positives: Vec<Vec<f32>>,
    negatives: std::collections::VecDeque<Vec<f32>>,
    every: u32,
    since_fit: u32,
    fits: u32,
    last_fit: Option<FitReport>,
    csv: std::fs::File,
    learning: crate::telemetry::LearningTelemetry,
}

impl Drop for Learner {
    fn drop(&mut self) {
        self.slot.close();
    }
}

impl Learner {
    fn visited(&mut self, state: &[f32]) {
        if self.negatives.len() == NEGATIVES_KEPT {
            self.negatives.pop_front();
        }
        self.negatives.push_back(state.to_vec());
    }

    /// A backward step was observed: its state is a negative; every K, a fit.
    fn backward_step(&mut self, state: &[f32]) -> anyhow::Result<()> {
        self.visited(state);
        self.since_fit += 1;
        if self.since_fit >= self.every {
            self.fit()?;
        }
        Ok(())
    }

    fn fit(&mut self) -> anyhow::Result<()> {
        self.since_fit = 0;
        let negatives = self.negatives.make_contiguous();
        let report = self.classifier.fit(&self.positives, negatives)?;
        self.slot.publish(self.classifier.weights());
        self.fits += 1;
        writeln!(
            self.csv,
            "{},{:.5},{:.5},{:.4},{:.4},{:.4},{},{}",
            report.version,
            report.loss_before,
            report.loss_after,
            report.mean_positive,
            report.mean_negative,
            report.accuracy,
            report.positives_available,
            report.negatives_available
        )?;
        self.learning.classifier_fit(&report);
        self.last_fit = Some(report);
        Ok(())
    }
}

/// The deployed evaluations of a practice and their log.
struct Earl {
    evaluator: Evaluator,
    every: u64,
    /// The practice step at which the next evaluation is due.
    next_at: u64,
    csv: std::fs::File,
}

impl Earl {
    /// Logs finished evaluations: `evaluation.csv`, the summary, the viewer.
    fn record(
        &mut self,
        done: Vec<Evaluation>,
        summary: &mut PracticeSummary,
        learner: &Learner,
    ) -> anyhow::Result<()> {
        for e in done {
            writeln!(
                self.csv,
                "{},{},{},{},{:.4},{:.4},{:.4},{},{}",
                e.at_step,
                e.model_version,
                e.episodes,
                e.successes,
                e.success_rate,
                e.mean_return,
                e.min_return,
                e.continuing_successes,
                e.eval_ms
            )?;
            self.csv.flush()?;
            println!(
                "evaluation at step {:>6}: model v{} deployed {} of {} (mean return {:.1}); {} successes while practising",
                e.at_step,
                e.model_version,
                e.successes,
                e.episodes,
                e.mean_return,
                e.continuing_successes
            );
            learner.learning.evaluation(&e);
            summary.evaluations.push(e);
        }
        Ok(())
    }
}

impl Session<'_> {
    /// After each phase: the summary's classifier figures brought up to date (a practice
    /// that stops reports them), a deployed evaluation asked for when one is due
    /// (lockstep: and waited for), and those that have finished logged.
    fn between_phases(
        &mut self,
        earl: Option<&mut Earl>,
        summary: &mut PracticeSummary,
        learner: &Learner,
    ) -> anyhow::Result<()> {
        summary.classifier_fits = learner.fits;
        summary.last_fit = learner.last_fit;
        summary.classifier_waits_timed_out = learner.slot.gate_timeouts();
        let Some(earl) = earl else {
            return Ok(());
        };
        if summary.steps >= earl.next_at {
            while earl.next_at <= summary.steps {
                earl.next_at += earl.every;
            }
            if let Some(model) = self.retraining.models.last() {
                let path = self
                    .config
                    .out_dir
                    .join("models")
                    .join(format!("v{}.onnx", model.version));
                earl.evaluator.request(
                    summary.steps,
                    model.version,
                    path,
                    summary.forward_successes,
                );
            }
        }
        let done = if self.config.wait_for_model {
            earl.evaluator.wait(EVAL_TIMEOUT, || self.handle.drain())?
        } else {
            earl.evaluator.poll()?
        };
        earl.record(done, summary, learner)
    }

    /// Practises without resets for `practice.steps` control steps (the demonstrations
    /// and the first model are in place).
    pub(super) fn practice(
        &mut self,
        practice: &PracticeConfig,
        out: &mut Option<PracticeSummary>,
    ) -> anyhow::Result<()> {
        let task = ResetTask::of(self.calib.task)
            .context("practice: this task has no reset problem handful knows")?;
        let positives: Vec<Vec<f32>> = self
            .demos
            .iter()
            .flat_map(|episode| episode.iter().take(practice.demo_start_steps as usize))
            .cloned()
            .collect();
        let reference: Vec<Vec<f32>> = self.demos.iter().flatten().cloned().collect();
        if positives.is_empty() {
            bail!(
                "practice needs demonstrations (their start states teach the classifier \
                 where to reset to): give --expert DATASET or --expert-episodes N ≥ 1"
            );
        }
        let classifier = Classifier::new(
            practice.classifier.clone(),
            self.calib.state_dim(),
            &self.config.retrainer.trainer.angle_state_indices,
            &reference,
            self.config.retrainer.seed ^ 0xc1a5_51f1,
        )
        .context("the practice classifier")?;
        let slot = if self.config.robot.lockstep {
            ClassifierSlot::lockstep(classifier.weights())
        } else {
            ClassifierSlot::new(classifier.weights())
        };
        let mut csv = std::fs::File::create(self.config.out_dir.join("classifier.csv"))?;
        writeln!(
            csv,
            "version,loss_before,loss_after,mean_c_positive,mean_c_negative,accuracy,positives,negatives"
        )?;
        let mut learner = Learner {
            classifier,
            slot: Arc::clone(&slot),
            positives,
            negatives: std::collections::VecDeque::new(),
            every: practice.classifier_every,
            since_fit: 0,
            fits: 0,
            last_fit: None,
            csv,
            learning: self.config.retrainer.learning.clone(),
        };
        let mut phases_csv = std::fs::File::create(self.config.out_dir.join("practice.csv"))?;
        writeln!(
            phases_csv,
            "index,phase,start,steps,return,end,success,at_rest,last_score,classifier_version,model_version,first_tick,last_tick,steps_total,successes_total,plan_p99_us,deadline_misses"
        )?;
        // No practice cost needs scratch space prepared per row count (`Cost::prepare`).
        let rows: [usize; 0] = [];
        let backward_objective = {
            let slot = Arc::clone(&slot);
            let rest = task.rest_reward;
            move |mode: ResetMode| -> crate::control::Objective {
                match mode {
                    ResetMode::Hand => crate::mpc::objective(Box::new(RewardCost(rest)), &rows),
                    _ => crate::mpc::objective(
                        Box::new(ClassifierCost::new(Arc::clone(&slot))),
                        &rows,
                    ),
                }
            }
        };
        let summary = out.insert(PracticeSummary {
            config: practice.clone(),
            steps: 0,
            forward_phases: 0,
            forward_successes: 0,
            backward_phases: 0,
            backward_reached: 0,
            backward_at_rest: 0,
            switches: 0,
            interventions: 0,
            oracle_resets: 0,
            classifier_fits: 0,
            last_fit: None,
            classifier_waits_timed_out: 0,
            phases: Vec::new(),
            evaluations: Vec::new(),
            evaluations_skipped: 0,
        });
        let mut earl = if practice.eval_every > 0 {
            let setup = EvalSetup {
                episodes: practice.eval_episodes,
                steps: practice.forward_steps,
                seed: self.config.retrainer.seed ^ 0xea71_e7a1,
                planner: self.config.retrainer.planner.clone(),
                task,
            };
            let mut eval_csv = std::fs::File::create(self.config.out_dir.join("evaluation.csv"))?;
            writeln!(
                eval_csv,
                "at_step,model_version,episodes,successes,success_rate,mean_return,min_return,continuing_successes,eval_ms"
            )?;
            Some(Earl {
                evaluator: Evaluator::spawn(self.calib, setup)?,
                every: practice.eval_every,
                next_at: practice.eval_every,
                csv: eval_csv,
            })
        } else {
            None
        };
        let simulated = self.config.robot.port.is_none();
        let mut next = Next::Reset;
        let mut stuck = 0;
        while summary.steps < practice.steps {
            // Forward: the task, from wherever the robot is.
            let mut phase =
                Phase::of_task(self.calib.task, Some(practice.forward_steps)).then_hold();
            if let Some(success) = task.forward_success {
                phase = phase.until(success);
            }
            let objective = crate::mpc::objective(Box::new(TaskCost(self.calib.task)), &rows);
            self.retraining.swaps.set_objective(None);
            let start = self.start(next, phase, objective);
            let forward = self.practice_phase(start, next, &mut learner, &task, summary, false)?;
            let forward_ok = forward.success;
            next = self.after(&forward, summary, &mut phases_csv)?;
            self.between_phases(earl.as_mut(), summary, &learner)?;
            if summary.steps >= practice.steps {
                break;
            }
            if practice.reset == ResetMode::None {
                stuck = 0;
                continue;
            }
            if practice.reset == ResetMode::Oracle {
                // The simulator puts the robot back at a start, as an episodic run does.
                summary.oracle_resets += 1;
                next = Next::Reset;
                continue;
            }
            if learner.fits == 0 {
                // The first version before the first backward phase: the demonstrations'
                // starts against what the robot has visited so far, fitted as long as
                // the first backward phase's K-step fits would have been.
                for _ in 0..INITIAL_FITS {
                    learner.fit()?;
                }
            }
            // Backward: to where the demonstrations start.
            let phase = Phase {
                kind: PhaseKind::Backward,
                reward: task.rest_reward,
                success: (practice.reset == ResetMode::Hand).then_some(task.at_rest),
                score_at_least: (practice.reset == ResetMode::Medal).then_some(ScoreTest {
                    threshold: practice.classifier.threshold,
                    steps: practice.classifier.hold_steps,
                }),
                steps: Some(practice.backward_steps),
                at_end: AtEnd::Hold,
            };
            let mode = practice.reset;
            let make = backward_objective.clone();
            self.retraining
                .swaps
                .set_objective(Some(Box::new(move || make(mode))));
            learner.slot.begin_phase();
            let start = self.start(next, phase, backward_objective(mode));
            let backward = self.practice_phase(start, next, &mut learner, &task, summary, true)?;
            next = self.after(&backward, summary, &mut phases_csv)?;
            self.between_phases(earl.as_mut(), summary, &learner)?;
            self.retraining.swaps.set_objective(None);
            if forward_ok || backward.success {
                stuck = 0;
            } else {
                stuck += 1;
            }
            if stuck >= practice.stuck_cycles {
                stuck = 0;
                summary.interventions += 1;
                tracing::warn!(
                    interventions = summary.interventions,
                    "the robot is stuck: {} cycles with no forward success and no reset reached",
                    practice.stuck_cycles
                );
                if summary.interventions > practice.max_interventions {
                    bail!(
                        "practice stopped: {} interventions (at most {} allowed): the robot \
                         cannot practise on its own",
                        summary.interventions,
                        practice.max_interventions
                    );
                }
                if !simulated {
                    ask_operator()?;
                }
                next = if simulated {
                    Next::Intervention
                } else {
                    Next::Arm
                };
            }
        }
        if let Some(earl) = earl.as_mut() {
            // The evaluations asked for belong to this run: wait for them.
            let done = earl.evaluator.wait(EVAL_TIMEOUT, || self.handle.drain())?;
            earl.record(done, summary, &learner)?;
            summary.evaluations_skipped = earl.evaluator.skipped;
        }
        summary.classifier_fits = learner.fits;
        summary.last_fit = learner.last_fit;
        summary.classifier_waits_timed_out = learner.slot.gate_timeouts();
        // The practice ends holding the robot armed: let go of it.
        let _ = self.handle.requests.send(control::Request::Disarm);
        println!(
            "practice ({}): {} steps, {} of {} forward phases succeeded, {} of {} backward \
             phases reached the start ({} at rest), {} switches, {} interventions, {} classifier fits",
            practice.reset.name(),
            summary.steps,
            summary.forward_successes,
            summary.forward_phases,
            summary.backward_reached,
            summary.backward_phases,
            summary.backward_at_rest,
            summary.switches,
            summary.interventions,
            summary.classifier_fits
        );
        Ok(())
    }

    /// The start of a phase: going on armed (with `objective`), or an arm (after a
    /// fault: where the robot is), or a reset (the first, or an intervention).
    fn start(&self, next: Next, phase: Phase, objective: control::Objective) -> EpisodeStart {
        let mut start = match next {
            Next::Continue => EpisodeStart {
                mode: Mode::Autonomous,
                phase,
                start: Start::Continue,
                controller: None,
                objective: None,
            },
            Next::Arm => EpisodeStart::arm(Mode::Autonomous, phase, None),
            Next::Reset | Next::Intervention => {
                let seed = self.driver.reset_seed(self.driver.next_index());
                EpisodeStart::arm(Mode::Autonomous, phase, seed)
            }
        };
        start.objective = Some(objective);
        start
    }

    /// Runs one practice phase; a backward one (`feeds_classifier`) feeds the classifier.
    fn practice_phase(
        &mut self,
        start: EpisodeStart,
        how: Next,
        learner: &mut Learner,
        task: &ResetTask,
        summary: &mut PracticeSummary,
        feeds_classifier: bool,
    ) -> anyhow::Result<PhaseRow> {
        let kind = start.phase.kind;
        let mut last_state: Vec<f32> = Vec::new();
        let mut last_score = None;
        let mut fit_error = None;
        let mut on_tick = |record: &control::TickRecord| -> anyhow::Result<()> {
            if record.episode.is_some() && record.phase == kind {
                last_state.clear();
                last_state.extend_from_slice(record.state());
                last_score = record.score.is_finite().then_some(record.score);
                if feeds_classifier {
                    if let Err(e) = learner.backward_step(record.state()) {
                        fit_error.get_or_insert(e);
                    }
                } else {
                    learner.visited(record.state());
                }
            }
            // Lockstep: the loop may plan the next tick (with any version just fitted).
            learner.slot.taken(record.tick);
            Ok(())
        };
        let outcome = self.run_phase(Begin::Given(start), None, Some(&mut on_tick))?;
        if let Some(e) = fit_error {
            return Err(e.context("fitting the classifier"));
        }
        let transitions = self.pair(&outcome.frames, self.stepping());
        self.add(Kind::Learner, transitions)?;
        if self.config.wait_for_model && kind == PhaseKind::Forward {
            // PETS's schedule (lockstep's default): the next forward phase plans with a
            // model that has seen this one. A backward phase's data joins that retrain.
            self.retrain_and_wait()?;
        } else if !self.config.wait_for_model {
            self.retraining.request()?;
        }
        let s = &outcome.summary;
        let success = match kind {
            PhaseKind::Backward => s.end == EpisodeEnd::Succeeded,
            _ => {
                s.end == EpisodeEnd::Succeeded
                    || (s.steps > 0 && s.episode_return >= task.success_share * f64::from(s.steps))
            }
        };
        let model_version = outcome
            .drivers
            .iter()
            .max_by_key(|d| (d.steps, d.from_tick))
            .map(|d| d.version);
        summary.steps += u64::from(s.steps);
        match kind {
            PhaseKind::Backward => {
                summary.backward_phases += 1;
                summary.backward_reached += u32::from(success);
            }
            _ => {
                summary.forward_phases += 1;
                summary.forward_successes += u32::from(success);
            }
        }
        let at_rest = !last_state.is_empty() && (task.at_rest)(&last_state);
        if kind == PhaseKind::Backward && at_rest {
            summary.backward_at_rest += 1;
        }
        if how == Next::Continue {
            summary.switches += 1;
        }
        Ok(PhaseRow {
            index: summary.phases.len() as u32 + 1,
            phase: kind,
            start: how.label(),
            steps: s.steps,
            episode_return: s.episode_return,
            end: s.end.label(),
            success,
            at_rest,
            last_score,
            classifier_version: learner.classifier.weights().version,
            model_version,
            first_tick: s.first_tick,
            last_tick: s.last_tick,
            steps_total: summary.steps,
            successes_total: summary.forward_successes,
            plan_p99_us: outcome.plan_p99_us,
            deadline_misses: outcome.deadline_misses,
        })
    }

    /// Logs `row` and says how the next phase begins.
    fn after(
        &mut self,
        row: &PhaseRow,
        summary: &mut PracticeSummary,
        csv: &mut std::fs::File,
    ) -> anyhow::Result<Next> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        writeln!(
            csv,
            "{},{},{},{},{:.4},{},{},{},{},{},{},{},{},{},{},{},{}",
            row.index,
            row.phase.name(),
            row.start,
            row.steps,
            row.episode_return,
            row.end,
            row.success,
            row.at_rest,
            opt(row.last_score.map(|v| format!("{v:.4}"))),
            row.classifier_version,
            opt(row.model_version.map(|v| v.to_string())),
            row.first_tick,
            row.last_tick,
            row.steps_total,
            row.successes_total,
            row.plan_p99_us,
            row.deadline_misses,
        )?;
        csv.flush()?;
        println!(
            "phase {:>4} {:<8} {:<12} steps {:>4} return {:>8.2} {:<10} {}{}  model {}  C v{}",
            row.index,
            row.phase.name(),
            row.start,
            row.steps,
            row.episode_return,
            row.end,
            if row.success { "success" } else { "-" },
            if row.at_rest { " at rest" } else { "" },
            opt(row.model_version.map(|v| format!("v{v}"))),
            row.classifier_version,
        );
        let faulted = matches!(
            self.driver.last_end(),
            Some(EpisodeEnd::Faulted(_) | EpisodeEnd::Interrupted)
        );
        summary.phases.push(row.clone());
        Ok(if faulted { Next::Arm } else { Next::Continue })
    }
}

/// Hardware: asks the operator to put the robot back where the demonstrations start.
fn ask_operator() -> anyhow::Result<()> {
    eprintln!(
        "handful: the robot is stuck and cannot reset itself. Put it back where the \
         demonstrations start, then press Enter to go on (Ctrl-C to stop)."
    );
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("waiting for the operator")?;
    Ok(())
}
