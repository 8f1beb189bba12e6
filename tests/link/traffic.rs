//! Traffic on an open link: commands, corrupted bytes, seq gaps, heartbeats, lockstep
//! waiting, faults and teleop.

use super::*;

#[test]
fn commands_reach_the_firmware_with_increasing_seq() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    first_state(&link);
    assert_eq!(
        link.send_command(&[0.1, 0.2], 0),
        Err(SendError::Dimension {
            expected: 1,
            found: 2
        })
    );
    link.send(Request::Arm).unwrap();
    wait_until("armed", || {
        link.latest_state()
            .is_some_and(|s| s.arm_state == ArmState::Armed)
    });
    let mut sent = Vec::new();
    for i in 0..20 {
        let state = link.latest_state().unwrap();
        sent.push(
            link.send_command(&[0.1 * i as f32], state.timestamp_us + 1_000_000)
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(sent.windows(2).all(|w| w[0] < w[1]), "{sent:?}");
    wait_until("the firmware accepted 20 commands", || {
        robot.control.accepted_commands.load(Ordering::Relaxed) == 20
    });
    assert_eq!(*robot.control.command_seqs.lock().unwrap(), sent);
    let last = *sent.last().unwrap();
    wait_until("State echoes the last seq", || {
        link.latest_state().unwrap().last_command_seq == last
    });
    assert_eq!(link.stats().commands_sent, 20);
    assert_eq!(link.stats().tx_full_drops, 0);
}

#[test]
fn corrupted_and_garbage_bytes_are_counted_and_the_link_keeps_going() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    let state = first_state(&link);
    let before = link.stats();

    // Flip one data byte (not a COBS code byte) of a valid frame: a CRC error.
    let mut corrupted = wire(
        7,
        Message::Heartbeat(Heartbeat {
            arm_state: ArmState::Disarmed,
            fault_flags: 0,
        }),
    );
    let mut code_at = 0;
    while code_at < corrupted.len() - 1 && corrupted[code_at] == 1 {
        code_at += 1;
    }
    let data_at = code_at + 1;
    corrupted[data_at] ^= if corrupted[data_at] == 1 { 3 } else { 1 };
    robot.control.inject(&corrupted);
    robot.control.inject(&[0x05, 0x37, 0x00]); // COBS block longer than the frame
    robot.control.inject(&[0x05, 1, 2, 3, 4, 0x00]); // 4 bytes: shorter than a header
    robot.control.inject(&[0x55; 300]);
    robot.control.inject(&[0x00]); // overflow, resynchronised here
    wait_until("four errors counted", || {
        let s = link.stats();
        s.crc_errors + s.decode_errors.total() == 4
    });
    let after = link.stats();
    assert_eq!(after.crc_errors, before.crc_errors + 1);
    assert_eq!(after.decode_errors.cobs, 1);
    assert_eq!(after.decode_errors.too_short, 1);
    assert_eq!(after.decode_errors.overflow, 1);
    let next = link.wait_for_state_after(after.states_received, Duration::from_secs(5));
    assert!(
        next.is_some_and(|s| s.count > state.count),
        "states keep arriving"
    );
    assert_eq!(link.stats().dropped_frames, 0);
    assert!(link.stats().connected);
}

#[test]
fn seq_gaps_are_dropped_frames_and_steps_back_are_out_of_order() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    first_state(&link);
    assert_eq!(link.stats().dropped_frames, 0);
    robot.control.drop_next_frames.store(3, Ordering::Relaxed);
    wait_until("three frames counted dropped", || {
        link.stats().dropped_frames == 3
    });
    let count = link.stats().states_received;
    link.wait_for_state_after(count + 3, Duration::from_secs(5))
        .expect("states continue");
    assert_eq!(link.stats().dropped_frames, 3);

    robot.control.inject(&wire(
        0,
        Message::Heartbeat(Heartbeat {
            arm_state: ArmState::Disarmed,
            fault_flags: 0,
        }),
    ));
    wait_until("an out-of-order frame", || {
        link.stats().out_of_order_frames == 1
    });
    let count = link.stats().states_received;
    link.wait_for_state_after(count + 3, Duration::from_secs(5))
        .expect("states continue");
    assert_eq!(link.stats().dropped_frames, 3, "a step back is not a gap");
}

#[test]
fn heartbeats_flow_both_ways_and_silence_means_lost() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    wait_until("host heartbeats reach the firmware", || {
        robot.control.host_heartbeats.load(Ordering::Relaxed) >= 3
    });
    wait_until("firmware heartbeats arrive", || {
        link.stats().last_heartbeat_us.is_some()
    });
    let now = link.clock().now_us();
    let health = link.health(now);
    assert!(
        health.connected && !health.is_lost && health.is_usable(),
        "{health:?}"
    );
    assert!(health.heartbeat_age_us.is_some() && health.state_age_us.is_some());

    robot.control.paused.store(true, Ordering::Release);
    wait_until("silence is a lost link", || {
        link.health(link.clock().now_us()).is_lost
    });
    assert!(
        link.health(link.clock().now_us()).connected,
        "a silent port stays open"
    );
    robot.control.paused.store(false, Ordering::Release);
    wait_until("the link comes back", || {
        !link.health(link.clock().now_us()).is_lost
    });
}

#[test]
fn wait_for_state_after_times_out_when_states_stop() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    let state = first_state(&link);
    assert!(
        link.wait_for_state_after(state.count, Duration::from_secs(5))
            .is_some()
    );
    robot.control.paused.store(true, Ordering::Release);
    let mut timed_out = false;
    for _ in 0..50 {
        let count = link.latest_state().unwrap().count;
        if link
            .wait_for_state_after(count, Duration::from_millis(30))
            .is_none()
        {
            timed_out = true;
            break;
        }
    }
    assert!(timed_out, "no state arrives while the robot is paused");
    let count = link.latest_state().unwrap().count;
    robot.control.paused.store(false, Ordering::Release);
    let next = link
        .wait_for_state_after(count, Duration::from_secs(5))
        .expect("resumed");
    assert_eq!(next.count, count + 1);
}

#[test]
fn firmware_faults_are_queued_and_teleop_is_kept() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    first_state(&link);
    assert_eq!(link.latest_teleop(), None);
    let axes = handful_protocol::Vector::from_slice(&[0.5, -1.0]).unwrap();
    *robot.control.teleop.lock().unwrap() = Some(Teleop {
        buttons: 0b101,
        axes,
    });
    wait_until("a teleop sample", || link.latest_teleop().is_some());
    let teleop = link.latest_teleop().unwrap();
    assert_eq!(
        (teleop.buttons, &teleop.axes[..teleop.axis_count]),
        (0b101, &[0.5, -1.0][..])
    );
    assert_eq!(link.stats().teleop_received, 1);

    link.send(Request::EStop).unwrap();
    let event = link
        .fault_events()
        .recv_timeout(Duration::from_secs(5))
        .expect("a fault event");
    assert_eq!((event.code, event.detail), (FaultCode::EStop, 0));
    let stats = link.stats();
    assert_eq!(stats.faults_received, 1);
    assert_eq!(stats.last_fault.map(|f| f.code), Some(FaultCode::EStop));
    wait_until("e-stopped", || {
        link.latest_state().unwrap().arm_state == ArmState::EStopped
    });
    link.send(Request::Reset { seed: 7 }).unwrap();
    wait_until("reset disarms", || {
        link.latest_state().unwrap().arm_state == ArmState::Disarmed
    });
}
