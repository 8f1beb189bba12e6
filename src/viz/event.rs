//! What producers send to the viz thread: plain `Copy` values of fixed size, so the control
//! loop can hand them over with `try_send` without allocating. No rerun types here: the
//! producers (control loop, planner, trainer) never see the viewer's API.

use handful_protocol::MAX_STATE_DIM;

use crate::control::{EpisodeSummary, TickRecord};
use crate::link::{Health, LinkStats};

/// Longest plan a [`PlanSnapshot`] holds (steps).
pub const MAX_PLAN_HORIZON: usize = 32;
/// Widest state a [`PlanSnapshot`] holds.
pub const MAX_PLAN_STATE_DIM: usize = 8;
/// Widest action a [`PlanSnapshot`] holds.
pub const MAX_PLAN_ACTION_DIM: usize = 4;
/// Most elite trajectories a [`PlanSnapshot`] holds.
pub const MAX_PLAN_ELITES: usize = 5;
/// Bytes of text an [`InlineText`] holds.
pub const INLINE_TEXT_BYTES: usize = 96;

/// One event for the viewer.
///
/// `Plan` is large (~8 KiB) and travels on its own small queue inside [`super::VizSender`];
/// the other variants are a few hundred bytes at most.
// Unboxed on purpose: a `Box` would allocate per send. The sender routes plans to their
// own queue, so the big variant never sizes the ordinary queue's slots.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum VizEvent {
    /// One control tick: state, command, timing, mode, fault, episode step. Mode changes
    /// and faults are derived from consecutive ticks by the viz thread.
    Tick(TickRecord),
    /// An episode (trial) ended.
    Episode(EpisodeSummary),
    /// A link snapshot (polled by whoever owns the link, at a few hertz).
    Link { stats: LinkStats, health: Health },
    /// The planner's view of the future at one tick.
    Plan(PlanSnapshot),
    /// One epoch of model training.
    Training(TrainingPoint),
    /// The controller now uses model `version` (`label`: e.g. a hash prefix).
    Model { version: u32, label: InlineText },
    /// A free-form line for the viewer's log.
    Text { level: TextLevel, text: InlineText },
    /// One fit of the practice's state classifier (`crate::medal`).
    Classifier(crate::medal::FitReport),
    /// One deployed evaluation of the practice (EARL).
    Evaluation(crate::medal::Evaluation),
}

impl VizEvent {
    /// A text event; `text` is cut at [`INLINE_TEXT_BYTES`] (on a char boundary).
    pub fn text(level: TextLevel, text: &str) -> Self {
        Self::Text {
            level,
            text: InlineText::new(text),
        }
    }
}

/// Severity of a [`VizEvent::Text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextLevel {
    Debug,
    Info,
    Warn,
    Error,
}

pub use crate::telemetry::TrainingPoint;

/// A short string stored inline (no allocation): cut at [`INLINE_TEXT_BYTES`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineText {
    bytes: [u8; INLINE_TEXT_BYTES],
    len: u8,
}

impl InlineText {
    pub fn new(text: &str) -> Self {
        let mut end = text.len().min(INLINE_TEXT_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; INLINE_TEXT_BYTES];
        bytes[..end].copy_from_slice(&text.as_bytes()[..end]);
        Self {
            bytes,
            len: end as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        // Always a prefix of a `str` cut on a char boundary.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for InlineText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// Why a [`PlanSnapshot`] refused a shape or a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanShapeError {
    #[error("plan horizon {0} is outside 1..={MAX_PLAN_HORIZON}")]
    Horizon(usize),
    #[error("state dimension {0} is outside 1..={MAX_PLAN_STATE_DIM}")]
    StateDim(usize),
    #[error("action dimension {0} is outside 1..={MAX_PLAN_ACTION_DIM}")]
    ActionDim(usize),
    #[error("step {step} is past the plan's last step {last}")]
    Step { step: usize, last: usize },
    #[error("a row of {found} values where the plan expects {expected}")]
    Width { found: usize, expected: usize },
    #[error("already {MAX_PLAN_ELITES} elite trajectories")]
    TooManyElites,
}

/// What the planner believed at one tick: the mean planned trajectory (predicted states
/// `(H+1) × S`, step 0 being the observed state, and actions `H × A`), up to
/// [`MAX_PLAN_ELITES`] elite trajectories (`k × (H+1) × S`) and the particles' standard
/// deviation per step (`(H+1) × S`, drawn as a ±2σ band).
///
/// `Copy` and fixed size (under 8 KiB: at most [`MAX_PLAN_STATE_DIM`] states and
/// [`MAX_PLAN_ACTION_DIM`] actions): the MPC
/// controller fills one in place and sends it without allocating. Predicted step `k`
/// is compared with the state observed at tick `tick + k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanSnapshot {
    pub tick: u64,
    horizon: u8,
    state_dim: u8,
    action_dim: u8,
    elites: u8,
    mean_states: [[f32; MAX_PLAN_STATE_DIM]; MAX_PLAN_HORIZON + 1],
    std_states: [[f32; MAX_PLAN_STATE_DIM]; MAX_PLAN_HORIZON + 1],
    actions: [[f32; MAX_PLAN_ACTION_DIM]; MAX_PLAN_HORIZON],
    elite_states: [[[f32; MAX_PLAN_STATE_DIM]; MAX_PLAN_HORIZON + 1]; MAX_PLAN_ELITES],
}

impl PlanSnapshot {
    /// An all-zero plan of `horizon` steps over `state_dim` states and `action_dim` actions.
    pub fn new(
        tick: u64,
        horizon: usize,
        state_dim: usize,
        action_dim: usize,
    ) -> Result<Self, PlanShapeError> {
        if !(1..=MAX_PLAN_HORIZON).contains(&horizon) {
            return Err(PlanShapeError::Horizon(horizon));
        }
        if !(1..=MAX_PLAN_STATE_DIM).contains(&state_dim) || state_dim > MAX_STATE_DIM {
            return Err(PlanShapeError::StateDim(state_dim));
        }
        if !(1..=MAX_PLAN_ACTION_DIM).contains(&action_dim) {
            return Err(PlanShapeError::ActionDim(action_dim));
        }
        Ok(Self {
            tick,
            horizon: horizon as u8,
            state_dim: state_dim as u8,
            action_dim: action_dim as u8,
            elites: 0,
            mean_states: [[0.0; MAX_PLAN_STATE_DIM]; MAX_PLAN_HORIZON + 1],
            std_states: [[0.0; MAX_PLAN_STATE_DIM]; MAX_PLAN_HORIZON + 1],
            actions: [[0.0; MAX_PLAN_ACTION_DIM]; MAX_PLAN_HORIZON],
            elite_states: [[[0.0; MAX_PLAN_STATE_DIM]; MAX_PLAN_HORIZON + 1]; MAX_PLAN_ELITES],
        })
    }

    pub fn horizon(&self) -> usize {
        self.horizon as usize
    }

    pub fn state_dim(&self) -> usize {
        self.state_dim as usize
    }

    pub fn action_dim(&self) -> usize {
        self.action_dim as usize
    }

    pub fn elite_count(&self) -> usize {
        self.elites as usize
    }

    /// Forgets the elites (to refill the snapshot for another tick).
    pub fn clear_elites(&mut self) {
        self.elites = 0;
    }

    fn check(
        &self,
        step: usize,
        last: usize,
        row: &[f32],
        width: usize,
    ) -> Result<(), PlanShapeError> {
        if step > last {
            return Err(PlanShapeError::Step { step, last });
        }
        if row.len() != width {
            return Err(PlanShapeError::Width {
                found: row.len(),
                expected: width,
            });
        }
        Ok(())
    }

    /// Sets the mean predicted state at `step` (`0..=H`) and its per-dimension std.
    pub fn set_state(
        &mut self,
        step: usize,
        mean: &[f32],
        std: &[f32],
    ) -> Result<(), PlanShapeError> {
        let (h, s) = (self.horizon(), self.state_dim());
        self.check(step, h, mean, s)?;
        self.check(step, h, std, s)?;
        self.mean_states[step][..s].copy_from_slice(mean);
        self.std_states[step][..s].copy_from_slice(std);
        Ok(())
    }

    /// Sets the planned action at `step` (`0..H`).
    pub fn set_action(&mut self, step: usize, action: &[f32]) -> Result<(), PlanShapeError> {
        self.check(step, self.horizon() - 1, action, self.action_dim())?;
        self.actions[step][..action.len()].copy_from_slice(action);
        Ok(())
    }

    /// Appends an elite trajectory, `(H+1) × S` row-major.
    pub fn push_elite(&mut self, states: &[f32]) -> Result<(), PlanShapeError> {
        let (h, s) = (self.horizon(), self.state_dim());
        if self.elite_count() == MAX_PLAN_ELITES {
            return Err(PlanShapeError::TooManyElites);
        }
        if states.len() != (h + 1) * s {
            return Err(PlanShapeError::Width {
                found: states.len(),
                expected: (h + 1) * s,
            });
        }
        let slot = &mut self.elite_states[self.elites as usize];
        for (row, chunk) in slot.iter_mut().zip(states.chunks_exact(s)) {
            row[..s].copy_from_slice(chunk);
        }
        self.elites += 1;
        Ok(())
    }

    /// Mean predicted state at `step` (`0..=H`; clamped).
    pub fn mean_state(&self, step: usize) -> &[f32] {
        &self.mean_states[step.min(self.horizon())][..self.state_dim()]
    }

    /// Particle std at `step` (`0..=H`; clamped).
    pub fn std_state(&self, step: usize) -> &[f32] {
        &self.std_states[step.min(self.horizon())][..self.state_dim()]
    }

    /// Planned action at `step` (`0..H`; clamped).
    pub fn action(&self, step: usize) -> &[f32] {
        &self.actions[step.min(self.horizon() - 1)][..self.action_dim()]
    }

    /// Elite `k`'s predicted state at `step` (both clamped).
    pub fn elite_state(&self, k: usize, step: usize) -> &[f32] {
        let k = k.min(MAX_PLAN_ELITES - 1);
        &self.elite_states[k][step.min(self.horizon())][..self.state_dim()]
    }
    /// How the plan compares with what happened: `actual[k]` is the state observed `k`
    /// ticks after the plan's tick (`None`: not observed), for `k` in `0..=H`.
    pub fn outcome(&self, actual: &[Option<&[f32]>]) -> PlanOutcome {
        let (h, s) = (self.horizon(), self.state_dim());
        let mut outcome = PlanOutcome::default();
        let error = |k: usize| -> Option<[f32; MAX_PLAN_STATE_DIM]> {
            let state = actual.get(k).copied().flatten().filter(|a| a.len() >= s)?;
            let mut e = [0.0; MAX_PLAN_STATE_DIM];
            for (d, slot) in e.iter_mut().enumerate().take(s) {
                *slot = state[d] - self.mean_state(k)[d];
            }
            Some(e)
        };
        outcome.one_step_error = error(1);
        outcome.horizon_error = error(h);
        for k in 1..=h {
            let Some(e) = error(k) else { continue };
            for (d, err) in e.iter().enumerate().take(s) {
                outcome.compared += 1;
                outcome.inside_two_sigma += u32::from(err.abs() <= 2.0 * self.std_state(k)[d]);
            }
        }
        outcome
    }
}

/// A plan against the states that followed it ([`PlanSnapshot::outcome`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlanOutcome {
    /// Actual − predicted one step ahead, per state (`None`: that state not observed).
    pub one_step_error: Option<[f32; MAX_PLAN_STATE_DIM]>,
    /// Actual − predicted at the horizon.
    pub horizon_error: Option<[f32; MAX_PLAN_STATE_DIM]>,
    /// (step, state) pairs compared over steps `1..=H`, and how many of them fell within
    /// the predicted ±2σ.
    pub compared: u32,
    pub inside_two_sigma: u32,
}

impl PlanOutcome {
    /// Share of compared values inside ±2σ (`None` if nothing was compared).
    pub fn coverage(&self) -> Option<f64> {
        (self.compared > 0).then(|| f64::from(self.inside_two_sigma) / f64::from(self.compared))
    }
}
