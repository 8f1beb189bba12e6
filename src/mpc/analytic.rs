//! An exact model behind the [`Dynamics`] seam: wraps a pure one-period transition
//! `fn(state, action, next)` (f64, SI) as a deterministic one-member "ensemble".
//!
//! Never allocates after [`AnalyticDynamics::new`]; never panics on bad values (a
//! non-finite next state is written as NaN and reported as
//! [`DynamicsError::NonFinite`]).

use std::sync::Arc;

use ndarray::{ArrayView3, ArrayViewMut3};

use super::dynamics::{Dynamics, DynamicsError};

/// A pure transition: `next = f(state, action)` over one control period.
pub type Transition = fn(&[f64], &[f64], &mut [f64]);

/// Log-variance written by a deterministic model (σ ≈ 1e-13: meaningless, never used).
pub const DETERMINISTIC_LOGVAR: f32 = -60.0;

/// `E = 1`, deterministic dynamics from a pure transition (a [`Transition`], or a
/// closure over a plant's parameters).
#[derive(Clone)]
pub struct AnalyticDynamics {
    transition: Arc<crate::plant::TransitionFn>,
    state_dim: usize,
    action_dim: usize,
    state: Vec<f64>,
    action: Vec<f64>,
    next: Vec<f64>,
}

impl AnalyticDynamics {
    pub fn new(
        transition: impl Fn(&[f64], &[f64], &mut [f64]) + Send + Sync + 'static,
        state_dim: usize,
        action_dim: usize,
    ) -> Self {
        Self {
            transition: Arc::new(transition),
            state_dim,
            action_dim,
            state: vec![0.0; state_dim],
            action: vec![0.0; action_dim],
            next: vec![0.0; state_dim],
        }
    }
}

impl std::fmt::Debug for AnalyticDynamics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticDynamics")
            .field("state_dim", &self.state_dim)
            .field("action_dim", &self.action_dim)
            .finish_non_exhaustive()
    }
}

impl Dynamics for AnalyticDynamics {
    fn state_dim(&self) -> usize {
        self.state_dim
    }

    fn action_dim(&self) -> usize {
        self.action_dim
    }

    fn ensemble_size(&self) -> usize {
        1
    }

    fn is_probabilistic(&self) -> bool {
        false
    }

    /// Shapes: `states` `1 × N × S`, `actions` `1 × N × A`, `mean`, `logvar` `1 × N × S`.
    fn predict(
        &mut self,
        states: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
        mut mean: ArrayViewMut3<'_, f32>,
        mut logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError> {
        let rows = states.shape()[1];
        let expected_s = [1, rows, self.state_dim];
        let expected_a = [1, rows, self.action_dim];
        for (got, expected) in [
            (states.shape(), expected_s),
            (actions.shape(), expected_a),
            (mean.shape(), expected_s),
            (logvar.shape(), expected_s),
        ] {
            if got != expected {
                let got = [got[0], got[1], got[2]];
                return Err(DynamicsError::Shape { got, expected });
            }
        }
        logvar.fill(DETERMINISTIC_LOGVAR);
        let mut all_finite = true;
        for n in 0..rows {
            for (dst, src) in self
                .state
                .iter_mut()
                .zip(states.slice(ndarray::s![0, n, ..]))
            {
                *dst = f64::from(*src);
            }
            for (dst, src) in self
                .action
                .iter_mut()
                .zip(actions.slice(ndarray::s![0, n, ..]))
            {
                *dst = f64::from(*src);
            }
            (self.transition)(&self.state, &self.action, &mut self.next);
            for k in 0..self.state_dim {
                let delta = (self.next[k] - self.state[k]) as f32;
                all_finite &= delta.is_finite();
                mean[[0, n, k]] = if delta.is_finite() { delta } else { f32::NAN };
            }
        }
        if all_finite {
            Ok(())
        } else {
            Err(DynamicsError::NonFinite)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn integrator(state: &[f64], action: &[f64], next: &mut [f64]) {
        next[0] = state[0] + 0.1 * state[1];
        next[1] = state[1] + 0.1 * action[0];
    }

    #[test]
    fn writes_the_change_of_state_and_rejects_bad_shapes() {
        let mut model = AnalyticDynamics::new(integrator, 2, 1);
        let states = Array3::from_shape_vec((1, 2, 2), vec![0.0, 1.0, 2.0, -1.0]).unwrap();
        let actions = Array3::from_shape_vec((1, 2, 1), vec![1.0, 0.0]).unwrap();
        let mut mean = Array3::zeros((1, 2, 2));
        let mut logvar = Array3::zeros((1, 2, 2));
        model
            .predict(
                states.view(),
                actions.view(),
                mean.view_mut(),
                logvar.view_mut(),
            )
            .unwrap();
        let expected = [0.1, 0.1, -0.1, 0.0];
        for (got, want) in mean.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6);
        }
        assert!(logvar.iter().all(|&v| v == DETERMINISTIC_LOGVAR));
        let wrong = Array3::zeros((1, 2, 3));
        let err = model.predict(
            wrong.view(),
            actions.view(),
            mean.view_mut(),
            logvar.view_mut(),
        );
        assert!(matches!(err, Err(DynamicsError::Shape { .. })));
    }
}
