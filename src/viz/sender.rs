//! [`VizSender`]: the producers' end of the viz queues. Never blocks and never allocates:
//! every send is a `try_send` on a bounded channel, and a full (or closed) queue drops
//! the event and counts it. Plans travel on their own small queue so the common events
//! are not the size of a plan.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::channel::{Receiver, Sender, bounded};

use super::event::{InlineText, PlanSnapshot, TextLevel, TrainingPoint, VizEvent};
use crate::control::{EpisodeSummary, TickRecord};
use crate::link::{Health, LinkStats};

/// Every event but plans, as queued: the same variants as [`VizEvent`] without the
/// ~8 KiB plan, so a queue slot stays a few hundred bytes.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "viz"), allow(dead_code))] // read only by the rerun side
pub(crate) enum Queued {
    Tick(TickRecord),
    Episode(EpisodeSummary),
    Link { stats: LinkStats, health: Health },
    Training(TrainingPoint),
    Model { version: u32, label: InlineText },
    Text { level: TextLevel, text: InlineText },
    Classifier(crate::medal::FitReport),
    Evaluation(crate::medal::Evaluation),
}

/// Counters shared by all clones of a sender and the viz handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// The receiving ends, owned by the viz thread.
pub(crate) struct Receivers {
    pub events: Receiver<Queued>,
    pub plans: Receiver<PlanSnapshot>,
}

/// The consuming end of an [`VizSender::unattached`] sender: holds the queues open
/// without draining them (a consumer that never keeps up). Dropping it closes them.
pub struct VizQueue {
    receivers: Receivers,
}

impl VizQueue {
    /// Events waiting (ordinary events, plans).
    pub fn queued(&self) -> (usize, usize) {
        (self.receivers.events.len(), self.receivers.plans.len())
    }
}

/// Cheap to clone (two channel handles and an `Arc`), `Send`. A disabled sender (viz
/// off) accepts and discards everything without counting.
#[derive(Clone, Debug)]
pub struct VizSender {
    events: Option<Sender<Queued>>,
    plans: Option<Sender<PlanSnapshot>>,
    counters: Arc<Counters>,
}

impl VizSender {
    /// A sender that discards everything: for code paths run without a viewer.
    pub fn disabled() -> Self {
        Self {
            events: None,
            plans: None,
            counters: Arc::new(Counters::default()),
        }
    }

    /// A connected sender and its receivers: `event_capacity` slots for ordinary events,
    /// `plan_capacity` for plans (both at least 1).
    pub(crate) fn channel(event_capacity: usize, plan_capacity: usize) -> (Self, Receivers) {
        let (event_tx, event_rx) = bounded(event_capacity.max(1));
        let (plan_tx, plan_rx) = bounded(plan_capacity.max(1));
        let sender = Self {
            events: Some(event_tx),
            plans: Some(plan_tx),
            counters: Arc::new(Counters::default()),
        };
        let receivers = Receivers {
            events: event_rx,
            plans: plan_rx,
        };
        (sender, receivers)
    }

    /// A sender whose queues nobody drains: for tests of the drop policy, and for a
    /// producer wired before its viewer exists.
    pub fn unattached(event_capacity: usize, plan_capacity: usize) -> (Self, VizQueue) {
        let (sender, receivers) = Self::channel(event_capacity, plan_capacity);
        (sender, VizQueue { receivers })
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.events.is_some()
    }

    /// Queues `event` for the viewer. Real-time safe: never blocks, never allocates; a
    /// full queue drops the event and counts it ([`Self::dropped`]). Returns whether the
    /// event was queued.
    pub fn send(&self, event: VizEvent) -> bool {
        let queued = match event {
            VizEvent::Plan(plan) => return self.send_plan(&plan),
            VizEvent::Tick(record) => Queued::Tick(record),
            VizEvent::Episode(summary) => Queued::Episode(summary),
            VizEvent::Link { stats, health } => Queued::Link { stats, health },
            VizEvent::Training(point) => Queued::Training(point),
            VizEvent::Model { version, label } => Queued::Model { version, label },
            VizEvent::Text { level, text } => Queued::Text { level, text },
            VizEvent::Classifier(fit) => Queued::Classifier(fit),
            VizEvent::Evaluation(e) => Queued::Evaluation(e),
        };
        Self::offer(self.events.as_ref(), queued, &self.counters)
    }

    /// Queues a copy of `record`: the control loop's per-tick call (same contract as
    /// [`Self::send`], without building the plan-sized [`VizEvent`] around it).
    pub fn send_tick(&self, record: &TickRecord) -> bool {
        Self::offer(self.events.as_ref(), Queued::Tick(*record), &self.counters)
    }

    /// Queues a copy of `plan` (same contract as [`Self::send`]), without building a
    /// [`VizEvent`] around it.
    pub fn send_plan(&self, plan: &PlanSnapshot) -> bool {
        Self::offer(self.plans.as_ref(), *plan, &self.counters)
    }

    fn offer<T>(tx: Option<&Sender<T>>, value: T, counters: &Counters) -> bool {
        let Some(tx) = tx else {
            return false;
        };
        let queued = tx.try_send(value).is_ok();
        let counter = if queued {
            &counters.sent
        } else {
            &counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        queued
    }

    /// A maker of [`super::PlanTap`]s feeding this sender, one per MPC controller built
    /// (the retrainer builds one per model); `None` when the sender is disabled, so no
    /// planner keeps a rollout trace for nothing.
    pub fn plan_observers(&self) -> Option<crate::mpc::PlanObserverFactory> {
        if !self.is_enabled() {
            return None;
        }
        let sender = self.clone();
        Some(crate::mpc::PlanObserverFactory::new(move || {
            Box::new(super::PlanTap::new(sender.clone()))
        }))
    }

    /// Events dropped so far because a queue was full or the viz thread had stopped
    /// (all clones together).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Events queued so far (all clones together).
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }
}

/// The viewer as the control loop's telemetry consumer: each tick record is queued with
/// [`VizSender::send_tick`] (`try_send`, drops counted; never blocks or allocates).
impl crate::control::TelemetrySink for VizSender {
    fn offer_tick(&self, record: &TickRecord) -> bool {
        self.send_tick(record)
    }
}

/// The viewer as the learner's progress consumer: training points and model versions
/// become [`VizEvent::Training`] and [`VizEvent::Model`] (`try_send`, drops counted).
impl crate::telemetry::LearningSink for VizSender {
    fn training_point(&self, point: &TrainingPoint) {
        self.send(VizEvent::Training(*point));
    }

    fn model_deployed(&self, version: u32, label: &str) {
        self.send(VizEvent::Model {
            version,
            label: InlineText::new(label),
        });
    }

    fn classifier_fit(&self, fit: &crate::medal::FitReport) {
        self.send(VizEvent::Classifier(*fit));
    }

    fn evaluation(&self, evaluation: &crate::medal::Evaluation) {
        self.send(VizEvent::Evaluation(*evaluation));
    }
}
