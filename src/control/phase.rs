//! Phases: what the robot is asked to do in each part of a run.
//!
//! A continual run is a sequence of phases on one armed robot (forward, backward,
//! evaluation): each is an episode for accounting — its own steps, return and end — and
//! carries its own task as pure functions (reward, success test) and step budget, so the
//! control thread scores every tick with the phase in force, without allocating and
//! without reading the calibration. A phase that ends can hold the robot armed (the
//! controller goes on acting, in real time; in lockstep nothing is sent, so the plant
//! waits) until the next phase starts with [`Start::Continue`]: no disarm, no reset, no
//! re-arm.

use handful_protocol::MAX_STATE_DIM;
use serde::Serialize;

use crate::task::Task;

/// A reward for arriving in `next_state` after `action` (SI, the calibration's channel
/// order). Pure: no allocation, no panic on any finite or non-finite input.
pub type RewardFn = fn(next_state: &[f32], action: &[f32]) -> f32;

/// Whether `state` completes the phase's task. Pure, like [`RewardFn`].
pub type SuccessFn = fn(state: &[f32]) -> bool;

/// Which part of a run a phase is. Recorded per tick, per episode and per dataset frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// The task itself (the calibration's task, for runs of one phase).
    #[default]
    Forward,
    /// Back to where the task starts (an autonomous reset).
    Backward,
    /// Scored without learning from it.
    Evaluation,
}

impl PhaseKind {
    pub const ALL: [Self; 3] = [Self::Forward, Self::Backward, Self::Evaluation];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Backward => "backward",
            Self::Evaluation => "evaluation",
        }
    }

    /// The number datasets store (`handful/phase`).
    pub const fn index(self) -> u8 {
        self as u8
    }

    pub fn from_index(index: u8) -> Option<Self> {
        Self::ALL.get(usize::from(index)).copied()
    }
}

/// What the loop does when a phase's budget is spent or its success test passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AtEnd {
    /// Disarm and go idle (an episode in the usual sense).
    Disarm,
    /// Stay armed and keep the controller acting until the next phase starts.
    Hold,
}

/// A phase's task: reward, success test and step budget, and what follows it.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    pub kind: PhaseKind,
    pub reward: RewardFn,
    /// A state passing this ends the phase as [`super::EpisodeEnd::Succeeded`].
    pub success: Option<SuccessFn>,
    /// Ends the phase as [`super::EpisodeEnd::Succeeded`] when the controller's
    /// objective score ([`super::Controller::objective_score`], e.g. a classifier's
    /// `C(s)`) holds at its threshold for its steps.
    pub score_at_least: Option<ScoreTest>,
    /// Control steps before the phase ends as completed (`None`: until told).
    pub steps: Option<u32>,
    pub at_end: AtEnd,
}

impl Phase {
    /// The forward phase of `task`, `steps` long, disarming at its end, and ending early
    /// on the task's success test if it has one ([`Task::success_fn`]: the pusher's puck
    /// at rest in the goal; a swing-up has none and runs its steps).
    pub fn of_task(task: Task, steps: Option<u32>) -> Self {
        Self {
            kind: PhaseKind::Forward,
            reward: task.reward_fn(),
            success: task.success_fn(),
            score_at_least: None,
            steps,
            at_end: AtEnd::Disarm,
        }
    }

    /// This phase, as `kind`.
    pub fn as_kind(mut self, kind: PhaseKind) -> Self {
        self.kind = kind;
        self
    }

    /// This phase, ending early when `success` passes.
    pub fn until(mut self, success: SuccessFn) -> Self {
        self.success = Some(success);
        self
    }

    /// This phase, ending early once the controller's objective has scored the state at
    /// `threshold` or more for `steps` steps in a row (a state passing through the
    /// region at speed does not end it; one that stays there does).
    pub fn until_score(mut self, threshold: f32, steps: u32) -> Self {
        self.score_at_least = Some(ScoreTest { threshold, steps });
        self
    }

    /// This phase, holding the robot armed at its end for the next one.
    pub fn then_hold(mut self) -> Self {
        self.at_end = AtEnd::Hold;
        self
    }
}

/// A phase's end on the controller's objective score (see [`Phase::until_score`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ScoreTest {
    pub threshold: f32,
    /// Consecutive steps at or above the threshold (at least 1).
    pub steps: u32,
}

/// A state for an episode to start at: SI values in the calibration's state channel
/// order. Fixed size and `Copy`, so it travels to the control thread without allocating.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StartState {
    values: [f32; MAX_STATE_DIM],
    dim: u8,
}

impl StartState {
    /// `values`, or `None` if there are more than the protocol carries.
    pub fn new(values: &[f32]) -> Option<Self> {
        let mut out = Self {
            values: [0.0; MAX_STATE_DIM],
            dim: u8::try_from(values.len()).ok()?,
        };
        out.values.get_mut(..values.len())?.copy_from_slice(values);
        Some(out)
    }

    pub fn values(&self) -> &[f32] {
        &self.values[..usize::from(self.dim)]
    }
}

impl Serialize for StartState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.values())
    }
}

/// How a phase begins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start {
    /// Reset the robot from `reset_seed` (if given; simulators), arm it, and start when
    /// its first state after that arrives. Also the explicit re-arm out of `Fault`.
    Arm { reset_seed: Option<u64> },
    /// Reset the robot to exactly `state` (a ResetTo: robots announcing `CAP_RESET_TO`
    /// only; sending it to another fails the start as `Faulted(SendFailed)`), arm it, and
    /// start when its first state after that arrives: in lockstep that state is `state`.
    ArmAt { state: StartState },
    /// Go on from where the robot is, armed: only from a driving mode (an episode in
    /// progress, which this ends as interrupted, or one that holds); otherwise the phase
    /// ends at once as `Faulted(NotArmed)`.
    Continue,
}

/// What replaces a controller's objective between ticks (see
/// [`super::Controller::replace_objective`]): a type the controller documents, boxed and
/// prepared off the control thread. The old one comes back in the same box.
pub type Objective = Box<dyn std::any::Any + Send>;

/// A request to start a phase at the next tick.
pub struct EpisodeStart {
    /// `Teleop` or `Autonomous` (anything else drives autonomously).
    pub mode: Mode,
    pub phase: Phase,
    pub start: Start,
    /// Replaces the controller at that tick; the old one comes back on `retired`.
    pub controller: Option<Box<dyn super::Controller>>,
    /// Then replaces the (new or current) controller's objective; the old one comes back
    /// on `retired_objectives`. A controller that refuses it ends the phase at once as
    /// `Faulted(Controller)`.
    pub objective: Option<Objective>,
}

use super::Mode;

impl EpisodeStart {
    /// Reset to `state`, arm, and drive `phase` in `mode` with the current controller.
    pub fn arm_at(mode: Mode, phase: Phase, state: StartState) -> Self {
        Self {
            mode,
            phase,
            start: Start::ArmAt { state },
            controller: None,
            objective: None,
        }
    }

    /// Reset (if `reset_seed`), arm, and drive `phase` in `mode` with the current
    /// controller.
    pub fn arm(mode: Mode, phase: Phase, reset_seed: Option<u64>) -> Self {
        Self {
            mode,
            phase,
            start: Start::Arm { reset_seed },
            controller: None,
            objective: None,
        }
    }

    /// Go on, armed, with `phase`.
    pub fn continue_with(mode: Mode, phase: Phase) -> Self {
        Self {
            mode,
            phase,
            start: Start::Continue,
            controller: None,
            objective: None,
        }
    }

    /// With `controller` in place of the current one.
    pub fn with_controller(mut self, controller: Box<dyn super::Controller>) -> Self {
        self.controller = Some(controller);
        self
    }

    /// With `objective` for the controller.
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = Some(objective);
        self
    }
}
