//! The two aggregated datasets of DAgger system identification, in memory: expert
//! transitions (demonstrations) and learner transitions (the controller's own
//! experience). Nothing is ever discarded unless the configuration bounds a kind and asks
//! for oldest-first eviction. Each episode's transitions are split once, by a seeded
//! draw, into training rows and validation rows — whole contiguous blocks of
//! [`VALIDATION_BLOCK`] transitions, not single rows a period away from training rows —
//! so a model is judged on stretches of both kinds of experience it never trained on:
//! extrapolation along a trajectory, not interpolation between neighbours.

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

/// How a recording's robot stepped, which decides which state reports the command that
/// drove a step (firmware-bridge/README.md: a `State`'s `last_command_seq` is the command
/// in force when the firmware took the sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stepping {
    /// The simulator steps once per command received, after publishing the state that
    /// command answers: the step from `s_t` to `s_{t+1}` is driven by the command that
    /// `s_{t+1}` reports (the one sent at tick `t`).
    Lockstep,
    /// The firmware ticks at its own rate and applies, from each tick to the next, the
    /// command it had in force at the tick: the step from `s_t` is driven by the command
    /// `s_t` reports (usually the one sent a tick earlier; older if commands were lost).
    RealTime,
}

impl Stepping {
    pub const fn new(lockstep: bool) -> Self {
        if lockstep {
            Self::Lockstep
        } else {
            Self::RealTime
        }
    }

    /// Without command seqs in the data (older recordings, other tools): the command sent
    /// this many ticks before a step's first state drove it.
    const fn assumed_delay(self) -> usize {
        match self {
            Self::Lockstep => 0,
            Self::RealTime => 1,
        }
    }
}

/// What pairing an episode's frames gave, for reports (summed in `summary.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PairingCounts {
    /// Transitions kept.
    pub transitions: usize,
    /// Of those, paired by the recording's timing (the data carried no command seqs).
    pub paired_by_timing: usize,
    /// Places where consecutive frames are not one firmware period apart (a dropped or
    /// late state, a stall): the chain of transitions ends there.
    pub gaps: usize,
    /// Steps whose applied command is not known (disarmed, a command from before the
    /// episode, a seq never seen): dropped, never paired with a guess.
    pub unpaired: usize,
    /// Transitions with a non-finite value.
    pub non_finite: usize,
}

impl std::ops::AddAssign for PairingCounts {
    fn add_assign(&mut self, o: Self) {
        self.transitions += o.transitions;
        self.paired_by_timing += o.paired_by_timing;
        self.gaps += o.gaps;
        self.unpaired += o.unpaired;
        self.non_finite += o.non_finite;
    }
}

/// The transitions `(s_t, a, s_{t+1})` of one episode's frames, `a` the command the
/// firmware applied over the step, found by its seq ([`Stepping`]).
///
/// A step is kept only when its two frames are one firmware period apart (within half
/// a period: the firmware's tick jitter) and its applied command is known. A missed
/// state (a dropped frame, a late host tick that saw the same sample twice, a stall)
/// ends the chain there instead of producing a two-period transition; a step under an
/// unknown command is dropped instead of being paired with the wrong one. Frames without
/// command seqs (`-1` throughout: recorded before seqs were kept, or by another tool) are
/// paired by timing: the command sent `delay` ticks earlier, still only across one-period
/// steps.
pub fn transitions_from_frames(
    frames: &[Frame],
    stepping: Stepping,
    period_us: u64,
) -> (Vec<Transition>, PairingCounts) {
    let mut counts = PairingCounts::default();
    let has_seqs = frames
        .iter()
        .any(|f| f.command_seq >= 0 || f.applied_command_seq >= 0);
    let sent: std::collections::HashMap<i64, usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.command_seq >= 0)
        .map(|(i, f)| (f.command_seq, i))
        .collect();
    let period = period_us as i64;
    let mut out = Vec::with_capacity(frames.len().saturating_sub(1));
    for t in 0..frames.len().saturating_sub(1) {
        let (now, next) = (&frames[t], &frames[t + 1]);
        let dt = next.firmware_time_us - now.firmware_time_us;
        if period > 0 && (dt - period).abs() > period / 2 {
            counts.gaps += 1;
            continue;
        }
        let applied = if has_seqs {
            let seq = match stepping {
                Stepping::Lockstep => next.applied_command_seq,
                Stepping::RealTime => now.applied_command_seq,
            };
            let by = (seq >= 0).then(|| sent.get(&seq)).flatten();
            // The command must have been sent before it can be in force: in lockstep at
            // the step's first tick at the latest, in real time before it (the state at
            // tick t was taken before the command sent at t could arrive).
            let sent_in_time = |j: usize| match stepping {
                Stepping::Lockstep => j <= t,
                Stepping::RealTime => j < t,
            };
            match by.filter(|&&j| sent_in_time(j)) {
                Some(&j) => &frames[j].action,
                None => {
                    counts.unpaired += 1;
                    continue;
                }
            }
        } else {
            match t.checked_sub(stepping.assumed_delay()) {
                Some(j) => &frames[j].action,
                None => {
                    counts.unpaired += 1;
                    continue;
                }
            }
        };
        let transition = Transition {
            state: now.state.clone(),
            action: applied.clone(),
            next_state: next.state.clone(),
        };
        let finite = transition
            .state
            .iter()
            .chain(&transition.action)
            .chain(&transition.next_state)
            .all(|v| v.is_finite());
        if finite {
            out.push(transition);
            counts.paired_by_timing += usize::from(!has_seqs);
        } else {
            counts.non_finite += 1;
        }
    }
    counts.transitions = out.len();
    (out, counts)
}

/// Transitions per validation block: 20 periods (0.8 s of the cart-pole at 25 Hz), long
/// enough that a held-out block's middle is far from any training row.
pub const VALIDATION_BLOCK: usize = 20;

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

/// `expert 534 + 60 held out, learner 178 + 20 held out, 0 dropped` (for logs).
impl std::fmt::Display for ExperienceCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expert {} + {} held out, learner {} + {} held out, {} dropped",
            self.expert_train,
            self.expert_validation,
            self.learner_train,
            self.learner_validation,
            self.dropped
        )
    }
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

    /// Adds one episode's transitions (in time order). `round(fraction × blocks)` of its
    /// [`VALIDATION_BLOCK`]-transition blocks (at least one when the fraction is positive
    /// and the episode has two blocks or more), chosen by the seeded RNG, become
    /// validation rows; an episode shorter than two blocks goes to validation whole with
    /// probability `fraction`.
    pub fn add(&mut self, kind: Kind, transitions: Vec<Transition>) {
        let held = self.held_out_blocks(transitions.len());
        let pool = match kind {
            Kind::Expert => &mut self.expert,
            Kind::Learner => &mut self.learner,
        };
        for (i, t) in transitions.into_iter().enumerate() {
            if held.contains(&(i / VALIDATION_BLOCK)) {
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

    /// The indices of the blocks of an episode of `len` transitions kept for validation.
    fn held_out_blocks(&mut self, len: usize) -> Vec<usize> {
        let fraction = self.config.validation_fraction;
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let blocks = len.div_ceil(VALIDATION_BLOCK);
        if fraction == 0.0 || blocks == 0 {
            return Vec::new();
        }
        if blocks < 2 {
            return if self.rng.random_bool(fraction) {
                vec![0]
            } else {
                Vec::new()
            };
        }
        let count = ((fraction * blocks as f64).round() as usize).clamp(1, blocks);
        rand::seq::index::sample(&mut self.rng, blocks, count).into_vec()
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
