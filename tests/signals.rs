//! SIGTERM and SIGINT stop a run, not kill it: the episode in progress is disarmed, the
//! summary is written with the reason, the process exits with 128 + the signal (what
//! deploy/handful.service counts as a clean stop), the simulator goes with it; a recording
//! keeps every episode it had kept and stays valid.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use handful::clock::Clock;

use serde_json::Value;

use crate::cli::handful;

/// Waits (up to 60 s) until `ready()`, then sends `signal` to `child` and returns its
/// exit code and stderr.
fn signal_when(
    mut child: Child,
    ready: impl Fn() -> bool,
    signal: nix::sys::signal::Signal,
) -> (Option<i32>, String) {
    let clock = Clock::real();
    let give_up = clock.now_us() + 60_000_000;
    while !ready() {
        assert!(clock.now_us() < give_up, "never ready");
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn episodes_done(csv: &Path) -> usize {
    std::fs::read_to_string(csv).map_or(0, |t| t.lines().count().saturating_sub(1))
}

#[test]
fn sigterm_disarms_the_run_writes_its_summary_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let child = handful()
        .args(["run", "--lockstep", "--controller", "expert", "--no-viz"])
        .args(["--episodes", "100000", "--steps", "200", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let csv = out.join("episodes.csv");
    let (code, stderr) = signal_when(
        child,
        || episodes_done(&csv) >= 2,
        nix::sys::signal::Signal::SIGTERM,
    );
    assert_eq!(code, Some(128 + 15), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["stopped"].as_str().unwrap().contains("SIGTERM"),
        "{summary}"
    );
    let episodes = summary["episodes"].as_array().unwrap();
    assert!(episodes.len() >= 2 && episodes.len() < 100000);
    assert!(
        episodes.iter().all(|e| e["end"] == "completed"),
        "{episodes:?}"
    );
    // The simulator went with the run: its link is gone.
    let link = out.join("robot.tty");
    let clock = Clock::real();
    let give_up = clock.now_us() + 5_000_000;
    while link.exists() && clock.now_us() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!link.exists(), "the simulator outlived the run");
}

#[test]
fn sigint_while_recording_keeps_the_kept_episodes_and_leaves_a_valid_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("demos");
    let child = handful()
        .args([
            "record",
            "--lockstep",
            "--teleop",
            "expert",
            "--episodes",
            "100000",
        ])
        .args(["--steps", "100", "--dataset"])
        .arg(&dataset)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let committed =
        || handful::dataset::DatasetReader::open(&dataset).is_ok_and(|r| r.episodes().len() >= 2);
    let (code, stderr) = signal_when(child, committed, nix::sys::signal::Signal::SIGINT);
    assert_eq!(code, Some(128 + 2), "{stderr}");
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    let reader = handful::dataset::DatasetReader::open(&dataset).unwrap();
    assert!(reader.episodes().len() >= 2);
    assert!(
        reader.pending_recovery().is_clean(),
        "{:?}",
        reader.pending_recovery()
    );
    let status = handful()
        .args(["dataset", "validate"])
        .arg(&dataset)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_signal_during_a_long_retrain_stops_the_learning_job_at_once_with_its_summary() {
    // A fit of at least 10⁶ gradient steps (minutes): the signal must not wait for it.
    let dir = tempfile::tempdir().unwrap();
    let trainer = dir.path().join("slow.toml");
    std::fs::write(&trainer, "min_steps = 1000000\nmax_steps = 0\n").unwrap();
    let out = dir.path().join("run");
    let mut child = handful()
        .args(["run", "--lockstep", "--no-viz", "--expert-episodes", "1"])
        .args(["--trials", "3", "--trainer"])
        .arg(&trainer)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The demonstration is in (its row is written before the first fit starts).
    let csv = out.join("learning_curve.csv");
    let clock = Clock::real();
    let give_up = clock.now_us() + 120_000_000;
    while episodes_done(&csv) < 1 {
        assert!(clock.now_us() < give_up, "the demonstration never finished");
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // Liveness, not speed: the fit alone would take minutes.
    let give_up = clock.now_us() + 30_000_000;
    while child.try_wait().unwrap().is_none() {
        if clock.now_us() > give_up {
            let _ = child.kill();
            panic!("the learning job was still fitting 30 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let (code, stderr) = (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(code, Some(128 + 2), "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["stopped"].as_str().unwrap().contains("SIGINT"),
        "{summary}"
    );
    // No model came of the fit that was stopped, and no MPC trial ran.
    assert!(
        summary["trials"]
            .as_array()
            .is_none_or(|t| t.iter().all(|r| r["policy"] != "mpc")),
        "{summary}"
    );
}
