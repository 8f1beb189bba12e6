//! What every queued frame carries (the firmware's seq and the time), and what happens
//! when the application does not drain the outbox.

use crate::common::*;
use handful_firmware::*;
use handful_protocol::*;

#[test]
fn frames_carry_consecutive_seqs_and_their_queue_time() {
    let mut rig = Rig::new();
    let mut expected_times = Vec::new();
    rig.send(Message::Hello(Hello {
        protocol_min: 1,
        protocol_max: 1,
    }));
    expected_times.extend([rig.now_us; 5]);
    rig.wait(7);
    rig.send(Message::Arm);
    rig.tick(); // State + Heartbeat
    expected_times.extend([rig.now_us; 2]);
    rig.wait(PERIOD_US);
    rig.command(1, &[f32::NAN, 0.0]); // Fault
    expected_times.push(rig.now_us);
    rig.wait(3);
    let teleop = Teleop {
        buttons: 1,
        axes: Vector::from_slice(&[0.5]).unwrap(),
    };
    rig.firmware
        .forward_teleop(rig.now_us, teleop, &mut rig.out);
    expected_times.push(rig.now_us);

    let frames = rig.drain();
    let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
    let times: Vec<u64> = frames.iter().map(|f| f.timestamp_us).collect();
    assert_eq!(seqs, (0..frames.len() as u32).collect::<Vec<_>>());
    assert_eq!(times, expected_times);
    assert_eq!(frames.last().unwrap().message, Message::Teleop(teleop));
}

#[test]
fn a_full_outbox_drops_the_newest_frames_and_counts_them() {
    let mut config = config(0);
    config.heartbeat_interval_us = u32::MAX;
    let mut rig = Rig::with_config(config);
    // The first tick queues State + Heartbeat, every later one a State.
    let ticks = OUTBOX_CAPACITY + 10;
    for _ in 0..ticks {
        rig.tick();
        rig.wait(PERIOD_US);
    }
    assert_eq!(rig.out.len(), OUTBOX_CAPACITY);
    let dropped = (ticks + 1 - OUTBOX_CAPACITY) as u64;
    assert_eq!(rig.firmware.dropped_frames(), dropped);
    let frames = rig.drain();
    let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(
        seqs,
        (0..OUTBOX_CAPACITY as u32).collect::<Vec<_>>(),
        "the oldest are kept"
    );

    rig.tick();
    let next = rig.drain()[0].seq;
    assert_eq!(
        u64::from(next),
        OUTBOX_CAPACITY as u64 + dropped,
        "the gap shows the drops"
    );
}

#[test]
fn the_full_hello_answer_of_the_largest_robot_fits() {
    let mut config = config(0);
    let spec = config.state_channels[0];
    while config.state_channels.push(spec).is_ok() {}
    let spec = config.action_channels[0];
    while config.action_channels.push(spec).is_ok() {}
    let mut rig = Rig::with_config(config);
    rig.send(Message::Hello(Hello {
        protocol_min: 1,
        protocol_max: 1,
    }));
    let frames = rig.drain();
    assert_eq!(frames.len(), 1 + MAX_STATE_DIM + MAX_ACTION_DIM);
    assert_eq!(rig.firmware.dropped_frames(), 0);
    let mut wire = [0u8; MAX_ENCODED_LEN];
    let mut decoder = Decoder::new();
    for frame in frames {
        let n = encode(&frame, &mut wire).unwrap();
        let decoded: Vec<_> = wire[..n].iter().filter_map(|&b| decoder.push(b)).collect();
        assert_eq!(decoded, [Ok(frame)]);
    }
}

/// The README's main loop over bytes: host frames are encoded, fed byte by byte through
/// a `Decoder` into `handle`; tick output is encoded and decoded back on the host side.
#[test]
fn main_loop_over_bytes() {
    let mut rig = Rig::new();
    let mut decoder = Decoder::new();
    let mut wire = [0u8; MAX_ENCODED_LEN];
    let host_frames = [
        Message::Hello(Hello {
            protocol_min: 1,
            protocol_max: 1,
        }),
        Message::Arm,
        Message::Command(Command {
            seq: 5,
            valid_until_us: rig.now_us + PERIOD_US,
            values: Vector::from_slice(&[20.0, 0.5]).unwrap(),
        }),
    ];
    for (seq, message) in (0..).zip(host_frames) {
        let n = encode(
            &Frame {
                seq,
                timestamp_us: 0,
                message,
            },
            &mut wire,
        )
        .unwrap();
        for &byte in &wire[..n] {
            if let Some(Ok(frame)) = decoder.push(byte) {
                assert_eq!(rig.firmware.handle(&frame, rig.now_us, &mut rig.out), None);
            }
        }
    }
    let action = rig
        .firmware
        .tick(rig.now_us, &[0.25, -0.25], 0, &mut rig.out);
    assert_eq!(action.as_slice(), [10.0, 0.5]);

    let mut host_decoder = Decoder::new();
    let mut received = Vec::new();
    while let Some(frame) = rig.out.pop_front() {
        let n = encode(&frame, &mut wire).unwrap();
        received.extend(wire[..n].iter().filter_map(|&b| host_decoder.push(b)));
    }
    let received: Vec<Message> = received.into_iter().map(|r| r.unwrap().message).collect();
    let kinds: Vec<MessageKind> = received.iter().map(Message::kind).collect();
    let info = MessageKind::ChannelInfo;
    let expected = [MessageKind::Capabilities, info, info, info, info];
    assert_eq!(
        kinds,
        [&expected[..], &[MessageKind::State, MessageKind::Heartbeat]].concat()
    );
    let Message::State(state) = received[5] else {
        unreachable!()
    };
    assert_eq!(state.arm_state, ArmState::Armed);
    assert_eq!(state.last_command_seq, 5);
    assert_eq!(state.values.as_slice(), [0.25, -0.25]);
}
