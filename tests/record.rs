//! Recording through the whole path: the scripted expert drives the simulated robot over
//! the pty, every tick lands in a LeRobot v3 dataset, and a `kill -9` of the recording
//! process loses at most the last fraction of a second.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use handful::calib::Calibration;
use handful::dataset::{DatasetReader, validate};
use handful::record::{self, RecordConfig, TeleopKind};
use handful::run::RobotOptions;
use handful::task::Task;

fn calibration() -> Calibration {
    Calibration::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"))
        .unwrap()
}

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_handful"))
}

#[test]
fn expert_episodes_recorded_over_the_pty_read_back_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordConfig {
        robot: RobotOptions {
            port: None,
            lockstep: true,
            seed: 4,
            sim_args: vec![],
            sim_cmd: None,
            dir: dir.path().join("session"),
            realtime: Default::default(),
        },
        teleop: TeleopKind::Expert,
        dataset: dir.path().join("demos"),
        task: "swing up".into(),
        episodes: 3,
        steps: Some(120),
        recovery: Default::default(),
    };
    let calib = calibration();
    let summary = record::record(&config, &calib, exe()).unwrap();
    assert_eq!((summary.episodes_kept, summary.frames), (3, 360));
    assert_eq!(summary.records_dropped, 0);

    assert!(validate(&config.dataset).unwrap().is_valid());
    let reader = DatasetReader::open(&config.dataset).unwrap();
    assert_eq!(reader.episodes().len(), 3);
    assert_eq!(
        reader.info().handful.provenance.calibration_sha256,
        calib.hash
    );
    for episode in reader.episodes() {
        let frames: Vec<_> = reader
            .episode_frames(episode.episode_index)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(frames.len(), 120);
        for (t, pair) in frames.windows(2).enumerate() {
            let (now, next) = (&pair[0], &pair[1]);
            // Each frame's reward is what its command earned in the state that followed:
            // the recorder paired the right tick with the right outcome.
            let reward = Task::CartpoleSwingup.reward(&next.frame.state, &now.frame.action);
            assert!(
                (reward - now.frame.reward).abs() < 1e-6,
                "episode {} frame {t}",
                episode.episode_index
            );
            assert!(!now.frame.done);
            assert!(now.frame.is_expert);
            assert!(now.frame.action[0].abs() <= 3.0);
            assert_eq!(now.frame_index, t as i64);
        }
        assert!(frames.last().unwrap().frame.done);
        // The expert swings up: the last frame is near upright (θ = ±π, unwrapped).
        let last = &frames.last().unwrap().frame.state;
        assert!(last[1].cos() < -0.95, "{last:?}");
    }
}

#[test]
fn kill_9_while_recording_keeps_every_completed_episode_intact() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("demos");
    // Real time: 25 frames a second, so "a second" is 25 frames.
    let mut child = Command::new(exe())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "record",
            "--teleop",
            "expert",
            "--episodes",
            "100",
            "--steps",
            "50",
            "--dataset",
        ])
        .arg(&dataset)
        .env("RUST_LOG", "warn")
        .process_group(0)
        .spawn()
        .unwrap();
    // Two full episodes (2 s each, plus starts), then into the third.
    std::thread::sleep(Duration::from_millis(5_500));
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = child.wait();

    let reader = DatasetReader::open(&dataset).unwrap();
    let complete: Vec<_> = reader
        .episodes()
        .iter()
        .filter(|e| e.length == 50)
        .collect();
    assert!(complete.len() >= 2, "{:?}", reader.episodes());
    let frames = reader.frames().map(Result::unwrap).count() as i64;
    let total: i64 = reader.episodes().iter().map(|e| e.length).sum();
    assert_eq!(frames, total);
    // The episode the kill cut short is staged, not committed: validation says so and
    // changes nothing; `dataset recover` commits it, marked recovered.
    let report = validate(&dataset).unwrap();
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.file.starts_with(dataset.join("staging"))),
        "{:#?}",
        report.problems
    );
    let committed = reader.episodes().len();
    let out = Command::new(exe())
        .args(["dataset", "recover"])
        .arg(&dataset)
        .output()
        .unwrap();
    assert!(out.status.success());
    let reader = DatasetReader::open(&dataset).unwrap();
    assert!(validate(&dataset).unwrap().is_valid());
    let recovered: Vec<_> = reader.episodes()[committed..].iter().collect();
    assert!(recovered.iter().all(|e| e.recovered), "{recovered:?}");
    assert!(reader.episodes()[..committed].iter().all(|e| !e.recovered));
}

/// Records `episodes` lockstep expert episodes of `steps` steps with `calib` into `dataset`.
fn record_into(
    dataset: &Path,
    calib: &Calibration,
    session: &Path,
    episodes: u32,
) -> anyhow::Result<record::RecordSummary> {
    let config = RecordConfig {
        robot: RobotOptions {
            port: None,
            lockstep: true,
            seed: 1,
            sim_args: vec![],
            sim_cmd: None,
            dir: session.to_path_buf(),
            realtime: Default::default(),
        },
        teleop: TeleopKind::Expert,
        dataset: dataset.to_path_buf(),
        task: "swing up".into(),
        episodes,
        steps: Some(20),
        recovery: Default::default(),
    };
    record::record(&config, calib, exe())
}

#[test]
fn appends_are_this_robots_and_each_episode_names_its_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cartpole = calibration();
    let dataset = dir.path().join("demos");
    record_into(&dataset, &cartpole, &dir.path().join("s1"), 1).unwrap();

    // Another robot's episodes cannot be appended: refused before its robot starts.
    let pendulum = Calibration::load(&repo.join("calib/pendulum-sim.toml")).unwrap();
    let error = record_into(&dataset, &pendulum, &dir.path().join("s2"), 1)
        .expect_err("a pendulum appended to a cart-pole dataset");
    let message = format!("{error:#}");
    assert!(
        message.contains("another robot") && message.contains("\"cartpole-sim\""),
        "{message}"
    );
    assert!(!dir.path().join("s2").exists(), "the robot was started");
    assert_eq!(DatasetReader::open(&dataset).unwrap().episodes().len(), 1);

    // The same robot recalibrated: appended, and each episode names its calibration,
    // whose text the dataset keeps.
    let text = format!("{}\n# recalibrated\n", cartpole.text);
    let path = dir.path().join("recalibrated.toml");
    std::fs::write(&path, &text).unwrap();
    let recalibrated = Calibration::load(&path).unwrap();
    assert_ne!(recalibrated.hash, cartpole.hash);
    record_into(&dataset, &recalibrated, &dir.path().join("s3"), 1).unwrap();
    let reader = DatasetReader::open(&dataset).unwrap();
    let hashes: Vec<_> = reader
        .episodes()
        .iter()
        .map(|e| e.calibration_sha256.clone())
        .collect();
    assert_eq!(
        hashes,
        vec![Some(cartpole.hash.clone()), Some(recalibrated.hash.clone())]
    );
    let handful = &reader.info().handful;
    assert_eq!(handful.provenance.calibration_sha256, cartpole.hash);
    assert_eq!(handful.calibrations.get(&recalibrated.hash), Some(&text));
    assert!(validate(&dataset).unwrap().is_valid());

    // A merge keeps both, and whether an episode was recovered.
    let merged = dir.path().join("merged");
    handful::dataset::merge(&[dataset.as_path()], &merged).unwrap();
    let reader = DatasetReader::open(&merged).unwrap();
    let merged_hashes: Vec<_> = reader
        .episodes()
        .iter()
        .map(|e| e.calibration_sha256.clone())
        .collect();
    assert_eq!(merged_hashes, hashes);
    assert_eq!(
        reader.info().handful.calibrations.get(&recalibrated.hash),
        Some(&text)
    );
}
