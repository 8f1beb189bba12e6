//! Faults through the whole path: each leads to the safe command and a visible fault,
//! never to a panic, and leaving a latched fault needs an explicit re-arm.

use std::time::Duration;

use handful::control::{ControlError, Controller, EpisodeEnd, HostFault, Mode, Observation};
use handful::expert;
use handful::plant::PlantKind;
use handful::sim::{self, SimArgs};
use handful::task::Task;

use super::rig::{Rig, calibration, calibration_edited};

/// The expert, except that it writes NaN once, at its `nan_at`-th call.
struct NanOnce {
    inner: Box<dyn Controller>,
    calls: u32,
    nan_at: u32,
}

impl Controller for NanOnce {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        self.calls += 1;
        self.inner.act(obs, action)?;
        if self.calls == self.nan_at {
            action[0] = f32::NAN;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn name(&self) -> &'static str {
        "nan-once"
    }
}

#[test]
fn a_nan_action_sends_the_safe_command_latches_a_fault_and_needs_a_rearm() {
    let calib = calibration("cartpole-sim.toml");
    let controller = Box::new(NanOnce {
        inner: expert::expert_for(Task::CartpoleSwingup),
        calls: 0,
        nan_at: 10,
    });
    let rig = Rig::start(&calib, PlantKind::Cartpole, true, |_| {}, controller);
    let summary = rig.episode(100, 1);
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(HostFault::NonFiniteAction),
        "{summary:?}"
    );
    // While faulted, every tick sends the safe command (0 for the cart-pole).
    let mut faulted_ticks = 0;
    for _ in 0..20 {
        let record = rig
            .handle
            .records
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        if record.mode == Mode::Fault {
            faulted_ticks += 1;
            assert_eq!(record.action(), &[0.0]);
        }
    }
    assert!(faulted_ticks > 0, "the loop left Fault without a re-arm");
    // An explicit re-arm starts a new, clean episode.
    let again = rig.episode(50, 2);
    assert_eq!(again.end, EpisodeEnd::Completed, "{again:?}");
}

#[test]
fn a_stalled_robot_gives_a_stale_state_fault() {
    let calib = calibration("cartpole-sim.toml");
    let rig = Rig::start(
        &calib,
        PlantKind::Cartpole,
        true,
        |o| {
            o.stall = Some(sim::Window {
                at_us: 1_000_000,
                for_us: Some(60_000_000),
            })
        },
        expert::expert_for(Task::CartpoleSwingup),
    );
    let summary = rig.episode(200, 3);
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(HostFault::StaleState),
        "{summary:?}"
    );
    assert!(summary.steps < 200);
}

/// Per-channel heartbeat timeout (MAVLink's five missed): a firmware whose heartbeat
/// task hangs while its States go on is a fault, answered by the safe command.
#[test]
fn a_firmware_that_stops_heartbeating_faults_within_five_of_its_intervals() {
    // A wider staleness bound: on a loaded machine a late state must not pre-empt the
    // heartbeat fault this test is about.
    let calib = calibration_edited("cartpole-sim.toml", |text| {
        text.replace("stale_state_ms = 100.0", "stale_state_ms = 400.0")
    });
    let rig = Rig::start(
        &calib,
        PlantKind::Cartpole,
        false,
        |o| o.heartbeat_stop_us = Some(1_000_000),
        expert::expert_for(Task::CartpoleSwingup),
    );
    let interval_us = u64::from(rig.link.robot().heartbeat_interval_us);
    let start = rig
        .handle
        .requests
        .send(handful::control::Request::StartEpisode(
            handful::control::EpisodeStart::arm(
                Mode::Autonomous,
                handful::control::Phase::of_task(Task::CartpoleSwingup, Some(200)),
                Some(5),
            ),
        ));
    start.unwrap();
    // Every record until the episode's summary: the first faulted tick, and what every
    // tick from it on sent.
    let mut first_fault = None;
    let mut check = |record: handful::control::TickRecord| {
        if record.mode == Mode::Idle {
            // Before the episode (no state yet at start-up), or after it.
            return;
        }
        if let Some(fault) = record.fault {
            assert_eq!(fault, HostFault::HeartbeatLost, "{record:?}");
            first_fault.get_or_insert(record.firmware_us);
        }
        if first_fault.is_some() {
            assert_eq!(record.action(), &[0.0], "{record:?}");
        }
    };
    let summary = loop {
        while let Ok(record) = rig.handle.records.try_recv() {
            check(record);
        }
        if let Ok(summary) = rig.handle.episodes.recv_timeout(Duration::from_millis(20)) {
            break summary;
        }
    };
    // The faulted tick publishes its record after the summary; and a few more.
    for _ in 0..5 {
        check(
            rig.handle
                .records
                .recv_timeout(Duration::from_secs(2))
                .unwrap(),
        );
    }
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(HostFault::HeartbeatLost),
        "{summary:?}"
    );
    // Not before five intervals without one (the last heartbeat came at most one
    // interval before 1 s; firmware time of the latest state), and soon after them.
    let at = first_fault.expect("a faulted tick");
    assert!(
        at >= 1_000_000 + 4 * interval_us && at <= 1_000_000 + 5 * interval_us + 1_000_000,
        "fault seen at firmware {at} µs, five intervals are {} µs",
        5 * interval_us
    );
    let report = rig.handle.stop().unwrap();
    assert_eq!(report.faults.get(HostFault::HeartbeatLost), 1, "{report:?}");
}

#[test]
fn corrupted_and_dropped_frames_are_counted_while_the_loop_keeps_running() {
    // Real time: a lost state only makes the next tick's state one period older. The
    // staleness bound is widened so that a few drops in a row stay within it.
    let calib = calibration_edited("cartpole-sim.toml", |text| {
        text.replace("stale_state_ms = 100.0", "stale_state_ms = 300.0")
    });
    let rig = Rig::start(
        &calib,
        PlantKind::Cartpole,
        false,
        |o| {
            o.drop_prob = 0.03;
            o.corrupt_prob = 0.03;
            o.seed = 11;
        },
        expert::expert_for(Task::CartpoleSwingup),
    );
    let summary = rig.episode(75, 4);
    assert_eq!(summary.end, EpisodeEnd::Completed, "{summary:?}");
    let stats = rig.link.stats();
    assert!(
        stats.crc_errors + stats.decode_errors.total() > 0,
        "{stats:?}"
    );
    assert!(stats.dropped_frames > 0, "{stats:?}");
}

#[test]
fn unplugging_faults_to_the_safe_command_and_a_rearm_after_reconnect_drives_again() {
    let calib = calibration("cartpole-sim.toml");
    let dir = tempfile::tempdir().unwrap();
    let link_path = dir.path().join("robot");
    let args = || {
        let mut args = SimArgs {
            link: Some(link_path.clone()),
            ..sim_args()
        };
        args.seed = 5;
        args
    };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_handful"));
    let mut robot = sim::spawn_process(exe, &args()).expect("simulator process");
    let rig = Rig::attach(
        &calib,
        &link_path,
        false,
        expert::expert_for(Task::CartpoleSwingup),
        dir,
    );
    rig.handle
        .requests
        .send(handful::control::Request::StartEpisode(
            handful::control::EpisodeStart::arm(
                Mode::Autonomous,
                handful::control::Phase::of_task(rig.task, None),
                Some(1),
            ),
        ))
        .map_err(|_| "loop stopped")
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    robot.kill().expect("kill the simulator");
    let summary = rig.wait_episode(Duration::from_secs(10));
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(HostFault::LinkLost),
        "{summary:?}"
    );
    assert!(!rig.link.stats().connected);

    // Plug a robot back in at the same path: the link reconnects by itself, the loop
    // stays in Fault until re-armed.
    let _robot = sim::spawn_process(exe, &args()).expect("simulator process again");
    let reconnected = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        rig.link.stats().connected
    });
    assert!(reconnected, "{:?}", rig.link.stats());
    assert_eq!(rig.link.stats().reconnects, 1);
    let record = rig
        .handle
        .records
        .recv_timeout(Duration::from_secs(5))
        .unwrap();
    let mut mode = record.mode;
    while let Ok(r) = rig.handle.records.try_recv() {
        mode = r.mode;
    }
    assert_eq!(mode, Mode::Fault);
    let again = rig.episode(25, 9);
    assert_eq!(again.end, EpisodeEnd::Completed, "{again:?}");
}

fn sim_args() -> SimArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimArgs,
    }
    <Cli as clap::Parser>::try_parse_from(["sim", "cartpole"])
        .unwrap()
        .args
}

#[test]
fn malformed_calibrations_are_refused_with_the_file_the_key_and_the_expectation() {
    let good = calibration("cartpole-sim.toml").text;
    let check = |edit: &dyn Fn(&str) -> String, expected: &[&str]| {
        let text = edit(&good);
        let path = std::path::Path::new("calib/broken.toml");
        let err = handful::calib::Calibration::from_toml(path, &text)
            .expect_err("must be refused")
            .to_string();
        for part in expected {
            assert!(err.contains(part), "error {err:?} lacks {part:?}");
        }
    };
    check(
        &|t| t.replace("control_rate_hz = 25.0", "control_rate_hz = -1.0"),
        &[
            "calib/broken.toml",
            "timing.control_rate_hz",
            "a positive number",
        ],
    );
    check(
        &|t| t.replace("min = -3.0", "min = 4.0"),
        &["action[0].max", "greater than min"],
    );
    check(
        &|t| t.replace("safe = 0.0", "safe = 9.0"),
        &["action[0].safe", "within [min, max]"],
    );
    check(
        &|t| t.replace("baud = 1000000", "baud = \"fast\""),
        &["calib/broken.toml", "baud"],
    );
    check(
        &|t| t.replace("[timing]", "[timing]\ncontrol_rate = 3"),
        &["unknown field", "control_rate"],
    );
    check(
        &|t| t.replace("stale_state_ms = 100.0", "stale_state_ms = 10.0"),
        &["timing.stale_state_ms", "at least one control period"],
    );
    check(
        &|t| t.replace("task = \"cartpole_swingup\"", "task = \"juggling\""),
        &["task", "juggling"],
    );
    check(&|t| t[..t.len() / 2].to_owned(), &["calib/broken.toml"]);
}

/// The expert, except that some calls go wrong: from `fail_at` on it returns an error,
/// and at the calls in `slow_at` it first sleeps `slow` (far past the control period)
/// and writes a command the safe one (0) is not.
struct Misbehaving {
    inner: Box<dyn Controller>,
    calls: u32,
    fail_at: Option<u32>,
    slow_at: &'static [u32],
    slow: Duration,
}

impl Misbehaving {
    fn new(fail_at: Option<u32>, slow_at: &'static [u32], slow: Duration) -> Box<Self> {
        Box::new(Self {
            inner: expert::expert_for(Task::CartpoleSwingup),
            calls: 0,
            fail_at,
            slow_at,
            slow,
        })
    }
}

impl Controller for Misbehaving {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        self.calls += 1;
        if self.fail_at.is_some_and(|n| self.calls >= n) {
            return Err(ControlError::NotReady);
        }
        self.inner.act(obs, action)?;
        if self.slow_at.contains(&self.calls) {
            std::thread::sleep(self.slow);
            action[0] = 1.5;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn name(&self) -> &'static str {
        "misbehaving"
    }
}

/// Every record until the episode's summary arrives, then the summary.
pub(super) fn records_of_episode(
    rig: &Rig,
    steps: u32,
    seed: u64,
) -> (
    Vec<handful::control::TickRecord>,
    handful::control::EpisodeSummary,
) {
    rig.handle
        .requests
        .send(handful::control::Request::StartEpisode(
            handful::control::EpisodeStart::arm(
                Mode::Autonomous,
                handful::control::Phase::of_task(rig.task, Some(steps)),
                Some(seed),
            ),
        ))
        .map_err(|_| "loop stopped")
        .unwrap();
    let mut records = Vec::new();
    let waiter = handful::clock::Clock::real();
    let give_up = waiter.now_us() + 60_000_000;
    let summary = loop {
        while let Ok(r) = rig.handle.records.try_recv() {
            records.push(r);
        }
        if let Ok(s) = rig.handle.episodes.recv_timeout(Duration::from_millis(20)) {
            break s;
        }
        assert!(waiter.now_us() < give_up, "no episode summary");
    };
    // The records of the ticks up to the end (the loop publishes after the summary).
    while let Ok(r) = rig.handle.records.recv_timeout(Duration::from_secs(2)) {
        let done = r.tick >= summary.last_tick + 3;
        records.push(r);
        if done {
            break;
        }
    }
    (records, summary)
}

#[test]
fn a_controller_error_sends_the_safe_command_latches_a_fault_and_needs_a_rearm() {
    let calib = calibration("cartpole-sim.toml");
    let controller = Misbehaving::new(Some(12), &[], Duration::ZERO);
    let rig = Rig::start(&calib, PlantKind::Cartpole, true, |_| {}, controller);
    let (records, summary) = records_of_episode(&rig, 100, 1);
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(HostFault::Controller),
        "{summary:?}"
    );
    // The failing call was the 12th: 11 steps were driven by the controller.
    assert_eq!(summary.steps, 11, "{summary:?}");
    let failed = records
        .iter()
        .find(|r| r.fault == Some(HostFault::Controller))
        .expect("the failing tick's record names the fault");
    assert_eq!(
        failed.action(),
        &[0.0],
        "the failing tick sent the safe command"
    );
    assert!(failed.command_seq.is_some(), "a command was sent");
    let after: Vec<_> = records.iter().filter(|r| r.tick > failed.tick).collect();
    assert!(!after.is_empty());
    for r in after {
        assert_eq!(r.mode, Mode::Fault, "{r:?}");
        assert_eq!(r.action(), &[0.0], "{r:?}");
    }
    // The controller still fails: a re-arm gets exactly as far as the first tick.
    let again = rig.episode(20, 2);
    assert_eq!(again.end, EpisodeEnd::Faulted(HostFault::Controller));
    assert_eq!(again.steps, 0);
    let report = rig.handle.stop().expect("loop report");
    assert_eq!(
        report.faults.get(HostFault::Controller),
        2,
        "{:?}",
        report.faults
    );
}

#[test]
fn a_late_command_is_replaced_by_the_safe_one_and_repeated_overruns_latch_a_fault() {
    // Real time (lockstep never overruns). The controller sleeps two periods at call 5
    // (one overrun: the safe command goes out, the episode goes on) and at calls 20–22
    // (three in a row: `RepeatedOverrun` latches). Sleeping longer than a period can only
    // be late, however loaded the machine: this asserts behaviour, not timing. The
    // firmware's watchdog is widened so that the late (refused) commands do not trip it
    // before the host's own latch.
    let calib = calibration_edited("cartpole-sim.toml", |t| {
        t.replace(
            "watchdog_timeout_ms = 200.0",
            "watchdog_timeout_ms = 2000.0",
        )
    });
    let period = Duration::from_micros(calib.control_period_us);
    let controller = Misbehaving::new(None, &[5, 20, 21, 22], 2 * period);
    let rig = Rig::start(
        &calib,
        PlantKind::Cartpole,
        false,
        |o| o.watchdog_timeout_us = 2_000_000,
        controller,
    );
    let (records, summary) = records_of_episode(&rig, 200, 3);
    assert_eq!(
        summary.end,
        EpisodeEnd::Faulted(HostFault::RepeatedOverrun),
        "{summary:?}"
    );
    let late: Vec<_> = records
        .iter()
        .filter(|r| {
            matches!(
                r.fault,
                Some(HostFault::Overrun | HostFault::RepeatedOverrun)
            )
        })
        .collect();
    // Each late tick sent the safe command, never the 1.5 the controller wrote.
    for r in &late {
        assert_eq!(r.action(), &[0.0], "{r:?}");
        assert!(r.command_seq.is_some(), "{r:?}");
    }
    assert!(records.iter().all(|r| r.action() != [1.5]));
    let kinds: Vec<_> = late.iter().map(|r| r.fault.unwrap()).collect();
    assert_eq!(kinds.first(), Some(&HostFault::Overrun), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&HostFault::RepeatedOverrun), "{kinds:?}");
    // The single overrun did not end the episode; the latch came with the third in a row.
    let latch = late.last().unwrap();
    assert!(latch.tick > late[0].tick + 10, "{kinds:?}");
    assert!(
        records
            .iter()
            .filter(|r| r.tick > latch.tick)
            .all(|r| r.mode == Mode::Fault && r.action() == [0.0])
    );
    let report = rig.handle.stop().expect("loop report");
    assert!(report.timing.overruns >= 4, "{:?}", report.timing);
    assert_eq!(
        report.faults.get(HostFault::RepeatedOverrun),
        1,
        "{:?}",
        report.faults
    );
}
