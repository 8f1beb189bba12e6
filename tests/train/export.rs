//! The ONNX export: ONNX Runtime (through `Ensemble`) computes what the trainer's own
//! forward pass computes, the official `onnx.checker` accepts the file, and the loader's
//! contract checks accept the right expectation and refuse wrong ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use handful::model::{Ensemble, ModelError, ModelExpectation, ensure_runtime};
use handful::mpc::Dynamics;
use handful::train::{ExportError, ExportMetadata, PRODUCER, Trainer, TrainerConfig};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn meta() -> ExportMetadata {
    ExportMetadata {
        state_names: vec!["pole_angle".into(), "pole_angular_velocity".into()],
        action_names: vec!["torque".into()],
        control_period_us: 50_000,
        created_unix: Some(1_700_000_000),
    }
}

fn expectation() -> ModelExpectation {
    let m = meta();
    ModelExpectation {
        state_names: m.state_names,
        action_names: m.action_names,
        control_period_us: m.control_period_us,
    }
}

/// A small ensemble trained for a few epochs, so its input statistics, weights and
/// logvar bounds are all away from their initial values; `angles` are fed to the network
/// as sin and cos (in the graph too).
fn trained_with(angles: &[usize]) -> Trainer {
    let config = TrainerConfig {
        angle_state_indices: angles.to_vec(),
        ensemble_size: 3,
        hidden_sizes: vec![16, 16],
        weight_decays: vec![1e-4],
        batch_size: 32,
        max_epochs: 3,
        elite_count: 2,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(config, 2, 1, 5).expect("valid config");
    trainer
        .fit(&super::pendulum_transitions(300, 0.01, 9))
        .expect("fit");
    trainer
}

fn runtime() {
    if let Err(e) = ensure_runtime() {
        panic!("{e}");
    }
}

#[test]
fn onnx_runtime_matches_the_trainers_forward_pass() {
    runtime();
    for angles in [&[][..], &[0]] {
        check_runtime_matches(&trained_with(angles));
    }
}

fn check_runtime_matches(trainer: &Trainer) {
    let bytes = trainer.export_onnx(&meta()).expect("export");
    let mut model = Ensemble::from_bytes(&bytes, &expectation()).expect("load");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for rows in [1, 37] {
        let states = Array3::from_shape_fn((3, rows, 2), |(_, _, j)| {
            rng.random_range(-1.0f32..1.0) * if j == 0 { 3.0 } else { 8.0 }
        });
        let actions = Array3::from_shape_fn((3, rows, 1), |_| rng.random_range(-2.0f32..2.0));
        let (want_mean, want_logvar) = trainer
            .predict(states.view(), actions.view())
            .expect("predict");
        let mut mean = Array3::from_elem((3, rows, 2), f32::NAN);
        let mut logvar = mean.clone();
        model
            .predict(
                states.view(),
                actions.view(),
                mean.view_mut(),
                logvar.view_mut(),
            )
            .expect("onnx predict");
        for (got, want) in [(&mean, &want_mean), (&logvar, &want_logvar)] {
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "onnx {g} vs trainer {w}"
                );
            }
        }
        // The logvar bounds were learned: the clamp in the graph uses the trained ones.
        assert!(trainer.params().max_logvar.iter().all(|v| *v != 0.5));
    }
}

#[test]
fn the_official_onnx_checker_accepts_the_export() {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run bash models/setup.sh",
        python.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for angles in [&[][..], &[0]] {
        let path: PathBuf = dir.path().join("trained.onnx");
        trained_with(angles)
            .write_onnx(&path, &meta())
            .expect("write");
        let out = Command::new(&python)
        .args([
            "-c",
            "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)",
        ])
        .arg(&path)
        .output()
        .expect("run python (run bash models/setup.sh)");
        assert!(
            out.status.success(),
            "onnx.checker refused the export ({angles:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn round_trip_carries_the_metadata_and_wrong_expectations_are_refused() {
    runtime();
    let trainer = trained_with(&[0]);
    let bytes = trainer.export_onnx(&meta()).expect("export");
    let model = Ensemble::from_bytes(&bytes, &expectation()).expect("load");
    let info = model.info();
    assert_eq!(
        (info.ensemble_size, info.state_dim, info.action_dim),
        (3, 2, 1)
    );
    assert_eq!(info.producer, PRODUCER);
    let elites: Vec<String> = trainer.elites().iter().map(ToString::to_string).collect();
    assert_eq!(trainer.elites().len(), 2);
    assert_eq!(info.metadata["elites"], elites.join(","));
    assert_eq!(info.metadata["angle_state_indices"], "0");
    assert_eq!(info.metadata["created_unix"], "1700000000");
    let sha = trainer.training_data_sha256().expect("fitted");
    assert_eq!(info.metadata["training_data_sha256"], sha);
    assert_eq!(sha.len(), 64);

    let mut wrong_names = expectation();
    wrong_names.state_names.reverse();
    assert!(matches!(
        Ensemble::from_bytes(&bytes, &wrong_names),
        Err(ModelError::Names { .. })
    ));
    let mut wrong_period = expectation();
    wrong_period.control_period_us = 40_000;
    assert!(matches!(
        Ensemble::from_bytes(&bytes, &wrong_period),
        Err(ModelError::Period {
            model_us: 50_000,
            expected_us: 40_000
        })
    ));
}

#[test]
fn export_refuses_names_that_do_not_fit() {
    let trainer = Trainer::new(TrainerConfig::default(), 2, 1, 0).expect("valid config");
    let mut short = meta();
    short.state_names.pop();
    assert!(matches!(
        trainer.export_onnx(&short),
        Err(ExportError::NameCount {
            kind: "state",
            found: 1,
            expected: 2
        })
    ));
    let mut comma = meta();
    comma.action_names = vec!["tor,que".into()];
    assert!(matches!(
        trainer.export_onnx(&comma),
        Err(ExportError::BadName { kind: "action", .. })
    ));
}
