//! The planner's predictions and what actually happened. A plan is logged when it arrives
//! (at its tick); it is then kept until the states it predicted have been observed, and
//! the actual trajectory is logged at the plan's tick beside the prediction, with the
//! prediction errors and the share of actual states inside the predicted ±2σ band.
//!
//! "Future time" charts are 2-D line strips under `plan/state/<name>/…` whose x axis is
//! seconds ahead of the plan's tick: scrubbing the `tick` timeline shows, at each tick,
//! what was planned then and (once known) what followed.

use std::collections::VecDeque;

use rerun::{LineStrips2D, RecordingStream, RecordingStreamError};

use super::draw::{ACTUAL_COLOR, BAND_COLOR, ELITE_COLOR, Layout, MEAN_COLOR, log_scalar, screen};
use super::event::{MAX_PLAN_HORIZON, MAX_PLAN_STATE_DIM, PlanSnapshot};

type Strip = Vec<[f32; 2]>;

/// One observed state, remembered for comparison with plans.
#[derive(Clone, Copy)]
struct Observed {
    tick: u64,
    firmware_us: u64,
    state: [f32; MAX_PLAN_STATE_DIM],
}

/// Plans waiting for their outcome, and the recent observed states.
pub struct PlanTracker {
    pending: VecDeque<PlanSnapshot>,
    plans_kept: usize,
    /// Ring indexed by `tick % len`.
    history: Vec<Option<Observed>>,
    latest_tick: Option<u64>,
}

impl PlanTracker {
    pub fn new(plans_kept: usize) -> Self {
        let plans_kept = plans_kept.max(1);
        Self {
            pending: VecDeque::with_capacity(plans_kept),
            plans_kept,
            history: vec![None; plans_kept + 2 * MAX_PLAN_HORIZON + 2],
            latest_tick: None,
        }
    }

    fn observed(&self, tick: u64) -> Option<&Observed> {
        let slot = self.history[(tick % self.history.len() as u64) as usize].as_ref()?;
        (slot.tick == tick).then_some(slot)
    }

    /// Sets `tick` (and `robot_time` when the state of that tick is known) as the time.
    fn set_time(&self, rec: &RecordingStream, tick: u64) {
        rec.set_time_sequence("tick", tick as i64);
        match self.observed(tick) {
            Some(o) => rec.set_duration_secs("robot_time", o.firmware_us as f64 * 1e-6),
            None => rec.disable_timeline("robot_time"),
        }
    }

    /// Logs `plan` at its tick and keeps it until its outcome is known.
    pub fn add(
        &mut self,
        rec: &RecordingStream,
        layout: &Layout,
        plan: &PlanSnapshot,
    ) -> Result<(), RecordingStreamError> {
        self.set_time(rec, plan.tick);
        log_prediction(rec, layout, plan)?;
        if self.pending.len() == self.plans_kept
            && let Some(oldest) = self.pending.pop_front()
        {
            self.resolve(rec, layout, &oldest)?;
        }
        self.pending.push_back(*plan);
        self.resolve_due(rec, layout)
    }

    /// Remembers the state observed at `tick` and logs the outcome of every plan whose
    /// horizon has now been observed.
    pub fn observe(
        &mut self,
        rec: &RecordingStream,
        layout: &Layout,
        tick: u64,
        firmware_us: u64,
        state: &[f32],
    ) -> Result<(), RecordingStreamError> {
        let mut stored = [0.0; MAX_PLAN_STATE_DIM];
        let n = state.len().min(MAX_PLAN_STATE_DIM);
        stored[..n].copy_from_slice(&state[..n]);
        let len = self.history.len() as u64;
        self.history[(tick % len) as usize] = Some(Observed {
            tick,
            firmware_us,
            state: stored,
        });
        self.latest_tick = Some(self.latest_tick.map_or(tick, |t| t.max(tick)));
        self.resolve_due(rec, layout)
    }

    fn resolve_due(
        &mut self,
        rec: &RecordingStream,
        layout: &Layout,
    ) -> Result<(), RecordingStreamError> {
        let Some(latest) = self.latest_tick else {
            return Ok(());
        };
        let mut i = 0;
        while i < self.pending.len() {
            let plan = self.pending[i];
            if plan.tick + plan.horizon() as u64 <= latest {
                self.pending.remove(i);
                self.resolve(rec, layout, &plan)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Logs what is known of the outcome of every plan still waiting (at the end).
    pub fn flush(
        &mut self,
        rec: &RecordingStream,
        layout: &Layout,
    ) -> Result<(), RecordingStreamError> {
        while let Some(plan) = self.pending.pop_front() {
            self.resolve(rec, layout, &plan)?;
        }
        Ok(())
    }

    /// Logs the actual trajectory after `plan`'s tick beside its prediction.
    fn resolve(
        &self,
        rec: &RecordingStream,
        layout: &Layout,
        plan: &PlanSnapshot,
    ) -> Result<(), RecordingStreamError> {
        let h = plan.horizon();
        let actual: Vec<Option<&[f32]>> = (0..=h)
            .map(|k| {
                self.observed(plan.tick + k as u64)
                    .map(|o| &o.state[..plan.state_dim()])
            })
            .collect();
        if actual.iter().all(Option::is_none) {
            return Ok(());
        }
        self.set_time(rec, plan.tick);
        let dt = layout.period_s as f32;
        let outcome = plan.outcome(&actual);
        for (d, name) in layout.state_names.iter().enumerate().take(plan.state_dim()) {
            let strip: Strip = actual
                .iter()
                .enumerate()
                .filter_map(|(k, s)| s.map(|s| screen(k as f32 * dt, s[d])))
                .collect();
            rec.log(
                format!("plan/state/{name}/actual"),
                &LineStrips2D::new([strip]).with_colors([ACTUAL_COLOR]),
            )?;
            let errors = [
                ("one_step", outcome.one_step_error),
                ("horizon", outcome.horizon_error),
            ];
            for (which, error) in errors {
                if let Some(e) = error {
                    let path = format!("plan/error/{name}/{which}");
                    log_scalar(rec, &path, f64::from(e[d]))?;
                }
            }
        }
        if let Some(coverage) = outcome.coverage() {
            log_scalar(rec, "plan/coverage", coverage)?;
        }
        let path = layout.tip_path(actual.iter().flatten().copied());
        if !path.is_empty() {
            rec.log(
                "robot/plan/actual",
                &LineStrips2D::new([path]).with_colors([ACTUAL_COLOR]),
            )?;
        }
        Ok(())
    }
}

/// The prediction of `plan`: future-time charts per state and action, the tip paths in
/// the robot view; and empties at `…/actual` so an older outcome is not shown as this
/// plan's before its own is known.
fn log_prediction(
    rec: &RecordingStream,
    layout: &Layout,
    plan: &PlanSnapshot,
) -> Result<(), RecordingStreamError> {
    let (h, dt) = (plan.horizon(), layout.period_s as f32);
    let empty: [Strip; 0] = [];
    for (d, name) in layout.state_names.iter().enumerate().take(plan.state_dim()) {
        let line = |f: &dyn Fn(usize) -> f32| -> Strip {
            (0..=h).map(|k| screen(k as f32 * dt, f(k))).collect()
        };
        let mean = line(&|k| plan.mean_state(k)[d]);
        let upper = line(&|k| plan.mean_state(k)[d] + 2.0 * plan.std_state(k)[d]);
        let lower = line(&|k| plan.mean_state(k)[d] - 2.0 * plan.std_state(k)[d]);
        let elites: Vec<Strip> = (0..plan.elite_count())
            .map(|e| line(&|k| plan.elite_state(e, k)[d]))
            .collect();
        let base = format!("plan/state/{name}");
        rec.log(
            format!("{base}/mean"),
            &LineStrips2D::new([mean]).with_colors([MEAN_COLOR]),
        )?;
        rec.log(
            format!("{base}/band"),
            &LineStrips2D::new([upper, lower]).with_colors([BAND_COLOR]),
        )?;
        rec.log(
            format!("{base}/elites"),
            &LineStrips2D::new(elites).with_colors([ELITE_COLOR]),
        )?;
        rec.log(format!("{base}/actual"), &LineStrips2D::new(empty.clone()))?;
    }
    for (a, name) in layout
        .action_names
        .iter()
        .enumerate()
        .take(plan.action_dim())
    {
        let strip: Strip = (0..h)
            .map(|k| screen(k as f32 * dt, plan.action(k)[a]))
            .collect();
        rec.log(
            format!("plan/action/{name}/mean"),
            &LineStrips2D::new([strip]).with_colors([MEAN_COLOR]),
        )?;
    }
    let mean_path = layout.tip_path((0..=h).map(|k| plan.mean_state(k)));
    if !mean_path.is_empty() {
        let elite_paths: Vec<Strip> = (0..plan.elite_count())
            .map(|e| layout.tip_path((0..=h).map(|k| plan.elite_state(e, k))))
            .collect();
        rec.log(
            "robot/plan/mean",
            &LineStrips2D::new([mean_path]).with_colors([MEAN_COLOR]),
        )?;
        rec.log(
            "robot/plan/elites",
            &LineStrips2D::new(elite_paths).with_colors([ELITE_COLOR]),
        )?;
        rec.log("robot/plan/actual", &LineStrips2D::new(empty))?;
    }
    Ok(())
}
