//! Real-time mode: the firmware ticks on the wall clock, so these tests wait for events
//! (bounded) and never assert on durations.

use handful::sim::{SimOptions, Window, spawn};
use handful_protocol::*;

use super::host::{Host, Integrator};
use super::{assert_sane, link};

/// Answers each State with `force` (valid for 500 ms) until `until` holds for a State.
fn drive(
    host: &mut Host,
    seq: &mut u32,
    force: f32,
    mut until: impl FnMut(&State) -> bool,
) -> State {
    for _ in 0..1_000 {
        let (timestamp_us, state) = host.state();
        if until(&state) {
            return state;
        }
        *seq += 1;
        host.command(*seq, &[force], timestamp_us + 500_000);
    }
    panic!("condition never reached");
}

#[test]
fn disarming_applies_the_safe_action() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(
        SimOptions::new(link(&dir, "disarm")),
        Integrator::boxed([0.0, 0.0]),
    )
    .unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let caps = host.expect("Capabilities", |f| match &f.message {
        Message::Capabilities(c) => Some(*c),
        _ => None,
    });
    assert_eq!(
        caps.capabilities,
        CAP_RESET | CAP_RESET_TO,
        "real time: no CAP_LOCKSTEP"
    );
    host.send(Message::Arm);
    let mut seq = 0;
    drive(&mut host, &mut seq, 2.0, |s| {
        s.arm_state == ArmState::Armed && s.values.as_slice()[1] > 0.2
    });
    host.send(Message::Disarm);
    let first = drive(&mut host, &mut seq, 0.0, |s| {
        s.arm_state == ArmState::Disarmed
    });
    // Safe force 0 on a damped mass: the velocity decays (the held +2 N would raise it).
    let mut velocity = first.values.as_slice()[1];
    for _ in 0..10 {
        let (_, state) = host.state();
        assert_eq!(state.arm_state, ArmState::Disarmed);
        let now = state.values.as_slice()[1];
        assert!(
            now < velocity && now > 0.0,
            "velocity {now} after {velocity}"
        );
        velocity = now;
    }
    let report = sim.stop().unwrap();
    assert_sane(&report);
    assert!(report.steps > 10);
}

#[test]
fn the_watchdog_trips_when_commands_stop() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(
        SimOptions::new(link(&dir, "watchdog")),
        Integrator::boxed([0.0, 0.0]),
    )
    .unwrap();
    let mut host = Host::open(sim.link_path());
    host.send(Message::Arm);
    let mut seq = 0;
    drive(&mut host, &mut seq, 1.0, |s| s.last_command_seq >= 5);
    // Only heartbeats from now on: the host link stays alive, the watchdog starves.
    let mut fault = None;
    let mut heartbeats = 0;
    let faulted = loop {
        let frame = host.recv(50);
        host.send(Message::Heartbeat(Heartbeat {
            arm_state: ArmState::Disarmed,
            fault_flags: 0,
        }));
        heartbeats += 1;
        assert!(heartbeats < 200, "no watchdog trip within ~10 s");
        match frame.map(|f| f.message) {
            Some(Message::Fault(f)) => fault = Some(f),
            Some(Message::State(s)) if s.arm_state == ArmState::Faulted => break s,
            _ => {}
        }
    };
    assert_eq!(
        faulted.fault_flags & (FAULT_WATCHDOG | FAULT_HOST_TIMEOUT),
        FAULT_WATCHDOG
    );
    let fault = fault.expect("a Fault frame before the Faulted State");
    assert_eq!(fault.code, FaultCode::Watchdog);
    assert!(fault.detail > 200_000, "detail {}", fault.detail);
    assert_sane(&sim.stop().unwrap());
}

#[test]
fn unplugging_removes_the_link_and_replugging_points_it_at_a_new_pty() {
    let dir = tempfile::tempdir().unwrap();
    let path = link(&dir, "unplug");
    let mut options = SimOptions::new(&path);
    options.disconnect = Some(Window {
        at_us: 1_000_000,
        for_us: Some(500_000),
    });
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let first = std::fs::read_link(&path).unwrap();
    // Holding the old slave open keeps its number from being reused by the new pty.
    let mut old = Host::open(&path);
    let clock = handful::clock::Clock::real();
    let deadline = clock.now_us() + 10_000_000;
    while std::fs::symlink_metadata(&path).is_ok() {
        assert!(clock.now_us() < deadline, "the link never disappeared");
        clock.sleep_us(2_000);
    }
    // The old port reports the hang-up.
    while old.pump().is_ok() {
        assert!(clock.now_us() < deadline, "the old port never hung up");
    }
    while std::fs::symlink_metadata(&path).is_err() {
        assert!(clock.now_us() < deadline, "the link never came back");
        clock.sleep_us(2_000);
    }
    let second = std::fs::read_link(&path).unwrap();
    assert_ne!(first, second);
    let mut host = Host::open(&path);
    host.hello();
    host.expect("Capabilities on the new pty", |f| {
        matches!(f.message, Message::Capabilities(_)).then_some(())
    });
    let report = sim.stop().unwrap();
    assert_eq!((report.disconnects, report.reconnects), (1, 1));
    assert!(report.frames_lost_offline > 0);
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "link removed on stop"
    );
    assert_sane(&report);
}
