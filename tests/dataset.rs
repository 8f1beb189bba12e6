//! The LeRobot v3 dataset: round trips, crash recovery (a real `kill -9`), corrupt files,
//! discard, merge, validation, a pyarrow/pandas check of the files we write, and both
//! directions with lerobot 0.4.4 (committed fixtures).

mod corrupt;
mod crash;
mod interop;
mod merge;
mod python;
mod roundtrip;

use std::path::Path;

use handful::dataset::{DatasetSpec, DatasetWriter, Frame, Provenance};

pub const FPS: u32 = 50;

pub fn spec() -> DatasetSpec {
    DatasetSpec {
        robot_type: "cartpole-sim".into(),
        fps: FPS,
        state_names: vec![
            "x".into(),
            "x_dot".into(),
            "theta".into(),
            "theta_dot".into(),
        ],
        action_names: vec!["force".into()],
        provenance: Provenance {
            calibration_sha256: "ab".repeat(32),
            calibration_text: "[robot]\nid = \"cartpole-sim\"\n".into(),
            config: serde_json::json!({"planner": "cem", "horizon": 30}),
            model_sha256: None,
            software_version: "0.1.0".into(),
            robot_id: "cartpole-sim".into(),
        },
    }
}

/// A deterministic frame with awkward floats (subnormal, negative zero, large).
pub fn frame(episode: u32, i: u32) -> Frame {
    let t = (episode * 1000 + i) as f32;
    Frame {
        state: vec![t * 0.001, -0.0, f32::from_bits(1 + i), 1.0e30 / (t + 1.0)],
        action: vec![(t * 0.37).sin()],
        reward: -(t * 0.01).cos(),
        done: false,
        host_time_us: 1_000_000 + (i as i64) * 20_000,
        firmware_time_us: 7_000 + (i as i64) * 20_001,
        is_expert: episode.is_multiple_of(2),
        command_seq: i64::from(episode * 1000 + i) + 1,
        applied_command_seq: i64::from(episode * 1000 + i),
        // Every phase kind, and back.
        phase: i64::from(i % 3),
        // Scored frames and unscored ones (NaN) in one episode.
        reset_score: if i.is_multiple_of(2) {
            f32::NAN
        } else {
            i as f32 / 100.0
        },
    }
}

/// Records `lengths.len()` episodes (task alternates) and returns the frames written.
pub fn record(root: &Path, create: bool, first: u32, lengths: &[u32]) -> Vec<Vec<Frame>> {
    let mut w = if create {
        DatasetWriter::create(root, spec()).expect("create")
    } else {
        DatasetWriter::open_append(root).expect("open_append")
    };
    let mut all = Vec::new();
    for (k, &len) in lengths.iter().enumerate() {
        let e = first + k as u32;
        w.begin_episode(if e.is_multiple_of(2) {
            "swing up"
        } else {
            "balance"
        })
        .expect("begin");
        let mut frames = Vec::new();
        for i in 0..len {
            let mut f = frame(e, i);
            f.done = i + 1 == len;
            w.push(&f).expect("push");
            frames.push(f);
        }
        w.end_episode(true).expect("end");
        all.push(frames);
    }
    w.close().expect("close");
    all
}
