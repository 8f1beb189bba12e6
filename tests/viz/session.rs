//! A synthetic session logged live: saved to an .rrd, streamed to a running receiver,
//! and a pendulum's drawing.

use super::*;

#[test]
fn a_session_saved_to_rrd_holds_every_entity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("session.rrd");
    let viz = Viz::start(
        &VizOptions::with_sink(VizSink::Save(rrd.clone())),
        &calibration(),
    )
    .expect("viz starts");
    assert!(viz.is_running());
    let tx = viz.sender();
    let tx2 = tx.clone();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for t in 0..60 {
                let fault = (t == 30).then_some(HostFault::Overrun);
                let mode = if t < 5 { Mode::Idle } else { Mode::Autonomous };
                assert!(tx.send_tick(&tick(t, mode, fault)));
                if (5..50).contains(&t) {
                    assert!(tx.send(VizEvent::Plan(plan(t))));
                }
            }
        });
        scope.spawn(|| {
            for epoch in 0..5 {
                let point = TrainingPoint {
                    model_version: 1,
                    epoch,
                    train_nll: 3.0 / (1.0 + epoch as f32),
                    validation_nll: Some(3.5 / (1.0 + epoch as f32)),
                    last_epoch: epoch == 4,
                };
                assert!(tx2.send(VizEvent::Training(point)));
            }
            let health = Health {
                connected: true,
                state_age_us: Some(1_000),
                heartbeat_age_us: Some(20_000),
                frame_age_us: Some(500),
                is_lost: false,
            };
            let stats = LinkStats {
                crc_errors: 2,
                ..LinkStats::default()
            };
            assert!(tx2.send(VizEvent::Link { stats, health }));
            assert!(tx2.send(VizEvent::Model {
                version: 1,
                label: InlineText::new("sha256:abcdef"),
            }));
            assert!(tx2.send(VizEvent::text(TextLevel::Info, "synthetic session")));
        });
    });
    let summary = EpisodeSummary {
        episode: 0,
        phase: handful::control::PhaseKind::Forward,
        steps: 55,
        episode_return: 27.5,
        end: EpisodeEnd::Completed,
        first_tick: 5,
        last_tick: 59,
    };
    assert!(tx.send(VizEvent::Episode(summary)));
    let report = viz.finish();
    assert_eq!(report.dropped, 0, "{report:?}");
    assert_eq!(report.sent, 60 + 45 + 5 + 3 + 1);
    assert_eq!(report.logged, report.sent, "{report:?}");
    assert_eq!(report.log_errors, 0, "{report:?}");
    // The thread has stopped: later sends are dropped and counted, not blocked.
    assert!(!tx.send(VizEvent::text(TextLevel::Info, "late")));
    assert_eq!(tx.dropped(), 1);

    let expected = [
        ("/robot/rail", "LineStrips2D"),
        ("/robot/cart", "Boxes2D"),
        ("/robot/pole", "LineStrips2D"),
        ("/robot/tip", "Points2D"),
        ("/robot/plan/mean", "LineStrips2D"),
        ("/robot/plan/elites", "LineStrips2D"),
        ("/robot/plan/actual", "LineStrips2D"),
        ("/state/cart_position", "Scalars"),
        ("/state/pole_angular_velocity", "Scalars"),
        ("/action/force", "Scalars"),
        ("/plan/state/pole_angle/mean", "LineStrips2D"),
        ("/plan/state/pole_angle/band", "LineStrips2D"),
        ("/plan/state/pole_angle/elites", "LineStrips2D"),
        ("/plan/state/pole_angle/actual", "LineStrips2D"),
        ("/plan/action/force/mean", "LineStrips2D"),
        ("/plan/error/cart_position/one_step", "Scalars"),
        ("/plan/error/cart_position/horizon", "Scalars"),
        ("/plan/coverage", "Scalars"),
        ("/timing/compute_us", "Scalars"),
        ("/timing/jitter_us", "Scalars"),
        ("/timing/overruns", "Scalars"),
        ("/timing/missed_commands", "Scalars"),
        ("/mode", "TextLog"),
        ("/faults", "TextLog"),
        ("/faults/count", "Scalars"),
        ("/link/crc_errors", "Scalars"),
        ("/link/heartbeat_age_ms", "Scalars"),
        ("/model/version", "Scalars"),
        ("/log", "TextLog"),
        ("/episode/reward", "Scalars"),
        ("/episode/return", "Scalars"),
        ("/train/v1/train_nll", "Scalars"),
        ("/train/v1/validation_nll", "Scalars"),
        ("/viz/dropped", "Scalars"),
    ];
    check_rrd(dir.path(), &rrd, &expected);
    // The layout travels with the recording, as a blueprint store in the same file.
    let printed = rerun_cli(dir.path(), &["rrd", "print", rrd.to_str().unwrap()]);
    assert!(
        printed.contains("Blueprint"),
        "no blueprint store in:\n{printed}"
    );
    let found = timelines(dir.path(), &rrd);
    for timeline in ["tick", "robot_time", "episode", "epoch", "log_time"] {
        assert!(found.contains(timeline), "no {timeline} in {found:?}");
    }
}

#[test]
fn training_plans_and_faults_are_where_the_viewer_and_the_summary_see_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("session.rrd");
    let viz = Viz::start(
        &VizOptions::with_sink(VizSink::Save(rrd.clone())),
        &calibration(),
    )
    .expect("viz starts");
    let tx = viz.sender();
    // Tick 0: idle, no state yet: the record says StaleState, the summary counts nothing.
    let mut first = tick(0, Mode::Idle, Some(HostFault::StaleState));
    first.state_count = 0;
    assert!(tx.send_tick(&first));
    for epoch in 0..4 {
        let point = TrainingPoint {
            model_version: 2,
            epoch,
            train_nll: 1.0 / (1.0 + epoch as f32),
            validation_nll: Some(1.5 / (1.0 + epoch as f32)),
            last_epoch: epoch == 3,
        };
        assert!(tx.send(VizEvent::Training(point)));
    }
    for t in 1..40 {
        // One fault while driving: an event the summary counts.
        let fault = (t == 20).then_some(HostFault::Overrun);
        assert!(tx.send_tick(&tick(t, Mode::Autonomous, fault)));
        if (5..25).contains(&t) {
            assert!(tx.send(VizEvent::Plan(plan(t))));
        }
    }
    let report = viz.finish();
    assert_eq!((report.dropped, report.log_errors), (0, 0), "{report:?}");
    let timelines = entity_timelines(dir.path(), &rrd);
    let on = |entity: &str| -> &BTreeSet<String> {
        timelines
            .get(entity)
            .unwrap_or_else(|| panic!("no {entity} in {timelines:#?}"))
    };
    // Each fit's curve on `epoch`; its last epoch on `tick`, where the robot is.
    assert!(on("/train/v2/validation_nll").contains("epoch"));
    assert!(!on("/train/v2/validation_nll").contains("tick"));
    for entity in ["/train/fit/validation_nll", "/train/fit/train_nll"] {
        assert!(on(entity).contains("tick"), "{entity}: {:?}", on(entity));
        assert!(!on(entity).contains("epoch"), "{entity}: {:?}", on(entity));
    }
    // A plan is stamped with its tick, never with the epoch a training point left set.
    for entity in [
        "/plan/state/pole_angle/mean",
        "/plan/state/pole_angle/actual",
        "/plan/state/pole_angle/axes",
        "/plan/action/force/mean",
        "/robot/plan/mean",
    ] {
        assert!(on(entity).contains("tick"), "{entity}: {:?}", on(entity));
        assert!(!on(entity).contains("epoch"), "{entity}: {:?}", on(entity));
    }
    // One fault event shown, the one the summary counts; not the idle tick 0.
    assert_eq!(rows_of(dir.path(), &rrd, "/faults"), 1);
}

/// A headless rerun receiver: `rerun --port P --save FILE` (killed on drop).
struct Receiver {
    child: std::process::Child,
    port: u16,
}

impl Receiver {
    fn start(home: &Path, rrd: &Path) -> Self {
        let exe = repo().join(".venv/bin/rerun");
        assert!(
            exe.exists(),
            "{} is missing: run `bash models/setup.sh` once",
            exe.display()
        );
        let _ = rerun_cli(home, &["analytics", "disable"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&exe)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save"])
            .arg(rrd)
            .env("XDG_DATA_HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .env("XDG_CACHE_HOME", home)
            .env("HOME", home)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rerun receiver");
        // Killed on drop, also if it never listens.
        let receiver = Self { child, port };
        // Readiness, not timing: wait (bounded) until it accepts connections.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return receiver;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the rerun receiver did not listen on port {port}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_session_streams_to_a_running_viewer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("received.rrd");
    let receiver = Receiver::start(dir.path(), &rrd);
    let url = format!("rerun+http://127.0.0.1:{}/proxy", receiver.port);
    let viz = Viz::start(
        &VizOptions::with_sink(VizSink::Connect(url)),
        &calibration(),
    )
    .expect("viz connects");
    let tx = viz.sender();
    for t in 0..20 {
        assert!(tx.send(VizEvent::Tick(tick(t, Mode::Autonomous, None))));
    }
    let report = viz.finish();
    assert_eq!((report.logged, report.log_errors), (20, 0), "{report:?}");
    // The receiver writes as it receives; wait (bounded) for the last entity to land.
    let mut found = BTreeMap::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let printed = Command::new(repo().join(".venv/bin/rerun"))
            .args(["rrd", "print", "--continue-on-error=true"])
            .arg(&rrd)
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_CACHE_HOME", dir.path())
            .env("HOME", dir.path())
            .output()
            .expect("rerun rrd print");
        found = parse_chunks(&String::from_utf8_lossy(&printed.stdout));
        if found.contains_key("/robot/tip") && found.contains_key("/timing/compute_us") {
            break;
        }
    }
    drop(receiver);
    for path in [
        "/robot/cart",
        "/robot/tip",
        "/state/pole_angle",
        "/timing/compute_us",
    ] {
        assert!(found.contains_key(path), "no {path} in {found:#?}");
    }
}

#[test]
fn a_pendulum_is_drawn_from_its_pivot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("pendulum.rrd");
    let calib = Calibration::load(&repo().join("calib/pendulum-sim.toml")).expect("calibration");
    let viz = Viz::start(&VizOptions::with_sink(VizSink::Save(rrd.clone())), &calib).expect("viz");
    let tx = viz.sender();
    for t in 0..10 {
        let mut r = tick(t, Mode::Autonomous, None);
        r.state_dim = 2;
        assert!(tx.send(VizEvent::Tick(r)));
    }
    assert_eq!(viz.finish().log_errors, 0);
    let found = entities(dir.path(), &rrd);
    for path in [
        "/robot/pivot",
        "/robot/pole",
        "/robot/tip",
        "/state/pole_angular_velocity",
    ] {
        assert!(found.contains_key(path), "no {path} in {found:#?}");
    }
    assert!(!found.contains_key("/robot/cart") && !found.contains_key("/robot/rail"));
}

/// Waits for `child` (bounded: a hang is what is tested, not a speed); kills it and panics
/// naming `what` if it is still running after two minutes. Returns its stderr and status.
fn exits(mut child: std::process::Child, what: &str) -> (std::process::ExitStatus, String) {
    for _ in 0..1_200 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut stderr = String::new();
            use std::io::Read;
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            return (status, stderr);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what} never exited");
}

#[test]
fn a_viewer_that_is_not_there_costs_a_warning_and_a_bounded_wait_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("rerun+http://127.0.0.1:{port}/proxy");
    let spawn = |args: &[&str]| {
        crate::cli::handful()
            .args(args)
            .env("RUST_LOG", "warn")
            // No display for a spawned viewer.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_CACHE_HOME", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("handful")
    };
    // A run streaming to nothing: the run's work is done and kept, the viewer's data is
    // dropped with a warning, and the process exits 0.
    for (sink, name) in [
        (vec!["--connect", &url], "connect"),
        (vec!["--spawn"], "spawn"),
    ] {
        let out = dir.path().join(name);
        let mut args = vec![
            "run",
            "--controller",
            "expert",
            "--lockstep",
            "--episodes",
            "1",
            "--steps",
            "40",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(sink.iter().copied());
        let (status, stderr) = exits(spawn(&args), &format!("handful run --{name}"));
        assert!(status.success(), "--{name}: {status}\n{stderr}");
        assert!(out.join("summary.json").is_file(), "--{name}: no summary");
        if name == "connect" {
            assert!(
                stderr.contains("the viewer did not take the recording"),
                "--{name}: {stderr}"
            );
        }
    }
    // `handful view` exists to deliver to the viewer: not delivering is its failure.
    let dataset = dir.path().join("demos");
    tiny_dataset(&dataset, &calibration(), 1, 5);
    let (status, stderr) = exits(
        spawn(&["view", dataset.to_str().unwrap(), "--connect", &url]),
        "handful view --connect",
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("could not deliver the recording"),
        "{stderr}"
    );
}

#[test]
fn a_saved_session_is_written_as_files_that_each_end_and_open_on_their_own() {
    // rerun's file writer keeps every chunk's metadata until its file ends, so a long
    // session is cut into segments; here every 0.3 s instead of every minute.
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("viz.rrd");
    let mut options = VizOptions::with_sink(VizSink::Save(rrd.clone()));
    options.segment_us = 300_000;
    let viz = Viz::start(&options, &calibration()).expect("viz starts");
    let tx = viz.sender();
    for t in 0..40 {
        assert!(tx.send_tick(&tick(t, Mode::Autonomous, None)));
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let report = viz.finish();
    assert_eq!(report.log_errors, 0, "{report:?}");
    let second = dir.path().join("viz.001.rrd");
    assert!(second.is_file(), "no second segment");
    // Each segment passes rerun's own verification (its footer was written) and holds
    // the static entities and ticks of its own (the blueprint is in the first).
    for file in [&rrd, &second] {
        check_rrd(
            dir.path(),
            file,
            &[
                ("/robot/rail", "LineStrips2D"),
                ("/robot/cart", "Boxes2D"),
                ("/timing/compute_us", "Scalars"),
            ],
        );
    }
}

/// Rows logged on `entity` in `rrd` (summed over its chunks, as `rerun rrd print` counts).
fn rows_of(home: &std::path::Path, rrd: &std::path::Path, entity: &str) -> u64 {
    let printed = rerun_cli(home, &["rrd", "print", rrd.to_str().expect("utf-8")]);
    printed
        .lines()
        .filter(|l| l.starts_with("Chunk(") && l.contains(&format!(" - {entity} - ")))
        .filter_map(|l| {
            let rest = l.split(" with ").nth(1)?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn a_decimated_session_logs_every_nth_tick_and_still_sees_every_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("viz.rrd");
    let mut options = VizOptions::with_sink(VizSink::Save(rrd.clone()));
    options.tick_every = 5;
    let viz = Viz::start(&options, &calibration()).expect("viz starts");
    let tx = viz.sender();
    for t in 0..40 {
        // A fault on a tick the decimation skips (7) is still logged.
        let fault = (t == 7).then_some(HostFault::StaleState);
        assert!(tx.send_tick(&tick(t, Mode::Autonomous, fault)));
    }
    let report = viz.finish();
    assert_eq!(report.log_errors, 0, "{report:?}");
    assert_eq!(rows_of(dir.path(), &rrd, "/timing/compute_us"), 8);
    assert!(rows_of(dir.path(), &rrd, "/faults") >= 1);
}

#[test]
fn a_saved_session_over_its_size_budget_deletes_its_oldest_files_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("viz.rrd");
    let mut options = VizOptions::with_sink(VizSink::Save(rrd.clone()));
    options.segment_us = 100_000;
    // About three segments' worth: the recording must drop its oldest to stay within.
    options.budget_bytes = Some(60_000);
    let viz = Viz::start(&options, &calibration()).expect("viz starts");
    let tx = viz.sender();
    for t in 0..120 {
        assert!(tx.send_tick(&tick(t, Mode::Autonomous, None)));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let report = viz.finish();
    assert_eq!(report.log_errors, 0, "{report:?}");
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rrd"))
        .collect();
    let sizes: Vec<u64> = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(
        report.segments_deleted > 0,
        "{report:?} {files:?} {sizes:?}"
    );
    assert!(!rrd.exists(), "the oldest file is the first deleted");
    // Within the budget, but for the file that was being written at the end.
    assert!(total <= 60_000 + largest, "{total} bytes in {files:?}");
    // The newest file is whole and holds the last ticks.
    let newest = files.iter().max().unwrap();
    check_rrd(dir.path(), newest, &[("/timing/compute_us", "Scalars")]);
}
