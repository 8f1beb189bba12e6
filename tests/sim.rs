//! The simulated robot through a real pty, opened with `serialport` on the symlink as a
//! controller would: handshake, lockstep stepping, arming, watchdog, reset (seeded and
//! to a given state), injected faults, unplugging, a host that stops reading, and the
//! child-process wrapper.

mod host;
mod process;

use std::path::PathBuf;

use handful::sim::{SimOptions, SimReport, firmware_version, spawn};
use handful_protocol::*;
use host::{Host, Integrator, PERIOD_US, as_f32};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A link path unique to this test.
fn link(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn lockstep(dir: &tempfile::TempDir, name: &str) -> SimOptions {
    SimOptions {
        lockstep: true,
        ..SimOptions::new(link(dir, name))
    }
}

#[test]
fn hello_announces_the_plant_spec_and_the_first_command_fetches_the_first_state() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(lockstep(&dir, "hello"), Integrator::boxed([0.25, -0.5])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let Some(Frame {
        message: Message::Capabilities(caps),
        ..
    }) = host.recv(5_000)
    else {
        panic!("Capabilities first");
    };
    assert_eq!(caps.protocol, PROTOCOL_VERSION);
    assert_eq!(caps.robot_id.as_str(), "test-integrator");
    let version: Vec<u8> = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(caps.firmware_version.as_slice(), version);
    assert_eq!(firmware_version().as_slice(), version);
    assert_eq!((caps.state_dim, caps.action_dim), (2, 1));
    assert_eq!(caps.control_period_us, PERIOD_US as u32);
    assert_eq!(caps.watchdog_timeout_us, 200_000);
    assert_eq!(caps.heartbeat_interval_us, 100_000);
    assert_eq!(caps.capabilities, CAP_RESET | CAP_RESET_TO | CAP_LOCKSTEP);
    let expected = [
        (ChannelKind::State, 0, "position", "m", 0.0, 0.0, 0.0),
        (ChannelKind::State, 1, "velocity", "m/s", 0.0, 0.0, 0.0),
        (ChannelKind::Action, 0, "force", "N", -2.0, 2.0, 0.0),
    ];
    for (kind, index, name, unit, min, max, safe) in expected {
        let Some(Frame {
            message: Message::ChannelInfo(info),
            ..
        }) = host.recv(5_000)
        else {
            panic!("ChannelInfo {name}");
        };
        assert_eq!(
            (
                info.kind,
                info.index,
                info.name.as_str(),
                info.unit.as_str()
            ),
            (kind, index, name, unit)
        );
        assert_eq!((info.min, info.max, info.safe), (min, max, safe), "{name}");
    }
    // The Hello's answer ends there: no State until the host commands.
    let mut after_answer = Vec::new();
    while let Some(frame) = host.recv(200) {
        after_answer.push(frame);
    }
    assert!(
        after_answer.is_empty(),
        "nothing after the Hello's answer: {after_answer:?}"
    );
    // The first Command fetches the first State: disarmed, so the plant does not move,
    // but sim time advances one period.
    host.command(1, &[2.0], u64::MAX);
    let (timestamp_us, state) = host.state();
    assert_eq!(timestamp_us, PERIOD_US);
    assert_eq!(state.arm_state, ArmState::Disarmed);
    assert_eq!(state.values.as_slice(), [0.25, -0.5]);
    let report = sim.stop().unwrap();
    assert_eq!((report.frames_received, report.steps), (2, 0));
    assert_eq!(report.sim_time_us, PERIOD_US);
}

#[test]
fn lockstep_answers_each_command_with_one_state_that_follows_the_plant() {
    let dir = tempfile::tempdir().unwrap();
    let start = [0.5, 0.0];
    let sim = spawn(lockstep(&dir, "lockstep"), Integrator::boxed(start)).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    // The first Command fetches the first State: disarmed, the plant holds its start.
    host.command(0, &[2.0], u64::MAX);
    let (timestamp_us, state) = host.state();
    assert_eq!(timestamp_us, PERIOD_US);
    assert_eq!(state.values.as_slice(), as_f32(start));
    host.send(Message::Arm);
    let mut expected = start;
    const N: u32 = 40;
    for k in 1..=N {
        // Out-of-range values are clamped to [-2, 2] by the firmware.
        let force = [1.5f32, -3.0, 0.25, 2.5][k as usize % 4];
        host.command(k, &[force], (k as u64 + 1) * PERIOD_US);
        expected = Integrator::next(expected, f64::from(force.clamp(-2.0, 2.0)));
        let (timestamp_us, state) = host.state();
        // One period behind the first (fetching) command.
        assert_eq!(timestamp_us, (k as u64 + 1) * PERIOD_US, "command {k}");
        assert_eq!(state.arm_state, ArmState::Armed);
        assert_eq!(state.last_command_seq, k);
        assert_eq!(state.values.as_slice(), as_f32(expected), "command {k}");
    }
    let states = host
        .sync()
        .into_iter()
        .filter(|f| matches!(f.message, Message::State(_)))
        .count();
    assert_eq!(states, 0, "exactly one State per command");
    // Not armed: paused, every command still answered, with the same values.
    host.send(Message::Disarm);
    for k in 0..3 {
        host.command(100 + k, &[2.0], u64::MAX);
        let (_, state) = host.state();
        assert_eq!(state.arm_state, ArmState::Disarmed);
        assert_eq!(state.values.as_slice(), as_f32(expected));
    }
    let report = sim.stop().unwrap();
    assert_eq!(report.steps, u64::from(N));
    // N armed commands, 3 disarmed ones and the first, fetching one.
    assert_eq!(report.sim_time_us, (u64::from(N) + 4) * PERIOD_US);
}

#[test]
fn the_pusher_simulator_steps_exactly_as_its_transition_from_its_seeded_start() {
    use handful::plant::{PlantKind, pusher};
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(lockstep(&dir, "pusher"), PlantKind::Pusher.build()).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let mut plant = PlantKind::Pusher.build();
    plant.reset(&mut ChaCha8Rng::seed_from_u64(5));
    let mut expected: [f64; 8] = plant.state().try_into().unwrap();
    host.send(Message::Reset(Reset { seed: 5 }));
    let as_f32s = |s: &[f64; 8]| s.map(|v| v as f32);
    assert_eq!(host.state().1.values.as_slice(), as_f32s(&expected));
    host.send(Message::Arm);
    let period = u64::from(pusher::SPEC.control_period_us);
    for k in 1..=40u32 {
        // Towards the puck and past it, then beyond the 5 N limit (clamped).
        let force = if k < 30 { [4.0f32, 0.5] } else { [-7.0, 6.0] };
        host.command(k, &force, u64::MAX);
        let mut next = [0.0; 8];
        let applied = force.map(|f| f64::from(f.clamp(-5.0, 5.0)));
        pusher::transition(&expected, &applied, &mut next);
        expected = next;
        let (timestamp_us, state) = host.state();
        assert!(timestamp_us >= u64::from(k) * period);
        assert_eq!(state.values.as_slice(), as_f32s(&expected), "command {k}");
    }
    assert!(expected[2] > 0.05, "the puck was pushed: {expected:?}");
    sim.stop().unwrap();
}

#[test]
fn reset_draws_the_same_start_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(lockstep(&dir, "reset"), Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let start_7 = as_f32(Integrator::start(&mut ChaCha8Rng::seed_from_u64(7)));
    host.send(Message::Reset(Reset { seed: 7 }));
    assert_eq!(host.state().1.values.as_slice(), start_7);
    host.send(Message::Arm);
    for k in 1..=5 {
        host.command(k, &[2.0], u64::MAX);
        assert_ne!(host.state().1.values.as_slice(), start_7);
    }
    host.send(Message::Reset(Reset { seed: 7 }));
    let (_, state) = host.state();
    assert_eq!(state.values.as_slice(), start_7);
    assert_eq!(state.arm_state, ArmState::Disarmed, "Reset disarms");
    host.send(Message::Reset(Reset { seed: 8 }));
    let start_8 = as_f32(Integrator::start(&mut ChaCha8Rng::seed_from_u64(8)));
    assert_ne!(start_8, start_7);
    assert_eq!(host.state().1.values.as_slice(), start_8);
    assert_eq!(sim.stop().unwrap().resets, 3);
}

#[test]
fn sensor_latency_and_noise_shape_the_published_state() {
    let dir = tempfile::tempdir().unwrap();
    // 15 ms rounds up to two 10 ms periods.
    let options = SimOptions {
        sensor_latency_us: 15_000,
        ..lockstep(&dir, "latency")
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    host.send(Message::Arm);
    let mut history = vec![[0.0, 0.0]];
    for k in 1..=10 {
        host.command(k, &[1.0], u64::MAX);
        history.push(Integrator::next(history[k as usize - 1], 1.0));
        let seen = host.state().1;
        let delayed = history[(k as usize).saturating_sub(2)];
        assert_eq!(seen.values.as_slice(), as_f32(delayed), "command {k}");
    }
    sim.stop().unwrap();

    let std = 0.01;
    let options = SimOptions {
        sensor_noise_std: std,
        seed: 5,
        ..lockstep(&dir, "noise")
    };
    let sim = spawn(options, Integrator::boxed([0.3, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let mut squares = 0.0;
    const N: usize = 400;
    for k in 0..N {
        host.command(k as u32, &[0.0], u64::MAX); // disarmed: paused at [0.3, 0]
        let values = host.state().1.values;
        squares += (f64::from(values.as_slice()[0]) - 0.3).powi(2)
            + f64::from(values.as_slice()[1]).powi(2);
    }
    let measured_std = (squares / (2 * N) as f64).sqrt();
    assert!(
        (0.8 * std..1.2 * std).contains(&measured_std),
        "noise std {measured_std}"
    );
    sim.stop().unwrap();
}

#[test]
fn a_lockstep_stall_holds_the_answer_and_jumps_sim_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = lockstep(&dir, "stall");
    options.stall = Some(handful::sim::Window {
        at_us: 5 * PERIOD_US,
        for_us: Some(100_000),
    });
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.hello();
    let mut stamps = Vec::new();
    for k in 1..=8 {
        host.command(k, &[0.0], u64::MAX);
        stamps.push(host.state().0);
    }
    let ms: Vec<u64> = stamps.iter().map(|t| t / 1_000).collect();
    assert_eq!(ms, [10, 20, 30, 40, 50, 160, 170, 180]);
    assert_eq!(sim.stop().unwrap().stalls, 1);
}

/// Counters that must hold whatever the test did.
fn assert_sane(report: &SimReport) {
    assert_eq!(report.encode_errors, 0);
    assert_eq!(report.frames_lost_outbox, 0);
}

mod faults;
mod realtime;
mod reset_to;
mod wire;
