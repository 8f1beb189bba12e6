//! Models the loader must refuse (broken graphs, missing contract metadata, a calibration
//! they were not made for), where the runtime library is looked for, and a model written
//! from Rust by models/make_ensemble.py.

use std::ffi::OsStr;
use std::process::Command;

use super::*;

/// One broken fixture and a test of the error it must give.
fn check(name: &str, expect: &ModelExpectation, matches: fn(&ModelError) -> bool) {
    runtime();
    match Ensemble::load(&fixture(name), expect) {
        Ok(_) => panic!("{name}: loaded, expected a refusal"),
        Err(e) => assert!(matches(&e), "{name}: wrong refusal: {e:?} ({e})"),
    }
}

#[test]
fn broken_graphs_and_metadata_are_refused() {
    use ModelError as E;
    let ok = fixture_expectation();
    check(
        "bad/input-name.onnx",
        &ok,
        |e| matches!(e, E::MissingTensor { role: "input", name: "state", found } if found.contains(&"obs".to_string())),
    );
    check("bad/output-name.onnx", &ok, |e| {
        matches!(
            e,
            E::MissingTensor {
                role: "output",
                name: "logvar",
                ..
            }
        )
    });
    check("bad/rank.onnx", &ok, |e| {
        matches!(
            e,
            E::Rank {
                tensor: "state",
                found: 2
            }
        )
    });
    check(
        "bad/dtype.onnx",
        &ok,
        |e| matches!(e, E::Dtype { tensor: "state", found } if found.contains("float64 (ONNX DOUBLE)")),
    );
    check(
        "bad/fixed-n.onnx",
        &ok,
        |e| matches!(e, E::Dim { axis: 1, found, .. } if found[1] == 7),
    );
    check("bad/state-dim.onnx", &ok, |e| {
        matches!(
            e,
            E::MetadataDisagrees {
                key: "state_dim",
                metadata: 3,
                graph: 2
            }
        )
    });
    check("bad/ensemble-size.onnx", &ok, |e| {
        matches!(
            e,
            E::MetadataDisagrees {
                key: "ensemble_size",
                metadata: 3,
                graph: 2
            }
        )
    });
    check("bad/no-contract.onnx", &ok, |e| {
        matches!(
            e,
            E::MissingMetadata {
                key: "handful.contract"
            }
        )
    });
}

#[test]
fn a_model_for_another_robot_is_refused() {
    use ModelError as E;
    let ok = fixture_expectation();
    let states = ModelExpectation {
        state_names: vec!["v".into(), "x".into()],
        ..ok.clone()
    };
    check("linear.onnx", &states, |e| {
        matches!(e, E::Names { kind: "state", model, expected }
            if model == &["x", "v"] && expected == &["v", "x"])
    });
    let actions = ModelExpectation {
        action_names: vec!["torque".into()],
        ..ok.clone()
    };
    check("linear.onnx", &actions, |e| {
        matches!(e, E::Names { kind: "action", .. })
    });
    let period = ModelExpectation {
        control_period_us: 40_000,
        ..ok
    };
    check("linear.onnx", &period, |e| {
        matches!(
            e,
            E::Period {
                model_us: 20_000,
                expected_us: 40_000
            }
        )
    });
    let message = Ensemble::load(&fixture("linear.onnx"), &period)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "the model was trained at a control period of 20000 µs, the calibration runs at 40000 µs"
        )
    );
}

#[test]
fn unreadable_and_non_onnx_files_are_errors() {
    runtime();
    let missing = Ensemble::load(&fixture("no-such-model.onnx"), &fixture_expectation());
    assert!(matches!(missing, Err(ModelError::Read { .. })));
    let garbage = Ensemble::from_bytes(b"not an onnx model", &fixture_expectation());
    assert!(matches!(garbage, Err(ModelError::NotOnnx { .. })));
}

#[test]
fn info_reports_identity_and_metadata() {
    let model = load_fixture("linear.onnx");
    let bytes = std::fs::read(fixture("linear.onnx")).expect("fixture");
    let info = model.info();
    assert_eq!(info.sha256, handful::calib::hex_sha256(&bytes));
    assert_eq!(info.producer, "handful fixtures");
    assert_eq!(info.state_names, ["x", "v"]);
    assert_eq!(
        (info.ensemble_size, info.state_dim, info.action_dim),
        (2, 2, 1)
    );
    assert_eq!(info.metadata["created_unix"], "1700000000");
    assert_eq!(info.metadata["handful.contract"], "1");
    assert_eq!(info.contract, "1");
    assert_eq!(info.created_unix, 1_700_000_000);
    assert_eq!(info.training_data_sha256, None);
    assert!(info.elites.is_empty() && info.angle_state_indices.is_empty());
    assert_eq!((info.ir_version, info.opset), (8, 17));
    // What summary.json gets, field by field.
    let json = serde_json::to_value(info).expect("serialize");
    for key in [
        "sha256",
        "contract",
        "producer",
        "created_unix",
        "training_data_sha256",
        "ensemble_size",
        "state_dim",
        "action_dim",
        "elites",
        "angle_state_indices",
        "ir_version",
        "opset",
        "metadata",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    // `inspect` reads the same without ONNX Runtime.
    let inspected =
        handful::model::inspect(&fixture("linear.onnx"), &fixture_expectation()).expect("inspect");
    assert_eq!(&inspected, info);
}

#[test]
fn missing_override_gives_the_fix_it_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("libonnxruntime.so");
    let err = locate_runtime(Some(missing.as_os_str()), None).unwrap_err();
    assert_eq!(
        err,
        RuntimeError::NotFound {
            searched: vec![missing.clone()]
        }
    );
    let message = err.to_string();
    assert!(message.contains("run `bash models/setup.sh`"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[test]
fn runtime_search_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A binary at <root>/target/release/handful finds <root>/models/runtime.
    let exe = dir.path().join("target/release/handful");
    let beside = dir
        .path()
        .join("target/release/../../models/runtime/libonnxruntime.so");
    std::fs::create_dir_all(beside.parent().expect("parent")).expect("mkdir");
    std::fs::write(&beside, b"stand-in").expect("write");
    assert_eq!(locate_runtime(None, Some(&exe)), Ok(beside.clone()));
    // An explicit override wins, even over a file beside the binary.
    let chosen = dir.path().join("chosen.so");
    std::fs::write(&chosen, b"stand-in").expect("write");
    assert_eq!(
        locate_runtime(Some(chosen.as_os_str()), Some(&exe)),
        Ok(chosen)
    );
    // Empty override = unset; with no binary layout, the compile-time repository.
    let from_repo = locate_runtime(Some(OsStr::new("")), None).expect("setup.sh was run");
    assert_eq!(from_repo, repo().join("models/runtime/libonnxruntime.so"));
}

#[test]
fn runtime_version_is_checked_on_the_file() {
    runtime();
    let lib = locate_runtime(None, None).expect("setup.sh was run");
    assert_eq!(runtime_version(&lib).as_deref(), Ok("1.31.1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").expect("write");
    assert!(matches!(
        runtime_version(&fake),
        Err(RuntimeError::Open { .. })
    ));
}

#[test]
fn make_ensemble_py_model_loads_and_predicts() {
    runtime();
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run `bash models/setup.sh`",
        python.display()
    );
    let calibration =
        Calibration::load(&repo().join("calib/cartpole-sim.toml")).expect("calibration");
    let expect = ModelExpectation::from_calibration(&calibration);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("random.onnx");
    let status = Command::new(&python)
        .arg(repo().join("models/make_ensemble.py"))
        .args(["--ensemble-size", "3", "--hidden", "16,16", "--seed", "5"])
        .args(["--state-names", &expect.state_names.join(",")])
        .args(["--action-names", &expect.action_names.join(",")])
        .args(["--control-period-us", &expect.control_period_us.to_string()])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run make_ensemble.py");
    assert!(status.success(), "make_ensemble.py failed: {status}");

    let mut model = Ensemble::load(&out, &expect).unwrap_or_else(|e| panic!("{e}"));
    let (e, s, a) = (3, calibration.state_dim(), calibration.action_dim());
    assert_eq!(
        (model.ensemble_size(), model.state_dim(), model.action_dim()),
        (e, s, a)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let states = random_batch(&mut rng, e, 10, s, 1.0);
    let actions = random_batch(&mut rng, e, 10, a, 1.0);
    let (mean, logvar) = predict(&mut model, states.view(), actions.view()).expect("predict");
    assert!(mean.iter().chain(logvar.iter()).all(|v| v.is_finite()));
    // Members have different weights: their predictions for the same rows differ.
    let same_rows = Array3::from_shape_fn((e, 10, s), |(_, n, k)| states[[0, n, k]]);
    let same_actions = Array3::from_shape_fn((e, 10, a), |(_, n, k)| actions[[0, n, k]]);
    let (spread, _) = predict(&mut model, same_rows.view(), same_actions.view()).expect("predict");
    assert_ne!(spread.index_axis(Axis(0), 0), spread.index_axis(Axis(0), 1));
}
