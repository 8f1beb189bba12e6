//! Reset to a given state (`ResetTo`, `CAP_RESET_TO`): the simulator answers it exactly
//! as a Reset — in lockstep one State, before any step, stamped with the unchanged
//! time, holding exactly the state sent; in real time the next tick's State — and
//! refuses a wrong length, a non-finite value or a state at a plant limit with
//! `Fault{BadResetState}` and nothing else. A firmware without the capability answers
//! `Fault{Unsupported, 0x34}`.

use handful::plant::PlantKind;
use handful::sim::{SimOptions, firmware_config, spawn};
use handful_protocol::*;

use super::host::{Host, Integrator, PERIOD_US};
use super::{link, lockstep};

fn reset_to(values: &[f32]) -> Message {
    Message::ResetTo(ResetTo {
        values: StateVector::from_slice(values).unwrap(),
    })
}

/// The next Fault, and every State seen before it.
fn fault(host: &mut Host) -> (Fault, Vec<State>) {
    let mut states = Vec::new();
    let fault = host.expect("Fault", |f| match &f.message {
        Message::Fault(fault) => Some(*fault),
        Message::State(s) => {
            states.push(*s);
            None
        }
        _ => None,
    });
    (fault, states)
}

#[test]
fn in_lockstep_a_reset_to_is_answered_by_one_state_holding_exactly_that_state() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(lockstep(&dir, "reset-to"), Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    host.send(Message::Arm);
    for k in 1..=5 {
        host.command(k, &[2.0], u64::MAX);
        host.state();
    }
    let target = [1.2345678, -0.987_654_3];
    host.send(reset_to(&target));
    let (stamp, state) = host.state();
    assert_eq!(state.values.as_slice(), target, "exactly the state sent");
    assert_eq!(state.arm_state, ArmState::Disarmed, "ResetTo disarms");
    assert_eq!(stamp, 5 * PERIOD_US, "stamped with the unchanged time");
    // Nothing else answered it: the next frame answers the next Command.
    host.command(6, &[2.0], u64::MAX);
    let (stamp, state) = host.state();
    assert_eq!(stamp, 6 * PERIOD_US);
    assert_eq!(state.values.as_slice(), target, "disarmed: paused there");
    // Armed, the episode goes on from there exactly as the plant's own step says.
    host.send(Message::Arm);
    host.command(7, &[1.0], u64::MAX);
    let next = Integrator::next([f64::from(target[0]), f64::from(target[1])], 1.0);
    assert_eq!(host.state().1.values.as_slice(), super::as_f32(next));
    assert_eq!(sim.stop().unwrap().resets, 1);
}

#[test]
fn a_reset_to_of_the_wrong_length_or_not_finite_is_refused_with_its_fault_and_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(
        lockstep(&dir, "bad-reset-to"),
        Integrator::boxed([0.5, 0.25]),
    )
    .unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    use ResetStateError::*;
    for (values, detail) in [
        (&[1.0][..], reset_state_detail(Length, 1)),
        (&[1.0, 2.0, 3.0][..], reset_state_detail(Length, 3)),
        (&[f32::NAN, 2.0][..], reset_state_detail(NotFinite, 0)),
        (
            &[1.0, f32::NEG_INFINITY][..],
            reset_state_detail(NotFinite, 1),
        ),
    ] {
        host.send(reset_to(values));
        let (fault, states) = fault(&mut host);
        assert_eq!(
            (fault.code, fault.detail),
            (FaultCode::BadResetState, detail),
            "{values:?}"
        );
        assert!(states.is_empty(), "{values:?}: no State answers it");
    }
    host.command(1, &[0.0], u64::MAX);
    let (stamp, state) = host.state();
    assert_eq!(stamp, PERIOD_US, "the refusals moved no clock");
    assert_eq!(state.values.as_slice(), [0.5, 0.25], "nor the plant");
    assert_eq!(sim.stop().unwrap().resets, 0);
}

#[test]
fn the_cartpole_refuses_a_cart_at_or_beyond_its_rail_stops_and_takes_one_inside() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(lockstep(&dir, "rail"), PlantKind::Cartpole.build()).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let refused = reset_state_detail(ResetStateError::OutOfRange, 0xff);
    for x in [2.5, 3.0, -2.5, -1e6] {
        host.send(reset_to(&[x, 0.0, 0.0, 0.0]));
        let (fault, states) = fault(&mut host);
        assert_eq!(
            (fault.code, fault.detail),
            (FaultCode::BadResetState, refused)
        );
        assert!(states.is_empty(), "x = {x}: no State answers it");
    }
    let inside = [2.499, std::f32::consts::PI, -0.5, 3.0];
    host.send(reset_to(&inside));
    let (_, state) = host.state();
    assert_eq!(state.values.as_slice(), inside);
    assert_eq!(state.fault_flags & FAULT_LIMIT, 0);
    sim.stop().unwrap();
}

#[test]
fn in_real_time_the_next_state_shows_the_state_set() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(
        SimOptions::new(link(&dir, "rt-reset-to")),
        Integrator::boxed([0.0, 0.0]),
    )
    .unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    host.state();
    let target = [0.75, 0.0]; // at rest, so later ticks keep it too
    host.send(reset_to(&target));
    let state = host.expect("the state set", |f| match &f.message {
        Message::State(s) if s.values.as_slice() == target => Some(*s),
        _ => None,
    });
    assert_eq!(state.arm_state, ArmState::Disarmed);
    assert_eq!(sim.stop().unwrap().resets, 1);
}

#[test]
fn a_firmware_configured_like_the_simulator_but_without_the_bit_answers_unsupported() {
    let options = SimOptions::new("/tmp/unused");
    let mut config = firmware_config(PlantKind::Cartpole.spec(), &options).unwrap();
    assert_ne!(
        config.capabilities & CAP_RESET_TO,
        0,
        "the simulator has it"
    );
    config.capabilities &= !CAP_RESET_TO;
    let mut firmware = handful_firmware::Firmware::new(config);
    let mut out = handful_firmware::Outbox::new();
    let frame = Frame {
        seq: 0,
        timestamp_us: 0,
        message: reset_to(&[0.0; 4]),
    };
    assert_eq!(firmware.handle(&frame, 1_000, &mut out), None);
    let answers: Vec<Message> = core::iter::from_fn(|| out.pop_front())
        .map(|f| f.message)
        .collect();
    assert_eq!(
        answers,
        [Message::Fault(Fault {
            code: FaultCode::Unsupported,
            detail: 0x34
        })]
    );
}
