//! PETS-style model-predictive control: the Cross-Entropy Method (and iCEM, random
//! shooting) over a batched, probabilistic dynamics model with trajectory sampling.
//!
//! Code map: `config` (settings, validation), `sampling` (truncated normal, coloured
//! noise, uniform), `propagation` (particles through the ensemble: TS-∞, TS-1,
//! expectation), `cost` (batched per-step costs), `cem` (the anytime [`Planner`]),
//! `outcome` (stats and errors), `analytic` (an exact model behind the seam),
//! `controller` (the planner as a control-loop [`crate::control::Controller`]).
//!
//! Architecture invariant: the planner sees only the [`Dynamics`] trait and batched
//! costs; it knows nothing of ONNX, files or threads. After a warm-up call it never
//! allocates.

pub mod analytic;
pub mod cem;
pub mod config;
pub mod controller;
pub mod cost;
pub mod dynamics;
pub mod fastmath;
pub mod noise;
pub mod outcome;
pub mod propagation;
pub mod sampling;

#[cfg(test)]
mod alloc_test;

pub use analytic::{AnalyticDynamics, Transition};
pub use cem::Planner;
pub use config::{ConfigError, EnsembleShape, Optimizer, PlannerConfig, Propagation};
pub use controller::{MpcController, PlanObserver, PlanObserverFactory, objective};
pub use cost::{Cost, RewardCost, TaskCost};
pub use dynamics::{Dynamics, DynamicsError};
pub use outcome::{PlanError, PlanStats, StopReason};
pub use propagation::Rollout;
