//! Both directions with lerobot 0.4.4 on committed fixtures: the dataset lerobot's own writer
//! made (no `handful` block, native-typed statistics, the task as the pandas index, scalar
//! `action`) is read, validated, merged, viewed and learned from through the binary; what
//! handful writes has lerobot's schema (every shape-`[1]` feature a plain column); and the
//! datasets handful wrote before (the one-element `action` list) are still read and
//! appended to. lerobot's own loader on what handful writes: `tests/python/lerobot_check.py`
//! (opt-in, README).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::DataType;
use handful::dataset::{DatasetError, DatasetReader, DatasetWriter, merge, validate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{frame, record};
use crate::cli::handful;

/// `LeRobotDataset.create`/`add_frame`/`save_episode`/`finalize` of lerobot 0.4.4 over the
/// frames of a `handful record --teleop expert --lockstep --episodes 5` of the simulated
/// cart-pole (the interop reference's README): 5 episodes × 200 frames, one task.
fn lerobot_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lerobot-0.4.4")
}

/// `handful record --teleop expert --lockstep --episodes 2 --steps 20` by handful at
/// e38e59f, before shape-`[1]` features were plain columns: `action` is
/// `fixed_size_list<float>[1]`.
fn list_action_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/handful-list-action")
}

/// A writable copy of `fixture` in `dir`.
fn copy(fixture: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(fixture.file_name().unwrap());
    copy_dir(fixture, &out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn data_type(file: &Path, column: &str) -> DataType {
    let reader = std::fs::File::open(file).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).unwrap();
    builder
        .schema()
        .field_with_name(column)
        .unwrap_or_else(|_| panic!("{}: no column {column}", file.display()))
        .data_type()
        .clone()
}

fn data_file(root: &Path) -> PathBuf {
    root.join("data/chunk-000/file-000.parquet")
}

fn run_ok(args: &[&str]) -> (String, String) {
    let out = handful().args(args).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "handful {args:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn the_dataset_lerobots_writer_made_reads_and_validates() {
    let root = lerobot_fixture();
    assert_eq!(data_type(&data_file(&root), "action"), DataType::Float32);
    let report = validate(&root).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!((report.episodes, report.frames), (5, 1000));
    let r = DatasetReader::open(&root).unwrap();
    let info = r.info();
    assert!(!info.has_provenance(), "{:?}", info.handful);
    assert_eq!(info.robot_type.as_deref(), Some("cartpole-sim"));
    assert_eq!(info.dims(), (4, 1));
    assert_eq!(r.tasks().len(), 1);
    // Native-typed statistics: booleans and int64s as numbers.
    let stats = &r.episodes()[0].stats;
    assert_eq!(
        (stats["is_expert"].min[0], stats["is_expert"].max[0]),
        (1.0, 1.0)
    );
    assert_eq!(
        (stats["next.done"].min[0], stats["next.done"].max[0]),
        (0.0, 1.0)
    );
    assert_eq!(stats["frame_index"].max[0], 199.0);
    let frames: Vec<_> = r.frames().map(Result::unwrap).collect();
    assert_eq!(frames.len(), 1000);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as i64);
        assert_eq!((f.frame.state.len(), f.frame.action.len()), (4, 1));
        // The features lerobot's writer did not have, with their defaults.
        assert_eq!((f.frame.command_seq, f.frame.applied_command_seq), (-1, -1));
        assert_eq!(f.frame.phase, 0);
        assert!(f.frame.reset_score.is_nan());
    }
    // The statistics lerobot computed are those of the frames read back.
    let actions: Vec<f64> = frames[..200]
        .iter()
        .map(|f| f64::from(f.frame.action[0]))
        .collect();
    let min = actions.iter().copied().fold(f64::INFINITY, f64::min);
    let max = actions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = actions.iter().sum::<f64>() / 200.0;
    let action = &stats["action"];
    assert_eq!((action.min[0], action.max[0]), (min, max));
    assert!((action.mean[0] - mean).abs() < 1e-6, "{action:?} vs {mean}");
    assert_eq!(action.count, [200]);
    let episode_3: Vec<_> = r.episode_frames(3).unwrap().map(Result::unwrap).collect();
    assert_eq!(episode_3.len(), 200);
    assert_eq!(episode_3[0].index, 600);
    assert!(episode_3[199].frame.done);
}

#[test]
fn validate_merge_info_and_view_accept_it_through_the_binary() {
    let root = lerobot_fixture();
    let root_arg = root.to_str().unwrap();
    let (stdout, _) = run_ok(&["dataset", "validate", root_arg]);
    assert!(stdout.contains("valid"), "{stdout}");
    let (stdout, _) = run_ok(&["dataset", "info", root_arg]);
    assert!(stdout.contains("episode    4:   200 frames"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    // Merged with a dataset handful wrote (with every handful feature): lerobot's lacks
    // the optional ones, read with their defaults.
    let ours = dir.path().join("ours");
    run_ok(&[
        "record",
        "--teleop",
        "expert",
        "--lockstep",
        "--episodes",
        "1",
        "--steps",
        "15",
        "--dataset",
        ours.to_str().unwrap(),
    ]);
    let merged = dir.path().join("merged");
    let (stdout, _) = run_ok(&[
        "dataset",
        "merge",
        "--out",
        merged.to_str().unwrap(),
        root_arg,
        ours.to_str().unwrap(),
    ]);
    assert!(stdout.contains("6 episodes, 1015 frames"), "{stdout}");
    let report = validate(&merged).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
    let r = DatasetReader::open(&merged).unwrap();
    assert_eq!(r.info().handful.sources.len(), 2);
    let lerobot = DatasetReader::open(&root).unwrap();
    let original: Vec<_> = lerobot.frames().map(|f| f.unwrap().frame).collect();
    let copied: Vec<_> = r.frames().take(1000).map(|f| f.unwrap().frame).collect();
    assert_eq!(copied, original);
    assert_eq!(data_type(&data_file(&merged), "action"), DataType::Float32);
    #[cfg(feature = "viz")]
    {
        let rrd = dir.path().join("lerobot.rrd");
        run_ok(&["view", root_arg, "--save", rrd.to_str().unwrap()]);
        assert!(std::fs::metadata(&rrd).unwrap().len() > 10_000);
    }
}

#[test]
fn a_learning_run_takes_it_as_its_demonstrations() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let root = lerobot_fixture();
    let (_, stderr) = run_ok(&[
        "run",
        "--lockstep",
        "--no-viz",
        "--steps",
        "60",
        "--seed",
        "2",
        "--trials",
        "1",
        "--trainer",
        crate::learn::QUICK_TRAINER,
        "--expert",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    // Accepted as this robot's by its robot_type and channel names, and said so.
    assert!(
        stderr.contains("no `handful` block") && stderr.contains("paired as recorded in real time"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let seed = &summary["seed"][0];
    assert_eq!(seed["episodes"], 5, "{seed}");
    // Paired by timing with the real-time delay: 199 steps an episode, less the first.
    assert_eq!(seed["transitions"], 5 * 198, "{seed}");
    let trials = summary["trials"].as_array().unwrap();
    assert_eq!((trials.len(), &trials[0]["policy"]), (1, &"mpc".into()));
    assert!(!out.join("expert").exists(), "no scripted expert ran");
}

#[test]
fn another_robots_lerobot_dataset_is_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy(&lerobot_fixture(), dir.path());
    let path = root.join("meta/info.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"cart_position\"", "\"cart_x\"")).unwrap();
    let out = handful()
        .args(["run", "--lockstep", "--no-viz", "--trials", "1", "--expert"])
        .arg(&root)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("recorded on another robot") && stderr.contains("\"cart_x\""),
        "{stderr}"
    );
}

#[test]
fn handful_writes_every_shape_one_feature_as_lerobot_does() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), true, 0, &[12, 5]);
    let ours = DatasetReader::open(dir.path()).unwrap();
    let theirs = DatasetReader::open(&lerobot_fixture()).unwrap();
    // The same feature entries in info.json (dtype, shape) for every feature both have,
    // and the same Arrow type of each column.
    for (name, feature) in &theirs.info().features {
        let mine = &ours.info().features[name];
        assert_eq!(
            (&mine.dtype, &mine.shape),
            (&feature.dtype, &feature.shape),
            "{name}"
        );
        let (a, b) = (
            data_type(&data_file(dir.path()), name),
            data_type(&data_file(&lerobot_fixture()), name),
        );
        let same = a == b
            || matches!((&a, &b), (DataType::FixedSizeList(f, n), DataType::FixedSizeList(g, m))
                if n == m && f.data_type() == g.data_type());
        assert!(same, "{name}: handful writes {a}, lerobot {b}");
    }
    for name in handful::dataset::FEATURE_NAMES {
        let feature = &ours.info().features[name];
        if feature.shape == [1] {
            let ty = data_type(&data_file(dir.path()), name);
            assert!(!matches!(ty, DataType::FixedSizeList(..)), "{name}: {ty}");
        }
    }
    assert_eq!(
        data_type(&data_file(dir.path()), "action"),
        DataType::Float32
    );
    // The episodes table: every column lerobot's has (but the quantiles, which handful
    // does not compute) with its type, statistics of booleans and int64s included.
    let episodes = "meta/episodes/chunk-000/file-000.parquet";
    let theirs_file = lerobot_fixture().join(episodes);
    let reader = std::fs::File::open(&theirs_file).unwrap();
    let schema = ParquetRecordBatchReaderBuilder::try_new(reader)
        .unwrap()
        .schema()
        .clone();
    let item = |t: &DataType| match t {
        DataType::List(f) => DataType::List(Arc::new(f.as_ref().clone().with_name("item"))),
        other => other.clone(),
    };
    let mut compared = 0;
    for field in schema.fields() {
        let name = field.name();
        if ["/q01", "/q10", "/q50", "/q90", "/q99"]
            .iter()
            .any(|q| name.ends_with(q))
        {
            continue;
        }
        let mine = data_type(&dir.path().join(episodes), name);
        assert_eq!(
            item(&mine).to_string(),
            item(field.data_type()).to_string(),
            "{name}"
        );
        compared += 1;
    }
    assert_eq!(compared, 9 + 12 * 5);
    // stats.json likewise: a boolean's min and max are booleans, an int64's integers.
    let text = std::fs::read_to_string(dir.path().join("meta/stats.json")).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        stats["is_expert"]["min"][0].is_boolean(),
        "{}",
        stats["is_expert"]
    );
    assert!(stats["next.done"]["max"][0].is_boolean());
    assert!(stats["frame_index"]["max"][0].is_i64());
    assert!(stats["next.reward"]["min"][0].is_f64());
    // A staged part too (what recovery reads).
    let mut w = DatasetWriter::open_append(dir.path()).unwrap();
    w.begin_episode("staged").unwrap();
    for i in 0..30 {
        w.push(&frame(2, i)).unwrap();
    }
    let part = dir.path().join("staging/episode-000002/part-0000.parquet");
    assert_eq!(data_type(&part, "action"), DataType::Float32);
    w.end_episode(true).unwrap();
    let r = DatasetReader::open(dir.path()).unwrap();
    let last: Vec<_> = r.episode_frames(2).unwrap().map(Result::unwrap).collect();
    assert_eq!(last[29].frame, frame(2, 29));
}

#[test]
fn a_dataset_handful_wrote_with_one_element_action_lists_is_still_read_and_appended_to() {
    let fixture = list_action_fixture();
    let list = data_type(&data_file(&fixture), "action");
    assert!(matches!(list, DataType::FixedSizeList(_, 1)), "{list}");
    let report = validate(&fixture).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
    let before: Vec<_> = DatasetReader::open(&fixture)
        .unwrap()
        .frames()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(before.len(), 40);
    assert!(before.iter().any(|f| f.frame.action[0] != 0.0));
    let run_arg = fixture.to_str().unwrap();
    run_ok(&["dataset", "validate", run_arg]);
    // Appending rewrites its data file in the form handful writes now, losing nothing.
    let dir = tempfile::tempdir().unwrap();
    let root = copy(&fixture, dir.path());
    let (s, a) = DatasetReader::open(&root).unwrap().info().dims();
    let mut w = DatasetWriter::open_append(&root).unwrap();
    w.begin_episode("appended").unwrap();
    for i in 0..10 {
        let mut f = frame(0, i);
        f.state.truncate(s);
        f.action.truncate(a);
        w.push(&f).unwrap();
    }
    w.end_episode(true).unwrap();
    w.close().unwrap();
    assert_eq!(data_type(&data_file(&root), "action"), DataType::Float32);
    let report = validate(&root).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
    let after: Vec<_> = DatasetReader::open(&root)
        .unwrap()
        .frames()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(after.len(), 50);
    assert_eq!(after[..40], before[..]);
    // And it merges with lerobot's.
    let merged = dir.path().join("merged");
    merge(&[fixture.as_path(), lerobot_fixture().as_path()], &merged).unwrap();
    assert!(validate(&merged).unwrap().is_valid());
}

/// Bad input still gets an error naming the file and what is wrong.
#[test]
fn a_broken_lerobot_dataset_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy(&lerobot_fixture(), dir.path());
    // An action two wide where info.json says one.
    let path = root.join("meta/info.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut info: serde_json::Value = serde_json::from_str(&text).unwrap();
    info["features"]["action"]["shape"] = serde_json::json!([2]);
    info["features"]["action"]["names"] = serde_json::json!(["a", "b"]);
    std::fs::write(&path, info.to_string()).unwrap();
    let report = validate(&root).unwrap();
    let problems = format!("{:#?}", report.problems);
    assert!(
        !report.is_valid() && problems.contains("file-000.parquet") && problems.contains("action"),
        "{problems}"
    );
    let err = DatasetReader::open(&root)
        .unwrap()
        .frames()
        .find_map(Result::err)
        .expect("a frame error");
    assert!(
        matches!(&err, DatasetError::Column { column, .. } if column == "action"),
        "{err}"
    );
    std::fs::write(&path, &text).unwrap();
    // A tasks table with no task strings at all.
    let tasks = root.join("meta/tasks.parquet");
    let ours = tempfile::tempdir().unwrap();
    record(ours.path(), true, 0, &[3]);
    std::fs::copy(
        ours.path().join("meta/episodes/chunk-000/file-000.parquet"),
        &tasks,
    )
    .unwrap();
    let err = DatasetReader::open(&root).err().expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("tasks.parquet") && message.contains("task_index"),
        "{message}"
    );
    // Features handful does not record would be lost by an append or a merge: refused.
    std::fs::copy(lerobot_fixture().join("meta/tasks.parquet"), &tasks).unwrap();
    info = serde_json::from_str(&text).unwrap();
    info["features"]["observation.environment_state"] =
        serde_json::json!({"dtype": "float32", "shape": [2], "names": null});
    std::fs::write(&path, info.to_string()).unwrap();
    assert!(DatasetReader::open(&root).is_ok(), "reading is fine");
    let err = DatasetWriter::open_append(&root).err().expect("refused");
    assert!(
        err.to_string().contains("observation.environment_state"),
        "{err}"
    );
    let err = merge(&[root.as_path()], &dir.path().join("m")).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownFeatures { .. }), "{err}");
}

#[test]
fn handful_records_into_a_dataset_lerobots_writer_made() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy(&lerobot_fixture(), dir.path());
    run_ok(&[
        "record",
        "--teleop",
        "expert",
        "--lockstep",
        "--episodes",
        "1",
        "--steps",
        "15",
        "--dataset",
        root.to_str().unwrap(),
    ]);
    let report = validate(&root).unwrap();
    assert!(report.is_valid(), "{:#?}", report.problems);
    let r = DatasetReader::open(&root).unwrap();
    assert_eq!((r.episodes().len(), r.info().total_frames), (6, 1015));
    // The features handful records joined the dataset's, with their statistics.
    for name in handful::dataset::FEATURE_NAMES {
        assert!(r.info().features.contains_key(name), "{name}");
    }
    let last = &r.episodes()[5];
    assert_eq!(last.stats["action.command_seq"].count, [15]);
    assert!(!r.episodes()[0].stats.contains_key("phase"));
    let original: Vec<_> = DatasetReader::open(&lerobot_fixture())
        .unwrap()
        .frames()
        .map(|f| f.unwrap().frame)
        .collect();
    let frames: Vec<_> = r.frames().map(|f| f.unwrap()).collect();
    assert_eq!(
        frames[..1000].iter().map(|f| &f.frame).collect::<Vec<_>>(),
        original.iter().collect::<Vec<_>>()
    );
    assert!(frames[1000..].iter().all(|f| f.frame.command_seq >= 0));
    assert_eq!(data_type(&data_file(&root), "action"), DataType::Float32);
}
