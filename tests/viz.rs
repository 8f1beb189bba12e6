//! The viz module: a synthetic session saved to an `.rrd` and read back with rerun's own
//! CLI (`.venv/bin/rerun rrd verify` / `rrd print`), `handful view` on a tiny dataset, the
//! drop-and-count policy of the queues, and the producers' value types.
//!
//! Needs the venv from `bash models/setup.sh` (it installs `rerun-sdk`, whose `rerun` CLI
//! reads the files back); without it these tests fail, never skip. The CLI runs with its
//! XDG directories in the test's temp dir and analytics disabled.

// A live session to an .rrd, to a running receiver, and a pendulum.
mod session;
// `handful view` on a tiny dataset (--save and --stdout).
mod replay;
// The queues' drop policy, the flags, and the producers' value types.
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use handful::calib::Calibration;
use handful::control::{EpisodeEnd, EpisodeStep, EpisodeSummary, HostFault, Mode, TickRecord};
use handful::dataset::{DatasetSpec, DatasetWriter, Frame};
use handful::link::{Health, LinkStats};
use handful::viz::{
    InlineText, PlanShapeError, PlanSnapshot, TextLevel, TrainingPoint, Viz, VizArgs, VizEvent,
    VizOptions, VizSender, VizSink,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn calibration() -> Calibration {
    Calibration::load(&repo().join("calib/cartpole-sim.toml")).expect("calibration")
}

/// Runs the rerun CLI with `args`, its state confined to `home`; returns stdout.
fn rerun_cli(home: &Path, args: &[&str]) -> String {
    let exe = repo().join(".venv/bin/rerun");
    assert!(
        exe.exists(),
        "{} is missing: run `bash models/setup.sh` once",
        exe.display()
    );
    let run = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .env("XDG_DATA_HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .env("XDG_CACHE_HOME", home)
            .env("HOME", home)
            .output()
            .expect("running rerun")
    };
    let _ = run(&["analytics", "disable"]);
    let out = run(args);
    assert!(
        out.status.success(),
        "rerun {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The entities of `rrd` (as `rerun rrd print` lists its chunks: `Chunk(…) with N rows
/// (…) - /entity/path - data columns: [Archetype:component, …]`), each with the
/// archetypes seen on it.
pub(crate) fn entities(home: &Path, rrd: &Path) -> BTreeMap<String, String> {
    let rrd = rrd.to_str().expect("utf-8 path");
    rerun_cli(home, &["rrd", "verify", rrd]);
    let printed = rerun_cli(home, &["rrd", "print", rrd]);
    let found = parse_chunks(&printed);
    assert!(!found.is_empty(), "no chunks in:\n{printed}");
    found
}

/// Entity path → data columns, from `rerun rrd print` output.
fn parse_chunks(printed: &str) -> BTreeMap<String, String> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for line in printed.lines().filter(|l| l.starts_with("Chunk(")) {
        let mut parts = line.split(" - ");
        let path = parts.find(|p| p.starts_with('/'));
        let columns = parts.next().unwrap_or("");
        if let Some(path) = path {
            found.entry(path.to_owned()).or_default().push_str(columns);
        }
    }
    found
}

/// The timelines (index columns) of `rrd`.
fn timelines(home: &Path, rrd: &Path) -> BTreeSet<String> {
    let printed = rerun_cli(home, &["rrd", "print", "-vv", rrd.to_str().expect("utf-8")]);
    printed
        .split("index_name: ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Verifies `rrd` with rerun and asserts each `(entity, archetype)` of `expected` is in it.
fn check_rrd(home: &Path, rrd: &Path, expected: &[(&str, &str)]) {
    let found = entities(home, rrd);
    let missing: Vec<_> = expected
        .iter()
        .filter(|(path, archetype)| {
            found
                .get(*path)
                .is_none_or(|columns| !columns.contains(&format!("{archetype}:")))
        })
        .collect();
    assert!(missing.is_empty(), "missing {missing:?}; found {found:#?}");
}

/// A dataset of `episodes` teleop episodes of `frames` frames at `root`, made of
/// [`tick`] records; episode `e` earns 0.25·e a frame.
fn tiny_dataset(root: &Path, calib: &Calibration, episodes: u32, frames: u32) {
    let spec = DatasetSpec::from_calibration(calib, serde_json::json!({}), None);
    let mut writer = DatasetWriter::create(root, spec).expect("create");
    for episode in 0..episodes {
        writer.begin_episode("swing up").expect("begin");
        for i in 0..frames {
            let r = tick(u64::from(i), Mode::Teleop, None);
            writer
                .push(&Frame {
                    state: r.state()[..4].to_vec(),
                    action: r.action().to_vec(),
                    reward: 0.25 * episode as f32,
                    done: i + 1 == frames,
                    host_time_us: i64::from(i) * 40_000,
                    firmware_time_us: i64::from(i) * 40_000 + 7,
                    is_expert: true,
                    command_seq: i64::from(i) + 1,
                    applied_command_seq: i64::from(i),
                    phase: 0,
                    reset_score: f32::NAN,
                })
                .expect("push");
        }
        writer.end_episode(true).expect("end");
    }
    writer.close().expect("close");
}

/// Each entity of `rrd` with the timelines its chunks are indexed by.
fn entity_timelines(home: &Path, rrd: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let printed = rerun_cli(home, &["rrd", "print", "-vv", rrd.to_str().expect("utf-8")]);
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in printed.lines() {
        if line.starts_with("Chunk(") {
            current = line
                .split(" - ")
                .find(|p| p.starts_with('/'))
                .map(str::to_owned);
            if let Some(path) = &current {
                found.entry(path.clone()).or_default();
            }
            continue;
        }
        if let Some(path) = &current {
            let names = line
                .split("index_name: ")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
            found.entry(path.clone()).or_default().extend(names);
        }
    }
    found
}

fn tick(t: u64, mode: Mode, fault: Option<HostFault>) -> TickRecord {
    let mut state = [0.0; handful_protocol::MAX_STATE_DIM];
    let theta = t as f32 * 0.1;
    state[..4].copy_from_slice(&[0.01 * t as f32, theta, 0.1, 1.0]);
    let mut action = [0.0; handful_protocol::MAX_ACTION_DIM];
    action[0] = theta.sin();
    TickRecord {
        tick: t,
        deadline_us: t * 40_000,
        wake_us: t * 40_000 + 37,
        compute_us: 900,
        mode,
        phase: handful::control::PhaseKind::Forward,
        state,
        state_dim: 4,
        state_count: t + 1,
        state_age_us: 2_000,
        firmware_us: t * 40_000 + 500,
        applied_seq: t.saturating_sub(1) as u32,
        armed: mode.is_driving(),
        action,
        action_dim: 1,
        command_seq: mode.is_driving().then_some(t as u32),
        fault,
        episode: mode.is_driving().then_some(EpisodeStep {
            episode: 0,
            step: t as u32,
            reward: 0.5,
        }),
        score: f32::NAN,
    }
}

fn plan(t: u64) -> PlanSnapshot {
    let mut plan = PlanSnapshot::new(t, 5, 4, 1).expect("shape");
    for k in 0..=5 {
        let s = tick(t + k as u64, Mode::Autonomous, None);
        plan.set_state(k, &s.state[..4], &[0.05; 4]).expect("state");
    }
    for k in 0..5 {
        plan.set_action(k, &[0.1 * k as f32]).expect("action");
    }
    let elite: Vec<f32> = (0..6 * 4).map(|i| i as f32 * 0.01).collect();
    plan.push_elite(&elite).expect("elite");
    plan.push_elite(&elite).expect("elite");
    plan
}
