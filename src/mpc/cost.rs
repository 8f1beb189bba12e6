//! Batched per-step costs the planner minimises: the [`Cost`] trait and the benchmark
//! task cost.
//!
//! A cost never allocates and never panics on bad values: it writes NaN instead, and the
//! planner ranks a NaN candidate worst.

use ndarray::{ArrayView2, ArrayViewMut1};

use super::fastmath;
use crate::task::{CARTPOLE_POLE_LENGTH_M, Task};

/// A per-step cost, batched over rows.
///
/// Object-safe and `&self`: the planner holds it as `&dyn Cost`. A learned cost (e.g. a
/// classifier for autonomous resets) that needs scratch space keeps it behind interior
/// mutability it owns, preallocated for the largest batch.
pub trait Cost: Send {
    /// Adds the cost of arriving in `next_states` after `actions` to `out`.
    ///
    /// Shapes: `next_states` `N × S`, `actions` `N × A`, `out` `N`. Real-time contract:
    /// no allocation, no blocking; a row it cannot score gets NaN added.
    fn cost(
        &self,
        next_states: ArrayView2<'_, f32>,
        actions: ArrayView2<'_, f32>,
        out: ArrayViewMut1<'_, f32>,
    );

    /// Prepares whatever scratch space the cost needs for batches of each of `rows`
    /// (allocates: off the control thread, before the cost is handed to a planner).
    fn prepare(&mut self, _rows: &[usize]) {}

    /// A score of the state itself at `tick` that the phase in force may end on (a
    /// learned cost's `C(s)`; `None`: the cost has none), asked once per tick before the
    /// plan. Real-time contract as [`Cost::cost`] (a cost built for lockstep may wait).
    fn score(&self, _state: &[f32], _tick: u64) -> Option<f32> {
        None
    }
}

/// The cost of a pure per-step reward: `−reward(next_state, action)` per row (for phases
/// whose reward has no batched form of its own, e.g. [`crate::task::cartpole_rest_reward`]).
#[derive(Clone, Copy, Debug)]
pub struct RewardCost(pub crate::control::RewardFn);

impl Cost for RewardCost {
    fn cost(
        &self,
        next_states: ArrayView2<'_, f32>,
        actions: ArrayView2<'_, f32>,
        out: ArrayViewMut1<'_, f32>,
    ) {
        add_row_costs(next_states, actions, out, |s, a| -(self.0)(s, a));
    }
}

/// Adds `cost(next_state, action)` to each row of `out`, row by row (NaN for a row it
/// lacks or one too wide to copy onto the stack).
fn add_row_costs(
    next_states: ArrayView2<'_, f32>,
    actions: ArrayView2<'_, f32>,
    mut out: ArrayViewMut1<'_, f32>,
    cost: impl Fn(&[f32], &[f32]) -> f32,
) {
    let rows = out.len().min(next_states.nrows()).min(actions.nrows());
    for (index, slot) in out.iter_mut().enumerate() {
        if index >= rows {
            *slot = f32::NAN;
            continue;
        }
        let (mut state_buf, mut action_buf) = ([0.0f32; MAX_ROW], [0.0f32; MAX_ROW]);
        let state = row_slice(next_states.row(index), &mut state_buf);
        let action = row_slice(actions.row(index), &mut action_buf);
        *slot += match (state, action) {
            (Some(s), Some(a)) => cost(s, a),
            _ => f32::NAN,
        };
    }
}

/// The benchmark cost of a task: `−task.reward(next_state, action)` per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskCost(pub Task);

/// Widest row copied onto the stack when a view is not contiguous.
const MAX_ROW: usize = 32;

impl Cost for TaskCost {
    fn cost(
        &self,
        next_states: ArrayView2<'_, f32>,
        actions: ArrayView2<'_, f32>,
        mut out: ArrayViewMut1<'_, f32>,
    ) {
        if self.0 == Task::CartpoleSwingup
            && let (Some(states), Some(acts), Some(slots)) = (
                next_states.as_slice(),
                actions.as_slice(),
                out.as_slice_mut(),
            )
            && next_states.ncols() >= min_state_dim(self.0)
            && actions.ncols() >= 1
            && states.len() == slots.len() * next_states.ncols()
            && acts.len() == slots.len() * actions.ncols()
        {
            cartpole_cost_rows(states, next_states.ncols(), acts, actions.ncols(), slots);
            return;
        }
        add_row_costs(next_states, actions, out, |s, a| {
            if s.len() >= min_state_dim(self.0) && !a.is_empty() {
                -self.0.reward(s, a)
            } else {
                f32::NAN
            }
        });
    }
}

/// The cart-pole's `−reward` over contiguous rows with [`fastmath`] (no libm call per
/// row, so the loop vectorises): `0.01·Σu² − exp(−‖tip − (0, l)‖² / l²)`, with
/// `‖tip − (0, l)‖² = (x − l·sin θ)² + l²·(1 + cos θ)²`. Agrees with
/// [`Task::reward`] to about 1e-6.
///
/// Shapes: `states` `N × S` (S ≥ 2), `actions` `N × A`, `out` `N`.
fn cartpole_cost_rows(
    states: &[f32],
    s_dim: usize,
    actions: &[f32],
    a_dim: usize,
    out: &mut [f32],
) {
    /// Rows gathered per block: independent lanes the compiler can vectorise.
    const BLOCK: usize = 8;
    let l = CARTPOLE_POLE_LENGTH_M;
    let inv_l2 = 1.0 / (l * l);
    let rows = out.len();
    let mut start = 0;
    while start < rows {
        let len = BLOCK.min(rows - start);
        let (mut x, mut theta, mut effort) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
        for i in 0..len {
            let row = &states[(start + i) * s_dim..(start + i) * s_dim + 2];
            x[i] = row[0];
            theta[i] = row[1];
            let action = &actions[(start + i) * a_dim..(start + i + 1) * a_dim];
            effort[i] = action.iter().map(|u| u * u).sum();
        }
        let mut cost = [0.0f32; BLOCK];
        for i in 0..BLOCK {
            let (sin, cos) = fastmath::sin_cos(theta[i]);
            let dx = x[i] - l * sin;
            let dy = l * (1.0 + cos);
            cost[i] = 0.01 * effort[i] - fastmath::exp(-(dx * dx + dy * dy) * inv_l2);
        }
        for (slot, c) in out[start..start + len].iter_mut().zip(cost) {
            *slot += c;
        }
        start += len;
    }
}

/// State channels the task's reward reads.
fn min_state_dim(task: Task) -> usize {
    match task {
        Task::CartpoleSwingup => 2,
        Task::PendulumSwingup => 2,
        Task::PushToGoal => 4,
        Task::InvertedPendulum => 2,
    }
}

/// The row as a slice: borrowed when contiguous, else copied into `buf` (None if too wide).
fn row_slice<'a>(
    row: ndarray::ArrayView1<'a, f32>,
    buf: &'a mut [f32; MAX_ROW],
) -> Option<&'a [f32]> {
    if let Some(slice) = row.to_slice() {
        return Some(slice);
    }
    if row.len() > MAX_ROW {
        return None;
    }
    for (dst, src) in buf.iter_mut().zip(row.iter()) {
        *dst = *src;
    }
    Some(&buf[..row.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn task_cost_adds_minus_reward_per_row() {
        let states = Array2::from_shape_vec((2, 2), vec![0.0, 0.0, 1.0, 2.0]).unwrap();
        let actions = Array2::from_shape_vec((2, 1), vec![0.0, 2.0]).unwrap();
        let mut out = Array1::from_elem(2, 1.0f32);
        TaskCost(Task::PendulumSwingup).cost(states.view(), actions.view(), out.view_mut());
        assert!((out[0] - 1.0).abs() < 1e-6);
        let expected = 1.0 + 1.0 + 0.1 * 4.0 + 0.001 * 4.0;
        assert!((out[1] - expected).abs() < 1e-5);
        // Non-contiguous (transposed) views give the same answer.
        let states_t = states.t().to_owned();
        let mut out_t = Array1::from_elem(2, 1.0f32);
        TaskCost(Task::PendulumSwingup).cost(states_t.t(), actions.view(), out_t.view_mut());
        assert_eq!(out, out_t);
    }

    #[test]
    fn fast_cartpole_cost_matches_the_task_reward() {
        let rows = 1000;
        let states = Array2::from_shape_fn((rows, 4), |(n, k)| {
            let t = n as f32 / rows as f32;
            [4.0 * t - 2.0, 40.0 * t - 20.0, 1.0, -1.0][k] * (1.0 + 0.1 * k as f32)
        });
        let actions = Array2::from_shape_fn((rows, 1), |(n, _)| (n % 7) as f32 - 3.0);
        let mut fast = Array1::from_elem(rows, 0.5f32);
        TaskCost(Task::CartpoleSwingup).cost(states.view(), actions.view(), fast.view_mut());
        for n in 0..rows {
            let state = states.row(n).to_vec();
            let exact = 0.5 - Task::CartpoleSwingup.reward(&state, &[actions[[n, 0]]]);
            assert!(
                (fast[n] - exact).abs() < 2e-6,
                "row {n}: {} vs {exact}",
                fast[n]
            );
        }
        // NaN in, NaN out.
        let nan = Array2::from_elem((1, 4), f32::NAN);
        let mut out = Array1::zeros(1);
        TaskCost(Task::CartpoleSwingup).cost(
            nan.view(),
            actions.slice(ndarray::s![..1, ..]),
            out.view_mut(),
        );
        assert!(out[0].is_nan());
    }

    #[test]
    fn too_narrow_states_give_nan_not_a_panic() {
        let states = Array2::<f32>::zeros((1, 1));
        let actions = Array2::<f32>::zeros((1, 1));
        let mut out = Array1::zeros(1);
        TaskCost(Task::CartpoleSwingup).cost(states.view(), actions.view(), out.view_mut());
        assert!(out[0].is_nan());
    }
}
