//! What tick supervises: the command watchdog, the host link, heartbeats and the
//! plant's fault bits.

use crate::common::*;
use handful_firmware::*;
use handful_protocol::*;

#[test]
fn watchdog_trips_after_the_timeout_and_applies_the_safe_values() {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    rig.command(1, &[3.0, 0.0]);
    rig.wait(u64::from(WATCHDOG_US));
    assert_eq!(
        rig.tick(),
        [3.0, 0.0],
        "exactly at the timeout: still armed"
    );
    assert_eq!(rig.firmware.arm_state(), ArmState::Armed);
    rig.drain();

    rig.wait(1);
    assert_eq!(rig.tick(), SAFE);
    assert_eq!(rig.firmware.arm_state(), ArmState::Faulted);
    assert_eq!(rig.firmware.fault_flags(), FAULT_WATCHDOG);
    let messages = rig.messages();
    assert_eq!(
        messages[0],
        Message::Fault(fault(FaultCode::Watchdog, WATCHDOG_US + 1))
    );
    let Message::State(state) = messages[1] else {
        panic!("{messages:?}")
    };
    assert_eq!(
        (state.arm_state, state.fault_flags),
        (ArmState::Faulted, FAULT_WATCHDOG)
    );

    rig.wait(PERIOD_US);
    rig.command(2, &[3.0, 0.0]);
    assert_eq!(rig.tick(), SAFE, "latched until Arm");
    assert_eq!(rig.faults(), [], "one Fault frame per trip");
}

#[test]
fn watchdog_runs_from_arming_without_any_command() {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    rig.wait(u64::from(WATCHDOG_US) + 1);
    rig.tick();
    assert_eq!(rig.firmware.arm_state(), ArmState::Faulted);
}

#[test]
fn regular_commands_keep_the_watchdog_quiet() {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    for seq in 1..200 {
        rig.command(seq, &[1.0, 0.0]);
        assert_eq!(rig.tick(), [1.0, 0.0]);
        rig.wait(PERIOD_US);
    }
    assert_eq!(rig.faults(), []);
}

#[test]
fn host_heartbeats_keep_the_link_but_not_the_watchdog() {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    let heartbeat = Heartbeat {
        arm_state: ArmState::Disarmed,
        fault_flags: 0,
    };
    while rig.firmware.arm_state() == ArmState::Armed {
        rig.wait(PERIOD_US);
        rig.send(Message::Heartbeat(heartbeat));
        rig.tick();
    }
    assert_eq!(rig.firmware.fault_flags(), FAULT_WATCHDOG);
}

#[test]
fn host_timeout_trips_when_the_host_falls_silent() {
    let mut config = config(0);
    config.watchdog_timeout_us = 10 * HOST_TIMEOUT_US;
    let mut rig = Rig::with_config(config);
    rig.send(Message::Arm);
    rig.command(1, &[2.0, 0.0]);
    let last_heard_us = rig.now_us;
    while rig.firmware.arm_state() == ArmState::Armed {
        rig.wait(PERIOD_US);
        rig.tick();
    }
    let elapsed_us = rig.now_us - last_heard_us;
    assert!(elapsed_us > u64::from(HOST_TIMEOUT_US));
    assert!(elapsed_us <= u64::from(HOST_TIMEOUT_US) + PERIOD_US);
    assert_eq!(rig.firmware.arm_state(), ArmState::Faulted);
    assert_eq!(rig.firmware.fault_flags(), FAULT_HOST_TIMEOUT);
    assert_eq!(
        rig.faults(),
        [fault(FaultCode::HostTimeout, elapsed_us as u32)]
    );
    assert_eq!(rig.tick(), SAFE);

    rig.send(Message::Arm);
    assert_eq!(rig.firmware.fault_flags(), 0, "Arm clears it");
}

#[test]
fn a_silent_host_trips_both_timeouts_when_they_coincide() {
    let mut config = config(0);
    config.host_timeout_us = WATCHDOG_US;
    let mut rig = Rig::with_config(config);
    rig.send(Message::Arm);
    rig.wait(u64::from(WATCHDOG_US) + 1);
    rig.tick();
    assert_eq!(
        rig.firmware.fault_flags(),
        FAULT_WATCHDOG | FAULT_HOST_TIMEOUT
    );
    let codes: Vec<_> = rig.faults().iter().map(|f| f.code).collect();
    assert_eq!(codes, [FaultCode::Watchdog, FaultCode::HostTimeout]);
}

#[test]
fn nothing_trips_while_not_armed() {
    let mut rig = Rig::new();
    for _ in 0..100 {
        rig.wait(PERIOD_US);
        assert_eq!(rig.tick(), SAFE);
    }
    assert_eq!(rig.firmware.fault_flags(), 0);
    assert_eq!(rig.faults(), []);
}

#[test]
fn heartbeats_follow_their_interval() {
    let mut rig = Rig::new();
    let start_us = rig.now_us;
    let mut sent_at = Vec::new();
    for _ in 0..35 {
        rig.tick();
        for frame in rig.drain() {
            if let Message::Heartbeat(h) = frame.message {
                assert_eq!(
                    h,
                    Heartbeat {
                        arm_state: ArmState::Disarmed,
                        fault_flags: 0
                    }
                );
                sent_at.push(frame.timestamp_us - start_us);
            }
        }
        rig.wait(PERIOD_US);
    }
    assert_eq!(sent_at, [0, 100_000, 200_000, 300_000]);
}

#[test]
fn stopped_heartbeats_leave_states_and_the_seq_unbroken() {
    let mut rig = Rig::new();
    rig.send(Message::Arm);
    let mut frames = Vec::new();
    for k in 0..40u32 {
        if k == 15 {
            rig.firmware.stop_heartbeats();
        }
        rig.command(k + 1, &[1.0, 0.0]);
        assert_eq!(rig.tick(), [1.0, 0.0], "tick {k}: still obeying");
        frames.extend(rig.drain());
        rig.wait(PERIOD_US);
    }
    let heartbeats: Vec<u64> = frames
        .iter()
        .filter(|f| matches!(f.message, Message::Heartbeat(_)))
        .map(|f| f.timestamp_us - 1_000)
        .collect();
    assert_eq!(heartbeats, [0, 100_000], "none after the stop at 150 ms");
    let states = frames
        .iter()
        .filter(|f| matches!(f.message, Message::State(_)))
        .count();
    assert_eq!(states, 40);
    let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no seq gap: {seqs:?}"
    );
}

#[test]
fn heartbeats_carry_arm_state_and_faults() {
    let mut rig = Rig::new();
    rig.send(Message::EStop);
    rig.tick();
    let heartbeats: Vec<_> = rig
        .messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Heartbeat(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(
        heartbeats,
        [Heartbeat {
            arm_state: ArmState::EStopped,
            fault_flags: FAULT_ESTOP
        }]
    );
}

#[test]
fn plant_faults_are_reported_while_present_and_announced_when_they_rise() {
    let mut rig = Rig::new();
    let steps: [(u32, u32, &[Fault]); 6] = [
        (0, 0, &[]),
        (
            FAULT_SENSOR,
            FAULT_SENSOR,
            &[Fault {
                code: FaultCode::Sensor,
                detail: FAULT_SENSOR,
            }],
        ),
        (FAULT_SENSOR, FAULT_SENSOR, &[]),
        (
            FAULT_SENSOR | FAULT_LIMIT,
            FAULT_SENSOR | FAULT_LIMIT,
            &[Fault {
                code: FaultCode::Limit,
                detail: FAULT_SENSOR | FAULT_LIMIT,
            }],
        ),
        (FAULT_WATCHDOG | FAULT_ESTOP, 0, &[]),
        (
            FAULT_SENSOR,
            FAULT_SENSOR,
            &[Fault {
                code: FaultCode::Sensor,
                detail: FAULT_SENSOR,
            }],
        ),
    ];
    for (i, (given, reported, faults)) in steps.into_iter().enumerate() {
        rig.tick_with(&[0.0, 0.0], given);
        let messages = rig.messages();
        let got_faults: Vec<Fault> = messages
            .iter()
            .filter_map(|m| {
                if let Message::Fault(f) = m {
                    Some(*f)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(got_faults, faults, "step {i}");
        let state = messages.iter().find_map(|m| {
            if let Message::State(s) = m {
                Some(*s)
            } else {
                None
            }
        });
        assert_eq!(state.unwrap().fault_flags, reported, "step {i}");
        assert_eq!(
            rig.firmware.arm_state(),
            ArmState::Disarmed,
            "plant faults do not disarm"
        );
        rig.wait(PERIOD_US);
    }
}

#[test]
fn a_state_of_the_wrong_length_is_a_sensor_fault() {
    let mut rig = Rig::new();
    rig.tick_with(&[1.0, 2.0, 3.0], 0);
    let states = rig.states();
    assert_eq!(
        states[0].values.as_slice(),
        [1.0, 2.0],
        "truncated to the state channels"
    );
    assert_eq!(states[0].fault_flags, FAULT_SENSOR);
    rig.tick_with(&[1.0], 0);
    let states = rig.states();
    assert_eq!(states[0].values.as_slice(), [1.0]);
    assert_eq!(states[0].fault_flags, FAULT_SENSOR);
    rig.tick_with(&[1.0, 2.0], 0);
    assert_eq!(rig.states()[0].fault_flags, 0);
}

#[test]
fn state_carries_values_bit_exactly() {
    let mut rig = Rig::new();
    let nan = f32::from_bits(0x7fc0_0123);
    rig.tick_with(&[nan, -0.0], 0);
    let states = rig.states();
    let bits: Vec<u32> = states[0]
        .values
        .as_slice()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(bits, [0x7fc0_0123, (-0.0f32).to_bits()]);
}

#[test]
fn firmware_config_is_kept() {
    let rig = Rig::with_config(config(CAP_TELEOP));
    let config: &FirmwareConfig = rig.firmware.config();
    assert_eq!(config.capabilities, CAP_TELEOP);
}
