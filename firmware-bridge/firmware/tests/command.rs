//! Commands: accepted ones are clamped and applied until the next; refused ones change
//! nothing and are reported.

use crate::common::*;
use handful_protocol::*;

fn armed() -> Rig {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    rig.drain();
    rig
}

#[test]
fn accepted_commands_are_clamped_and_reported() {
    let cases: [(&[f32], [f32; 2]); 5] = [
        (&[2.5, 0.5], [2.5, 0.5]),
        (&[25.0, -3.0], [10.0, 0.0]),
        (&[-10.5, 1.5], [-10.0, 1.0]),
        (&[-0.0, 1.0], [-0.0, 1.0]),
        (&[f32::MAX, f32::MIN], [10.0, 0.0]),
    ];
    for (seq, (values, applied)) in (10..).zip(cases) {
        let mut rig = armed();
        rig.command(seq, values);
        assert_eq!(rig.tick(), applied, "{values:?}");
        let states = rig.states();
        assert_eq!(states[0].last_command_seq, seq);
        assert_eq!(states[0].fault_flags, 0);
    }
}

#[test]
fn a_command_applies_until_the_next_one() {
    let mut rig = armed();
    assert_eq!(rig.tick(), SAFE, "armed without a command yet");
    rig.command(1, &[1.0, 0.0]);
    for _ in 0..3 {
        rig.wait(PERIOD_US);
        assert_eq!(rig.tick(), [1.0, 0.0]);
    }
    rig.command(2, &[-1.0, 0.25]);
    assert_eq!(rig.tick(), [-1.0, 0.25]);
    assert_eq!(rig.firmware.last_command_seq(), 2);
    assert_eq!(rig.firmware.accepted_commands(), 2);
}

#[test]
fn deadline_is_inclusive() {
    let mut rig = armed();
    let now_us = rig.now_us;
    let values = ActionVector::from_slice(&[3.0, 0.0]).unwrap();
    rig.send(Message::Command(Command {
        seq: 4,
        valid_until_us: now_us,
        values,
    }));
    assert_eq!(rig.tick(), [3.0, 0.0]);
}

/// Sends `command` to a rig that first applies command 1 = `[1, 0]` (when `arm`), and
/// checks it is refused: the previous actuation stays, `FAULT_BAD_COMMAND` is reported
/// for one tick and a BadCommand fault names the seq, both only when armed.
fn check_refused(what: &str, arm: bool, command: Command) {
    let mut rig = Rig::new();
    let before = if arm {
        rig.send(Message::Arm);
        rig.command(1, &[1.0, 0.0]);
        vec![1.0, 0.0]
    } else {
        SAFE.to_vec()
    };
    rig.drain();
    rig.send(Message::Command(command));
    let expected_faults = if arm {
        vec![fault(FaultCode::BadCommand, command.seq)]
    } else {
        vec![]
    };
    assert_eq!(rig.faults(), expected_faults, "{what}: fault frames");
    assert_eq!(rig.tick(), before, "{what}: actuation unchanged");
    let flag = if arm { FAULT_BAD_COMMAND } else { 0 };
    rig.wait(PERIOD_US);
    rig.tick();
    let states = rig.states();
    assert_eq!(states[0].fault_flags, flag, "{what}: flag for the tick");
    assert_eq!(states[1].fault_flags, 0, "{what}: only once");
    assert_eq!(
        states[0].last_command_seq,
        if arm { 1 } else { 0 },
        "{what}"
    );
    assert_eq!(rig.firmware.accepted_commands(), u64::from(arm), "{what}");
}

#[test]
fn invalid_commands_are_refused() {
    let now_us = Rig::new().now_us;
    let command = |seq: u32, values: &[f32], valid_until_us: u64| Command {
        seq,
        valid_until_us,
        values: ActionVector::from_slice(values).unwrap(),
    };
    let later = now_us + PERIOD_US;
    let cases = [
        ("expired", true, command(2, &[2.0, 0.0], now_us - 1)),
        ("long expired", true, command(3, &[2.0, 0.0], 0)),
        ("NaN", true, command(4, &[f32::NAN, 0.0], later)),
        (
            "NaN payload",
            true,
            command(5, &[2.0, f32::from_bits(0xffa0_0001)], later),
        ),
        ("infinite", true, command(6, &[f32::INFINITY, 0.0], later)),
        ("too few values", true, command(7, &[2.0], later)),
        ("too many values", true, command(8, &[2.0, 0.0, 0.0], later)),
        ("no values", true, command(9, &[], later)),
        ("disarmed", false, command(10, &[2.0, 0.0], later)),
    ];
    for (what, arm, command) in cases {
        check_refused(what, arm, command);
    }
}

#[test]
fn commands_are_refused_when_estopped_or_faulted() {
    let mut rig = Rig::new();
    rig.send(Message::EStop);
    rig.drain();
    rig.command(1, &[2.0, 0.0]);
    assert_eq!(rig.faults(), []);
    assert_eq!(rig.tick(), SAFE);

    let mut rig = Rig::new();
    rig.send(Message::Arm);
    rig.wait(u64::from(WATCHDOG_US) + 1);
    rig.tick();
    rig.drain();
    rig.command(1, &[2.0, 0.0]);
    assert_eq!(rig.faults(), []);
    assert_eq!(rig.tick(), SAFE);
    assert_eq!(rig.firmware.accepted_commands(), 0);
}

#[test]
fn rearming_forgets_the_previous_command() {
    let mut rig = armed();
    rig.command(1, &[4.0, 0.0]);
    assert_eq!(rig.tick(), [4.0, 0.0]);
    rig.send(Message::Disarm);
    assert_eq!(rig.tick(), SAFE);
    rig.send(Message::Arm);
    assert_eq!(rig.tick(), SAFE);
    let states = rig.states();
    assert_eq!(
        states.last().unwrap().last_command_seq,
        1,
        "the last applied seq stays"
    );
}

#[test]
fn actuation_is_the_command_while_armed_and_the_safe_values_otherwise() {
    let mut rig = Rig::new();
    assert_eq!(rig.firmware.actuation().as_slice(), SAFE, "disarmed");
    rig.send(Message::Arm);
    assert_eq!(
        rig.firmware.actuation().as_slice(),
        SAFE,
        "armed, no command"
    );
    rig.command(1, &[25.0, 0.5]);
    assert_eq!(rig.firmware.actuation().as_slice(), [10.0, 0.5], "clamped");
    // It is what the next tick returns, and a tick does not change it.
    assert_eq!(rig.tick(), [10.0, 0.5]);
    assert_eq!(rig.firmware.actuation().as_slice(), [10.0, 0.5]);
    rig.command(2, &[f32::NAN, 0.0]);
    assert_eq!(rig.firmware.actuation().as_slice(), [10.0, 0.5], "refused");
    rig.send(Message::Disarm);
    assert_eq!(rig.firmware.actuation().as_slice(), SAFE, "disarmed again");
    rig.send(Message::Arm);
    rig.command(3, &[-1.0, 0.0]);
    rig.send(Message::EStop);
    assert_eq!(rig.firmware.actuation().as_slice(), SAFE, "e-stopped");
    rig.send(Message::Disarm);
    rig.send(Message::Arm);
    rig.command(4, &[1.0, 0.0]);
    rig.wait(u64::from(WATCHDOG_US) + 1);
    rig.tick();
    assert_eq!(rig.firmware.arm_state(), ArmState::Faulted);
    assert_eq!(rig.firmware.actuation().as_slice(), SAFE, "faulted");
}
