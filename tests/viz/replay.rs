//! `handful view DATASET` replays a dataset written by the dataset writer.

use super::*;

#[test]
fn handful_view_replays_a_dataset_into_a_valid_rrd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("demos");
    let calib = calibration();
    tiny_dataset(&root, &calib, 2, 12);

    let rrd = dir.path().join("view.rrd");
    let out = Command::new(env!("CARGO_BIN_EXE_handful"))
        .args([
            "view",
            root.to_str().unwrap(),
            "--save",
            rrd.to_str().unwrap(),
        ])
        .output()
        .expect("handful view");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        ("/robot/rail", "LineStrips2D"),
        ("/robot/cart", "Boxes2D"),
        ("/robot/pole", "LineStrips2D"),
        ("/state/cart_position", "Scalars"),
        ("/state/pole_angle", "Scalars"),
        ("/action/force", "Scalars"),
        ("/episode/reward", "Scalars"),
        ("/episode/return", "Scalars"),
        ("/log", "TextLog"),
    ];
    check_rrd(dir.path(), &rrd, &expected);
    let found = timelines(dir.path(), &rrd);
    for timeline in ["tick", "frame", "episode", "robot_time", "host_time"] {
        assert!(found.contains(timeline), "no {timeline} in {found:?}");
    }

    // The same replay as a stream on stdout (for `| rerun -`) is a valid recording too.
    let out = Command::new(env!("CARGO_BIN_EXE_handful"))
        .args(["view", root.to_str().unwrap(), "--stdout"])
        .output()
        .expect("handful view --stdout");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let piped = dir.path().join("piped.rrd");
    std::fs::write(&piped, &out.stdout).expect("write");
    check_rrd(dir.path(), &piped, &expected);
}

#[test]
fn view_refuses_a_missing_dataset_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = VizArgs {
        save: Some(dir.path().join("x.rrd")),
        ..VizArgs::default()
    };
    let err = handful::viz::view(&dir.path().join("nope"), &args).expect_err("no dataset");
    assert!(format!("{err:#}").contains("dataset"), "{err:#}");
}
