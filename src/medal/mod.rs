//! Autonomous practice: forward phases that do the task and backward phases that bring
//! the robot back to where the demonstrations start, with no one resetting it (MEDAL,
//! model-based: the notes' `004`, "MEDAL" and "MBARL").
//!
//! The backward controller is the same CEM planner over the same ensemble as the forward
//! one, with another objective: under [`ResetMode::Medal`] the learned cost
//! `log(1 − C(s'))` of a [`classifier::Classifier`] that tells the demonstrations' start
//! states from the states the backward controller visited; under [`ResetMode::Hand`] a
//! hand-written distance to the task's rest state; under [`ResetMode::None`] there is no
//! backward phase (forward-only, reset-free). The practice loop itself is the learning
//! job's (`learn::practice`); this module holds what it is made of.
//!
//! Positives are the first [`PracticeConfig::demo_start_steps`] states of each
//! demonstration (by default its start state alone), not all of them as in MEDAL: MEDAL's
//! tasks end near where their demonstrations go, but a swing-up's demonstrations spend
//! most of their time balanced upright, which is exactly where a reset must not stop, and
//! the expert is already moving at 2–4 m/s and rad/s by its third step. A backward phase
//! ends when `C(s)` has held at the threshold (0.8) for 10 steps in a row, so a state
//! that passes through the start region at speed does not end it.

pub mod classifier;

use serde::{Deserialize, Serialize};

pub use classifier::{
    Classifier, ClassifierConfig, ClassifierCost, ClassifierSlot, ClassifierWeights, FitReport,
};

use crate::control::{RewardFn, SuccessFn};
use crate::task::Task;

/// What brings the robot back between forward phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ResetMode {
    /// MEDAL: a backward phase planning for `log(1 − C(s))`, ended when `C(s)` says the
    /// state is demonstration-like.
    Medal,
    /// A backward phase planning for a hand-written distance to the rest state, ended
    /// when the robot is at rest there.
    Hand,
    /// No backward phase: forward phases back to back (reset-free, forward only).
    None,
    /// No backward phase: every forward phase starts from a reset the simulator does
    /// (episodic PETS with oracle resets, the upper bound MEDAL is measured against;
    /// refused on hardware).
    Oracle,
}

impl ResetMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Medal => "medal",
            Self::Hand => "hand",
            Self::None => "none",
            Self::Oracle => "oracle",
        }
    }
}

/// A reset-free practice run's settings (defaults from the notes: 300-step backward
/// phases, a classifier fit every 10 steps on 400 + 400 states; a forward phase is the
/// task's episode, 200 steps for the cart-pole).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PracticeConfig {
    pub reset: ResetMode,
    /// Control steps of practice in all (forward and backward), after the
    /// demonstrations.
    pub steps: u64,
    /// A forward phase ends after this many steps, or when the task succeeds (T_f).
    pub forward_steps: u32,
    /// A backward phase ends after this many steps, or when the state is
    /// demonstration-like (T_b).
    pub backward_steps: u32,
    pub classifier: ClassifierConfig,
    /// Backward steps between two classifier fits (K).
    pub classifier_every: u32,
    /// The states of each demonstration's first steps are the classifier's positives.
    pub demo_start_steps: u32,
    /// Forward–backward cycles in a row with neither a forward success nor a backward
    /// phase that reached the start before the robot counts as stuck: an intervention
    /// (the simulator: one counted reset; hardware: the operator is asked to reset it).
    pub stuck_cycles: u32,
    /// Interventions after which the run stops (it cannot practise on its own).
    pub max_interventions: u32,
    /// Practice steps between two deployed evaluations (EARL; 0: none).
    pub eval_every: u64,
    /// Episodes of each deployed evaluation, from the task's initial distribution.
    pub eval_episodes: u32,
}

impl Default for PracticeConfig {
    fn default() -> Self {
        Self {
            reset: ResetMode::Medal,
            steps: 6_000,
            forward_steps: 200,
            backward_steps: 300,
            classifier: ClassifierConfig::default(),
            classifier_every: 10,
            demo_start_steps: 1,
            stuck_cycles: 5,
            max_interventions: 10,
            eval_every: 1_000,
            eval_episodes: 5,
        }
    }
}

impl PracticeConfig {
    /// Checks the settings against `task`: every number in range, and a task this
    /// practice knows a rest state and a success test for.
    pub fn validate(&self, task: Task) -> anyhow::Result<()> {
        if self.steps == 0 {
            anyhow::bail!("practice: at least one step of practice");
        }
        if self.forward_steps == 0 || self.backward_steps == 0 {
            anyhow::bail!("practice: forward and backward phases of at least one step");
        }
        if self.classifier_every == 0 {
            anyhow::bail!("practice: the classifier is fitted every K ≥ 1 backward steps");
        }
        if self.demo_start_steps == 0 {
            anyhow::bail!("practice: at least one start step per demonstration");
        }
        if self.stuck_cycles == 0 {
            anyhow::bail!("practice: stuck after at least one cycle");
        }
        if self.eval_every > 0 && self.eval_episodes == 0 {
            anyhow::bail!(
                "practice: a deployed evaluation of at least one episode (or --eval-every 0)"
            );
        }
        self.classifier.validate()?;
        if ResetTask::of(task).is_none() {
            anyhow::bail!(
                "practice: task {} has no reset problem handful knows (its start state and \
                 success test); practice runs the cart-pole",
                task.name()
            );
        }
        Ok(())
    }
}

/// One deployed evaluation (EARL: the forward controller in use, from the task's
/// initial distribution on a separate simulator; run by the learning job's evaluator
/// thread), and the continuing count beside it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Practice steps done when the evaluation was asked for.
    pub at_step: u64,
    /// The model evaluated (the one driving the robot then).
    pub model_version: u32,
    pub episodes: u32,
    /// Episodes that succeeded (the task's success test, or the forward phase's return
    /// share: the practice's own test).
    pub successes: u32,
    pub success_rate: f64,
    pub mean_return: f64,
    pub min_return: f64,
    /// Forward successes on the training stream by `at_step` (continuing performance).
    pub continuing_successes: u32,
    /// Wall time the evaluation took, ms.
    pub eval_ms: u64,
}

/// What a task's practice needs beside its reward: whether a forward phase succeeded,
/// and its rest (where its demonstrations start) for the hand-written reset and for
/// accounting.
#[derive(Clone, Copy, Debug)]
pub struct ResetTask {
    /// A forward phase succeeds when its return is at least this share of its steps
    /// (the cart-pole's 170 of 200, the learning job's mark).
    pub success_share: f64,
    /// A state test that ends a forward phase early as a success (`None`: the phase runs
    /// its steps: a swing-up must also balance).
    pub forward_success: Option<SuccessFn>,
    /// The hand-written reset's reward (distance to the rest state).
    pub rest_reward: RewardFn,
    /// At rest where the demonstrations start.
    pub at_rest: SuccessFn,
}

impl ResetTask {
    pub fn of(task: Task) -> Option<Self> {
        match task {
            Task::CartpoleSwingup => Some(Self {
                success_share: 0.85,
                forward_success: None,
                rest_reward: crate::task::cartpole_rest_reward,
                at_rest: crate::task::cartpole_at_rest,
            }),
            // The pusher's forward phase ends on the puck at rest in the goal (its
            // return says little: the phase ends as soon as it succeeds); its rest is
            // pusher and puck back at their start positions.
            Task::PushToGoal => Some(Self {
                success_share: f64::INFINITY,
                forward_success: Task::PushToGoal.success_fn(),
                rest_reward: crate::task::push_rest_reward,
                at_rest: crate::task::push_at_rest,
            }),
            _ => None,
        }
    }
}
