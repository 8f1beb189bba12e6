//! The ensemble network's parameters ([`Params`]) and its hand-written forward and
//! backward passes over ndarray, batched per member.
//!
//! Member `e` maps standardised inputs `x[e]` (`B × D`) through swish hidden layers to an
//! output `B × 2S`: the first `S` columns are the mean of the change of state, the last
//! `S` the raw log-variance, soft-clamped by the shared learned bounds `max_logvar`,
//! `min_logvar` (`[S]`): `lv = max − softplus(max − raw); lv = min + softplus(lv − min)`.
//! Every layer is one `B × Din` by `Din × Dout` product per member (matrixmultiply
//! through `general_mat_mul`, single-threaded: ndarray's `matrixmultiply-threading`
//! feature is off). Never allocates once a [`Workspace`] has seen the batch size.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array3, ArrayView3, Axis, Zip};

/// Every trainable tensor of an ensemble; the same shape holds gradients and Adam moments.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// `weights[l]`: `E × in_l × out_l`; the last layer's `out` is `2S`.
    pub weights: Vec<Array3<f32>>,
    /// `biases[l]`: `E × out_l`.
    pub biases: Vec<Array2<f32>>,
    /// Upper soft bound of the log-variance, `[S]`, shared by the members.
    pub max_logvar: Array1<f32>,
    /// Lower soft bound of the log-variance, `[S]`.
    pub min_logvar: Array1<f32>,
}

impl Params {
    /// All zeros for `E` members and layer sizes `[D, H1, …, Hk, 2S]`.
    pub fn zeros(ensemble_size: usize, sizes: &[usize]) -> Self {
        let pairs = sizes.windows(2);
        let state_dim = sizes.last().copied().unwrap_or(0) / 2;
        Self {
            weights: pairs
                .clone()
                .map(|w| Array3::zeros((ensemble_size, w[0], w[1])))
                .collect(),
            biases: pairs
                .map(|w| Array2::zeros((ensemble_size, w[1])))
                .collect(),
            max_logvar: Array1::zeros(state_dim),
            min_logvar: Array1::zeros(state_dim),
        }
    }

    pub fn zeros_like(&self) -> Self {
        Self {
            weights: self
                .weights
                .iter()
                .map(|w| Array3::zeros(w.dim()))
                .collect(),
            biases: self.biases.iter().map(|b| Array2::zeros(b.dim())).collect(),
            max_logvar: Array1::zeros(self.max_logvar.len()),
            min_logvar: Array1::zeros(self.min_logvar.len()),
        }
    }

    pub fn ensemble_size(&self) -> usize {
        self.weights.first().map_or(0, |w| w.dim().0)
    }

    pub fn input_dim(&self) -> usize {
        self.weights.first().map_or(0, |w| w.dim().1)
    }

    pub fn state_dim(&self) -> usize {
        self.max_logvar.len()
    }

    /// Every tensor as a flat slice, in a fixed order (weights, biases, max, min).
    pub fn tensors(&self) -> Vec<&[f32]> {
        let mut out: Vec<&[f32]> = Vec::new();
        out.extend(self.weights.iter().filter_map(|w| w.as_slice()));
        out.extend(self.biases.iter().filter_map(|b| b.as_slice()));
        out.extend(self.max_logvar.as_slice());
        out.extend(self.min_logvar.as_slice());
        out
    }

    /// Every tensor as a flat mutable slice, in the order of [`Params::tensors`].
    pub fn tensors_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out: Vec<&mut [f32]> = Vec::new();
        out.extend(self.weights.iter_mut().filter_map(|w| w.as_slice_mut()));
        out.extend(self.biases.iter_mut().filter_map(|b| b.as_slice_mut()));
        out.extend(self.max_logvar.as_slice_mut());
        out.extend(self.min_logvar.as_slice_mut());
        out
    }

    /// Copies member `member`'s weights and biases from `other` (same shapes).
    pub(crate) fn copy_member_from(&mut self, other: &Params, member: usize) {
        for (w, o) in self.weights.iter_mut().zip(&other.weights) {
            w.index_axis_mut(Axis(0), member)
                .assign(&o.index_axis(Axis(0), member));
        }
        for (b, o) in self.biases.iter_mut().zip(&other.biases) {
            b.row_mut(member).assign(&o.row(member));
        }
    }
}

/// The loss terms that do not depend on the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Regularisation {
    /// L2 decay per layer: the loss gains `decay_l · ½‖W_l‖²` (PETS' `l2_loss`).
    pub weight_decays: Vec<f32>,
    /// PETS' `0.01 · (Σ max_logvar − Σ min_logvar)`.
    pub logvar_bound_penalty: f32,
}

/// Activations kept between forward and backward for one batch size.
#[derive(Debug, Default)]
pub struct Workspace {
    rows: usize,
    /// Pre-activations per layer, `E × B × out_l`.
    z: Vec<Array3<f32>>,
    /// Hidden activations `swish(z_l)` (the last entry unused), `E × B × out_l`.
    h: Vec<Array3<f32>>,
    /// Gradient with respect to `z_l`, `E × B × out_l`.
    gz: Vec<Array3<f32>>,
}

impl Workspace {
    fn fit(&mut self, params: &Params, rows: usize) {
        if self.rows == rows && self.z.len() == params.weights.len() {
            return;
        }
        let make = |w: &Array3<f32>| Array3::zeros((w.dim().0, rows, w.dim().2));
        self.z = params.weights.iter().map(make).collect();
        self.h = params.weights.iter().map(make).collect();
        self.gz = params.weights.iter().map(make).collect();
        self.rows = rows;
    }
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The soft clamp of one raw log-variance: `(lv, σ(max − raw), σ(lv₁ − min))`.
fn clamp(raw: f32, max: f32, min: f32) -> (f32, f32, f32) {
    let a = max - raw;
    let lv1 = max - softplus(a);
    let c = lv1 - min;
    (min + softplus(c), sigmoid(a), sigmoid(c))
}

/// Forward pass of every member over standardised inputs `x` (`E × B × D`), leaving the
/// activations in `ws`.
fn forward(params: &Params, x: ArrayView3<'_, f32>, ws: &mut Workspace) {
    ws.fit(params, x.dim().1);
    let layers = params.weights.len();
    for l in 0..layers {
        let (before, after) = ws.h.split_at_mut(l);
        for e in 0..params.ensemble_size() {
            let input = if l == 0 {
                x.index_axis(Axis(0), e)
            } else {
                before[l - 1].index_axis(Axis(0), e)
            };
            let mut z = ws.z[l].index_axis_mut(Axis(0), e);
            general_mat_mul(
                1.0,
                &input,
                &params.weights[l].index_axis(Axis(0), e),
                0.0,
                &mut z,
            );
            z += &params.biases[l].row(e);
            if l + 1 < layers {
                Zip::from(after[0].index_axis_mut(Axis(0), e))
                    .and(&z)
                    .for_each(|h, &z| *h = z * sigmoid(z));
            }
        }
    }
}

/// Mean and clamped log-variance of every member for standardised inputs `x`
/// (`E × B × D`): both `E × B × S`. Allocates its outputs.
pub fn predict(
    params: &Params,
    x: ArrayView3<'_, f32>,
    ws: &mut Workspace,
) -> (Array3<f32>, Array3<f32>) {
    forward(params, x, ws);
    let s = params.state_dim();
    let (e, b) = (x.dim().0, x.dim().1);
    let out = &ws.z[params.weights.len() - 1];
    let mut mean = Array3::zeros((e, b, s));
    let mut logvar = Array3::zeros((e, b, s));
    for ((m, n, j), v) in mean.indexed_iter_mut() {
        *v = out[[m, n, j]];
    }
    for ((m, n, j), v) in logvar.indexed_iter_mut() {
        *v = clamp(
            out[[m, n, s + j]],
            params.max_logvar[j],
            params.min_logvar[j],
        )
        .0;
    }
    (mean, logvar)
}

/// The PETS loss over a batch and its gradient with respect to every parameter.
///
/// `x`: standardised inputs `E × B × D`; `y`: targets `s' − s`, `E × B × S`. Loss =
/// `Σ_e [mean((μ − y)²·exp(−lv)) + mean(lv)]` + weight decay + bound penalty. `grads` is
/// overwritten. Returns `(total loss, data term)`.
pub fn loss_and_gradient(
    params: &Params,
    x: ArrayView3<'_, f32>,
    y: ArrayView3<'_, f32>,
    reg: &Regularisation,
    grads: &mut Params,
    ws: &mut Workspace,
) -> (f64, f64) {
    forward(params, x, ws);
    let (members, rows, _) = x.dim();
    let s = params.state_dim();
    let layers = params.weights.len();
    let scale = 1.0 / (rows * s) as f32;
    grads.max_logvar.fill(reg.logvar_bound_penalty);
    grads.min_logvar.fill(-reg.logvar_bound_penalty);
    let mut data = 0.0f64;
    for e in 0..members {
        let out = ws.z[layers - 1].index_axis(Axis(0), e);
        let mut g_out = ws.gz[layers - 1].index_axis_mut(Axis(0), e);
        for n in 0..rows {
            for j in 0..s {
                let (max, min) = (params.max_logvar[j], params.min_logvar[j]);
                let (lv, s_a, s_c) = clamp(out[[n, s + j]], max, min);
                let inv_var = (-lv).exp();
                let d = out[[n, j]] - y[[e, n, j]];
                data += f64::from(d * d * inv_var + lv) * f64::from(scale);
                let g_lv = (1.0 - d * d * inv_var) * scale;
                let g_lv1 = g_lv * s_c;
                grads.min_logvar[j] += g_lv * (1.0 - s_c);
                grads.max_logvar[j] += g_lv1 * (1.0 - s_a);
                g_out[[n, j]] = 2.0 * d * inv_var * scale;
                g_out[[n, s + j]] = g_lv1 * s_a;
            }
        }
        for l in (0..layers).rev() {
            let (below, here) = ws.gz.split_at_mut(l);
            let g_z = here[0].index_axis(Axis(0), e);
            let input = if l == 0 {
                x.index_axis(Axis(0), e)
            } else {
                ws.h[l - 1].index_axis(Axis(0), e)
            };
            let mut g_w = grads.weights[l].index_axis_mut(Axis(0), e);
            general_mat_mul(1.0, &input.t(), &g_z, 0.0, &mut g_w);
            let mut g_b = grads.biases[l].row_mut(e);
            g_b.fill(0.0);
            for row in g_z.rows() {
                g_b += &row;
            }
            if l > 0 {
                let mut g_h = below[l - 1].index_axis_mut(Axis(0), e);
                let w = params.weights[l].index_axis(Axis(0), e);
                general_mat_mul(1.0, &g_z, &w.t(), 0.0, &mut g_h);
                Zip::from(&mut g_h)
                    .and(ws.z[l - 1].index_axis(Axis(0), e))
                    .for_each(|g, &z| {
                        let sig = sigmoid(z);
                        *g *= sig * (1.0 + z * (1.0 - sig));
                    });
            }
        }
    }
    let mut total = data;
    for (l, (w, g)) in params.weights.iter().zip(&mut grads.weights).enumerate() {
        let decay = reg.weight_decays.get(l).copied().unwrap_or(0.0);
        if decay != 0.0 {
            total += 0.5 * f64::from(decay) * w.iter().map(|v| f64::from(v * v)).sum::<f64>();
            g.scaled_add(decay, w);
        }
    }
    let bounds = params.max_logvar.sum() - params.min_logvar.sum();
    total += f64::from(reg.logvar_bound_penalty * bounds);
    (total, data)
}
