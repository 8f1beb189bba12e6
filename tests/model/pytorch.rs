//! Ensembles exported by PyTorch (`torch.onnx.export`, models/pytorch_ensemble.py), in
//! both forms the contract allows: the plain one and the angle-feature one. The fixtures
//! and torch's own outputs for nine rows per member were written by that script (see
//! models/README.md, "Exporting from PyTorch"); here they load through the contract's
//! checks and ONNX Runtime predicts what torch computed, so "PyTorch models work" is
//! kept by a test that needs no torch.

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
