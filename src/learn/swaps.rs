//! Which model drove which steps. The retrainer's controllers reach the loop through the
//! main thread, which wraps each in a `Versioned` controller before forwarding it
//! ([`Swaps`]). The wrapper counts, on the control thread and without allocating
//! (atomics), the ticks it acted and the first tick it acted after each episode start;
//! after each episode the learning job reads those counters, so every trial row names
//! the model versions that computed its commands ([`Driver`]), how many steps each, and
//! the tick (and step) each swap took effect.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::channel::{Receiver, Sender};
use serde::Serialize;

use crate::control::{self, ControlError, Controller, Observation, Request};

/// Which model computed a trial's commands, from which tick on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Driver {
    pub version: u32,
    /// The first tick of this trial at which this model computed the command (for every
    /// driver after the first, the tick its swap took effect).
    pub from_tick: u64,
    /// The episode step that command was for.
    pub from_step: u32,
    /// Steps of this trial whose command this model computed.
    pub steps: u32,
    /// Commands it computed in this trial: one per step in lockstep; in real time also
    /// those that arrived too late, or answered a state that did not advance.
    pub commands: u64,
}

/// How much one published model drove.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ModelUse {
    pub version: u32,
    /// The first tick it computed a command, if it ever did.
    pub first_tick: Option<u64>,
    /// Commands it computed over the run.
    pub commands: u64,
}

/// What a [`Versioned`] controller reports from the control thread: plain atomics,
/// written there without allocating, read on the main thread after an episode ends (the
/// episode summary's channel orders the reads after the writes).
#[derive(Debug)]
struct Probe {
    /// Ticks it computed a command at.
    acts: AtomicU64,
    /// The first such tick since the last episode start (or since it was swapped in).
    first_since_reset: AtomicU64,
    /// The first such tick ever.
    first_ever: AtomicU64,
}

const NEVER: u64 = u64::MAX;

impl Probe {
    fn new() -> Self {
        Self {
            acts: AtomicU64::new(0),
            first_since_reset: AtomicU64::new(NEVER),
            first_ever: AtomicU64::new(NEVER),
        }
    }
}

/// A retrainer's controller as the loop runs it: the same controller, counting its use.
struct Versioned {
    inner: Box<dyn Controller>,
    probe: Arc<Probe>,
    fresh: bool,
}

impl Controller for Versioned {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        if self.fresh {
            self.fresh = false;
            self.probe
                .first_since_reset
                .store(obs.tick, Ordering::Relaxed);
            if self.probe.first_ever.load(Ordering::Relaxed) == NEVER {
                self.probe.first_ever.store(obs.tick, Ordering::Relaxed);
            }
        }
        self.probe.acts.fetch_add(1, Ordering::Relaxed);
        self.inner.act(obs, action)
    }

    fn reset(&mut self) {
        self.fresh = true;
        self.inner.reset();
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn replace_objective(
        &mut self,
        objective: control::Objective,
    ) -> Result<control::Objective, control::Objective> {
        self.inner.replace_objective(objective)
    }

    fn objective_score(&self, state: &[f32], tick: u64) -> Option<f32> {
        self.inner.objective_score(state, tick)
    }
}

/// A forwarded controller and its version (once its `Published` event named it).
struct Tracked {
    version: Option<u32>,
    probe: Arc<Probe>,
    /// `acts` when the last episode ended.
    acts_seen: u64,
}

/// The retrainer's requests to the loop, forwarded by the main thread.
pub(super) struct Swaps {
    pub(super) from_retrainer: Receiver<Request>,
    to_loop: Sender<Request>,
    tracked: Vec<Tracked>,
    /// Indices into `tracked` of controllers forwarded but not yet named, oldest first.
    unnamed: VecDeque<usize>,
    /// The objective of the phase in force, when it is not the task's: each new
    /// controller is given one made by this before it is forwarded, so a model swapped
    /// in mid-phase plans for that phase (e.g. a backward phase's classifier cost).
    objective: Option<ObjectiveMaker>,
}

/// Makes a phase's objective for a new controller (off the control thread).
pub(super) type ObjectiveMaker = Box<dyn Fn() -> control::Objective + Send>;

impl Swaps {
    /// Forwards `from_retrainer`'s requests to the loop (`to_loop`), tracking controllers.
    pub(super) fn new(from_retrainer: Receiver<Request>, to_loop: Sender<Request>) -> Self {
        Self {
            from_retrainer,
            to_loop,
            tracked: Vec::new(),
            unnamed: VecDeque::new(),
            objective: None,
        }
    }

    /// From now on, every controller forwarded gets an objective made by `maker`
    /// (`None`: the task's, which the retrainer's controllers come with).
    pub(super) fn set_objective(&mut self, maker: Option<ObjectiveMaker>) {
        self.objective = maker;
    }

    /// Forwards every waiting request, wrapping controllers.
    pub(super) fn forward(&mut self) -> anyhow::Result<()> {
        while let Ok(request) = self.from_retrainer.try_recv() {
            self.send(request)?;
        }
        Ok(())
    }

    /// Forwards one request; a controller goes in wrapped, tracked from now on.
    fn send(&mut self, request: Request) -> anyhow::Result<()> {
        let request = match request {
            Request::SetController(mut inner) => {
                if let Some(make) = &self.objective
                    && inner.replace_objective(make()).is_err()
                {
                    tracing::warn!("a new controller refused the phase's objective");
                }
                let probe = Arc::new(Probe::new());
                self.unnamed.push_back(self.tracked.len());
                self.tracked.push(Tracked {
                    version: None,
                    probe: Arc::clone(&probe),
                    acts_seen: 0,
                });
                Request::SetController(Box::new(Versioned {
                    inner,
                    probe,
                    fresh: true,
                }))
            }
            other => other,
        };
        self.to_loop
            .send(request)
            .map_err(|_| anyhow::anyhow!("the control loop stopped"))
    }

    /// A controller drove (since the last episode's end) but its version is not known
    /// yet: its `Published` event is on its way.
    pub(super) fn acting_unnamed(&self) -> bool {
        self.unnamed.iter().any(|&i| {
            let t = &self.tracked[i];
            t.probe.acts.load(Ordering::Relaxed) > t.acts_seen
        })
    }

    /// The retrainer publishes each model after handing its controller over: the oldest
    /// unnamed controller is this version's.
    pub(super) fn name(&mut self, version: u32) {
        match self.unnamed.pop_front() {
            Some(i) => self.tracked[i].version = Some(version),
            None => tracing::warn!(version, "a published model whose controller never came"),
        }
    }

    /// Who drove the episode that just ended: every named controller that acted since
    /// the last call, with its first tick in this episode. A step completes at the tick
    /// after the one whose command it applied, so the steps completed up to a driver's
    /// first tick belong to the drivers before it (`counted_ticks`: the ticks that
    /// completed a step, from the tick records; `steps`: the episode's).
    pub(super) fn drivers(&mut self, counted_ticks: &[u64], steps: u32) -> Vec<Driver> {
        let mut drivers = Vec::new();
        for t in &mut self.tracked {
            let acts = t.probe.acts.load(Ordering::Relaxed);
            let new = acts - t.acts_seen;
            t.acts_seen = acts;
            if let (Some(version), true) = (t.version, new > 0) {
                let from_tick = t.probe.first_since_reset.load(Ordering::Relaxed);
                drivers.push(Driver {
                    version,
                    from_tick,
                    from_step: counted_ticks.partition_point(|&k| k <= from_tick) as u32,
                    steps: 0,
                    commands: new,
                });
            }
        }
        drivers.sort_by_key(|d| d.from_tick);
        if let Some(first) = drivers.first_mut() {
            first.from_step = 0;
        }
        let ends: Vec<u32> = drivers
            .iter()
            .skip(1)
            .map(|d| d.from_step)
            .chain([steps])
            .collect();
        for (d, end) in drivers.iter_mut().zip(ends) {
            d.steps = end.saturating_sub(d.from_step);
        }
        drivers
    }

    pub(super) fn model_use(&self) -> Vec<ModelUse> {
        self.tracked
            .iter()
            .filter_map(|t| {
                let first = t.probe.first_ever.load(Ordering::Relaxed);
                Some(ModelUse {
                    version: t.version?,
                    first_tick: (first != NEVER).then_some(first),
                    commands: t.probe.acts.load(Ordering::Relaxed),
                })
            })
            .collect()
    }
}
