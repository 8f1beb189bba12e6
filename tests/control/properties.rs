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

/// A sensor failure (NaN readings, lockstep) or a firmware stall (no fresh state, real
/// time: a lockstep stall only delays the answer) somewhere in an episode.
#[derive(Clone, Debug)]
enum InputFault {
    Nan { at_ms: u64, for_ms: u64 },
    Stall { at_ms: u64, for_ms: u64 },
}

fn input_fault() -> impl Strategy<Value = InputFault> {
    prop_oneof![
        (40u64..2_000, 40u64..400).prop_map(|(at_ms, for_ms)| InputFault::Nan { at_ms, for_ms }),
        // Real time: the simulator's clock starts before the episode (connect, reset).
        (800u64..2_000, 200u64..1_000)
            .prop_map(|(at_ms, for_ms)| InputFault::Stall { at_ms, for_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Whatever the robot reports and whenever it stops reporting, a tick whose input is
    /// non-finite or stale sends the safe command, and once the robot is armed raises a
    /// fault on that very tick; every other command comes from a finite, fresh state.
    #[test]
    fn a_stale_or_non_finite_state_gives_the_safe_command_on_the_tick_that_sees_it(
        fault in input_fault()
    ) {
        let calib = calibration("cartpole-sim.toml");
        let stale_us = calib.stale_state_us;
        let lockstep = matches!(fault, InputFault::Nan { .. });
        let rig = Rig::start(
            &calib,
            PlantKind::Cartpole,
            lockstep,
            |o| match fault {
                InputFault::Nan { at_ms, for_ms } => {
                    o.sensor_failure = Some(handful::sim::Window {
                        at_us: at_ms * 1000,
                        for_us: Some(for_ms * 1000),
                    })
                }
                InputFault::Stall { at_ms, for_ms } => {
                    o.stall = Some(handful::sim::Window {
                        at_us: at_ms * 1000,
                        for_us: Some(for_ms * 1000),
                    })
                }
            },
            handful::expert::expert_for(handful::task::Task::CartpoleSwingup),
        );
        let (records, summary) = records_of_episode(&rig, 75, 3);
        let safe = calib.actions[0].safe;
        let (mut saw_bad, mut saw_bad_driving) = (false, false);
        for r in records.iter().filter(|r| r.mode != handful::control::Mode::Idle) {
            let bad = r.state_count == 0
                || r.state_age_us > stale_us
                || !r.state().iter().all(|v| v.is_finite());
            if bad && r.state_count > 0 {
                saw_bad = true;
                prop_assert_eq!(r.action()[0], safe, "tick {}", r.tick);
                // While the robot is being reset and armed (not armed yet, no step taken)
                // the start's grace period excuses it: the safe command, no fault yet.
                if r.armed || r.episode.is_some() {
                    saw_bad_driving = true;
                    prop_assert!(
                        r.fault.is_some(),
                        "tick {} used a bad state with no fault: {r:?}", r.tick
                    );
                }
            }
            // (The reset and arm at the start send the safe command with no state yet.)
            if r.action()[0] != safe {
                prop_assert!(!bad, "tick {} acted on a bad state: {r:?}", r.tick);
            }
        }
        // Every window opens within the 3 s episode: it is seen, and unless it fell in
        // the start's grace period it ended the episode on the fault it raised.
        prop_assert!(saw_bad, "{summary:?}");
        if saw_bad_driving {
            prop_assert!(matches!(
                summary.end,
                EpisodeEnd::Faulted(
                    HostFault::NonFiniteState | HostFault::StaleState | HostFault::LinkLost
                )
            ), "{summary:?}");
        }
    }
}
