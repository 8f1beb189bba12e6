//! Session opening (Hello → Capabilities + ChannelInfos, or a version mismatch) and
//! plant resets.

use crate::common::*;
use handful_firmware::*;
use handful_protocol::*;

fn hello(protocol_min: u8, protocol_max: u8) -> Message {
    Message::Hello(Hello {
        protocol_min,
        protocol_max,
    })
}

#[test]
fn hello_is_answered_with_capabilities_then_channels() {
    let mut rig = Rig::new();
    assert_eq!(rig.send(hello(1, 1)), None);
    let messages = rig.messages();
    let name = |s| Name::new(s).unwrap();
    let unit = |s| Unit::new(s).unwrap();
    let info = |kind, index, n, u, min, max, safe| {
        Message::ChannelInfo(ChannelInfo {
            kind,
            index,
            name: name(n),
            unit: unit(u),
            min,
            max,
            safe,
        })
    };
    let expected = vec![
        Message::Capabilities(Capabilities {
            protocol: PROTOCOL_VERSION,
            robot_id: name("test-bot"),
            firmware_version: [1, 2, 3],
            state_dim: 2,
            action_dim: 2,
            control_period_us: PERIOD_US as u32,
            watchdog_timeout_us: WATCHDOG_US,
            heartbeat_interval_us: HEARTBEAT_US,
            capabilities: CAP_RESET,
        }),
        info(ChannelKind::State, 0, "cart_position", "m", 0.0, 0.0, 0.0),
        info(ChannelKind::State, 1, "cart_velocity", "m/s", 0.0, 0.0, 0.0),
        info(ChannelKind::Action, 0, "force", "N", -10.0, 10.0, 0.0),
        info(ChannelKind::Action, 1, "brake", "", 0.0, 1.0, 1.0),
    ];
    assert_eq!(messages, expected);
}

#[test]
fn hello_checks_the_version_range() {
    let v = PROTOCOL_VERSION;
    let mismatch = [Message::Fault(fault(
        FaultCode::VersionMismatch,
        u32::from(v),
    ))];
    let cases: [(u8, u8, bool); 6] = [
        (v, v, true),
        (0, v + 3, true),
        (v + 1, v + 3, false),
        (0, v - 1, false),
        (v + 1, v - 1, false),
        (255, 0, false),
    ];
    for (min, max, compatible) in cases {
        let mut rig = Rig::new();
        rig.send(hello(min, max));
        let messages = rig.messages();
        if compatible {
            assert_eq!(messages.len(), 5, "[{min}, {max}]");
            assert!(matches!(messages[0], Message::Capabilities(_)));
        } else {
            assert_eq!(messages, mismatch, "[{min}, {max}]");
        }
    }
}

#[test]
fn hello_leaves_the_arming_state_alone() {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    rig.send(hello(1, 1));
    assert_eq!(rig.firmware.arm_state(), ArmState::Armed);
}

#[test]
fn reset_with_the_capability_disarms_and_asks_the_plant() {
    for start in [Message::Arm, Message::EStop, Message::Disarm] {
        let mut rig = Rig::new();
        rig.send(start);
        rig.command(1, &[2.0, 0.0]);
        rig.drain();
        let event = rig.send(Message::Reset(Reset { seed: 99 }));
        assert_eq!(event, Some(Event::Reset { seed: 99 }), "after {start:?}");
        assert_eq!(rig.firmware.arm_state(), ArmState::Disarmed);
        assert_eq!(rig.firmware.fault_flags(), 0);
        assert_eq!(rig.messages(), []);
        assert_eq!(rig.tick(), SAFE);
    }
}

#[test]
fn reset_without_the_capability_is_unsupported() {
    let mut rig = Rig::with_config(config(CAP_TELEOP));
    rig.send(Message::Arm);
    rig.command(1, &[2.0, 0.0]);
    rig.drain();
    assert_eq!(rig.send(Message::Reset(Reset { seed: 99 })), None);
    assert_eq!(rig.faults(), [fault(FaultCode::Unsupported, 0x33)]);
    assert_eq!(rig.firmware.arm_state(), ArmState::Armed);
    assert_eq!(rig.tick(), [2.0, 0.0], "nothing else changes");
}

fn reset_to(values: &[f32]) -> Message {
    Message::ResetTo(ResetTo {
        values: StateVector::from_slice(values).unwrap(),
    })
}

#[test]
fn reset_to_disarms_from_any_state_and_hands_the_exact_state_to_the_plant() {
    for start in [Message::Arm, Message::EStop, Message::Disarm] {
        let mut rig = Rig::with_config(config(CAP_RESET | CAP_RESET_TO));
        rig.send(start);
        rig.command(1, &[2.0, 0.0]);
        rig.drain();
        let state = [2.5, -1e30];
        let event = rig.send(reset_to(&state));
        let Some(Event::ResetTo { state: got }) = event else {
            panic!("no ResetTo event after {start:?}: {event:?}");
        };
        assert_eq!(got.as_slice(), state, "after {start:?}");
        assert_eq!(rig.firmware.arm_state(), ArmState::Disarmed);
        assert_eq!(rig.firmware.fault_flags(), 0);
        assert_eq!(rig.messages(), [], "nothing answers it in the firmware");
        assert_eq!(rig.tick(), SAFE);
    }
}

#[test]
fn reset_to_with_a_wrong_length_a_non_finite_or_an_out_of_range_value_is_refused() {
    use ResetStateError::*;
    let cases: [(&[f32], u32); 8] = [
        (&[], reset_state_detail(Length, 0)),
        (&[0.0], reset_state_detail(Length, 1)),
        (&[0.0, 0.0, 0.0], reset_state_detail(Length, 3)),
        (&[f32::NAN, 0.0], reset_state_detail(NotFinite, 0)),
        (&[0.0, f32::INFINITY], reset_state_detail(NotFinite, 1)),
        (&[2.5001, 0.0], reset_state_detail(OutOfRange, 0)),
        (&[-3.0, f32::NAN], reset_state_detail(NotFinite, 1)),
        (&[-3.0, 1.0], reset_state_detail(OutOfRange, 0)),
    ];
    for (values, detail) in cases {
        let mut rig = Rig::with_config(config(CAP_RESET | CAP_RESET_TO));
        rig.send(Message::Arm);
        rig.command(1, &[2.0, 0.0]);
        rig.drain();
        assert_eq!(rig.send(reset_to(values)), None, "{values:?}");
        assert_eq!(
            rig.faults(),
            [fault(FaultCode::BadResetState, detail)],
            "{values:?}"
        );
        assert_eq!(rig.firmware.arm_state(), ArmState::Armed, "{values:?}");
        assert_eq!(rig.tick(), [2.0, 0.0], "{values:?}: nothing else changes");
    }
}

#[test]
fn reset_to_without_the_capability_is_unsupported_even_with_cap_reset() {
    let mut rig = Rig::with_config(config(CAP_RESET));
    rig.send(Message::Arm);
    rig.command(1, &[2.0, 0.0]);
    rig.drain();
    assert_eq!(rig.send(reset_to(&[0.0, 0.0])), None);
    assert_eq!(rig.faults(), [fault(FaultCode::Unsupported, 0x34)]);
    assert_eq!(rig.firmware.arm_state(), ArmState::Armed);
    assert_eq!(rig.tick(), [2.0, 0.0], "nothing else changes");
}

#[test]
fn hello_announces_cap_reset_to() {
    let mut rig = Rig::with_config(config(CAP_RESET | CAP_RESET_TO));
    rig.send(Message::Hello(Hello {
        protocol_min: 1,
        protocol_max: 1,
    }));
    let Some(Message::Capabilities(caps)) = rig.messages().first().copied() else {
        panic!("Capabilities first");
    };
    assert_eq!(caps.capabilities, CAP_RESET | CAP_RESET_TO);
}

#[test]
fn the_plant_may_refuse_a_reset_to_that_the_firmware_accepts() {
    let mut rig = Rig::with_config(config(CAP_RESET | CAP_RESET_TO));
    rig.send(Message::Arm);
    rig.command(1, &[2.0, 0.0]);
    rig.drain();
    let frame = Frame {
        seq: 9,
        timestamp_us: 0,
        message: reset_to(&[1.0, 0.0]),
    };
    let mut asked = None;
    let event = rig
        .firmware
        .handle_with(&frame, rig.now_us, &mut rig.out, |v| {
            asked = Some(v.to_vec());
            Some(0xff)
        });
    assert_eq!(event, None);
    assert_eq!(asked, Some(vec![1.0, 0.0]));
    let detail = reset_state_detail(ResetStateError::OutOfRange, 0xff);
    assert_eq!(rig.faults(), [fault(FaultCode::BadResetState, detail)]);
    assert_eq!(rig.firmware.arm_state(), ArmState::Armed);
    assert_eq!(rig.tick(), [2.0, 0.0], "nothing else changes");
    // The plant is not asked about a state the firmware refuses.
    let frame = Frame {
        seq: 10,
        timestamp_us: 0,
        message: reset_to(&[9.0, 0.0]),
    };
    let event = rig
        .firmware
        .handle_with(&frame, rig.now_us, &mut rig.out, |_| panic!("asked"));
    assert_eq!(event, None);
}
