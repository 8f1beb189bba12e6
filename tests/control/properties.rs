//! Safety as a property on the host, through the whole path (loop → link → pty →
//! simulated firmware): whatever a controller writes — NaN, ±inf, ±3.4e38, subnormals,
//! values far outside the limits — every command that leaves the host is finite and
//! within the calibrated limits, and a non-finite one latches `NonFiniteAction` with the
//! safe command on that very tick.

use handful::control::{ControlError, Controller, EpisodeEnd, HostFault, Observation};
use handful::plant::PlantKind;
use proptest::prelude::*;

use super::faults::records_of_episode;
use super::rig::{Rig, calibration};

/// Writes `values[i % len]` at its `i`-th call.
struct Scripted {
    values: Vec<f32>,
    calls: usize,
}

impl Controller for Scripted {
    fn act(&mut self, _: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        action[0] = self.values[self.calls % self.values.len()];
        self.calls += 1;
        Ok(())
    }

    fn reset(&mut self) {
        self.calls = 0;
    }

    fn name(&self) -> &'static str {
        "scripted"
    }
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -10.0f32..10.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
        1 => Just(f32::MIN),
        1 => Just(f32::MIN_POSITIVE / 4.0),
        2 => any::<f32>(),
    ]
}

proptest! {
    // Each case starts a simulated robot and drives a 40-step lockstep episode.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn no_controller_output_makes_the_host_send_a_command_outside_the_limits(
        values in prop::collection::vec(value(), 1..30)
    ) {
        let calib = calibration("cartpole-sim.toml");
        let controller = Box::new(Scripted { values: values.clone(), calls: 0 });
        let rig = Rig::start(&calib, PlantKind::Cartpole, true, |_| {}, controller);
        let (records, summary) = records_of_episode(&rig, 40, 1);
        prop_assert!(!records.is_empty());
        let limits = &calib.actions[0];
        for r in &records {
            let sent = r.action()[0];
            prop_assert!(
                sent.is_finite() && (limits.min..=limits.max).contains(&sent),
                "tick {} sent {} (limits [{}, {}])", r.tick, sent, limits.min, limits.max
            );
            if r.fault == Some(HostFault::NonFiniteAction) {
                prop_assert_eq!(sent, limits.safe);
            }
        }
        // Every value is written within 40 steps, so a non-finite one must have ended the
        // episode on the fault; without one, that fault never happens.
        if values.iter().any(|v| !v.is_finite()) {
            prop_assert_eq!(summary.end, EpisodeEnd::Faulted(HostFault::NonFiniteAction));
            prop_assert!(records.iter().any(|r| r.fault == Some(HostFault::NonFiniteAction)));
        } else {
            prop_assert_ne!(summary.end, EpisodeEnd::Faulted(HostFault::NonFiniteAction));
        }
    }
}
