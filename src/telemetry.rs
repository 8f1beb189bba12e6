//! The learner's telemetry seam: training curves and deployed model versions leave the
//! retrainer through a [`LearningSink`] defined here (held as a [`LearningTelemetry`]),
//! so the learning code names no consumer. The viewer is one consumer (its sender implements the trait, on its side).
//! The control loop's own seam is [`crate::control::TelemetrySink`]; the planner's is
//! [`crate::mpc::PlanObserver`] (made per controller by a
//! [`crate::mpc::PlanObserverFactory`]).

use std::sync::Arc;

/// One epoch of training an ensemble: negative log-likelihoods per transition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingPoint {
    /// The model version being trained (the version it will have once deployed).
    pub model_version: u32,
    pub epoch: u32,
    pub train_nll: f32,
    /// `None` when there is no validation split yet.
    pub validation_nll: Option<f32>,
    /// The fit's last epoch: the candidate as it was scored (the viewer also puts these
    /// on the `tick` timeline, one point per fit).
    pub last_epoch: bool,
}

/// A consumer of the learner's progress. Called on the learner's thread (not real-time),
/// but it must not block for long: a slow consumer drops and counts.
pub trait LearningSink: Send + Sync {
    /// One epoch of training.
    fn training_point(&self, point: &TrainingPoint);
    /// Model `version` now drives the robot; `label` says what it is (cut by the sink
    /// as it needs).
    fn model_deployed(&self, version: u32, label: &str);
    /// One fit of the practice's state classifier (`crate::medal`). Default: ignored.
    fn classifier_fit(&self, _fit: &crate::medal::FitReport) {}
    /// One deployed evaluation of the practice's forward controller. Default: ignored.
    fn evaluation(&self, _evaluation: &crate::medal::Evaluation) {}
}

/// The learner's optional progress sink (cheap to clone: an `Arc`; `Debug` for configs).
#[derive(Clone, Default)]
pub struct LearningTelemetry(Option<Arc<dyn LearningSink>>);

impl LearningTelemetry {
    /// No sink: every call is a no-op.
    pub fn none() -> Self {
        Self(None)
    }

    /// Everything goes to `sink`.
    pub fn to(sink: impl LearningSink + 'static) -> Self {
        Self(Some(Arc::new(sink)))
    }

    pub fn is_attached(&self) -> bool {
        self.0.is_some()
    }

    pub fn training_point(&self, point: &TrainingPoint) {
        if let Some(sink) = &self.0 {
            sink.training_point(point);
        }
    }

    pub fn classifier_fit(&self, fit: &crate::medal::FitReport) {
        if let Some(sink) = &self.0 {
            sink.classifier_fit(fit);
        }
    }

    pub fn evaluation(&self, evaluation: &crate::medal::Evaluation) {
        if let Some(sink) = &self.0 {
            sink.evaluation(evaluation);
        }
    }

    pub fn model_deployed(&self, version: u32, label: &str) {
        if let Some(sink) = &self.0 {
            sink.model_deployed(version, label);
        }
    }
}

impl std::fmt::Debug for LearningTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LearningTelemetry")
            .field(&if self.is_attached() {
                "attached"
            } else {
                "none"
            })
            .finish()
    }
}
