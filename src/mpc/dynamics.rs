//! The seam between planner and model: a batched, ensemble-aware dynamics trait.
//!
//! Layout is member-major, `[E, N, ·]`: member `e` predicts for its own `N` rows, so
//! TS-∞ (each particle bound to one member for the whole horizon) is one batched call
//! per horizon step with no gather, and an ONNX ensemble runs it as one batched MatMul
//! per layer.

use ndarray::{ArrayView3, ArrayViewMut3};

/// Why a prediction failed. Small and `Copy`: raised on the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DynamicsError {
    #[error("input batch has shape {got:?}, the model expects {expected:?}")]
    Shape {
        got: [usize; 3],
        expected: [usize; 3],
    },
    #[error("the model returned a non-finite value")]
    NonFinite,
    #[error("the model runtime failed")]
    Runtime,
}

/// A probabilistic ensemble (or a deterministic model, `E = 1`) predicting a Gaussian
/// over the change of state.
pub trait Dynamics: Send {
    fn state_dim(&self) -> usize;
    fn action_dim(&self) -> usize;
    /// Ensemble size `E` (1 for a deterministic model).
    fn ensemble_size(&self) -> usize;
    /// Whether predictions carry noise (`false`: `logvar` is meaningless and particles
    /// need not sample).
    fn is_probabilistic(&self) -> bool;

    /// Makes calls of [`Dynamics::predict`] with `rows` rows per member (`N`)
    /// allocation-free from now on, for the model's life. May allocate; called at
    /// construction or warm-up (never on a tick) for every `N` a planner will use
    /// ([`crate::mpc::Planner::batch_rows`]). Default: nothing to prepare.
    fn prepare(&mut self, rows: usize) -> Result<(), DynamicsError> {
        let _ = rows;
        Ok(())
    }

    /// For each member `e` and row `n`: the mean and log-variance of `s' − s`.
    ///
    /// Shapes: `states` `E × N × S`, `actions` `E × N × A`, `mean` and `logvar`
    /// `E × N × S`. Real-time contract: no allocation for an `N` passed to
    /// [`Dynamics::prepare`] (implementations preallocate there; an unprepared `N` may
    /// allocate); never panics on bad values, returns [`DynamicsError::NonFinite`]
    /// instead.
    ///
    /// On `NonFinite` the planner keeps going: it reads the outputs as written, so an
    /// implementation must leave the offending rows non-finite (never stale), and those
    /// candidates are then ranked worst. Any other error aborts the planning call.
    fn predict(
        &mut self,
        states: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
        mean: ArrayViewMut3<'_, f32>,
        logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError>;
}
