//! Reset to a given state through the link: refused on the host, and never sent, when
//! the robot lacks `CAP_RESET_TO`, the length is wrong or a value is not finite;
//! otherwise sent in the channels' units (the calibration's scale and offset undone) so
//! the next State reads back exactly the SI state asked for.

use super::*;
use handful_protocol::{CAP_RESET, CAP_RESET_TO};

#[test]
fn the_host_never_sends_a_reset_to_to_a_robot_without_the_capability() {
    let robot = FakeRobot::start();
    let link = open(&robot);
    first_state(&link);
    assert!(!link.robot().has_reset_to());
    assert_eq!(link.reset_to(&[0.0, 0.0]), Err(SendError::NoResetTo));
    let message = SendError::NoResetTo.to_string();
    assert!(message.contains("CAP_RESET_TO"), "{message}");
    // Something sent after it arrives, and the ResetTo never did.
    link.send(Request::Arm).unwrap();
    wait_until("armed", || {
        link.latest_state()
            .is_some_and(|s| s.arm_state == ArmState::Armed)
    });
    assert_eq!(robot.control.reset_tos.load(Ordering::Relaxed), 0);
}

#[test]
fn a_reset_to_reaches_the_robot_in_its_units_and_reads_back_exactly_in_si() {
    let mut config = fake_robot::config();
    config.capabilities = CAP_RESET | CAP_RESET_TO;
    let robot = FakeRobot::start_with(config);
    robot.control.set_state([0.1, 0.2]);
    let link = open(&robot);
    first_state(&link);
    assert!(link.robot().has_reset_to());
    assert_eq!(
        link.reset_to(&[1.0]),
        Err(SendError::StateDimension {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        link.reset_to(&[1.0, f32::NAN]),
        Err(SendError::NotFinite { index: 1 })
    );
    assert_eq!(robot.control.reset_tos.load(Ordering::Relaxed), 0);

    link.send(Request::Arm).unwrap();
    wait_until("armed", || {
        link.latest_state()
            .is_some_and(|s| s.arm_state == ArmState::Armed)
    });
    // SI position 1.5 is raw (1.5 − 0.5) / 2 = 0.5; SI velocity −0.75 is raw 0.75.
    link.reset_to(&[1.5, -0.75]).unwrap();
    wait_until("the state set, disarmed", || {
        link.latest_state()
            .is_some_and(|s| s.values() == [1.5, -0.75] && s.arm_state == ArmState::Disarmed)
    });
    // Out of the firmware's raw range [-1, 1]: sent, and refused by the firmware.
    link.reset_to(&[3.0, 0.0]).unwrap();
    let event = link
        .fault_events()
        .recv_timeout(Duration::from_secs(5))
        .expect("a fault event");
    assert_eq!(event.code, FaultCode::BadResetState);
    assert_eq!(
        handful_protocol::parse_reset_state_detail(event.detail),
        Some((handful_protocol::ResetStateError::OutOfRange, 0))
    );
    assert_eq!(robot.control.reset_tos.load(Ordering::Relaxed), 2);
    assert_eq!(link.latest_state().unwrap().values(), [1.5, -0.75]);
}
