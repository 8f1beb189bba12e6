//! File-system primitives of the dataset: atomic replacement (temp + fsync + rename + fsync of
//! the directory), parquet write and read with errors naming the file. Nothing here ever
//! truncates or rewrites a file in place.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::DatasetError;

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> DatasetError {
    let path = path.to_path_buf();
    move |source| DatasetError::Io {
        action,
        path,
        source,
    }
}

pub(crate) fn pq_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(parquet::errors::ParquetError) -> DatasetError {
    let path = path.to_path_buf();
    move |source| DatasetError::Parquet {
        action,
        path,
        source,
    }
}

/// `path` with `.tmp` appended: the name a file is written under before its rename.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

pub(crate) fn create_dir_all(dir: &Path) -> Result<(), DatasetError> {
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))
}

/// Makes a rename or a new entry in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), DatasetError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Renames the fsynced `tmp` over `path` and makes the rename durable.
fn commit(tmp: &Path, path: &Path) -> Result<(), DatasetError> {
    std::fs::rename(tmp, path).map_err(io_err("rename into place", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Replaces `path` with `bytes` atomically: readers see the old file or the new, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    if let Some(dir) = path.parent() {
        create_dir_all(dir)?;
    }
    let tmp = tmp_path(path);
    let result = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(io_err("write", &tmp));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    commit(&tmp, path)
}

/// Writes `groups` to `path` atomically, each entry as its own row group.
pub(crate) fn write_parquet_atomic(
    path: &Path,
    schema: SchemaRef,
    groups: &[Vec<RecordBatch>],
    metadata: Vec<KeyValue>,
) -> Result<(), DatasetError> {
    let mut out = ParquetOut::create(path, schema, metadata)?;
    for group in groups {
        for batch in group {
            out.write(batch)?;
        }
        out.end_group()?;
    }
    out.finish()
}

/// A parquet file being written under a temporary name; [`ParquetOut::finish`] fsyncs and
/// renames it into place. Dropped unfinished, the temporary file is removed.
pub(crate) struct ParquetOut {
    writer: Option<ArrowWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
}

impl ParquetOut {
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        metadata: Vec<KeyValue>,
    ) -> Result<Self, DatasetError> {
        if let Some(dir) = path.parent() {
            create_dir_all(dir)?;
        }
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata(if metadata.is_empty() {
                None
            } else {
                Some(metadata)
            })
            .build();
        let writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(pq_err("written", &tmp))?;
        Ok(Self {
            writer: Some(writer),
            tmp,
            path: path.to_path_buf(),
        })
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<File>, DatasetError> {
        self.writer
            .as_mut()
            .ok_or(DatasetError::State("parquet writer already finished"))
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), DatasetError> {
        let tmp = self.tmp.clone();
        self.writer()?.write(batch).map_err(pq_err("written", &tmp))
    }

    /// Closes the current row group.
    pub fn end_group(&mut self) -> Result<(), DatasetError> {
        let tmp = self.tmp.clone();
        self.writer()?.flush().map_err(pq_err("written", &tmp))
    }

    pub fn finish(mut self) -> Result<(), DatasetError> {
        let writer = self
            .writer
            .take()
            .ok_or(DatasetError::State("parquet writer already finished"))?;
        let file = writer.into_inner().map_err(pq_err("written", &self.tmp))?;
        file.sync_all().map_err(io_err("fsync", &self.tmp))?;
        drop(file);
        commit(&self.tmp, &self.path)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for ParquetOut {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Runs `decode`, a call into the parquet/arrow decoders over the bytes of `path`, and
/// turns a panic in it into [`DatasetError::DecoderPanicked`] naming the file.
///
/// Those crates are not ours and can panic on hostile bytes: fuzzing (`fuzz/`, target
/// `dataset`) found parquet 57 panicking while decoding a file's footer metadata. A bad
/// file must give a clear error, never a panic, so every call that decodes a file's
/// bytes goes through here: opening (footer), building a reader (row groups, page
/// indexes) and each record batch ([`Batches`]). Unwinding needs the default
/// `panic = "unwind"`, which the release profile keeps. The panic message still goes
/// to stderr through the panic hook.
pub(crate) fn contain<T>(
    path: &Path,
    decode: impl FnOnce() -> Result<T, DatasetError>,
) -> Result<T, DatasetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(DatasetError::DecoderPanicked {
            path: path.to_path_buf(),
            message,
        })
    })
}

/// Opens a parquet file for streaming (its footer decoded, panics contained).
pub(crate) fn open_parquet(
    path: &Path,
) -> Result<ParquetRecordBatchReaderBuilder<File>, DatasetError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    contain(path, || {
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err("read", path))
    })
}

/// Builds the reader of `builder` (opened from `path` by [`open_parquet`]).
pub(crate) fn batches(
    builder: ParquetRecordBatchReaderBuilder<File>,
    path: &Path,
) -> Result<Batches, DatasetError> {
    let reader = contain(path, || builder.build().map_err(pq_err("read", path)))?;
    Ok(Batches {
        reader,
        path: path.to_path_buf(),
    })
}

/// The record batches of one parquet file; decoding errors and decoder panics name it.
pub(crate) struct Batches {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = &self.path;
        let reader = &mut self.reader;
        contain(path, || {
            Ok(reader.next().map(|batch| {
                batch.map_err(|e| DatasetError::Parquet {
                    action: "decoded",
                    path: path.clone(),
                    source: e.into(),
                })
            }))
        })
        .unwrap_or_else(|e| Some(Err(e)))
    }
}

/// Reads a whole (small) parquet file.
pub(crate) fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, DatasetError> {
    batches(open_parquet(path)?, path)?.collect()
}

/// `dir`'s entries whose names start with `prefix` and end with `suffix`, sorted by name.
pub(crate) fn list_sorted(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<PathBuf>, DatasetError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(suffix) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}
