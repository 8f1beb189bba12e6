//! Ensembles exported by PyTorch (`torch.onnx.export`, models/pytorch_ensemble.py), in
//! both forms the contract allows: the plain one and the angle-feature one. The fixtures
//! and torch's own outputs for nine rows per member were written by that script (see
//! models/README.md, "Exporting from PyTorch"); here they load through the contract's
//! checks and ONNX Runtime predicts what torch computed, so "PyTorch models work" is
//! kept by a test that needs no torch.

use std::process::Command;

use super::*;

fn cartpole() -> ModelExpectation {
    let calibration =
        Calibration::load(&repo().join("calib/cartpole-sim.toml")).expect("calibration");
    ModelExpectation::from_calibration(&calibration)
}

fn check_against_torch(form: &str, angles: &[usize]) {
    runtime();
    let name = format!("pytorch-{form}.onnx");
    let mut model =
        Ensemble::load(&fixture(&name), &cartpole()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let info = model.info().clone();
    assert_eq!(info.angle_state_indices, angles, "{name}");
    assert_eq!(
        (info.ensemble_size, info.state_dim, info.action_dim),
        (5, 4, 1)
    );
    assert_eq!(info.elites, [0, 1, 2, 3, 4]);
    assert!(
        info.producer.contains("pytorch_ensemble.py"),
        "{}",
        info.producer
    );

    let text = std::fs::read_to_string(fixture(&format!("pytorch-{form}.json"))).expect("json");
    let check: Value = serde_json::from_str(&text).expect("json");
    let array = |key: &str, d: usize| {
        let values: Vec<f32> = floats(&check[key]).into_iter().map(|v| v as f32).collect();
        Array3::from_shape_vec((5, values.len() / (5 * d), d), values).expect(key)
    };
    let (states, actions) = (array("states", 4), array("actions", 1));
    let (mean, logvar) = predict(&mut model, states.view(), actions.view()).expect("predict");
    for (what, got, want) in [
        ("mean", mean, array("mean", 4)),
        ("logvar", logvar, array("logvar", 4)),
    ] {
        for ((idx, g), w) in got.indexed_iter().zip(want.iter()) {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{name} {what}{idx:?}: onnxruntime {g}, torch {w}"
            );
        }
    }
}

#[test]
fn a_plain_pytorch_ensemble_predicts_what_torch_computed() {
    check_against_torch("plain", &[]);
}

#[test]
fn an_angle_feature_pytorch_ensemble_predicts_what_torch_computed() {
    check_against_torch("angle", &[1]);
}

#[test]
fn handful_run_plans_with_a_pytorch_ensemble_and_reports_it_in_the_summary() {
    runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let planner = dir.path().join("planner.toml");
    std::fs::write(
        &planner,
        "population = 60\nelites = 6\nhorizon = 10\nparticles = 5\n",
    )
    .expect("planner");
    let out = dir.path().join("run");
    let model = fixture("pytorch-angle.onnx");
    let output = Command::new(env!("CARGO_BIN_EXE_handful"))
        .current_dir(repo())
        .args(["run", "--lockstep", "--no-viz", "--controller", "mpc"])
        .args(["--episodes", "1", "--steps", "20"])
        .arg("--model")
        .arg(&model)
        .arg("--planner")
        .arg(&planner)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run handful");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    let summary: Value = serde_json::from_str(&text).expect("summary.json");
    assert_eq!(summary["episodes"][0]["steps"], 20, "{summary}");
    let reported = &summary["model"];
    let bytes = std::fs::read(&model).expect("fixture");
    assert_eq!(
        reported["sha256"],
        handful::calib::hex_sha256(&bytes).as_str()
    );
    assert_eq!(reported["contract"], "1");
    assert_eq!(reported["created_unix"], 1_700_000_000);
    assert_eq!(reported["training_data_sha256"], Value::Null);
    assert_eq!(reported["ensemble_size"], 5);
    assert_eq!(reported["angle_state_indices"], serde_json::json!([1]));
    assert_eq!(reported["elites"], serde_json::json!([0, 1, 2, 3, 4]));
    assert_eq!(
        (reported["ir_version"].clone(), reported["opset"].clone()),
        (10.into(), 18.into())
    );
    assert!(
        reported["producer"]
            .as_str()
            .is_some_and(|p| p.contains("pytorch_ensemble.py")),
        "{reported}"
    );
}
