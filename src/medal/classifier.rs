//! MEDAL's state classifier `C(s)`: the probability that `s` comes from the
//! demonstrations' start distribution rather than from the states the backward controller
//! visited, and the backward planner's cost made from it.
//!
//! Network (as in MEDAL): one hidden layer of [`HIDDEN`] ReLU units and a logistic output,
//! `C(s) = σ(w₂·relu(W₁ f(s) + b₁) + b₂)`. Features `f(s)`: each angle channel as
//! `(sin θ, cos θ)`, every other channel standardised by the demonstrations' mean and
//! standard deviation (fixed once, so a warm-started fit sees the same inputs).
//!
//! Training ([`Classifier::fit`], off the control thread): `positives` states drawn with
//! replacement from the positives, `negatives` from the negatives (400 and 400 by default,
//! as MEDAL), full-batch Adam on the binary cross-entropy for `steps_per_fit` steps, warm
//! started from the previous weights: MEDAL's discriminator trained a little every K
//! environment steps. Every draw comes from the classifier's own seeded RNG.
//!
//! The backward cost ([`ClassifierCost`]): MEDAL's reward `−log(1 − C(s'))` is
//! `softplus(z)` for the logit `z`, so the cost added per row is `−softplus(z)` (the logit
//! clamped to ±[`LOGIT_LIMIT`] so one confident row cannot dominate a plan). It reads the
//! weights from a [`ClassifierSlot`] the learner publishes to: a new version is copied in
//! (fixed-size, no allocation) at the next call that finds the slot free, never waited for
//! in real time. In lockstep ([`ClassifierSlot::lockstep`]) the hand-over is by tick
//! instead: before it scores tick `t`, the cost waits until the learner has taken in the
//! record of the phase's tick `t − 1` (and fitted on it, if a fit was due), so the version
//! that plans each tick depends on the data alone, never on which thread ran faster, and
//! a lockstep practice is reproducible bit for bit.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use handful_protocol::MAX_STATE_DIM;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::mpc::Cost;
use crate::mpc::fastmath;

/// Hidden units (MEDAL's classifier: one hidden layer).
pub const HIDDEN: usize = 128;
/// Most features a state can have (every channel an angle).
pub const MAX_FEATURES: usize = 2 * MAX_STATE_DIM;
/// The logit is clamped to this magnitude in the cost.
pub const LOGIT_LIMIT: f32 = 20.0;

/// How the classifier learns and decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Demonstration states per fit (drawn with replacement).
    pub positives: usize,
    /// Visited states per fit (drawn with replacement).
    pub negatives: usize,
    /// Adam steps per fit (full batch).
    pub steps_per_fit: usize,
    pub learning_rate: f64,
    /// L2 penalty on the weights.
    pub weight_decay: f64,
    /// `C(s)` at or above which a state counts as demonstration-like: a backward phase
    /// ends when it has held for `hold_steps` steps in a row.
    pub threshold: f32,
    pub hold_steps: u32,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            positives: 400,
            negatives: 400,
            steps_per_fit: 100,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            threshold: 0.8,
            hold_steps: 10,
        }
    }
}

impl ClassifierConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.positives == 0 || self.negatives == 0 {
            anyhow::bail!("classifier: positives and negatives per fit must be at least 1");
        }
        if self.positives > 1_000_000 || self.negatives > 1_000_000 {
            anyhow::bail!("classifier: at most 1,000,000 positives and negatives per fit");
        }
        if self.steps_per_fit == 0 || self.steps_per_fit > 100_000 {
            anyhow::bail!("classifier: steps per fit must be from 1 to 100,000");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            anyhow::bail!("classifier: the learning rate must be a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            anyhow::bail!("classifier: the weight decay must be zero or positive");
        }
        if self.hold_steps == 0 {
            anyhow::bail!("classifier: a state must hold for at least one step");
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            anyhow::bail!("classifier: the threshold is a probability strictly between 0 and 1");
        }
        Ok(())
    }
}

/// The classifier's weights and input transform, fixed-size so a copy never allocates.
#[derive(Clone, Debug)]
pub struct ClassifierWeights {
    /// 0 before the first fit (then every state scores 0.5).
    pub version: u32,
    state_dim: usize,
    features: usize,
    angle: [bool; MAX_STATE_DIM],
    mean: [f32; MAX_STATE_DIM],
    inv_std: [f32; MAX_STATE_DIM],
    /// `features × HIDDEN`, row-major (rows past `features` unused).
    w1: [[f32; HIDDEN]; MAX_FEATURES],
    b1: [f32; HIDDEN],
    w2: [f32; HIDDEN],
    b2: f32,
}

impl ClassifierWeights {
    /// The input transform of `state_dim` channels (`angles` among them), standardised by
    /// `mean` and `std` (floored at 1e-3); every weight zero: `C(s) = 0.5`.
    fn blank(state_dim: usize, angles: &[usize], mean: &[f32], std: &[f32]) -> Box<Self> {
        let mut w = Box::new(Self {
            version: 0,
            state_dim,
            features: 0,
            angle: [false; MAX_STATE_DIM],
            mean: [0.0; MAX_STATE_DIM],
            inv_std: [1.0; MAX_STATE_DIM],
            w1: [[0.0; HIDDEN]; MAX_FEATURES],
            b1: [0.0; HIDDEN],
            w2: [0.0; HIDDEN],
            b2: 0.0,
        });
        for &i in angles {
            w.angle[i] = true;
        }
        for i in 0..state_dim {
            w.mean[i] = mean[i];
            w.inv_std[i] = 1.0 / std[i].max(1e-3);
        }
        w.features = (0..state_dim).map(|i| if w.angle[i] { 2 } else { 1 }).sum();
        w
    }

    pub fn state_dim(&self) -> usize {
        self.state_dim
    }

    /// Writes `state`'s features into `out` (`features` values); false if the state is
    /// too short or not finite.
    fn features_into(&self, state: &[f32], out: &mut [f32]) -> bool {
        if state.len() < self.state_dim
            || out.len() < self.features
            || state[..self.state_dim].iter().any(|v| !v.is_finite())
        {
            return false;
        }
        let mut k = 0;
        for (i, &value) in state[..self.state_dim].iter().enumerate() {
            if self.angle[i] {
                let (sin, cos) = fastmath::sin_cos(value);
                out[k] = sin;
                out[k + 1] = cos;
                k += 2;
            } else {
                out[k] = (value - self.mean[i]) * self.inv_std[i];
                k += 1;
            }
        }
        true
    }

    /// The logit of one state (NaN if it is too short or not finite). No allocation.
    pub fn logit(&self, state: &[f32]) -> f32 {
        let mut f = [0.0f32; MAX_FEATURES];
        if !self.features_into(state, &mut f) {
            return f32::NAN;
        }
        let mut hidden = self.b1;
        for (k, &fk) in f[..self.features].iter().enumerate() {
            for (h, w) in hidden.iter_mut().zip(&self.w1[k]) {
                *h += fk * w;
            }
        }
        let mut z = self.b2;
        for (h, w) in hidden.iter().zip(&self.w2) {
            z += h.max(0.0) * w;
        }
        z
    }

    /// `C(s)`: the probability that `state` is demonstration-like (NaN for a bad state).
    pub fn probability(&self, state: &[f32]) -> f32 {
        sigmoid(self.logit(state))
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// `ln(1 + eᶻ)` without overflow.
fn softplus(z: f32) -> f32 {
    z.max(0.0) + fastmath::ln(1.0 + fastmath::exp(-z.abs()))
}

/// Where the learner publishes classifier versions and the backward costs read them.
pub struct ClassifierSlot {
    version: AtomicU32,
    weights: Mutex<Box<ClassifierWeights>>,
    /// Lockstep's hand-over by tick (`None`: real time, the latest version).
    gate: Option<Gate>,
}

/// The lockstep hand-over's state (see the module docs).
struct Gate {
    /// The last tick whose record the learner has taken in ([`NO_TICK`]: none yet).
    taken: AtomicU64,
    /// The last tick a cost scored in this phase ([`NO_TICK`] at a phase's start).
    scored: AtomicU64,
    /// The learner is gone: wait no more.
    closed: AtomicBool,
    /// Waits that gave up after [`GATE_TIMEOUT_POLLS`] (the learner too slow or stuck).
    timeouts: AtomicU32,
}

const NO_TICK: u64 = u64::MAX;
/// Polls of a lockstep wait before it gives up (about 30 s of 100 µs sleeps): a bound,
/// not a deadline, so a learner that stopped can never hang the loop.
const GATE_TIMEOUT_POLLS: u32 = 300_000;

impl ClassifierSlot {
    /// A slot for real time: a cost plans with the latest version it finds free.
    pub fn new(weights: &ClassifierWeights) -> Arc<Self> {
        Self::with_gate(weights, None)
    }

    /// A slot for lockstep: versions are handed over by tick (the module docs). The
    /// learner calls [`ClassifierSlot::begin_phase`] before each phase whose cost reads
    /// it, [`ClassifierSlot::taken`] after each tick record, and
    /// [`ClassifierSlot::close`] when it stops.
    pub fn lockstep(weights: &ClassifierWeights) -> Arc<Self> {
        Self::with_gate(
            weights,
            Some(Gate {
                taken: AtomicU64::new(NO_TICK),
                scored: AtomicU64::new(NO_TICK),
                closed: AtomicBool::new(false),
                timeouts: AtomicU32::new(0),
            }),
        )
    }

    fn with_gate(weights: &ClassifierWeights, gate: Option<Gate>) -> Arc<Self> {
        Arc::new(Self {
            version: AtomicU32::new(weights.version),
            weights: Mutex::new(Box::new(weights.clone())),
            gate,
        })
    }

    /// A phase is about to start (the loop is not scoring): its first tick waits for
    /// nothing.
    pub fn begin_phase(&self) {
        if let Some(gate) = &self.gate {
            gate.scored.store(NO_TICK, Ordering::Release);
        }
    }

    /// The learner has taken in the record of `tick` (and published any fit it made).
    pub fn taken(&self, tick: u64) {
        if let Some(gate) = &self.gate {
            gate.taken.store(tick, Ordering::Release);
        }
    }

    /// The learner stops: no cost waits for it any more.
    pub fn close(&self) {
        if let Some(gate) = &self.gate {
            gate.closed.store(true, Ordering::Release);
        }
    }

    /// Lockstep waits that gave up (0 in a healthy run).
    pub fn gate_timeouts(&self) -> u32 {
        self.gate
            .as_ref()
            .map_or(0, |g| g.timeouts.load(Ordering::Acquire))
    }

    /// Lockstep: before scoring `tick`, waits until the learner has taken in the
    /// phase's previous scored tick. Never allocates; bounded.
    fn wait_turn(&self, tick: u64) {
        let Some(gate) = &self.gate else {
            return;
        };
        let previous = gate.scored.swap(tick, Ordering::AcqRel);
        if previous == NO_TICK || previous >= tick {
            return;
        }
        let ready = || {
            let taken = gate.taken.load(Ordering::Acquire);
            (taken != NO_TICK && taken >= previous) || gate.closed.load(Ordering::Acquire)
        };
        for poll in 0..GATE_TIMEOUT_POLLS {
            if ready() {
                return;
            }
            if poll < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        gate.timeouts.fetch_add(1, Ordering::AcqRel);
    }

    /// Publishes `weights` (off the control thread: it may wait for a reader's copy).
    pub fn publish(&self, weights: &ClassifierWeights) {
        let mut slot = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        (**slot).clone_from(weights);
        self.version.store(weights.version, Ordering::Release);
    }

    pub fn version(&self) -> u32 {
        self.version.load(Ordering::Acquire)
    }
}

/// The classifier, its data, and its optimiser state (the learner's side).
pub struct Classifier {
    config: ClassifierConfig,
    weights: Box<ClassifierWeights>,
    adam: Adam,
    rng: ChaCha8Rng,
}

/// What one fit did (a point of the classifier's training curve).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FitReport {
    pub version: u32,
    /// Binary cross-entropy on the fit's batch, before and after.
    pub loss_before: f32,
    pub loss_after: f32,
    /// Mean `C(s)` over the batch's positives and negatives after the fit.
    pub mean_positive: f32,
    pub mean_negative: f32,
    /// Share of the batch classified right at the threshold.
    pub accuracy: f32,
    pub positives_available: usize,
    pub negatives_available: usize,
}

impl Classifier {
    /// A classifier over `state_dim` channels (`angles` among them), standardised by the
    /// demonstrations' states `reference` (rows of `state_dim` values; at least one).
    pub fn new(
        config: ClassifierConfig,
        state_dim: usize,
        angles: &[usize],
        reference: &[Vec<f32>],
        seed: u64,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        if state_dim == 0 || state_dim > MAX_STATE_DIM {
            anyhow::bail!("classifier: a state of {state_dim} channels (1 to {MAX_STATE_DIM})");
        }
        if let Some(&bad) = angles.iter().find(|&&i| i >= state_dim) {
            anyhow::bail!("classifier: angle channel {bad} is not a state channel");
        }
        if reference.is_empty() {
            anyhow::bail!("classifier: no demonstration states to learn from");
        }
        if let Some(row) = reference
            .iter()
            .find(|r| r.len() != state_dim || r.iter().any(|v| !v.is_finite()))
        {
            anyhow::bail!(
                "classifier: a demonstration state of {} values (expected {state_dim} finite)",
                row.len()
            );
        }
        let n = reference.len() as f64;
        let mut mean = vec![0.0f32; state_dim];
        let mut std = vec![0.0f32; state_dim];
        for i in 0..state_dim {
            let m = reference.iter().map(|r| f64::from(r[i])).sum::<f64>() / n;
            let v = reference
                .iter()
                .map(|r| (f64::from(r[i]) - m).powi(2))
                .sum::<f64>()
                / n;
            mean[i] = m as f32;
            std[i] = v.sqrt() as f32;
        }
        let mut weights = ClassifierWeights::blank(state_dim, angles, &mean, &std);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // He initialisation of the hidden layer; output weights zero, so the unfitted
        // classifier scores every state 0.5 (the random hidden layer breaks symmetry).
        let features = weights.features;
        let scale = (2.0 / features as f64).sqrt() as f32;
        for row in weights.w1[..features].iter_mut() {
            for w in row.iter_mut() {
                *w = scale * standard_normal(&mut rng);
            }
        }
        let adam = Adam::new(features);
        Ok(Self {
            config,
            weights,
            adam,
            rng,
        })
    }

    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    pub fn weights(&self) -> &ClassifierWeights {
        &self.weights
    }

    /// One fit on draws from `positives` and `negatives` (rows of `state_dim` values; a
    /// row that is not finite is skipped); the version goes up by one.
    pub fn fit(
        &mut self,
        positives: &[Vec<f32>],
        negatives: &[Vec<f32>],
    ) -> anyhow::Result<FitReport> {
        let usable = |rows: &[Vec<f32>]| -> Vec<usize> {
            (0..rows.len())
                .filter(|&i| {
                    rows[i].len() >= self.weights.state_dim && rows[i].iter().all(|v| v.is_finite())
                })
                .collect()
        };
        let (pos, neg) = (usable(positives), usable(negatives));
        if pos.is_empty() || neg.is_empty() {
            anyhow::bail!(
                "classifier: nothing to fit ({} usable positives, {} usable negatives)",
                pos.len(),
                neg.len()
            );
        }
        let (np, nn) = (self.config.positives, self.config.negatives);
        let batch = np + nn;
        let f = self.weights.features;
        let mut x = Array2::<f32>::zeros((batch, f));
        let mut y = Array1::<f32>::zeros(batch);
        for b in 0..batch {
            let (rows, pick, label) = if b < np {
                (positives, &pos, 1.0)
            } else {
                (negatives, &neg, 0.0)
            };
            let row = &rows[pick[self.rng.random_range(0..pick.len())]];
            let mut feat = [0.0f32; MAX_FEATURES];
            self.weights.features_into(row, &mut feat);
            x.row_mut(b)
                .as_slice_mut()
                .expect("a standard-layout row")
                .copy_from_slice(&feat[..f]);
            y[b] = label;
        }
        let loss_before = self.loss_and_grad(&x, &y, false).0;
        for _ in 0..self.config.steps_per_fit {
            let (_, grads) = self.loss_and_grad(&x, &y, true);
            if let Some(grads) = grads {
                self.adam.step(
                    &mut self.weights,
                    &grads,
                    self.config.learning_rate as f32,
                    self.config.weight_decay as f32,
                );
            }
        }
        let (loss_after, _) = self.loss_and_grad(&x, &y, false);
        let logits = self.logits(&x);
        let threshold = self.config.threshold;
        let (mut sum_pos, mut sum_neg, mut right) = (0.0f64, 0.0f64, 0usize);
        for (b, &z) in logits.iter().enumerate() {
            let p = sigmoid(z);
            let positive = b < np;
            if positive {
                sum_pos += f64::from(p);
            } else {
                sum_neg += f64::from(p);
            }
            if (p >= threshold) == positive {
                right += 1;
            }
        }
        self.weights.version += 1;
        Ok(FitReport {
            version: self.weights.version,
            loss_before,
            loss_after,
            mean_positive: (sum_pos / np as f64) as f32,
            mean_negative: (sum_neg / nn as f64) as f32,
            accuracy: right as f32 / batch as f32,
            positives_available: pos.len(),
            negatives_available: neg.len(),
        })
    }

    fn hidden(&self, x: &Array2<f32>) -> Array2<f32> {
        let f = self.weights.features;
        let w1 = ArrayView2::from_shape((f, HIDDEN), self.weights.w1[..f].as_flattened())
            .expect("w1 is features × HIDDEN");
        let mut h = x.dot(&w1);
        for mut row in h.rows_mut() {
            for (v, b) in row.iter_mut().zip(&self.weights.b1) {
                *v = (*v + b).max(0.0);
            }
        }
        h
    }

    fn logits(&self, x: &Array2<f32>) -> Array1<f32> {
        let h = self.hidden(x);
        h.dot(&ndarray::aview1(&self.weights.w2)) + self.weights.b2
    }

    /// Mean binary cross-entropy on `(x, y)` and, if asked, its gradients.
    fn loss_and_grad(
        &self,
        x: &Array2<f32>,
        y: &Array1<f32>,
        with_grad: bool,
    ) -> (f32, Option<Grads>) {
        let h = self.hidden(x);
        let z = h.dot(&ndarray::aview1(&self.weights.w2)) + self.weights.b2;
        let batch = z.len() as f32;
        // BCE with logits: softplus(z) − y·z.
        let loss = z
            .iter()
            .zip(y)
            .map(|(&z, &y)| z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z)
            .sum::<f32>()
            / batch;
        if !with_grad {
            return (loss, None);
        }
        let dz: Array1<f32> = z
            .iter()
            .zip(y)
            .map(|(&z, &y)| (sigmoid(z) - y) / batch)
            .collect();
        let dw2 = h.t().dot(&dz);
        let db2 = dz.sum();
        let mut dh = dz
            .view()
            .insert_axis(Axis(1))
            .dot(&ndarray::aview1(&self.weights.w2).insert_axis(Axis(0)));
        dh.zip_mut_with(&h, |d, &hv| {
            if hv <= 0.0 {
                *d = 0.0;
            }
        });
        let dw1 = x.t().dot(&dh);
        let db1 = dh.sum_axis(Axis(0));
        (
            loss,
            Some(Grads {
                w1: dw1,
                b1: db1,
                w2: dw2,
                b2: db2,
            }),
        )
    }
}

struct Grads {
    w1: Array2<f32>,
    b1: Array1<f32>,
    w2: Array1<f32>,
    b2: f32,
}

/// Adam's moments for every weight, and its step count.
struct Adam {
    t: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(features: usize) -> Self {
        let n = features * HIDDEN + 2 * HIDDEN + 1;
        Self {
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, w: &mut ClassifierWeights, g: &Grads, lr: f32, decay: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        let f = w.features;
        let mut k = 0;
        let mut update = |param: &mut f32, grad: f32, decayed: bool| {
            let grad = if decayed { grad + decay * *param } else { grad };
            self.m[k] = B1 * self.m[k] + (1.0 - B1) * grad;
            self.v[k] = B2 * self.v[k] + (1.0 - B2) * grad * grad;
            *param -= lr * (self.m[k] / c1) / ((self.v[k] / c2).sqrt() + EPS);
            k += 1;
        };
        for (i, row) in w.w1[..f].iter_mut().enumerate() {
            for (j, param) in row.iter_mut().enumerate() {
                update(param, g.w1[[i, j]], true);
            }
        }
        for (j, param) in w.b1.iter_mut().enumerate() {
            update(param, g.b1[j], false);
        }
        for (j, param) in w.w2.iter_mut().enumerate() {
            update(param, g.w2[j], true);
        }
        update(&mut w.b2, g.b2, false);
    }
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    use rand_distr::Distribution;
    rand_distr::StandardNormal.sample(rng)
}

/// The backward planner's cost: `log(1 − C(s'))` per row, from the classifier's latest
/// published version. Real-time: no allocation, no blocking.
pub struct ClassifierCost {
    slot: Arc<ClassifierSlot>,
    local: RefCell<Local>,
}

struct Local {
    weights: Box<ClassifierWeights>,
}

impl ClassifierCost {
    /// A cost reading `slot` (allocates: off the control thread).
    pub fn new(slot: Arc<ClassifierSlot>) -> Self {
        let weights = slot
            .weights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Self {
            slot,
            local: RefCell::new(Local { weights }),
        }
    }

    /// The version this cost plans with now.
    #[cfg(test)]
    fn version_in_use(&self) -> u32 {
        self.local.borrow().weights.version
    }

    /// Copies a newer published version in, if the slot is free now (never waits: in
    /// lockstep, [`Cost::score`] has waited for its turn first).
    fn refresh(&self, local: &mut Local) {
        if self.slot.version() == local.weights.version {
            return;
        }
        if let Ok(published) = self.slot.weights.try_lock() {
            local.weights.clone_from(&published);
        }
    }
}

impl Cost for ClassifierCost {
    /// Row by row, on the stack: `matrixmultiply` allocates a packing buffer per call,
    /// and the hidden layer's 128-wide inner loop vectorises as it is.
    fn cost(
        &self,
        next_states: ArrayView2<'_, f32>,
        _actions: ArrayView2<'_, f32>,
        mut out: ArrayViewMut1<'_, f32>,
    ) {
        let Ok(mut local) = self.local.try_borrow_mut() else {
            out.fill(f32::NAN);
            return;
        };
        self.refresh(&mut local);
        let weights = &local.weights;
        let rows = next_states.nrows();
        for (index, slot) in out.iter_mut().enumerate() {
            if index >= rows {
                *slot = f32::NAN;
                continue;
            }
            let state = next_states.row(index);
            let z = match state.as_slice() {
                Some(s) => weights.logit(s),
                None => {
                    let mut buf = [0.0f32; MAX_STATE_DIM];
                    let n = state.len().min(MAX_STATE_DIM);
                    for (d, v) in buf.iter_mut().zip(state.iter()) {
                        *d = *v;
                    }
                    weights.logit(&buf[..n])
                }
            };
            *slot += row_cost(z);
        }
    }

    fn score(&self, state: &[f32], tick: u64) -> Option<f32> {
        self.slot.wait_turn(tick);
        let mut local = self.local.try_borrow_mut().ok()?;
        self.refresh(&mut local);
        let p = local.weights.probability(state);
        p.is_finite().then_some(p)
    }
}

/// `log(1 − σ(z)) = −softplus(z)`, the logit clamped to ±[`LOGIT_LIMIT`]; NaN stays NaN.
fn row_cost(z: f32) -> f32 {
    if z.is_nan() {
        return f32::NAN;
    }
    -softplus(z.clamp(-LOGIT_LIMIT, LOGIT_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(rng: &mut ChaCha8Rng, centre: &[f32], spread: f32, n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                centre
                    .iter()
                    .map(|c| c + spread * standard_normal(rng))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn it_learns_to_tell_the_start_region_from_visited_states() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let starts = blob(&mut rng, &[0.0, 0.0, 0.0, 0.0], 0.1, 30);
        let visited = blob(&mut rng, &[1.0, 3.0, 0.5, -1.0], 0.5, 300);
        let mut reference = starts.clone();
        reference.extend(blob(&mut rng, &[0.5, 1.5, 0.0, 0.0], 1.0, 100));
        let mut c = Classifier::new(ClassifierConfig::default(), 4, &[1], &reference, 7).unwrap();
        assert!((c.weights().probability(&starts[0]) - 0.5).abs() < 0.05);
        let mut report = None;
        for _ in 0..5 {
            report = Some(c.fit(&starts, &visited).unwrap());
        }
        let report = report.unwrap();
        assert_eq!(report.version, 5);
        assert!(report.loss_after < report.loss_before, "{report:?}");
        assert!(report.accuracy > 0.95, "{report:?}");
        assert!(c.weights().probability(&[0.0, 0.0, 0.0, 0.0]) > 0.9);
        assert!(c.weights().probability(&[1.0, 3.0, 0.5, -1.0]) < 0.1);
        // The angle is a feature by its sine and cosine: a full turn changes nothing.
        let turned = c
            .weights()
            .probability(&[0.0, std::f32::consts::TAU, 0.0, 0.0]);
        assert!((turned - c.weights().probability(&[0.0, 0.0, 0.0, 0.0])).abs() < 1e-4);
    }

    #[test]
    fn the_cost_is_log_one_minus_c_batched_and_follows_published_versions() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let starts = blob(&mut rng, &[0.0, 0.0], 0.1, 20);
        let visited = blob(&mut rng, &[2.0, 2.0], 0.3, 50);
        let mut c = Classifier::new(ClassifierConfig::default(), 2, &[], &starts, 3).unwrap();
        let slot = ClassifierSlot::new(c.weights());
        let mut cost = ClassifierCost::new(Arc::clone(&slot));
        cost.prepare(&[3]);
        let states = Array2::from_shape_vec((3, 2), vec![0.0, 0.0, 2.0, 2.0, 1.0, 1.0]).unwrap();
        let actions = Array2::<f32>::zeros((3, 1));
        let mut out = Array1::<f32>::zeros(3);
        cost.cost(states.view(), actions.view(), out.view_mut());
        // Version 0: C = 0.5 everywhere, log(0.5).
        for v in &out {
            assert!((v - 0.5f32.ln()).abs() < 1e-4, "{out}");
        }
        c.fit(&starts, &visited).unwrap();
        c.fit(&starts, &visited).unwrap();
        slot.publish(c.weights());
        let mut out = Array1::<f32>::from_elem(3, 1.0);
        cost.cost(states.view(), actions.view(), out.view_mut());
        for (row, state) in states.rows().into_iter().enumerate() {
            let p = c.weights().probability(state.as_slice().unwrap());
            assert!(
                (out[row] - (1.0 + (1.0 - p).ln())).abs() < 1e-3,
                "row {row}: {} vs C = {p}",
                out[row]
            );
        }
        assert!(out[0] < out[1], "the start region must cost less: {out}");
        assert_eq!(
            cost.score(&[0.0, 0.0], 0),
            Some(c.weights().probability(&[0.0, 0.0]))
        );
        // Unprepared batch sizes and bad rows give answers or NaN, never a panic.
        let wide = Array2::<f32>::zeros((5, 2));
        let mut out = Array1::<f32>::zeros(5);
        cost.cost(wide.view(), Array2::zeros((5, 1)).view(), out.view_mut());
        assert!(out.iter().all(|v| v.is_finite()));
        let nan = Array2::from_elem((3, 2), f32::NAN);
        let mut out = Array1::<f32>::zeros(3);
        cost.cost(nan.view(), actions.view(), out.view_mut());
        assert!(out.iter().all(|v| v.is_nan()));
        assert_eq!(cost.score(&[f32::NAN, 0.0], 1), None);
    }

    /// Lockstep: the version that scores and plans tick `t` is the one fitted on the
    /// records before `t`, however slow the learner is (it was whichever version the
    /// learner had got to).
    #[test]
    fn in_lockstep_the_version_in_use_at_each_tick_is_fixed_by_the_ticks_not_the_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let starts = blob(&mut rng, &[0.0, 0.0], 0.1, 20);
        let visited = blob(&mut rng, &[2.0, 2.0], 0.3, 50);
        for (run, delay_us) in [0u64, 300, 2_000].into_iter().enumerate() {
            let mut c = Classifier::new(ClassifierConfig::default(), 2, &[], &starts, 3).unwrap();
            let slot = ClassifierSlot::lockstep(c.weights());
            let cost = ClassifierCost::new(Arc::clone(&slot));
            let (records, taken_in) = crossbeam::channel::bounded::<u64>(16);
            let learner = {
                let slot = Arc::clone(&slot);
                let (starts, visited) = (starts.clone(), visited.clone());
                crate::thread::spawn_named("test-learner", move || {
                    for tick in taken_in {
                        std::thread::sleep(std::time::Duration::from_micros(delay_us));
                        if tick % 3 == 2 {
                            c.fit(&starts, &visited).unwrap();
                            slot.publish(c.weights());
                        }
                        slot.taken(tick);
                    }
                    slot.close();
                })
                .unwrap()
            };
            slot.begin_phase();
            let used: Vec<u32> = (100..112u64)
                .map(|tick| {
                    assert!(cost.score(&[0.0, 0.0], tick).is_some());
                    let version = cost.version_in_use();
                    records.send(tick).unwrap();
                    version
                })
                .collect();
            drop(records);
            learner.join().unwrap();
            // Fits after ticks 101, 104, 107, 110: in use from the tick after each.
            assert_eq!(
                used,
                [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4],
                "run {run} (learner {delay_us} µs a record)"
            );
            assert_eq!(slot.gate_timeouts(), 0);
        }
        // A learner that is gone never holds the loop.
        let c = Classifier::new(ClassifierConfig::default(), 2, &[], &starts, 3).unwrap();
        let slot = ClassifierSlot::lockstep(c.weights());
        let cost = ClassifierCost::new(Arc::clone(&slot));
        slot.close();
        assert!(cost.score(&[0.0, 0.0], 1).is_some());
        assert!(cost.score(&[0.0, 0.0], 2).is_some());
    }

    #[test]
    fn bad_settings_and_data_are_refused_with_a_reason() {
        let refs = vec![vec![0.0f32, 0.0]];
        let bad = ClassifierConfig {
            threshold: 1.0,
            ..ClassifierConfig::default()
        };
        assert!(Classifier::new(bad, 2, &[], &refs, 0).is_err());
        assert!(Classifier::new(ClassifierConfig::default(), 2, &[2], &refs, 0).is_err());
        assert!(Classifier::new(ClassifierConfig::default(), 2, &[], &[], 0).is_err());
        assert!(
            Classifier::new(
                ClassifierConfig::default(),
                2,
                &[],
                &[vec![f32::NAN, 0.0]],
                0
            )
            .is_err()
        );
        let mut c = Classifier::new(ClassifierConfig::default(), 2, &[], &refs, 0).unwrap();
        let err = c.fit(&refs, &[vec![f32::INFINITY, 0.0]]).unwrap_err();
        assert!(err.to_string().contains("0 usable negatives"), "{err}");
    }
}
