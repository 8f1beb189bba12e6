//! Dataset: every control tick of every episode, recorded as a **LeRobot dataset v3.0** that
//! lerobot, pandas, polars and rerun open as they are. This module owns the dataset directory:
//! nothing else writes there. It never blocks the control thread (the recorder calls it from its
//! own thread) and never damages a completed episode, whatever happens mid-write.
//!
//! # Files
//!
//! | file | content |
//! |------|---------|
//! | `meta/info.json` | `codebase_version` `"v3.0"`, `robot_type`, `total_episodes`, `total_frames`, `total_tasks`, `chunks_size`, `data_files_size_in_mb`, `video_files_size_in_mb`, `fps`, `splits` (`{"train": "0:N"}`), `data_path` (`data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet`), `video_path` (null), `features`, and `handful` (provenance, see [`HandfulMeta`]) |
//! | `meta/stats.json` | per feature `min`, `max`, `mean`, `std` (population), `count`, as lists (`min` and `max` of a bool or int64 feature in its type, as lerobot writes them); aggregated over episodes as lerobot's `aggregate_stats` does |
//! | `meta/tasks.parquet` | pandas frame indexed by `task` (string) with column `task_index` (int64); read also with another index column (lerobot's `__index_level_0__`, `large_string`) |
//! | `meta/episodes/chunk-000/file-000.parquet` | one row per episode: `episode_index`, `tasks` (list of strings), `length`, `data/chunk_index`, `data/file_index`, `dataset_from_index`, `dataset_to_index` (global frame range, end exclusive), `meta/episodes/chunk_index`, `meta/episodes/file_index`, `handful/recovered`, `stats/<feature>/{min,max,mean,std,count}` |
//! | `data/chunk-XXX/file-YYY.parquet` | one row per frame, one row group per episode, episodes in order; a file rolls over past `data_files_size_in_mb` |
//! | `staging/episode-NNNNNN/part-NNNN.parquet` | the episode being recorded, flushed every half second; gone once the episode is committed |
//!
//! # Frame features (one row per control tick)
//!
//! | feature | dtype, shape | meaning |
//! |---------|--------------|---------|
//! | `observation.state` | float32 \[S\] | calibrated state, `names` = the calibration's state names |
//! | `action` | float32 \[A\] | the command actually sent (after safety), `names` = action names; a plain float32 column when A = 1 |
//! | `next.reward` | float32 \[1\] | reward of this transition |
//! | `next.done` | bool \[1\] | the episode ends after this frame |
//! | `observation.host_time_us` | int64 \[1\] | host clock when the state was received |
//! | `observation.firmware_time_us` | int64 \[1\] | firmware clock stamped on the state |
//! | `is_expert` | bool \[1\] | teleop/scripted expert (true) or learner/autonomous (false) |
//! | `action.command_seq` | int64 \[1\] | the link's seq of the command sent this tick (`-1`: none) |
//! | `observation.applied_command_seq` | int64 \[1\] | the state's `last_command_seq`: the command the firmware had in force when it took the sample (`-1`: disarmed, or unknown) |
//! | `timestamp` | float32 \[1\] | `frame_index / fps`, as lerobot (real times are the two `_us` columns) |
//! | `frame_index`, `episode_index`, `index`, `task_index` | int64 \[1\] | assigned by the writer; `index` is global |
//!
//! Vectors are `fixed_size_list<float32>` (HF `List(length=n)`), and every shape-`[1]`
//! feature is a plain column, a 1-D `action` (or state) included: lerobot maps shape `[1]`
//! to a scalar `Value`, and its loader cannot cast a one-element list to it. The one-element
//! `action` lists handful wrote before are still read, and an append rewrites their file
//! in the plain form.
//!
//! # Datasets other tools wrote
//! lerobot's own writer leaves out the `handful` block of `info.json` (read as empty: the
//! robot is then known by `robot_type` and the channel names, see
//! [`Info::has_provenance`]) and the optional features; it stores a boolean or int64
//! feature's `min`/`max` statistics in that type, and the task as the unnamed pandas index
//! of `meta/tasks.parquet` (`__index_level_0__`). All of it is read.
//!
//! # Crash safety
//! Parts are written to a temporary name, fsynced and renamed. At `end_episode` the data file is
//! rebuilt beside itself (committed row groups + the new one) and renamed over, then tasks,
//! episodes, stats and finally `info.json` (the commit point) are replaced the same way.
//! Reading and [`validate`] never change a dataset; [`recover()`] (`handful dataset recover`)
//! and opening it to append commit what a crash left (see [`mod@recover`]).

mod columns;
mod commit;
mod episodes;
mod fsio;
mod merge;
mod meta;
mod problem;
mod reader;
pub mod recover;
mod stats;
mod validate;
mod writer;

use std::path::PathBuf;

pub use columns::{FEATURE_NAMES, OPTIONAL_FEATURES, RecordedFrame};
pub use merge::merge;
pub use meta::{EpisodeMeta, HandfulMeta, Info, Provenance, SourceProvenance};
pub use problem::{Problem, ValidationReport};
pub use reader::{DatasetReader, FrameIter};
pub use recover::{RecoveryReport, inspect, recover};
pub use stats::FeatureStats;
pub use validate::validate;
pub use writer::DatasetWriter;

/// The LeRobot format version this module writes and reads.
pub const CODEBASE_VERSION: &str = "v3.0";

/// Why a dataset operation failed. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet file {path} cannot be {action}")]
    Parquet {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The third-party parquet decoder panicked on the file's bytes (contained: see
    /// `fsio::contain`).
    #[error("the parquet decoder panicked on {path}: {message}")]
    DecoderPanicked { path: PathBuf, message: String },
    #[error("{path} is malformed: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("{path}, column `{column}`: expected {expected}, found {found}")]
    Column {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },
    /// Appending or merging rewrites frames in the columns handful knows: these others
    /// would be lost.
    #[error(
        "{path} has features handful does not record ({}): appending to it or merging it \
         would drop them",
        features.join(", ")
    )]
    UnknownFeatures {
        path: PathBuf,
        features: Vec<String>,
    },
    #[error("{path} already exists; use open_append to add episodes")]
    AlreadyExists { path: PathBuf },
    #[error("frame has {found} {what} values; the dataset expects {expected}")]
    Shape {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{0}")]
    State(&'static str),
    #[error(
        "cannot merge {path}: its {what} ({found}) differs from the first input's ({expected})"
    )]
    Incompatible {
        path: PathBuf,
        what: &'static str,
        expected: String,
        found: String,
    },
}

/// One control tick as the recorder hands it over. Indices and `timestamp` are assigned by the
/// writer; `state` and `action` must have the lengths of the dataset's spec.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub state: Vec<f32>,
    pub action: Vec<f32>,
    pub reward: f32,
    pub done: bool,
    pub host_time_us: i64,
    pub firmware_time_us: i64,
    pub is_expert: bool,
    /// The link's seq of the command sent at this tick (`-1`: none was sent).
    pub command_seq: i64,
    /// The sample's `last_command_seq` when the firmware was armed (`-1`: disarmed or
    /// unknown). Learning pairs each step with the command the firmware applied by it.
    pub applied_command_seq: i64,
    /// The phase the frame's step belongs to (`PhaseKind::index`: 0 forward, 1 backward,
    /// 2 evaluation; 0 in datasets that predate phases).
    pub phase: i64,
    /// The reset classifier's `C(s)` of the frame's state when a MEDAL backward
    /// controller drove it (how demonstration-start-like the state looks); NaN when no
    /// classifier scored it.
    pub reset_score: f32,
}

/// Field by field; an unscored frame's `reset_score` (NaN) equals another's.
impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
            && self.action == other.action
            && self.reward == other.reward
            && self.done == other.done
            && self.host_time_us == other.host_time_us
            && self.firmware_time_us == other.firmware_time_us
            && self.is_expert == other.is_expert
            && self.command_seq == other.command_seq
            && self.applied_command_seq == other.applied_command_seq
            && self.phase == other.phase
            && (self.reset_score == other.reset_score
                || (self.reset_score.is_nan() && other.reset_score.is_nan()))
    }
}

/// What a new dataset is: its rate, channel names and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    /// lerobot's `robot_type`; handful writes the plant kind or robot id.
    pub robot_type: String,
    pub fps: u32,
    pub state_names: Vec<String>,
    pub action_names: Vec<String>,
    pub provenance: Provenance,
}

impl DatasetSpec {
    /// The spec of a dataset recorded with `calib` at its control rate.
    pub fn from_calibration(
        calib: &crate::calib::Calibration,
        config: serde_json::Value,
        model_sha256: Option<String>,
    ) -> Self {
        let fps = (1_000_000.0 / calib.control_period_us.max(1) as f64).round() as u32;
        Self {
            robot_type: calib.robot_id.clone(),
            fps,
            state_names: calib.states.iter().map(|s| s.name.clone()).collect(),
            action_names: calib.actions.iter().map(|a| a.name.clone()).collect(),
            provenance: Provenance {
                calibration_sha256: calib.hash.clone(),
                calibration_text: calib.text.clone(),
                config,
                model_sha256,
                software_version: env!("CARGO_PKG_VERSION").to_string(),
                robot_id: calib.robot_id.clone(),
            },
        }
    }

    /// Every way the dataset `info` describes differs from this spec in what matters for
    /// using its episodes together with this robot's: the robot, the control rate and
    /// the state and action channels (the calibration's hash may differ: a recalibrated
    /// robot is still the same robot). Empty when they match.
    pub fn differences(&self, info: &Info) -> Vec<String> {
        let mut out = Vec::new();
        let robot = match info.handful.provenance.robot_id.as_str() {
            "" => info.robot_type.clone().unwrap_or_default(),
            id => id.to_string(),
        };
        if robot.is_empty() {
            out.push(format!(
                "robot unnamed: meta/info.json has neither a `handful` block nor a \
                 robot_type (this robot: {:?})",
                self.provenance.robot_id
            ));
        } else if robot != self.provenance.robot_id {
            out.push(format!(
                "robot {robot:?} (this robot: {:?})",
                self.provenance.robot_id
            ));
        }
        if info.fps != self.fps {
            out.push(format!(
                "{} frames per second (this robot: {})",
                info.fps, self.fps
            ));
        }
        for (key, mine) in [
            ("observation.state", &self.state_names),
            ("action", &self.action_names),
        ] {
            let theirs = info.features.get(key).and_then(|f| f.names.clone());
            if theirs.as_ref() != Some(mine) {
                out.push(format!(
                    "{key} channels {} (this robot: {mine:?})",
                    theirs.map_or("unnamed".to_string(), |t| format!("{t:?}"))
                ));
            }
        }
        out
    }
}
