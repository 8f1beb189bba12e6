//! Every learning option of `handful run` through the binary, the simulated robot in its
//! own process behind a pty, in lockstep and short: `--resume` from every kind of
//! learning run (and from a resumed one), `--expert DATASET`, `--overlap` (which model
//! drove which steps), `--trainer`, `--expert-fraction`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::handful;

/// Short fits for tests of the plumbing, not of learning quality.
pub(crate) const QUICK_TRAINER: &str = "tests/fixtures/quick-trainer.toml";

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `handful run --lockstep` for a short learning run into `out`, with `extra` arguments
/// (and the quick trainer unless they name one); panics with its stderr unless it
/// succeeds. Returns its summary.
fn learn(out: &Path, extra: &[&str]) -> Value {
    let mut command = handful();
    command.args([
        "run",
        "--lockstep",
        "--no-viz",
        "--steps",
        "60",
        "--seed",
        "2",
    ]);
    if !extra.contains(&"--trainer") {
        command.args(["--trainer", QUICK_TRAINER]);
    }
    let output = command.args(extra).arg("--out").arg(out).output().unwrap();
    assert!(
        output.status.success(),
        "handful run {extra:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_json(&out.join("summary.json"))
}

/// `handful run` expected to fail before it starts anything; returns its stderr.
fn refused(args: &[&str], out: &Path) -> String {
    let output = handful()
        .args([
            "run",
            "--lockstep",
            "--no-viz",
            "--steps",
            "20",
            "--trials",
            "1",
        ])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{args:?} was accepted:\n{stderr}");
    assert!(!out.exists(), "{args:?}: a run directory was written");
    stderr
}

fn episodes(dataset: &Path) -> usize {
    handful::dataset::DatasetReader::open(dataset)
        .unwrap()
        .episodes()
        .len()
}

fn versions(summary: &Value) -> Vec<u64> {
    summary["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_u64().unwrap())
        .collect()
}

/// The total rows (training and validation) of `kind` a model was trained and validated on.
fn rows(model: &Value, kind: &str) -> u64 {
    let counts = &model["counts"];
    counts[format!("{kind}_train")].as_u64().unwrap()
        + counts[format!("{kind}_validation")].as_u64().unwrap()
}

/// The seed sources of a summary as `(path, kind, episodes, transitions)`.
fn seed(summary: &Value) -> Vec<(PathBuf, String, u64, u64)> {
    summary["seed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                PathBuf::from(s["path"].as_str().unwrap()),
                s["kind"].as_str().unwrap().to_owned(),
                s["episodes"].as_u64().unwrap(),
                s["transitions"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What a resumed run must show: it loaded exactly `expected` (datasets and kinds, in
/// order, with their episode counts on disk), trained its first model on all of it, and
/// numbered its models after the resumed run's last.
fn check_resumed(
    (dir, resumed): (&Path, &Value),
    from: &Path,
    from_summary: &Value,
    expected: &[(&Path, &str)],
) {
    let loaded = seed(resumed);
    let want: Vec<(PathBuf, String)> = expected
        .iter()
        .map(|(p, k)| (p.canonicalize().unwrap(), (*k).to_owned()))
        .collect();
    let got: Vec<(PathBuf, String)> = loaded.iter().map(|s| (s.0.clone(), s.1.clone())).collect();
    assert_eq!(got, want, "seed sources of the resumed run");
    for (i, (path, _, eps, transitions)) in loaded.iter().enumerate() {
        // Every episode on disk is used, but recovered ones are no demonstrations.
        let skipped = resumed["seed"][i]["skipped_recovered"].as_u64().unwrap();
        assert_eq!(
            (eps + skipped) as usize,
            episodes(path),
            "{}",
            path.display()
        );
        assert!(*transitions > 0, "{}", path.display());
    }
    let sum = |kind: &str| -> u64 { loaded.iter().filter(|s| s.1 == kind).map(|s| s.3).sum() };
    // The first model saw every loaded transition (and only those: no trial ran yet).
    let first = &resumed["models"][0];
    assert_eq!(rows(first, "expert"), sum("expert"), "{first}");
    assert_eq!(rows(first, "learner"), sum("learner"), "{first}");
    let last = *versions(from_summary).last().unwrap();
    assert_eq!(
        resumed["resumed_from"]["run"],
        from.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(resumed["resumed_from"]["last_model_version"], last);
    let mine = versions(resumed);
    assert_eq!(
        mine[0],
        last + 1,
        "versions continue after the resumed run's"
    );
    assert!(mine.windows(2).all(|w| w[1] > w[0]), "{mine:?}");
    for v in &mine {
        assert!(
            dir.join(format!("models/v{v}.onnx")).is_file(),
            "v{v} missing"
        );
    }
    // A resumed run with data records no demonstrations and no random trial.
    for row in resumed["trials"].as_array().unwrap() {
        assert_eq!(row["policy"], "mpc", "{row}");
    }
}

#[test]
fn resume_continues_a_scripted_expert_run_and_a_run_that_was_itself_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let sa = learn(&a, &["--trials", "1", "--expert-episodes", "1"]);
    assert_eq!(episodes(&a.join("expert")), 1);
    assert_eq!(episodes(&a.join("learner")), 1);
    // What a `kill -9` during a retrain leaves: a candidate that was never validated.
    let stray = a.join("models/candidate.onnx");
    std::fs::write(&stray, b"half a model").unwrap();
    let sb = learn(&b, &["--trials", "1", "--resume", a.to_str().unwrap()]);
    assert!(
        !stray.exists(),
        "the interrupted retrain's candidate is removed"
    );
    assert_eq!(sb["resumed_from"]["removed_stray_candidate"], true);
    check_resumed(
        (&b, &sb),
        &a,
        &sa,
        &[
            (&a.join("expert"), "expert"),
            (&a.join("learner"), "learner"),
        ],
    );
    assert!(!b.join("expert").exists(), "no new demonstrations");
    // Resuming the resumed run loads everything it learned from: a's data and its own.
    let sc = learn(&c, &["--trials", "1", "--resume", b.to_str().unwrap()]);
    assert_eq!(sc["resumed_from"]["removed_stray_candidate"], false);
    check_resumed(
        (&c, &sc),
        &b,
        &sb,
        &[
            (&a.join("expert"), "expert"),
            (&a.join("learner"), "learner"),
            (&b.join("learner"), "learner"),
        ],
    );
    assert!(rows(&sc["models"][0], "learner") > rows(&sb["models"][0], "learner"));
}

#[test]
fn resume_continues_a_pure_pets_run_without_a_new_random_trial() {
    let dir = tempfile::tempdir().unwrap();
    let (p, q) = (dir.path().join("p"), dir.path().join("q"));
    let sp = learn(&p, &["--trials", "1", "--expert-episodes", "0"]);
    let policies: Vec<&str> = sp["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["random", "mpc"]);
    assert!(!p.join("expert").exists());
    let sq = learn(&q, &["--trials", "1", "--resume", p.to_str().unwrap()]);
    check_resumed((&q, &sq), &p, &sp, &[(&p.join("learner"), "learner")]);
    assert_eq!(rows(&sq["models"][0], "expert"), 0);
}

#[test]
fn a_recorded_dataset_seeds_a_learning_run_and_its_resumption() {
    let dir = tempfile::tempdir().unwrap();
    let (demos, e, f) = (
        dir.path().join("demos"),
        dir.path().join("e"),
        dir.path().join("f"),
    );
    let status = handful()
        .args([
            "record",
            "--teleop",
            "expert",
            "--lockstep",
            "--episodes",
            "2",
            "--steps",
            "60",
            "--dataset",
        ])
        .arg(&demos)
        .status()
        .unwrap();
    assert!(status.success());
    // A third episode that a crash left staged (its frames copied from the first), then
    // recovered: never kept by the operator, so no demonstration.
    {
        let reader = handful::dataset::DatasetReader::open(&demos).unwrap();
        let frames: Vec<_> = reader
            .episode_frames(0)
            .unwrap()
            .map(|f| f.unwrap().frame)
            .collect();
        let mut w = handful::dataset::DatasetWriter::open_append(&demos).unwrap();
        w.begin_episode("crashed").unwrap();
        for frame in &frames {
            w.push(frame).unwrap();
        }
        std::mem::forget(w);
    }
    let out = handful()
        .args(["dataset", "recover"])
        .arg(&demos)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("as episode 2") && stdout.contains("marked recovered"),
        "{stdout}"
    );
    assert_eq!(episodes(&demos), 3);
    // A merge keeps it marked.
    let merged = dir.path().join("merged");
    handful::dataset::merge(&[demos.as_path()], &merged).unwrap();
    let flags: Vec<bool> = handful::dataset::DatasetReader::open(&merged)
        .unwrap()
        .episodes()
        .iter()
        .map(|e| e.recovered)
        .collect();
    assert_eq!(flags, [false, false, true]);
    let se = learn(&e, &["--trials", "1", "--expert", demos.to_str().unwrap()]);
    // The demonstrations are the expert data: all of it, and no scripted expert ran.
    let loaded = seed(&se);
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0].0, demos.canonicalize().unwrap());
    assert_eq!(loaded[0].2, 2);
    assert_eq!(se["seed"][0]["skipped_recovered"], 1, "{}", se["seed"]);
    assert_eq!(rows(&se["models"][0], "expert"), loaded[0].3);
    assert_eq!(rows(&se["models"][0], "learner"), 0);
    assert!(!e.join("expert").exists());
    let rows_e = se["trials"].as_array().unwrap();
    assert_eq!(rows_e.len(), 1);
    assert_eq!(rows_e[0]["policy"], "mpc");
    assert_eq!(rows_e[0]["steps"], 60);
    // Its resumption finds the demonstrations through the run's configuration.
    let sf = learn(&f, &["--trials", "1", "--resume", e.to_str().unwrap()]);
    check_resumed(
        (&f, &sf),
        &e,
        &se,
        &[(&demos, "expert"), (&e.join("learner"), "learner")],
    );
}

#[test]
fn resuming_something_that_is_not_a_learning_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let stderr = refused(
        &["--resume", missing.to_str().unwrap()],
        &dir.path().join("out1"),
    );
    assert!(stderr.contains("nothing-here"), "{stderr}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let stderr = refused(
        &["--resume", empty.to_str().unwrap()],
        &dir.path().join("out2"),
    );
    assert!(stderr.contains("not a run directory"), "{stderr}");
    let stderr = refused(
        &["--expert", empty.to_str().unwrap()],
        &dir.path().join("out3"),
    );
    assert!(stderr.contains("no dataset at"), "{stderr}");
}

#[test]
fn with_overlap_every_trial_names_the_models_that_drove_it_and_best_onnx_earned_the_best_return() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let summary = learn(
        &out,
        &["--overlap", "--trials", "3", "--expert-episodes", "1"],
    );
    let published = versions(&summary);
    let mut driven: Vec<u64> = Vec::new();
    let csv = std::fs::read_to_string(out.join("learning_curve.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let csv_rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for row in summary["trials"].as_array().unwrap() {
        if row["policy"] != "mpc" {
            assert!(row["drivers"].as_array().unwrap().is_empty(), "{row}");
            continue;
        }
        assert_eq!(row["end"], "completed", "{row}");
        let drivers = row["drivers"].as_array().unwrap();
        assert!(!drivers.is_empty(), "{row}");
        // Every step's command came from exactly one named model: the steps the tick
        // records attribute to each (by the tick it took over) are the commands it
        // computed, as counted on the control thread (lockstep: one command per step).
        let steps: u64 = drivers.iter().map(|d| d["steps"].as_u64().unwrap()).sum();
        assert_eq!(steps, row["steps"].as_u64().unwrap(), "{row}");
        for d in drivers {
            assert_eq!(d["steps"], d["commands"], "{row}");
        }
        assert_eq!(drivers[0]["from_step"], 0, "{row}");
        for pair in drivers.windows(2) {
            // A swap inside the trial: later tick, later step, newer model.
            assert!(
                pair[1]["from_tick"].as_u64() > pair[0]["from_tick"].as_u64(),
                "{row}"
            );
            assert!(
                pair[1]["from_step"].as_u64() > pair[0]["from_step"].as_u64(),
                "{row}"
            );
            assert!(
                pair[1]["version"].as_u64() > pair[0]["version"].as_u64(),
                "{row}"
            );
        }
        for d in drivers {
            let tick = d["from_tick"].as_u64().unwrap();
            assert!(
                row["first_tick"].as_u64().unwrap() <= tick
                    && tick <= row["last_tick"].as_u64().unwrap(),
                "{row}"
            );
            let v = d["version"].as_u64().unwrap();
            assert!(published.contains(&v), "v{v} drove but was never published");
            assert!(out.join(format!("models/v{v}.onnx")).is_file());
            driven.push(v);
        }
        let majority = drivers.iter().max_by_key(|d| d["steps"].as_u64()).unwrap();
        assert_eq!(row["model_version"], majority["version"], "{row}");
        // The learning curve says the same.
        let line = csv_rows
            .iter()
            .find(|l| l[0].parse::<u64>().ok() == row["trial"].as_u64())
            .unwrap();
        let listed: Vec<u64> = line[column("driver_versions")]
            .split(';')
            .map(|v| v.parse().unwrap())
            .collect();
        let want: Vec<u64> = drivers
            .iter()
            .map(|d| d["version"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, want);
        let ticks: Vec<&str> = line[column("driver_from_ticks")].split(';').collect();
        assert_eq!(ticks.len(), want.len());
    }
    // Models drive in the order they were published; the first MPC trial starts on v1.
    assert!(driven.windows(2).all(|w| w[1] >= w[0]), "{driven:?}");
    assert_eq!(driven[0], 1);
    // Per model, the commands it computed over the run add up to its trials' share.
    for u in summary["model_use"].as_array().unwrap() {
        let v = u["version"].as_u64().unwrap();
        let in_rows: u64 = summary["trials"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["drivers"].as_array().unwrap())
            .filter(|d| d["version"] == v)
            .map(|d| d["commands"].as_u64().unwrap())
            .sum();
        assert_eq!(u["commands"].as_u64().unwrap(), in_rows, "v{v}");
    }
    // best.onnx is the model that drove (most of) the best trial.
    let best_row = summary["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["policy"] == "mpc")
        .max_by(|a, b| {
            a["episode_return"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["episode_return"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(summary["best_model"], best_row["model_version"]);
    let best = summary["best_model"].as_u64().unwrap();
    assert_eq!(
        std::fs::read(out.join("best.onnx")).unwrap(),
        std::fs::read(out.join(format!("models/v{best}.onnx"))).unwrap()
    );
    // Every retrain asked for was answered (the last one waited for) or is reported as
    // never started.
    let r = &summary["retrains"];
    let answered = ["published", "rejected", "failed"]
        .iter()
        .map(|k| r[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(r["requested"].as_u64().unwrap(), answered, "{r}");
    assert_eq!(
        r["published"].as_u64().unwrap() as usize,
        published.len(),
        "{r}"
    );
    assert!(r["queued_at_end"].as_u64().unwrap() <= 1, "{r}");
    // 1 seed retrain, and one per trial unless it was folded into a queued one.
    let asked = r["requested"].as_u64().unwrap() + r["queued_at_end"].as_u64().unwrap();
    assert!((2..=4).contains(&asked), "{r}");
}

#[test]
fn trainer_settings_take_effect_and_malformed_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("trainer.toml");
    // The default trains far longer than 2 epochs (patience alone is 5).
    std::fs::write(&toml, "max_epochs = 2\nhidden_sizes = [16, 16, 16]\n").unwrap();
    let out = dir.path().join("run");
    let summary = learn(
        &out,
        &[
            "--trials",
            "0",
            "--expert-episodes",
            "1",
            "--trainer",
            toml.to_str().unwrap(),
        ],
    );
    let v1 = read_json(&out.join("models/v1.json"));
    assert_eq!(v1["model"]["epochs"], 2, "{v1}");
    assert_eq!(summary["models"][0]["epochs"], 2);
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["trainer"]["max_epochs"], 2);
    assert_eq!(
        config["trainer"]["hidden_sizes"],
        serde_json::json!([16, 16, 16])
    );

    for (text, expected) in [
        ("max_epoch = 2\n", "max_epoch"),
        ("max_epochs = \n", "not valid TOML"),
        ("ensemble_size = 0\n", "ensemble_size"),
    ] {
        std::fs::write(&toml, text).unwrap();
        let stderr = refused(
            &["--trainer", toml.to_str().unwrap()],
            &dir.path().join("refused"),
        );
        assert!(
            stderr.contains("trainer.toml") || stderr.contains("trainer settings"),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
    }
}

#[test]
fn an_expert_fraction_out_of_range_is_an_error_not_a_clamp() {
    let dir = tempfile::tempdir().unwrap();
    for (i, value) in ["-0.1", "1.5", "NaN", "inf"].iter().enumerate() {
        let stderr = refused(
            &["--expert-fraction", value],
            &dir.path().join(format!("run{i}")),
        );
        assert!(
            stderr.contains("expert fraction") && stderr.contains("from 0 to 1"),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn a_stall_during_a_demonstration_is_recovered_from_and_learning_goes_on() {
    // Before: the next episode started on the still-faulted robot, recorded no frame and
    // aborted the run ("the episode has no frames").
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stall");
    let output = handful()
        .args([
            "run",
            "--no-viz",
            "--steps",
            "60",
            "--expert-episodes",
            "2",
            "--trials",
            "1",
            "--trainer",
            QUICK_TRAINER,
            "--sim-arg=--stall-at-ms=1200",
            "--sim-arg=--stall-for-ms=1000",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary = read_json(&out.join("summary.json"));
    let trials = summary["trials"].as_array().unwrap();
    let ends: Vec<&str> = trials.iter().map(|t| t["end"].as_str().unwrap()).collect();
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert_ne!(ends[0], "completed", "{ends:?}");
    assert_eq!(ends[1..], ["completed", "completed"], "{ends:?}");
    assert_eq!(summary["recoveries"], 1);
    assert!(summary["stopped"].is_null());
    assert!(!summary["models"].as_array().unwrap().is_empty());
}

#[test]
fn planner_settings_that_do_not_fit_the_ensemble_are_refused_before_the_robot_moves() {
    // Before: checked when the first model was wrapped, after every demonstration.
    let dir = tempfile::tempdir().unwrap();
    let planner = dir.path().join("planner.toml");
    std::fs::write(&planner, "particles = 7\n").unwrap();
    let stderr = refused(
        &["--planner", planner.to_str().unwrap()],
        &dir.path().join("refused"),
    );
    assert!(
        stderr.contains("planner settings") && stderr.contains("multiple of the ensemble size (5)"),
        "{stderr}"
    );
}

#[test]
fn demonstrations_of_another_robot_are_refused_before_the_robot_moves() {
    let dir = tempfile::tempdir().unwrap();
    let demos = dir.path().join("pendulum-demos");
    let status = handful()
        .args([
            "record",
            "--calib",
            "calib/pendulum-sim.toml",
            "--teleop",
            "expert",
            "--lockstep",
            "--episodes",
            "1",
            "--steps",
            "10",
            "--dataset",
        ])
        .arg(&demos)
        .status()
        .unwrap();
    assert!(status.success());
    // Before: it failed after the first fit, as "no model could be trained".
    let stderr = refused(
        &["--expert", demos.to_str().unwrap()],
        &dir.path().join("refused"),
    );
    assert!(
        stderr.contains("was recorded on another robot")
            && stderr.contains("robot \"pendulum-sim\" (this robot: \"cartpole-sim\")"),
        "{stderr}"
    );
}
