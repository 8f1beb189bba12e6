//! Read access to the planner's results for the controller, telemetry and
//! visualization: the command, the plan, the elites, the particles. Borrowing only:
//! nothing here allocates or changes the plan except [`Planner::reset`].

use super::Planner;
use crate::mpc::config::PlannerConfig;
use crate::mpc::outcome::PlanStats;

impl Planner {
    /// The command of the last call, `A`.
    pub fn first_action(&self) -> &[f32] {
        &self.first_action
    }

    /// The plan (sampling mean; random shooting: the best sequence), `H × A` flat.
    pub fn plan_sequence(&self) -> &[f32] {
        &self.mean
    }

    /// The sampling variance after the last update, `H × A` flat.
    pub fn variance(&self) -> &[f32] {
        &self.var
    }

    /// The last iteration's elites, best first, `K × H × A` flat.
    pub fn elites(&self) -> &[f32] {
        &self.elites
    }

    /// The last iteration's elite costs, ascending, `K`.
    pub fn elite_costs(&self) -> &[f32] {
        &self.elite_costs
    }

    /// Raw costs of the last iteration's candidates, `≤ P`, non-finite ones as `f32::MAX`.
    pub fn candidate_costs(&self) -> &[f32] {
        &self.costs[..self.rollout.candidates()]
    }

    /// The last iteration's candidates, `≤ P × H × A` flat (same order as the costs).
    pub fn candidates(&self) -> &[f32] {
        let width = self.config.horizon * self.action_dim;
        &self.candidates[..self.rollout.candidates() * width]
    }

    /// The particles' final states of the last iteration, `E × R × S` (see
    /// [`crate::mpc::Rollout`] for the row layout).
    pub fn particle_states(&self) -> Option<ndarray::ArrayView3<'_, f32>> {
        self.rollout.final_states()
    }

    pub fn last_stats(&self) -> Option<PlanStats> {
        self.last_stats
    }

    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// Forgets the warm start and the elites (a new episode). The RNG is not reseeded.
    pub fn reset(&mut self) {
        self.warm = false;
        self.elites_valid = false;
        self.last_stats = None;
        self.first_action.copy_from_slice(&self.midpoint);
    }

    /// Keeps every step of the particles' rollouts from now on, so that
    /// [`Planner::plan_trace`] can show what the model predicted (allocates here, once).
    pub fn enable_trace(&mut self) {
        self.rollout.enable_trace(self.config.horizon);
    }

    /// Mean and standard deviation over candidate `candidate`'s particles of its
    /// predicted state at `step` (`0..=H`) in the last iteration (`S` each). `false`
    /// without a trace. Allocation-free.
    pub fn plan_trace(
        &self,
        candidate: usize,
        step: usize,
        mean: &mut [f32],
        std: &mut [f32],
    ) -> bool {
        self.rollout.trace_stats(candidate, step, mean, std)
    }

    /// Writes the indices of the last iteration's lowest-cost candidates into `out`,
    /// best first; returns how many. Allocation-free (a selection scan; `out` is short).
    pub fn best_candidates(&self, out: &mut [usize]) -> usize {
        let costs = self.candidate_costs();
        let mut n = 0;
        while n < out.len() {
            let next = costs
                .iter()
                .enumerate()
                .filter(|(i, c)| c.is_finite() && !out[..n].contains(i))
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            out[n] = i;
            n += 1;
        }
        n
    }

    /// State dimension `S`.
    pub fn state_dim(&self) -> usize {
        self.state_dim
    }

    /// Action dimension `A`.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }
}
