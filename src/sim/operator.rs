//! A scripted operator at the simulated robot's own controls: the firmware forwards its
//! inputs to the host in Teleop frames (capability `CAP_TELEOP`), exactly as a robot
//! with a joystick wired to its microcontroller would. It exists so the host's
//! firmware-teleop path (dead-man, episode buttons, recording) runs end to end in tests.
//!
//! The `demo` script, on the firmware clock from the first tick: press Start at 1.0 s;
//! hold the dead-man and push axis 0 as `0.8·sin(2π·0.5·t)` from 1.0 s to 4.0 s; press
//! Stop-and-keep at 4.0 s; press Quit at 4.5 s; nothing after. The `quit` script starts an
//! episode the same way and presses Quit at 2.5 s, while it records.

use handful_protocol::{Teleop, Vector};

use crate::teleop::{BUTTON_DEADMAN, BUTTON_QUIT, BUTTON_START, BUTTON_STOP_KEEP};

/// The scripts the simulator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OperatorScript {
    /// One short teleoperated episode, kept, then quit.
    Demo,
    /// An episode started, then quit while it records.
    Quit,
}

/// Momentary presses last this long, so the host sees each edge.
const PRESS_US: u64 = 150_000;

impl OperatorScript {
    /// The operator's input `t_us` after the script started.
    pub fn input(self, t_us: u64) -> Teleop {
        let t = t_us as f64 * 1e-6;
        let pressed = |at_s: f64| (at_s..at_s + PRESS_US as f64 * 1e-6).contains(&t);
        let mut buttons = 0;
        let mut axis = 0.0f32;
        match self {
            Self::Demo => {
                if pressed(1.0) {
                    buttons |= BUTTON_START;
                }
                if (1.0..4.0).contains(&t) {
                    buttons |= BUTTON_DEADMAN;
                    axis = (0.8 * (std::f64::consts::TAU * 0.5 * t).sin()) as f32;
                }
                if pressed(4.0) {
                    buttons |= BUTTON_STOP_KEEP;
                }
                if pressed(4.5) {
                    buttons |= BUTTON_QUIT;
                }
            }
            Self::Quit => {
                if pressed(1.0) {
                    buttons |= BUTTON_START;
                }
                if (1.0..2.5).contains(&t) {
                    buttons |= BUTTON_DEADMAN;
                    axis = 0.5;
                }
                if pressed(2.5) {
                    buttons |= BUTTON_QUIT;
                }
            }
        }
        Teleop {
            buttons,
            axes: Vector::from_slice(&[axis, 0.0]).unwrap_or_default(),
        }
    }
}
