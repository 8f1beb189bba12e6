//! Teleoperation: the dead-man rule, scaling and rate limit, the keyboard's held keys,
//! episode buttons, and a scripted operator at the simulated robot's controls recorded
//! through the firmware-forwarded path end to end.

use std::path::Path;
use std::sync::{Arc, Mutex};

use handful::clock::Clock;
use handful::control::{Controller, Observation};
use handful::dataset::DatasetReader;
use handful::teleop::keyboard::{HOLD_US, Keys};
use handful::teleop::{
    BUTTON_DEADMAN, BUTTON_START, BUTTON_STOP_KEEP, EpisodeButtons, EpisodeCommand,
    TeleopController, TeleopInput, TeleopMapping, TeleopSource,
};

struct Scripted(Mutex<Option<TeleopInput>>);

impl TeleopSource for Scripted {
    fn latest(&self) -> Option<TeleopInput> {
        *self.0.lock().unwrap()
    }

    fn name(&self) -> &'static str {
        "scripted"
    }
}

fn input(now_us: u64, buttons: u32, axis: f32) -> TeleopInput {
    let mut input = TeleopInput {
        host_time_us: now_us,
        buttons,
        axis_count: 1,
        ..TeleopInput::default()
    };
    input.axes[0] = axis;
    input
}

fn act(controller: &mut TeleopController) -> f32 {
    let obs = Observation {
        state: &[0.0; 4],
        now_us: 0,
        state_age_us: 0,
        tick: 0,
    };
    let mut action = [f32::NAN];
    controller.act(&obs, &mut action).unwrap();
    action[0]
}

#[test]
fn the_dead_man_scaling_rate_limit_and_staleness_shape_the_command() {
    let clock = Clock::simulated();
    let source = Arc::new(Scripted(Mutex::new(None)));
    let mapping = TeleopMapping {
        axis_for_action: vec![0],
        limits: vec![(-3.0, 3.0)],
        safe: vec![0.0],
        max_step_fraction: 0.25, // 1.5 per tick on a range of 6
        stale_input_us: 100_000,
    };
    let mut controller = TeleopController::new(source.clone(), mapping, clock.clone());
    let set = |i| *source.0.lock().unwrap() = Some(i);

    assert_eq!(act(&mut controller), 0.0, "no input: safe");
    set(input(0, 0, 1.0));
    assert_eq!(act(&mut controller), 0.0, "dead-man released: safe");
    set(input(0, BUTTON_DEADMAN, 1.0));
    assert_eq!(act(&mut controller), 1.5, "rate-limited towards full scale");
    assert_eq!(act(&mut controller), 3.0, "full scale is the limit");
    set(input(0, BUTTON_DEADMAN, -0.5));
    assert_eq!(act(&mut controller), 1.5);
    assert_eq!(act(&mut controller), 0.0);
    assert_eq!(
        act(&mut controller),
        -1.5,
        "half scale on the negative side"
    );
    set(input(0, BUTTON_DEADMAN, 7.0));
    assert_eq!(
        act(&mut controller),
        0.0,
        "axes are clamped to [-1, 1]: +1.5 from -1.5"
    );
    clock.sleep_until(200_000);
    assert_eq!(
        act(&mut controller),
        0.0,
        "stale input: safe at once, no rate limit"
    );
}

#[test]
fn keyboard_keys_hold_for_a_while_and_taps_are_momentary() {
    use crossterm::event::{KeyCode, KeyModifiers};
    let mut keys = Keys::default();
    keys.press(KeyCode::Left, KeyModifiers::NONE, 1_000);
    let held = keys.input(1_000 + HOLD_US);
    assert_eq!(held.axes[0], -1.0);
    assert!(held.pressed(BUTTON_DEADMAN));
    let released = keys.input(2_000 + HOLD_US);
    assert_eq!(released.axes[0], 0.0);
    assert!(!released.pressed(BUTTON_DEADMAN));
    keys.press(KeyCode::Right, KeyModifiers::SHIFT, 5_000_000);
    assert_eq!(keys.input(5_000_000).axes[0], 0.5);
    keys.press(KeyCode::Enter, KeyModifiers::NONE, 6_000_000);
    assert!(keys.input(6_050_000).pressed(BUTTON_START));
    assert!(!keys.input(6_200_000).pressed(BUTTON_START));
}

#[test]
fn episode_buttons_fire_once_per_press() {
    let mut buttons = EpisodeButtons::default();
    let held = |b| Some(input(0, b, 0.0));
    assert_eq!(
        buttons.poll(held(BUTTON_START)),
        Some(EpisodeCommand::Start)
    );
    assert_eq!(
        buttons.poll(held(BUTTON_START)),
        None,
        "still held: no new edge"
    );
    assert_eq!(
        buttons.poll(held(BUTTON_START | BUTTON_STOP_KEEP)),
        Some(EpisodeCommand::StopKeep)
    );
    assert_eq!(buttons.poll(None), None);
    assert_eq!(
        buttons.poll(held(BUTTON_START)),
        Some(EpisodeCommand::Start)
    );
}

/// `handful record` driven by the simulator's scripted operator `script`, its inputs
/// forwarded by the firmware, into `dataset`.
fn record_by_operator(script: &str, dataset: &Path) -> std::process::Output {
    crate::cli::handful()
        .args(["record", "--teleop", "firmware"])
        .arg(format!("--sim-arg=--operator={script}"))
        .arg("--dataset")
        .arg(dataset)
        .output()
        .unwrap()
}

#[test]
fn an_operator_at_the_robot_records_an_episode_through_the_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("demos");
    let output = record_by_operator("demo", &dataset);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reader = DatasetReader::open(Path::new(&dataset)).unwrap();
    assert_eq!(reader.episodes().len(), 1, "{:?}", reader.episodes());
    let frames: Vec<_> = reader.frames().map(Result::unwrap).collect();
    // Three seconds of driving at 25 Hz, give or take the button timing.
    assert!((60..=80).contains(&frames.len()), "{} frames", frames.len());
    let actions: Vec<f32> = frames.iter().map(|f| f.frame.action[0]).collect();
    assert!(actions.iter().all(|a| a.abs() <= 3.0));
    // The operator pushed the stick both ways: so did the commands.
    assert!(
        actions.iter().any(|&a| a > 1.0) && actions.iter().any(|&a| a < -1.0),
        "{actions:?}"
    );
    assert!(frames.iter().all(|f| f.frame.is_expert));
}

#[test]
fn quitting_while_an_episode_records_discards_it_and_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("demos");
    let output = record_by_operator("quit", &dataset);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("quitting: the episode in progress is discarded"),
        "{stderr}"
    );
    // Nothing kept: the operator did not end the episode where a demonstration ends.
    if let Ok(reader) = DatasetReader::open(Path::new(&dataset)) {
        assert_eq!(reader.episodes().len(), 0, "{:?}", reader.episodes());
    }
}
