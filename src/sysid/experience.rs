//! The two aggregated datasets of DAgger system identification, in memory: expert
//! transitions (demonstrations) and learner transitions (the controller's own
//! experience). Nothing is ever discarded unless the configuration bounds a kind and asks
//! for oldest-first eviction. Each episode's transitions are split once, by a seeded
//! draw, into training rows and validation rows, so a model is always judged on
//! transitions of both kinds it never trained on.

use std::collections::VecDeque;

use ndarray::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::dataset::Frame;
use crate::train::{TrainError, Transitions};

/// Whose experience a transition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Expert,
    Learner,
}

/// One transition `(s, a, s')`.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub state: Vec<f32>,
    pub action: Vec<f32>,
    pub next_state: Vec<f32>,
}

/// The transitions of one episode's frames: `(s_t, a_{t−delay}, s_{t+1})`.
///
/// A frame pairs the state the controller saw with the command it sent. In lockstep that
/// command drives the step to the next frame (`delay = 0`). In real time the firmware
/// applies a command from its next tick on, so the step from `s_t` to `s_{t+1}` is driven
/// by the command sent one tick earlier (`delay = 1`): the model must learn the dynamics
/// of the action actually applied, the one the planner's latency compensation feeds it.
pub fn transitions_from_frames(frames: &[Frame], delay: usize) -> Vec<Transition> {
    (delay..frames.len().saturating_sub(1))
        .map(|t| Transition {
            state: frames[t].state.clone(),
            action: frames[t - delay].action.clone(),
            next_state: frames[t + 1].state.clone(),
        })
        .filter(|t| {
            t.state
                .iter()
                .chain(&t.action)
                .chain(&t.next_state)
                .all(|v| v.is_finite())
        })
        .collect()
}

/// The command-to-step delay of data recorded in real time (1) or in lockstep (0).
pub const fn applied_delay(lockstep: bool) -> usize {
    if lockstep { 0 } else { 1 }
}

/// How much experience is kept.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperienceConfig {
    /// Fraction of each episode's transitions kept aside for validation.
    pub validation_fraction: f64,
    /// Most training transitions kept per kind (`None`: all).
    pub max_rows_per_kind: Option<usize>,
    /// With a bound, drop the oldest transitions first (otherwise new ones are refused).
    pub evict_oldest: bool,
}

impl Default for ExperienceConfig {
    fn default() -> Self {
        Self {
            validation_fraction: 0.1,
            max_rows_per_kind: None,
            evict_oldest: false,
        }
    }
}

#[derive(Debug, Default)]
struct Pool {
    train: VecDeque<Transition>,
    validation: Vec<Transition>,
    dropped: usize,
}

/// Both kinds of experience, split into training and validation rows.
#[derive(Debug)]
pub struct Experience {
    config: ExperienceConfig,
    expert: Pool,
    learner: Pool,
    rng: ChaCha8Rng,
}

/// Row counts, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExperienceCounts {
    pub expert_train: usize,
    pub expert_validation: usize,
    pub learner_train: usize,
    pub learner_validation: usize,
    /// Transitions refused or evicted because of `max_rows_per_kind`.
    pub dropped: usize,
}

impl Experience {
    pub fn new(config: ExperienceConfig, seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            config,
            expert: Pool::default(),
            learner: Pool::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn add(&mut self, kind: Kind, transitions: Vec<Transition>) {
        let pool = match kind {
            Kind::Expert => &mut self.expert,
            Kind::Learner => &mut self.learner,
        };
        for t in transitions {
            if self
                .rng
                .random_bool(self.config.validation_fraction.clamp(0.0, 1.0))
            {
                pool.validation.push(t);
                continue;
            }
            if let Some(max) = self.config.max_rows_per_kind
                && pool.train.len() >= max
            {
                pool.dropped += 1;
                if !self.config.evict_oldest {
                    continue;
                }
                pool.train.pop_front();
            }
            pool.train.push_back(t);
        }
    }

    pub fn counts(&self) -> ExperienceCounts {
        ExperienceCounts {
            expert_train: self.expert.train.len(),
            expert_validation: self.expert.validation.len(),
            learner_train: self.learner.train.len(),
            learner_validation: self.learner.validation.len(),
            dropped: self.expert.dropped + self.learner.dropped,
        }
    }

    /// The training rows, expert first: `(data, number of expert rows)`.
    pub fn training_set(&self) -> Result<(Transitions, usize), TrainError> {
        let rows: Vec<&Transition> = self
            .expert
            .train
            .iter()
            .chain(&self.learner.train)
            .collect();
        Ok((stack(&rows)?, self.expert.train.len()))
    }

    /// The validation rows of both kinds.
    pub fn validation_set(&self) -> Result<Transitions, TrainError> {
        let rows: Vec<&Transition> = self
            .expert
            .validation
            .iter()
            .chain(&self.learner.validation)
            .collect();
        stack(&rows)
    }
}

fn stack(rows: &[&Transition]) -> Result<Transitions, TrainError> {
    let (s, a) = rows
        .first()
        .map_or((0, 0), |t| (t.state.len(), t.action.len()));
    let matrix = |pick: &dyn Fn(&Transition) -> &[f32], width: usize| {
        let flat: Vec<f32> = rows.iter().flat_map(|t| pick(t).iter().copied()).collect();
        Array2::from_shape_vec((rows.len(), width), flat).map_err(|_| TrainError::Columns {
            what: "transitions",
            found: 0,
            expected: width,
        })
    };
    Transitions::new(
        matrix(&|t| &t.state, s)?,
        matrix(&|t| &t.action, a)?,
        matrix(&|t| &t.next_state, s)?,
    )
}
