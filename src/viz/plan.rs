//! The planner's predictions and what actually happened. A plan is logged when it arrives
//! (at its tick); it is then kept until the states it predicted have been observed, and
//! the actual trajectory is logged at the plan's tick beside the prediction, with the
//! prediction errors and the share of actual states inside the predicted ±2σ band.
//!
//! "Future time" charts are 2-D line strips under `plan/state/<name>/…` whose x axis is
//! seconds ahead of the plan's tick: scrubbing the `tick` timeline shows, at each tick,
//! what was planned then and (once known) what followed. rerun's 2-D views keep one scale
//! for both axes, so seconds against a channel's unit would be a strip a few pixels wide:
//! each chart is drawn in a box of [`CHART_WIDTH`] × [`CHART_HEIGHT`] instead, the horizon
//! across and the channel's range up, with its axes and their labels in real units
//! (`…/axes`). A channel's range starts from what it first shows and only ever widens,
//! to round numbers, so charts keep their scale while the run goes on.

use std::collections::VecDeque;

use rerun::{LineStrips2D, Points2D, RecordingStream, RecordingStreamError};

use super::draw::{
    ACTUAL_COLOR, AXES_COLOR, BAND_COLOR, ELITE_COLOR, Layout, MEAN_COLOR, log_scalar, screen,
};
use super::event::{MAX_PLAN_HORIZON, MAX_PLAN_STATE_DIM, PlanSnapshot};

type Strip = Vec<[f32; 2]>;

/// A chart's box, in the view's units: the horizon across, the channel's range up.
pub const CHART_WIDTH: f32 = 1.6;
pub const CHART_HEIGHT: f32 = 1.0;

/// The value range a chart shows, in the channel's unit: round numbers that contain
/// everything shown so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartRange {
    pub lo: f32,
    pub hi: f32,
}

impl ChartRange {
    /// The round range around `lo..=hi` (a step of 1, 2 or 5 × 10ᵏ, five steps or so).
    pub fn around(lo: f32, hi: f32) -> Option<Self> {
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        let (lo, hi) = if hi - lo < 1e-6 {
            let pad = (lo.abs() * 0.1).max(1e-3);
            (lo - pad, hi + pad)
        } else {
            (lo, hi)
        };
        let step = nice_step((hi - lo) / 5.0);
        Some(Self {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
        })
    }

    /// This range widened to hold `lo..=hi`, or `None` if it already does.
    pub fn widened(self, lo: f32, hi: f32) -> Option<Self> {
        if !(lo.is_finite() && hi.is_finite()) || (lo >= self.lo && hi <= self.hi) {
            return None;
        }
        Self::around(lo.min(self.lo), hi.max(self.hi))
    }

    /// A point of a chart: `ahead` of `horizon` seconds, `value` in the channel's unit.
    pub fn point(self, ahead: f32, horizon: f32, value: f32) -> [f32; 2] {
        let x = ahead / horizon.max(f32::EPSILON) * CHART_WIDTH;
        let y = (value - self.lo) / (self.hi - self.lo) * CHART_HEIGHT;
        screen(x, y)
    }
}

/// 1, 2 or 5 × 10ᵏ, the smallest at least `raw`.
fn nice_step(raw: f32) -> f32 {
    let raw = raw.max(1e-6);
    let magnitude = 10f32.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw * 0.999)
        .unwrap_or(10.0 * magnitude)
}

/// The charts' ranges (states, then actions), logged axes included.
struct Charts {
    states: Vec<Option<ChartRange>>,
    actions: Vec<Option<ChartRange>>,
}

impl Charts {
    fn new(layout: &Layout) -> Self {
        let actions = (0..layout.action_names.len())
            .map(|a| {
                layout
                    .action_limits
                    .get(a)
                    .and_then(|&(lo, hi)| ChartRange::around(lo, hi))
            })
            .collect();
        Self {
            states: vec![None; layout.state_names.len()],
            actions,
        }
    }

    /// The range of chart `slot` after taking in `lo..=hi`, and whether it changed.
    fn fit(slot: &mut Option<ChartRange>, lo: f32, hi: f32) -> (Option<ChartRange>, bool) {
        let next = match *slot {
            None => ChartRange::around(lo, hi),
            Some(range) => range.widened(lo, hi),
        };
        match next {
            Some(range) => {
                *slot = Some(range);
                (Some(range), true)
            }
            None => (*slot, false),
        }
    }
}

/// A chart's axes at `base/axes`: the box, the zero line, and labels in real units.
fn log_axes(
    rec: &RecordingStream,
    base: &str,
    range: ChartRange,
    horizon_s: f32,
    unit: &str,
) -> Result<(), RecordingStreamError> {
    let corner = |x: f32, y: f32| range.point(x, horizon_s, y);
    let mut lines = vec![vec![
        corner(0.0, range.lo),
        corner(horizon_s, range.lo),
        corner(horizon_s, range.hi),
        corner(0.0, range.hi),
        corner(0.0, range.lo),
    ]];
    if range.lo < 0.0 && range.hi > 0.0 {
        lines.push(vec![corner(0.0, 0.0), corner(horizon_s, 0.0)]);
    }
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    let mut points = vec![
        (corner(0.0, range.lo), "0 s".to_owned()),
        (
            corner(horizon_s / 2.0, range.lo),
            format!("{:.2} s ahead", horizon_s / 2.0),
        ),
        (corner(horizon_s, range.lo), format!("{horizon_s:.2} s")),
        (
            corner(0.0, range.lo),
            format!("{}{unit}", round_label(range.lo)),
        ),
        (
            corner(0.0, range.hi),
            format!("{}{unit}", round_label(range.hi)),
        ),
    ];
    if range.lo < 0.0 && range.hi > 0.0 {
        points.push((corner(0.0, 0.0), format!("0{unit}")));
    }
    rec.log(
        format!("{base}/axes"),
        &LineStrips2D::new(lines).with_colors([AXES_COLOR]),
    )?;
    rec.log(
        format!("{base}/axes/labels"),
        &Points2D::new(points.iter().map(|(p, _)| *p))
            .with_labels(points.iter().map(|(_, l)| l.clone()))
            .with_colors([AXES_COLOR])
            .with_radii([0.005]),
    )
}

fn round_label(v: f32) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

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
    charts: Option<Charts>,
}

impl PlanTracker {
    pub fn new(plans_kept: usize) -> Self {
        let plans_kept = plans_kept.max(1);
        Self {
            pending: VecDeque::with_capacity(plans_kept),
            plans_kept,
            history: vec![None; plans_kept + 2 * MAX_PLAN_HORIZON + 2],
            latest_tick: None,
            charts: None,
        }
    }

    fn observed(&self, tick: u64) -> Option<&Observed> {
        let slot = self.history[(tick % self.history.len() as u64) as usize].as_ref()?;
        (slot.tick == tick).then_some(slot)
    }

    /// Sets `tick` (and `robot_time` when the state of that tick is known) as the time.
    fn set_time(&self, rec: &RecordingStream, tick: u64) {
        // Only `tick` and `robot_time`: a timeline another event set (a training point's
        // `epoch`) must not stamp a plan.
        rec.reset_time();
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
        let charts = self.charts.get_or_insert_with(|| Charts::new(layout));
        log_prediction(rec, layout, charts, plan)?;
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
        let horizon_s = h as f32 * dt;
        let outcome = plan.outcome(&actual);
        for (d, name) in layout.state_names.iter().enumerate().take(plan.state_dim()) {
            // The outcome in the prediction's chart (its range held the prediction; an
            // outcome outside it is drawn outside the box, visibly off).
            let Some(range) = self
                .charts
                .as_ref()
                .and_then(|c| c.states.get(d).copied().flatten())
            else {
                continue;
            };
            let strip: Strip = actual
                .iter()
                .enumerate()
                .filter_map(|(k, s)| s.map(|s| range.point(k as f32 * dt, horizon_s, s[d])))
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
    charts: &mut Charts,
    plan: &PlanSnapshot,
) -> Result<(), RecordingStreamError> {
    let (h, dt) = (plan.horizon(), layout.period_s as f32);
    let horizon_s = h as f32 * dt;
    let empty: [Strip; 0] = [];
    for (d, name) in layout.state_names.iter().enumerate().take(plan.state_dim()) {
        let base = format!("plan/state/{name}");
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for k in 0..=h {
            let (m, sd) = (plan.mean_state(k)[d], plan.std_state(k)[d]);
            lo = lo.min(m - 2.0 * sd);
            hi = hi.max(m + 2.0 * sd);
            for e in 0..plan.elite_count() {
                lo = lo.min(plan.elite_state(e, k)[d]);
                hi = hi.max(plan.elite_state(e, k)[d]);
            }
        }
        let Some(slot) = charts.states.get_mut(d) else {
            continue;
        };
        let (range, changed) = Charts::fit(slot, lo, hi);
        let Some(range) = range else {
            continue; // nothing finite to draw yet
        };
        if changed {
            let unit = layout.state_units.get(d).map_or("", String::as_str);
            log_axes(rec, &base, range, horizon_s, unit)?;
        }
        let line = |f: &dyn Fn(usize) -> f32| -> Strip {
            (0..=h)
                .map(|k| range.point(k as f32 * dt, horizon_s, f(k)))
                .collect()
        };
        let mean = line(&|k| plan.mean_state(k)[d]);
        let upper = line(&|k| plan.mean_state(k)[d] + 2.0 * plan.std_state(k)[d]);
        let lower = line(&|k| plan.mean_state(k)[d] - 2.0 * plan.std_state(k)[d]);
        let elites: Vec<Strip> = (0..plan.elite_count())
            .map(|e| line(&|k| plan.elite_state(e, k)[d]))
            .collect();
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
        let (lo, hi) = (0..h).fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), k| {
            (lo.min(plan.action(k)[a]), hi.max(plan.action(k)[a]))
        });
        let Some(slot) = charts.actions.get_mut(a) else {
            continue;
        };
        let (range, changed) = Charts::fit(slot, lo, hi);
        let Some(range) = range else {
            continue;
        };
        let base = format!("plan/action/{name}");
        if changed {
            let unit = layout.action_units.get(a).map_or("", String::as_str);
            log_axes(rec, &base, range, horizon_s, unit)?;
        }
        let strip: Strip = (0..h)
            .map(|k| range.point(k as f32 * dt, horizon_s, plan.action(k)[a]))
            .collect();
        rec.log(
            format!("{base}/mean"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_range_is_round_holds_its_values_and_only_widens() {
        let r = ChartRange::around(-0.3, 2.7).unwrap();
        assert_eq!(r, ChartRange { lo: -1.0, hi: 3.0 });
        assert_eq!(r.widened(-0.5, 2.9), None, "already inside");
        let wider = r.widened(-0.5, 7.2).unwrap();
        assert!(wider.lo <= -1.0 && wider.hi >= 7.2, "{wider:?}");
        assert_eq!(wider, ChartRange { lo: -2.0, hi: 8.0 });
        // A flat channel still gets a range; nothing finite gets none.
        let flat = ChartRange::around(5.0, 5.0).unwrap();
        assert!(flat.lo < 5.0 && flat.hi > 5.0, "{flat:?}");
        assert_eq!(ChartRange::around(f32::NAN, 1.0), None);
        assert_eq!(r.widened(f32::INFINITY, 1.0), None);
    }

    #[test]
    fn a_chart_fills_its_box_whatever_the_units() {
        // Metres over a second and radians per second over 1.25 s fill the same box: the
        // charts are not a few pixels wide in a full panel.
        for (lo, hi, horizon_s) in [(-0.05, 0.05, 1.0), (-12.0, 30.0, 1.25), (0.0, 6.3, 0.8)] {
            let r = ChartRange::around(lo, hi).unwrap();
            let [x0, y0] = r.point(0.0, horizon_s, r.lo);
            let [x1, y1] = r.point(horizon_s, horizon_s, r.hi);
            assert_eq!([x0, y0], [0.0, 0.0]);
            assert!((x1 - CHART_WIDTH).abs() < 1e-5, "{x1}");
            assert!(
                (y1 + CHART_HEIGHT).abs() < 1e-5,
                "{y1}: y is up, screen y down"
            );
            let [_, mid] = r.point(0.0, horizon_s, 0.5 * (r.lo + r.hi));
            assert!((mid + 0.5 * CHART_HEIGHT).abs() < 1e-5);
        }
    }
}
