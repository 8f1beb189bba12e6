//! Latency compensation: where the plant will be when the next command takes effect.
//!
//! Uses only the dynamics' mean (no sampling); allocation-free (buffers sized in
//! [`Planner::new`]). The caller decides whether to plan from the predicted state.

use ndarray::{ArrayView3, ArrayViewMut3};

use super::Planner;
use crate::mpc::dynamics::{Dynamics, DynamicsError};
use crate::mpc::outcome::PlanError;

impl Planner {
    /// Writes into `out` (`S`) the state `latency_fraction` of a control period after
    /// `state`, while `command` (`A`) is still applied: `s + f·mean_e μ_e(s, u)`, a linear
    /// interpolation of the ensemble-mean one-period change (`f` is clamped to `[0, 1]`).
    pub fn predicted_state_at_latency(
        &mut self,
        state: &[f32],
        command: &[f32],
        latency_fraction: f32,
        dynamics: &mut dyn Dynamics,
        out: &mut [f32],
    ) -> Result<(), PlanError> {
        self.check_inputs(state, dynamics)?;
        let (s_dim, a_dim, e_count) = (self.state_dim, self.action_dim, self.ensemble_size);
        if command.len() != a_dim {
            return Err(PlanError::ActionDim {
                got: command.len(),
                expected: a_dim,
            });
        }
        if out.len() != s_dim {
            return Err(PlanError::StateDim {
                got: out.len(),
                expected: s_dim,
            });
        }
        for row in self.latency_states.chunks_exact_mut(s_dim) {
            row.copy_from_slice(state);
        }
        for row in self.latency_actions.chunks_exact_mut(a_dim) {
            row.copy_from_slice(command);
        }
        let shape = (e_count, 1, s_dim);
        let shape_error = DynamicsError::Shape {
            got: [e_count, 1, s_dim],
            expected: [e_count, 1, s_dim],
        };
        let states = ArrayView3::from_shape(shape, &self.latency_states[..]);
        let actions = ArrayView3::from_shape((e_count, 1, a_dim), &self.latency_actions[..]);
        let mean = ArrayViewMut3::from_shape(shape, &mut self.latency_mean[..]);
        let logvar = ArrayViewMut3::from_shape(shape, &mut self.latency_logvar[..]);
        let (Ok(states), Ok(actions), Ok(mean), Ok(logvar)) = (states, actions, mean, logvar)
        else {
            return Err(shape_error.into());
        };
        dynamics.predict(states, actions, mean, logvar)?;
        let fraction = if latency_fraction.is_finite() {
            latency_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let scale = fraction / e_count as f32;
        for (k, value) in out.iter_mut().enumerate() {
            let delta: f32 = (0..e_count).map(|e| self.latency_mean[e * s_dim + k]).sum();
            *value = state[k] + scale * delta;
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(DynamicsError::NonFinite.into());
        }
        Ok(())
    }
}
