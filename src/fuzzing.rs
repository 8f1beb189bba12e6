//! Fuzz target bodies: one plain function per target over arbitrary bytes. `fuzz/`
//! (cargo-fuzz, nightly, outside the workspace) wraps each in a `fuzz_target!`;
//! `tests/fuzz_corpus.rs` (stable) replays the committed corpus, every regression input
//! and a seeded mutation loop through the very same functions. The wire protocol's
//! targets (frame decoder, message parser) are `handful_protocol::fuzzing`.
//!
//! Each function returns normally on any input: bad input must come back as an `Err`
//! from the code under test, never a panic, an abort or an unbounded allocation. Not
//! part of the API (hidden from the docs).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::calib::Calibration;
use crate::dataset::{
    DatasetReader, DatasetSpec, DatasetWriter, Frame, Provenance, inspect, recover, validate,
};
use crate::model::ModelExpectation;
use crate::task::Task;

/// The calibrations shipped in `calib/`: the model checks' expectations.
const SHIPPED_CALIBRATIONS: [(&str, &str); 2] = [
    (
        "calib/cartpole-sim.toml",
        include_str!("../calib/cartpole-sim.toml"),
    ),
    (
        "calib/pendulum-sim.toml",
        include_str!("../calib/pendulum-sim.toml"),
    ),
];

/// At most this many frames are read per pass over a dataset (the template has fewer; a
/// hostile episodes table may claim more than the files hold).
const MAX_FRAMES_READ: usize = 10_000;

/// A calibration file: parsed and validated as `handful` does at start-up; what it
/// accepts is used as the run uses it (safe command, clamp, dataset spec, model
/// expectation).
pub fn calibration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(calib) = Calibration::from_toml(Path::new("fuzz.toml"), text) else {
        return;
    };
    let mut action = calib.safe_action();
    assert_eq!(action.len(), calib.action_dim());
    // Not NaN: the safety layer refuses non-finite commands before it clamps.
    for extreme in [f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX, 0.0] {
        action.iter_mut().for_each(|a| *a = extreme);
        calib.clamp(&mut action);
        for (a, channel) in action.iter().zip(&calib.actions) {
            assert!(
                (channel.min..=channel.max).contains(a),
                "clamp let {a} out of [{}, {}]",
                channel.min,
                channel.max
            );
        }
    }
    let _ = calib.short_hash();
    // Below 0.5 Hz the spec's whole-number fps is 0, which the dataset writer refuses
    // with a clear error: not asserted here.
    let _ = DatasetSpec::from_calibration(&calib, serde_json::Value::Null, None);
    let _ = ModelExpectation::from_calibration(&calib);
}

/// A planner settings file (`handful run --planner`): overlaid on each task's defaults,
/// then a planner is built from it for a cart-pole-sized model.
pub fn planner_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (task, lockstep) in [
        (Task::CartpoleSwingup, false),
        (Task::PendulumSwingup, true),
    ] {
        let Ok(config) = crate::run::planner_config_from_toml(text, task, lockstep) else {
            continue;
        };
        let _ = crate::mpc::Planner::new(config, 4, 1, &[(-10.0, 10.0)], 5);
    }
}

/// A trainer settings file (`handful run --trainer`): overlaid on each task's defaults,
/// then a trainer is built from it, as `handful run` does before anything runs.
pub fn trainer_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (task, state_dim) in [(Task::CartpoleSwingup, 4), (Task::PendulumSwingup, 2)] {
        let defaults = crate::sysid::trainer_config_for(task);
        let Ok(config) = crate::run::overlay_toml(&defaults, text) else {
            continue;
        };
        let _ = crate::train::Trainer::new(config, state_dim, 1, 0);
    }
}

/// An ONNX model file: read as protobuf and put through the contract's checks (tensor
/// names, dtypes, ranks, dims, metadata) against each shipped calibration.
pub fn model_checks(data: &[u8]) {
    for expect in expectations() {
        if let Ok(info) = crate::model::check_onnx_bytes(data, expect) {
            assert_eq!(info.state_names, expect.state_names);
            assert_eq!(info.action_names, expect.action_names);
            assert_eq!(info.state_dim, info.state_names.len());
        }
    }
}

fn expectations() -> &'static [ModelExpectation] {
    static EXPECTATIONS: OnceLock<Vec<ModelExpectation>> = OnceLock::new();
    EXPECTATIONS.get_or_init(|| {
        SHIPPED_CALIBRATIONS
            .iter()
            .map(
                |(path, text)| match Calibration::from_toml(Path::new(path), text) {
                    Ok(calib) => ModelExpectation::from_calibration(&calib),
                    Err(e) => panic!("the shipped calibration {path} is refused: {e}"),
                },
            )
            .collect()
    })
}

/// One file of a dataset: `data[0]` picks a file of [`dataset_template`] (modulo their
/// number) and the rest of `data` replaces its bytes. The dataset is written to a fresh
/// directory under the temp dir (`TMPDIR`; `fuzz/run.sh` uses `/dev/shm`), then read
/// (every frame, every episode), validated, inspected, recovered, opened to append and
/// read again. Each must return `Ok` or an `Err`.
pub fn dataset(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let template = dataset_template();
    let which = usize::from(which) % template.len();
    let root = scratch_dir("dataset");
    for (i, (relative, content)) in template.iter().enumerate() {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            must(std::fs::create_dir_all(parent), parent);
        }
        let content = if i == which { bytes } else { content };
        must(std::fs::write(&path, content), &path);
    }
    exercise_dataset(&root);
    let _ = std::fs::remove_dir_all(&root);
}

/// The template's files as corpus seeds: `(file name, input)`, one per file.
pub fn dataset_seeds() -> Vec<(String, Vec<u8>)> {
    dataset_template()
        .iter()
        .enumerate()
        .map(|(i, (relative, content))| {
            let name = relative.to_string_lossy().replace('/', "_");
            let mut input = vec![i as u8];
            input.extend_from_slice(content);
            (format!("{i}-{name}"), input)
        })
        .collect()
}

fn exercise_dataset(root: &Path) {
    read_everything(root);
    let _ = validate(root);
    let _ = inspect(root);
    let _ = recover(root);
    if let Ok(writer) = DatasetWriter::open_append(root) {
        let _ = writer.close();
    }
    read_everything(root);
}

fn read_everything(root: &Path) {
    let Ok(reader) = DatasetReader::open(root) else {
        return;
    };
    for frame in reader.frames().take(MAX_FRAMES_READ) {
        if frame.is_err() {
            break;
        }
    }
    let indices: Vec<i64> = reader
        .episodes()
        .iter()
        .take(8)
        .map(|e| e.episode_index)
        .collect();
    for index in indices {
        if let Ok(frames) = reader.episode_frames(index) {
            for frame in frames.take(MAX_FRAMES_READ) {
                if frame.is_err() {
                    break;
                }
            }
        }
    }
}

/// A small real dataset written by [`DatasetWriter`], as relative paths and bytes: two
/// committed episodes (one data file) and a third one a crash left staged. Built once
/// per process, deterministically.
pub fn dataset_template() -> &'static [(PathBuf, Vec<u8>)] {
    static TEMPLATE: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let root = scratch_dir("template");
        let spec = DatasetSpec {
            robot_type: "cartpole-sim".into(),
            fps: 25,
            state_names: ["x", "x_dot", "theta", "theta_dot"]
                .map(String::from)
                .into(),
            action_names: vec!["force".into()],
            provenance: Provenance {
                calibration_sha256: "ab".repeat(32),
                calibration_text: SHIPPED_CALIBRATIONS[0].1.into(),
                config: serde_json::json!({"controller": "expert"}),
                model_sha256: None,
                software_version: "0.1.0".into(),
                robot_id: "cartpole-sim".into(),
            },
        };
        let mut writer = must(DatasetWriter::create(&root, spec), &root);
        let mut t = 0i64;
        for (episode, frames) in [(0, 6), (1, 4), (2, 3)] {
            must(writer.begin_episode("swing up"), &root);
            for i in 0..frames {
                let x = (episode * 10 + i) as f32 * 0.125;
                let frame = Frame {
                    state: vec![x, -x, 3.0 - x, 0.5],
                    action: vec![x.sin()],
                    reward: x,
                    done: i + 1 == frames,
                    host_time_us: t,
                    firmware_time_us: t + 7,
                    is_expert: episode == 0,
                    command_seq: t / 40_000,
                    applied_command_seq: t / 40_000 - 1,
                    phase: episode % 3,
                    reset_score: f32::NAN,
                };
                must(writer.push(&frame), &root);
                t += 40_000;
            }
            if episode < 2 {
                must(writer.end_episode(true), &root);
            } else {
                // A crash mid-episode: its flushed part stays staged.
                must(writer.flush(), &root);
            }
        }
        drop(writer);
        let mut files = Vec::new();
        collect_files(&root, &root, &mut files);
        files.sort();
        let _ = std::fs::remove_dir_all(&root);
        assert!(!files.is_empty(), "the dataset template has no files");
        files
    })
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in must(std::fs::read_dir(dir), dir) {
        let path = must(entry, dir).path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push((relative.to_path_buf(), must(std::fs::read(&path), &path)));
        }
    }
}

/// A fresh, empty directory of this process under the temp dir.
fn scratch_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("handful-fuzz-{}-{kind}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    must(std::fs::create_dir_all(&dir), &dir);
    dir
}

/// The harness's own set-up cannot fail on input; if it fails, say where.
fn must<T, E: std::fmt::Display>(result: Result<T, E>, path: &Path) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("fuzz harness set-up failed at {}: {e}", path.display()),
    }
}
