//! The serial link against a fake robot (the real firmware logic behind a pty): handshake
//! and validation, SI conversion, commands, error counting, drops, heartbeats, lockstep
//! waiting, faults, and reconnection behind a symlinked device path.

mod fake_robot;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_robot::FakeRobot;
use handful::calib::Calibration;
use handful::clock::Clock;
use handful::link::{Link, LinkError, Request, SendError, StateSample};
use handful_protocol::{
    ArmState, FaultCode, Frame, Heartbeat, MAX_ENCODED_LEN, Message, Teleop, encode,
};

const CALIB: &str = r#"
[robot]
id = "fake-bot"
task = "cartpole_swingup"

[link]
port = "/dev/null"
baud = 115200

[timing]
control_rate_hz = 200.0
heartbeat_interval_ms = 20.0
watchdog_timeout_ms = 500.0
stale_state_ms = 50.0
link_timeout_ms = 100.0

[[state]]
name = "position"
unit = "m"
offset = 0.5
scale = 2.0

[[state]]
name = "velocity"
unit = "m/s"
scale = -1.0

[[action]]
name = "force"
unit = "N"
min = -2.0
max = 2.0
safe = 0.0
"#;

fn calib(text: &str) -> Calibration {
    Calibration::from_toml(Path::new("test.toml"), text).expect("test calibration")
}

/// Polls `condition` every 2 ms; panics naming `what` if it does not hold within 5 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2_500 {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out waiting until {what}");
}

fn open(robot: &FakeRobot) -> Link {
    Link::open(&calib(CALIB), &robot.tty_path, Clock::real()).expect("link opens")
}

fn first_state(link: &Link) -> StateSample {
    link.wait_for_state_after(0, Duration::from_secs(5))
        .expect("a state arrives")
}

/// A wire frame of `message` with firmware seq `seq`.
fn wire(seq: u32, message: Message) -> Vec<u8> {
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let n = encode(
        &Frame {
            seq,
            timestamp_us: 0,
            message,
        },
        &mut buf,
    )
    .unwrap();
    buf[..n].to_vec()
}

#[test]
fn handshake_announces_the_robot_and_states_arrive_in_si() {
    let robot = FakeRobot::start();
    robot.control.set_state([1.0, 3.0]);
    let link = open(&robot);
    let info = link.robot();
    assert_eq!(info.robot_id, "fake-bot");
    assert_eq!(info.firmware_version, [0, 1, 0]);
    assert!(info.has_reset() && !info.has_lockstep() && !info.has_teleop());
    let names: Vec<_> = info
        .states
        .iter()
        .chain(&info.actions)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["position", "velocity", "force"]);
    assert_eq!((info.actions[0].min, info.actions[0].max), (-2.0, 2.0));

    let state = first_state(&link);
    assert_eq!(state.values(), [2.5, -3.0]); // 1·2 + 0.5, 3·(−1)
    assert_eq!(state.arm_state, ArmState::Disarmed);
    assert_eq!(state.last_command_seq, 0);
    let later = link
        .wait_for_state_after(state.count, Duration::from_secs(5))
        .unwrap();
    assert!(later.count > state.count && later.timestamp_us > state.timestamp_us);
    let stats = link.stats();
    assert!(stats.connected);
    assert!(stats.states_received >= 2 && stats.frames_received > stats.states_received);
    assert_eq!(
        (
            stats.crc_errors,
            stats.decode_errors.total(),
            stats.dropped_frames
        ),
        (0, 0, 0)
    );
}

#[test]
fn mismatching_calibration_is_refused_naming_each_difference() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "id = \"fake-bot\"",
            "id = \"other-bot\"",
            "robot id: calibration \"other-bot\", robot \"fake-bot\"",
        ),
        (
            "max = 2.0",
            "max = 3.0",
            "action[0] `force` max: calibration 3, robot 2",
        ),
        (
            "safe = 0.0",
            "safe = 1.0",
            "action[0] `force` safe: calibration 1, robot 0",
        ),
        (
            "unit = \"m/s\"",
            "unit = \"rad/s\"",
            "state[1] `velocity` unit",
        ),
        (
            "name = \"position\"",
            "name = \"pos\"",
            "state[0] name: calibration \"pos\", robot \"position\"",
        ),
        (
            "control_rate_hz = 200.0",
            "control_rate_hz = 100.0",
            "control period: calibration 10000 µs, robot 5000 µs",
        ),
        (
            "watchdog_timeout_ms = 500.0",
            "watchdog_timeout_ms = 400.0",
            "watchdog timeout",
        ),
        (
            "heartbeat_interval_ms = 20.0\nwatchdog_timeout_ms = 500.0\nstale_state_ms = 50.0\nlink_timeout_ms = 100.0",
            "heartbeat_interval_ms = 5.0\nwatchdog_timeout_ms = 500.0\nstale_state_ms = 5.0\nlink_timeout_ms = 15.0",
            "heartbeat interval: robot 20000 µs is not shorter than the calibration's link timeout 15000 µs",
        ),
        (
            "[[action]]",
            "[[state]]\nname = \"extra\"\nunit = \"\"\n\n[[action]]",
            "state dim: calibration 3, robot 2",
        ),
    ];
    for &(from, to, expected) in cases {
        assert!(CALIB.contains(from), "{from}");
        let robot = FakeRobot::start();
        let result = Link::open(
            &calib(&CALIB.replacen(from, to, 1)),
            &robot.tty_path,
            Clock::real(),
        );
        let Err(error @ LinkError::Mismatch { .. }) = result else {
            panic!("{to}: expected a mismatch, got {:?}", result.map(|_| ()));
        };
        let message = error.to_string();
        assert!(message.contains(expected), "{to}: {message}");
    }
}

#[test]
fn a_silent_peer_times_out_and_lost_hellos_are_retried() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let path = nix::unistd::ttyname(&pty.slave).unwrap();
    let error = Link::open(&calib(CALIB), &path, Clock::real())
        .err()
        .expect("no robot answers");
    assert!(
        matches!(error, LinkError::HandshakeTimeout { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("no Capabilities received"),
        "{error}"
    );

    let robot = FakeRobot::start();
    robot.control.ignore_hellos.store(2, Ordering::Relaxed);
    robot.control.inject(&[0x42, 0x42, 0x00, 0x05, 0x01, 0x00]); // garbage before the answer
    let link = open(&robot);
    assert_eq!(robot.control.hellos.load(Ordering::Relaxed), 3);
    assert!(link.stats().decode_errors.total() >= 1);
    first_state(&link);
}

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

#[test]
fn a_hang_up_disconnects_and_a_new_peer_behind_the_same_path_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("robot");
    let first = FakeRobot::start();
    first.control.set_state([1.0, 0.0]);
    first.expose_at(&path);
    let link = Link::open(&calib(CALIB), &path, Clock::real()).unwrap();
    assert_eq!(first_state(&link).values()[0], 2.5);

    drop(first);
    wait_until("disconnected", || {
        !link.health(link.clock().now_us()).connected
    });
    assert!(!link.stats().connected);
    assert_eq!(
        link.send_command(&[0.0], u64::MAX),
        Err(SendError::Disconnected)
    );
    assert_eq!(link.send(Request::Arm), Err(SendError::Disconnected));

    let second = FakeRobot::start();
    second.control.set_state([5.0, 0.0]);
    second.expose_at(&path);
    wait_until("reconnected", || link.stats().connected);
    assert_eq!(link.stats().reconnects, 1);
    wait_until("states from the new robot", || {
        link.latest_state().unwrap().values()[0] == 10.5
    });
    link.send(Request::Arm).unwrap();
    wait_until("armed", || {
        link.latest_state().unwrap().arm_state == ArmState::Armed
    });
    let state = link.latest_state().unwrap();
    let seq = link
        .send_command(&[1.0], state.timestamp_us + 1_000_000)
        .unwrap();
    wait_until("command echoed", || {
        link.latest_state().unwrap().last_command_seq == seq
    });
    wait_until("host heartbeats reach the new robot", || {
        second.control.host_heartbeats.load(Ordering::Relaxed) >= 2
    });
}
