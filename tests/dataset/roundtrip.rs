//! Write, read back bit for bit, discard, append, and a full disk.

use handful::dataset::{DatasetError, DatasetReader, DatasetWriter, validate};

use super::{FPS, frame, record, spec};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn three_episodes_read_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let written = record(dir.path(), true, 0, &[40, 1, 77]);
    let r = DatasetReader::open(dir.path()).unwrap();
    assert!(
        r.pending_recovery().is_clean(),
        "{:?}",
        r.pending_recovery()
    );
    let info = r.info();
    assert_eq!((info.codebase_version.as_str(), info.fps), ("v3.0", FPS));
    assert_eq!(
        (info.total_episodes, info.total_frames, info.total_tasks),
        (3, 118, 2)
    );
    assert_eq!(info.splits["train"], "0:3");
    assert_eq!(
        info.features["observation.state"].names.as_ref().unwrap()[2],
        "theta"
    );
    assert_eq!(info.handful.provenance, spec().provenance);
    assert_eq!(r.tasks(), ["swing up", "balance"]);
    let mut global = 0;
    for (e, frames) in written.iter().enumerate() {
        let ep = &r.episodes()[e];
        assert_eq!(
            (ep.episode_index, ep.length, ep.dataset_from_index),
            (e as i64, frames.len() as i64, global)
        );
        assert!(!ep.recovered);
        let read: Vec<_> = r
            .episode_frames(e as i64)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(read.len(), frames.len());
        for (i, (got, want)) in read.iter().zip(frames).enumerate() {
            assert_eq!(
                bits(&got.frame.state),
                bits(&want.state),
                "episode {e} frame {i}"
            );
            assert_eq!(bits(&got.frame.action), bits(&want.action));
            assert_eq!(got.frame.reward.to_bits(), want.reward.to_bits());
            assert_eq!(&got.frame, want);
            assert_eq!(
                (got.frame_index, got.episode_index, got.index),
                (i as i64, e as i64, global + i as i64)
            );
            assert_eq!(got.task_index, (e % 2) as i64);
            assert_eq!(got.timestamp_s, i as f32 / FPS as f32);
        }
        global += frames.len() as i64;
    }
    let all: Vec<_> = r.frames().map(Result::unwrap).collect();
    assert_eq!(all.len(), 118);
    assert!(all.iter().enumerate().all(|(i, f)| f.index == i as i64));
    let stats = &r.episodes()[0].stats["observation.state"];
    assert_eq!(stats.count, vec![40]);
    assert_eq!(stats.max[0], f64::from(written[0][39].state[0]));
    let report = validate(dir.path()).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!((report.episodes, report.frames), (3, 118));
}

#[test]
fn discarded_episode_leaves_no_trace_and_append_continues_the_indices() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), true, 0, &[10]);
    let mut w = DatasetWriter::open_append(dir.path()).unwrap();
    w.begin_episode("oops").unwrap();
    for i in 0..60 {
        w.push(&frame(9, i)).unwrap(); // past a flush: parts are on disk
    }
    assert!(
        dir.path()
            .join("staging/episode-000001/part-0000.parquet")
            .exists()
    );
    assert_eq!(w.end_episode(false).unwrap(), None);
    assert!(!dir.path().join("staging/episode-000001").exists());
    w.close().unwrap();
    record(dir.path(), false, 1, &[5]);
    let r = DatasetReader::open(dir.path()).unwrap();
    assert_eq!(r.info().total_episodes, 2);
    assert_eq!(
        r.tasks(),
        ["swing up", "balance"],
        "the discarded task was never committed"
    );
    let last: Vec<_> = r.episode_frames(1).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        (last[0].index, last[0].episode_index, last.len()),
        (10, 1, 5)
    );
    assert!(validate(dir.path()).unwrap().is_valid());
}

#[test]
fn misuse_gives_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = DatasetWriter::create(dir.path(), spec()).unwrap();
    assert!(matches!(w.push(&frame(0, 0)), Err(DatasetError::State(_))));
    w.begin_episode("t").unwrap();
    let mut bad = frame(0, 0);
    bad.state.pop();
    let err = w.push(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::Shape {
                what: "state",
                expected: 4,
                found: 3
            }
        ),
        "{err}"
    );
    assert!(w.end_episode(true).is_err(), "an empty episode is refused");
    assert!(matches!(
        DatasetWriter::create(dir.path(), spec()),
        Err(DatasetError::AlreadyExists { .. })
    ));
}

/// A write that hits a full disk (`/dev/full` gives ENOSPC) is an error naming the file; the
/// completed episodes stay readable and the dataset stays valid.
#[test]
fn full_disk_is_a_clear_error_and_completed_episodes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let written = record(dir.path(), true, 0, &[30, 30]);
    let mut w = DatasetWriter::open_append(dir.path()).unwrap();
    w.begin_episode("swing up").unwrap();
    let part_tmp = dir
        .path()
        .join("staging/episode-000002/part-0000.parquet.tmp");
    std::os::unix::fs::symlink("/dev/full", &part_tmp).unwrap();
    let err = (0..100)
        .map(|i| w.push(&frame(2, i)))
        .find_map(Result::err)
        .expect("the flush must fail");
    let text = format!("{err}");
    assert!(text.contains("part-0000.parquet.tmp"), "{text}");
    let mut source: &dyn std::error::Error = &err;
    while let Some(s) = source.source() {
        source = s;
    }
    assert!(format!("{source}").contains("No space left"), "{source}");
    drop(w);
    let r = DatasetReader::open(dir.path()).unwrap();
    assert_eq!(r.info().total_episodes, 2);
    let all: Vec<_> = r.frames().map(Result::unwrap).collect();
    assert_eq!(all.len(), 60);
    assert_eq!(all[59].frame, written[1][29]);
    // What the failed write left is all validation finds, and recovery clears it.
    let report = validate(dir.path()).unwrap();
    assert!(
        !report.problems.is_empty()
            && report
                .problems
                .iter()
                .all(|p| p.file.starts_with(dir.path().join("staging"))
                    && p.message.contains("`handful dataset recover`")),
        "{:#?}",
        report.problems
    );
    handful::dataset::recover(dir.path()).unwrap();
    assert!(validate(dir.path()).unwrap().is_valid());
}
