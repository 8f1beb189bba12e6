//! The model module against the real ONNX Runtime: known-answer fixtures recomputed by
//! hand from their JSON weights, refusal of broken or mismatching models (each with its
//! message), NaN outputs, runtime location, a random model written by
//! models/make_ensemble.py, and ensembles exported by PyTorch.
//!
//! These tests need the runtime (`bash models/setup.sh`); without it they FAIL with the
//! fix-it message, they do not skip.

use std::path::{Path, PathBuf};

use handful::calib::Calibration;
use handful::model::{
    Ensemble, ModelError, ModelExpectation, RuntimeError, ensure_runtime, locate_runtime,
    runtime_version,
};
use handful::mpc::{Dynamics, DynamicsError};
use ndarray::{Array3, ArrayView3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    repo().join("models/fixtures").join(name)
}

/// Loads the runtime the way the binary does, failing the test with the fix-it text.
fn runtime() {
    if let Err(e) = ensure_runtime() {
        panic!("{e}");
    }
}

/// What the fixtures were written for (models/fixtures/regenerate.sh).
fn fixture_expectation() -> ModelExpectation {
    ModelExpectation {
        state_names: vec!["x".into(), "v".into()],
        action_names: vec!["force".into()],
        control_period_us: 20_000,
    }
}

fn load_fixture(name: &str) -> Ensemble {
    runtime();
    Ensemble::load(&fixture(name), &fixture_expectation()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn random_batch(rng: &mut ChaCha8Rng, e: usize, n: usize, d: usize, scale: f32) -> Array3<f32> {
    Array3::from_shape_fn((e, n, d), |_| rng.random_range(-scale..scale))
}

fn predict(
    model: &mut Ensemble,
    states: ArrayView3<'_, f32>,
    actions: ArrayView3<'_, f32>,
) -> Result<(Array3<f32>, Array3<f32>), DynamicsError> {
    let (e, n, s) = states.dim();
    let mut mean = Array3::from_elem((e, n, s), f32::NAN);
    let mut logvar = Array3::from_elem((e, n, s), f32::NAN);
    model.predict(states, actions, mean.view_mut(), logvar.view_mut())?;
    Ok((mean, logvar))
}

// ---- the reference: the contract's graph, by hand, in f64 ----

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(x) => vec![x.as_f64().expect("number")],
        other => panic!("not a number: {other}"),
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// mean and logvar `[E, N, S]` from the JSON weights of a fixture.
fn reference(weights: &Value, states: &Array3<f32>, actions: &Array3<f32>) -> [Array3<f64>; 2] {
    let (e, n, s) = states.dim();
    let get = |k: &str| floats(&weights[k]);
    let (mu, sigma) = (get("input_mean"), get("input_std"));
    let (max_lv, min_lv) = (get("max_logvar"), get("min_logvar"));
    let layers = (0..)
        .take_while(|i| weights.get(format!("W{i}")).is_some())
        .count();
    let mut mean = Array3::zeros((e, n, s));
    let mut logvar = Array3::zeros((e, n, s));
    for m in 0..e {
        for r in 0..n {
            let mut x = states.index_axis(Axis(0), m).row(r).to_vec();
            x.extend(actions.index_axis(Axis(0), m).row(r));
            let mut h: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(i, v)| (f64::from(*v) - mu[i]) / sigma[i])
                .collect();
            for l in 0..layers {
                let w = get(&format!("W{l}"));
                let b = get(&format!("b{l}"));
                let (fan_in, fan_out) = (h.len(), b.len() / e);
                let z: Vec<f64> = (0..fan_out)
                    .map(|j| {
                        let dot: f64 = (0..fan_in)
                            .map(|i| h[i] * w[(m * fan_in + i) * fan_out + j])
                            .sum();
                        dot + b[m * fan_out + j]
                    })
                    .collect();
                let last = l == layers - 1;
                h = if last {
                    z
                } else {
                    z.iter().map(|v| v / (1.0 + (-v).exp())).collect() // swish
                };
            }
            for k in 0..s {
                mean[[m, r, k]] = h[k];
                let lv = max_lv[k] - softplus(max_lv[k] - h[s + k]);
                logvar[[m, r, k]] = min_lv[k] + softplus(lv - min_lv[k]);
            }
        }
    }
    [mean, logvar]
}

fn assert_close(what: &str, got: &Array3<f32>, want: &Array3<f64>) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    for ((idx, g), w) in got.indexed_iter().zip(want.iter()) {
        let tolerance = 1e-5 * w.abs().max(1.0);
        assert!(
            (f64::from(*g) - w).abs() <= tolerance,
            "{what}{idx:?}: onnxruntime {g} vs by hand {w}"
        );
    }
}

fn check_known_answer(name: &str, rows: usize, scale: f32) {
    let mut model = load_fixture(&format!("{name}.onnx"));
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).expect("weights json");
    let weights: Value = serde_json::from_str(&text).expect("weights json");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let states = random_batch(&mut rng, 2, rows, 2, scale);
    let actions = random_batch(&mut rng, 2, rows, 1, scale);
    let (mean, logvar) = predict(&mut model, states.view(), actions.view()).expect("predict");
    let [want_mean, want_logvar] = reference(&weights, &states, &actions);
    assert_close(&format!("{name} mean"), &mean, &want_mean);
    assert_close(&format!("{name} logvar"), &logvar, &want_logvar);
}

#[test]
fn linear_fixture_matches_hand_computation() {
    check_known_answer("linear", 5, 1.0);
    // Large inputs push the raw log-variance past both soft bounds.
    check_known_answer("linear", 9, 40.0);
}

#[test]
fn swish_fixture_matches_hand_computation() {
    check_known_answer("swish", 6, 2.0);
    check_known_answer("swish", 3, 30.0);
}

#[test]
fn logvar_stays_within_soft_bounds() {
    let mut model = load_fixture("linear.onnx");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let states = random_batch(&mut rng, 2, 64, 2, 500.0);
    let actions = random_batch(&mut rng, 2, 64, 1, 500.0);
    let (_, logvar) = predict(&mut model, states.view(), actions.view()).expect("predict");
    // The clamp is soft: the upper bound is min + softplus(max − min) = max + 2.8e-5.
    let upper = (-10.0_f64 + softplus(10.5) + 1e-6) as f32;
    assert!(
        logvar.iter().all(|v| (-10.0..=upper).contains(v)),
        "{logvar}"
    );
    assert!(logvar.iter().any(|v| *v > 0.5) && logvar.iter().any(|v| *v <= -9.99));
}

#[test]
fn row_count_changes_and_strided_views_give_the_same_answer() {
    let mut model = load_fixture("swish.onnx");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let states = random_batch(&mut rng, 2, 8, 2, 1.0);
    let actions = random_batch(&mut rng, 2, 8, 1, 1.0);
    let (mean8, logvar8) = predict(&mut model, states.view(), actions.view()).expect("N=8");
    // Every other row, through non-contiguous views, then N=8 again.
    let (mean4, logvar4) = predict(
        &mut model,
        states.slice(ndarray::s![.., ..;2, ..]),
        actions.slice(ndarray::s![.., ..;2, ..]),
    )
    .expect("N=4");
    assert_eq!(mean4, mean8.slice(ndarray::s![.., ..;2, ..]));
    assert_eq!(logvar4, logvar8.slice(ndarray::s![.., ..;2, ..]));
    let again = predict(&mut model, states.view(), actions.view()).expect("N=8 again");
    assert_eq!((again.0, again.1), (mean8, logvar8));
    let empty = Array3::<f32>::zeros((2, 0, 2));
    let no_actions = Array3::<f32>::zeros((2, 0, 1));
    predict(&mut model, empty.view(), no_actions.view()).expect("N=0");
}

#[test]
fn wrong_batch_shapes_are_shape_errors() {
    let mut model = load_fixture("linear.onnx");
    assert_eq!(
        (model.ensemble_size(), model.state_dim(), model.action_dim()),
        (2, 2, 1)
    );
    type Dims = (usize, usize, usize);
    // (states, actions, the shape reported, the shape expected)
    let cases: [(Dims, Dims, [usize; 3], [usize; 3]); 3] = [
        ((3, 4, 2), (3, 4, 1), [3, 4, 2], [2, 4, 2]), // wrong E
        ((2, 4, 3), (2, 4, 1), [2, 4, 3], [2, 4, 2]), // wrong S
        ((2, 4, 2), (2, 5, 1), [2, 5, 1], [2, 4, 1]), // N differs
    ];
    for (s, a, got, expected) in cases {
        let states = Array3::<f32>::zeros(s);
        let actions = Array3::<f32>::zeros(a);
        let err = predict(&mut model, states.view(), actions.view()).unwrap_err();
        assert_eq!(err, DynamicsError::Shape { got, expected });
    }
    let states = Array3::<f32>::zeros((2, 4, 2));
    let actions = Array3::<f32>::zeros((2, 4, 1));
    let mut mean = Array3::<f32>::zeros((2, 3, 2));
    let mut logvar = Array3::<f32>::zeros((2, 4, 2));
    let err = model
        .predict(
            states.view(),
            actions.view(),
            mean.view_mut(),
            logvar.view_mut(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        DynamicsError::Shape {
            got: [2, 3, 2],
            expected: [2, 4, 2]
        }
    );
}

mod agreement;
mod checked;
mod pytorch;
mod refusal;
