//! Crash recovery, run explicitly (`handful dataset recover`, [`recover`]) and by opening a
//! dataset for appending ([`super::DatasetWriter::open_append`], which reports it). Reading
//! and validating never change a dataset: they call [`inspect`], which says what recovery
//! would do and touches nothing. Recovery brings the directory back to "committed episodes
//! + nothing else":
//! - temporary files (`*.tmp`) from interrupted atomic writes are removed;
//! - data rows or files written by a commit that never reached `info.json` are cut off (the
//!   file is rebuilt from its committed rows and renamed over) or removed;
//! - each staged episode is committed, marked `handful/recovered` with `next.done` on its last
//!   frame, from the parts that decode (in order, up to the first that does not); an episode
//!   with no decodable part is dropped; a staged episode already committed is removed.
//!
//! Everything done is returned in a [`RecoveryReport`]; nothing is silently discarded.

use std::path::{Path, PathBuf};

use super::DatasetError;
use super::commit::{Committed, commit_episode, read_staged, rewrite_data_file};
use super::fsio::{io_err, list_sorted, open_parquet};
use super::meta::{Info, data_path};

/// A staged episode that recovery committed.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveredEpisode {
    pub episode_index: i64,
    /// Where it was staged.
    pub staging: PathBuf,
    pub frames: i64,
    pub parts_kept: usize,
    /// Parts that did not decode (and the ones after them), with why.
    pub parts_dropped: Vec<(PathBuf, String)>,
}

/// What recovery did. Empty when the dataset was closed cleanly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryReport {
    pub recovered: Vec<RecoveredEpisode>,
    /// Staging directories dropped because no part decoded, with why.
    pub dropped: Vec<(PathBuf, String)>,
    /// Leftovers removed: temporary files, uncommitted data files, committed staging.
    pub removed: Vec<PathBuf>,
    /// Data files rebuilt to drop rows of an uncommitted episode.
    pub trimmed: Vec<PathBuf>,
}

impl RecoveryReport {
    pub fn is_clean(&self) -> bool {
        self.recovered.is_empty()
            && self.dropped.is_empty()
            && self.removed.is_empty()
            && self.trimmed.is_empty()
    }
}

/// Whether recovery changes the directory or only says what it would do.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Apply,
    Inspect,
}

fn remove_file(path: &Path, mode: Mode, report: &mut RecoveryReport) -> Result<(), DatasetError> {
    if mode == Mode::Apply {
        std::fs::remove_file(path).map_err(io_err("remove", path))?;
    }
    report.removed.push(path.to_path_buf());
    Ok(())
}

fn remove_dir(dir: &Path, mode: Mode) -> Result<(), DatasetError> {
    if mode == Mode::Apply {
        std::fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
    }
    Ok(())
}

fn remove_tmp_files(
    dir: &Path,
    mode: Mode,
    report: &mut RecoveryReport,
) -> Result<(), DatasetError> {
    for path in list_sorted(dir, "", ".tmp")? {
        remove_file(&path, mode, report)?;
    }
    Ok(())
}

/// Recovers `root` after a crash; see the module docs.
pub fn recover(root: &Path) -> Result<RecoveryReport, DatasetError> {
    run(root, Mode::Apply)
}

/// What [`recover`] would do to `root`, without changing anything. Clean when the dataset
/// was closed cleanly.
pub fn inspect(root: &Path) -> Result<RecoveryReport, DatasetError> {
    run(root, Mode::Inspect)
}

fn run(root: &Path, mode: Mode) -> Result<RecoveryReport, DatasetError> {
    let mut report = RecoveryReport::default();
    Info::load(root)?;
    remove_tmp_files(&root.join("meta"), mode, &mut report)?;
    for dir in [
        root.join("meta/episodes"),
        root.join("data"),
        root.join("staging"),
    ] {
        for sub in list_sorted(&dir, "", "")? {
            if sub.is_dir() {
                remove_tmp_files(&sub, mode, &mut report)?;
            }
        }
    }
    let mut state = Committed::load(root)?;
    let staged = list_sorted(&root.join("staging"), "episode-", "")?;
    let uncommitted = |d: &PathBuf| staging_index(d).is_none_or(|i| i >= state.info.total_episodes);
    if staged.iter().any(uncommitted) {
        // A crash mid-commit may have left rows or files the meta never recorded.
        cut_uncommitted_data(root, &state, mode, &mut report)?;
    }
    let (s, a) = state.info.dims();
    for dir in staged {
        if staging_index(&dir).is_some_and(|i| i < state.info.total_episodes) {
            remove_dir(&dir, mode)?;
            report.removed.push(dir);
            continue;
        }
        let (cols, meta, dropped) = read_staged(&dir, s, a)?;
        let kept = list_sorted(&dir, "part-", ".parquet")?.len() - dropped.len();
        if cols.len() == 0 {
            let why = match dropped.first() {
                Some((path, why)) => format!("no part decodes; {} : {why}", path.display()),
                None => "no parts were flushed".to_string(),
            };
            remove_dir(&dir, mode)?;
            report.dropped.push((dir, why));
            continue;
        }
        let frames = cols.len() as i64;
        let episode_index = match mode {
            Mode::Apply => {
                let task = meta.task.unwrap_or_else(|| "unknown".to_string());
                let calibration = meta.calibration.as_deref();
                commit_episode(root, &mut state, cols, &task, calibration, true)?.episode_index
            }
            Mode::Inspect => state.info.total_episodes + report.recovered.len() as i64,
        };
        remove_dir(&dir, mode)?;
        report.recovered.push(RecoveredEpisode {
            episode_index,
            staging: dir,
            frames,
            parts_kept: kept,
            parts_dropped: dropped,
        });
    }
    Ok(report)
}

/// Removes data files past the last committed one and cuts uncommitted rows off the last.
fn cut_uncommitted_data(
    root: &Path,
    state: &Committed,
    mode: Mode,
    report: &mut RecoveryReport,
) -> Result<(), DatasetError> {
    let last = state
        .episodes
        .last()
        .map(|e| (e.data_chunk_index, e.data_file_index));
    for chunk_dir in list_sorted(&root.join("data"), "chunk-", "")? {
        for path in list_sorted(&chunk_dir, "file-", ".parquet")? {
            let Some((chunk, file)) = parse_data_path(&path) else {
                continue;
            };
            if last.is_none_or(|l| (chunk, file) > l) {
                remove_file(&path, mode, report)?;
            }
        }
    }
    if let Some((chunk, file)) = last {
        let path = data_path(root, chunk, file);
        let rows = open_parquet(&path)?.metadata().file_metadata().num_rows();
        if rows != state.rows_in(chunk, file) {
            if mode == Mode::Apply {
                rewrite_data_file(root, state, chunk, file, None)?;
            }
            report.trimmed.push(path);
        }
    }
    Ok(())
}

fn staging_index(dir: &Path) -> Option<i64> {
    dir.file_name()?
        .to_str()?
        .strip_prefix("episode-")?
        .parse()
        .ok()
}

fn parse_data_path(path: &Path) -> Option<(i64, i64)> {
    let file = path
        .file_name()?
        .to_str()?
        .strip_prefix("file-")?
        .strip_suffix(".parquet")?;
    let chunk = path
        .parent()?
        .file_name()?
        .to_str()?
        .strip_prefix("chunk-")?;
    Some((chunk.parse().ok()?, file.parse().ok()?))
}
