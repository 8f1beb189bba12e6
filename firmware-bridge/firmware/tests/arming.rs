//! The arming state machine: every (state, Arm / Disarm / EStop) pair through one table.

use crate::common::*;
use handful_protocol::*;

/// A rig brought into `state` by the host, outbox drained.
fn rig_in(state: ArmState) -> Rig {
    let mut rig = Rig::new();
    match state {
        ArmState::Disarmed => {}
        ArmState::Armed => {
            rig.send(Message::Arm);
        }
        ArmState::EStopped => {
            rig.send(Message::EStop);
        }
        ArmState::Faulted => {
            rig.send(Message::Arm);
            rig.wait(u64::from(WATCHDOG_US) + 1);
            rig.tick();
        }
    }
    rig.drain();
    assert_eq!(rig.firmware.arm_state(), state);
    rig
}

/// From `start`, the host sends `message`: the firmware must end in `state` with
/// `flags`, queue exactly `faults`, and (ticking once) apply the safe values unless
/// armed.
fn check(start: ArmState, message: Message, state: ArmState, flags: u32, faults: &[Fault]) {
    let mut rig = rig_in(start);
    rig.wait(1);
    assert_eq!(rig.send(message), None);
    let context = format!("{start:?} + {message:?}");
    assert_eq!(rig.firmware.arm_state(), state, "{context}: state");
    assert_eq!(rig.firmware.fault_flags(), flags, "{context}: flags");
    assert_eq!(rig.faults(), faults, "{context}: fault frames");
    assert_eq!(
        rig.tick(),
        SAFE,
        "{context}: no command, so the safe values"
    );
    let states = rig.states();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].arm_state, states[0].fault_flags),
        (state, flags),
        "{context}"
    );
}

#[test]
fn arm_disarm_estop_transitions() {
    use ArmState::*;
    use Message::{Arm, Disarm, EStop};
    let estop = [fault(FaultCode::EStop, 0)];
    let cases: [(ArmState, Message, ArmState, u32, &[Fault]); 12] = [
        (Disarmed, Arm, Armed, 0, &[]),
        (Disarmed, Disarm, Disarmed, 0, &[]),
        (Disarmed, EStop, EStopped, FAULT_ESTOP, &estop),
        (Armed, Arm, Armed, 0, &[]),
        (Armed, Disarm, Disarmed, 0, &[]),
        (Armed, EStop, EStopped, FAULT_ESTOP, &estop),
        (EStopped, Arm, EStopped, FAULT_ESTOP, &estop),
        (EStopped, Disarm, Disarmed, 0, &[]),
        (EStopped, EStop, EStopped, FAULT_ESTOP, &[]),
        (Faulted, Arm, Armed, 0, &[]),
        (Faulted, Disarm, Disarmed, 0, &[]),
        (
            Faulted,
            EStop,
            EStopped,
            FAULT_WATCHDOG | FAULT_ESTOP,
            &estop,
        ),
    ];
    for (start, message, state, flags, faults) in cases {
        check(start, message, state, flags, faults);
    }
}

#[test]
fn estop_stops_an_applied_command_and_stays_latched() {
    let mut rig = rig_in(ArmState::Armed);
    rig.command(1, &[5.0, 0.0]);
    assert_eq!(rig.tick(), [5.0, 0.0]);
    rig.send(Message::EStop);
    assert_eq!(rig.tick(), SAFE);
    rig.send(Message::Arm);
    rig.command(2, &[5.0, 0.0]);
    assert_eq!(rig.tick(), SAFE, "arming is refused while e-stopped");
    rig.send(Message::Disarm);
    rig.send(Message::Arm);
    rig.command(3, &[5.0, 0.0]);
    assert_eq!(rig.tick(), [5.0, 0.0], "Disarm then Arm leaves the e-stop");
}
