//! PETS-style model-predictive control: the Cross-Entropy Method (and random shooting)
//! over a batched, probabilistic dynamics model with trajectory sampling.
//!
//! Architecture invariant: the planner sees only the [`Dynamics`] trait and batched
//! costs; it knows nothing of ONNX, files or threads.

pub mod dynamics;

pub use dynamics::{Dynamics, DynamicsError};
