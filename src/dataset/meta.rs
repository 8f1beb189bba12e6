//! The `meta/` files: `info.json` ([`Info`]), `stats.json`, `tasks.parquet` and the episodes
//! table ([`EpisodeMeta`]); their paths, and their atomic replacement. A malformed file is an
//! error naming the file and what is wrong, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use super::columns::{FEATURE_NAMES, OPTIONAL_FEATURES, column_types};
use super::fsio::{read_parquet, write_atomic, write_parquet_atomic};
use super::stats::{Stats, stats_json};
use super::{CODEBASE_VERSION, DatasetError, DatasetSpec};

pub(crate) use super::episodes::{read_episodes, write_episodes};

pub(crate) const DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
pub(crate) const CHUNKS_SIZE: i64 = 1000;
pub(crate) const DATA_FILES_SIZE_IN_MB: u64 = 100;

pub(crate) fn info_path(root: &Path) -> PathBuf {
    root.join("meta/info.json")
}
pub(crate) fn stats_path(root: &Path) -> PathBuf {
    root.join("meta/stats.json")
}
pub(crate) fn tasks_path(root: &Path) -> PathBuf {
    root.join("meta/tasks.parquet")
}
pub(crate) fn episodes_path(root: &Path) -> PathBuf {
    root.join("meta/episodes/chunk-000/file-000.parquet")
}
pub(crate) fn data_path(root: &Path, chunk: i64, file: i64) -> PathBuf {
    root.join(format!("data/chunk-{chunk:03}/file-{file:03}.parquet"))
}
/// lerobot's `update_chunk_file_indices`.
pub(crate) fn next_file(chunk: i64, file: i64) -> (i64, i64) {
    if file == CHUNKS_SIZE - 1 {
        (chunk + 1, 0)
    } else {
        (chunk, file + 1)
    }
}

/// Where a dataset came from (the `handful` key of `info.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub calibration_sha256: String,
    pub calibration_text: String,
    /// The run's configuration as JSON.
    pub config: serde_json::Value,
    /// SHA-256 of the ONNX model when the learner drove, else null.
    pub model_sha256: Option<String>,
    pub software_version: String,
    pub robot_id: String,
}

/// A merged dataset's record of one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceProvenance {
    pub root: String,
    /// The input's episodes are `first_episode..first_episode + episodes` here.
    pub first_episode: i64,
    pub episodes: i64,
    pub handful: Box<HandfulMeta>,
}

/// handful's own key in `info.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HandfulMeta {
    #[serde(flatten)]
    pub provenance: Provenance,
    /// Episodes rebuilt from staging after a crash.
    #[serde(default)]
    pub recovered_episodes: Vec<i64>,
    /// Calibrations episodes were recorded under besides `calibration_sha256`'s (an
    /// append after a recalibration), by SHA-256; each episode names its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calibrations: BTreeMap<String, String>,
    /// For a merged dataset, each input in order.
    #[serde(default)]
    pub sources: Vec<SourceProvenance>,
}

impl HandfulMeta {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One feature of `info.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Channel names; lerobot also writes them as a map with one list (`{"motors": [...]}`),
    /// read as that list.
    #[serde(default, deserialize_with = "channel_names")]
    pub names: Option<Vec<String>>,
}

fn channel_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Map(BTreeMap<String, Vec<String>>),
    }
    match Option::<Names>::deserialize(d)? {
        None => Ok(None),
        Some(Names::List(names)) => Ok(Some(names)),
        Some(Names::Map(map)) if map.len() == 1 => Ok(map.into_values().next()),
        Some(Names::Map(_)) => Err(serde::de::Error::custom(
            "names is a map of more than one list of channel names",
        )),
    }
}

/// `meta/info.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub codebase_version: String,
    pub robot_type: Option<String>,
    pub total_episodes: i64,
    pub total_frames: i64,
    pub total_tasks: i64,
    pub chunks_size: i64,
    pub data_files_size_in_mb: u64,
    pub video_files_size_in_mb: u64,
    pub fps: u32,
    pub splits: BTreeMap<String, String>,
    pub data_path: String,
    pub video_path: Option<String>,
    pub features: BTreeMap<String, Feature>,
    /// Absent from a dataset another tool wrote (lerobot's own writer): read as empty,
    /// see [`Info::has_provenance`], and left out again while it is.
    #[serde(default, skip_serializing_if = "HandfulMeta::is_empty")]
    pub handful: HandfulMeta,
}

/// The `info.json` entries of every feature handful writes, for the given channel names.
fn feature_entries(state_names: &[String], action_names: &[String]) -> BTreeMap<String, Feature> {
    let (s, a) = (state_names.len(), action_names.len());
    FEATURE_NAMES
        .iter()
        .zip(column_types(s, a))
        .enumerate()
        .map(|(i, (name, (dtype, _)))| {
            let (shape, names) = match i {
                0 => (s, Some(state_names.to_vec())),
                1 => (a, Some(action_names.to_vec())),
                _ => (1, None),
            };
            let f = Feature {
                dtype: dtype.into(),
                shape: vec![shape],
                names,
            };
            (name.to_string(), f)
        })
        .collect()
}

impl Info {
    pub(crate) fn new(spec: &DatasetSpec) -> Self {
        let features = feature_entries(&spec.state_names, &spec.action_names);
        Self {
            codebase_version: CODEBASE_VERSION.into(),
            robot_type: Some(spec.robot_type.clone()),
            total_episodes: 0,
            total_frames: 0,
            total_tasks: 0,
            chunks_size: CHUNKS_SIZE,
            data_files_size_in_mb: DATA_FILES_SIZE_IN_MB,
            video_files_size_in_mb: 500,
            fps: spec.fps,
            splits: BTreeMap::new(),
            data_path: DATA_PATH.into(),
            video_path: None,
            features,
            handful: HandfulMeta {
                provenance: spec.provenance.clone(),
                ..Default::default()
            },
        }
    }

    /// Whether `info.json` says where the dataset came from (its `handful` block names the
    /// robot): false for a dataset another tool wrote, whose robot is then known only by
    /// `robot_type` and its channel names, and whose calibration is unknown.
    pub fn has_provenance(&self) -> bool {
        !self.handful.provenance.robot_id.is_empty()
    }

    /// Adds the entries of the features handful writes that `features` lacks (the optional
    /// ones of a dataset another tool wrote), before episodes with them are appended.
    pub(crate) fn add_missing_features(&mut self) {
        let names = |k: &str| {
            self.features
                .get(k)
                .and_then(|f| f.names.clone())
                .unwrap_or_default()
        };
        let all = feature_entries(&names("observation.state"), &names("action"));
        for (name, feature) in all {
            self.features.entry(name).or_insert(feature);
        }
    }

    /// Refuses a dataset with features handful does not record (another tool's), before
    /// its frames are rewritten in handful's columns, which would drop them.
    pub(crate) fn check_known_features(&self, root: &Path) -> Result<(), DatasetError> {
        let features: Vec<String> = self
            .features
            .keys()
            .filter(|k| !FEATURE_NAMES.contains(&k.as_str()))
            .cloned()
            .collect();
        if features.is_empty() {
            return Ok(());
        }
        Err(DatasetError::UnknownFeatures {
            path: info_path(root),
            features,
        })
    }

    /// Widths of `observation.state` and `action`.
    pub fn dims(&self) -> (usize, usize) {
        let width = |k: &str| {
            self.features
                .get(k)
                .and_then(|f| f.shape.first().copied())
                .unwrap_or(0)
        };
        (width("observation.state"), width("action"))
    }

    pub(crate) fn load(root: &Path) -> Result<Self, DatasetError> {
        let path = info_path(root);
        let text = std::fs::read_to_string(&path).map_err(super::fsio::io_err("read", &path))?;
        let info: Info = serde_json::from_str(&text).map_err(|e| DatasetError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if info.codebase_version != CODEBASE_VERSION {
            let message = format!(
                "codebase_version is {:?}; expected {CODEBASE_VERSION:?}",
                info.codebase_version
            );
            return Err(DatasetError::Malformed { path, message });
        }
        for name in FEATURE_NAMES {
            if !info.features.contains_key(name) && !OPTIONAL_FEATURES.contains(&name) {
                let message = format!("features lacks `{name}`");
                return Err(DatasetError::Malformed { path, message });
            }
        }
        Ok(info)
    }

    pub(crate) fn save(&self, root: &Path) -> Result<(), DatasetError> {
        let path = info_path(root);
        let text = serde_json::to_string_pretty(self).map_err(|e| DatasetError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, text.as_bytes())
    }
}

pub(crate) fn save_stats(
    root: &Path,
    stats: &Stats,
    features: &BTreeMap<String, Feature>,
) -> Result<(), DatasetError> {
    let path = stats_path(root);
    let text = serde_json::to_string_pretty(&stats_json(stats, features)).map_err(|e| {
        DatasetError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    write_atomic(&path, text.as_bytes())
}

/// Writes the task table as pandas writes a frame indexed by `task`.
pub(crate) fn save_tasks(root: &Path, tasks: &[String]) -> Result<(), DatasetError> {
    // pyarrow rebuilds the pandas index from the schema's `pandas` metadata, as lerobot expects.
    let pandas = serde_json::json!({
        "index_columns": ["task"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "handful", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.3.3"
    });
    let fields = vec![
        Field::new("task_index", DataType::Int64, true),
        Field::new("task", DataType::Utf8, true),
    ];
    let metadata = [("pandas".to_string(), pandas.to_string())]
        .into_iter()
        .collect();
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..tasks.len() as i64)),
        Arc::new(StringArray::from_iter_values(tasks)),
    ];
    let path = tasks_path(root);
    let batch =
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| DatasetError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
    write_parquet_atomic(&path, schema, &[vec![batch]], Vec::new())
}

/// The task strings in `task_index` order. The task is the frame's pandas index: a `task`
/// column (as handful writes it), or the column the schema's `pandas` metadata names as
/// the index (`__index_level_0__` for lerobot's unnamed one); `string` or `large_string`.
pub(crate) fn load_tasks(root: &Path) -> Result<Vec<String>, DatasetError> {
    let path = tasks_path(root);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut pairs = Vec::new();
    for batch in read_parquet(&path)? {
        let malformed = |m: &str| DatasetError::Malformed {
            path: path.clone(),
            message: m.into(),
        };
        let idx = batch
            .column_by_name("task_index")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let task = task_column(&batch)
            .filter(|c| matches!(c.data_type(), DataType::Utf8 | DataType::LargeUtf8))
            .and_then(|c| arrow::compute::cast(c, &DataType::Utf8).ok());
        let task = task
            .as_ref()
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let (Some(idx), Some(task)) = (idx, task) else {
            return Err(malformed(
                "expected a task_index column (int64) and the task (string) as a `task` \
                 column or the pandas index",
            ));
        };
        if idx.null_count() + task.null_count() > 0 {
            return Err(malformed("task_index or task has null values"));
        }
        for i in 0..batch.num_rows() {
            pairs.push((idx.value(i), task.value(i).to_string()));
        }
    }
    pairs.sort();
    for (i, (idx, _)) in pairs.iter().enumerate() {
        if *idx != i as i64 {
            let message = format!(
                "task_index values are not 0..{}: found {idx} at position {i}",
                pairs.len()
            );
            return Err(DatasetError::Malformed { path, message });
        }
    }
    Ok(pairs.into_iter().map(|(_, t)| t).collect())
}

/// The column holding the task strings: `task`, else the pandas index the schema's
/// metadata names, else `__index_level_0__`.
fn task_column(batch: &RecordBatch) -> Option<&ArrayRef> {
    if let Some(c) = batch.column_by_name("task") {
        return Some(c);
    }
    let schema = batch.schema_ref();
    let named = schema
        .metadata()
        .get("pandas")
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| m["index_columns"][0].as_str().map(str::to_string));
    named
        .and_then(|name| batch.column_by_name(&name))
        .or_else(|| batch.column_by_name("__index_level_0__"))
}

/// One row of the episodes table.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeMeta {
    pub episode_index: i64,
    pub tasks: Vec<String>,
    pub length: i64,
    pub data_chunk_index: i64,
    pub data_file_index: i64,
    pub dataset_from_index: i64,
    pub dataset_to_index: i64,
    /// Rebuilt from staging after a crash.
    pub recovered: bool,
    /// SHA-256 of the calibration it was recorded under (`None`: not recorded, e.g.
    /// another tool's dataset).
    pub calibration_sha256: Option<String>,
    pub stats: Stats,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(names: &str, expected: Result<Option<Vec<&str>>, ()>) {
        let text = format!(r#"{{"dtype": "float32", "shape": [2], "names": {names}}}"#);
        let found = serde_json::from_str::<Feature>(&text).map(|f| f.names);
        let expected = expected.map(|n| n.map(|n| n.into_iter().map(String::from).collect()));
        assert_eq!(found.map_err(|_| ()), expected, "{names}");
    }

    #[test]
    fn channel_names_are_a_list_or_a_map_of_one_list() {
        check(r#"["x", "y"]"#, Ok(Some(vec!["x", "y"])));
        check(r#"{"motors": ["x", "y"]}"#, Ok(Some(vec!["x", "y"])));
        check("null", Ok(None));
        check(r#"{"a": ["x"], "b": ["y"]}"#, Err(()));
        check("3", Err(()));
    }
}
