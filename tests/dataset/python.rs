//! The files we write, read by pyarrow and pandas (tests/python/check_dataset.py).
//! Needs the venv from `bash models/setup.sh`; without it this test fails, never skips.

use std::path::Path;
use std::process::Command;

use handful::dataset::DatasetWriter;

use super::{frame, record};

#[test]
fn pyarrow_and_pandas_read_the_documented_schema() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash models/setup.sh` once",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), true, 0, &[40, 15, 33]);
    // A recovered episode too: staged, never ended.
    let mut w = DatasetWriter::open_append(dir.path()).unwrap();
    w.begin_episode("recovered task").unwrap();
    for i in 0..30 {
        w.push(&frame(3, i)).unwrap();
    }
    std::mem::forget(w);
    DatasetWriter::open_append(dir.path())
        .unwrap()
        .close()
        .unwrap();
    let out = Command::new(&python)
        .arg(repo.join("tests/python/check_dataset.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "check_dataset.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: 4 episodes, 113 frames"), "{stdout}");
}
