//! Training the probabilistic dynamics ensemble (PETS recipe) and exporting it as a
//! contract-conforming ONNX file (models/README.md).
//!
//! [`Trainer`] owns an ensemble of `E` swish MLPs predicting a Gaussian over `s' − s`
//! from standardised `(s, a)`, trains it with Adam on per-member bootstrap minibatches
//! (or rows chosen by a caller's [`BatchSource`]), stops early on holdout score, picks
//! elites, and [`Trainer::export_onnx`] writes the graph `Ensemble::load` reads.
//!
//! Architecture invariant: this module runs off the control thread (it allocates and
//! takes tens of milliseconds per step); it never imports `ort` (the model module owns
//! ONNX Runtime) and computes on one thread (ndarray without rayon or
//! matrixmultiply-threading), so it leaves the second core to the control loop.

mod data;
mod export;
mod network;
mod optim;
pub(crate) mod proto;
mod sampling;
mod trainer;

pub use data::Transitions;
pub use export::{ExportError, ExportMetadata, PRODUCER};
pub use network::{Params, Regularisation, Workspace, loss_and_gradient};
pub use sampling::{BatchSource, Bootstrap, Mixture};
pub use trainer::{EpochReport, FitProgress, HoldoutScore, TrainReport, Trainer};

use serde::{Deserialize, Serialize};

/// Which holdout score early stopping and elite selection use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldoutMetric {
    /// Mean squared error of the mean prediction (mbrl-lib's default).
    Mse,
    /// Gaussian negative log-likelihood per dimension.
    Nll,
}

/// How to build and train an ensemble. Defaults follow PETS / mbrl-lib.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    pub ensemble_size: usize,
    pub hidden_sizes: Vec<usize>,
    pub learning_rate: f32,
    /// L2 decay per layer (hidden layers then output layer), or one value for all.
    pub weight_decays: Vec<f32>,
    pub batch_size: usize,
    /// Upper bound on epochs per `fit` (an epoch is ⌈train rows / batch⌉ steps).
    pub max_epochs: usize,
    /// Stop after this many epochs in which no member improved its holdout score.
    pub patience_epochs: usize,
    /// Gradient steps a fit takes before early stopping may end it. On a few hundred
    /// rows an epoch is two or three steps, so patience alone would stop a warm-started
    /// fit after a dozen steps, long before new experience is learned.
    pub min_steps: usize,
    /// Gradient steps after which a fit ends whatever its holdout score does (0: no
    /// cap). Early stopping alone lets a fit grow with the data (on ten trials of the
    /// cart-pole, fits of 9,500 steps, 50 s here); the cap keeps a retrain's cost, and so
    /// the wait between trials, bounded.
    pub max_steps: usize,
    /// Relative improvement a member's holdout score needs to count as better.
    pub min_relative_improvement: f32,
    /// Fraction of the rows held out for early stopping and elite choice (0: none).
    pub holdout_fraction: f32,
    pub holdout_metric: HoldoutMetric,
    /// Members recorded as elites (best holdout score).
    pub elite_count: usize,
    /// Export only the elite members, so the planner propagates particles through them
    /// alone (mbrl-lib's and PETS' use of elites); otherwise all `E` stay in the graph
    /// and `elites` is metadata.
    pub export_elites_only: bool,
    pub max_logvar_init: f32,
    pub min_logvar_init: f32,
    /// PETS' penalty weight on `Σ max_logvar − Σ min_logvar`.
    pub logvar_bound_penalty: f32,
    /// State channels that are angles: the network sees `sin` and `cos` of them instead
    /// of the raw (unwrapped) angle, as PETS does for the cart-pole's pole angle. The
    /// exported graph computes the same features, so the model's inputs stay raw states.
    pub angle_state_indices: Vec<usize>,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            ensemble_size: 5,
            hidden_sizes: vec![200, 200, 200],
            learning_rate: 1e-3,
            weight_decays: vec![2.5e-5, 5e-5, 7.5e-5, 1e-4],
            batch_size: 256,
            max_epochs: 100,
            patience_epochs: 5,
            min_steps: 0,
            max_steps: 0,
            min_relative_improvement: 0.01,
            holdout_fraction: 0.1,
            holdout_metric: HoldoutMetric::Mse,
            elite_count: 5,
            export_elites_only: false,
            max_logvar_init: 0.5,
            min_logvar_init: -10.0,
            logvar_bound_penalty: 0.01,
            angle_state_indices: Vec::new(),
        }
    }
}

/// Why a trainer could not be built or a fit could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error("trainer config `{key}` is invalid: {reason}")]
    Config {
        key: &'static str,
        reason: &'static str,
    },
    #[error("`{what}` has {found} columns, the trainer expects {expected}")]
    Columns {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("`{what}` has {found} rows, `states` has {expected}")]
    Rows {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("`{what}` holds a non-finite value at row {row}")]
    NonFinite { what: &'static str, row: usize },
    #[error("{rows} transitions leave {train_rows} for training; at least 1 is needed")]
    TooFewRows { rows: usize, train_rows: usize },
    #[error("the batch source gave row {row}, outside the {rows} training rows it was given")]
    BadSample { row: usize, rows: usize },
    #[error("the training loss became non-finite at epoch {epoch}")]
    Diverged { epoch: usize },
    #[error("the fit was stopped by {signal}")]
    Cancelled { signal: &'static str },
}
