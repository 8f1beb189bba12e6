//! What is drawn where: the robot's geometry in 2-D, entity names derived from the
//! calibration, and small logging helpers shared by the live thread and the replay.
//!
//! rerun's 2-D views put y downwards (image convention); every 2-D position here is
//! converted with [`screen`], so the robot and the "future time" charts read y up.

use rerun::{
    Boxes2D, Color, LineStrips2D, Points2D, RecordingStream, Rgba32, Scalars, SeriesLines, TextLog,
};

use crate::calib::Calibration;
use crate::plant::cartpole::CartpoleParams;
use crate::plant::pendulum::PendulumParams;
use crate::plant::pusher::PusherParams;
use crate::task::{PUSH_GOAL_M, PUSH_GOAL_RADIUS_M, Task, cartpole_tip_m};

pub const POLE_COLOR: Color = Color(Rgba32::from_rgb(230, 120, 40));
pub const CART_COLOR: Color = Color(Rgba32::from_rgb(70, 130, 200));
pub const MEAN_COLOR: Color = Color(Rgba32::from_rgb(40, 170, 90));
pub const BAND_COLOR: Color = Color(Rgba32::from_unmultiplied_rgba(40, 170, 90, 110));
pub const ELITE_COLOR: Color = Color(Rgba32::from_unmultiplied_rgba(150, 150, 150, 140));
pub const ACTUAL_COLOR: Color = Color(Rgba32::from_rgb(220, 50, 50));
pub const GOAL_COLOR: Color = Color(Rgba32::from_unmultiplied_rgba(40, 170, 90, 90));
pub const AXES_COLOR: Color = Color(Rgba32::from_rgb(150, 150, 150));
const TABLE_COLOR: Color = Color(Rgba32::from_rgb(120, 120, 120));

const CART_HALF_SIZE_M: [f32; 2] = [0.2, 0.1];

/// What the viz needs to know of the robot: its task (for the drawing), channel names
/// (entity-path safe) and control period.
#[derive(Clone, Debug)]
pub struct Layout {
    pub task: Option<Task>,
    pub state_names: Vec<String>,
    pub state_units: Vec<String>,
    pub action_names: Vec<String>,
    pub action_units: Vec<String>,
    /// The calibrated `(min, max)` of each action (empty when not known).
    pub action_limits: Vec<(f32, f32)>,
    pub period_s: f64,
}

impl Layout {
    pub fn from_calibration(calib: &Calibration) -> Self {
        Self {
            task: Some(calib.task),
            state_names: calib.states.iter().map(|s| entity_name(&s.name)).collect(),
            state_units: calib.states.iter().map(|s| s.unit.clone()).collect(),
            action_names: calib.actions.iter().map(|a| entity_name(&a.name)).collect(),
            action_units: calib.actions.iter().map(|a| a.unit.clone()).collect(),
            action_limits: calib.actions.iter().map(|a| (a.min, a.max)).collect(),
            period_s: calib.control_period_us as f64 * 1e-6,
        }
    }

    /// Static, once per recording: the rail or pivot, and series names with units.
    pub fn log_static(&self, rec: &RecordingStream) -> Result<(), rerun::RecordingStreamError> {
        match self.task {
            Some(Task::CartpoleSwingup | Task::InvertedPendulum) => {
                let rail = CartpoleParams::PETS.rail_limit_m as f32;
                rec.log_static(
                    "robot/rail",
                    &LineStrips2D::new([[screen(-rail, 0.0), screen(rail, 0.0)]])
                        .with_colors([Color(Rgba32::from_rgb(120, 120, 120))]),
                )?;
            }
            Some(Task::PendulumSwingup) => {
                rec.log_static(
                    "robot/pivot",
                    &Points2D::new([screen(0.0, 0.0)]).with_radii([0.04]),
                )?;
            }
            Some(Task::PushToGoal) => {
                let table = PusherParams::DEFAULT;
                let (w, d) = (table.half_width_m as f32, table.half_depth_m as f32);
                rec.log_static(
                    "robot/table",
                    &LineStrips2D::new([[
                        screen(-w, -d),
                        screen(w, -d),
                        screen(w, d),
                        screen(-w, d),
                        screen(-w, -d),
                    ]])
                    .with_colors([TABLE_COLOR]),
                )?;
                rec.log_static(
                    "robot/goal",
                    &Points2D::new([screen(PUSH_GOAL_M[0], PUSH_GOAL_M[1])])
                        .with_radii([PUSH_GOAL_RADIUS_M])
                        .with_colors([GOAL_COLOR]),
                )?;
            }
            None => {}
        }
        let series = |prefix: &str, names: &[String], units: &[String]| {
            for (name, unit) in names.iter().zip(units) {
                rec.log_static(
                    format!("{prefix}/{name}"),
                    &SeriesLines::new().with_names([if unit.is_empty() {
                        name.clone()
                    } else {
                        format!("{name} [{unit}]")
                    }]),
                )?;
            }
            Ok::<(), rerun::RecordingStreamError>(())
        };
        series("state", &self.state_names, &self.state_units)?;
        series("action", &self.action_names, &self.action_units)?;
        Ok(())
    }

    /// Pivot and tip of the pole in metres (y up), if the task has a drawing and `state`
    /// is wide enough.
    pub fn pole_m(&self, state: &[f32]) -> Option<([f32; 2], [f32; 2])> {
        match self.task? {
            Task::CartpoleSwingup | Task::InvertedPendulum if state.len() >= 2 => {
                let (x, y) = cartpole_tip_m(state);
                Some(([state[0], 0.0], [x, y]))
            }
            Task::PendulumSwingup if !state.is_empty() => {
                // Gymnasium's drawing: θ = 0 upright, the rod rotated by θ + π/2.
                let l = PendulumParams::GYMNASIUM.length_m as f32;
                Some(([0.0, 0.0], [-l * state[0].sin(), l * state[0].cos()]))
            }
            _ => None,
        }
    }

    /// The point a plan's path follows, in metres (y up): the pole's tip, or the puck.
    pub fn tracked_m(&self, state: &[f32]) -> Option<[f32; 2]> {
        match self.task? {
            Task::PushToGoal if state.len() >= 4 => Some([state[2], state[3]]),
            _ => self.pole_m(state).map(|(_, tip)| tip),
        }
    }

    /// The robot at `state`: cart, pole, tip; or puck and pusher on the table.
    pub fn log_robot(
        &self,
        rec: &RecordingStream,
        state: &[f32],
    ) -> Result<(), rerun::RecordingStreamError> {
        if self.task == Some(Task::PushToGoal) {
            if state.len() < 4 {
                return Ok(());
            }
            let table = PusherParams::DEFAULT;
            rec.log(
                "robot/puck",
                &Points2D::new([screen(state[2], state[3])])
                    .with_colors([CART_COLOR])
                    .with_radii([table.puck_radius_m as f32]),
            )?;
            rec.log(
                "robot/pusher",
                &Points2D::new([screen(state[0], state[1])])
                    .with_colors([POLE_COLOR])
                    .with_radii([table.pusher_radius_m as f32]),
            )?;
            return Ok(());
        }
        let Some((pivot, tip)) = self.pole_m(state) else {
            return Ok(());
        };
        if matches!(
            self.task,
            Some(Task::CartpoleSwingup | Task::InvertedPendulum)
        ) {
            rec.log(
                "robot/cart",
                &Boxes2D::from_centers_and_half_sizes(
                    [screen(pivot[0], pivot[1])],
                    [CART_HALF_SIZE_M],
                )
                .with_colors([CART_COLOR]),
            )?;
        }
        rec.log(
            "robot/pole",
            &LineStrips2D::new([[screen(pivot[0], pivot[1]), screen(tip[0], tip[1])]])
                .with_colors([POLE_COLOR])
                .with_radii([0.02]),
        )?;
        rec.log(
            "robot/tip",
            &Points2D::new([screen(tip[0], tip[1])])
                .with_colors([POLE_COLOR])
                .with_radii([0.04]),
        )?;
        Ok(())
    }

    /// The tracked point's path through `states` ([`Layout::tracked_m`]: the pole's
    /// tip, the puck), screen coordinates, empty without a drawing.
    pub fn tip_path<'a>(&self, states: impl Iterator<Item = &'a [f32]>) -> Vec<[f32; 2]> {
        states
            .filter_map(|s| self.tracked_m(s))
            .map(|p| screen(p[0], p[1]))
            .collect()
    }
}

/// World (y up) to rerun 2-D (y down).
pub fn screen(x: f32, y: f32) -> [f32; 2] {
    [x, -y]
}

/// A calibration name made safe as one entity-path part: `[A-Za-z0-9_]`, others `_`.
pub fn entity_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if cleaned.is_empty() {
        "unnamed".to_owned()
    } else {
        cleaned
    }
}

/// `values[i]` as a scalar at `prefix/names[i]` (extra values or names are ignored).
pub fn log_scalars(
    rec: &RecordingStream,
    prefix: &str,
    names: &[String],
    values: &[f32],
) -> Result<(), rerun::RecordingStreamError> {
    for (name, value) in names.iter().zip(values) {
        rec.log(
            format!("{prefix}/{name}"),
            &Scalars::new([f64::from(*value)]),
        )?;
    }
    Ok(())
}

/// One scalar.
pub fn log_scalar(
    rec: &RecordingStream,
    path: &str,
    value: f64,
) -> Result<(), rerun::RecordingStreamError> {
    rec.log(path, &Scalars::new([value]))
}

/// One line of text at `path` with a rerun log level (`TextLogLevel::INFO`, …).
pub fn log_text(
    rec: &RecordingStream,
    path: &str,
    level: &str,
    text: impl Into<String>,
) -> Result<(), rerun::RecordingStreamError> {
    rec.log(path, &TextLog::new(text.into()).with_level(level))
}
