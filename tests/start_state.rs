//! Episodes that start at a given state, end to end through the binary and the real
//! serial path (`handful run` starting the simulator as a child process, in lockstep):
//! `--start-state` (cycled through), `--replay-start` (a recorded episode's first frame),
//! and the refusals (wrong length, a robot without `CAP_RESET_TO`).

use std::path::Path;

use crate::cli::handful;

/// The state each episode of a run's `ticks.csv` began at: the state the tick that sent
/// the episode's first command saw (the row before its step 0).
fn episode_starts(ticks: &Path) -> Vec<(u32, Vec<f32>)> {
    let text = std::fs::read_to_string(ticks).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    // tick,deadline_us,wake_us,compute_us,mode,phase,episode,step,state_age_us,
    // firmware_us,armed,state,command_seq,action,fault
    let mut starts = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if row[7] == "0" {
            let before = &rows[i - 1];
            assert!(
                !before[12].is_empty(),
                "the start tick sent a command: {before:?}"
            );
            let state = before[11].split('/').map(|v| v.parse().unwrap()).collect();
            starts.push((row[6].parse().unwrap(), state));
        }
    }
    starts
}

fn run(out: &Path, extra: &[&str]) -> std::process::Output {
    handful()
        .args([
            "run",
            "--controller",
            "expert",
            "--lockstep",
            "--no-viz",
            "--ticks",
            "--steps",
            "5",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn episodes_begin_at_exactly_the_given_states_cycled_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = run(
        &out,
        &[
            "--episodes",
            "3",
            "--start-state",
            "0.5,3.1,-0.25,0.125",
            "--start-state=-1.2345678,0.1,0,-2",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let first = vec![0.5, 3.1, -0.25, 0.125];
    let second = vec![-1.234_567_8, 0.1, 0.0, -2.0];
    assert_eq!(
        episode_starts(&out.join("ticks.csv")),
        [(0, first.clone()), (1, second.clone()), (2, first.clone())]
    );
    // The run records where each episode started.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let starts = summary["starts"].as_array().unwrap();
    assert_eq!(starts.len(), 3);
    let recorded: Vec<f32> = starts[1]["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(recorded, second);
    assert!(starts[1]["reset_seed"].is_null());
    let csv = std::fs::read_to_string(out.join("episodes.csv")).unwrap();
    assert!(csv.starts_with("episode,steps,return,end,start\n"), "{csv}");
    assert!(csv.contains(",0.5/3.1/-0.25/0.125\n"), "{csv}");
}

#[test]
fn replaying_a_recorded_episodes_start_reproduces_its_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("demos");
    let record = handful()
        .args([
            "record",
            "--teleop",
            "expert",
            "--lockstep",
            "--episodes",
            "2",
            "--steps",
            "5",
            "--seed",
            "11",
            "--dataset",
        ])
        .arg(&dataset)
        .output()
        .unwrap();
    assert!(record.status.success(), "{record:?}");
    let reader = handful::dataset::DatasetReader::open(&dataset).unwrap();
    let first = reader
        .episode_frames(1)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .frame;

    let out = dir.path().join("replay");
    let spec = format!("{}:1", dataset.display());
    let output = run(&out, &["--episodes", "1", "--replay-start", &spec]);
    assert!(output.status.success(), "{output:?}");
    let starts = episode_starts(&out.join("ticks.csv"));
    assert_eq!(starts, [(0, first.state.clone())]);
    // The same expert from the same state: the same first command as the recording.
    let ticks = std::fs::read_to_string(out.join("ticks.csv")).unwrap();
    let start_row = ticks
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .collect::<Vec<_>>();
    let i = start_row.iter().position(|r| r[7] == "0").unwrap();
    let action: Vec<f32> = start_row[i - 1][13]
        .split('/')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(action, first.action);
}

#[test]
fn a_start_state_of_the_wrong_length_is_refused_before_the_robot_moves() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &dir.path().join("run"),
        &["--episodes", "1", "--start-state", "0.1,0.2"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has 2 values") && stderr.contains("4 state channels"),
        "{stderr}"
    );
}
