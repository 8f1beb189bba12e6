//! Damaged files: clear errors naming the file; validation finds injected errors and says
//! where (file, row, column).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use handful::dataset::{DatasetError, DatasetReader, DatasetWriter, validate};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::record;

const DATA: &str = "data/chunk-000/file-000.parquet";
const EPISODES: &str = "meta/episodes/chunk-000/file-000.parquet";

/// Rewrites `path` in place with column `name` replaced by `f(old)`.
fn rewrite_column(path: &Path, name: &str, f: impl Fn(&ArrayRef) -> ArrayRef) {
    let file = std::fs::File::open(path).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let col = if field.name() == name {
            f(col)
        } else {
            col.clone()
        };
        fields.push(Field::new(field.name(), col.data_type().clone(), true));
        cols.push(col);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn ints(col: &ArrayRef) -> Vec<i64> {
    col.as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), true, 0, &[20, 30, 25]);
    dir
}

#[test]
fn truncated_or_garbage_data_file_is_an_error_naming_it() {
    for damage in [
        |b: &[u8]| b[..b.len() / 2].to_vec(),
        |_: &[u8]| b"not a parquet file".to_vec(),
    ] {
        let dir = dataset();
        let path = dir.path().join(DATA);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, damage(&bytes)).unwrap();
        let err = DatasetReader::open(dir.path())
            .err()
            .expect("a damaged data file must not open");
        assert!(matches!(err, DatasetError::Parquet { .. }), "{err}");
        assert!(format!("{err}").contains(DATA), "{err}");
        assert!(DatasetWriter::open_append(dir.path()).is_err());
    }
}

#[test]
fn malformed_info_json_is_an_error_naming_it() {
    let cases: [(&str, &str); 3] = [
        ("{\"codebase_version\": \"v3.0\", ", "EOF"),
        ("[]", "expected struct Info"),
        ("", "EOF"),
    ];
    for (text, why) in cases {
        let dir = dataset();
        std::fs::write(dir.path().join("meta/info.json"), text).unwrap();
        let err = DatasetReader::open(dir.path())
            .err()
            .expect("malformed info.json must not open");
        let msg = format!("{err}");
        assert!(msg.contains("meta/info.json") && msg.contains(why), "{msg}");
        assert!(validate(dir.path()).is_err());
    }
    let dir = dataset();
    let info = std::fs::read_to_string(dir.path().join("meta/info.json")).unwrap();
    std::fs::write(
        dir.path().join("meta/info.json"),
        info.replace("\"v3.0\"", "\"v2.1\""),
    )
    .unwrap();
    let msg = format!("{}", DatasetReader::open(dir.path()).err().unwrap());
    assert!(
        msg.contains("meta/info.json") && msg.contains("v2.1"),
        "{msg}"
    );
}

#[test]
fn validation_finds_a_wrong_column_type() {
    let dir = dataset();
    rewrite_column(&dir.path().join(DATA), "task_index", |c| {
        Arc::new(Int32Array::from_iter_values(
            ints(c).into_iter().map(|v| v as i32),
        ))
    });
    let report = validate(dir.path()).unwrap();
    let p = report
        .problems
        .iter()
        .find(|p| p.column.as_deref() == Some("task_index"))
        .expect("found");
    assert!(p.file.ends_with(DATA) && p.message.contains("Int32"), "{p}");
    let err = DatasetReader::open(dir.path())
        .unwrap()
        .frames()
        .find_map(Result::err)
        .expect("reading fails");
    assert!(format!("{err}").contains("task_index"), "{err}");
}

#[test]
fn validation_finds_a_non_contiguous_index() {
    let dir = dataset();
    rewrite_column(&dir.path().join(DATA), "index", |c| {
        let mut v = ints(c);
        v[33] += 5;
        Arc::new(Int64Array::from(v))
    });
    let report = validate(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(
        (p.row, p.column.as_deref()),
        (Some(33), Some("index")),
        "{p}"
    );
    assert!(p.message.contains("contiguous"), "{p}");
}

#[test]
fn validation_finds_an_episode_length_mismatch() {
    let dir = dataset();
    rewrite_column(&dir.path().join(EPISODES), "length", |c| {
        let mut v = ints(c);
        v[1] = 29;
        Arc::new(Int64Array::from(v))
    });
    let report = validate(dir.path()).unwrap();
    let p = report
        .problems
        .iter()
        .find(|p| p.column.as_deref() == Some("length"))
        .expect("found");
    assert!(p.file.ends_with(EPISODES) && p.row == Some(1), "{p}");
    assert!(p.message.contains("29") && p.message.contains("30"), "{p}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.file.ends_with(DATA) && p.message.contains("rows")),
        "{:#?}",
        report.problems
    );
}
