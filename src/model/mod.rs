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
mod runtime;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use ensemble::Ensemble;
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
/// Runtime (the `model_checks` fuzz target; [`Ensemble`] runs the same checks on its
/// session).
pub(crate) fn check_onnx_bytes(
    bytes: &[u8],
    expect: &ModelExpectation,
) -> Result<ModelInfo, ModelError> {
    let signature = contract::Signature::from_onnx(bytes)?;
    let sha256 = crate::calib::hex_sha256(bytes);
    contract::check_signature(&signature, sha256, expect).map(|(_, info)| info)
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

/// What a loaded model is. The SHA-256 of the file's bytes is its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub ensemble_size: usize,
    pub state_dim: usize,
    pub action_dim: usize,
    pub state_names: Vec<String>,
    pub action_names: Vec<String>,
    pub control_period_us: u64,
    /// Hex SHA-256 of the ONNX file's bytes: the model id.
    pub sha256: String,
    /// The `producer` metadata property.
    pub producer: String,
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
    #[error("the model's `{tensor}` is {found}, expected a float32 tensor")]
    Dtype { tensor: &'static str, found: String },
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
