//! The trainer learns a known system (the Gymnasium pendulum with small noise), is
//! deterministic for a seed, honours a caller's batch source, and refuses bad input.

use handful::train::{
    BatchSource, Bootstrap, HoldoutMetric, Mixture, TrainError, Trainer, TrainerConfig, Transitions,
};
use ndarray::{Array2, Array3, Axis};
use rand_chacha::ChaCha8Rng;

use super::pendulum_transitions;

fn small_config() -> TrainerConfig {
    TrainerConfig {
        ensemble_size: 3,
        hidden_sizes: vec![64, 64],
        weight_decays: vec![2.5e-5, 5e-5, 1e-4],
        batch_size: 64,
        max_epochs: 60,
        patience_epochs: 10,
        min_relative_improvement: 0.0,
        elite_count: 2,
        ..TrainerConfig::default()
    }
}

#[test]
fn fitting_the_pendulum_lowers_holdout_nll_and_predicts_the_change_of_state() {
    // Noise 0.01 (rad, rad/s): the best achievable NLL per dimension is
    // ½ln(2πσ²) + ½ ≈ −3.2 nats; the untrained model sits near +0.8. Reaching −2.5 means
    // both heads learned (a perfect mean with the initial variance e⁰ stays at ≈ +0.9).
    let data = pendulum_transitions(3000, 0.01, 1);
    let mut trainer = Trainer::new(small_config(), 2, 1, 42).expect("valid config");
    let report = trainer.fit(&data).expect("fit");
    let mean_of = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let before = mean_of(&report.initial.nll);
    let after = mean_of(&report.final_score.nll);
    assert!(report.scored_on_holdout && report.holdout_rows == 300);
    assert!(
        after < before - 3.0 && after < -2.5,
        "holdout NLL {before} → {after}"
    );
    assert_eq!(report.elites.len(), 2);

    // Fresh noise-free transitions: every elite's RMS error is under twice the training
    // noise (0.02), i.e. it learned the dynamics down to the noise it was shown, and it
    // explains ≥ 99% of the variance of each component of s' − s.
    let test = pendulum_transitions(500, 0.0, 2);
    let targets = &test.next_states - &test.states;
    let e = trainer.config().ensemble_size;
    let states = broadcast(&test.states, e);
    let actions = broadcast(&test.actions, e);
    let (mean, logvar) = trainer
        .predict(states.view(), actions.view())
        .expect("predict");
    for &member in &report.elites {
        for j in 0..2 {
            let column = targets.column(j);
            let variance = column.var(0.0);
            let mse = mean
                .index_axis(Axis(0), member)
                .column(j)
                .iter()
                .zip(column)
                .map(|(p, t)| (p - t).powi(2))
                .sum::<f32>()
                / column.len() as f32;
            assert!(
                mse < 4e-4 && mse < 0.01 * variance,
                "member {member} dim {j}: mse {mse}, variance {variance}"
            );
        }
    }
    assert!(
        logvar
            .iter()
            .all(|v| v.is_finite() && *v < 0.6 && *v > -10.1)
    );
}

fn broadcast(rows: &Array2<f32>, e: usize) -> Array3<f32> {
    rows.broadcast((e, rows.nrows(), rows.ncols()))
        .expect("broadcast")
        .to_owned()
}

#[test]
fn a_fit_takes_at_least_min_steps_and_ends_at_max_steps_whatever_patience_says() {
    // 600 training rows in batches of 64: 10 steps an epoch.
    let data = pendulum_transitions(667, 0.01, 3);
    let fit = |min_steps, max_steps, patience_epochs| {
        let config = TrainerConfig {
            max_epochs: 1_000,
            patience_epochs,
            min_steps,
            max_steps,
            ..small_config()
        };
        let mut trainer = Trainer::new(config, 2, 1, 7).expect("valid config");
        trainer.fit(&data).expect("fit")
    };
    // Patience 0 would stop after the first epoch; the floor keeps it going.
    let floored = fit(200, 0, 0);
    assert_eq!(floored.steps, 200, "{} steps", floored.steps);
    assert!(floored.stopped_early && !floored.capped);
    // Patience that never runs out: the cap ends the fit.
    let capped = fit(0, 300, 1_000);
    assert_eq!(capped.steps, 300, "{} steps", capped.steps);
    assert!(capped.capped && !capped.stopped_early);
}

#[test]
fn a_seed_reproduces_the_fit_exactly() {
    let data = pendulum_transitions(400, 0.01, 3);
    let config = TrainerConfig {
        max_epochs: 4,
        holdout_metric: HoldoutMetric::Nll,
        ..small_config()
    };
    let run = |seed| {
        let mut trainer = Trainer::new(config.clone(), 2, 1, seed).expect("valid config");
        let report = trainer.fit(&data).expect("fit");
        (trainer.params().clone(), report.epochs, report.elites)
    };
    let first = run(8);
    assert_eq!(first, run(8));
    assert_ne!(first.0, run(9).0);
}

/// Records the rows it hands out; half from each pool via `Mixture`.
struct Recording {
    inner: Mixture,
    seen: Vec<usize>,
}

impl BatchSource for Recording {
    fn prepare(&mut self, train_rows: &[usize], ensemble_size: usize, rng: &mut ChaCha8Rng) {
        self.inner.prepare(train_rows, ensemble_size, rng);
    }
    fn sample(&mut self, member: usize, rng: &mut ChaCha8Rng, out_rows: &mut [usize]) {
        self.inner.sample(member, rng, out_rows);
        self.seen.extend_from_slice(out_rows);
    }
}

#[test]
fn a_mixture_source_draws_half_its_rows_from_each_pool() {
    let data = pendulum_transitions(400, 0.01, 4);
    let config = TrainerConfig {
        max_epochs: 2,
        ..small_config()
    };
    let mut trainer = Trainer::new(config, 2, 1, 0).expect("valid config");
    let mut source = Recording {
        inner: Mixture::new(100, 0.5),
        seen: Vec::new(),
    };
    trainer.fit_with(&data, &mut source).expect("fit");
    let first = source.seen.iter().filter(|&&r| r < 100).count();
    assert!(!source.seen.is_empty());
    assert_eq!(
        2 * first,
        source.seen.len(),
        "expert rows are exactly half of every batch"
    );
}

#[test]
fn a_fit_reports_its_progress_after_every_epoch() {
    let data = pendulum_transitions(200, 0.01, 6);
    let config = TrainerConfig {
        max_epochs: 4,
        ..small_config()
    };
    let mut trainer = Trainer::new(config, 2, 1, 0).expect("valid config");
    let mut seen: Vec<(usize, usize, f64)> = Vec::new();
    let report = trainer
        .fit_observed(&data, &mut Bootstrap::default(), &mut |p| {
            seen.push((p.epoch, p.steps, p.holdout_nll));
        })
        .expect("fit");
    assert_eq!(seen.len(), report.epochs_run);
    assert!(seen.iter().enumerate().all(|(i, s)| s.0 == i), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[1].1 > w[0].1),
        "steps grow: {seen:?}"
    );
    assert_eq!(seen.last().map(|s| s.1), Some(report.steps));
    for (epoch, (_, _, nll)) in seen.iter().enumerate() {
        let per_member = &report.epochs[epoch].holdout.nll;
        let mean = per_member.iter().map(|v| f64::from(*v)).sum::<f64>() / per_member.len() as f64;
        assert!(
            (nll - mean).abs() < 1e-9,
            "epoch {epoch}: {nll} against {mean}"
        );
    }
}

struct Leaky;

impl BatchSource for Leaky {
    fn prepare(&mut self, _: &[usize], _: usize, _: &mut ChaCha8Rng) {}
    fn sample(&mut self, _: usize, _: &mut ChaCha8Rng, out_rows: &mut [usize]) {
        out_rows.fill(10_000);
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let data = pendulum_transitions(50, 0.01, 5);
    let mut trainer = Trainer::new(small_config(), 2, 1, 0).expect("valid config");
    assert!(matches!(
        trainer.fit_with(&data, &mut Leaky),
        Err(TrainError::BadSample { row: 10_000, .. })
    ));

    let mut nan = data.clone();
    nan.next_states[[7, 1]] = f32::NAN;
    assert_eq!(
        trainer.fit(&nan),
        Err(TrainError::NonFinite {
            what: "next_states",
            row: 7
        })
    );
    let wide = Transitions {
        actions: Array2::zeros((50, 2)),
        ..data.clone()
    };
    assert!(matches!(
        trainer.fit(&wide),
        Err(TrainError::Columns {
            what: "actions",
            found: 2,
            expected: 1
        })
    ));
    let empty = Transitions::new(
        Array2::zeros((0, 2)),
        Array2::zeros((0, 1)),
        Array2::zeros((0, 2)),
    )
    .expect("shapes agree");
    assert!(matches!(
        trainer.fit(&empty),
        Err(TrainError::TooFewRows { rows: 0, .. })
    ));

    for (config, key) in [
        (
            TrainerConfig {
                ensemble_size: 0,
                ..TrainerConfig::default()
            },
            "ensemble_size",
        ),
        (
            TrainerConfig {
                weight_decays: vec![1e-4; 2],
                ..TrainerConfig::default()
            },
            "weight_decays",
        ),
        (
            TrainerConfig {
                holdout_fraction: 1.0,
                ..TrainerConfig::default()
            },
            "holdout_fraction",
        ),
        (
            TrainerConfig {
                elite_count: 6,
                ..TrainerConfig::default()
            },
            "elite_count",
        ),
        (
            TrainerConfig {
                min_steps: 100,
                max_steps: 50,
                ..TrainerConfig::default()
            },
            "max_steps",
        ),
        // Sizes that would allocate gigabytes (or overflow) before the first step.
        (
            TrainerConfig {
                hidden_sizes: vec![2_000_000, 2_000_000],
                ..TrainerConfig::default()
            },
            "hidden_sizes/ensemble_size",
        ),
        (
            TrainerConfig {
                hidden_sizes: vec![usize::MAX / 2, 4],
                ..TrainerConfig::default()
            },
            "hidden_sizes/ensemble_size",
        ),
        (
            TrainerConfig {
                ensemble_size: 1_000_000,
                elite_count: 5,
                ..TrainerConfig::default()
            },
            "hidden_sizes/ensemble_size",
        ),
        (
            TrainerConfig {
                batch_size: usize::MAX,
                ..TrainerConfig::default()
            },
            "batch_size",
        ),
    ] {
        assert!(
            matches!(Trainer::new(config, 2, 1, 0), Err(TrainError::Config { key: k, .. }) if k == key),
            "{key}"
        );
    }
    let config: TrainerConfig =
        toml::from_str("ensemble_size = 7\nelite_count = 5").expect("partial config");
    assert_eq!(config.hidden_sizes, vec![200, 200, 200]);
}
