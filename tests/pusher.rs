//! Planar pushing end to end: the physics (friction stops the puck exactly and it stays,
//! walls hold and raise `FAULT_LIMIT`, contact pushes, energy and momentum through an
//! undamped contact, transition = step), the calibration's `[plant]` table, the scripted
//! expert from 20 seeded starts, and lockstep runs through the binary (expert, mpc-true,
//! a short learning run).

use std::path::Path;

use handful::expert::{expert_for, rollout};
use handful::plant::pusher::{self, PUCK_START_M, PUSHER_START_M, Pusher, PusherParams};
use handful::plant::{Plant, PlantKind, PlantParams};
use handful::task::{self, PUSH_START_M, Task};
use handful_protocol::FAULT_LIMIT;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::cli::handful;

fn state8(plant: &dyn Plant) -> [f64; 8] {
    plant.state().try_into().expect("8 states")
}

fn at(pusher: [f64; 2], puck: [f64; 2], pusher_v: [f64; 2], puck_v: [f64; 2]) -> Pusher {
    let mut plant = Pusher::new();
    plant.set_state(&[
        pusher[0],
        pusher[1],
        puck[0],
        puck[1],
        pusher_v[0],
        pusher_v[1],
        puck_v[0],
        puck_v[1],
    ]);
    plant
}

#[test]
fn a_sliding_puck_stops_exactly_and_stays_where_it_is_left() {
    let mut plant = at([-0.3, -0.3], [0.0, 0.0], [0.0, 0.0], [0.6, 0.2]);
    let p = PusherParams::DEFAULT;
    // Sliding at 0.63 m/s decelerating at μg: stops within v²/(2μg) ≈ 7 cm, in ≈ 0.22 s.
    let speed: f64 = (0.6f64 * 0.6 + 0.2 * 0.2).sqrt();
    let decel = p.friction_coefficient * p.gravity_m_per_s2;
    for _ in 0..5 {
        plant.step(&[0.0, 0.0]);
    }
    let stopped = state8(&plant);
    assert_eq!(&stopped[6..], &[0.0, 0.0], "the puck is at rest");
    let travelled = stopped[2].hypot(stopped[3]);
    let expected = speed * speed / (2.0 * decel);
    assert!(
        (travelled - expected).abs() < 0.005,
        "slid {travelled} m, Coulomb friction says {expected} m"
    );
    // Straight along its velocity.
    assert!((stopped[3] / stopped[2] - 0.2 / 0.6).abs() < 1e-9);
    // Left alone it never creeps.
    for _ in 0..200 {
        plant.step(&[0.0, 0.0]);
    }
    let later = state8(&plant);
    assert_eq!(&later[2..4], &stopped[2..4], "the puck crept");
    assert_eq!(&later[6..], &[0.0, 0.0]);
    assert_eq!(plant.fault_flags(), 0);
}

#[test]
fn contact_pushes_the_puck_along_the_line_of_centres_without_passing_through_it() {
    let p = PusherParams::DEFAULT;
    let mut plant = at([-0.1, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]);
    let contact = p.pusher_radius_m + p.puck_radius_m;
    let mut deepest: f64 = 0.0;
    for _ in 0..20 {
        plant.step(&[3.0, 0.0]);
        let s = state8(&plant);
        deepest = deepest.max(contact - (s[2] - s[0]).hypot(s[3] - s[1]));
    }
    let s = state8(&plant);
    assert!(s[2] > 0.2, "2 s of a 3 N push moves the puck: {s:?}");
    assert_eq!(s[3], 0.0, "head-on: no sideways motion");
    assert!(s[0] < s[2], "the pusher stays behind the puck");
    // The impact at about 0.4 m/s sinks 5–6 mm into the 1000 N/m spring (v·√(m/k) plus
    // the push), a tenth of the puck's diameter at most; never through it.
    assert!(deepest < 0.01, "penetration {deepest} m");
    // A push weaker than static friction through a resting contact moves nothing.
    let mut resting = at([-contact, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]);
    let weak = 0.5 * p.friction_coefficient * p.puck_mass_kg * p.gravity_m_per_s2;
    for _ in 0..20 {
        resting.step(&[weak, 0.0]);
    }
    assert_eq!(&state8(&resting)[2..4], &[0.0, 0.0]);
}

#[test]
fn walls_hold_both_bodies_and_raise_the_limit_fault_until_they_leave() {
    let p = PusherParams::DEFAULT;
    let mut plant = at([0.4, 0.0], [-0.2, 0.0], [0.0, 0.0], [0.0, 0.0]);
    for _ in 0..30 {
        plant.step(&[5.0, 5.0]);
    }
    let s = state8(&plant);
    // 5 N on a 2000 N/m wall: 2.5 mm in at most, corner held on both axes.
    assert!(s[0] + p.pusher_radius_m - p.half_width_m < 0.003, "{s:?}");
    assert!(s[1] + p.pusher_radius_m - p.half_depth_m < 0.003, "{s:?}");
    assert!(s[0] + p.pusher_radius_m > p.half_width_m);
    assert_eq!(plant.fault_flags(), FAULT_LIMIT);
    for _ in 0..10 {
        plant.step(&[-5.0, -5.0]);
    }
    assert_eq!(plant.fault_flags(), 0, "away from the wall: no fault");
    // A puck thrown at a wall comes back off it, never through it.
    let mut thrown = at([0.0, -0.3], [0.3, 0.0], [0.0, 0.0], [1.0, 0.0]);
    // Unhindered it would slide v²/(2μg) = 17 cm, to 0.47 m: 2 cm past the wall.
    for _ in 0..20 {
        thrown.step(&[0.0, 0.0]);
        let s = state8(&thrown);
        assert!(s[2] + p.puck_radius_m - p.half_width_m < 0.01, "{s:?}");
    }
    let s = state8(&thrown);
    assert!(s[2] < p.half_width_m - p.puck_radius_m, "{s:?}");
    assert_eq!(thrown.fault_flags(), 0, "off the wall again");
    assert_eq!(&s[6..], &[0.0, 0.0], "and stopped on the table");
}

#[test]
fn an_undamped_frictionless_contact_conserves_momentum_and_loses_no_energy() {
    let p = PusherParams {
        pusher_damping_n_s_per_m: 0.0,
        friction_coefficient: 0.0,
        contact_damping_n_s_per_m: 0.0,
        ..PusherParams::DEFAULT
    };
    let mut plant = Pusher::with_params(p);
    plant.set_state(&[-0.2, 0.01, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]);
    let before = state8(&plant);
    for _ in 0..6 {
        plant.step(&[0.0, 0.0]);
    }
    let after = state8(&plant);
    let contact = p.pusher_radius_m + p.puck_radius_m;
    assert!(
        (after[2] - after[0]).hypot(after[3] - after[1]) > contact,
        "separated"
    );
    for axis in 0..2 {
        let momentum = |s: &[f64; 8]| p.pusher_mass_kg * s[4 + axis] + p.puck_mass_kg * s[6 + axis];
        assert!(
            (momentum(&after) - momentum(&before)).abs() < 1e-9,
            "momentum along {axis}"
        );
    }
    let (e0, e1) = (
        p.kinetic_energy_joules(&before),
        p.kinetic_energy_joules(&after),
    );
    assert!((e1 - e0).abs() < 0.01 * e0, "energy {e0} J → {e1} J");
    assert!(
        after[6] > 0.3,
        "the puck took the pusher's momentum: {after:?}"
    );
}

#[test]
fn transition_matches_plant_step_and_the_start_distribution_is_near_the_fixed_starts() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut plant = PlantKind::Pusher.build();
    plant.reset(&mut rng);
    let params = PlantParams::default_for(PlantKind::Pusher);
    for t in 0..200 {
        let before = state8(plant.as_ref());
        let u = [rng.random_range(-6.0..6.0), rng.random_range(-6.0..6.0)];
        let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
        handful::plant::transition(PlantKind::Pusher, &before, &u, &mut a);
        params.transition(&before, &u, &mut b);
        plant.step(&u);
        assert_eq!(a, state8(plant.as_ref()), "step {t}");
        assert_eq!(a, b, "step {t}");
    }
    let mut short = [0.0; 8];
    pusher::transition(&[0.0; 3], &[0.0, 0.0], &mut short);
    assert!(short.iter().all(|v| v.is_nan()));
    // Non-finite forces are the safe 0 N.
    let start = [-0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let (mut nan, mut zero) = ([0.0; 8], [0.0; 8]);
    pusher::transition(&start, &[f64::NAN, f64::INFINITY], &mut nan);
    pusher::transition(&start, &[0.0, 0.0], &mut zero);
    assert_eq!(nan, zero);
    // The start distribution: each position within a few σ of its start, at rest.
    let starts = [PUSHER_START_M, PUCK_START_M].concat();
    assert_eq!(starts, PUSH_START_M.map(f64::from));
    for seed in 0..50 {
        plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
        let s = state8(plant.as_ref());
        for (v, start) in s.iter().zip(&starts) {
            assert!(
                (v - start).abs() < 5.0 * pusher::START_NOISE_M,
                "seed {seed}: {s:?}"
            );
        }
        assert_eq!(&s[4..], &[0.0; 4]);
        assert_eq!(plant.fault_flags(), 0);
    }
}

#[test]
fn the_shipped_calibration_is_the_default_table_and_keys_of_other_plants_are_refused() {
    let calib = handful::calib::Calibration::load(Path::new("calib/pusher-sim.toml")).unwrap();
    assert_eq!(calib.task, Task::PushToGoal);
    assert_eq!(calib.plant, PlantParams::Pusher(PusherParams::DEFAULT));
    assert_eq!(
        calib.control_period_us,
        u64::from(pusher::SPEC.control_period_us)
    );
    let text = std::fs::read_to_string("calib/pusher-sim.toml").unwrap();
    let lighter = text.replace("puck_mass_kg = 0.2", "puck_mass_kg = 0.1");
    let calib = handful::calib::Calibration::from_toml(Path::new("light.toml"), &lighter).unwrap();
    let PlantParams::Pusher(p) = calib.plant else {
        panic!("a pusher");
    };
    assert_eq!(p.puck_mass_kg, 0.1);
    let foreign = text.replace("[plant]\n", "[plant]\nrail_limit_m = 2.0\n");
    let err = handful::calib::Calibration::from_toml(Path::new("bad.toml"), &foreign)
        .unwrap_err()
        .to_string();
    assert!(err.contains("plant.rail_limit_m"), "{err}");
    let negative = text.replace("friction_coefficient = 0.3", "friction_coefficient = -1");
    let err = handful::calib::Calibration::from_toml(Path::new("bad.toml"), &negative)
        .unwrap_err()
        .to_string();
    assert!(err.contains("plant.friction_coefficient"), "{err}");
}

#[test]
fn the_expert_pushes_the_puck_into_the_goal_from_at_least_19_of_20_starts() {
    let task = Task::PushToGoal;
    let mut successes = 0;
    let mut steps_taken = Vec::new();
    for seed in 0..20 {
        let mut plant = PlantKind::Pusher.build();
        plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut expert = expert_for(task);
        let success = (0..task.episode_steps()).find(|_| {
            rollout(plant.as_mut(), expert.as_mut(), task, 1);
            let s: Vec<f32> = plant.state().iter().map(|&v| v as f32).collect();
            task::push_succeeded(&s)
        });
        if let Some(step) = success {
            successes += 1;
            steps_taken.push(step + 1);
        } else {
            eprintln!("seed {seed}: no success, ends at {:?}", plant.state());
        }
    }
    eprintln!("pusher expert: {successes} of 20 succeed, steps {steps_taken:?}");
    assert!(successes >= 19, "{successes} of 20");
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `handful run` on the simulated pusher in lockstep with `args`; its summary.
fn run(out: &Path, args: &[&str]) -> Value {
    let output = handful()
        .args([
            "run",
            "--calib",
            "calib/pusher-sim.toml",
            "--lockstep",
            "--no-viz",
        ])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "handful run {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_json(&out.join("summary.json"))
}

#[test]
fn the_expert_and_the_true_dynamics_planner_push_the_puck_in_through_the_serial_path() {
    let dir = tempfile::tempdir().unwrap();
    for controller in ["expert", "mpc-true"] {
        let summary = run(
            &dir.path().join(controller),
            &["--controller", controller, "--episodes", "2", "--seed", "1"],
        );
        let episodes = summary["episodes"].as_array().unwrap();
        assert_eq!(episodes.len(), 2);
        for episode in episodes {
            assert_eq!(episode["end"], "succeeded", "{controller}: {episode}");
            assert!(
                episode["steps"].as_u64().unwrap() < 100,
                "{controller}: {episode}"
            );
        }
        assert_eq!(summary["link"]["crc_errors"], 0);
    }
}

#[test]
fn a_short_learning_run_on_the_pusher_trains_and_plans() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("learn");
    let summary = run(
        &out,
        &[
            "--trials",
            "1",
            "--expert-episodes",
            "2",
            "--steps",
            "40",
            "--trainer",
            crate::learn::QUICK_TRAINER,
        ],
    );
    let trials = summary["trials"].as_array().unwrap();
    let policies: Vec<&str> = trials
        .iter()
        .map(|t| t["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["expert", "expert", "mpc"], "{summary}");
    assert!(trials[2]["model_version"].as_u64().is_some(), "{summary}");
    assert!(trials[2]["steps"].as_u64().unwrap() > 0);
    assert!(out.join("best.onnx").is_file());
}

#[test]
fn practice_knows_the_pushers_reset_problem() {
    use handful::medal::{PracticeConfig, ResetTask};
    let reset = ResetTask::of(Task::PushToGoal).expect("the pusher has a reset task");
    let start = [
        PUSH_START_M[0],
        PUSH_START_M[1],
        PUSH_START_M[2],
        PUSH_START_M[3],
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    assert!((reset.at_rest)(&start));
    assert_eq!((reset.rest_reward)(&start, &[0.0, 0.0]), 0.0);
    let pushed = [0.2, 0.1, 0.25, 0.15, 0.0, 0.0, 0.0, 0.0];
    assert!(!(reset.at_rest)(&pushed));
    assert!((reset.rest_reward)(&pushed, &[0.0, 0.0]) < -0.5);
    assert!(
        reset
            .forward_success
            .is_some_and(|success| success(&pushed))
    );
    PracticeConfig::default()
        .validate(Task::PushToGoal)
        .unwrap();
}
