//! Continual runs: phases that switch the task, the controller's objective and the
//! reward at a tick, on one armed robot, with no reset, no disarm and no re-arm.

use std::time::Duration;

use handful::clock::Clock;
use handful::control::{
    AtEnd, EpisodeEnd, EpisodeStart, EpisodeSummary, Mode, Phase, PhaseKind, Request, TickRecord,
};
use handful::mpc::{Cost, RewardCost};
use handful::plant::PlantKind;
use handful::run::{ControllerKind, build_controller, default_planner};
use handful::task::{cartpole_at_rest, cartpole_rest_reward, cartpole_reward};

use super::rig::{Rig, calibration};

/// Every record until the next episode summary, then that summary.
fn until_summary(rig: &Rig, records: &mut Vec<TickRecord>) -> EpisodeSummary {
    let waiter = Clock::real();
    let give_up = waiter.now_us() + 120_000_000;
    loop {
        while let Ok(r) = rig.handle.records.try_recv() {
            records.push(r);
        }
        if let Ok(s) = rig.handle.episodes.recv_timeout(Duration::from_millis(20)) {
            // The tick that ended it is published after the summary.
            while let Ok(r) = rig.handle.records.recv_timeout(Duration::from_millis(500)) {
                let done = r.tick >= s.last_tick;
                records.push(r);
                if done {
                    break;
                }
            }
            return s;
        }
        assert!(waiter.now_us() < give_up, "no episode summary");
    }
}

/// The phase-`index` records that scored a step, in order.
fn steps_of(records: &[TickRecord], episode: u32) -> Vec<&TickRecord> {
    records
        .iter()
        .filter(|r| r.episode.is_some_and(|e| e.episode == episode))
        .collect()
}

#[test]
fn the_cartpole_swings_up_then_a_second_phase_brings_it_to_rest_with_no_reset_and_no_disarm() {
    let calib = calibration("cartpole-sim.toml");
    let planner = default_planner(calib.task, true);
    let controller = build_controller(
        ControllerKind::MpcTrue,
        &calib,
        None,
        &planner,
        &Clock::simulated(),
        None,
    )
    .expect("true-dynamics MPC");
    let mut rig = Rig::start(&calib, PlantKind::Cartpole, true, |_| {}, controller);

    // Phase 1: swing up and balance; hold the robot armed at the end.
    let forward = Phase::of_task(calib.task, Some(150)).then_hold();
    rig.handle
        .requests
        .send(Request::StartEpisode(EpisodeStart::arm(
            Mode::Autonomous,
            forward,
            Some(4),
        )))
        .map_err(|_| "loop stopped")
        .unwrap();
    let mut records = Vec::new();
    let first = until_summary(&rig, &mut records);
    assert_eq!(first.end, EpisodeEnd::Completed, "{first:?}");
    assert_eq!((first.phase, first.steps), (PhaseKind::Forward, 150));
    let swung: Vec<f32> = steps_of(&records, first.episode)
        .iter()
        .rev()
        .take(25)
        .map(|r| r.episode.unwrap().reward)
        .collect();
    assert!(
        swung.iter().all(|&r| r > 0.8),
        "the pole is not balanced at the end of phase 1: {swung:?}"
    );

    // The hold lasts as long as the driver takes: here many idle ticks, on a loop clock
    // that moves on while the plant waits.
    std::thread::sleep(Duration::from_millis(300));

    // Phase 2, at the next tick: another task (rest: pole hanging still, cart at the
    // centre) and the same planner, model and buffers planning for another cost.
    let backward = Phase {
        kind: PhaseKind::Backward,
        reward: cartpole_rest_reward,
        success: Some(cartpole_at_rest),
        score_at_least: None,
        steps: Some(500),
        at_end: AtEnd::Disarm,
    };
    let cost: Box<dyn Cost> = Box::new(RewardCost(cartpole_rest_reward));
    rig.handle
        .requests
        .send(Request::StartEpisode(
            EpisodeStart::continue_with(Mode::Autonomous, backward)
                .with_objective(handful::mpc::objective(cost, &[])),
        ))
        .map_err(|_| "loop stopped")
        .unwrap();
    let second = until_summary(&rig, &mut records);
    eprintln!(
        "phase 1: return {:.1} over {} steps; phase 2 at rest after {} steps (return {:.1})",
        first.episode_return, first.steps, second.steps, second.episode_return
    );
    assert_eq!(second.phase, PhaseKind::Backward, "{second:?}");
    assert_eq!(second.end, EpisodeEnd::Succeeded, "not at rest: {second:?}");
    assert!(second.steps < 500);

    // The old objective (the swing-up cost) came back to be dropped off the loop.
    let old = rig
        .handle
        .retired_objectives
        .recv_timeout(Duration::from_secs(1))
        .expect("the replaced cost is retired");
    assert!(old.downcast::<Box<dyn Cost>>().is_ok());

    // Each phase's steps were scored by its own reward, from its own first step.
    for (episode, reward) in [
        (first.episode, cartpole_reward as fn(&[f32], &[f32]) -> f32),
        (second.episode, cartpole_rest_reward),
    ] {
        let steps = steps_of(&records, episode);
        assert_eq!(steps[0].episode.unwrap().step, 0);
        let by_tick = |tick: u64| records.iter().find(|r| r.tick == tick);
        for r in &steps {
            let previous = by_tick(r.tick - 1).unwrap();
            let expected = reward(r.state(), previous.action());
            assert_eq!(r.episode.unwrap().reward, expected, "tick {}", r.tick);
            assert_eq!(
                r.phase,
                [PhaseKind::Forward, PhaseKind::Backward][(episode - first.episode) as usize]
            );
        }
    }
    let last = steps_of(&records, second.episode)
        .last()
        .unwrap()
        .state()
        .to_vec();
    assert!(cartpole_at_rest(&last), "{last:?}");

    // One armed stretch: from the first step of phase 1 to the last of phase 2 the
    // firmware reported itself armed on every sample, and the robot was reset once.
    let from = steps_of(&records, first.episode)[0].tick;
    let to = steps_of(&records, second.episode).last().unwrap().tick;
    let stretch: Vec<&TickRecord> = records
        .iter()
        .filter(|r| (from..=to).contains(&r.tick))
        .collect();
    assert_eq!(
        stretch.len() as u64,
        to - from + 1,
        "a tick record is missing"
    );
    assert!(stretch.iter().all(|r| r.armed && r.fault.is_none()));
    let report = rig.sim.take().unwrap().stop().expect("simulator report");
    assert_eq!(report.resets, 1, "{report:?}");
}

#[test]
fn continuing_a_robot_that_is_not_driving_is_refused_as_not_armed() {
    let calib = calibration("cartpole-sim.toml");
    let rig = Rig::cartpole_expert(&calib);
    rig.handle
        .requests
        .send(Request::StartEpisode(EpisodeStart::continue_with(
            Mode::Autonomous,
            Phase::of_task(calib.task, Some(10)),
        )))
        .map_err(|_| "loop stopped")
        .unwrap();
    let summary = rig.wait_episode(Duration::from_secs(10));
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(handful::control::HostFault::NotArmed)
    );
    assert_eq!(summary.steps, 0);
}

#[test]
fn an_objective_the_controller_does_not_take_ends_the_phase_on_a_fault_and_comes_back() {
    let calib = calibration("cartpole-sim.toml");
    let rig = Rig::cartpole_expert(&calib);
    // The expert optimises nothing: it refuses any objective.
    let cost: Box<dyn Cost> = Box::new(RewardCost(cartpole_rest_reward));
    rig.handle
        .requests
        .send(Request::StartEpisode(
            EpisodeStart::arm(
                Mode::Autonomous,
                Phase::of_task(calib.task, Some(10)),
                Some(1),
            )
            .with_objective(handful::mpc::objective(cost, &[])),
        ))
        .map_err(|_| "loop stopped")
        .unwrap();
    let summary = rig.wait_episode(Duration::from_secs(10));
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(handful::control::HostFault::Controller)
    );
    let back = rig
        .handle
        .retired_objectives
        .recv_timeout(Duration::from_secs(1))
        .expect("the refused objective is handed back");
    assert!(back.downcast::<Box<dyn Cost>>().is_ok());
}
