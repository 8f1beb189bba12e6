//! The episode state machine: how an episode-phase starts, goes on, holds and ends.
//!
//! It owns the episode in progress and its accounting (index, steps, return, first
//! tick), the start sequence (reset and arm at the first tick, then wait for a state that
//! answers them and an armed firmware, within the arming grace), the scoring of each
//! step with the phase's own reward once the state answering its command has arrived,
//! the phase's end (step budget, success test) and what follows it (a disarm, or a hold
//! that keeps the robot armed for the next phase, [`Start::Continue`]), and the
//! [`EpisodeSummary`] it sends when an episode ends, whatever ended it. The loop
//! ([`super::ticker`]) owns the mode and the controller and asks this module, each
//! driving tick, whether the controller acts. Nothing here allocates.

use crossbeam::channel::Sender;
use handful_protocol::{ArmState, MAX_ACTION_DIM};

use super::{
    AtEnd, EpisodeEnd, EpisodeStep, EpisodeSummary, HostFault, Phase, PhaseKind, Start, StartState,
};
use crate::link::{self, Link, StateSample};

/// What a tick sends.
pub(super) enum Send {
    Command,
    /// Nothing (lockstep: the tick that resets, whose answer is the next state, and the
    /// ticks between two phases).
    Nothing,
}

/// What the episode lets a driving tick do.
pub(super) enum Advance {
    /// The controller acts.
    Act,
    /// The safe command, or nothing: the episode is starting, or the phase ended and
    /// holds in lockstep.
    Safe(Send),
    /// The phase ended and disarms: the loop disarms the robot and goes idle.
    Disarm,
}

struct Episode {
    index: u32,
    phase: Phase,
    step: u32,
    episode_return: f64,
    /// Set until the first state after the reset and arm has been seen.
    awaiting_start: Option<StartPhase>,
    /// The action sent last tick and the state count it answered, awaiting its outcome.
    pending: Option<([f32; MAX_ACTION_DIM], u64)>,
    first_tick: u64,
    /// Ticks the start may still take (no state yet, firmware not yet armed).
    start_grace_left: u32,
    /// Steps in a row the objective score has held at the phase's threshold.
    score_streak: u32,
}

enum StartPhase {
    /// Send the reset (if any: from a seed, or to a given state) and the arm at the next
    /// tick, once the previous command's answer has been read (so the reset's answer is
    /// the next state).
    Arm {
        reset_seed: Option<u64>,
        reset_to: Option<StartState>,
    },
    /// Sent; waiting for a state newer than `after_count` (and armed, in real time).
    Wait { after_count: u64 },
}

pub(super) struct Episodes {
    summaries: Sender<EpisodeSummary>,
    current: Option<Episode>,
    started: u32,
    /// The phase started last.
    phase: PhaseKind,
    /// A phase ended and held the robot armed for the next one (driving, no episode).
    holding: bool,
    arming_grace_ticks: u32,
    action_dim: usize,
}

impl Episodes {
    pub(super) fn new(
        summaries: Sender<EpisodeSummary>,
        arming_grace_ticks: u32,
        action_dim: usize,
    ) -> Self {
        Self {
            summaries,
            current: None,
            started: 0,
            phase: PhaseKind::Forward,
            holding: false,
            arming_grace_ticks,
            action_dim,
        }
    }

    /// The phase started last.
    pub(super) const fn phase(&self) -> PhaseKind {
        self.phase
    }

    /// Whether a phase ended holding the robot armed for the next one.
    pub(super) const fn holding(&self) -> bool {
        self.holding
    }

    /// Episodes started so far.
    pub(super) const fn started(&self) -> u32 {
        self.started
    }

    /// The robot is no longer held for a next phase (disarmed, stopped, faulted).
    pub(super) fn release(&mut self) {
        self.holding = false;
    }

    /// Starts episode `phase` at `tick` (after the loop ended the previous one and set
    /// up the controller). [`Start::Continue`] needs a robot that was `was_driving`: if
    /// not, the episode is started and the loop latches the `Err`'s fault.
    pub(super) fn begin(
        &mut self,
        phase: Phase,
        start: Start,
        was_driving: bool,
        tick: u64,
    ) -> Result<(), HostFault> {
        self.phase = phase.kind;
        self.holding = false;
        let awaiting_start = match start {
            Start::Arm { reset_seed } => Some(StartPhase::Arm {
                reset_seed,
                reset_to: None,
            }),
            Start::ArmAt { state } => Some(StartPhase::Arm {
                reset_seed: None,
                reset_to: Some(state),
            }),
            Start::Continue => None,
        };
        self.current = Some(Episode {
            index: self.started,
            phase,
            step: 0,
            episode_return: 0.0,
            awaiting_start,
            pending: None,
            first_tick: tick,
            start_grace_left: self.arming_grace_ticks,
            score_streak: 0,
        });
        self.started += 1;
        if start == Start::Continue && !was_driving {
            Err(HostFault::NotArmed)
        } else {
            Ok(())
        }
    }

    /// Ends the episode in progress, if any, at `tick`, and sends its summary.
    pub(super) fn end(&mut self, end: EpisodeEnd, tick: u64) {
        if let Some(episode) = self.current.take() {
            let summary = EpisodeSummary {
                episode: episode.index,
                phase: episode.phase.kind,
                steps: episode.step,
                episode_return: episode.episode_return,
                end,
                first_tick: episode.first_tick,
                last_tick: tick,
            };
            let _ = self.summaries.try_send(summary);
        }
    }

    /// While an episode starts, a missing or old state is expected for a few ticks
    /// (nothing published yet, a reset in flight): `fault` is excused within the grace,
    /// and is [`HostFault::NotArmed`] after it. Any other fault is returned as it is.
    pub(super) fn excuse_start(&mut self, fault: Option<HostFault>) -> Option<HostFault> {
        let starting = self
            .current
            .as_mut()
            .filter(|e| e.awaiting_start.is_some() && fault == Some(HostFault::StaleState));
        match starting {
            Some(episode) if episode.start_grace_left > 0 => {
                episode.start_grace_left -= 1;
                None
            }
            Some(_) => Some(HostFault::NotArmed),
            None => fault,
        }
    }

    /// A driving tick with a good `sample`: the start sequence (the reset and the arm
    /// through `link`; in lockstep a reset is answered by a state, so `expect_answer` is
    /// set), then the outcome of the last command, scored with the phase's reward into
    /// `step`, and the phase's end (its step budget, its success test, or the
    /// controller's objective `score` of this state reaching the phase's threshold).
    #[allow(clippy::too_many_arguments)] // the tick's pieces, borrowed apart
    pub(super) fn advance(
        &mut self,
        sample: &StateSample,
        score: Option<f32>,
        link: &Link,
        lockstep: bool,
        expect_answer: &mut bool,
        step: &mut Option<EpisodeStep>,
        tick: u64,
    ) -> Result<Advance, HostFault> {
        let state = &sample.values[..sample.dim];
        let Some(episode) = &mut self.current else {
            if sample.arm_state != ArmState::Armed {
                return Err(HostFault::Firmware);
            }
            return Ok(Advance::Act);
        };
        match &mut episode.awaiting_start {
            Some(StartPhase::Arm {
                reset_seed,
                reset_to,
            }) => {
                let mut send = Send::Command;
                let reset = match (*reset_to, *reset_seed) {
                    (Some(state), _) => Some(link.reset_to(state.values())),
                    (None, Some(seed)) => Some(link.send(link::Request::Reset { seed })),
                    (None, None) => None,
                };
                if let Some(sent) = reset {
                    sent.map_err(|_| HostFault::SendFailed)?;
                    if lockstep {
                        send = Send::Nothing;
                        *expect_answer = true;
                    }
                }
                link.send(link::Request::Arm)
                    .map_err(|_| HostFault::SendFailed)?;
                episode.awaiting_start = Some(StartPhase::Wait {
                    after_count: sample.count,
                });
                return Ok(Advance::Safe(send));
            }
            Some(StartPhase::Wait { after_count }) => {
                let started = sample.count > *after_count
                    && (lockstep || sample.arm_state == ArmState::Armed);
                if !started {
                    if episode.start_grace_left == 0 {
                        return Err(HostFault::NotArmed);
                    }
                    episode.start_grace_left -= 1;
                    return Ok(Advance::Safe(Send::Command));
                }
                episode.awaiting_start = None;
            }
            None if sample.arm_state != ArmState::Armed => return Err(HostFault::Firmware),
            None => {}
        }
        if let Some((previous, answered_count)) = episode.pending
            && sample.count > answered_count
        {
            let reward = (episode.phase.reward)(state, &previous[..self.action_dim]);
            episode.episode_return += f64::from(reward);
            *step = Some(EpisodeStep {
                episode: episode.index,
                step: episode.step,
                reward,
            });
            episode.step += 1;
            episode.pending = None;
            let phase = episode.phase;
            let score_held = phase.score_at_least.is_some_and(|test| {
                let at = score.is_some_and(|s| s >= test.threshold);
                episode.score_streak = if at { episode.score_streak + 1 } else { 0 };
                episode.score_streak >= test.steps.max(1)
            });
            let end = if phase.steps.is_some_and(|n| episode.step >= n) {
                Some(EpisodeEnd::Completed)
            } else if phase.success.is_some_and(|passed| passed(state)) || score_held {
                Some(EpisodeEnd::Succeeded)
            } else {
                None
            };
            if let Some(end) = end {
                self.end(end, tick);
                match phase.at_end {
                    AtEnd::Disarm => return Ok(Advance::Disarm),
                    // Real time: the controller goes on acting; lockstep: nothing is
                    // sent until the next phase starts.
                    AtEnd::Hold => {
                        self.holding = true;
                        if lockstep {
                            return Ok(Advance::Safe(Send::Nothing));
                        }
                    }
                }
            }
        }
        Ok(Advance::Act)
    }

    /// The command `action` was sent at a tick that used state `state_count`: its
    /// outcome is the next newer state (once the episode has started).
    pub(super) fn sent(&mut self, action: [f32; MAX_ACTION_DIM], state_count: u64) {
        if let Some(episode) = &mut self.current
            && episode.awaiting_start.is_none()
        {
            episode.pending = Some((action, state_count));
        }
    }
}
