//! Learning data that means what it says: transitions paired with the command the
//! firmware applied (by seq, across one-period steps only), per-member bootstraps of
//! both DAgger pools, validation on whole held-out blocks, warm starts that keep the
//! model, and a gate that compares like with like and never warm-starts from a reject.

use std::path::Path;
use std::time::Duration;

use handful::control::Request;
use handful::dataset::{DatasetReader, Frame};
use handful::plant::cartpole;
use handful::sysid::{
    Experience, ExperienceConfig, GATE_TRIM, GateScore, Kind, PairingCounts, Retrainer,
    RetrainerConfig, Schedule, Stepping, SysidEvent, SysidRequest, Transition, VALIDATION_BLOCK,
    trainer_config_for, transitions_from_frames,
};
use handful::task::Task;
use handful::train::{BatchSource, Mixture, Trainer, TrainerConfig, Transitions};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::cli::handful;
use crate::control::rig::calibration;

const PERIOD_US: i64 = 40_000;

/// A frame at tick `t` that sent command `sent` (-1: none) and whose sample reports
/// `applied` in force; its action encodes the seq it sent, its state the tick.
fn frame(t: i64, firmware_us: i64, sent: i64, applied: i64) -> Frame {
    Frame {
        state: vec![t as f32, 0.0, 0.0, 0.0],
        action: vec![sent as f32],
        reward: 0.0,
        done: false,
        host_time_us: firmware_us + 300,
        firmware_time_us: firmware_us,
        is_expert: false,
        command_seq: sent,
        applied_command_seq: applied,
        phase: 0,
        reset_score: f32::NAN,
    }
}

/// `(state tick, action seq, next state tick)` of each transition.
fn pairs(transitions: &[Transition]) -> Vec<(i64, i64, i64)> {
    transitions
        .iter()
        .map(|t| {
            (
                t.state[0] as i64,
                t.action[0] as i64,
                t.next_state[0] as i64,
            )
        })
        .collect()
}

#[test]
fn real_time_steps_are_paired_with_the_command_each_state_reports_in_force() {
    // Tick t sends seq 100 + t. The firmware applies a command from its next tick, so
    // the state at t reports the one sent at t − 1; at tick 0 it still reports a
    // command from before the episode (seq 7, never sent here): unknown, dropped. The
    // command sent at tick 3 is lost on the wire: the state at 5 still reports 102.
    // Tick 6's sample never arrived: the host saw tick 5's sample again at its tick 6
    // (same firmware time), then tick 7's: no transition spans the hole; the chain
    // resumes at 7 → 8.
    let at = |k: i64| 1_000 + k * PERIOD_US + (k % 3) * 150; // firmware tick jitter
    // frame(host tick, firmware time, seq sent, seq in force); the state is the tick of
    // the sample the host saw.
    let mut frames = vec![
        frame(0, at(0), 100, 7),
        frame(1, at(1), 101, 100),
        frame(2, at(2), 102, 101),
        frame(3, at(3), 103, 102),
        frame(4, at(4), 104, 102),
        frame(5, at(5), 105, 104),
        frame(6, at(5), 106, 104),
        frame(7, at(7), 107, 106),
        frame(8, at(8), 108, 107),
    ];
    frames[6].state[0] = 5.0; // tick 5's sample seen again
    let (transitions, counts) = transitions_from_frames(&frames, Stepping::RealTime, 40_000);
    assert_eq!(
        pairs(&transitions),
        vec![
            (1, 100, 2),
            (2, 101, 3),
            (3, 102, 4),
            (4, 102, 5),
            // 5 → 5 (the repeat) is 0 periods, 5 → 7 two: both gaps, no transition.
            (7, 106, 8),
        ]
    );
    assert_eq!(
        counts,
        PairingCounts {
            transitions: 5,
            paired_by_timing: 0,
            gaps: 2,
            unpaired: 1,
            non_finite: 0,
        }
    );
}

#[test]
fn lockstep_steps_are_paired_with_the_command_the_next_state_reports() {
    // In lockstep the command sent at tick t drives the step and the answering state
    // reports it. A refused command (tick 2's, say past its deadline) leaves the
    // previous one applied: the state at 3 reports 101.
    let frames: Vec<Frame> = [(0, 100, -1), (1, 101, 100), (2, 102, 101), (3, 103, 101)]
        .iter()
        .map(|&(t, sent, applied)| frame(t, t * PERIOD_US, sent, applied))
        .collect();
    let (transitions, counts) = transitions_from_frames(&frames, Stepping::Lockstep, 40_000);
    assert_eq!(
        pairs(&transitions),
        vec![(0, 100, 1), (1, 101, 2), (2, 101, 3)]
    );
    assert_eq!(counts.gaps + counts.unpaired, 0);
}

#[test]
fn recordings_without_command_seqs_are_paired_by_timing_across_one_period_steps_only() {
    // Another tool's dataset: no seqs (-1). Real time assumes the command of the tick
    // before; a two-period step is still a gap, never a transition.
    let frames: Vec<Frame> = [0, 1, 2, 4, 5]
        .iter()
        .map(|&k| frame(k, k * PERIOD_US, -1, -1))
        .map(|mut f| {
            f.action = vec![f.state[0] * 10.0];
            f
        })
        .collect();
    let (transitions, counts) = transitions_from_frames(&frames, Stepping::RealTime, 40_000);
    assert_eq!(pairs(&transitions), vec![(1, 0, 2), (4, 20, 5)]);
    assert_eq!(
        (counts.paired_by_timing, counts.gaps, counts.unpaired),
        (2, 1, 1)
    );
}

/// The run's datasets re-paired exactly as the session pairs them; every transition
/// checked against the cart-pole's own one-period step. Returns the pairing counts, the
/// steps recorded (frames less one per episode) and the episodes.
fn check_run_against_the_plant(run: &Path, stepping: Stepping) -> (PairingCounts, usize, usize) {
    let mut total = PairingCounts::default();
    let (mut checked, mut steps, mut episodes) = (0, 0, 0);
    for kind in ["expert", "learner"] {
        let reader = DatasetReader::open(&run.join(kind)).unwrap();
        for episode in reader.episodes() {
            let frames: Vec<Frame> = reader
                .episode_frames(episode.episode_index)
                .unwrap()
                .map(|f| f.unwrap().frame)
                .collect();
            let (transitions, counts) = transitions_from_frames(&frames, stepping, 40_000);
            total += counts;
            steps += frames.len().saturating_sub(1);
            episodes += 1;
            for t in &transitions {
                let state: Vec<f64> = t.state.iter().map(|&v| f64::from(v)).collect();
                let action: Vec<f64> = t.action.iter().map(|&v| f64::from(v)).collect();
                let mut next = [0.0; 4];
                cartpole::transition(&state, &action, &mut next);
                for (j, (&want, &got)) in next.iter().zip(&t.next_state).enumerate() {
                    assert!(
                        (want - f64::from(got)).abs() < 2e-3,
                        "{kind} episode {}: channel {j} of a learned transition is {got}, \
                         the plant's one-period step under its action gives {want} \
                         (state {:?}, action {:?})",
                        episode.episode_index,
                        t.state,
                        t.action
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, total.transitions);
    // Every recorded step is accounted for: kept, or dropped for a stated reason.
    assert_eq!(
        total.transitions + total.gaps + total.unpaired + total.non_finite,
        steps,
        "{total:?}"
    );
    (total, steps, episodes)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn real_time_learning_with_dropped_frames_pairs_every_transition_with_the_applied_command() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let status = handful()
        .args([
            "run",
            "--expert-episodes",
            "1",
            "--trials",
            "1",
            "--steps",
            "120",
            "--no-viz",
            "--seed",
            "2",
            "--sim-arg=--drop-prob=0.05",
            "--trainer",
            crate::learn::QUICK_TRAINER,
            "--out",
        ])
        .arg(&run)
        .status()
        .unwrap();
    assert!(status.success());
    let (counts, steps, _) = check_run_against_the_plant(&run, Stepping::RealTime);
    // 5 % of the states were lost: chains ended there instead of yielding two-period
    // transitions, and the summary says how many; most steps are still learned from.
    assert!(counts.gaps > 0, "{counts:?}");
    assert!(
        counts.transitions * 10 >= steps * 6,
        "{counts:?} of {steps} steps"
    );
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(
        summary["pairing"]["gaps"].as_u64(),
        Some(counts.gaps as u64)
    );
    assert_eq!(
        summary["pairing"]["transitions"].as_u64(),
        Some(counts.transitions as u64)
    );
}

#[test]
fn lockstep_learning_pairs_every_transition_with_the_command_that_drove_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let status = handful()
        .args([
            "run",
            "--lockstep",
            "--expert-episodes",
            "1",
            "--trials",
            "1",
            "--steps",
            "80",
            "--no-viz",
            "--trainer",
            crate::learn::QUICK_TRAINER,
            "--out",
        ])
        .arg(&run)
        .status()
        .unwrap();
    assert!(status.success());
    let (counts, steps, episodes) = check_run_against_the_plant(&run, Stepping::Lockstep);
    // Lockstep loses nothing: no gaps, and at most each episode's first step lacks a
    // known command.
    assert_eq!(counts.gaps, 0, "{counts:?}");
    assert!(counts.unpaired <= episodes, "{counts:?}");
    assert!(steps >= 2 * 79, "{steps} steps recorded");
}

#[test]
fn after_the_first_learner_trial_every_trial_plans_with_a_model_that_saw_learner_data() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let status = handful()
        .args(["run", "--lockstep", "--trials", "3", "--no-viz", "--out"])
        .arg(&run)
        .status()
        .unwrap();
    assert!(status.success());
    let summary = read_json(&run.join("summary.json"));
    let models = summary["models"].as_array().unwrap();
    let learner_rows = |version: u64| {
        models
            .iter()
            .find(|m| m["version"].as_u64() == Some(version))
            .map(|m| m["counts"]["learner_train"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("model v{version} is not in the summary"))
    };
    let trials = summary["trials"].as_array().unwrap();
    let mpc: Vec<&Value> = trials.iter().filter(|t| t["policy"] == "mpc").collect();
    assert_eq!(mpc.len(), 3);
    for trial in &mpc[1..] {
        let version = trial["model_version"].as_u64().unwrap();
        assert!(
            learner_rows(version) > 0,
            "trial {} planned with v{version}, which never saw learner data: {trials:?}",
            trial["trial"]
        );
    }
}

/// Pendulum-like transitions with inputs spread by `scale` (different statistics).
fn spread_transitions(n: usize, scale: f32, seed: u64) -> Transitions {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = Array2::zeros((n, 2));
    let mut a = Array2::zeros((n, 1));
    let mut next = Array2::zeros((n, 2));
    for i in 0..n {
        let (th, w, u): (f32, f32, f32) = (
            rng.random_range(-1.0..1.0) * scale + 0.3 * scale,
            rng.random_range(-2.0..2.0) * scale,
            rng.random_range(-2.0..2.0),
        );
        s[[i, 0]] = th;
        s[[i, 1]] = w;
        a[[i, 0]] = u;
        next[[i, 0]] = th + 0.05 * w;
        next[[i, 1]] = w + 0.05 * (u - 9.8 * th.sin());
    }
    Transitions::new(s, a, next).unwrap()
}

#[test]
fn a_warm_start_on_data_with_other_statistics_starts_from_the_same_function() {
    let config = TrainerConfig {
        hidden_sizes: vec![32, 32],
        weight_decays: vec![1e-4],
        max_epochs: 15,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(config, 2, 1, 3).unwrap();
    trainer.fit(&spread_transitions(600, 1.0, 1)).unwrap();
    let probe = spread_transitions(64, 1.5, 2);
    let view = |m: &Array2<f32>| {
        let (n, d) = m.dim();
        m.view()
            .insert_axis(ndarray::Axis(0))
            .broadcast((5, n, d))
            .unwrap()
            .to_owned()
    };
    let (states, actions): (Array3<f32>, Array3<f32>) = (view(&probe.states), view(&probe.actions));
    let (before, _) = trainer.predict(states.view(), actions.view()).unwrap();
    // New data three times as spread: the input statistics change a lot. A fit of zero
    // epochs re-standardises and keeps the weights it starts from.
    trainer.set_schedule(1e-3, 0).unwrap();
    trainer.fit(&spread_transitions(600, 3.0, 4)).unwrap();
    assert_ne!(trainer.input_statistics().1[0], 0.0);
    let (after, _) = trainer.predict(states.view(), actions.view()).unwrap();
    let worst = (&after - &before)
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    let scale = before.iter().fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(
        worst <= 1e-4 * scale.max(1.0),
        "the warm start moved the prediction by {worst} (outputs up to {scale})"
    );
}

#[test]
fn every_member_draws_its_own_bootstrap_of_each_pool_half_and_half_per_batch() {
    let rows: Vec<usize> = (0..300).collect(); // 0..100 expert, 100..300 learner
    let mut mixture = Mixture::new(100, 0.5);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    mixture.prepare(&rows, 5, &mut rng);
    let mut resamples = Vec::new();
    for member in 0..5 {
        let (first, second) = mixture.resamples(member).unwrap();
        assert_eq!((first.len(), second.len()), (100, 200));
        assert!(first.iter().all(|&r| r < 100) && second.iter().all(|&r| r >= 100));
        let mut distinct: Vec<usize> = first.iter().chain(second).copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        // A bootstrap leaves out about 1/e of the rows.
        assert!(
            distinct.len() < 240,
            "member {member} saw {} rows",
            distinct.len()
        );
        resamples.push(distinct);
    }
    assert!(
        resamples.windows(2).all(|w| w[0] != w[1]),
        "members share one bootstrap"
    );
    for (member, distinct) in resamples.iter().enumerate() {
        let mut batch = vec![usize::MAX; 32];
        for _ in 0..20 {
            mixture.sample(member, &mut rng, &mut batch);
            assert_eq!(batch.iter().filter(|&&r| r < 100).count(), 16);
            assert!(batch.iter().all(|r| distinct.binary_search(r).is_ok()));
        }
    }
}

/// Transitions whose state carries their index in the episode.
fn numbered(n: usize) -> Vec<Transition> {
    (0..n)
        .map(|i| Transition {
            state: vec![i as f32, 0.0, 0.0, 0.0],
            action: vec![0.0],
            next_state: vec![i as f32 + 1.0, 0.0, 0.0, 0.0],
        })
        .collect()
}

#[test]
fn validation_holds_out_whole_blocks_of_each_episode() {
    let mut experience = Experience::new(ExperienceConfig::default(), 5);
    for _ in 0..6 {
        experience.add(Kind::Learner, numbered(200));
    }
    let counts = experience.counts();
    // 10 % of each 200-step episode's 10 blocks: one block of 20.
    assert_eq!(counts.learner_validation, 6 * VALIDATION_BLOCK);
    let validation = experience.validation_set().unwrap();
    let steps: Vec<usize> = validation
        .states
        .column(0)
        .iter()
        .map(|&v| v as usize)
        .collect();
    for block in steps.chunks(VALIDATION_BLOCK) {
        assert_eq!(block[0] % VALIDATION_BLOCK, 0, "{block:?}");
        assert!(block.windows(2).all(|w| w[1] == w[0] + 1), "{block:?}");
    }
    // Blocks are drawn, not always the same one.
    let firsts: Vec<usize> = steps.chunks(VALIDATION_BLOCK).map(|b| b[0]).collect();
    assert!(firsts.iter().any(|&f| f != firsts[0]), "{firsts:?}");
}

#[test]
fn the_gate_decides_on_what_most_held_out_rows_say_not_on_a_few_outliers() {
    // The model in use scores NLL 0 on every row.
    let current = vec![0.0; 400];
    // Better on 388 rows, catastrophically overconfident on 12 (3 %, the rail-stop
    // impacts of a run without demonstrations): its mean is far worse, and a mean
    // gate rejected it. The trimmed paired comparison publishes it.
    let mut outliers = vec![-0.5; 400];
    for row in outliers.iter_mut().step_by(33).take(12) {
        *row = 4_000.0;
    }
    let mean = outliers.iter().sum::<f64>() / 400.0;
    assert!(mean > 0.0);
    let gate = GateScore::compare(&outliers, &current);
    assert!(gate.accepts(), "{gate:?}");
    assert_eq!((gate.candidate_better_rows, gate.rows), (388, 400));
    assert!((gate.trimmed_difference + 0.5).abs() < 1e-9, "{gate:?}");

    // The other way round: far better on a few rows, a little worse on most. Its mean
    // is better; it is rejected.
    let mut lucky = vec![0.1; 400];
    for row in lucky.iter_mut().step_by(40) {
        *row = -100.0;
    }
    assert!(lucky.iter().sum::<f64>() < 0.0);
    assert!(!GateScore::compare(&lucky, &current).accepts());

    // Equal is good enough; a little worse everywhere is not; a non-finite row counts
    // as the worst, and enough of them reject.
    assert!(GateScore::compare(&current, &current).accepts());
    assert!(!GateScore::compare(&vec![0.01; 400], &current).accepts());
    let mut nan = vec![-0.5; 400];
    nan[..40].fill(f64::NAN);
    assert!(!GateScore::compare(&nan, &current).accepts());
    let mut one_nan = vec![-0.5; 400];
    one_nan[7] = f64::NAN;
    assert!(GateScore::compare(&one_nan, &current).accepts());
    // A single row: no trimming.
    assert!(!GateScore::compare(&[1.0], &[0.0]).accepts());
    assert_eq!(GATE_TRIM, 0.05);
}

#[test]
fn a_rejected_candidate_leaves_the_model_in_use_and_is_not_the_next_warm_start() {
    let calib = calibration("cartpole-sim.toml");
    let dir = tempfile::tempdir().unwrap();
    let (loop_tx, loop_rx) = crossbeam::channel::bounded::<Request>(16);
    let config = RetrainerConfig {
        trainer: TrainerConfig {
            max_epochs: 30,
            ..trainer_config_for(Task::CartpoleSwingup)
        },
        experience: ExperienceConfig::default(),
        expert_fraction: 0.5,
        planner: handful::mpc::PlannerConfig::for_task(Task::CartpoleSwingup),
        seed: 1,
        models_dir: dir.path().join("models"),
        // Warm starts: the next candidate continues from the model in use — and must
        // not continue from a rejected one.
        warm_start: true,
        first_version: 0,
        learning: handful::telemetry::LearningTelemetry::none(),
        plans: None,
    };
    let retrainer =
        Retrainer::spawn(config, &calib, loop_tx, handful::clock::Clock::simulated()).unwrap();
    let wait = || {
        retrainer
            .events
            .recv_timeout(Duration::from_secs(120))
            .unwrap()
    };
    let swaps = || {
        loop_rx
            .try_iter()
            .filter(|r| matches!(r, Request::SetController(_)))
            .count()
    };
    for seed in 0..3 {
        let send = retrainer.requests.send(SysidRequest::Add {
            kind: Kind::Expert,
            transitions: crate::sysid::cartpole_transitions(300, seed),
        });
        send.unwrap();
    }
    retrainer.requests.send(SysidRequest::Retrain).unwrap();
    let SysidEvent::Published(v1) = wait() else {
        panic!("the first model was not published")
    };
    assert_eq!(swaps(), 1);

    // One epoch from a fresh initialisation cannot match a trained model: rejected.
    retrainer
        .requests
        .send(SysidRequest::Add {
            kind: Kind::Learner,
            transitions: crate::sysid::cartpole_transitions(300, 10),
        })
        .unwrap();
    let schedule = Schedule {
        learning_rate: 1e-3,
        max_epochs: 1,
        fresh: true,
    };
    retrainer
        .requests
        .send(SysidRequest::RetrainWith(schedule))
        .unwrap();
    match wait() {
        SysidEvent::Rejected {
            candidate_nll,
            current_nll,
            gate,
            version_in_use,
            ..
        } => {
            assert!(candidate_nll > current_nll);
            assert!(!gate.accepts() && gate.trimmed_difference > 0.0, "{gate:?}");
            assert_eq!(version_in_use, v1.version);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(swaps(), 0, "a rejected candidate reached the control loop");
    let models: Vec<String> = std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".onnx"))
        .collect();
    assert_eq!(models, vec!["v1.onnx".to_string()]);

    // The next candidate warm-starts from v1, not from the reject: before its first
    // step it already scores as v1 did.
    retrainer.requests.send(SysidRequest::Retrain).unwrap();
    let SysidEvent::Published(v2) = wait() else {
        panic!("the next retrain was not published")
    };
    assert_eq!(v2.version, 2);
    let report = read_json(&dir.path().join("models/v2.json"));
    let mean = |v: &Value| {
        let v = v.as_array().unwrap();
        v.iter().map(|x| x.as_f64().unwrap()).sum::<f64>() / v.len() as f64
    };
    let v1_report = read_json(&dir.path().join("models/v1.json"));
    let v1_final = mean(&v1_report["train_report"]["final_score"]["mse"]);
    let v1_initial = mean(&v1_report["train_report"]["initial"]["mse"]);
    let v2_initial = mean(&report["train_report"]["initial"]["mse"]);
    assert!(
        v2_initial < 3.0 * v1_final && v2_initial < 0.5 * v1_initial,
        "v2 started at holdout MSE {v2_initial}: v1 ended at {v1_final}, an untrained \
         ensemble scores {v1_initial}"
    );
    assert_eq!(swaps(), 1);
}
