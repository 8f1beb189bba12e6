//! The refusals models/README.md lists under "Checked at load", one broken fixture each
//! (models/fixtures/bad/, written by `make_ensemble.py --defect`), each with the words
//! its message must hold: what is wrong and, where there is one, the fix.

use super::*;

/// The message `name` is refused with.
fn refusal(name: &str) -> String {
    runtime();
    match Ensemble::load(&fixture(name), &fixture_expectation()) {
        Ok(_) => panic!("{name}: loaded, expected a refusal"),
        Err(e) => e.to_string(),
    }
}

fn check(name: &str, words: &[&str]) {
    let message = refusal(name);
    for word in words {
        assert!(message.contains(word), "{name}: `{word}` not in: {message}");
    }
}

#[test]
fn each_refusal_says_what_is_wrong() {
    let cases: &[(&str, &[&str])] = &[
        (
            "bad/float64.onnx",
            &[
                "`state`",
                "float64 (ONNX DOUBLE)",
                "float32 only",
                "model.float()",
            ],
        ),
        ("bad/dtype.onnx", &["`state`", "float64 (ONNX DOUBLE)"]),
        (
            "bad/external-data.onnx",
            &["`W0`", "external data", "save_as_external_data=False"],
        ),
        ("bad/ir-version.onnx", &["IR version is 14", "3 to 13"]),
        ("bad/opset.onnx", &["imports opset 27", "7 to 26"]),
        (
            "bad/no-standardisation.onnx",
            &["no initializer `input_mean`", "standardisation"],
        ),
        (
            "bad/unclamped.onnx",
            &["`logvar`", "outside", "min_logvar", "soft clamp"],
        ),
        (
            "bad/elites.onnx",
            &["`elites`", "`0,7`", "7 is out of range", "below 2"],
        ),
        (
            "bad/elites-duplicate.onnx",
            &["`elites`", "1 is listed twice"],
        ),
        (
            "bad/created-unix.onnx",
            &["`created_unix`", "`1700000000000`", "milliseconds"],
        ),
        (
            "bad/training-data-sha256.onnx",
            &["`training_data_sha256`", "`<hex>`", "64 hex digits"],
        ),
        (
            "bad/angle-count.onnx",
            &["`input_mean`", "[3]", "[4] float32", "angle_state_indices"],
        ),
        (
            "bad/angle-raw.onnx",
            &["angle_state_indices", "channel 0 (`x`)", "2π", "sin/cos"],
        ),
        ("bad/rows-mixed.onnx", &["depends on the other rows"]),
        // ONNX Runtime infers N = 7 through the graph's fixed Reshape and reports it.
        ("bad/traced-n.onnx", &["`mean`", "[2, 7, 2]", "a dynamic N"]),
        (
            "bad/nan-weights.onnx",
            &["non-finite `mean`", "NaN", "load-time probe"],
        ),
    ];
    for (name, words) in cases {
        check(name, words);
    }
}

#[test]
fn the_same_checks_run_without_onnx_runtime() {
    // `inspect` (what summary.json is written from) refuses what the file shows alone.
    for name in [
        "bad/float64.onnx",
        "bad/external-data.onnx",
        "bad/ir-version.onnx",
        "bad/opset.onnx",
        "bad/no-standardisation.onnx",
        "bad/elites.onnx",
        "bad/created-unix.onnx",
        "bad/training-data-sha256.onnx",
        "bad/angle-count.onnx",
    ] {
        let inspected = handful::model::inspect(&fixture(name), &fixture_expectation());
        assert!(inspected.is_err(), "{name}: inspect accepted it");
    }
}

#[test]
fn good_models_pass_the_probe() {
    // The angle form (sin/cos inside the graph) is periodic in its angle channel.
    let model = load_fixture("angle.onnx");
    assert_eq!(model.info().angle_state_indices, [0]);
    for name in ["linear.onnx", "swish.onnx", "double-integrator.onnx"] {
        load_fixture(name);
    }
}

#[test]
fn a_model_finite_on_the_probe_still_reports_non_finite_predictions() {
    let mut model = load_fixture("bad/nan-far.onnx");
    let states = Array3::<f32>::from_elem((2, 3, 2), 0.5);
    let actions = Array3::<f32>::zeros((2, 3, 1));
    predict(&mut model, states.view(), actions.view()).expect("finite near the origin");
    let far = Array3::<f32>::from_elem((2, 3, 2), 1e4);
    let err = predict(&mut model, far.view(), actions.view()).unwrap_err();
    assert_eq!(err, DynamicsError::NonFinite);
}

#[test]
fn handful_run_with_a_refused_model_says_why_and_exits_non_zero() {
    runtime();
    let python = repo().join(".venv/bin/python");
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("nan.onnx");
    let status = std::process::Command::new(&python)
        .arg(repo().join("models/make_ensemble.py"))
        .args([
            "--defect",
            "nan-weights",
            "--hidden",
            "8",
            "--control-period-us",
            "40000",
        ])
        .args([
            "--state-names",
            "cart_position,pole_angle,cart_velocity,pole_angular_velocity",
        ])
        .args(["--action-names", "force", "--out"])
        .arg(&model)
        .status()
        .expect("run make_ensemble.py");
    assert!(status.success());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_handful"))
        .current_dir(repo())
        .args([
            "run",
            "--lockstep",
            "--no-viz",
            "--controller",
            "mpc",
            "--episodes",
            "1",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .expect("run handful");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nan.onnx"), "{stderr}");
    assert!(stderr.contains("non-finite `mean`"), "{stderr}");
}

#[test]
fn the_dynamic_dimension_may_have_any_name_or_none() {
    runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("renamed.onnx");
    // `state`'s N is `batch`, `action`'s has no name and no size, `mean`'s is torch's `s0`.
    let script = r#"
import sys, onnx
m = onnx.load(sys.argv[1])
dims = {v.name: v.type.tensor_type.shape.dim[1] for v in [*m.graph.input, *m.graph.output]}
dims["state"].dim_param = "batch"
dims["action"].Clear()
dims["mean"].dim_param = "s0"
onnx.save(m, sys.argv[2])
"#;
    let status = std::process::Command::new(repo().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(fixture("linear.onnx"))
        .arg(&out)
        .status()
        .expect("python");
    assert!(status.success());
    let mut model = Ensemble::load(&out, &fixture_expectation()).unwrap_or_else(|e| panic!("{e}"));
    let states = Array3::<f32>::zeros((2, 3, 2));
    let actions = Array3::<f32>::zeros((2, 3, 1));
    predict(&mut model, states.view(), actions.view()).expect("predict");
}
