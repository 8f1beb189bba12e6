//! The fixed-rate control loop, its mode state machine, its episodes and its safety layer.
//!
//! Three modules make the control thread: [`ticker`] the loop and the tick, `episode` the
//! episode state machine, `safety` the safety layer. [`ticker::spawn`] starts the thread;
//! it talks to the robot only through [`crate::link::Link`] and to the rest of the
//! program only through bounded channels
//! ([`Request`] in; [`TickRecord`], [`EpisodeSummary`] and retired controllers out) and
//! the [`TelemetrySink`] it is given. It names no consumer (no viewer, no recorder).

mod episode;
mod fault_count;
mod latency;
mod mode;
mod phase;
mod safety;
mod telemetry;
pub mod ticker;
pub mod timing;

pub use fault_count::FaultCounts;
pub use latency::LatencyCompensated;
pub use mode::{EpisodeEnd, EpisodeStep, EpisodeSummary, HostFault, Mode, Request, TickRecord};
pub use phase::{
    AtEnd, EpisodeStart, Objective, Phase, PhaseKind, RewardFn, ScoreTest, Start, StartState,
    SuccessFn,
};
pub use telemetry::{Telemetry, TelemetrySink};
pub use ticker::{LoopConfig, LoopHandle, LoopReport, RecordPolicy, spawn};
/// What a controller sees each tick. Values are SI, in the calibration's channel order.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The latest state sample, already offset/scaled at the link edge.
    pub state: &'a [f32],
    /// Host clock time of this tick, µs.
    pub now_us: u64,
    /// How old the state sample is at this tick, µs.
    pub state_age_us: u64,
    /// Tick counter since the loop started.
    pub tick: u64,
}

/// Why a controller produced no action this tick. Small and `Copy`: never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("the controller's model produced a non-finite value")]
    NonFinite,
    #[error("the controller is not ready (no model or not warmed up)")]
    NotReady,
}

/// Something that maps an observation to an action on the control thread.
///
/// Real-time contract for [`Controller::act`]: bounded time within the control period,
/// no allocation, no blocking, no I/O. The safety layer clamps and checks whatever it
/// writes; writing a NaN leads to the safe command and a fault, never to a panic.
pub trait Controller: Send {
    /// Writes one action (`action.len()` = the calibration's action dimension).
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError>;
    /// Called when a new episode starts (after a reset or re-arm). Allocation-free.
    fn reset(&mut self) {}
    /// Short name for logs and run summaries.
    fn name(&self) -> &'static str;
    /// Replaces what the controller optimises, between ticks, with `objective` (a type
    /// the controller documents, prepared off the control thread; `MpcController`: a
    /// boxed `mpc::Cost`), and returns the old one in the same box so it is dropped off
    /// the control thread. Allocation-free. A controller that has no such objective, or
    /// not of this type, hands it back as the `Err` (the default).
    fn replace_objective(&mut self, objective: Objective) -> Result<Objective, Objective> {
        Err(objective)
    }
    /// What the controller's objective says of `state` at `tick` (e.g. a learned cost's
    /// `C(s)`), asked once per driving tick before [`Controller::act`], recorded and used
    /// by a phase that ends on it ([`Phase::until_score`]). Allocation-free; `None` (the
    /// default): nothing.
    fn objective_score(&self, _state: &[f32], _tick: u64) -> Option<f32> {
        None
    }
}
