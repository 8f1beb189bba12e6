//! The serial link against a fake robot (the real firmware logic behind a pty): handshake
//! and validation, SI conversion, commands, reset to a given state, error counting, drops,
//! heartbeats, lockstep waiting, faults, and reconnection behind a symlinked device path.

mod fake_robot;
mod reconnect;
mod reset_to;
mod traffic;

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
    assert!(!info.has_reset_to());
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
fn numbers_the_control_path_cannot_hold_as_32_bit_floats_are_refused_naming_the_key() {
    // Each is finite as TOML (f64) but not as the f32 the clamp and the scaling use.
    let cases: &[(&str, &str, &str)] = &[
        // +inf as f32: the clamp would be [-2, +inf].
        ("max = 2.0", "max = 1e300", "action[0].max"),
        ("min = -2.0", "min = -1e39", "action[0].min"),
        ("safe = 0.0", "safe = 1e-42", "action[0].safe"),
        // 0 as f32: the channel would always read 0.
        ("scale = 2.0", "scale = 1e-60", "state[0].scale"),
        ("scale = 2.0", "scale = 1e-39", "state[0].scale"),
        ("offset = 0.5", "offset = 1e40", "state[0].offset"),
        // Distinct in f64, the same f32: no range left to clamp into.
        (
            "min = -2.0\nmax = 2.0",
            "min = 2.0\nmax = 2.00000001",
            "action[0].max",
        ),
        // Timeouts beyond a minute (and sums of deadlines that could overflow).
        (
            "watchdog_timeout_ms = 500.0",
            "watchdog_timeout_ms = 1e300",
            "timing.watchdog_timeout_ms",
        ),
    ];
    for &(from, to, key) in cases {
        assert!(CALIB.contains(from), "{from}");
        let text = CALIB.replacen(from, to, 1);
        let error = Calibration::from_toml(Path::new("bad.toml"), &text)
            .err()
            .unwrap_or_else(|| panic!("{to}: accepted"));
        let message = error.to_string();
        assert!(
            message.contains(key) && message.contains("bad.toml"),
            "{to}: {message}"
        );
    }
    // Zero stays a valid offset and safe value; the calibration as written is valid.
    calib(CALIB);
}

#[test]
fn a_robot_announcing_an_infinite_limit_is_refused() {
    let mut config = fake_robot::config();
    config.action_channels[0].max = f32::INFINITY;
    let robot = FakeRobot::start_with(config);
    let result = Link::open(&calib(CALIB), &robot.tty_path, Clock::real());
    let Err(error @ LinkError::Mismatch { .. }) = result else {
        panic!("expected a mismatch, got {:?}", result.map(|_| ()));
    };
    assert!(
        error
            .to_string()
            .contains("action[0] `force` max: calibration 2, robot inf"),
        "{error}"
    );
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
fn recovery_waits_for_a_healthy_robot_but_never_recovers_from_an_e_stop() {
    use handful::control::{EpisodeEnd, HostFault};
    use handful::recovery::{Recovery, RecoveryPolicy, Stopped};
    let robot = FakeRobot::start();
    let link = open(&robot);
    first_state(&link);
    let calib = calib(CALIB);
    let policy = RecoveryPolicy {
        max_recoveries: 2,
        wait_us: 1_000_000,
    };
    let mut recovery = Recovery::new(policy);
    let after = |r: &mut Recovery, end| r.after(0, end, &link, &calib, false, || {});
    // A completed episode needs nothing; a fault on a healthy robot is recovered from.
    after(&mut recovery, EpisodeEnd::Completed).unwrap();
    assert_eq!(recovery.used, 0);
    after(&mut recovery, EpisodeEnd::Faulted(HostFault::StaleState)).unwrap();
    assert_eq!(recovery.used, 1);
    // A robot that sends nothing is waited for, then given up on, saying why.
    robot.control.paused.store(true, Ordering::Relaxed);
    let error = after(&mut recovery, EpisodeEnd::Faulted(HostFault::LinkLost)).unwrap_err();
    assert!(matches!(error, Stopped::NotHealthy { .. }), "{error}");
    assert!(error.to_string().contains("within 1 s"), "{error}");
    robot.control.paused.store(false, Ordering::Relaxed);
    // The budget: 2 recoveries, then the run stops.
    after(&mut recovery, EpisodeEnd::Faulted(HostFault::LinkLost)).unwrap();
    let error = after(&mut recovery, EpisodeEnd::Faulted(HostFault::LinkLost)).unwrap_err();
    assert!(
        matches!(
            error,
            Stopped::NoRecoveriesLeft {
                used: 2,
                max: 2,
                ..
            }
        ),
        "{error}"
    );
    // An e-stop the firmware reported during the run stops it, even once the host's
    // disarm has released it and the robot looks healthy.
    let mut fresh = Recovery::new(policy);
    robot.control.inject(&wire(
        1_000_000,
        Message::Fault(handful_protocol::Fault {
            code: handful_protocol::FaultCode::EStop,
            detail: 0,
        }),
    ));
    wait_until("the e-stop report arrived", || {
        link.stats().estops_received == 1
    });
    let error = after(&mut fresh, EpisodeEnd::Faulted(HostFault::Firmware)).unwrap_err();
    assert!(matches!(error, Stopped::EStopped), "{error}");
    assert_eq!(fresh.used, 0);
}
