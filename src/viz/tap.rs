//! [`PlanTap`]: the MPC controller's plans, as [`PlanSnapshot`]s for the viewer.
//!
//! Runs on the control thread after each plan (it is the controller's
//! [`PlanObserver`]): it reads the planner's last iteration — the best candidate's
//! predicted trajectory as the mean and spread of its particles, its actions, and the
//! next-best candidates as elites — into a fixed-size snapshot and `try_send`s it.
//! Allocation-free (the allocation test runs it); a disabled sender costs one branch.

use super::event::{MAX_PLAN_ELITES, MAX_PLAN_HORIZON, MAX_PLAN_STATE_DIM};
use super::{PlanSnapshot, VizSender};
use crate::mpc::{PlanObserver, Planner};

/// Sends each plan to the viewer.
pub struct PlanTap {
    sender: VizSender,
    best: [usize; MAX_PLAN_ELITES],
    elite: [f32; (MAX_PLAN_HORIZON + 1) * MAX_PLAN_STATE_DIM],
}

impl PlanTap {
    pub fn new(sender: VizSender) -> Self {
        Self {
            sender,
            best: [0; MAX_PLAN_ELITES],
            elite: [0.0; (MAX_PLAN_HORIZON + 1) * MAX_PLAN_STATE_DIM],
        }
    }

    fn snapshot(&mut self, tick: u64, planner: &Planner) -> Option<PlanSnapshot> {
        let full_horizon = planner.config().horizon;
        let h = full_horizon.min(MAX_PLAN_HORIZON);
        let (s, a) = (planner.state_dim(), planner.action_dim());
        let mut snapshot = PlanSnapshot::new(tick, h, s, a).ok()?;
        let n = planner.best_candidates(&mut self.best);
        let best = *self.best[..n].first()?;
        let mut mean = [0.0f32; MAX_PLAN_STATE_DIM];
        let mut std = [0.0f32; MAX_PLAN_STATE_DIM];
        for k in 0..=h {
            if !planner.plan_trace(best, k, &mut mean[..s], &mut std[..s]) {
                return None;
            }
            snapshot.set_state(k, &mean[..s], &std[..s]).ok()?;
        }
        let sequence = planner
            .candidates()
            .get(best * full_horizon * a..(best + 1) * full_horizon * a)?;
        for (k, action) in sequence.chunks_exact(a).take(h).enumerate() {
            snapshot.set_action(k, action).ok()?;
        }
        for &candidate in &self.best[1..n] {
            for k in 0..=h {
                planner.plan_trace(candidate, k, &mut mean[..s], &mut std[..s]);
                self.elite[k * s..(k + 1) * s].copy_from_slice(&mean[..s]);
            }
            snapshot.push_elite(&self.elite[..(h + 1) * s]).ok()?;
        }
        Some(snapshot)
    }
}

impl PlanObserver for PlanTap {
    fn observe(&mut self, tick: u64, planner: &Planner) {
        if !self.sender.is_enabled() {
            return;
        }
        if let Some(snapshot) = self.snapshot(tick, planner) {
            self.sender.send_plan(&snapshot);
        }
    }
}
