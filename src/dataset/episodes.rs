//! The episodes table (`meta/episodes/chunk-*/file-*.parquet`): one row per episode with its
//! tasks, length, global frame range, data file, and per-episode statistics in
//! `stats/<feature>/<stat>` columns, as lerobot's `flatten_dict({"stats": ...})` names them
//! (and types them: see [`write_episodes`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray,
};
use arrow::array::{BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow::datatypes::{Field, Schema};

use super::DatasetError;
use super::fsio::{list_sorted, read_parquet, write_parquet_atomic};
use super::meta::{EpisodeMeta, Feature, episodes_path};
use super::stats::{Extremes, FeatureStats};

const STATS: [&str; 5] = ["min", "max", "mean", "std", "count"];

fn int(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// Replaces the episodes table with `episodes`: statistics as float64 lists (`count`
/// int64), but a boolean or int64 feature's `min` and `max` in its type (`features`), as
/// lerobot writes them.
pub(crate) fn write_episodes(
    root: &Path,
    episodes: &[EpisodeMeta],
    features: &BTreeMap<String, Feature>,
) -> Result<(), DatasetError> {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut add = |name: &str, col: ArrayRef| {
        fields.push(Field::new(name, col.data_type().clone(), true));
        cols.push(col);
    };
    let e = episodes;
    add("episode_index", int(e.iter().map(|e| e.episode_index)));
    let mut tasks = ListBuilder::new(StringBuilder::new());
    for ep in e {
        for t in &ep.tasks {
            tasks.values().append_value(t);
        }
        tasks.append(true);
    }
    add("tasks", Arc::new(tasks.finish()));
    add("length", int(e.iter().map(|e| e.length)));
    add(
        "data/chunk_index",
        int(e.iter().map(|e| e.data_chunk_index)),
    );
    add("data/file_index", int(e.iter().map(|e| e.data_file_index)));
    add(
        "dataset_from_index",
        int(e.iter().map(|e| e.dataset_from_index)),
    );
    add(
        "dataset_to_index",
        int(e.iter().map(|e| e.dataset_to_index)),
    );
    add("meta/episodes/chunk_index", int(e.iter().map(|_| 0)));
    add("meta/episodes/file_index", int(e.iter().map(|_| 0)));
    add(
        "handful/recovered",
        Arc::new(BooleanArray::from_iter(e.iter().map(|e| Some(e.recovered)))),
    );
    add(
        "handful/calibration_sha256",
        Arc::new(StringArray::from_iter(
            e.iter().map(|e| e.calibration_sha256.as_deref()),
        )),
    );
    // Every feature any episode has statistics of (an episode another tool wrote may
    // lack some: its lists are empty there).
    let with_stats: std::collections::BTreeSet<String> =
        e.iter().flat_map(|e| e.stats.keys().cloned()).collect();
    for feature in &with_stats {
        let kind = Extremes::of(features, feature);
        for stat in STATS {
            let name = format!("stats/{feature}/{stat}");
            if stat == "count" {
                let mut b = ListBuilder::new(Int64Builder::new());
                for ep in e {
                    let s = ep.stats.get(feature);
                    b.values()
                        .append_slice(s.map(|s| s.count.as_slice()).unwrap_or(&[]));
                    b.append(true);
                }
                add(&name, Arc::new(b.finish()));
                continue;
            }
            let values = |ep: &EpisodeMeta| -> Vec<f64> {
                ep.stats
                    .get(feature)
                    .map(|s| match stat {
                        "min" => s.min.clone(),
                        "max" => s.max.clone(),
                        "mean" => s.mean.clone(),
                        _ => s.std.clone(),
                    })
                    .unwrap_or_default()
            };
            let kind = if matches!(stat, "min" | "max") {
                kind
            } else {
                Extremes::Float
            };
            let column: ArrayRef = match kind {
                Extremes::Float => {
                    let mut b = ListBuilder::new(Float64Builder::new());
                    for ep in e {
                        b.values().append_slice(&values(ep));
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
                Extremes::Int => {
                    let mut b = ListBuilder::new(Int64Builder::new());
                    for ep in e {
                        for v in values(ep) {
                            b.values().append_value(v as i64);
                        }
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
                Extremes::Bool => {
                    let mut b = ListBuilder::new(BooleanBuilder::new());
                    for ep in e {
                        for v in values(ep) {
                            b.values().append_value(v != 0.0);
                        }
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
            };
            add(&name, column);
        }
    }
    let path = episodes_path(root);
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| DatasetError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
    write_parquet_atomic(&path, schema, &[vec![batch]], Vec::new())
}

/// Reads every episodes file under `meta/episodes/`, in episode order.
pub(crate) fn read_episodes(root: &Path) -> Result<Vec<EpisodeMeta>, DatasetError> {
    let mut out = Vec::new();
    for chunk in list_sorted(&root.join("meta/episodes"), "chunk-", "")? {
        for path in list_sorted(&chunk, "file-", ".parquet")? {
            for batch in read_parquet(&path)? {
                read_batch(&batch, &path, &mut out)?;
            }
        }
    }
    out.sort_by_key(|e| e.episode_index);
    Ok(out)
}

/// A statistic's values as `f64`: handful writes them as float64; lerobot keeps a boolean
/// or int64 feature's `min` and `max` in the feature's type (and may write float32).
fn numbers(values: &dyn Array) -> Option<Vec<f64>> {
    let any = values.as_any();
    let f64s = any
        .downcast_ref::<Float64Array>()
        .map(|v| v.values().to_vec());
    let f32s = || {
        any.downcast_ref::<Float32Array>()
            .map(|v| v.values().iter().map(|&x| f64::from(x)).collect())
    };
    let i64s = || {
        any.downcast_ref::<Int64Array>()
            .map(|v| v.values().iter().map(|&x| x as f64).collect())
    };
    let bools = || {
        any.downcast_ref::<BooleanArray>()
            .map(|v| v.values().iter().map(|x| f64::from(u8::from(x))).collect())
    };
    f64s.or_else(f32s).or_else(i64s).or_else(bools)
}

fn read_batch(
    batch: &RecordBatch,
    path: &Path,
    out: &mut Vec<EpisodeMeta>,
) -> Result<(), DatasetError> {
    let column = |name: &str, expected: &str| DatasetError::Column {
        path: path.to_path_buf(),
        column: name.to_string(),
        expected: expected.to_string(),
        found: batch
            .column_by_name(name)
            .map(|c| format!("{}", c.data_type()))
            .unwrap_or_else(|| "no such column".into()),
    };
    let ints = |name: &str| -> Result<&Int64Array, DatasetError> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| column(name, "Int64"))
    };
    let list = |name: &str| -> Result<&ListArray, DatasetError> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
            .ok_or_else(|| column(name, "List"))
    };
    let (idx, len) = (ints("episode_index")?, ints("length")?);
    let (chunk, file) = (ints("data/chunk_index")?, ints("data/file_index")?);
    let (from, to) = (ints("dataset_from_index")?, ints("dataset_to_index")?);
    let tasks = list("tasks")?;
    let recovered = batch
        .column_by_name("handful/recovered")
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
    let calibration = batch
        .column_by_name("handful/calibration_sha256")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let stat_features: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .filter_map(|f| {
            f.name()
                .strip_prefix("stats/")?
                .strip_suffix("/mean")
                .map(str::to_string)
        })
        .collect();
    for row in 0..batch.num_rows() {
        let t = tasks.value(row);
        let t = t
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| column("tasks", "List<Utf8>"))?;
        let mut stats = BTreeMap::new();
        for feature in &stat_features {
            let f64s = |stat: &str| -> Result<Vec<f64>, DatasetError> {
                let name = format!("stats/{feature}/{stat}");
                let v = list(&name)?.value(row);
                numbers(v.as_ref()).ok_or_else(|| column(&name, "List<Float64>"))
            };
            let name = format!("stats/{feature}/count");
            let count = list(&name)?.value(row);
            let count = count
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| column(&name, "List<Int64>"))?;
            if count.is_empty() {
                // No statistics of this feature in this episode (see write_episodes).
                continue;
            }
            let s = FeatureStats {
                min: f64s("min")?,
                max: f64s("max")?,
                mean: f64s("mean")?,
                std: f64s("std")?,
                count: count.values().to_vec(),
            };
            stats.insert(feature.clone(), s);
        }
        out.push(EpisodeMeta {
            episode_index: idx.value(row),
            tasks: (0..t.len()).map(|i| t.value(i).to_string()).collect(),
            length: len.value(row),
            data_chunk_index: chunk.value(row),
            data_file_index: file.value(row),
            dataset_from_index: from.value(row),
            dataset_to_index: to.value(row),
            recovered: recovered.is_some_and(|r| r.value(row)),
            calibration_sha256: calibration
                .filter(|c| c.is_valid(row))
                .map(|c| c.value(row).to_string()),
            stats,
        });
    }
    Ok(())
}
