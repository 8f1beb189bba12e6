//! Reset-free practice (`handful practice`, MEDAL) through the binary and the simulator
//! process in lockstep: phases switch on the armed robot with no reset, the classifier
//! is trained from the backward phases' states, the backward controller brings the
//! cart-pole back to where the demonstrations start, and the forward controller is
//! evaluated on a separate simulator (EARL).

use serde_json::Value;

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `handful practice` in lockstep after three demonstrations, seed 1, into `out`, with
/// `args`; its stdout (it must succeed).
fn practise(out: &std::path::Path, args: &[&str]) -> String {
    let output = crate::cli::handful()
        .args([
            "practice",
            "--lockstep",
            "--no-viz",
            "--expert-episodes",
            "3",
            "--seed",
            "1",
        ])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_short_reset_free_run_switches_phases_trains_the_classifier_brings_the_cartpole_back_and_evaluates_it_apart()
 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("practice");
    let stdout = practise(
        &out,
        &[
            "--practice-steps",
            "2000",
            "--eval-every",
            "1000",
            "--eval-episodes",
            "2",
        ],
    );
    eprintln!("{stdout}");
    let summary = read_json(&out.join("summary.json"));
    let practice = &summary["practice"];
    let count = |key: &str| practice[key].as_u64().unwrap_or_else(|| panic!("{key}"));
    assert!(count("steps") >= 2000, "{practice}");
    assert!(count("forward_phases") >= 2, "{practice}");
    assert!(count("backward_phases") >= 2, "{practice}");
    assert_eq!(count("interventions"), 0, "{practice}");
    // Every phase after the first went on from where the last one left the robot.
    let phases = practice["phases"].as_array().unwrap();
    assert_eq!(phases[0]["start"], "reset");
    assert!(
        phases[1..].iter().all(|p| p["start"] == "continue"),
        "{phases:?}"
    );
    assert_eq!(count("switches") as usize, phases.len() - 1);
    // The classifier was fitted every 10 backward steps and tells the demonstrations'
    // starts from the states the backward controller visited.
    let backward_steps: u64 = phases
        .iter()
        .filter(|p| p["phase"] == "backward")
        .map(|p| p["steps"].as_u64().unwrap())
        .sum();
    assert!(
        count("classifier_fits") >= backward_steps / 10,
        "{} fits for {backward_steps} backward steps",
        count("classifier_fits")
    );
    let fit = &practice["last_fit"];
    assert!(
        fit["mean_positive"].as_f64().unwrap() > fit["mean_negative"].as_f64().unwrap(),
        "{fit}"
    );
    let csv = std::fs::read_to_string(out.join("classifier.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, count("classifier_fits") + 1);
    // The backward controller brought the cart-pole back to where the demonstrations
    // start, on its own: C(s) held at the threshold and ended its phase, and at least once
    // the cart-pole was at rest at the centre, hanging still.
    assert!(count("backward_reached") >= 1, "{practice}");
    assert!(count("backward_at_rest") >= 1, "{practice}");
    assert_eq!(count("classifier_waits_timed_out"), 0, "{practice}");
    // The learner dataset has both kinds of phase, frame by frame.
    let learner = handful::dataset::DatasetReader::open(&out.join("learner")).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for episode in learner.episodes() {
        for frame in learner.episode_frames(episode.episode_index).unwrap() {
            kinds.insert(frame.unwrap().frame.phase);
        }
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    // C(s) is in the dataset where the classifier scored the state: every backward frame
    // (a probability), no forward one.
    for episode in learner.episodes() {
        for frame in learner.episode_frames(episode.episode_index).unwrap() {
            let frame = frame.unwrap().frame;
            if frame.phase == 1 {
                assert!((0.0..=1.0).contains(&frame.reset_score), "{frame:?}");
            } else {
                assert!(frame.reset_score.is_nan(), "{frame:?}");
            }
        }
    }
    // EARL: deployed evaluations on a separate simulator every 1000 steps (and the last,
    // asked for at the end, waited for), each beside the continuing count at its step;
    // the robot itself was never reset for them (every phase after the first continued).
    let evaluations = practice["evaluations"].as_array().unwrap();
    assert!(evaluations.len() >= 2, "{evaluations:?}");
    let mut last_step = 0;
    for (k, e) in (1..).zip(evaluations) {
        // Due every 1000 steps, asked for at the first phase boundary past that.
        let at = e["at_step"].as_u64().unwrap();
        assert!(at >= k * 1000 && at > last_step, "{evaluations:?}");
        last_step = at;
        assert_eq!(e["episodes"], 2);
        assert!(e["successes"].as_u64().unwrap() <= 2);
        let continuing = phases
            .iter()
            .filter(|p| p["phase"] == "forward" && p["steps_total"].as_u64().unwrap() <= at)
            .filter(|p| p["success"] == true)
            .count() as u64;
        assert_eq!(
            e["continuing_successes"].as_u64().unwrap(),
            continuing,
            "{e}"
        );
        assert!(e["model_version"].as_u64().is_some(), "{e}");
    }
    assert_eq!(
        practice["evaluations_skipped"], 0,
        "lockstep waits for each"
    );
    let csv = std::fs::read_to_string(out.join("evaluation.csv")).unwrap();
    assert_eq!(csv.lines().count(), evaluations.len() + 1);

    // Reproducible: the same seed, run again for a third of the steps (and no
    // evaluations), does exactly what the first run did in its first phases (one backward
    // phase at least): the same phases, returns, scores, classifier versions and fits (the
    // lockstep hand-over is by tick).
    let again = dir.path().join("again");
    practise(&again, &["--practice-steps", "700", "--eval-every", "0"]);
    // Ticks and timings aside (the loop idles between phases for as long as the host
    // takes), every column of every phase of the shorter run.
    let rows = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("practice.csv"))
            .unwrap()
            .lines()
            .map(|line| line.split(',').take(11).collect::<Vec<_>>().join(","))
            .collect()
    };
    let (first, second) = (rows(&out), rows(&again));
    assert!(second.len() >= 4, "{second:?}");
    assert_eq!(first[..second.len()], second[..]);
    let fits = |dir: &std::path::Path| -> Vec<String> {
        let csv = std::fs::read_to_string(dir.join("classifier.csv")).unwrap();
        csv.lines().map(str::to_owned).collect()
    };
    let (first, second) = (fits(&out), fits(&again));
    assert!(second.len() > 1);
    assert_eq!(first[..second.len()], second[..]);
}

#[test]
fn practice_without_demonstrations_or_on_a_task_it_cannot_reset_is_refused_before_the_robot_moves()
{
    let dir = tempfile::tempdir().unwrap();
    let output = crate::cli::handful()
        .args([
            "practice",
            "--lockstep",
            "--no-viz",
            "--expert-episodes",
            "0",
        ])
        .arg("--out")
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("practice needs demonstrations"), "{stderr}");
    let output = crate::cli::handful()
        .args(["practice", "--lockstep", "--no-viz"])
        .args(["--calib", "calib/pendulum-sim.toml", "--out"])
        .arg(dir.path().join("pendulum"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no reset problem"), "{stderr}");
    assert!(!dir.path().join("pendulum").join("expert").exists());
}

#[test]
fn oracle_practice_resets_before_every_forward_phase_and_forward_only_never_does() {
    let dir = tempfile::tempdir().unwrap();
    // What is tested is where phases start, not what is learned: short fits.
    let trainer = dir.path().join("quick.toml");
    std::fs::write(&trainer, "min_steps = 50\nmax_steps = 100\n").unwrap();
    for (reset, starts) in [("oracle", "reset"), ("none", "continue")] {
        let out = dir.path().join(reset);
        let output = crate::cli::handful()
            .args([
                "practice",
                "--lockstep",
                "--no-viz",
                "--expert-episodes",
                "1",
            ])
            .args([
                "--reset",
                reset,
                "--practice-steps",
                "400",
                "--eval-every",
                "0",
            ])
            .arg("--trainer")
            .arg(&trainer)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let practice = read_json(&out.join("summary.json"))["practice"].clone();
        let phases = practice["phases"].as_array().unwrap();
        assert_eq!(phases.len(), 2, "{practice}");
        assert!(phases.iter().all(|p| p["phase"] == "forward"), "{phases:?}");
        assert_eq!(phases[1]["start"], starts, "{phases:?}");
        let resets = u64::from(reset == "oracle") * (phases.len() as u64 - 1);
        assert_eq!(
            practice["oracle_resets"].as_u64().unwrap(),
            resets,
            "{practice}"
        );
        assert_eq!(practice["interventions"], 0);
        assert!(practice["evaluations"].as_array().unwrap().is_empty());
    }
}
