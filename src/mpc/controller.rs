//! [`MpcController`]: the planner as a [`Controller`] on the control thread.
//!
//! Owns the planner, the model and the cost; plans once per `act` within the configured
//! time budget from the tick's start. Never allocates after the first `act`; planner
//! failures become small [`ControlError`]s (the safety layer then commands safe).

use super::cem::Planner;
use super::cost::Cost;
use super::dynamics::{Dynamics, DynamicsError};
use super::outcome::{PlanError, PlanStats};
use crate::clock::Clock;
use crate::control::{ControlError, Controller, Objective, Observation};

/// Model-predictive control with a [`Planner`].
/// Something that looks at each plan (the viewer): called on the control thread after
/// every successful plan, so it must neither block nor allocate.
pub trait PlanObserver: Send {
    fn observe(&mut self, tick: u64, planner: &Planner);
}

/// Makes a fresh [`PlanObserver`] for each controller built (a run builds one; the
/// retrainer one per published model). Cheap to clone (an `Arc`), shareable across
/// threads.
#[derive(Clone)]
pub struct PlanObserverFactory(std::sync::Arc<dyn Fn() -> Box<dyn PlanObserver> + Send + Sync>);

impl PlanObserverFactory {
    pub fn new(make: impl Fn() -> Box<dyn PlanObserver> + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(make))
    }

    /// A new observer (allocates: call when building a controller, not on a tick).
    pub fn make(&self) -> Box<dyn PlanObserver> {
        (self.0)()
    }
}

impl std::fmt::Debug for PlanObserverFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanObserverFactory")
    }
}

pub struct MpcController {
    /// Shown each plan, if any.
    observer: Option<Box<dyn PlanObserver>>,
    planner: Planner,
    dynamics: Box<dyn Dynamics>,
    cost: Box<dyn Cost>,
    clock: Clock,
    /// `S`, the state planned from (latency-compensated or copied).
    plan_state: Vec<f32>,
    /// `A`, the command written last tick (still applied while we plan).
    last_action: Vec<f32>,
    has_last_action: bool,
    last_stats: Option<PlanStats>,
    last_error: Option<PlanError>,
}

impl MpcController {
    /// Fails with [`PlanError::ModelMismatch`] if the model does not fit the planner.
    /// Prepares the model for every batch the planner will ask of it
    /// ([`Planner::batch_rows`], [`Dynamics::prepare`]): allocates here, so that no tick
    /// does; a model that cannot prepare is a [`PlanError::Dynamics`].
    pub fn new(
        planner: Planner,
        mut dynamics: Box<dyn Dynamics>,
        cost: Box<dyn Cost>,
        clock: Clock,
    ) -> Result<Self, PlanError> {
        let fits = (
            dynamics.state_dim(),
            dynamics.action_dim(),
            dynamics.ensemble_size(),
        ) == (planner.state_dim, planner.action_dim, planner.ensemble_size);
        if !fits {
            return Err(PlanError::ModelMismatch {
                got_state: dynamics.state_dim(),
                got_action: dynamics.action_dim(),
                got_ensemble: dynamics.ensemble_size(),
                state: planner.state_dim,
                action: planner.action_dim,
                ensemble: planner.ensemble_size,
            });
        }
        prepare(&planner, &mut *dynamics)?;
        Ok(Self {
            observer: None,
            plan_state: vec![0.0; planner.state_dim],
            last_action: vec![0.0; planner.action_dim],
            has_last_action: false,
            last_stats: None,
            last_error: None,
            planner,
            dynamics,
            cost,
            clock,
        })
    }

    /// Stats of the last successful plan, for telemetry.
    pub fn last_stats(&self) -> Option<PlanStats> {
        self.last_stats
    }

    /// The last planning failure (cleared by a success).
    pub fn last_error(&self) -> Option<PlanError> {
        self.last_error
    }

    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// Swaps in a new model (e.g. after retraining), prepared here for the planner's
    /// batches (allocates: not on the control thread); returns the old one so the caller
    /// can drop it off the control thread. A model that does not fit or cannot prepare
    /// comes back as the `Err`.
    pub fn replace_dynamics(
        &mut self,
        mut dynamics: Box<dyn Dynamics>,
    ) -> Result<Box<dyn Dynamics>, Box<dyn Dynamics>> {
        let fits = (
            dynamics.state_dim(),
            dynamics.action_dim(),
            dynamics.ensemble_size(),
        ) == (
            self.planner.state_dim,
            self.planner.action_dim,
            self.planner.ensemble_size,
        );
        if fits && prepare(&self.planner, &mut *dynamics).is_ok() {
            Ok(std::mem::replace(&mut self.dynamics, dynamics))
        } else {
            Err(dynamics)
        }
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Result<(), PlanError> {
        let fraction = self.planner.config.latency_fraction;
        if fraction > 0.0 && self.has_last_action {
            self.planner.predicted_state_at_latency(
                obs.state,
                &self.last_action,
                fraction,
                &mut *self.dynamics,
                &mut self.plan_state,
            )?;
        } else if obs.state.len() == self.plan_state.len() {
            self.plan_state.copy_from_slice(obs.state);
        } else {
            return Err(PlanError::StateDim {
                got: obs.state.len(),
                expected: self.plan_state.len(),
            });
        }
        let budget = self.planner.config.budget_us;
        let deadline = budget.map(|b| (&self.clock, obs.now_us.saturating_add(b)));
        let stats =
            self.planner
                .plan(&self.plan_state, &mut *self.dynamics, &*self.cost, deadline)?;
        self.last_stats = Some(stats);
        if let Some(observer) = self.observer.as_mut() {
            observer.observe(obs.tick, &self.planner);
        }
        Ok(())
    }

    /// Shows every plan to `observer` from now on; turns the planner's rollout trace on
    /// (allocates here, once: call before handing the controller to the loop).
    pub fn set_plan_observer(&mut self, observer: Box<dyn PlanObserver>) {
        self.planner.enable_trace();
        self.observer = Some(observer);
    }
}

impl Controller for MpcController {
    /// Real-time contract: bounded by the planner's budget (plus one iteration's
    /// estimation error), allocation-free after the first call.
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        if action.len() != self.last_action.len() {
            return Err(ControlError::NotReady);
        }
        match self.plan(obs) {
            Ok(()) => self.last_error = None,
            Err(error) => {
                self.last_error = Some(error);
                return Err(to_control_error(error));
            }
        }
        let first = self.planner.first_action();
        if first.iter().any(|v| !v.is_finite()) {
            return Err(ControlError::NonFinite);
        }
        action.copy_from_slice(first);
        self.last_action.copy_from_slice(first);
        self.has_last_action = true;
        Ok(())
    }

    fn reset(&mut self) {
        self.planner.reset();
        self.has_last_action = false;
    }

    fn name(&self) -> &'static str {
        "mpc"
    }

    /// The objective is a `Box<dyn Cost>` (made with [`super::objective`]): the same
    /// planner, buffers and model plan for it from the next tick on.
    fn objective_score(&self, state: &[f32], tick: u64) -> Option<f32> {
        self.cost.score(state, tick)
    }

    fn replace_objective(&mut self, objective: Objective) -> Result<Objective, Objective> {
        let mut cost = objective.downcast::<Box<dyn Cost>>()?;
        std::mem::swap(&mut self.cost, &mut *cost);
        Ok(cost)
    }
}

/// `cost` as an objective for [`MpcController`] (see `Controller::replace_objective`),
/// prepared for the row counts its planner passes (`Planner::batch_rows`): allocates, so
/// call it off the control thread.
pub fn objective(mut cost: Box<dyn Cost>, rows: &[usize]) -> Objective {
    cost.prepare(rows);
    Box::new(cost)
}

/// Prepares `dynamics` for every row count `planner` will pass it.
fn prepare(planner: &Planner, dynamics: &mut dyn Dynamics) -> Result<(), PlanError> {
    for rows in planner.batch_rows() {
        dynamics.prepare(rows)?;
    }
    Ok(())
}

fn to_control_error(error: PlanError) -> ControlError {
    match error {
        PlanError::NonFiniteState
        | PlanError::NoFiniteCandidate
        | PlanError::Dynamics(DynamicsError::NonFinite) => ControlError::NonFinite,
        _ => ControlError::NotReady,
    }
}
