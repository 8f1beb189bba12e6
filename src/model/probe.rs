//! The one run of a model at load, before anyone else sees it: a fixed probe batch
//! through the session, refusing a model whose predictions are non-finite, whose
//! `logvar` leaves the soft clamp of its own `min_logvar`/`max_logvar`, whose rows are
//! not independent, or whose declared angle channels are not periodic.
//!
//! Runs where the model is loaded (the binary's start-up, the retrainer's and the
//! evaluator's threads), never on the control thread: it allocates its own tensors and
//! keeps none of them.

use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::Tensor;

use super::contract::{ACTION, LOGVAR, Layout, MEAN, STATE};
use super::file::LogvarBounds;
use super::{ModelError, ModelInfo};

/// Rows of the probe batch before the angle rows: zeros, four rows of moderate values
/// (within ±1 in every state and action channel), and two far out (±1000).
pub const PROBE_ROWS: usize = 7;
const MODERATE: std::ops::Range<usize> = 0..5;

/// Runs the probe; see the module doc for what it refuses.
pub(crate) fn run(
    session: &mut Session,
    layout: &Layout,
    info: &ModelInfo,
    bounds: &LogvarBounds,
) -> Result<(), ModelError> {
    let (s_dim, a_dim) = (layout.state_dim, layout.action_dim);
    // Rows: PROBE_ROWS, then for each angle channel the moderate rows with it moved by 2π.
    let mut states: Vec<Vec<f32>> = Vec::new();
    let mut actions: Vec<Vec<f32>> = Vec::new();
    let pattern = |row: usize, k: usize| (1.7 * row as f32 + 0.9 * k as f32 + 0.3).sin();
    for row in 0..PROBE_ROWS {
        let value = |k: usize| match row {
            0 => 0.0,
            5 => 1000.0,
            6 => -1000.0,
            _ => pattern(row, k),
        };
        states.push((0..s_dim).map(value).collect());
        actions.push((0..a_dim).map(|k| value(s_dim + k)).collect());
    }
    for &channel in &info.angle_state_indices {
        for row in MODERATE {
            let mut moved = states[row].clone();
            moved[channel] += std::f32::consts::TAU;
            states.push(moved);
            actions.push(actions[row].clone());
        }
    }
    let rows = states.len();
    let (mean, logvar) = predict(session, layout, &states, &actions)?;
    let at =
        |out: &[f32], member: usize, row: usize, k: usize| out[(member * rows + row) * s_dim + k];

    for member in 0..layout.ensemble_size {
        for row in 0..rows {
            for k in 0..s_dim {
                let checked_mean = !(PROBE_ROWS - 2..PROBE_ROWS).contains(&row);
                for (output, out, checked) in [(MEAN, &mean, checked_mean), (LOGVAR, &logvar, true)]
                {
                    let value = at(out, member, row, k);
                    if checked && !value.is_finite() {
                        return Err(ModelError::ProbeNonFinite {
                            output,
                            value,
                            member,
                            row,
                            rows,
                            channel: k,
                        });
                    }
                }
                let (low, high) = clamp_range(bounds.min[k], bounds.max[k]);
                let value = at(&logvar, member, row, k);
                let slack = 1e-4 * (1.0 + low.abs().max(high.abs()));
                if !(low - slack..=high + slack).contains(&value) {
                    return Err(ModelError::LogvarOutOfBounds {
                        value,
                        channel: k,
                        member,
                        row,
                        low,
                        high,
                    });
                }
            }
        }
    }

    // Row 0 on its own must give what it gave in the batch.
    let (mean0, logvar0) = predict(session, layout, &states[..1], &actions[..1])?;
    let mut difference = 0.0f32;
    for member in 0..layout.ensemble_size {
        for k in 0..s_dim {
            for (alone, batch) in [(&mean0, &mean), (&logvar0, &logvar)] {
                let (a, b) = (alone[member * s_dim + k], at(batch, member, 0, k));
                difference = difference.max(relative(a, b));
            }
        }
    }
    if difference > 1e-4 {
        return Err(ModelError::RowsNotIndependent { rows, difference });
    }

    // A declared angle moved by 2π must not change the prediction.
    for (i, &channel) in info.angle_state_indices.iter().enumerate() {
        let mut difference = 0.0f32;
        for member in 0..layout.ensemble_size {
            for row in MODERATE {
                let moved = PROBE_ROWS + i * MODERATE.len() + row;
                for k in 0..s_dim {
                    for out in [&mean, &logvar] {
                        let d = relative(at(out, member, row, k), at(out, member, moved, k));
                        difference = difference.max(d);
                    }
                }
            }
        }
        if difference > 1e-3 {
            return Err(ModelError::AngleNotPeriodic {
                channel,
                name: info.state_names[channel].clone(),
                difference,
            });
        }
    }
    Ok(())
}

/// What the contract's clamp `lv = max − softplus(max − lv); lv = min + softplus(lv −
/// min)` can output: `(min, min + softplus(max − min))`, computed in f64.
pub(crate) fn clamp_range(min: f32, max: f32) -> (f32, f32) {
    let (min, max) = (f64::from(min), f64::from(max));
    let gap = max - min;
    let softplus = if gap > 30.0 { gap } else { gap.exp().ln_1p() };
    (min as f32, (min + softplus) as f32)
}

/// `|a − b| / (1 + max(|a|, |b|))`; infinite when either is not finite.
fn relative(a: f32, b: f32) -> f32 {
    if a.is_finite() && b.is_finite() {
        (a - b).abs() / (1.0 + a.abs().max(b.abs()))
    } else {
        f32::INFINITY
    }
}

/// `mean` and `logvar` (`E × N × S`, row-major) for the rows given, the same rows on
/// every member.
fn predict(
    session: &mut Session,
    layout: &Layout,
    states: &[Vec<f32>],
    actions: &[Vec<f32>],
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let (e, rows) = (layout.ensemble_size, states.len());
    let failed = |error: ort::Error| ModelError::ProbeFailed {
        rows,
        message: error.to_string(),
    };
    let batch = |rows: &[Vec<f32>], width: usize| {
        let data: Vec<f32> = (0..e)
            .flat_map(|_| rows.iter().flatten().copied())
            .collect();
        Tensor::from_array(([e, rows.len(), width], data))
    };
    let state = batch(states, layout.state_dim).map_err(failed)?;
    let action = batch(actions, layout.action_dim).map_err(failed)?;
    let options = RunOptions::new()
        .map_err(failed)?
        .with_outputs(OutputSelector::no_default().with(MEAN).with(LOGVAR));
    let outputs = session
        .run_with_options(ort::inputs![STATE => state, ACTION => action], &options)
        .map_err(failed)?;
    let expected = e * rows * layout.state_dim;
    let extract = |name: &str| -> Result<Vec<f32>, ModelError> {
        let value = outputs.get(name).ok_or_else(|| ModelError::ProbeFailed {
            rows,
            message: format!("no `{name}` output"),
        })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(failed)?;
        if data.len() != expected {
            return Err(ModelError::ProbeFailed {
                rows,
                message: format!(
                    "`{name}` has shape {shape:?}, expected [{e}, {rows}, {}]",
                    layout.state_dim
                ),
            });
        }
        Ok(data.to_vec())
    };
    Ok((extract(MEAN)?, extract(LOGVAR)?))
}
