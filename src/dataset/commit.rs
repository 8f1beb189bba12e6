//! Committing an episode: the staged parts become a row group of a data file, then tasks,
//! episodes, stats and `info.json` (last: the commit point) are replaced atomically. Shared by
//! the writer (`end_episode`) and crash recovery. The in-memory [`Committed`] state changes only
//! once every file is in place, so a failed commit (full disk) leaves both disk and memory at
//! the last completed episode.

use std::path::{Path, PathBuf};

use parquet::file::metadata::KeyValue;

use super::columns::{Columns, frame_schema};
use super::fsio::{ParquetOut, batches, io_err, list_sorted, open_parquet, read_parquet};
use super::meta::{self, EpisodeMeta, Info, data_path, next_file};
use super::stats::{aggregate, episode_stats};
use super::{DatasetError, DatasetSpec};

/// The metadata of a dataset's committed episodes, as on disk.
#[derive(Clone, Debug)]
pub(crate) struct Committed {
    pub info: Info,
    pub episodes: Vec<EpisodeMeta>,
    pub tasks: Vec<String>,
}

/// Key of the task string in a staged part's parquet metadata.
pub(crate) const TASK_KEY: &str = "handful.task";
/// Key of a staged part's metadata naming the calibration it was recorded under.
pub(crate) const CALIBRATION_KEY: &str = "handful.calibration_sha256";

impl Committed {
    pub fn new(spec: &DatasetSpec) -> Self {
        Self {
            info: Info::new(spec),
            episodes: Vec::new(),
            tasks: Vec::new(),
        }
    }

    pub fn load(root: &Path) -> Result<Self, DatasetError> {
        let info = Info::load(root)?;
        let episodes = meta::read_episodes(root)?;
        let tasks = meta::load_tasks(root)?;
        Ok(Self {
            info,
            episodes,
            tasks,
        })
    }

    pub fn task_index(&self, task: &str) -> i64 {
        self.tasks
            .iter()
            .position(|t| t == task)
            .unwrap_or(self.tasks.len()) as i64
    }

    /// Committed rows of data file (`chunk`, `file`), from its episodes' global frame ranges.
    pub fn rows_in(&self, chunk: i64, file: i64) -> i64 {
        let of_file = |e: &&EpisodeMeta| e.data_chunk_index == chunk && e.data_file_index == file;
        let from = self
            .episodes
            .iter()
            .filter(of_file)
            .map(|e| e.dataset_from_index)
            .min();
        let to = self
            .episodes
            .iter()
            .filter(of_file)
            .map(|e| e.dataset_to_index)
            .max();
        to.zip(from).map_or(0, |(to, from)| to - from)
    }

    /// Checks the footers of the data files (all, or only the last, which appends go to):
    /// each must decode and hold the rows its episodes say. Errors name the file.
    /// Checks the row count of every data file (`all`) or the last only; with `trailing`,
    /// the last may hold more rows than committed (a crash mid-commit, not yet recovered).
    pub fn check_data_files(
        &self,
        root: &Path,
        all: bool,
        trailing: bool,
    ) -> Result<(), DatasetError> {
        let mut files: Vec<(i64, i64)> = self
            .episodes
            .iter()
            .map(|e| (e.data_chunk_index, e.data_file_index))
            .collect();
        files.dedup();
        let skip = if all {
            0
        } else {
            files.len().saturating_sub(1)
        };
        let last = files.last().copied();
        for &(chunk, file) in &files[skip..] {
            let path = data_path(root, chunk, file);
            let rows = open_parquet(&path)?.metadata().file_metadata().num_rows();
            let want = self.rows_in(chunk, file);
            let extra_allowed = trailing && Some((chunk, file)) == last && rows > want;
            if rows != want && !extra_allowed {
                let message = format!("holds {rows} rows; the episodes table says {want}");
                return Err(DatasetError::Malformed { path, message });
            }
        }
        Ok(())
    }

    /// Writes the dataset's meta files from scratch (a new dataset).
    pub fn save_all(&self, root: &Path) -> Result<(), DatasetError> {
        meta::save_tasks(root, &self.tasks)?;
        let features = &self.info.features;
        meta::write_episodes(root, &self.episodes, features)?;
        meta::save_stats(
            root,
            &aggregate(self.episodes.iter().map(|e| &e.stats)),
            features,
        )?;
        self.info.save(root)
    }
}

/// Staging directory of episode `episode_index`.
pub(crate) fn staging_dir(root: &Path, episode_index: i64) -> PathBuf {
    root.join(format!("staging/episode-{episode_index:06}"))
}

pub(crate) fn part_path(dir: &Path, part: u32) -> PathBuf {
    dir.join(format!("part-{part:04}.parquet"))
}

pub(crate) fn part_metadata(task: &str, calibration: Option<&str>) -> Vec<KeyValue> {
    let mut kv = vec![KeyValue::new(TASK_KEY.to_string(), task.to_string())];
    if let Some(sha) = calibration {
        kv.push(KeyValue::new(CALIBRATION_KEY.to_string(), sha.to_string()));
    }
    kv
}

/// A staged episode's task and calibration, from its parts' metadata.
#[derive(Clone, Debug, Default)]
pub(crate) struct StagedMeta {
    pub task: Option<String>,
    pub calibration: Option<String>,
}

/// What [`read_staged`] found: the frames, the task and calibration, and the dropped
/// parts with why.
pub(crate) type Staged = (Columns, StagedMeta, Vec<(PathBuf, String)>);

/// Staged parts of an episode, in order, stopping at the first that does not decode.
/// Returns the frames, the task, and the parts that were dropped with why.
pub(crate) fn read_staged(
    dir: &Path,
    state_len: usize,
    action_len: usize,
) -> Result<Staged, DatasetError> {
    let mut cols = Columns::with_capacity(state_len, action_len, 0);
    let mut meta = StagedMeta::default();
    let mut dropped = Vec::new();
    let parts = list_sorted(dir, "part-", ".parquet")?;
    for (i, path) in parts.iter().enumerate() {
        let decoded = read_part(path, state_len, action_len);
        match decoded {
            Ok((c, m)) => {
                cols.append(&c);
                meta.task = meta.task.or(m.task);
                meta.calibration = meta.calibration.or(m.calibration);
            }
            Err(e) => {
                for p in &parts[i..] {
                    let why = if p == path {
                        format!("{e:#}")
                    } else {
                        "follows a dropped part".into()
                    };
                    dropped.push((p.clone(), why));
                }
                break;
            }
        }
    }
    Ok((cols, meta, dropped))
}

fn read_part(path: &Path, s: usize, a: usize) -> Result<(Columns, StagedMeta), DatasetError> {
    let builder = open_parquet(path)?;
    let kv = builder.metadata().file_metadata().key_value_metadata();
    let value = |key: &str| {
        kv.and_then(|kv| {
            kv.iter()
                .find(|k| k.key == key)
                .and_then(|k| k.value.clone())
        })
    };
    let meta = StagedMeta {
        task: value(TASK_KEY),
        calibration: value(CALIBRATION_KEY),
    };
    let mut cols = Columns::with_capacity(s, a, 0);
    for batch in read_parquet(path)? {
        cols.append(&Columns::from_batch(&batch, s, a, path)?);
    }
    Ok((cols, meta))
}

/// Commits `cols` (one episode's frames, in order) as the next episode with `task`,
/// recorded under the calibration `calibration` names. `recovered` marks an episode
/// rebuilt after a crash: its last frame gets `next.done`.
pub(crate) fn commit_episode(
    root: &Path,
    state: &mut Committed,
    mut cols: Columns,
    task: &str,
    calibration: Option<&str>,
    recovered: bool,
) -> Result<EpisodeMeta, DatasetError> {
    let mut next = state.clone();
    let episode_index = next.episodes.len() as i64;
    let from = next.episodes.last().map_or(0, |e| e.dataset_to_index);
    let task_index = next.task_index(task);
    if task_index == next.tasks.len() as i64 {
        next.tasks.push(task.to_string());
    }
    let fps = next.info.fps.max(1) as f32;
    for i in 0..cols.len() {
        cols.episode_index[i] = episode_index;
        cols.index[i] = from + i as i64;
        cols.frame_index[i] = i as i64;
        cols.timestamp[i] = i as f32 / fps;
        cols.task_index[i] = task_index;
    }
    if recovered && let Some(d) = cols.done.last_mut() {
        *d = true;
    }
    let (chunk, file) = match next.episodes.last() {
        None => (0, 0),
        Some(e) => {
            let path = data_path(root, e.data_chunk_index, e.data_file_index);
            let bytes = std::fs::metadata(&path)
                .map_err(io_err("stat", &path))?
                .len();
            if bytes < next.info.data_files_size_in_mb * 1024 * 1024 {
                (e.data_chunk_index, e.data_file_index)
            } else {
                next_file(e.data_chunk_index, e.data_file_index)
            }
        }
    };
    rewrite_data_file(root, &next, chunk, file, Some(&cols))?;
    let ep = EpisodeMeta {
        episode_index,
        tasks: vec![task.to_string()],
        length: cols.len() as i64,
        data_chunk_index: chunk,
        data_file_index: file,
        dataset_from_index: from,
        dataset_to_index: from + cols.len() as i64,
        recovered,
        calibration_sha256: calibration.map(str::to_string),
        stats: episode_stats(&cols),
    };
    next.episodes.push(ep.clone());
    next.info.total_episodes = next.episodes.len() as i64;
    next.info.total_frames = ep.dataset_to_index;
    next.info.total_tasks = next.tasks.len() as i64;
    next.info
        .splits
        .insert("train".into(), format!("0:{}", next.episodes.len()));
    if recovered {
        next.info.handful.recovered_episodes.push(episode_index);
    }
    if next.tasks.len() != state.tasks.len() {
        meta::save_tasks(root, &next.tasks)?;
    }
    let features = &next.info.features;
    meta::write_episodes(root, &next.episodes, features)?;
    meta::save_stats(
        root,
        &aggregate(next.episodes.iter().map(|e| &e.stats)),
        features,
    )?;
    next.info.save(root)?;
    *state = next;
    Ok(ep)
}

/// Rebuilds data file (`chunk`, `file`) beside itself from its committed rows (as `state`
/// records them, in the schema handful writes now) followed by `extra` as a new row group,
/// then renames it over the old one.
pub(crate) fn rewrite_data_file(
    root: &Path,
    state: &Committed,
    chunk: i64,
    file: i64,
    extra: Option<&Columns>,
) -> Result<(), DatasetError> {
    let path = data_path(root, chunk, file);
    let (s, a) = state.info.dims();
    let mut out = ParquetOut::create(&path, frame_schema(s, a), Vec::new())?;
    let mut keep = state.rows_in(chunk, file) as usize;
    if keep > 0 {
        let builder = open_parquet(&path)?;
        let groups = builder.metadata().num_row_groups();
        for group in 0..groups {
            if keep == 0 {
                break;
            }
            let builder = open_parquet(&path)?.with_row_groups(vec![group]);
            for batch in batches(builder, &path)? {
                let batch = batch?;
                let take = keep.min(batch.num_rows());
                // Decoded and encoded again, not copied: rows an older handful or another
                // tool wrote (one-element lists, columns it lacks) take this file's schema.
                let rows = Columns::from_batch(&batch.slice(0, take), s, a, &path)?;
                out.write(&rows.to_batch())?;
                keep -= take;
            }
            out.end_group()?;
        }
        if keep > 0 {
            let message = format!("holds {keep} rows fewer than the episodes table says");
            return Err(DatasetError::Malformed { path, message });
        }
    }
    if let Some(extra) = extra {
        out.write(&extra.to_batch())?;
        out.end_group()?;
    }
    out.finish()
}
