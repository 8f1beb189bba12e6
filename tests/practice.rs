//! Reset-free practice (`handful practice`, MEDAL) through the binary and the simulator
//! process in lockstep: phases switch on the armed robot with no reset, the classifier
//! is trained from the backward phases' states, and the backward controller brings the
//! cart-pole back to rest at the centre.

use serde_json::Value;

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_short_reset_free_run_switches_phases_trains_the_classifier_and_brings_the_cartpole_back_to_rest()
 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("practice");
    let output = crate::cli::handful()
        .args([
            "practice",
            "--lockstep",
            "--no-viz",
            "--expert-episodes",
            "3",
        ])
        .args(["--practice-steps", "1400", "--seed", "1"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    let summary = read_json(&out.join("summary.json"));
    let practice = &summary["practice"];
    let count = |key: &str| practice[key].as_u64().unwrap_or_else(|| panic!("{key}"));
    assert!(count("steps") >= 1400, "{practice}");
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
    // The backward controller brought the cart-pole back to rest at the centre, on its
    // own, at least once (and said so by C(s), ending its phase).
    assert!(count("backward_at_rest") >= 1, "{practice}");
    assert!(count("backward_reached") >= 1, "{practice}");
    // The learner dataset has both kinds of phase, frame by frame.
    let learner = handful::dataset::DatasetReader::open(&out.join("learner")).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for episode in learner.episodes() {
        for frame in learner.episode_frames(episode.episode_index).unwrap() {
            kinds.insert(frame.unwrap().frame.phase);
        }
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), vec![0, 1]);
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
