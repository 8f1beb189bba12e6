//! [`DatasetReader`]: opens a dataset read-only and streams its committed frames, one record
//! batch of one data file at a time (never the whole dataset in memory), all of them or one
//! episode's, located through the episodes table's global frame ranges. What a crash left
//! (staged episodes, uncommitted rows) is reported by [`DatasetReader::pending_recovery`]
//! and not read: `handful dataset recover` commits it.

use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

use super::DatasetError;
use super::columns::{Columns, RecordedFrame};
use super::commit::Committed;
use super::fsio::{Batches, batches, open_parquet};
use super::meta::{EpisodeMeta, Info, data_path};
use super::recover::{RecoveryReport, inspect};

/// Rows decoded per record batch while streaming.
const BATCH_ROWS: usize = 1024;

/// A dataset opened for reading.
pub struct DatasetReader {
    root: PathBuf,
    state: Committed,
    pending: RecoveryReport,
}

impl DatasetReader {
    /// Opens `root` without changing it: the committed episodes only.
    pub fn open(root: &Path) -> Result<Self, DatasetError> {
        let pending = inspect(root)?;
        let state = Committed::load(root)?;
        // Rows a crash left after the committed ones are not read (frames are located by
        // the episodes table); every other count must match.
        let trailing = !pending.trimmed.is_empty();
        state.check_data_files(root, true, trailing)?;
        if !pending.is_clean() {
            tracing::warn!(
                dataset = %root.display(),
                staged_episodes = pending.recovered.len(),
                "the dataset has what a crash left (read: the committed episodes only); \
                 `handful dataset recover` commits it"
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            state,
            pending,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn info(&self) -> &Info {
        &self.state.info
    }

    pub fn episodes(&self) -> &[EpisodeMeta] {
        &self.state.episodes
    }

    /// Task strings by `task_index`.
    pub fn tasks(&self) -> &[String] {
        &self.state.tasks
    }

    /// What `handful dataset recover` would do (clean for a dataset closed cleanly).
    pub fn pending_recovery(&self) -> &RecoveryReport {
        &self.pending
    }

    /// Every frame in `index` order.
    pub fn frames(&self) -> FrameIter {
        let mut segments: Vec<Segment> = Vec::new();
        for ep in &self.state.episodes {
            let key = (ep.data_chunk_index, ep.data_file_index);
            match segments.last_mut() {
                Some(seg) if seg.key == key => seg.take += ep.length as usize,
                _ => segments.push(Segment {
                    key,
                    skip: 0,
                    take: ep.length as usize,
                }),
            }
        }
        self.iter(segments)
    }

    /// The frames of episode `episode_index`, or an error if there is no such episode.
    pub fn episode_frames(&self, episode_index: i64) -> Result<FrameIter, DatasetError> {
        let ep = self
            .state
            .episodes
            .iter()
            .find(|e| e.episode_index == episode_index)
            .ok_or(DatasetError::State("episode_frames: no such episode"))?;
        let key = (ep.data_chunk_index, ep.data_file_index);
        let file_start = self
            .state
            .episodes
            .iter()
            .filter(|e| (e.data_chunk_index, e.data_file_index) == key)
            .map(|e| e.dataset_from_index)
            .min()
            .unwrap_or(ep.dataset_from_index);
        let skip = (ep.dataset_from_index - file_start) as usize;
        Ok(self.iter(vec![Segment {
            key,
            skip,
            take: ep.length as usize,
        }]))
    }

    fn iter(&self, mut segments: Vec<Segment>) -> FrameIter {
        segments.reverse();
        let (s, a) = self.state.info.dims();
        FrameIter {
            root: self.root.clone(),
            dims: (s, a),
            segments,
            reader: None,
            path: PathBuf::new(),
            batch: Columns::with_capacity(s, a, 0),
            pos: 0,
            failed: false,
        }
    }
}

struct Segment {
    key: (i64, i64),
    skip: usize,
    take: usize,
}

/// Streams frames; yields an error (naming the file) and then stops if a file is bad.
pub struct FrameIter {
    root: PathBuf,
    dims: (usize, usize),
    /// Remaining segments, last first.
    segments: Vec<Segment>,
    reader: Option<Batches>,
    path: PathBuf,
    batch: Columns,
    pos: usize,
    failed: bool,
}

impl FrameIter {
    fn open_next(&mut self) -> Result<bool, DatasetError> {
        let Some(seg) = self.segments.pop() else {
            return Ok(false);
        };
        self.path = data_path(&self.root, seg.key.0, seg.key.1);
        let selection = RowSelection::from(vec![
            RowSelector::skip(seg.skip),
            RowSelector::select(seg.take),
        ]);
        let builder = open_parquet(&self.path)?
            .with_batch_size(BATCH_ROWS)
            .with_row_selection(selection);
        let reader = batches(builder, &self.path)?;
        self.reader = Some(reader);
        Ok(true)
    }

    fn next_batch(&mut self) -> Result<bool, DatasetError> {
        loop {
            if let Some(reader) = self.reader.as_mut() {
                match reader.next() {
                    Some(Ok(batch)) => {
                        self.batch =
                            Columns::from_batch(&batch, self.dims.0, self.dims.1, &self.path)?;
                        self.pos = 0;
                        return Ok(true);
                    }
                    Some(Err(e)) => return Err(e),
                    None => self.reader = None,
                }
            }
            if !self.open_next()? {
                return Ok(false);
            }
        }
    }
}

impl Iterator for FrameIter {
    type Item = Result<RecordedFrame, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.pos >= self.batch.len() {
            match self.next_batch() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        self.pos += 1;
        Some(Ok(self.batch.frame(self.pos - 1)))
    }
}
