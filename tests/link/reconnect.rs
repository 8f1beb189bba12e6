//! Losing the robot (the pty's other side closes) and finding it again behind the same
//! symlinked device path.

use super::*;

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
