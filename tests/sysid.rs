//! DAgger system identification: the two kinds of experience, the background retrainer
//! publishing models that the running loop swaps in between ticks, and a short learning
//! run end to end.

use std::path::Path;
use std::time::Duration;

use handful::control::{EpisodeEnd, EpisodeStart, Mode, Phase, Request};
use handful::plant::cartpole;
use handful::sysid::{
    Experience, ExperienceConfig, Kind, Retrainer, RetrainerConfig, SysidEvent, SysidRequest,
    Transition, trainer_config_for,
};
use handful::task::Task;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::control::rig::{Rig, calibration};

/// Cart-pole transitions under random actions from random states (the true physics).
pub(crate) fn cartpole_transitions(n: usize, seed: u64) -> Vec<Transition> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let state: Vec<f64> = [1.0, 3.5, 2.0, 6.0]
                .iter()
                .map(|s| rng.random_range(-s..*s))
                .collect();
            let action = [rng.random_range(-3.0..3.0)];
            let mut next = [0.0; 4];
            cartpole::transition(&state, &action, &mut next);
            let f = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
            Transition {
                state: f(&state),
                action: f(&action),
                next_state: f(&next),
            }
        })
        .collect()
}

#[test]
fn experience_keeps_both_kinds_apart_and_validates_on_both() {
    let mut experience = Experience::new(ExperienceConfig::default(), 1);
    experience.add(Kind::Expert, cartpole_transitions(400, 2));
    experience.add(Kind::Learner, cartpole_transitions(600, 3));
    let counts = experience.counts();
    assert_eq!(counts.expert_train + counts.expert_validation, 400);
    assert_eq!(counts.learner_train + counts.learner_validation, 600);
    // About a tenth of each kind is held out.
    assert!((20..=60).contains(&counts.expert_validation), "{counts:?}");
    assert!((30..=90).contains(&counts.learner_validation), "{counts:?}");
    let (train, expert_rows) = experience.training_set().unwrap();
    assert_eq!(expert_rows, counts.expert_train);
    assert_eq!(train.len(), counts.expert_train + counts.learner_train);
    let validation = experience.validation_set().unwrap();
    assert_eq!(
        validation.len(),
        counts.expert_validation + counts.learner_validation
    );
}

#[test]
fn a_bounded_experience_evicts_the_oldest_only_when_asked() {
    let config = |evict_oldest| ExperienceConfig {
        validation_fraction: 0.0,
        max_rows_per_kind: Some(100),
        evict_oldest,
    };
    let first = cartpole_transitions(100, 4);
    let later = cartpole_transitions(50, 5);
    for evict in [false, true] {
        let mut experience = Experience::new(config(evict), 1);
        experience.add(Kind::Learner, first.clone());
        experience.add(Kind::Learner, later.clone());
        assert_eq!(experience.counts().learner_train, 100);
        assert_eq!(experience.counts().dropped, 50);
        let (train, _) = experience.training_set().unwrap();
        let newest = train.states.row(99).to_vec();
        let expected = if evict { &later[49] } else { &first[99] };
        assert_eq!(newest, expected.state, "evict_oldest = {evict}");
    }
}

#[test]
fn the_retrainer_publishes_models_that_the_running_loop_swaps_in_between_ticks() {
    let calib = calibration("cartpole-sim.toml");
    let rig = Rig::cartpole_expert(&calib);
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = trainer_config_for(Task::CartpoleSwingup);
    trainer.max_epochs = 2; // the first model is deliberately undertrained
    let mut planner = handful::mpc::PlannerConfig::for_task(Task::CartpoleSwingup);
    planner.population = 40;
    planner.elites = 5;
    let config = RetrainerConfig {
        trainer,
        experience: ExperienceConfig::default(),
        expert_fraction: 0.5,
        planner,
        seed: 3,
        models_dir: dir.path().join("models"),
        warm_start: false,
        first_version: 0,
        learning: handful::telemetry::LearningTelemetry::none(),
        plans: None,
    };
    let retrainer = Retrainer::spawn(
        config,
        &calib,
        rig.handle.requests.clone(),
        handful::clock::Clock::simulated(),
    )
    .unwrap();
    let wait = |retrainer: &Retrainer| {
        retrainer
            .events
            .recv_timeout(Duration::from_secs(120))
            .expect("retrainer answers")
    };

    // An episode is running (the expert drives) when the first model is published.
    rig.handle
        .requests
        .send(Request::StartEpisode(EpisodeStart::arm(
            Mode::Autonomous,
            Phase::of_task(calib.task, Some(150)),
            Some(1),
        )))
        .map_err(|_| "loop stopped")
        .unwrap();
    let send = |r| retrainer.requests.send(r).map_err(|_| "stopped").unwrap();
    send(SysidRequest::Add {
        kind: Kind::Expert,
        transitions: cartpole_transitions(1500, 6),
    });
    send(SysidRequest::Retrain);
    let SysidEvent::Published(v1) = wait(&retrainer) else {
        panic!("the first model must be published")
    };
    assert_eq!(v1.version, 1);
    assert!(dir.path().join("models/v1.onnx").is_file());
    assert!(dir.path().join("models/v1.json").is_file());
    // The loop swapped the MPC controller in and handed the expert back, off its thread.
    let retired = rig
        .handle
        .retired
        .recv_timeout(Duration::from_secs(10))
        .expect("the old controller comes back");
    assert_eq!(retired.name(), "cartpole_expert");
    let summary = rig.wait_episode(Duration::from_secs(120));
    assert_eq!(summary.end, EpisodeEnd::Completed, "{summary:?}");

    // More data and more epochs: a better model, published as v2.
    send(SysidRequest::Add {
        kind: Kind::Learner,
        transitions: cartpole_transitions(1500, 7),
    });
    send(SysidRequest::Retrain);
    match wait(&retrainer) {
        SysidEvent::Published(v2) => {
            assert_eq!(v2.version, 2);
            // It trained on both kinds, and beat v1 on the validation rows of both.
            assert!(v2.counts.learner_train > 0 && v2.counts.expert_train > 0);
            assert!(v2.validation_nll.is_finite());
        }
        other => panic!("expected a second model: {other:?}"),
    }
    // The loop swapped v2 in and handed v1's controller back, off its thread. (This
    // replaces a check of zero overruns, which a lockstep loop cannot fail: it runs on
    // the simulated clock and never overruns.)
    let retired = rig
        .handle
        .retired
        .recv_timeout(Duration::from_secs(10))
        .expect("v1's controller comes back");
    assert_eq!(retired.name(), "mpc");
    let report = rig.handle.stop().expect("loop report");
    assert_eq!(report.faults.total(), 0, "{:?}", report.faults);
}

#[test]
fn a_short_learning_run_reaches_the_benchmark_level_by_the_third_trial() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = crate::cli::handful()
        .args([
            "run",
            "--lockstep",
            "--trials",
            "3",
            "--expert-episodes",
            "3",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let best = summary["best_return"].as_f64().unwrap();
    eprintln!(
        "learning curve:\n{}",
        std::fs::read_to_string(out.join("learning_curve.csv")).unwrap()
    );
    // The shipped trainer and planner, seed 0 in lockstep (deterministic): the PETS
    // benchmark's level by the third trial, as benches/learn.py measures over seeds.
    assert!(best >= 170.0, "best return {best} after 3 trials");
    assert!(Path::new(&out.join("best.onnx")).is_file());
    // Every trial's experience is on disk, in the dataset format.
    let learner = handful::dataset::DatasetReader::open(&out.join("learner")).unwrap();
    assert_eq!(learner.episodes().len(), 3);
    let expert = handful::dataset::DatasetReader::open(&out.join("expert")).unwrap();
    assert_eq!(expert.episodes().len(), 3);
    // Every MPC trial names the model that drove it: a published version, on disk, and
    // each later model saw more data than the one before. (Not "zero overruns": a
    // lockstep run cannot overrun; the real-time figure belongs to `bench`.)
    let models = summary["models"].as_array().unwrap();
    let version = |m: &Value| m["version"].as_u64().unwrap();
    for row in summary["trials"].as_array().unwrap() {
        if row["policy"] != "mpc" {
            continue;
        }
        let v = row["model_version"]
            .as_u64()
            .expect("an MPC trial names its model");
        assert!(models.iter().any(|m| version(m) == v), "v{v} not published");
        assert!(
            out.join(format!("models/v{v}.onnx")).is_file(),
            "v{v} not on disk"
        );
    }
    let seen = |m: &Value| {
        [
            "expert_train",
            "expert_validation",
            "learner_train",
            "learner_validation",
        ]
        .iter()
        .map(|k| m["counts"][k].as_u64().unwrap())
        .sum::<u64>()
    };
    for pair in models.windows(2) {
        assert!(version(&pair[1]) > version(&pair[0]));
        assert!(seen(&pair[1]) > seen(&pair[0]), "{pair:?}");
    }
    // The run's visualization, read back by rerun's own tooling.
    #[cfg(feature = "viz")]
    {
        let home = tempfile::tempdir().unwrap();
        let found = crate::viz::entities(home.path(), &out.join("viz.rrd"));
        for path in [
            "/robot/cart",
            "/robot/pole",
            "/state/cart_position",
            "/action/force",
            "/timing/compute_us",
            "/link/crc_errors",
            "/episode/return",
            "/model/version",
            "/robot/plan/mean",
            "/plan/state/pole_angle/mean",
            "/plan/state/pole_angle/band",
        ] {
            assert!(
                found.contains_key(path),
                "{path} missing: {:#?}",
                found.keys()
            );
        }
        assert!(
            found.keys().any(|k| k.starts_with("/train/v1/")),
            "{:#?}",
            found.keys()
        );
    }
}

/// A plant nobody tuned for: the PETS cart-pole with a pole 50 % heavier and 20 %
/// longer (calib/cartpole-heavy-sim.toml), learned by the shipped trainer and planner
/// with no retuning, through the simulator process in lockstep; the simulator really
/// ran those physics, and the run says which it ran.
#[test]
fn a_cartpole_with_a_heavier_longer_pole_is_learned_with_no_retuning() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let calib_path = Path::new("calib/cartpole-heavy-sim.toml");
    let output = crate::cli::handful()
        .args(["run", "--lockstep", "--no-viz", "--trials", "4"])
        .args(["--expert-episodes", "3", "--calib"])
        .arg(calib_path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let summary = read("summary.json");
    eprintln!(
        "learning curve:\n{}",
        std::fs::read_to_string(out.join("learning_curve.csv")).unwrap()
    );
    let calib = handful::calib::Calibration::load(calib_path).unwrap();
    let handful::plant::PlantParams::Cartpole(heavy) = calib.plant else {
        panic!("a cart-pole");
    };
    // Recorded where the run's outputs are read.
    for (file, json) in [
        ("summary.json", &summary),
        ("robot.json", &read("robot.json")),
    ] {
        assert_eq!(json["plant"]["plant"], "cartpole", "{file}");
        assert_eq!(json["plant"]["pole_mass_kg"], heavy.pole_mass_kg, "{file}");
        assert_eq!(json["plant"]["pole_com_m"], heavy.pole_com_m, "{file}");
    }
    // The simulator integrated the heavy pole: every recorded step follows its physics
    // (to the wire's f32), and not the PETS pole's.
    let expert = handful::dataset::DatasetReader::open(&out.join("expert")).unwrap();
    let mut steps = Vec::new();
    for episode in expert.episodes() {
        let frames: Vec<_> = expert
            .episode_frames(episode.episode_index)
            .unwrap()
            .map(|f| f.unwrap().frame)
            .collect();
        steps.extend(
            handful::sysid::transitions_from_frames(
                &frames,
                handful::sysid::Stepping::Lockstep,
                calib.control_period_us,
            )
            .0,
        );
    }
    assert!(steps.len() > 500, "{} steps", steps.len());
    let error = |params: cartpole::CartpoleParams| {
        steps
            .iter()
            .map(|t| {
                let s: Vec<f64> = t.state.iter().map(|v| f64::from(*v)).collect();
                let mut next = [0.0; 4];
                params.transition(&s, &[f64::from(t.action[0])], &mut next);
                next.iter()
                    .zip(&t.next_state)
                    .map(|(p, v)| (p - f64::from(*v)).abs())
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max)
    };
    let (told, pets) = (error(heavy), error(cartpole::CartpoleParams::PETS));
    assert!(told < 1e-3 && pets > 0.1, "heavy {told}, PETS {pets}");
    // Learned with the PETS cart-pole's trainer and planner: the benchmark's level
    // within four trials (benches/README.md has seeds 0–4).
    let best = summary["best_return"].as_f64().unwrap();
    assert!(best >= 160.0, "best return {best} after 4 trials");
}
