//! Crash safety: a real `kill -9` of a process recording an episode, and damaged staged parts.
//!
//! The test binary re-executes itself: with `HANDFUL_DATASET_CRASH_ROOT` set, the test
//! `writer_child` becomes the writer and records frames at the nominal rate until killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use handful::clock::Clock;
use handful::dataset::{DatasetReader, DatasetWriter, validate};
use handful::thread::spawn_named;

use super::{FPS, frame, record};

const CHILD_ENV: &str = "HANDFUL_DATASET_CRASH_ROOT";
const PERIOD_US: u64 = 1_000_000 / FPS as u64;

/// The writer child (see the module docs). Run directly, it checks that recording stages
/// fsynced parts every half second of frames while the episode is in progress.
#[test]
fn writer_child() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), true, 0, &[3]);
        let mut w = DatasetWriter::open_append(dir.path()).unwrap();
        w.begin_episode("balance").unwrap();
        for i in 0..(FPS + 1) {
            w.push(&frame(1, i)).unwrap();
        }
        let staging = dir.path().join("staging/episode-000001");
        let parts: Vec<_> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            parts.len(),
            2,
            "one part per half second of frames: {parts:?}"
        );
        return;
    };
    let clock = Clock::real();
    let mut w = DatasetWriter::open_append(std::path::Path::new(&root)).unwrap();
    w.begin_episode("swing up").unwrap();
    let mut next_us = clock.now_us();
    for i in 0..(60 * FPS) {
        let mut f = frame(2, i);
        f.host_time_us = clock.now_us() as i64;
        w.push(&f).unwrap();
        println!("pushed {}", i + 1);
        next_us += PERIOD_US;
        clock.sleep_until(next_us);
    }
}

#[test]
fn kill_9_mid_episode_loses_at_most_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let written = record(dir.path(), true, 0, &[30, 45]);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "dataset::crash::writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let clock = Clock::real();
    let seen: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let stdout = child.stdout.take().unwrap();
    let (seen2, clock2) = (seen.clone(), clock.clone());
    let _lines = spawn_named("crash-child-stdout", move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("pushed ").and_then(|n| n.parse().ok()) {
                seen2.lock().unwrap().push((clock2.now_us(), n));
            }
        }
    })
    .unwrap();
    let give_up_us = clock.now_us() + 60_000_000;
    let first_us = loop {
        if let Some(&(t, _)) = seen.lock().unwrap().first() {
            break t;
        }
        assert!(
            clock.now_us() < give_up_us,
            "the writer child never started"
        );
        clock.sleep_us(5_000);
    };
    clock.sleep_until(first_us + 1_730_000); // mid flush window, not on a boundary
    let kill_us = clock.now_us();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let seen = seen.lock().unwrap().clone();
    let pushed_total = seen.last().map_or(0, |s| s.1);
    let pushed_1s_before = seen
        .iter()
        .filter(|s| s.0 + 1_000_000 <= kill_us)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);

    let w = DatasetWriter::open_append(dir.path()).unwrap();
    let report = w.recovery().clone();
    drop(w);
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    let recovered = &report.recovered[0];
    assert_eq!(recovered.episode_index, 2);
    assert!(pushed_1s_before > 0);
    assert!(
        recovered.frames >= i64::from(pushed_1s_before),
        "recovered {} frames; {pushed_1s_before} were pushed a second before the kill",
        recovered.frames
    );
    let lost = i64::from(pushed_total) - recovered.frames;
    eprintln!(
        "kill -9: pushed {pushed_total} frames ({pushed_1s_before} a second before), recovered {}, lost {lost} = {} ms",
        recovered.frames,
        lost * PERIOD_US as i64 / 1000
    );
    let r = DatasetReader::open(dir.path()).unwrap();
    assert!(r.pending_recovery().is_clean());
    assert_eq!(r.info().handful.recovered_episodes, vec![2]);
    for (e, frames) in written.iter().enumerate() {
        let back: Vec<_> = r
            .episode_frames(e as i64)
            .unwrap()
            .map(|f| f.unwrap().frame)
            .collect();
        assert_eq!(&back, frames, "completed episode {e} changed");
    }
    let back: Vec<_> = r.episode_frames(2).unwrap().map(Result::unwrap).collect();
    assert!(r.episodes()[2].recovered);
    assert_eq!(back.len() as i64, recovered.frames);
    assert!(
        back.last().unwrap().frame.done,
        "a recovered episode ends with next.done"
    );
    assert_eq!(back[10].frame.state, frame(2, 10).state);
    let v = validate(dir.path()).unwrap();
    assert!(v.is_valid(), "{:#?}", v.problems);
}

#[test]
fn corrupt_parts_are_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), true, 0, &[10]);
    let mut w = DatasetWriter::open_append(dir.path()).unwrap();
    w.begin_episode("balance").unwrap();
    for i in 0..(3 * FPS / 2) {
        w.push(&frame(1, i)).unwrap(); // three parts of 25 frames
    }
    std::mem::forget(w); // as if the process died here
    let staging = dir.path().join("staging/episode-000001");
    let part1 = staging.join("part-0001.parquet");
    let bytes = std::fs::read(&part1).unwrap();
    std::fs::write(&part1, &bytes[..bytes.len() - 9]).unwrap();
    std::fs::write(staging.join("part-0003.parquet.tmp"), b"half-written").unwrap();

    // Reading and validating change nothing: the reader sees the committed episode only,
    // validation names what recovery would do, and every file stays as it was.
    let before = files(dir.path());
    let r = DatasetReader::open(dir.path()).unwrap();
    assert_eq!((r.info().total_episodes, r.info().total_frames), (1, 10));
    assert_eq!(r.frames().count(), 10);
    assert_eq!(r.pending_recovery().recovered.len(), 1);
    let v = validate(dir.path()).unwrap();
    assert!(!v.is_valid());
    let problems: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
    assert!(
        problems.iter().any(|p| p.contains("episode-000001")
            && p.contains("25 frames from 1 of its 3 parts")
            && p.contains("`handful dataset recover`")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("part-0003.parquet.tmp")),
        "{problems:#?}"
    );
    assert_eq!(
        files(dir.path()),
        before,
        "reading or validating changed the dataset"
    );

    let report = handful::dataset::recover(dir.path()).unwrap();
    let rec = &report.recovered[0];
    assert_eq!((rec.frames, rec.parts_kept), (25, 1), "{rec:?}");
    assert_eq!(
        rec.parts_dropped.len(),
        2,
        "the corrupt part and the one after it"
    );
    assert!(rec.parts_dropped[0].0.ends_with("part-0001.parquet"));
    assert!(
        report
            .removed
            .iter()
            .any(|p| p.ends_with("part-0003.parquet.tmp"))
    );
    let r = DatasetReader::open(dir.path()).unwrap();
    assert!(r.pending_recovery().is_clean());
    assert!(r.episodes()[1].recovered);
    assert_eq!(r.info().total_frames, 35);

    // A staged episode whose only part is corrupt is dropped cleanly.
    let mut w = DatasetWriter::open_append(dir.path()).unwrap();
    w.begin_episode("balance").unwrap();
    for i in 0..(FPS / 2) {
        w.push(&frame(2, i)).unwrap();
    }
    std::mem::forget(w);
    std::fs::write(
        dir.path().join("staging/episode-000002/part-0000.parquet"),
        b"garbage",
    )
    .unwrap();
    let report = handful::dataset::recover(dir.path()).unwrap();
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    assert!(report.dropped[0].1.contains("part-0000.parquet"));
    assert_eq!(
        DatasetReader::open(dir.path())
            .unwrap()
            .info()
            .total_episodes,
        2
    );
    assert!(validate(dir.path()).unwrap().is_valid());
}

/// Every file under `root` with its size and modification time, sorted.
fn files(root: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}
