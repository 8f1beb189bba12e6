//! The hand-written backward pass against central finite differences of an independent
//! f64 re-implementation of the PETS loss, for every parameter tensor (every layer's
//! weights and biases, `max_logvar`, `min_logvar`) on a tiny ensemble whose log-variance
//! clamp is active on both sides.

use handful::train::{
    Params, Regularisation, Trainer, TrainerConfig, Workspace, loss_and_gradient,
};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The PETS loss in f64, written from the formula, parameters as flat f64 tensors in
/// `Params::tensors` order.
fn reference_loss(
    shape: &Params,
    flat: &[Vec<f64>],
    x: &Array3<f32>,
    y: &Array3<f32>,
    reg: &Regularisation,
) -> f64 {
    let layers = shape.weights.len();
    let (w, rest) = flat.split_at(layers);
    let (b, bounds) = rest.split_at(layers);
    let (max, min) = (&bounds[0], &bounds[1]);
    let (members, rows, d) = x.dim();
    let s = shape.state_dim();
    let mut total = 0.0;
    for e in 0..members {
        let mut member = 0.0;
        for n in 0..rows {
            let mut h: Vec<f64> = (0..d).map(|k| f64::from(x[[e, n, k]])).collect();
            for l in 0..layers {
                let (_, fan_in, fan_out) = shape.weights[l].dim();
                let mut z = vec![0.0; fan_out];
                for (o, z) in z.iter_mut().enumerate() {
                    *z = b[l][e * fan_out + o]
                        + (0..fan_in)
                            .map(|i| h[i] * w[l][(e * fan_in + i) * fan_out + o])
                            .sum::<f64>();
                }
                h = if l + 1 < layers {
                    z.iter().map(|z| z / (1.0 + (-z).exp())).collect()
                } else {
                    z
                };
            }
            for j in 0..s {
                let lv = max[j] - softplus(max[j] - h[s + j]);
                let lv = min[j] + softplus(lv - min[j]);
                let diff = h[j] - f64::from(y[[e, n, j]]);
                member += (diff * diff * (-lv).exp() + lv) / (rows * s) as f64;
            }
        }
        total += member;
    }
    for (l, decay) in reg.weight_decays.iter().enumerate() {
        total += 0.5 * f64::from(*decay) * w[l].iter().map(|v| v * v).sum::<f64>();
    }
    total
        + f64::from(reg.logvar_bound_penalty) * (max.iter().sum::<f64>() - min.iter().sum::<f64>())
}

#[test]
fn analytic_gradients_match_central_differences_for_every_tensor() {
    let config = TrainerConfig {
        ensemble_size: 2,
        hidden_sizes: vec![5, 4],
        elite_count: 2,
        weight_decays: vec![1e-4],
        ..TrainerConfig::default()
    };
    let trainer = Trainer::new(config, 2, 1, 7).expect("valid config");
    let mut params = trainer.params().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Larger weights than the initialisation so the raw log-variance spans both soft
    // bounds, and bounds close together so both softplus terms have real slopes.
    for w in &mut params.weights {
        w.mapv_inplace(|_| rng.random_range(-1.5..1.5));
    }
    for b in &mut params.biases {
        b.mapv_inplace(|_| rng.random_range(-0.5..0.5));
    }
    params.max_logvar.assign(&ndarray::arr1(&[0.5, 0.2]));
    params.min_logvar.assign(&ndarray::arr1(&[-1.0, -0.6]));
    let x = Array3::from_shape_fn((2, 6, 3), |_| rng.random_range(-2.0f32..2.0));
    let y = Array3::from_shape_fn((2, 6, 2), |_| rng.random_range(-1.0f32..1.0));
    let reg = Regularisation {
        weight_decays: vec![0.05, 0.1, 0.2],
        logvar_bound_penalty: 0.01,
    };

    let mut grads = params.zeros_like();
    let (loss, _) = loss_and_gradient(
        &params,
        x.view(),
        y.view(),
        &reg,
        &mut grads,
        &mut Workspace::default(),
    );
    let mut flat: Vec<Vec<f64>> = params
        .tensors()
        .iter()
        .map(|t| t.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let reference = reference_loss(&params, &flat, &x, &y, &reg);
    assert!(
        (loss - reference).abs() < 1e-5 * reference.abs().max(1.0),
        "loss {loss} vs f64 reference {reference}"
    );

    let names = [
        "W0",
        "W1",
        "W2",
        "b0",
        "b1",
        "b2",
        "max_logvar",
        "min_logvar",
    ];
    let analytic: Vec<Vec<f32>> = grads.tensors().iter().map(|t| t.to_vec()).collect();
    assert_eq!(analytic.len(), names.len());
    let step = 1e-6;
    for (t, name) in names.iter().enumerate() {
        let mut largest = 0.0f64;
        for i in 0..flat[t].len() {
            let original = flat[t][i];
            flat[t][i] = original + step;
            let up = reference_loss(&params, &flat, &x, &y, &reg);
            flat[t][i] = original - step;
            let down = reference_loss(&params, &flat, &x, &y, &reg);
            flat[t][i] = original;
            let numeric = (up - down) / (2.0 * step);
            let got = f64::from(analytic[t][i]);
            largest = largest.max(numeric.abs());
            assert!(
                (got - numeric).abs() <= 1e-4 + 1e-3 * numeric.abs(),
                "{name}[{i}]: analytic {got} vs numeric {numeric}"
            );
        }
        assert!(
            largest > 1e-3,
            "{name}: every gradient is ~0, the check would be vacuous"
        );
    }
}
