//! What a planning call reports: [`PlanStats`] on success, [`PlanError`] otherwise.
//! Both are small and `Copy`: they cross the control thread every tick.

use super::dynamics::DynamicsError;

/// Why a planning call stopped iterating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// All configured iterations ran (random shooting: its single round).
    IterationLimit,
    /// The largest sampling variance fell below `epsilon_variance`.
    Converged,
    /// The next iteration was predicted to overrun the deadline.
    Deadline,
}

/// Telemetry of one planning call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanStats {
    /// Optimizer iterations completed in this call (0 if the deadline allowed none).
    pub iterations: u32,
    /// Candidate action sequences scored in this call.
    pub samples_evaluated: u64,
    /// Lowest candidate cost of this call (`f32::MAX` if none was finite or none ran).
    pub best_cost: f32,
    /// Mean cost of the last iteration's elites.
    pub elite_mean_cost: f32,
    /// Largest per-coordinate sampling variance after the last update.
    pub max_variance: f32,
    pub stop: StopReason,
    /// Time spent in the call by the deadline's clock, µs (0 without a deadline).
    pub elapsed_us: u64,
}

impl PlanStats {
    /// Stats of a call in which no iteration ran.
    pub(crate) fn empty(max_variance: f32, stop: StopReason) -> Self {
        Self {
            iterations: 0,
            samples_evaluated: 0,
            best_cost: f32::MAX,
            elite_mean_cost: f32::MAX,
            max_variance,
            stop,
            elapsed_us: 0,
        }
    }
}

/// Why a planning call failed. Small and `Copy`: raised on the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("state has {got} values, the planner expects {expected}")]
    StateDim { got: usize, expected: usize },
    #[error("command has {got} values, the planner expects {expected}")]
    ActionDim { got: usize, expected: usize },
    #[error("the state contains a non-finite value")]
    NonFiniteState,
    #[error(
        "model is (S {got_state}, A {got_action}, E {got_ensemble}), planner was built for \
         (S {state}, A {action}, E {ensemble})"
    )]
    ModelMismatch {
        got_state: usize,
        got_action: usize,
        got_ensemble: usize,
        state: usize,
        action: usize,
        ensemble: usize,
    },
    #[error("dynamics failed: {0}")]
    Dynamics(#[from] DynamicsError),
    #[error("every candidate's cost was non-finite")]
    NoFiniteCandidate,
}
