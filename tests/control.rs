//! The control loop through the whole path: loop → link → pty → simulated firmware and
//! plant, and back. Closed-loop returns, faults and the safe command.

mod faults;
// Continual runs: phases switch task, reward and objective on one armed robot.
mod phases;
// Safety as a property: no controller output leaves the host outside the limits.
mod properties;
pub(crate) mod rig;

use self::rig::{Rig, calibration};
use handful::control::EpisodeEnd;
use handful::expert;
use handful::plant::PlantKind;
use handful::task::Task;

#[test]
fn expert_swings_up_and_balances_the_cartpole_over_the_pty() {
    let calib = calibration("cartpole-sim.toml");
    let rig = Rig::cartpole_expert(&calib);
    let mut returns = Vec::new();
    for seed in 0..3 {
        let summary = rig.episode(200, seed);
        assert_eq!(summary.end, EpisodeEnd::Completed, "{summary:?}");
        assert_eq!(summary.steps, 200);
        returns.push(summary.episode_return);
    }
    eprintln!("cart-pole expert returns over the pty (lockstep): {returns:.1?}");
    for r in &returns {
        assert!(*r > 160.0, "return {r} (all: {returns:?})");
    }
    let stats = rig.link.stats();
    assert_eq!(stats.crc_errors, 0);
    assert_eq!(stats.dropped_frames, 0);
    let report = rig.handle.stop().expect("loop report");
    assert_eq!(report.faults.total(), 0, "{:?}", report.faults);
    assert_eq!(report.episodes, 3);
}

#[test]
fn expert_swings_up_the_pendulum_over_the_pty() {
    let calib = calibration("pendulum-sim.toml");
    let rig = Rig::start(
        &calib,
        PlantKind::Pendulum,
        true,
        |_| {},
        expert::expert_for(Task::PendulumSwingup),
    );
    for seed in 0..3 {
        let summary = rig.episode(200, seed);
        assert_eq!(summary.end, EpisodeEnd::Completed, "{summary:?}");
        assert!(summary.episode_return > -400.0, "{summary:?}");
    }
}

#[test]
fn lockstep_episodes_are_deterministic_for_a_seed() {
    let calib = calibration("cartpole-sim.toml");
    let run = || {
        let rig = Rig::cartpole_expert(&calib);
        rig.episode(50, 7).episode_return
    };
    assert_eq!(run(), run());
}

#[test]
fn mpc_with_the_true_dynamics_swings_up_the_cartpole_over_the_pty() {
    use handful::run::{ControllerKind, build_controller};
    let calib = calibration("cartpole-sim.toml");
    // The shipped real-time planner; a deterministic model needs one particle.
    let mut planner = handful::mpc::PlannerConfig::for_task(Task::CartpoleSwingup);
    planner.particles = 1;
    let clock = handful::clock::Clock::simulated();
    let controller = build_controller(
        ControllerKind::MpcTrue,
        &calib,
        None,
        &planner,
        &clock,
        None,
    )
    .unwrap();
    let rig = Rig::start(&calib, PlantKind::Cartpole, true, |_| {}, controller);
    let summary = rig.episode(200, 21);
    eprintln!(
        "MPC (true dynamics) return over the pty: {:.1}",
        summary.episode_return
    );
    assert_eq!(summary.end, EpisodeEnd::Completed, "{summary:?}");
    assert!(summary.episode_return > 170.0, "{summary:?}");
}

/// The layering: the control loop, the planner, the model and everything under them
/// reach the viewer only through seams they define (`control::TelemetrySink`,
/// `mpc::PlanObserver`, `telemetry::LearningSink`); none of their files names `viz`.
#[test]
fn modules_below_the_viewer_never_name_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let below = [
        "calib.rs",
        "clock.rs",
        "control",
        "expert.rs",
        "link",
        "model",
        "mpc",
        "plant",
        "sysid/experience.rs",
        "sysid/mod.rs",
        "sysid/retrainer.rs",
        "task.rs",
        "telemetry.rs",
        "thread.rs",
        "train",
    ];
    let mut files = Vec::new();
    let mut pending: Vec<_> = below.iter().map(|p| src.join(p)).collect();
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        } else {
            assert!(
                path.exists(),
                "{} is gone: update this list",
                path.display()
            );
        }
    }
    assert!(files.len() > 30, "only {} files found", files.len());
    let naming: Vec<_> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("viz"))
        .collect();
    assert!(naming.is_empty(), "these files name the viewer: {naming:?}");
}
