//! Adam over every tensor of a [`Params`] (Kingma & Ba, with bias correction).
//!
//! Owns the first and second moments. A step allocates only a few slice handles.

use super::network::Params;

/// Adam state for one ensemble.
#[derive(Clone, Debug)]
pub(crate) struct Adam {
    learning_rate: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    steps: i32,
    first: Params,
    second: Params,
}

impl Adam {
    pub(crate) fn new(params: &Params, learning_rate: f32) -> Self {
        Self {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            first: params.zeros_like(),
            second: params.zeros_like(),
        }
    }

    pub(crate) fn set_learning_rate(&mut self, learning_rate: f32) {
        self.learning_rate = learning_rate;
    }

    /// Rescales the first layer's moments when its inputs are re-standardised: the
    /// weights of input `j` were multiplied by `scale[j]`, so their gradients are divided
    /// by it (first moment `/ s`, second `/ s²`).
    pub(crate) fn rescale_first_layer(&mut self, scale: &ndarray::Array1<f32>) {
        let rescale = |w: &mut ndarray::Array3<f32>, power: i32| {
            for mut member in w.outer_iter_mut() {
                for (mut row, s) in member.outer_iter_mut().zip(scale.iter()) {
                    let s = if *s > 0.0 && s.is_finite() { *s } else { 1.0 };
                    row /= s.powi(power);
                }
            }
        };
        if let Some(w) = self.first.weights.first_mut() {
            rescale(w, 1);
        }
        if let Some(w) = self.second.weights.first_mut() {
            rescale(w, 2);
        }
    }

    /// One update of `params` along `grads` (same shapes as at `new`).
    pub(crate) fn step(&mut self, params: &mut Params, grads: &Params) {
        self.steps = self.steps.saturating_add(1);
        let (b1, b2) = (self.beta1, self.beta2);
        let step_size =
            self.learning_rate * (1.0 - b2.powi(self.steps)).sqrt() / (1.0 - b1.powi(self.steps));
        let eps = self.epsilon;
        let tensors = params
            .tensors_mut()
            .into_iter()
            .zip(grads.tensors())
            .zip(self.first.tensors_mut())
            .zip(self.second.tensors_mut());
        for (((p, g), m), v) in tensors {
            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= step_size * *m / (v.sqrt() + eps);
            }
        }
    }
}
