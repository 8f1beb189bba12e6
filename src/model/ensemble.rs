//! [`Ensemble`]: one ONNX Runtime session over a contract-checked ensemble file,
//! implementing [`Dynamics`].
//!
//! Real-time contract of [`Ensemble::predict`]: every row count `N` the caller will use is
//! prepared first ([`Dynamics::prepare`]: the input and output tensors `E × N × S|A`,
//! owned here, outputs preallocated through `OutputSelector::preallocate`, and the
//! `RunOptions` carrying them, one set per `N`, kept for the ensemble's life). A call
//! with a prepared `N` copies the caller's rows in, runs, and copies the results out
//! without allocating on the Rust side: `Session::run_with_options` keeps its names and
//! value pointers in stack `SmallVec`s and hands back the preallocated outputs (Arc
//! clones). ONNX Runtime's own C++ buffers come from its CPU arena (reused after the
//! first run of a shape), not from Rust's allocator. An unprepared `N` still works
//! (offline scoring): it goes to one transient set, rebuilt (allocating) whenever that
//! `N` changes. Never panics: bad shapes, runtime failures and non-finite outputs are
//! small `Copy` errors.

use std::path::Path;

use ndarray::{ArrayView3, ArrayViewMut3};
use ort::memory::Allocator;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::Tensor;

use super::contract::{self, LOGVAR, Layout, MEAN};
use super::{ModelError, ModelExpectation, ModelInfo, ModelOptions, file, probe, runtime};
use crate::mpc::{Dynamics, DynamicsError};

/// A loaded probabilistic ensemble: `E` members predicting mean and log-variance of the
/// change of state.
pub struct Ensemble {
    session: Session,
    info: ModelInfo,
    layout: Layout,
    options: ModelOptions,
    /// Tensors for every row count [`Dynamics::prepare`] was called with.
    prepared: Vec<Batch>,
    /// Tensors for the last unprepared row count seen; rebuilt when that `N` changes.
    transient: Option<Batch>,
}

/// At most this many row counts are kept prepared (a planner uses two or three).
pub const MAX_PREPARED_ROW_COUNTS: usize = 16;

/// Owned ORT tensors for one `N`: inputs filled by copy, outputs preallocated.
struct Batch {
    rows: usize,
    state: Tensor<f32>,
    action: Tensor<f32>,
    run_options: RunOptions<HasSelectedOutputs>,
}

impl Ensemble {
    /// Reads and checks a model file with default [`ModelOptions`]: the file's own checks
    /// (versions, external data, tensors, initializers, metadata against `expect`), ONNX
    /// Runtime's session, then one run on the probe batch (models/README.md, "The probe").
    /// Allocates and runs the model: call it off the control thread.
    pub fn load(path: &Path, expect: &ModelExpectation) -> Result<Self, ModelError> {
        Self::load_with(path, expect, ModelOptions::default())
    }

    pub fn load_with(
        path: &Path,
        expect: &ModelExpectation,
        options: ModelOptions,
    ) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes_with(&bytes, expect, options)
    }

    /// Builds a session from the bytes of an ONNX file with default [`ModelOptions`].
    pub fn from_bytes(bytes: &[u8], expect: &ModelExpectation) -> Result<Self, ModelError> {
        Self::from_bytes_with(bytes, expect, ModelOptions::default())
    }

    pub fn from_bytes_with(
        bytes: &[u8],
        expect: &ModelExpectation,
        options: ModelOptions,
    ) -> Result<Self, ModelError> {
        // The file's own checks first: a model ONNX Runtime would refuse with a raw message
        // (an unsupported version, external data, float64) is refused here, saying why.
        let checked = file::check(bytes, expect)?;
        let environment = runtime::environment()?;
        // Threads are set explicitly rather than left to ONNX Runtime's default (one per
        // core): see `ModelOptions::default` for why one thread and no spinning.
        let mut session = Session::builder(environment)
            .map_err(refused)?
            .with_intra_threads(options.intra_threads.max(1))
            .map_err(refused)?
            .with_inter_threads(1)
            .map_err(refused)?
            .with_intra_op_spinning(options.spinning)
            .map_err(refused)?
            .with_inter_op_spinning(false)
            .map_err(refused)?
            .commit_from_memory(bytes)
            .map_err(refused)?;
        // ONNX Runtime's view of the same tensors (its input order is the one to run with).
        let (layout, _) = contract::check(&session, checked.info.sha256.clone(), expect)?;
        let info = checked.info;
        probe::run(&mut session, &layout, &info, &checked.bounds)?;
        Ok(Self {
            session,
            info,
            layout,
            options,
            prepared: Vec::new(),
            transient: None,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn options(&self) -> ModelOptions {
        self.options
    }

    /// The row counts prepared so far, in the order they were prepared.
    pub fn prepared_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.prepared.iter().map(|b| b.rows)
    }
}

/// The batch for `rows`: a prepared one if there is one (no allocation), else the
/// transient one, rebuilt (allocating) when its row count differs.
fn batch_for<'b>(
    prepared: &'b mut [Batch],
    transient: &'b mut Option<Batch>,
    layout: &Layout,
    rows: usize,
) -> Result<&'b mut Batch, DynamicsError> {
    if let Some(batch) = prepared.iter_mut().find(|b| b.rows == rows) {
        return Ok(batch);
    }
    if transient.as_ref().map(|b| b.rows) != Some(rows) {
        *transient = None;
        *transient = Some(Batch::new(layout, rows).map_err(|_| DynamicsError::Runtime)?);
    }
    transient.as_mut().ok_or(DynamicsError::Runtime)
}

impl Batch {
    fn new(layout: &Layout, rows: usize) -> ort::Result<Self> {
        let allocator = Allocator::default();
        let (e, s, a) = (layout.ensemble_size, layout.state_dim, layout.action_dim);
        let outputs = OutputSelector::no_default()
            .with(MEAN)
            .with(LOGVAR)
            .preallocate(MEAN, Tensor::<f32>::new(&allocator, [e, rows, s])?)
            .preallocate(LOGVAR, Tensor::<f32>::new(&allocator, [e, rows, s])?);
        Ok(Self {
            rows,
            state: Tensor::<f32>::new(&allocator, [e, rows, s])?,
            action: Tensor::<f32>::new(&allocator, [e, rows, a])?,
            run_options: RunOptions::new()?.with_outputs(outputs),
        })
    }
}

impl Dynamics for Ensemble {
    fn state_dim(&self) -> usize {
        self.layout.state_dim
    }

    fn action_dim(&self) -> usize {
        self.layout.action_dim
    }

    fn ensemble_size(&self) -> usize {
        self.layout.ensemble_size
    }

    fn is_probabilistic(&self) -> bool {
        true
    }

    /// Builds and keeps the tensors for `rows` (allocates; idempotent). At most
    /// 16 row counts (`MAX_PREPARED_ROW_COUNTS`); more is [`DynamicsError::Runtime`].
    fn prepare(&mut self, rows: usize) -> Result<(), DynamicsError> {
        if rows == 0 || self.prepared.iter().any(|b| b.rows == rows) {
            return Ok(());
        }
        if self.prepared.len() >= MAX_PREPARED_ROW_COUNTS {
            return Err(DynamicsError::Runtime);
        }
        let batch = match self.transient.take() {
            Some(batch) if batch.rows == rows => batch,
            other => {
                self.transient = other;
                Batch::new(&self.layout, rows).map_err(|_| DynamicsError::Runtime)?
            }
        };
        self.prepared.push(batch);
        Ok(())
    }

    /// Shapes: `states` `E × N × S`, `actions` `E × N × A`, `mean`/`logvar` `E × N × S`,
    /// any `N` (including 0), any memory layout (copied into contiguous tensors).
    fn predict(
        &mut self,
        states: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
        mut mean: ArrayViewMut3<'_, f32>,
        mut logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError> {
        let Layout {
            ensemble_size: e,
            state_dim: s,
            action_dim: a,
            state_input,
        } = self.layout;
        let rows = states.dim().1;
        check_shape(states.dim(), [e, rows, s])?;
        check_shape(actions.dim(), [e, rows, a])?;
        check_shape(mean.dim(), [e, rows, s])?;
        check_shape(logvar.dim(), [e, rows, s])?;
        if rows == 0 {
            return Ok(());
        }

        let batch = batch_for(&mut self.prepared, &mut self.transient, &self.layout, rows)?;
        copy_in(states, batch.state.extract_tensor_mut().1);
        copy_in(actions, batch.action.extract_tensor_mut().1);
        let inputs = if state_input == 0 {
            ort::inputs![&batch.state, &batch.action]
        } else {
            ort::inputs![&batch.action, &batch.state]
        };
        let outputs = self
            .session
            .run_with_options(inputs, &batch.run_options)
            .map_err(|_| DynamicsError::Runtime)?;
        let extract = |name| {
            outputs
                .get(name)
                .and_then(|v| v.try_extract_tensor::<f32>().ok())
                .map(|(_, data)| data)
                .ok_or(DynamicsError::Runtime)
        };
        let mean_finite = copy_out(extract(MEAN)?, &mut mean)?;
        let logvar_finite = copy_out(extract(LOGVAR)?, &mut logvar)?;
        if mean_finite && logvar_finite {
            Ok(())
        } else {
            Err(DynamicsError::NonFinite)
        }
    }
}

fn refused(e: impl std::fmt::Display) -> ModelError {
    ModelError::Session {
        message: e.to_string(),
    }
}

fn check_shape(got: (usize, usize, usize), expected: [usize; 3]) -> Result<(), DynamicsError> {
    let got = [got.0, got.1, got.2];
    if got == expected {
        Ok(())
    } else {
        Err(DynamicsError::Shape { got, expected })
    }
}

/// Row-major copy of a view of any layout into a contiguous buffer of the same length.
fn copy_in(src: ArrayView3<'_, f32>, dst: &mut [f32]) {
    match src.as_slice() {
        Some(slice) => dst.copy_from_slice(slice),
        None => dst.iter_mut().zip(src.iter()).for_each(|(d, s)| *d = *s),
    }
}

/// Copies a contiguous output into the caller's view; `Ok(false)` if any value is NaN/inf.
fn copy_out(src: &[f32], dst: &mut ArrayViewMut3<'_, f32>) -> Result<bool, DynamicsError> {
    if src.len() != dst.len() {
        return Err(DynamicsError::Runtime);
    }
    let mut finite = true;
    match dst.as_slice_mut() {
        Some(slice) => {
            slice.copy_from_slice(src);
            finite = slice.iter().all(|v| v.is_finite());
        }
        None => dst.iter_mut().zip(src).for_each(|(d, s)| {
            finite &= s.is_finite();
            *d = *s;
        }),
    }
    Ok(finite)
}
