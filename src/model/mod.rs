//! The learned dynamics model: an ONNX ensemble run by ONNX Runtime behind the
//! [`crate::mpc::Dynamics`] trait.
//!
//! Architecture invariant: this is the only module that imports `ort`. The planner sees
//! the `Dynamics` trait; trainers and tools see the file contract in models/README.md
//! (inputs `state`/`action` `E × N × S|A`, outputs `mean`/`logvar` `E × N × S`, metadata
//! `handful.contract = "1"` with names, dims and control period). A model that does not
//! match the calibration it is loaded for is refused at load with a [`ModelError`] that
//! says what differs; it never reaches the control thread.

mod contract;
mod ensemble;
mod file;
mod metadata;
mod probe;
mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use ensemble::Ensemble;
pub use file::{MAX_IR_VERSION, MAX_OPSET, MIN_IR_VERSION, MIN_OPSET, REQUIRED_INITIALIZERS};
pub use metadata::MAX_CREATED_UNIX;
pub use probe::PROBE_ROWS;
pub use runtime::{
    ACCEPTED_VERSION_PREFIX, DYLIB_ENV_VAR, EXPECTED_ORT_VERSION, FIX_IT as RUNTIME_FIX,
    RuntimeError, RuntimeInfo, ensure_runtime, locate_runtime, runtime_version,
};

use crate::calib::Calibration;

/// What the caller's robot needs from a model: checked against the file's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelExpectation {
    pub state_names: Vec<String>,
    pub action_names: Vec<String>,
    pub control_period_us: u64,
}

/// The contract's checks on the bytes of an ONNX file, read as protobuf without ONNX
/// Runtime: versions, external data, tensors, initializers, metadata (the
/// `model_checks` fuzz target; [`Ensemble`] runs these first, then the same tensor checks
/// on its session, then the probe).
pub(crate) fn check_onnx_bytes(
    bytes: &[u8],
    expect: &ModelExpectation,
) -> Result<ModelInfo, ModelError> {
    file::check(bytes, expect).map(|checked| checked.info)
}

/// What a model file is, checked against `expect` without ONNX Runtime (no session, no
/// probe): every check of [`Ensemble::load`] that reads the file alone. For reports
/// (`summary.json`) of a model that is loaded elsewhere.
pub fn inspect(path: &Path, expect: &ModelExpectation) -> Result<ModelInfo, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    check_onnx_bytes(&bytes, expect)
}

impl ModelExpectation {
    /// The names and control period of a calibration, in its channel order.
    pub fn from_calibration(calibration: &Calibration) -> Self {
        Self {
            state_names: calibration.states.iter().map(|s| s.name.clone()).collect(),
            action_names: calibration.actions.iter().map(|a| a.name.clone()).collect(),
            control_period_us: calibration.control_period_us,
        }
    }
}

/// How a session uses the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelOptions {
    /// ONNX Runtime intra-op threads. 1 means the calling thread alone does the work.
    pub intra_threads: usize,
    /// Whether idle intra-op threads spin waiting for work (lower latency, burns a core).
    pub spinning: bool,
}

impl Default for ModelOptions {
    /// One thread, no spinning: the machine has 2 cores and a trainer shares them with
    /// the control thread, so the model must not take a second core or spin on it.
    fn default() -> Self {
        Self {
            intra_threads: 1,
            spinning: false,
        }
    }
}

/// What a loaded model is. The SHA-256 of the file's bytes is its identity. Written as
/// is into `summary.json` (`model`, and each learned model's `info`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// Hex SHA-256 of the ONNX file's bytes: the model id.
    pub sha256: String,
    /// The `handful.contract` metadata property (`"1"`).
    pub contract: String,
    pub ensemble_size: usize,
    pub state_dim: usize,
    pub action_dim: usize,
    pub state_names: Vec<String>,
    pub action_names: Vec<String>,
    pub control_period_us: u64,
    /// The `producer` metadata property.
    pub producer: String,
    /// `created_unix`: seconds since the Unix epoch.
    pub created_unix: u64,
    /// `training_data_sha256`, lower-case hex; `None` for `none`.
    pub training_data_sha256: Option<String>,
    /// `elites`: distinct member indices below `ensemble_size`, ascending (empty: the
    /// key is absent or empty). Reported only: the planner uses every member.
    pub elites: Vec<usize>,
    /// `angle_state_indices`: the state channels the graph feeds as sin/cos, ascending
    /// (empty: none), checked against the graph at load.
    pub angle_state_indices: Vec<usize>,
    /// The file's ONNX IR version and its opset of the default (`ai.onnx`) domain.
    pub ir_version: i64,
    pub opset: i64,
    /// Every metadata property of the file, contract keys included.
    pub metadata: BTreeMap<String, String>,
}

/// Why a model was refused at load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot read model {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ONNX Runtime refused the model: {message}")]
    Session { message: String },
    #[error("the file is not an ONNX model: {message}")]
    NotOnnx { message: String },
    #[error("the model has no {role} named `{name}` (it has {found:?})")]
    MissingTensor {
        role: &'static str,
        name: &'static str,
        found: Vec<String>,
    },
    #[error("the model has inputs {found:?}, expected exactly `state` and `action`")]
    ExtraInputs { found: Vec<String> },
    #[error(
        "the model's `{tensor}` is {found}, expected a float32 tensor: the contract is float32 \
         only (in PyTorch, `model.float()` and float32 example inputs before the export)"
    )]
    Dtype { tensor: &'static str, found: String },
    #[error(
        "the model's IR version is {found}; ONNX Runtime 1.31 reads IR versions \
         {MIN_IR_VERSION} to {MAX_IR_VERSION} (handful's trainer writes 8)"
    )]
    IrVersion { found: i64 },
    #[error(
        "the model imports {found} of the default ONNX domain (ai.onnx); ONNX Runtime 1.31 \
         supports opsets {MIN_OPSET} to {MAX_OPSET} (handful's trainer writes 17; in PyTorch \
         pass an `opset_version` between them to torch.onnx.export)"
    )]
    Opset { found: String },
    #[error(
        "the model's tensor `{tensor}` keeps its data outside the file (ONNX external data); \
         handful loads a model from its own bytes: save it with the weights inside \
         (`onnx.save(model, path, save_as_external_data=False)`, or torch.onnx.export(..., \
         external_data=False))"
    )]
    ExternalData { tensor: String },
    #[error(
        "the model has no initializer `{name}`: the contract keeps the input standardisation \
         (`input_mean`, `input_std`) and the log-variance bounds (`max_logvar`, `min_logvar`) \
         in the graph as float32 initializers of these names"
    )]
    MissingInitializer { name: &'static str },
    #[error("the model's initializer `{name}` is {found}, expected {expected}")]
    BadInitializer {
        name: &'static str,
        found: String,
        expected: String,
    },
    #[error("the model failed on the load-time probe batch of {rows} rows: {message}")]
    ProbeFailed { rows: usize, message: String },
    #[error(
        "the model predicts a non-finite `{output}` ({value}) on the load-time probe (member \
         {member}, row {row} of {rows}, state channel {channel}): refused before it reaches \
         the planner"
    )]
    ProbeNonFinite {
        output: &'static str,
        value: f32,
        member: usize,
        row: usize,
        rows: usize,
        channel: usize,
    },
    #[error(
        "the model's `logvar` is {value} for state channel {channel} on the load-time probe \
         (member {member}, row {row}), outside ({low}, {high}), the soft clamp its `min_logvar` \
         and `max_logvar` give: the graph must end with the contract's clamp \
         `lv = max − softplus(max − lv); lv = min + softplus(lv − min)`"
    )]
    LogvarOutOfBounds {
        value: f32,
        channel: usize,
        member: usize,
        row: usize,
        low: f32,
        high: f32,
    },
    #[error(
        "the model's prediction for a row depends on the other rows of the batch (row 0 \
         predicted alone and in a batch of {rows} differ by {difference}): each row must be \
         mapped on its own"
    )]
    RowsNotIndependent { rows: usize, difference: f32 },
    #[error(
        "metadata `angle_state_indices` lists state channel {channel} (`{name}`), but the \
         model's prediction changes by {difference} when that angle moves by 2π: the graph \
         does not feed it as sin/cos"
    )]
    AngleNotPeriodic {
        channel: usize,
        name: String,
        difference: f32,
    },
    #[error("the model's `{tensor}` has rank {found}, expected 3 ([E, N, ·])")]
    Rank { tensor: &'static str, found: usize },
    #[error("the model's `{tensor}` has shape {found:?}, expected {expected} (axis {axis})")]
    Dim {
        tensor: &'static str,
        axis: usize,
        expected: &'static str,
        found: Vec<i64>,
    },
    #[error("the model lacks metadata `{key}` (not a handful contract model?)")]
    MissingMetadata { key: &'static str },
    #[error("the model's metadata `{key}` is `{found}`, expected {expected}")]
    BadMetadata {
        key: &'static str,
        found: String,
        expected: String,
    },
    #[error("the model's metadata `{key}` says {metadata} but its graph has {graph}")]
    MetadataDisagrees {
        key: &'static str,
        metadata: usize,
        graph: usize,
    },
    #[error("the model's {kind} names are {model:?}, the calibration has {expected:?}")]
    Names {
        kind: &'static str,
        model: Vec<String>,
        expected: Vec<String>,
    },
    #[error(
        "the model was trained at a control period of {model_us} µs, the calibration runs at {expected_us} µs"
    )]
    Period { model_us: u64, expected_us: u64 },
}
