//! Latency compensation for a controller that assumes its command acts on the state it
//! was computed from.
//!
//! On a real-time robot the firmware applies a command from its next tick on: the action
//! computed from `s_t` acts on `s_{t+1}`, which is reached under the command still being
//! applied. [`LatencyCompensated`] hands its controller the state predicted one control
//! period ahead with a model's pure transition, under the previous command — the same
//! correction the planner makes with its learned model (`latency_fraction`). In lockstep
//! there is no such latency and it is not used.

use handful_protocol::{MAX_ACTION_DIM, MAX_STATE_DIM};

use super::{ControlError, Controller, Observation};

/// Wraps a controller with a one-period state predictor. Allocation-free.
pub struct LatencyCompensated {
    inner: Box<dyn Controller>,
    transition: Box<crate::plant::TransitionFn>,
    /// The command sent last tick (still being applied), or `None` after a reset.
    previous: Option<[f64; MAX_ACTION_DIM]>,
}

impl LatencyCompensated {
    /// `transition` is a pure one-period model (a plant's `transition`, or a closure over
    /// its [`PlantParams`](crate::plant::PlantParams)).
    pub fn new(
        inner: Box<dyn Controller>,
        transition: impl Fn(&[f64], &[f64], &mut [f64]) + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            transition: Box::new(transition),
            previous: None,
        }
    }
}

impl Controller for LatencyCompensated {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        let (s, a) = (
            obs.state.len().min(MAX_STATE_DIM),
            action.len().min(MAX_ACTION_DIM),
        );
        let mut predicted = [0.0f32; MAX_STATE_DIM];
        match self.previous {
            Some(previous) => {
                let mut now = [0.0f64; MAX_STATE_DIM];
                let mut next = [0.0f64; MAX_STATE_DIM];
                for (n, v) in now.iter_mut().zip(obs.state) {
                    *n = f64::from(*v);
                }
                (self.transition)(&now[..s], &previous[..a], &mut next[..s]);
                for (p, v) in predicted.iter_mut().zip(&next[..s]) {
                    *p = *v as f32;
                }
                if !predicted[..s].iter().all(|v| v.is_finite()) {
                    predicted[..s].copy_from_slice(&obs.state[..s]);
                }
            }
            None => predicted[..s].copy_from_slice(&obs.state[..s]),
        }
        let ahead = Observation {
            state: &predicted[..s],
            ..*obs
        };
        self.inner.act(&ahead, action)?;
        let mut sent = [0.0f64; MAX_ACTION_DIM];
        for (p, v) in sent.iter_mut().zip(action.iter()) {
            *p = f64::from(*v);
        }
        self.previous = Some(sent);
        Ok(())
    }

    fn reset(&mut self) {
        self.previous = None;
        self.inner.reset();
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn replace_objective(
        &mut self,
        objective: super::Objective,
    ) -> Result<super::Objective, super::Objective> {
        self.inner.replace_objective(objective)
    }
}
