//! Merging datasets: re-indexed episodes, frames and tasks; provenance kept; mismatches refused.

use handful::dataset::{DatasetError, DatasetReader, DatasetSpec, DatasetWriter, merge, validate};

use super::{frame, record, spec};

#[test]
fn merge_reindexes_and_keeps_provenance() {
    let (a, b, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let wa = record(a.path(), true, 1, &[12, 7]); // tasks: balance, swing up
    let mut other = spec();
    other.provenance.model_sha256 = Some("cd".repeat(32));
    let mut w = DatasetWriter::create(b.path(), other.clone()).unwrap();
    w.begin_episode("balance").unwrap();
    for i in 0..9 {
        w.push(&frame(5, i)).unwrap();
    }
    w.end_episode(true).unwrap();
    w.close().unwrap();
    let out_root = out.path().join("merged");
    let info = merge(&[a.path(), b.path()], &out_root).unwrap();
    assert_eq!(
        (info.total_episodes, info.total_frames, info.total_tasks),
        (3, 28, 2)
    );
    assert_eq!(info.handful.sources.len(), 2);
    assert_eq!(info.handful.sources[1].first_episode, 2);
    assert_eq!(info.handful.sources[1].handful.provenance, other.provenance);
    let r = DatasetReader::open(&out_root).unwrap();
    assert_eq!(r.tasks(), ["balance", "swing up"]);
    let last: Vec<_> = r.episode_frames(2).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        (last[0].index, last[0].episode_index, last[0].task_index),
        (19, 2, 0)
    );
    assert_eq!(last[8].frame, frame(5, 8));
    let first: Vec<_> = r.episode_frames(1).unwrap().map(Result::unwrap).collect();
    assert_eq!(first[6].frame, wa[1][6]);
    assert_eq!(first[6].task_index, 1);
    let report = validate(&out_root).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
}

#[test]
fn merge_refuses_different_fps_or_features() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    record(a.path(), true, 0, &[3]);
    let faster = DatasetSpec { fps: 100, ..spec() };
    DatasetWriter::create(b.path(), faster)
        .unwrap()
        .close()
        .unwrap();
    let mut wider = spec();
    wider.action_names.push("torque".into());
    DatasetWriter::create(c.path(), wider)
        .unwrap()
        .close()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = merge(&[a.path(), b.path()], &out.path().join("x")).unwrap_err();
    assert!(
        matches!(&err, DatasetError::Incompatible { what: "fps", .. }),
        "{err}"
    );
    assert!(format!("{err}").contains(&b.path().display().to_string()));
    let err = merge(&[a.path(), c.path()], &out.path().join("y")).unwrap_err();
    assert!(
        matches!(
            &err,
            DatasetError::Incompatible {
                what: "features",
                ..
            }
        ),
        "{err}"
    );
}
