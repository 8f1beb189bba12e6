//! [`validate`]: checks a dataset against the format, read-only, and lists every problem with
//! its file, row and column: what a crash left for recovery (each item is a problem: the
//! dataset is not valid until `handful dataset recover` has run), info totals, episode ranges and lengths, data
//! file schemas, contiguous `index`, `episode_index`/`frame_index`/`task_index`/`timestamp`
//! of every row, unreferenced data files, `stats.json`. Streams the data, one batch at a time.

use std::path::Path;

use super::DatasetError;
use super::columns::{Columns, FEATURE_NAMES, OPTIONAL_FEATURES, column_compatible, column_types};
use super::commit::Committed;
use super::fsio::{list_sorted, open_parquet};
use super::meta::{data_path, episodes_path, info_path, stats_path};
use super::problem::{Collector, ValidationReport};
use super::recover::inspect;

/// Validates the dataset at `root`. `Err` only when it cannot be opened at all (no or
/// malformed `info.json`, unreadable episodes table); everything else is a [`super::Problem`].
pub fn validate(root: &Path) -> Result<ValidationReport, DatasetError> {
    let recovery = inspect(root)?;
    let state = Committed::load(root)?;
    let mut out = Collector(Vec::new());
    let recover = "`handful dataset recover` ";
    for e in &recovery.recovered {
        let message = format!(
            "an episode a crash left staged ({} frames from {} of its {} parts): {recover}\
             commits it as episode {}, marked recovered",
            e.frames,
            e.parts_kept,
            e.parts_kept + e.parts_dropped.len(),
            e.episode_index
        );
        out.add(&e.staging, None, None, message);
    }
    for (dir, why) in &recovery.dropped {
        out.add(dir, None, None, format!("{why}: {recover}removes it"));
    }
    for path in &recovery.removed {
        out.add(
            path,
            None,
            None,
            format!("left by an interrupted write: {recover}removes it"),
        );
    }
    for path in &recovery.trimmed {
        let message = format!("holds rows of an episode never committed: {recover}cuts them");
        out.add(path, None, None, message);
    }
    let info = &state.info;
    let (ipath, epath) = (info_path(root), episodes_path(root));
    let last_to = state.episodes.last().map_or(0, |e| e.dataset_to_index);
    for (key, have, want) in [
        (
            "total_episodes",
            info.total_episodes,
            state.episodes.len() as i64,
        ),
        ("total_frames", info.total_frames, last_to),
        ("total_tasks", info.total_tasks, state.tasks.len() as i64),
    ] {
        if have != want {
            out.add(
                &ipath,
                None,
                Some(key),
                format!("is {have}; the episodes and tasks say {want}"),
            );
        }
    }
    let mut prev_to = 0;
    for (row, ep) in state.episodes.iter().enumerate() {
        let at = |out: &mut Collector, col: &str, m: String| {
            out.add(&epath, Some(row as u64), Some(col), m)
        };
        if ep.episode_index != row as i64 {
            at(
                &mut out,
                "episode_index",
                format!("is {}; expected {row}", ep.episode_index),
            );
        }
        if ep.dataset_from_index != prev_to {
            at(
                &mut out,
                "dataset_from_index",
                format!(
                    "is {}; the previous episode ends at {prev_to}",
                    ep.dataset_from_index
                ),
            );
        }
        if ep.dataset_to_index - ep.dataset_from_index != ep.length {
            let span = ep.dataset_to_index - ep.dataset_from_index;
            at(
                &mut out,
                "length",
                format!("is {} but the episode spans {span} frames", ep.length),
            );
        }
        for t in ep.tasks.iter().filter(|t| !state.tasks.contains(t)) {
            at(
                &mut out,
                "tasks",
                format!("task {t:?} is not in meta/tasks.parquet"),
            );
        }
        prev_to = ep.dataset_to_index;
    }
    let mut files: Vec<(i64, i64)> = state
        .episodes
        .iter()
        .map(|e| (e.data_chunk_index, e.data_file_index))
        .collect();
    files.dedup();
    let mut frames = 0;
    for &(chunk, file) in &files {
        frames += check_data_file(root, &state, chunk, file, &mut out)?;
    }
    for chunk_dir in list_sorted(&root.join("data"), "chunk-", "")? {
        for path in list_sorted(&chunk_dir, "file-", ".parquet")? {
            if !files.iter().any(|&(c, f)| data_path(root, c, f) == path) {
                out.add(
                    &path,
                    None,
                    None,
                    "data file not referenced by any episode".into(),
                );
            }
        }
    }
    let spath = stats_path(root);
    match std::fs::read_to_string(&spath).map(|t| serde_json::from_str::<serde_json::Value>(&t)) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => out.add(&spath, None, None, format!("not valid JSON: {e}")),
        Err(e) => out.add(&spath, None, None, format!("cannot be read: {e}")),
    }
    Ok(ValidationReport {
        recovery,
        episodes: state.episodes.len(),
        frames,
        problems: out.0,
    })
}

/// Checks one data file's schema and rows; returns the rows checked.
fn check_data_file(
    root: &Path,
    state: &Committed,
    chunk: i64,
    file: i64,
    out: &mut Collector,
) -> Result<u64, DatasetError> {
    let path = data_path(root, chunk, file);
    let builder = match open_parquet(&path) {
        Ok(b) => b,
        Err(e) => {
            out.add(&path, None, None, format!("{e:#}"));
            return Ok(0);
        }
    };
    let (s, a) = state.info.dims();
    let schema = builder.schema().clone();
    let mut schema_ok = true;
    for (i, (name, (_, want))) in FEATURE_NAMES.iter().zip(column_types(s, a)).enumerate() {
        match schema.field_with_name(name) {
            Err(_) if OPTIONAL_FEATURES.contains(name) => continue,
            Err(_) => out.add(&path, None, Some(name), "column missing".into()),
            Ok(f) if !column_compatible(i, f.data_type(), &want) => out.add(
                &path,
                None,
                Some(name),
                format!("has type {}; expected {want}", f.data_type()),
            ),
            Ok(_) => continue,
        }
        schema_ok = false;
    }
    let eps: Vec<_> = state
        .episodes
        .iter()
        .filter(|e| (e.data_chunk_index, e.data_file_index) == (chunk, file))
        .collect();
    let expected_rows: i64 = eps.iter().map(|e| e.length).sum();
    let rows = builder.metadata().file_metadata().num_rows();
    if rows != expected_rows {
        out.add(
            &path,
            None,
            None,
            format!("has {rows} rows; its episodes account for {expected_rows}"),
        );
    }
    if !schema_ok {
        return Ok(0);
    }
    let start = eps.first().map_or(0, |e| e.dataset_from_index);
    let fps = state.info.fps.max(1) as f64;
    let reader = super::fsio::batches(builder.with_batch_size(4096), &path)?;
    let mut row: u64 = 0;
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                let why = match &e {
                    DatasetError::Parquet { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                out.add(&path, Some(row), None, format!("does not decode: {why}"));
                break;
            }
        };
        let c = match Columns::from_batch(&batch, s, a, &path) {
            Ok(c) => c,
            Err(e) => {
                out.add(&path, Some(row), None, format!("{e}"));
                break;
            }
        };
        for i in 0..c.len() {
            let global = start + row as i64;
            let ep = eps
                .iter()
                .find(|e| e.dataset_from_index <= global && global < e.dataset_to_index);
            let mut at = |col: &str, m: String| out.add(&path, Some(row), Some(col), m);
            if c.index[i] != global {
                at(
                    "index",
                    format!(
                        "is {}; expected {global} (indices must be contiguous)",
                        c.index[i]
                    ),
                );
            }
            if let Some(ep) = ep {
                if c.episode_index[i] != ep.episode_index {
                    at(
                        "episode_index",
                        format!(
                            "is {}; the episodes table puts this row in episode {}",
                            c.episode_index[i], ep.episode_index
                        ),
                    );
                }
                let fi = global - ep.dataset_from_index;
                if c.frame_index[i] != fi {
                    at(
                        "frame_index",
                        format!("is {}; expected {fi}", c.frame_index[i]),
                    );
                }
                if (f64::from(c.timestamp[i]) - fi as f64 / fps).abs() > 1e-4 {
                    at(
                        "timestamp",
                        format!(
                            "is {}; expected frame_index / fps = {}",
                            c.timestamp[i],
                            fi as f64 / fps
                        ),
                    );
                }
            }
            if c.task_index[i] < 0 || c.task_index[i] >= state.tasks.len() as i64 {
                at(
                    "task_index",
                    format!(
                        "is {}; there are {} tasks",
                        c.task_index[i],
                        state.tasks.len()
                    ),
                );
            }
            row += 1;
        }
    }
    Ok(row)
}
