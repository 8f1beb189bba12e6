//! The `handful` binary end to end: the run directory it writes, a model built outside
//! the project driving the robot, and its errors.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The `handful` binary, run from the repository with quiet logs (shared by the test
/// modules that drive the binary).
pub(crate) fn handful() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handful"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command.env("RUST_LOG", "warn");
    command
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn run_writes_the_run_directory_with_returns_timing_and_link_counters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let status = handful()
        .args([
            "run",
            "--controller",
            "expert",
            "--lockstep",
            "--episodes",
            "2",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in [
        "config.json",
        "calibration.toml",
        "robot.json",
        "episodes.csv",
        "summary.json",
        "log.txt",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(!out.join("error.txt").exists());
    let summary = read_json(&out.join("summary.json"));
    let episodes = summary["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 2);
    for episode in episodes {
        assert_eq!(episode["end"], "completed");
        assert!(
            episode["episode_return"].as_f64().unwrap() > 160.0,
            "{episode}"
        );
    }
    let calib_text =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"))
            .unwrap();
    assert_eq!(
        summary["calibration_sha256"],
        handful::calib::hex_sha256(&calib_text)
    );
    // (Not "zero overruns": a lockstep loop runs on the simulated clock and cannot overrun.)
    assert_eq!(summary["loop_report"]["episodes"], 2);
    assert!(
        summary["loop_report"]["timing"]["compute"]["p99_us"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(summary["link"]["crc_errors"], 0);
    assert_eq!(
        read_json(&out.join("robot.json"))["robot_id"],
        "cartpole-sim"
    );
    // The simulator removed its link when it stopped.
    assert!(!out.join("robot.tty").exists());
}

#[test]
fn every_run_ends_with_one_account_of_what_the_host_the_firmware_and_the_link_saw() {
    let dir = tempfile::tempdir().unwrap();
    // A clean run says so.
    let clean = handful()
        .args([
            "run",
            "--controller",
            "expert",
            "--lockstep",
            "--episodes",
            "1",
            "--steps",
            "30",
            "--out",
        ])
        .arg(dir.path().join("clean"))
        .output()
        .unwrap();
    assert!(clean.status.success());
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert!(stdout.contains("  faults: none"), "{stdout}");
    let summary = read_json(&dir.path().join("clean/summary.json"));
    assert_eq!(
        summary["faults"]["link"]["frames_lost"], 0,
        "{}",
        summary["faults"]
    );

    // In real time over a lossy, noisy line: the lost frames and the CRC errors the link
    // counted are in the printout and in summary.json, the same numbers in both.
    let out = dir.path().join("lossy");
    let lossy = handful()
        .args([
            "run",
            "--controller",
            "expert",
            "--episodes",
            "1",
            "--steps",
            "50",
            "--sim-arg=--drop-prob=0.03",
            "--sim-arg=--corrupt-prob=0.03",
            "--seed",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&lossy.stdout);
    // On a loaded machine (CI runs tests side by side on 2 cores) a scheduling stall can
    // make the state stale and fault the one episode: then the run exits non-zero and
    // says so, and the account must be just as complete.
    if !lossy.status.success() {
        assert!(stdout.contains("(fault:"), "{stdout}");
    }
    let summary = read_json(&out.join("summary.json"));
    let faults = &summary["faults"];
    let lost = summary["link"]["dropped_frames"].as_u64().unwrap();
    let crc = summary["link"]["crc_errors"].as_u64().unwrap();
    assert!(lost > 0 && crc > 0, "{}", summary["link"]);
    assert_eq!(faults["link"]["frames_lost"], lost);
    assert_eq!(faults["link"]["crc_errors"], crc);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("  link: "))
        .unwrap_or_else(|| panic!("no link line in {stdout}"));
    assert!(line.contains(&format!("{lost} frames lost")), "{line}");
    assert!(line.contains(&format!("{crc} CRC errors")), "{line}");
    assert!(!stdout.contains("faults: none"), "{stdout}");
}

/// How each episode of a fixed-controller run ended, as JSON text.
fn episode_ends(summary: &Value) -> Vec<String> {
    summary["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["end"].to_string())
        .collect()
}

/// `handful run` of the scripted expert in real time, three short episodes, with the
/// cable pulled 1.2 s in and plugged back 1.5 s later; extra arguments after.
fn run_with_a_pulled_cable(out: &Path, extra: &[&str]) -> std::process::Output {
    handful()
        .args([
            "run",
            "--controller",
            "expert",
            "--episodes",
            "3",
            "--steps",
            "50",
            "--sim-arg=--disconnect-at-ms=1200",
            "--sim-arg=--reconnect-after-ms=1500",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_run_recovers_from_a_pulled_cable_and_goes_on_or_stops_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    // With the default policy: the faulted episode is reported, the robot is re-armed once
    // the link is back, and the other two episodes complete.
    let out = dir.path().join("recovers");
    let output = run_with_a_pulled_cable(&out, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let summary = read_json(&out.join("summary.json"));
    let ends = episode_ends(&summary);
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert!(ends[0].contains("link_lost"), "{ends:?}");
    assert_eq!(ends[1..], ["\"completed\"", "\"completed\""], "{ends:?}");
    assert_eq!(summary["recoveries"], 1);
    assert!(summary["stopped"].is_null());
    assert!(summary["faults"]["link"]["reconnects"].as_u64().unwrap() >= 1);
    assert!(summary["faults"]["host"]["link_lost"].as_u64().unwrap() >= 1);
    assert!(
        stdout.contains("recovered from 1 faulted episodes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("host faults (ticks on the safe command): link_lost"),
        "{stdout}"
    );

    // With no recoveries allowed: it stops at the fault, says why, keeps what it did, and
    // exits non-zero.
    let out = dir.path().join("stops");
    let output = run_with_a_pulled_cable(&out, &["--max-recoveries", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the run stopped")
            && stderr.contains("link_lost")
            && stderr.contains("no recoveries left"),
        "{stderr}"
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["episodes"].as_array().unwrap().len(), 1);
    assert!(summary["stopped"].as_str().unwrap().contains("link_lost"));
}

#[test]
fn every_host_fault_prints_under_the_name_summary_json_gives_it() {
    // Every kind the fault counts list.
    for (fault, _) in handful::control::FaultCounts::default().iter() {
        assert_eq!(
            serde_json::to_value(fault).unwrap(),
            fault.name(),
            "{fault:?}"
        );
    }
}

#[test]
fn an_ensemble_built_outside_the_project_drives_the_robot() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `bash models/setup.sh`",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ensemble.onnx");
    let status = Command::new(&python)
        .arg(repo.join("models/make_ensemble.py"))
        .args(["--ensemble-size", "5", "--hidden", "32,32", "--seed", "1"])
        .args([
            "--state-names",
            "cart_position,pole_angle,cart_velocity,pole_angular_velocity",
        ])
        .args([
            "--action-names",
            "force",
            "--control-period-us",
            "40000",
            "--out",
        ])
        .arg(&model)
        .status()
        .unwrap();
    assert!(status.success());
    let planner = dir.path().join("planner.toml");
    std::fs::write(
        &planner,
        "population = 60\nelites = 6\nhorizon = 10\nparticles = 5\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let output = handful()
        .args([
            "run",
            "--lockstep",
            "--controller",
            "mpc",
            "--episodes",
            "1",
            "--steps",
            "30",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--planner")
        .arg(&planner)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["episodes"][0]["end"], "completed", "{summary}");
    assert_eq!(summary["episodes"][0]["steps"], 30);
}

#[test]
fn a_model_for_another_robot_is_refused_with_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let output = handful()
        .args([
            "run",
            "--lockstep",
            "--controller",
            "mpc",
            "--model",
            "models/fixtures/linear.onnx",
            "--out",
        ])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("models/fixtures/linear.onnx"), "{stderr}");
    assert!(stderr.contains("cart_position"), "{stderr}");
    // The run directory says it failed, and why: it does not pass for a run.
    let run = dir.path().join("run");
    let error = std::fs::read_to_string(run.join("error.txt")).unwrap();
    assert!(error.contains("cart_position"), "{error}");
    assert!(!run.join("summary.json").exists());
    // Refused before the robot was touched: no simulator started, no robot described.
    assert!(
        !run.join("robot.json").exists(),
        "the robot was connected first"
    );
    assert!(
        !run.join("sim-calibration.toml").exists(),
        "a simulator was started first"
    );
}

#[test]
fn a_flag_the_chosen_job_ignores_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["run", "--controller", "expert", "--trials", "3"][..],
            "--trials does nothing with --controller expert",
        ),
        (
            &["run", "--episodes", "2"][..],
            "--episodes does nothing for the learning job",
        ),
        (
            &["run", "--controller", "mpc-true", "--model", "m.onnx"][..],
            "--model does nothing with --controller mpc-true",
        ),
        (
            &["practice", "--trials", "2"][..],
            "--trials does nothing for a practice",
        ),
        (
            &["run", "--controller", "expert", "--expert-episodes", "0"][..],
            "--expert-episodes does nothing",
        ),
    ] {
        let output = handful()
            .args(args)
            .arg("--out")
            .arg(dir.path().join("run"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !dir.path().join("run").exists(),
            "{args:?} made a run directory"
        );
    }
}

#[test]
fn runs_started_in_the_same_second_get_names_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let calib = Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml");
    let start = || {
        handful()
            .current_dir(dir.path())
            .args(["run", "--controller", "expert", "--lockstep", "--no-viz"])
            .args(["--episodes", "1", "--steps", "5", "--calib"])
            .arg(&calib)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [start(), start()];
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    for name in &names {
        // expert-YYYYMMDD-HHMMSS, then -2, -3, ... for a second run in the same second.
        let stamp = name
            .strip_prefix("expert-")
            .unwrap_or_else(|| panic!("{name}"));
        let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
        assert!(digits.len() >= 14 && stamp.as_bytes()[8] == b'-', "{name}");
        assert!(
            dir.path()
                .join("runs")
                .join(name)
                .join("summary.json")
                .is_file(),
            "{name}"
        );
    }
}

#[test]
fn a_malformed_calibration_is_an_error_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"),
    )
    .unwrap();
    std::fs::write(
        &path,
        good.replace(
            "heartbeat_interval_ms = 100.0",
            "heartbeat_interval_ms = \"often\"",
        ),
    )
    .unwrap();
    let output = handful().arg("calib").arg(&path).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("heartbeat_interval_ms"),
        "{stderr}"
    );
}

/// Inodes of the sockets `pid` has open.
fn socket_inodes(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect()
}

/// Inodes of every listening TCP or UDP socket on the machine.
fn listening_inodes() -> Vec<String> {
    let mut out = Vec::new();
    for (table, listen_state) in [
        ("/proc/net/tcp", "0A"),
        ("/proc/net/tcp6", "0A"),
        ("/proc/net/udp", "07"),
        ("/proc/net/udp6", "07"),
    ] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && fields[3] == listen_state {
                out.push(fields[9].to_owned());
            }
        }
    }
    out
}

#[test]
fn nothing_listens_on_a_network_port_unless_a_viewer_is_asked_for() {
    // The positive control: this test process listening is seen.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mine = socket_inodes(std::process::id());
    assert!(
        mine.iter().any(|i| listening_inodes().contains(i)),
        "a listening socket was not seen"
    );
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    // The main job's defaults (the visualization saved to a file), in real time so it
    // runs long enough to be looked at.
    let mut child = handful()
        .args([
            "run",
            "--trials",
            "1",
            "--expert-episodes",
            "1",
            "--steps",
            "75",
        ])
        .args(["--trainer", crate::learn::QUICK_TRAINER, "--out"])
        .arg(dir.path().join("run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut looked = 0;
    while child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(250));
        // The process and its children (the simulator).
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let mut pids = vec![pid];
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        let listening = listening_inodes();
        for p in pids {
            let open: Vec<String> = socket_inodes(p)
                .into_iter()
                .filter(|i| listening.contains(i))
                .collect();
            assert!(open.is_empty(), "pid {p} listens on sockets {open:?}");
        }
        looked += 1;
    }
    assert!(child.wait().unwrap().success());
    assert!(looked >= 4, "the run ended before it could be looked at");
}

#[test]
fn a_host_stalled_long_enough_for_the_firmware_to_time_it_out_recovers() {
    // As a 537 ms scheduling stall under load did: the host process stops for 700 ms, the
    // firmware's 500 ms host timeout trips, and the run used to stop there.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stalled");
    let child = handful()
        .args([
            "run",
            "--controller",
            "expert",
            "--episodes",
            "3",
            "--steps",
            "50",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Into the first episode (the robot is up within a few hundred ms).
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary = read_json(&out.join("summary.json"));
    let ends = episode_ends(&summary);
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert_ne!(ends[0], "\"completed\"", "{ends:?}");
    assert_eq!(ends[1..], ["\"completed\"", "\"completed\""], "{ends:?}");
    assert_eq!(summary["recoveries"], 1);
    // The firmware saw the host go silent and said so.
    assert!(
        summary["faults"]["firmware_reports"].as_u64().unwrap() >= 1,
        "{}",
        summary["faults"]
    );
}
