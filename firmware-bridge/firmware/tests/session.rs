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
