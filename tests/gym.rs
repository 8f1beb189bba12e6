//! Gymnasium and MuJoCo environments as simulated robots: the Python stand-in firmware of
//! firmware-bridge/gym started by `handful run --sim-cmd` (or a calibration's
//! `[link] sim_cmd`), through the whole serial path, in lockstep. Pendulum-v1 and the
//! PETS cart-pole's MuJoCo XML through the bridge follow the Rust plants step for step;
//! the learning job, unchanged, runs on InvertedPendulum-v5 and its first model keeps the
//! pole up (not yet learned over seeds: benches/README.md); a command that fails, or
//! never makes its link, is refused saying so. The bridge's own tests (the codec against the golden vectors, the
//! firmware's rules) run here too.
//!
//! They need `.venv` with gymnasium and mujoco (`bash models/setup.sh` installs them);
//! without, each prints why and passes without checking.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::handful;

/// The bridge, as a `--sim-cmd` for `env` (run from the repository).
fn bridge(env: &str) -> String {
    format!(".venv/bin/python firmware-bridge/gym/serve.py --env {env}")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `None` when `.venv` has gymnasium and mujoco; otherwise why not (printed by the caller).
fn missing() -> Option<String> {
    let python = repo().join(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import gymnasium, mujoco"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| {
        format!(
            "skipped: {} cannot import gymnasium and mujoco (run `bash models/setup.sh`)",
            python.display()
        )
    })
}

macro_rules! needs_gymnasium {
    () => {
        if let Some(why) = missing() {
            eprintln!("{why}");
            return;
        }
    };
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The states of the episode's steps in `ticks.csv`, in order.
fn episode_states(ticks: &Path) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(ticks).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (episode, state) = (column("episode"), column("state"));
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|cells| !cells[episode].is_empty())
        .map(|cells| {
            cells[state]
                .split('/')
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect()
}

/// The scripted expert for one episode of `steps` from `start`, in lockstep, with every
/// tick written; `sim_cmd` `None` starts `handful sim`.
fn expert_run(out: &Path, calib: &str, start: &str, steps: &str, sim_cmd: Option<&str>) {
    let mut command = handful();
    command.args([
        "run",
        "--controller",
        "expert",
        "--lockstep",
        "--no-viz",
        "--ticks",
        "--episodes",
        "1",
        "--steps",
        steps,
        "--calib",
        calib,
        "--start-state",
        start,
    ]);
    if let Some(cmd) = sim_cmd {
        command.args(["--sim-cmd", cmd]);
    }
    let output = command.arg("--out").arg(out).output().unwrap();
    assert!(
        output.status.success(),
        "{sim_cmd:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_bridges_own_tests_pass_the_codec_against_the_golden_vectors_and_the_firmware_rules() {
    needs_gymnasium!();
    let output = std::process::Command::new(repo().join(".venv/bin/python"))
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "firmware-bridge/gym/tests",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Every test ran: none skipped for want of gymnasium.
    assert!(
        stderr.contains("OK") && !stderr.contains("skipped"),
        "{stderr}"
    );
}

#[test]
fn pendulum_v1_through_the_bridge_follows_the_rust_plant_step_for_step() {
    needs_gymnasium!();
    let dir = tempfile::tempdir().unwrap();
    let (rust, gym) = (dir.path().join("rust"), dir.path().join("gym"));
    let calib = "calib/pendulum-sim.toml";
    expert_run(&rust, calib, "2.5,-0.5", "80", None);
    let cmd = bridge("Pendulum-v1");
    expert_run(&gym, calib, "2.5,-0.5", "80", Some(&cmd));
    let (a, b) = (
        episode_states(&rust.join("ticks.csv")),
        episode_states(&gym.join("ticks.csv")),
    );
    assert_eq!(a.len(), 80);
    assert_eq!(a.len(), b.len());
    // The first row is the state after the episode's first step from (2.5, -0.5).
    assert!((a[0][0] - 2.5).abs() < 0.1, "{:?}", a[0]);
    // The same equations in f64 on both sides, published as f32: the same controller
    // then sees the same states all the way (measured: within 1.2e-7 over 200 steps; a
    // difference in the physics would grow through the swing).
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u - v).abs() <= 1e-4,
                "step {k}: rust {x:?}, gymnasium {y:?}"
            );
        }
    }
    // And the expert swung it up through the bridge (θ = 0 upright).
    let last = b.last().unwrap();
    assert!(
        handful::task::wrap_angle_rad(last[0]).abs() < 0.3,
        "{last:?}"
    );
    let summary = read_json(&gym.join("summary.json"));
    assert_eq!(summary["robot_id"], "pendulum-sim");
    assert_eq!(read_json(&gym.join("config.json"))["sim_cmd"], cmd.as_str());
}

#[test]
fn the_pets_cartpoles_mujoco_xml_through_the_bridge_tracks_the_rust_plant_under_the_expert() {
    needs_gymnasium!();
    let dir = tempfile::tempdir().unwrap();
    let (rust, gym) = (dir.path().join("rust"), dir.path().join("gym"));
    let calib = "calib/cartpole-sim.toml";
    let start = "0.05,0.1,0,0";
    expert_run(&rust, calib, start, "200", None);
    let cmd = bridge("handful/PetsCartpole-v0");
    expert_run(&gym, calib, start, "200", Some(&cmd));
    let (a, b) = (
        episode_states(&rust.join("ticks.csv")),
        episode_states(&gym.join("ticks.csv")),
    );
    assert_eq!((a.len(), b.len()), (200, 200));
    // The Rust plant integrates the same bodies with RK4 as MuJoCo does; measured here: 2.5
    // mm or mrad after one step, at most 1.2 cm through the swing-up and the balance (the
    // balanced cart settles about 1 cm off centre on MuJoCo: the XML's pole runs 1 mm off
    // the vertical, likely the cause).
    let worst = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u - v).abs()))
        .fold(0f32, f32::max);
    assert!(worst < 0.03, "states differ by up to {worst}");
    let ret = |dir: &Path| {
        read_json(&dir.join("summary.json"))["mean_return"]
            .as_f64()
            .unwrap()
    };
    let (r, g) = (ret(&rust), ret(&gym));
    assert!(g > 170.0 && (r - g).abs() < 2.0, "rust {r}, mujoco {g}");
}

#[test]
fn the_learning_job_runs_on_the_mujoco_inverted_pendulum_and_its_first_model_keeps_it_up() {
    needs_gymnasium!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // The calibration's `[link] sim_cmd` starts the bridge: no --sim-cmd needed.
    let output = handful()
        .args([
            "run",
            "--lockstep",
            "--no-viz",
            "--calib",
            "calib/inverted-pendulum-gym.toml",
            "--expert-episodes",
            "0",
            "--trials",
            "1",
            "--steps",
            "100",
            "--seed",
            "1",
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
    let summary = read_json(&out.join("summary.json"));
    eprintln!(
        "learning curve:\n{}",
        std::fs::read_to_string(out.join("learning_curve.csv")).unwrap()
    );
    let trials = summary["trials"].as_array().unwrap();
    let returns: Vec<(String, f64)> = trials
        .iter()
        .map(|t| {
            (
                t["policy"].as_str().unwrap().to_owned(),
                t["episode_return"].as_f64().unwrap(),
            )
        })
        .collect();
    let (first, last) = (&returns[0], returns.last().unwrap());
    assert_eq!(first.0, "random", "{returns:?}");
    assert_eq!(last.0, "mpc", "{returns:?}");
    // Random forces (up to 300 N) knock the pole over within a few steps; one model of
    // those 100 steps (the shipped trainer) keeps it up (reward 1 a step upright, e^-1
    // at Gymnasium's 0.2 rad bound; seed 1 here: 0.06, then 96.5 of 100).
    assert!(first.1 < 20.0, "{returns:?}");
    assert!(last.1 > 80.0, "{returns:?}");
    let config = read_json(&out.join("config.json"));
    assert!(
        config["sim_cmd"]
            .as_str()
            .is_some_and(|c| c.contains("--env InvertedPendulum-v5")),
        "{}",
        config["sim_cmd"]
    );
    let robot = read_json(&out.join("robot.json"));
    assert_eq!(robot["robot_id"], "inverted-pendulum-gym");
    // No host fault (the random trial's cart may reach the rail: a firmware `Limit`).
    let host = summary["faults"]["host"].as_object().unwrap();
    assert!(host.values().all(|n| n == 0), "{}", summary["faults"]);
}

#[test]
fn a_sim_cmd_that_fails_or_makes_no_link_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let refused = |cmd: &str| {
        let output = handful()
            .args([
                "run",
                "--lockstep",
                "--no-viz",
                "--controller",
                "expert",
                "--episodes",
                "1",
                "--sim-cmd",
                cmd,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{cmd} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused("echo no such robot >&2; exit 3");
    assert!(stderr.contains("no such robot"), "{stderr}");
    assert!(
        stderr.contains(
            "`echo no such robot >&2; exit 3` exited (exit status: 3) before creating its link"
        ),
        "{stderr}"
    );
    let stderr = refused(".venv/bin/python firmware-bridge/gym/serve.py --env NoSuchEnv-v0");
    assert!(stderr.contains("exited"), "{stderr}");
    // With a device port there is nothing to start.
    let output = handful()
        .args(["run", "--port", "/dev/null", "--sim-cmd", "true", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--sim-cmd starts a simulated robot"),
        "{stderr}"
    );
}

#[test]
fn a_command_that_never_makes_its_link_is_terminated_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("robot.tty");
    let pid_file = dir.path().join("pid");
    let command = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let clock = handful::clock::Clock::real();
    let started_us = clock.now_us();
    let error = handful::sim::spawn_command_waiting(&command, &[], &link, 500_000).unwrap_err();
    let waited_us = clock.now_us() - started_us;
    assert!(
        error.to_string().contains("did not create its link"),
        "{error}"
    );
    assert!((500_000..5_000_000).contains(&waited_us), "{waited_us} µs");
    // The command (its process group) is gone.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"));
    assert!(!alive, "the command (pid {pid}) outlived the refusal");
}

#[test]
fn a_calibration_names_its_simulator_command_only_with_the_simulated_port() {
    let text = std::fs::read_to_string(repo().join("calib/inverted-pendulum-gym.toml")).unwrap();
    let calib = handful::calib::Calibration::from_toml(Path::new("ip.toml"), &text).unwrap();
    assert!(
        calib
            .sim_cmd
            .as_deref()
            .is_some_and(|c| c.contains("InvertedPendulum-v5"))
    );
    assert_eq!(calib.task, handful::task::Task::InvertedPendulum);
    let device = text.replace("port = \"sim\"", "port = \"/dev/ttyUSB0\"");
    let error = handful::calib::Calibration::from_toml(Path::new("ip.toml"), &device)
        .unwrap_err()
        .to_string();
    assert!(error.contains("link.sim_cmd"), "{error}");
    let empty = text.replace(
        &format!("sim_cmd = {:?}", calib.sim_cmd.unwrap()),
        "sim_cmd = \" \"",
    );
    let error = handful::calib::Calibration::from_toml(Path::new("ip.toml"), &empty)
        .unwrap_err()
        .to_string();
    assert!(error.contains("link.sim_cmd"), "{error}");
}
