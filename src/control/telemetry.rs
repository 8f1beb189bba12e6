//! Where tick records go besides the loop's own record channel: a [`TelemetrySink`]
//! defined here, so the control loop depends on no consumer. The viewer is one consumer
//! (its sender implements the trait, on its side); a run without one passes
//! [`Telemetry::none`].

use std::sync::Arc;

use super::TickRecord;

/// A consumer of tick records, fed on the control thread every tick.
///
/// Real-time contract for [`TelemetrySink::offer_tick`]: never blocks, never allocates,
/// never panics; a sink that cannot take the record now (a full bounded queue) drops it
/// and counts the drop itself. The record is `Copy`: the sink keeps its own copy.
pub trait TelemetrySink: Send + Sync {
    /// Offers one tick's record; returns whether the sink took it.
    fn offer_tick(&self, record: &TickRecord) -> bool;
}

/// The loop's optional telemetry sink (cheap to clone: an `Arc`).
#[derive(Clone, Default)]
pub struct Telemetry(Option<Arc<dyn TelemetrySink>>);

impl Telemetry {
    /// No sink: every offer is a no-op.
    pub fn none() -> Self {
        Self(None)
    }

    /// Every tick record is offered to `sink`.
    pub fn to(sink: impl TelemetrySink + 'static) -> Self {
        Self(Some(Arc::new(sink)))
    }

    /// Whether a sink is attached.
    pub fn is_attached(&self) -> bool {
        self.0.is_some()
    }

    /// Offers `record` to the sink, if any (same contract as
    /// [`TelemetrySink::offer_tick`]); `false` without a sink.
    pub fn offer_tick(&self, record: &TickRecord) -> bool {
        self.0.as_ref().is_some_and(|sink| sink.offer_tick(record))
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Telemetry")
            .field(&if self.is_attached() {
                "attached"
            } else {
                "none"
            })
            .finish()
    }
}
