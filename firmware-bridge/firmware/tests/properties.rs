//! Safety as properties: whatever the host sends, in whatever order and timing — arming,
//! e-stops, resets (seeded and to a given state), commands of any length holding any f32 (NaN, ±inf, subnormals,
//! ±3.4e38) with any validity deadline — the firmware never applies a value outside a
//! channel's `[min, max]` nor a non-finite one, applies the safe values whenever it is
//! not armed, and drops to them within one tick of its watchdog or host timeout.

use handful_protocol::*;
use proptest::prelude::*;

use crate::common::*;

/// One thing the host (or time) does.
#[derive(Clone, Debug)]
enum Step {
    Arm,
    Disarm,
    EStop,
    Reset,
    /// A ResetTo with these values (of any length, any f32).
    ResetTo {
        values: Vec<f32>,
    },
    Heartbeat,
    /// A command with these values, valid until `now + valid_for_us` (negative: already
    /// expired).
    Command {
        values: Vec<f32>,
        valid_for_us: i64,
    },
    /// Time passes, then the main loop ticks.
    Tick {
        after_us: u64,
    },
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -20.0f32..20.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
        1 => Just(f32::MIN),
        1 => Just(f32::MIN_POSITIVE / 2.0),
        1 => any::<f32>(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Arm),
        1 => Just(Step::Disarm),
        1 => Just(Step::EStop),
        1 => Just(Step::Reset),
        1 => prop::collection::vec(value(), 0..4).prop_map(|values| Step::ResetTo { values }),
        1 => Just(Step::Heartbeat),
        4 => (prop::collection::vec(value(), 0..4), -20_000i64..40_000)
            .prop_map(|(values, valid_for_us)| Step::Command { values, valid_for_us }),
        4 => (0u64..300_000).prop_map(|after_us| Step::Tick { after_us }),
    ]
}

/// Every applied value is finite and within its channel's limits; disarmed means safe.
fn check(rig: &Rig, applied: &[f32]) -> Result<(), TestCaseError> {
    let limits = &rig.firmware.config().action_channels;
    prop_assert_eq!(applied.len(), limits.len());
    for (value, channel) in applied.iter().zip(limits) {
        prop_assert!(
            value.is_finite() && (channel.min..=channel.max).contains(value),
            "applied {} outside [{}, {}]",
            value,
            channel.min,
            channel.max
        );
    }
    if rig.firmware.arm_state() != ArmState::Armed {
        prop_assert_eq!(applied, &SAFE[..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn no_sequence_of_host_frames_makes_the_firmware_apply_an_unsafe_value(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        let mut rig = Rig::with_config(config(CAP_RESET | CAP_RESET_TO));
        let mut seq = 0;
        // The last time the firmware heard from the host or accepted a command.
        let mut host_heard_us = rig.now_us;
        let mut accepted_us = None;
        for step in steps {
            match step {
                Step::Arm => {
                    let was_armed = rig.firmware.arm_state() == ArmState::Armed;
                    rig.send(Message::Arm);
                    host_heard_us = rig.now_us;
                    // Arming starts the watchdog; arming an armed robot changes nothing.
                    if !was_armed && rig.firmware.arm_state() == ArmState::Armed {
                        accepted_us = Some(rig.now_us);
                    }
                }
                Step::Disarm | Step::EStop | Step::Reset => {
                    let message = match step {
                        Step::Disarm => Message::Disarm,
                        Step::EStop => Message::EStop,
                        _ => Message::Reset(Reset { seed: 1 }),
                    };
                    rig.send(message);
                    host_heard_us = rig.now_us;
                    accepted_us = None;
                }
                Step::ResetTo { values } => {
                    let values = StateVector::from_slice(&values).unwrap_or_default();
                    let event = rig.send(Message::ResetTo(ResetTo { values }));
                    host_heard_us = rig.now_us;
                    if event.is_some() {
                        accepted_us = None;
                    }
                }
                Step::Heartbeat => {
                    rig.send(Message::Heartbeat(Heartbeat { arm_state: ArmState::Disarmed, fault_flags: 0 }));
                    host_heard_us = rig.now_us;
                }
                Step::Command { values, valid_for_us } => {
                    seq += 1;
                    let valid_until_us = rig.now_us.saturating_add_signed(valid_for_us);
                    if let Some(values) = ActionVector::from_slice(&values) {
                        rig.send(Message::Command(Command { seq, valid_until_us, values }));
                        host_heard_us = rig.now_us;
                        if rig.firmware.last_command_seq() == seq {
                            accepted_us = Some(rig.now_us);
                        }
                    }
                }
                Step::Tick { after_us } => {
                    let armed_before = rig.firmware.arm_state() == ArmState::Armed;
                    rig.wait(after_us);
                    let applied = rig.tick();
                    check(&rig, &applied)?;
                    // Past the watchdog or the host timeout, the tick itself drops to safe.
                    let silent = rig.now_us - host_heard_us > u64::from(HOST_TIMEOUT_US);
                    let starved = accepted_us
                        .is_some_and(|t| rig.now_us - t > u64::from(WATCHDOG_US));
                    if armed_before && (silent || starved) {
                        prop_assert_eq!(&applied[..], &SAFE[..]);
                    }
                    if rig.firmware.arm_state() != ArmState::Armed {
                        accepted_us = None;
                    }
                }
            }
            check(&rig, rig.firmware.actuation().as_slice())?;
            rig.drain();
        }
    }
}
