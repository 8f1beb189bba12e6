//! The learner's telemetry seam: training curves and deployed model versions leave the
//! retrainer through a [`LearningSink`] defined here, so the learning code names no
//! consumer. The viewer is one consumer (its sender implements the trait, on its side).
//! The control loop's own seam is [`crate::control::TelemetrySink`]; the planner's is
//! [`crate::mpc::PlanObserver`] (made per controller by a
//! [`crate::mpc::PlanObserverFactory`]).

/// One epoch of training an ensemble: negative log-likelihoods per transition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingPoint {
    /// The model version being trained (the version it will have once deployed).
    pub model_version: u32,
    pub epoch: u32,
    pub train_nll: f32,
    /// `None` when there is no validation split yet.
    pub validation_nll: Option<f32>,
}

/// A consumer of the learner's progress. Called on the learner's thread (not real-time),
/// but it must not block for long: a slow consumer drops and counts.
pub trait LearningSink: Send + Sync {
    /// One epoch of training.
    fn training_point(&self, point: &TrainingPoint);
    /// Model `version` now drives the robot; `label` says what it is (cut by the sink
    /// as it needs).
    fn model_deployed(&self, version: u32, label: &str);
}
