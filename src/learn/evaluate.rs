//! EARL's two measures of a reset-free run. *Continuing* performance is what the
//! training stream itself achieves: the forward successes so far, counted by the
//! practice loop. *Deployed* performance is what the current forward controller would
//! achieve if it were deployed now: every `eval_every` practice steps, the model in use
//! drives `eval_episodes` episodes from the task's initial distribution on a separate,
//! in-process simulator instance (the calibration's `[plant]`), never the robot.
//!
//! The evaluator is a thread of its own (`handful-eval`, nice 10, one ONNX Runtime
//! thread, like the retrainer): it loads the published model file into a fresh
//! `Ensemble` and MPC controller with the forward task's cost, on a simulated clock (no
//! anytime cut: the plan the controller would make given its full budget) and without
//! latency compensation (the in-process plant applies each command at once; planning
//! for a period of delay that is not there cost 30 of a 170 return), and rolls it out.
//! The starts are the same `eval_episodes` seeded draws every time (common random
//! numbers), so two evaluations differ by the model alone. The practice never waits for
//! it in real time: a request while one is running is skipped and counted; in lockstep
//! each is waited for, so its figures do not depend on timing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::calib::Calibration;
use crate::clock::Clock;
use crate::control::{Controller, Observation};
use crate::medal::{Evaluation, ResetTask};
use crate::model::{Ensemble, ModelExpectation, ModelOptions};
use crate::mpc::{Dynamics as _, MpcController, Planner, PlannerConfig, TaskCost};
use crate::thread::{JoinOnDrop, spawn_named};

/// What the evaluator is asked to do.
struct Request {
    at_step: u64,
    model_version: u32,
    model: PathBuf,
    continuing_successes: u32,
}

/// The deployed-performance evaluator thread and its channels.
pub struct Evaluator {
    requests: Option<Sender<Request>>,
    results: Receiver<Result<Evaluation, String>>,
    /// Asked for and not yet answered.
    pending: u32,
    /// Requests skipped because one was running (real time).
    pub skipped: u32,
    _thread: JoinOnDrop<()>,
}

/// The settings the evaluator runs with.
#[derive(Clone, Debug)]
pub struct EvalSetup {
    pub episodes: u32,
    pub steps: u32,
    pub seed: u64,
    pub planner: PlannerConfig,
    pub task: ResetTask,
}

impl Evaluator {
    pub fn spawn(calib: &Calibration, setup: EvalSetup) -> anyhow::Result<Self> {
        let (requests, inbox) = channel::bounded::<Request>(1);
        let (outbox, results) = channel::bounded(4);
        let calib = calib.clone();
        let thread = spawn_named("handful-eval", move || {
            crate::thread::lower_priority();
            for request in inbox {
                let result = evaluate(&calib, &setup, &request).map_err(|e| format!("{e:#}"));
                if outbox.send(result).is_err() {
                    return;
                }
            }
        })
        .context("starting the evaluator thread")?;
        Ok(Self {
            requests: Some(requests),
            results,
            pending: 0,
            skipped: 0,
            _thread: thread,
        })
    }

    /// Asks for an evaluation of `model` (version `model_version`); skipped (counted)
    /// when one is still running. Returns whether it was queued.
    pub fn request(
        &mut self,
        at_step: u64,
        model_version: u32,
        model: PathBuf,
        continuing_successes: u32,
    ) -> bool {
        let Some(requests) = &self.requests else {
            return false;
        };
        if self.pending > 0 {
            self.skipped += 1;
            return false;
        }
        let request = Request {
            at_step,
            model_version,
            model,
            continuing_successes,
        };
        match requests.try_send(request) {
            Ok(()) => {
                self.pending += 1;
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.skipped += 1;
                false
            }
        }
    }

    /// The evaluations that have finished.
    pub fn poll(&mut self) -> anyhow::Result<Vec<Evaluation>> {
        let mut out = Vec::new();
        while let Ok(result) = self.results.try_recv() {
            self.pending = self.pending.saturating_sub(1);
            out.push(result.map_err(|e| anyhow::anyhow!("the deployed evaluation failed: {e}"))?);
        }
        Ok(out)
    }

    /// Waits for every evaluation asked for (at most `timeout` each), calling `idle`
    /// every 20 ms meanwhile (the caller drains what the loop publishes).
    pub fn wait(
        &mut self,
        timeout: Duration,
        mut idle: impl FnMut(),
    ) -> anyhow::Result<Vec<Evaluation>> {
        let mut out = Vec::new();
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        while self.pending > 0 {
            idle();
            match self.results.recv_timeout(step) {
                Ok(result) => {
                    self.pending -= 1;
                    waited = Duration::ZERO;
                    out.push(
                        result
                            .map_err(|e| anyhow::anyhow!("the deployed evaluation failed: {e}"))?,
                    );
                }
                Err(channel::RecvTimeoutError::Timeout) if waited < timeout => waited += step,
                Err(_) => anyhow::bail!("the deployed evaluation did not finish"),
            }
        }
        Ok(out)
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the evaluation in hand.
        self.requests = None;
    }
}

/// One evaluation: `setup.episodes` rollouts of the model's forward controller.
fn evaluate(
    calib: &Calibration,
    setup: &EvalSetup,
    request: &Request,
) -> anyhow::Result<Evaluation> {
    let clock = Clock::real();
    let started = clock.now_us();
    let expect = ModelExpectation::from_calibration(calib);
    let ensemble = Ensemble::load_with(&request.model, &expect, ModelOptions::default())
        .with_context(|| format!("loading {}", request.model.display()))?;
    let bounds: Vec<(f32, f32)> = calib.actions.iter().map(|a| (a.min, a.max)).collect();
    // The in-process plant applies each command at once: nothing to compensate for
    // (the robot's controller plans from the state one period ahead, which here would
    // be planning for a delay that does not exist).
    let config = PlannerConfig {
        latency_fraction: 0.0,
        ..setup.planner.clone()
    };
    let planner = Planner::new(
        config,
        calib.state_dim(),
        calib.action_dim(),
        &bounds,
        ensemble.ensemble_size(),
    )?;
    let mut controller = MpcController::new(
        planner,
        Box::new(ensemble),
        Box::new(TaskCost(calib.task)),
        Clock::simulated(),
    )
    .map_err(|e| anyhow::anyhow!("the model does not fit the planner: {e}"))?;
    let mut returns = Vec::with_capacity(setup.episodes as usize);
    let mut successes = 0;
    for episode in 0..setup.episodes {
        let rng = &mut ChaCha8Rng::seed_from_u64(setup.seed.wrapping_add(u64::from(episode)));
        let (episode_return, steps, succeeded) = rollout(calib, setup, &mut controller, rng);
        let share = setup.task.success_share * f64::from(steps);
        successes += u32::from(succeeded || (steps > 0 && episode_return >= share));
        returns.push(episode_return);
    }
    let n = returns.len().max(1) as f64;
    Ok(Evaluation {
        at_step: request.at_step,
        model_version: request.model_version,
        episodes: setup.episodes,
        successes,
        success_rate: f64::from(successes) / n,
        mean_return: returns.iter().sum::<f64>() / n,
        min_return: returns.iter().copied().fold(f64::INFINITY, f64::min),
        continuing_successes: request.continuing_successes,
        eval_ms: clock.now_us().saturating_sub(started) / 1000,
    })
}

/// One episode from a start drawn with `rng`: its return, its steps and whether the
/// task's success test passed (which ends it, as it ends a forward phase).
fn rollout(
    calib: &Calibration,
    setup: &EvalSetup,
    controller: &mut MpcController,
    rng: &mut ChaCha8Rng,
) -> (f64, u32, bool) {
    let mut plant = calib.plant.build();
    plant.reset(rng);
    controller.reset();
    let (n_state, n_action) = (calib.state_dim(), calib.action_dim());
    let mut state: Vec<f32> = plant.state().iter().map(|&v| v as f32).collect();
    let mut action = vec![0f32; n_action];
    let mut applied = vec![0f64; n_action];
    let mut total = 0.0;
    for tick in 0..u64::from(setup.steps) {
        let obs = Observation {
            state: &state,
            now_us: tick * calib.control_period_us,
            state_age_us: 0,
            tick,
        };
        let ok = controller.act(&obs, &mut action).is_ok();
        // The host's clamp, and the safe command for a plan that failed.
        for ((a, out), channel) in action.iter_mut().zip(&mut applied).zip(&calib.actions) {
            *a = if ok && a.is_finite() {
                a.clamp(channel.min, channel.max)
            } else {
                channel.safe
            };
            *out = f64::from(*a);
        }
        plant.step(&applied);
        state
            .iter_mut()
            .zip(plant.state())
            .for_each(|(o, &v)| *o = v as f32);
        total += f64::from(calib.task.reward(&state[..n_state], &action));
        if setup.task.forward_success.is_some_and(|s| s(&state)) {
            return (total, tick as u32 + 1, true);
        }
    }
    (total, setup.steps, false)
}
