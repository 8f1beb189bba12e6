//! `handful view DATASET`: a recorded LeRobot v3 dataset replayed into the viewer (or an
//! `.rrd`): per frame the states, actions, reward and the robot drawing; per episode its
//! return. Runs on the caller's thread; reads the dataset one record batch at a time.
//!
//! Timelines: `tick` (the dataset's global frame `index`), `frame` (index within the
//! episode), `episode`, `robot_time` (the firmware's clock) and `host_time` (the host's).

use std::path::Path;

use rerun::{RecordingStream, TextLogLevel};

use super::draw::{Layout, entity_name, log_scalar, log_scalars, log_text};
use super::live::open_recording;
use super::{ReplayReport, VizError, VizOptions};
use crate::calib::Calibration;
use crate::dataset::DatasetReader;

/// Replays the dataset at `root` into `options.sink` and flushes it.
pub fn view_dataset(root: &Path, options: &VizOptions) -> Result<ReplayReport, VizError> {
    let reader = DatasetReader::open(root)?;
    let layout = layout_of(&reader, root);
    let mut options = options.clone();
    if options.recording_name.is_none() {
        options.recording_name = Some(root.display().to_string());
    }
    let rec = open_recording(&options, &layout)?;
    let mut report = ReplayReport {
        robot_drawn: layout.task.is_some(),
        ..ReplayReport::default()
    };
    let check = |entity: &str, result: Result<(), rerun::RecordingStreamError>| {
        result.map_err(|e| VizError::Log {
            entity: entity.to_owned(),
            source: Box::new(e),
        })
    };
    check("static", layout.log_static(&rec))?;
    for episode in reader.episodes() {
        let mut episode_return = 0.0f64;
        let mut last_index = episode.dataset_from_index;
        for frame in reader.episode_frames(episode.episode_index)? {
            let f = frame?;
            set_time(&rec, f.index, f.frame_index, f.episode_index);
            rec.set_duration_secs("robot_time", f.frame.firmware_time_us as f64 * 1e-6);
            rec.set_duration_secs("host_time", f.frame.host_time_us as f64 * 1e-6);
            check(
                "state",
                log_scalars(&rec, "state", &layout.state_names, &f.frame.state),
            )?;
            check(
                "action",
                log_scalars(&rec, "action", &layout.action_names, &f.frame.action),
            )?;
            check(
                "episode/reward",
                log_scalar(&rec, "episode/reward", f64::from(f.frame.reward)),
            )?;
            check("robot", layout.log_robot(&rec, &f.frame.state))?;
            if f.frame_index == 0 {
                let who = if f.frame.is_expert {
                    "expert"
                } else {
                    "learner"
                };
                let text = format!("episode {} ({who})", f.episode_index);
                check("log", log_text(&rec, "log", TextLogLevel::INFO, text))?;
            }
            episode_return += f64::from(f.frame.reward);
            last_index = f.index;
            report.frames += 1;
        }
        set_time(&rec, last_index, episode.length - 1, episode.episode_index);
        check(
            "episode/return",
            log_scalar(&rec, "episode/return", episode_return),
        )?;
        report.episodes += 1;
    }
    super::live::finish_recording(rec, &options.sink).map_err(|e| VizError::Flush {
        sink: options.sink.clone(),
        source: Box::new(e),
    })?;
    Ok(report)
}

fn set_time(rec: &RecordingStream, index: i64, frame_index: i64, episode_index: i64) {
    rec.reset_time();
    rec.set_time_sequence("tick", index);
    rec.set_time_sequence("frame", frame_index);
    rec.set_time_sequence("episode", episode_index);
}

/// The layout from the calibration stored in the dataset's provenance; without one (or
/// if it no longer parses), the feature names alone, with no robot drawing.
fn layout_of(reader: &DatasetReader, root: &Path) -> Layout {
    let info = reader.info();
    let text = &info.handful.provenance.calibration_text;
    let origin = root.join("meta/info.json");
    match Calibration::from_toml(&origin, text) {
        Ok(calib) => return Layout::from_calibration(&calib),
        Err(e) if !text.is_empty() => {
            tracing::warn!(error = %e, "the dataset's calibration does not parse; no robot drawing");
        }
        Err(_) => {}
    }
    let names = |key: &str, fallback: &str| -> Vec<String> {
        let width = info
            .features
            .get(key)
            .and_then(|f| f.shape.first().copied())
            .unwrap_or(0);
        let given = info
            .features
            .get(key)
            .and_then(|f| f.names.clone())
            .unwrap_or_default();
        (0..width)
            .map(|i| {
                given
                    .get(i)
                    .map_or_else(|| format!("{fallback}_{i}"), |n| entity_name(n))
            })
            .collect()
    };
    let state_names = names("observation.state", "state");
    let action_names = names("action", "action");
    Layout {
        task: None,
        state_units: vec![String::new(); state_names.len()],
        action_units: vec![String::new(); action_names.len()],
        action_limits: Vec::new(),
        state_names,
        action_names,
        period_s: 1.0 / f64::from(info.fps.max(1)),
    }
}
