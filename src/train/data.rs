//! [`Transitions`]: the training data `(s, a, s')` as row-major arrays, its validation,
//! its SHA-256 (recorded in the exported model), and the input statistics the network
//! standardises with.
//!
//! Never panics on bad data: shapes and non-finite values are [`TrainError`]s.

use ndarray::{Array1, Array2, ArrayView2};
use sha2::{Digest, Sha256};

use super::TrainError;

/// Transitions one control period apart: `states` `N × S`, `actions` `N × A`,
/// `next_states` `N × S`, all in SI units in the calibration's channel order.
#[derive(Clone, Debug, PartialEq)]
pub struct Transitions {
    pub states: Array2<f32>,
    pub actions: Array2<f32>,
    pub next_states: Array2<f32>,
}

impl Transitions {
    /// Checks shapes and finiteness at construction.
    pub fn new(
        states: Array2<f32>,
        actions: Array2<f32>,
        next_states: Array2<f32>,
    ) -> Result<Self, TrainError> {
        let data = Self {
            states,
            actions,
            next_states,
        };
        data.validate(data.state_dim(), data.action_dim())?;
        Ok(data)
    }

    pub fn len(&self) -> usize {
        self.states.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn state_dim(&self) -> usize {
        self.states.ncols()
    }

    pub fn action_dim(&self) -> usize {
        self.actions.ncols()
    }

    /// Rows agree, column counts are `state_dim`/`action_dim`, every value is finite.
    pub fn validate(&self, state_dim: usize, action_dim: usize) -> Result<(), TrainError> {
        let rows = self.len();
        for (what, array, cols) in [
            ("states", &self.states, state_dim),
            ("actions", &self.actions, action_dim),
            ("next_states", &self.next_states, state_dim),
        ] {
            if array.ncols() != cols {
                return Err(TrainError::Columns {
                    what,
                    found: array.ncols(),
                    expected: cols,
                });
            }
            if array.nrows() != rows {
                return Err(TrainError::Rows {
                    what,
                    found: array.nrows(),
                    expected: rows,
                });
            }
            if let Some(row) = array
                .rows()
                .into_iter()
                .position(|r| r.iter().any(|v| !v.is_finite()))
            {
                return Err(TrainError::NonFinite { what, row });
            }
        }
        Ok(())
    }

    /// Hex SHA-256 over the dims (`N`, `S`, `A` as little-endian u64) and the values of
    /// `states`, `actions`, `next_states` (row-major little-endian f32).
    pub fn sha256(&self) -> String {
        let mut hasher = Sha256::new();
        for dim in [self.len(), self.state_dim(), self.action_dim()] {
            hasher.update((dim as u64).to_le_bytes());
        }
        for array in [&self.states, &self.actions, &self.next_states] {
            for v in array.iter() {
                hasher.update(v.to_le_bytes());
            }
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Network inputs `[s, a]`, `N × (S + A)`.
    /// The network's inputs, `N × D` (see [`features`]).
    pub(crate) fn inputs(&self, angles: &[usize]) -> Array2<f32> {
        features(self.states.view(), self.actions.view(), angles)
    }

    /// Targets `s' − s`, `N × S`.
    pub(crate) fn targets(&self) -> Array2<f32> {
        &self.next_states - &self.states
    }
}

/// Per-column mean and standard deviation of `inputs` (`N × D`) over `rows`, computed in
/// f64. A column with a standard deviation below 1e-6 gets 1 (PETS does the same for
/// constant inputs), so standardising never divides by zero.
pub(crate) fn input_statistics(
    inputs: ArrayView2<'_, f32>,
    rows: &[usize],
) -> (Array1<f32>, Array1<f32>) {
    let d = inputs.ncols();
    let count = rows.len().max(1) as f64;
    let mut mean = vec![0.0f64; d];
    for &r in rows {
        for (m, v) in mean.iter_mut().zip(inputs.row(r)) {
            *m += f64::from(*v) / count;
        }
    }
    let mut var = vec![0.0f64; d];
    for &r in rows {
        for ((s, m), v) in var.iter_mut().zip(&mean).zip(inputs.row(r)) {
            *s += (f64::from(*v) - m).powi(2) / count;
        }
    }
    let std = var
        .iter()
        .map(|v| {
            let s = v.sqrt();
            if s < 1e-6 { 1.0 } else { s as f32 }
        })
        .collect();
    (mean.iter().map(|m| *m as f32).collect(), std)
}

/// The network's input features of `states` (`N × S`) and `actions` (`N × A`):
/// `[sin s_i for i in angles] ++ [cos s_i for i in angles] ++ [s_j for j not in angles]
/// ++ actions`, so `D = S + |angles| + A`. The exported graph computes the same.
pub(crate) fn features(
    states: ArrayView2<'_, f32>,
    actions: ArrayView2<'_, f32>,
    angles: &[usize],
) -> Array2<f32> {
    let (n, s) = states.dim();
    let rest: Vec<usize> = (0..s).filter(|j| !angles.contains(j)).collect();
    let d = 2 * angles.len() + rest.len() + actions.ncols();
    let mut out = Array2::zeros((n, d));
    for (mut row, (state, action)) in out
        .rows_mut()
        .into_iter()
        .zip(states.rows().into_iter().zip(actions.rows()))
    {
        let mut k = 0;
        for &i in angles {
            row[k] = state[i].sin();
            k += 1;
        }
        for &i in angles {
            row[k] = state[i].cos();
            k += 1;
        }
        for &j in &rest {
            row[k] = state[j];
            k += 1;
        }
        for &u in action {
            row[k] = u;
            k += 1;
        }
    }
    out
}

/// The input width for `state_dim`, `action_dim` and `angles`.
pub(crate) fn feature_dim(state_dim: usize, action_dim: usize, angles: &[usize]) -> usize {
    state_dim + angles.len() + action_dim
}
