//! [`DatasetWriter`]: records episodes frame by frame. `push` copies the frame into a
//! preallocated columnar buffer (no allocation once warm) and, every half second of frames
//! (by count at the nominal rate, or by `host_time_us`), flushes it as a staged, fsynced part:
//! a `kill -9` loses at most the last half second. `end_episode` commits or discards.
//! Called from the recorder thread, never from the control thread: flushes do file I/O.

use std::path::{Path, PathBuf};

use super::DatasetError;
use super::columns::{Columns, frame_schema};
use super::commit::{
    Committed, commit_episode, part_metadata, part_path, read_staged, staging_dir,
};
use super::fsio::{create_dir_all, io_err, sync_dir, write_parquet_atomic};
use super::meta::{EpisodeMeta, Info, info_path};
use super::recover::{RecoveryReport, recover};
use super::{DatasetSpec, Frame};

/// Staged parts are written at least this often, in frame time.
pub const FLUSH_INTERVAL_US: i64 = 500_000;

struct Current {
    task: String,
    calibration: Option<String>,
    recovered: bool,
    task_index: i64,
    dir: PathBuf,
    frames: i64,
    parts: u32,
    last_flush_host_us: Option<i64>,
}

/// Appends episodes to a LeRobot v3 dataset. See the module docs for the files.
pub struct DatasetWriter {
    root: PathBuf,
    state: Committed,
    current: Option<Current>,
    buffer: Columns,
    flush_every_frames: usize,
    failed: bool,
    recovery: RecoveryReport,
    /// SHA-256 of the calibration new episodes are recorded under.
    calibration: Option<String>,
}

impl DatasetWriter {
    /// Creates a new, empty dataset at `root` (which must not hold one already).
    pub fn create(root: &Path, spec: DatasetSpec) -> Result<Self, DatasetError> {
        if info_path(root).exists() {
            return Err(DatasetError::AlreadyExists {
                path: info_path(root),
            });
        }
        if spec.fps == 0 || spec.state_names.is_empty() || spec.action_names.is_empty() {
            return Err(DatasetError::State(
                "a dataset needs fps > 0 and at least one state and one action",
            ));
        }
        create_dir_all(root)?;
        let state = Committed::new(&spec);
        state.save_all(root)?;
        Ok(Self::with_state(root, state, RecoveryReport::default()))
    }

    /// Opens an existing dataset to add episodes, first recovering what a crash left behind.
    /// One another tool wrote gains the features it lacks (its frames read back with their
    /// defaults); one with features handful does not record is refused.
    pub fn open_append(root: &Path) -> Result<Self, DatasetError> {
        Info::load(root)?.check_known_features(root)?;
        let recovery = recover(root)?;
        let mut state = Committed::load(root)?;
        state.check_data_files(root, false, false)?;
        state.info.add_missing_features();
        Ok(Self::with_state(root, state, recovery))
    }

    fn with_state(root: &Path, state: Committed, recovery: RecoveryReport) -> Self {
        let (s, a) = state.info.dims();
        let every = (state.info.fps as i64 * FLUSH_INTERVAL_US / 1_000_000).max(1) as usize;
        let sha = &state.info.handful.provenance.calibration_sha256;
        let calibration = (!sha.is_empty()).then(|| sha.clone());
        Self {
            root: root.to_path_buf(),
            state,
            current: None,
            buffer: Columns::with_capacity(s, a, every),
            flush_every_frames: every,
            failed: false,
            recovery,
            calibration,
        }
    }

    /// Turns periodic flushing off (merging needs no crash safety within an episode).
    pub(crate) fn without_periodic_flush(mut self) -> Self {
        self.flush_every_frames = usize::MAX;
        self
    }

    /// What opening recovered or dropped.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub fn info(&self) -> &Info {
        &self.state.info
    }

    pub fn episodes(&self) -> &[EpisodeMeta] {
        &self.state.episodes
    }

    /// New episodes are recorded under the calibration `text` (SHA-256 `sha256`): each
    /// names it in the episodes table, and a calibration other than the dataset's first is
    /// kept in `info.json` (`handful.calibrations`) with the next commit.
    pub fn set_calibration(&mut self, sha256: &str, text: &str) {
        let handful = &mut self.state.info.handful;
        if handful.provenance.calibration_sha256 != sha256 {
            handful
                .calibrations
                .entry(sha256.to_string())
                .or_insert_with(|| text.to_string());
        }
        self.calibration = Some(sha256.to_string());
    }

    /// Starts an episode of `task`.
    pub fn begin_episode(&mut self, task: &str) -> Result<(), DatasetError> {
        let calibration = self.calibration.clone();
        self.begin_episode_as(task, calibration, false)
    }

    /// Starts an episode of `task` that was recorded under `calibration` and, if
    /// `recovered`, rebuilt after a crash (a merge copying another dataset's episode).
    pub fn begin_episode_as(
        &mut self,
        task: &str,
        calibration: Option<String>,
        recovered: bool,
    ) -> Result<(), DatasetError> {
        if self.current.is_some() {
            return Err(DatasetError::State(
                "begin_episode: an episode is already in progress",
            ));
        }
        if self.failed {
            return Err(DatasetError::State(
                "an episode failed to commit; reopen the dataset with open_append to recover it",
            ));
        }
        let dir = staging_dir(&self.root, self.state.episodes.len() as i64);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("remove stale staging", &dir))?;
        }
        create_dir_all(&dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        self.buffer.clear();
        self.current = Some(Current {
            task: task.to_string(),
            calibration,
            recovered,
            task_index: self.state.task_index(task),
            dir,
            frames: 0,
            parts: 0,
            last_flush_host_us: None,
        });
        Ok(())
    }

    /// Appends one frame; flushes a staged part every half second of frames.
    pub fn push(&mut self, frame: &Frame) -> Result<(), DatasetError> {
        let Some(cur) = self.current.as_mut() else {
            return Err(DatasetError::State(
                "push: no episode in progress; call begin_episode",
            ));
        };
        let (s, a) = (self.buffer.state_len, self.buffer.action_len);
        if frame.state.len() != s {
            return Err(DatasetError::Shape {
                what: "state",
                expected: s,
                found: frame.state.len(),
            });
        }
        if frame.action.len() != a {
            return Err(DatasetError::Shape {
                what: "action",
                expected: a,
                found: frame.action.len(),
            });
        }
        let episode_index = self.state.episodes.len() as i64;
        let from = self.state.episodes.last().map_or(0, |e| e.dataset_to_index);
        let timestamp_s = cur.frames as f32 / self.state.info.fps as f32;
        let indices = [cur.frames, episode_index, from + cur.frames, cur.task_index];
        self.buffer.push_frame(frame, timestamp_s, indices);
        cur.frames += 1;
        let last = *cur.last_flush_host_us.get_or_insert(frame.host_time_us);
        let due_by_time = frame.host_time_us - last >= FLUSH_INTERVAL_US;
        if self.buffer.len() >= self.flush_every_frames || due_by_time {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered frames as a staged part (temp + fsync + rename + fsync dir).
    pub fn flush(&mut self) -> Result<(), DatasetError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if self.buffer.len() == 0 {
            return Ok(());
        }
        let path = part_path(&cur.dir, cur.parts);
        let (s, a) = (self.buffer.state_len, self.buffer.action_len);
        let batch = self.buffer.to_batch();
        write_parquet_atomic(
            &path,
            frame_schema(s, a),
            &[vec![batch]],
            part_metadata(&cur.task, cur.calibration.as_deref()),
        )?;
        cur.parts += 1;
        cur.last_flush_host_us = self.buffer.host_time_us.last().copied();
        self.buffer.clear();
        Ok(())
    }

    /// Ends the episode: `keep` commits it (an empty one is refused and dropped), otherwise
    /// it is discarded with its staged parts. On an error the committed episodes are intact
    /// and the staged parts stay for [`DatasetWriter::open_append`] to recover.
    pub fn end_episode(&mut self, keep: bool) -> Result<Option<EpisodeMeta>, DatasetError> {
        if self.current.is_none() {
            return Err(DatasetError::State("end_episode: no episode in progress"));
        }
        if keep && let Err(e) = self.flush() {
            self.current = None;
            self.failed = true;
            return Err(e);
        }
        let Some(cur) = self.current.take() else {
            return Err(DatasetError::State("end_episode: no episode in progress"));
        };
        self.buffer.clear();
        if !keep || cur.frames == 0 {
            std::fs::remove_dir_all(&cur.dir).map_err(io_err("remove staging", &cur.dir))?;
            if keep {
                return Err(DatasetError::State(
                    "end_episode: the episode has no frames; dropped",
                ));
            }
            return Ok(None);
        }
        let result = self.commit_staged(&cur);
        if result.is_err() {
            self.failed = true;
        }
        result.map(Some)
    }

    fn commit_staged(&mut self, cur: &Current) -> Result<EpisodeMeta, DatasetError> {
        let (s, a) = (self.buffer.state_len, self.buffer.action_len);
        let (cols, _, dropped) = read_staged(&cur.dir, s, a)?;
        if let Some((path, why)) = dropped.into_iter().next() {
            return Err(DatasetError::Malformed { path, message: why });
        }
        let ep = commit_episode(
            &self.root,
            &mut self.state,
            cols,
            &cur.task,
            cur.calibration.as_deref(),
            cur.recovered,
        )?;
        std::fs::remove_dir_all(&cur.dir).map_err(io_err("remove staging", &cur.dir))?;
        Ok(ep)
    }

    /// Ends the dataset: discards an unfinished episode (as `end_episode(false)`).
    pub fn close(mut self) -> Result<(), DatasetError> {
        if self.current.is_some() {
            self.end_episode(false)?;
        }
        Ok(())
    }
}
