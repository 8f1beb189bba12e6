//! [`Trainer`]: builds an ensemble from a [`TrainerConfig`], fits it to [`Transitions`]
//! (holdout split, input statistics, minibatch Adam, early stopping, elites) and runs
//! its pure forward pass.
//!
//! Deterministic for a seed: initialisation, the holdout split and every minibatch draw
//! come from one `ChaCha8Rng`. Runs on the calling thread only; meant for a background
//! (lower-priority) thread, never the control thread.

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Axis, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::data::{Transitions, feature_dim, features, input_statistics};
use super::network::{self, Params, Regularisation, Workspace};
use super::optim::Adam;
use super::sampling::{BatchSource, Bootstrap};
use super::{HoldoutMetric, TrainError, TrainerConfig};
use crate::clock::Clock;

/// Per-member scores on the holdout rows (the training rows when there is no holdout).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HoldoutScore {
    /// Mean squared error of the mean prediction of `s' − s`, per member `[E]`.
    pub mse: Vec<f32>,
    /// Gaussian NLL per dimension, `½(d²·e^−lv + lv + ln 2π)` averaged, per member `[E]`.
    pub nll: Vec<f32>,
}

impl HoldoutScore {
    fn metric(&self, metric: HoldoutMetric) -> &[f32] {
        match metric {
            HoldoutMetric::Mse => &self.mse,
            HoldoutMetric::Nll => &self.nll,
        }
    }
}

/// One epoch of a fit.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochReport {
    /// Mean over the epoch's steps of the total loss (summed over members).
    pub train_loss: f64,
    pub holdout: HoldoutScore,
}

/// Where a fit is, after each epoch (for a progress line; see [`Trainer::fit_observed`]).
#[derive(Clone, Copy, Debug)]
pub struct FitProgress {
    pub epoch: usize,
    /// Gradient steps so far, and the floor and cap that end the fit (`max_steps` 0: no cap).
    pub steps: usize,
    pub min_steps: usize,
    pub max_steps: usize,
    /// Mean over members of this epoch's holdout NLL.
    pub holdout_nll: f64,
    pub elapsed_us: u64,
}

/// What a fit did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainReport {
    pub epochs: Vec<EpochReport>,
    pub epochs_run: usize,
    pub steps: usize,
    /// Whether patience ran out (after `min_steps`) before `max_epochs` and `max_steps`.
    pub stopped_early: bool,
    /// Whether the fit ended at `max_steps`.
    pub capped: bool,
    /// Scores before the first step of this fit.
    pub initial: HoldoutScore,
    /// Scores of the kept model (each member at its best epoch).
    pub final_score: HoldoutScore,
    /// Whether scores are on held-out rows (`false`: on the training rows).
    pub scored_on_holdout: bool,
    /// Elite members, ascending indices.
    pub elites: Vec<usize>,
    pub train_rows: usize,
    pub holdout_rows: usize,
    pub training_data_sha256: String,
    pub wall_time_us: u64,
}

/// A probabilistic ensemble and everything needed to keep training it. `Clone` copies
/// the whole training state (weights, statistics, optimiser, RNG): a snapshot to return
/// to when a candidate fit is rejected.
pub struct Trainer {
    config: TrainerConfig,
    state_dim: usize,
    action_dim: usize,
    params: Params,
    input_mean: Array1<f32>,
    input_std: Array1<f32>,
    regularisation: Regularisation,
    adam: Adam,
    rng: ChaCha8Rng,
    elites: Vec<usize>,
    training_data_sha256: Option<String>,
    workspace: Workspace,
}

impl Clone for Trainer {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            state_dim: self.state_dim,
            action_dim: self.action_dim,
            params: self.params.clone(),
            input_mean: self.input_mean.clone(),
            input_std: self.input_std.clone(),
            regularisation: self.regularisation.clone(),
            adam: self.adam.clone(),
            rng: self.rng.clone(),
            elites: self.elites.clone(),
            training_data_sha256: self.training_data_sha256.clone(),
            // Scratch space only; rebuilt on first use.
            workspace: Workspace::default(),
        }
    }
}

/// Rows per forward pass when scoring.
const EVAL_CHUNK_ROWS: usize = 1024;

impl Trainer {
    /// A fresh ensemble (PETS initialisation: truncated normal weights with standard
    /// deviation `1/(2√fan_in)`, zero biases, bounds at their configured initial values).
    pub fn new(
        config: TrainerConfig,
        state_dim: usize,
        action_dim: usize,
        seed: u64,
    ) -> Result<Self, TrainError> {
        let weight_decays = validate(&config, state_dim, action_dim)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = feature_dim(state_dim, action_dim, &config.angle_state_indices);
        let mut sizes = vec![d];
        sizes.extend(&config.hidden_sizes);
        sizes.push(2 * state_dim);
        let mut params = Params::zeros(config.ensemble_size, &sizes);
        for w in &mut params.weights {
            let std = 0.5 / (w.dim().1 as f32).sqrt();
            let normal = Normal::new(0.0f32, std).map_err(|_| TrainError::Config {
                key: "hidden_sizes",
                reason: "gives a non-finite initial weight scale",
            })?;
            for v in w.iter_mut() {
                *v = loop {
                    let draw = normal.sample(&mut rng);
                    if draw.abs() <= 2.0 * std {
                        break draw;
                    }
                };
            }
        }
        params.max_logvar.fill(config.max_logvar_init);
        params.min_logvar.fill(config.min_logvar_init);
        let adam = Adam::new(&params, config.learning_rate);
        Ok(Self {
            regularisation: Regularisation {
                weight_decays,
                logvar_bound_penalty: config.logvar_bound_penalty,
            },
            elites: (0..config.ensemble_size).collect(),
            config,
            state_dim,
            action_dim,
            params,
            input_mean: Array1::zeros(d),
            input_std: Array1::ones(d),
            adam,
            rng,
            training_data_sha256: None,
            workspace: Workspace::default(),
        })
    }

    /// A trainer holding only the elite members (in elite order), for export: its
    /// ensemble is `elite_count` members, all of them elites.
    pub fn elites_only(&self) -> Trainer {
        let pick = &self.elites;
        let mut view = self.clone();
        view.params.weights = self
            .params
            .weights
            .iter()
            .map(|w| w.select(Axis(0), pick))
            .collect();
        view.params.biases = self
            .params
            .biases
            .iter()
            .map(|b| b.select(Axis(0), pick))
            .collect();
        view.config.ensemble_size = pick.len();
        view.config.export_elites_only = false;
        view.elites = (0..pick.len()).collect();
        view.adam = Adam::new(&view.params, self.config.learning_rate);
        view
    }

    /// Changes the learning rate and epoch budget of later fits (optimiser moments kept).
    pub fn set_schedule(
        &mut self,
        learning_rate: f32,
        max_epochs: usize,
    ) -> Result<(), TrainError> {
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(TrainError::Config {
                key: "learning_rate",
                reason: "must be finite and positive",
            });
        }
        self.config.learning_rate = learning_rate;
        self.config.max_epochs = max_epochs;
        self.adam.set_learning_rate(learning_rate);
        Ok(())
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }
    pub fn state_dim(&self) -> usize {
        self.state_dim
    }
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// Input standardisation `(mean, std)`, `[S + A]` each, from the last fit's training rows.
    pub fn input_statistics(&self) -> (&Array1<f32>, &Array1<f32>) {
        (&self.input_mean, &self.input_std)
    }
    /// Elite members (ascending); all members before the first fit.
    pub fn elites(&self) -> &[usize] {
        &self.elites
    }
    /// SHA-256 of the last fit's data, if any.
    pub fn training_data_sha256(&self) -> Option<&str> {
        self.training_data_sha256.as_deref()
    }

    /// Fits on `data` with PETS' per-member bootstrap.
    pub fn fit(&mut self, data: &Transitions) -> Result<TrainReport, TrainError> {
        self.fit_with(data, &mut Bootstrap::default())
    }

    /// Fits on `data`, `source` choosing each member's minibatch rows among the
    /// training rows (the holdout is split off first and never given to `source`).
    /// Continues from the current weights and optimiser state.
    pub fn fit_with(
        &mut self,
        data: &Transitions,
        source: &mut dyn BatchSource,
    ) -> Result<TrainReport, TrainError> {
        self.fit_observed(data, source, &mut |_| {})
    }

    /// [`Trainer::fit_with`], telling `progress` where the fit is after each epoch.
    pub fn fit_observed(
        &mut self,
        data: &Transitions,
        source: &mut dyn BatchSource,
        progress: &mut dyn FnMut(&FitProgress),
    ) -> Result<TrainReport, TrainError> {
        data.validate(self.state_dim, self.action_dim)?;
        let clock = Clock::real();
        let start_us = clock.now_us();
        let rows = data.len();
        let mut order: Vec<usize> = (0..rows).collect();
        order.shuffle(&mut self.rng);
        let holdout_count = (rows as f64 * f64::from(self.config.holdout_fraction)) as usize;
        let (holdout, train) = order.split_at_mut(holdout_count.min(rows));
        if train.is_empty() {
            return Err(TrainError::TooFewRows {
                rows,
                train_rows: 0,
            });
        }
        holdout.sort_unstable();
        train.sort_unstable();
        let (holdout, train) = (holdout.to_vec(), train.to_vec());
        let mut is_train = vec![false; rows];
        train.iter().for_each(|&r| is_train[r] = true);

        let inputs = data.inputs(&self.config.angle_state_indices);
        let (mean, std) = input_statistics(inputs.view(), &train);
        let inputs = (inputs - &mean) / &std;
        self.restandardise(mean, std);
        let targets = data.targets();
        source.prepare(&train, self.config.ensemble_size, &mut self.rng);

        let scored_rows = if holdout.is_empty() { &train } else { &holdout };
        let metric = self.config.holdout_metric;
        let initial = self.score(inputs.view(), targets.view(), scored_rows);
        let mut best_score = initial.metric(metric).to_vec();
        let mut best = self.params.clone();
        let (e, d, s) = (self.config.ensemble_size, inputs.ncols(), self.state_dim);
        let batch = self.config.batch_size.min(train.len());
        let steps_per_epoch = train.len().div_ceil(batch);
        let mut x = Array3::zeros((e, batch, d));
        let mut y = Array3::zeros((e, batch, s));
        let mut batch_rows = vec![usize::MAX; batch];
        let mut grads = self.params.zeros_like();
        let (mut epochs, mut stale, mut steps) = (Vec::new(), 0, 0);
        let (mut stopped_early, mut capped) = (false, false);
        for epoch in 0..self.config.max_epochs {
            // A stop signal (SIGINT, SIGTERM) ends a fit at the next epoch: the run it
            // belongs to is ending and must not wait minutes for it.
            if let Some(signal) = crate::signals::requested() {
                return Err(TrainError::Cancelled { signal });
            }
            let mut loss_sum = 0.0;
            for _ in 0..steps_per_epoch {
                for member in 0..e {
                    batch_rows.fill(usize::MAX);
                    source.sample(member, &mut self.rng, &mut batch_rows);
                    for (i, &row) in batch_rows.iter().enumerate() {
                        if !is_train.get(row).copied().unwrap_or(false) {
                            return Err(TrainError::BadSample {
                                row,
                                rows: train.len(),
                            });
                        }
                        x.slice_mut(s![member, i, ..]).assign(&inputs.row(row));
                        y.slice_mut(s![member, i, ..]).assign(&targets.row(row));
                    }
                }
                let (loss, _) = network::loss_and_gradient(
                    &self.params,
                    x.view(),
                    y.view(),
                    &self.regularisation,
                    &mut grads,
                    &mut self.workspace,
                );
                if !loss.is_finite() {
                    return Err(TrainError::Diverged { epoch });
                }
                self.adam.step(&mut self.params, &grads);
                loss_sum += loss;
                steps += 1;
            }
            let holdout_score = self.score(inputs.view(), targets.view(), scored_rows);
            let mut improved = false;
            for (member, (&now, best_member)) in holdout_score
                .metric(metric)
                .iter()
                .zip(&mut best_score)
                .enumerate()
            {
                let gain = (*best_member - now) / best_member.abs().max(f32::MIN_POSITIVE);
                if now.is_finite() && gain > self.config.min_relative_improvement {
                    *best_member = now;
                    best.copy_member_from(&self.params, member);
                    improved = true;
                }
            }
            if improved {
                best.max_logvar.assign(&self.params.max_logvar);
                best.min_logvar.assign(&self.params.min_logvar);
            }
            stale = if improved { 0 } else { stale + 1 };
            let nll = &holdout_score.nll;
            progress(&FitProgress {
                epoch,
                steps,
                min_steps: self.config.min_steps,
                max_steps: self.config.max_steps,
                holdout_nll: nll.iter().map(|v| f64::from(*v)).sum::<f64>()
                    / nll.len().max(1) as f64,
                elapsed_us: clock.now_us().saturating_sub(start_us),
            });
            epochs.push(EpochReport {
                train_loss: loss_sum / steps_per_epoch as f64,
                holdout: holdout_score,
            });
            stopped_early = stale >= self.config.patience_epochs && steps >= self.config.min_steps;
            capped = self.config.max_steps > 0 && steps >= self.config.max_steps;
            if stopped_early || capped {
                break;
            }
        }
        self.params = best;
        let final_score = self.score(inputs.view(), targets.view(), scored_rows);
        let mut ranked: Vec<usize> = (0..e).collect();
        let scores = final_score.metric(metric);
        ranked.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        ranked.truncate(self.config.elite_count);
        ranked.sort_unstable();
        self.elites = ranked;
        let sha = data.sha256();
        self.training_data_sha256 = Some(sha.clone());
        Ok(TrainReport {
            epochs_run: epochs.len(),
            stopped_early,
            capped,
            epochs,
            steps,
            initial,
            final_score,
            scored_on_holdout: !holdout.is_empty(),
            elites: self.elites.clone(),
            train_rows: train.len(),
            holdout_rows: holdout.len(),
            training_data_sha256: sha,
            wall_time_us: clock.now_us().saturating_sub(start_us),
        })
    }

    /// Adopts new input statistics without changing the function the network computes.
    ///
    /// A warm-started fit recomputes the standardisation on the (grown) data. Swapping the
    /// statistics under trained weights would hand the first layer inputs on another
    /// scale: the warm start would begin from a different, usually much worse, model.
    /// With `x_old = (u − m)/σ` and `x_new = (u − m')/σ'`, `x_old = x_new·σ'/σ + (m' − m)/σ`,
    /// so the first layer's `W_new[j,:] = W[j,:]·σ'_j/σ_j` and
    /// `b_new = b + Σ_j W[j,:]·(m'_j − m_j)/σ_j` give the same output for every `u`.
    /// Adam's first-layer moments are rescaled the same way as their weights' gradients
    /// (`∂/∂W_new = ∂/∂W · σ_j/σ'_j`) would be; they only steer the next few steps.
    /// Before the first fit the weights are an initialisation, not a function to keep:
    /// the statistics are simply adopted.
    fn restandardise(&mut self, mean: Array1<f32>, std: Array1<f32>) {
        let trained = self.training_data_sha256.is_some();
        if let Some(first) = self.params.weights.first_mut().filter(|_| trained) {
            let scale: Array1<f32> = &std / &self.input_std;
            let shift: Array1<f32> = (&mean - &self.input_mean) / &self.input_std;
            let bias = &mut self.params.biases[0];
            for (mut w, mut b) in first.outer_iter_mut().zip(bias.outer_iter_mut()) {
                // b += shiftᵀ W (before W is rescaled), then W[j,:] *= scale[j].
                b += &shift.dot(&w);
                for (mut row, s) in w.outer_iter_mut().zip(scale.iter()) {
                    row *= *s;
                }
            }
            self.adam.rescale_first_layer(&scale);
        }
        (self.input_mean, self.input_std) = (mean, std);
    }

    /// The ensemble's prediction of `s' − s`: `states` `E × N × S`, `actions`
    /// `E × N × A` (raw units, standardised here as in the exported graph) → `(mean,
    /// logvar)`, each `E × N × S`. Errors on mismatching shapes.
    pub fn predict(
        &self,
        states: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
    ) -> Result<(Array3<f32>, Array3<f32>), TrainError> {
        let (e, n, s) = states.dim();
        let expected = [
            ("states (ensemble axis)", e, self.config.ensemble_size),
            ("states", s, self.state_dim),
            ("actions", actions.dim().2, self.action_dim),
        ];
        for (what, found, expected) in expected {
            if found != expected {
                return Err(TrainError::Columns {
                    what,
                    found,
                    expected,
                });
            }
        }
        if actions.dim().0 != e || actions.dim().1 != n {
            return Err(TrainError::Rows {
                what: "actions",
                found: actions.dim().1,
                expected: n,
            });
        }
        let flat_states = states.to_shape((e * n, s)).map_err(|_| TrainError::Rows {
            what: "states",
            found: n,
            expected: n,
        })?;
        let flat_actions =
            actions
                .to_shape((e * n, self.action_dim))
                .map_err(|_| TrainError::Rows {
                    what: "actions",
                    found: n,
                    expected: n,
                })?;
        let features = features(
            flat_states.view(),
            flat_actions.view(),
            &self.config.angle_state_indices,
        );
        let d = features.ncols();
        let mut x = features
            .into_shape_with_order((e, n, d))
            .unwrap_or_default();
        x -= &self.input_mean;
        x /= &self.input_std;
        Ok(network::predict(
            &self.params,
            x.view(),
            &mut Workspace::default(),
        ))
    }

    /// Per-member MSE and NLL of standardised `inputs` (`N × D`) against `targets`
    /// (`N × S`) over `rows`, every member seeing every row.
    fn score(
        &mut self,
        inputs: ArrayView2<'_, f32>,
        targets: ArrayView2<'_, f32>,
        rows: &[usize],
    ) -> HoldoutScore {
        let e = self.config.ensemble_size;
        let (mut sq, mut nll) = (vec![0.0f64; e], vec![0.0f64; e]);
        let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        for chunk in rows.chunks(EVAL_CHUNK_ROWS) {
            let picked: Array2<f32> = inputs.select(Axis(0), chunk);
            let x = picked
                .broadcast((e, chunk.len(), inputs.ncols()))
                .map(|b| b.to_owned());
            let Some(x) = x else { continue };
            let (mean, logvar) = network::predict(&self.params, x.view(), &mut self.workspace);
            for member in 0..e {
                for (i, &row) in chunk.iter().enumerate() {
                    for j in 0..self.state_dim {
                        let d = f64::from(mean[[member, i, j]] - targets[[row, j]]);
                        let lv = f64::from(logvar[[member, i, j]]);
                        sq[member] += d * d;
                        nll[member] += 0.5 * d * d * (-lv).exp() + 0.5 * lv + half_ln_2pi;
                    }
                }
            }
        }
        let count = (rows.len() * self.state_dim).max(1) as f64;
        HoldoutScore {
            mse: sq.iter().map(|v| (v / count) as f32).collect(),
            nll: nll.iter().map(|v| (v / count) as f32).collect(),
        }
    }
}

/// Checks a config for `S`, `A`; returns the per-layer weight decays.
/// At most this many weights in an ensemble (all members).
pub const MAX_PARAMETERS: usize = 50_000_000;

/// At most this many rows in a minibatch.
pub const MAX_BATCH: usize = 1_000_000;

fn validate(
    config: &TrainerConfig,
    state_dim: usize,
    action_dim: usize,
) -> Result<Vec<f32>, TrainError> {
    let bad = |key, reason| Err(TrainError::Config { key, reason });
    if state_dim == 0 || action_dim == 0 {
        return bad("state_dim/action_dim", "must be at least 1");
    }
    if config.ensemble_size == 0 {
        return bad("ensemble_size", "must be at least 1");
    }
    if config.angle_state_indices.iter().any(|&i| i >= state_dim) {
        return bad(
            "angle_state_indices",
            "every index must name a state channel",
        );
    }
    let mut seen = config.angle_state_indices.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != config.angle_state_indices.len() {
        return bad("angle_state_indices", "indices must not repeat");
    }
    if config.hidden_sizes.contains(&0) {
        return bad("hidden_sizes", "every hidden layer needs at least 1 unit");
    }
    // The parameters, Adam's two moments and the gradient: 4 floats each, allocated up
    // front. A typo (`hidden_sizes = [2000000]`) must be an error, not an abort.
    let d = feature_dim(state_dim, action_dim, &config.angle_state_indices);
    let params = std::iter::once(d)
        .chain(config.hidden_sizes.iter().copied())
        .chain(std::iter::once(2 * state_dim))
        .collect::<Vec<_>>()
        .windows(2)
        .try_fold(0usize, |sum, w| {
            w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(sum)
        })
        .and_then(|per_member| per_member.checked_mul(config.ensemble_size));
    if params.is_none_or(|p| p > MAX_PARAMETERS) {
        return bad(
            "hidden_sizes/ensemble_size",
            "give more than 50 million parameters in all (the PETS ensemble has 0.4 million)",
        );
    }
    if config.batch_size == 0 || config.batch_size > MAX_BATCH {
        return bad("batch_size", "must be between 1 and 1,000,000");
    }
    if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
        return bad("learning_rate", "must be finite and positive");
    }
    if config.max_steps > 0 && config.max_steps < config.min_steps {
        return bad("max_steps", "must be 0 (no cap) or at least min_steps");
    }
    if !(0.0..1.0).contains(&config.holdout_fraction) {
        return bad("holdout_fraction", "must be in [0, 1)");
    }
    if config.elite_count == 0 || config.elite_count > config.ensemble_size {
        return bad("elite_count", "must be between 1 and ensemble_size");
    }
    if !(config.max_logvar_init > config.min_logvar_init && config.min_logvar_init.is_finite()) {
        return bad(
            "max_logvar_init",
            "must be finite and above min_logvar_init",
        );
    }
    let layers = config.hidden_sizes.len() + 1;
    match config.weight_decays.len() {
        0 => Ok(vec![0.0; layers]),
        1 => Ok(vec![config.weight_decays[0]; layers]),
        n if n == layers => Ok(config.weight_decays.clone()),
        _ => bad(
            "weight_decays",
            "needs one value per layer (hidden layers + output) or one for all",
        ),
    }
}
