//! A gamepad (`gilrs`, via udev) as a teleop source, read on its own thread.
//!
//! Mapping: left stick X → axis 0, left stick Y → axis 1, right stick X/Y → axes 2, 3;
//! right shoulder (R1) held = dead-man; South (A/✕) = start, East (B/○) = stop and keep,
//! West (X/□) = stop and discard, Mode (guide) = e-stop, Select (back) = quit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gilrs::{Axis, Button, Gilrs};

use super::{
    BUTTON_DEADMAN, BUTTON_ESTOP, BUTTON_QUIT, BUTTON_START, BUTTON_STOP_DISCARD, BUTTON_STOP_KEEP,
    InputSlot, TeleopInput, TeleopSource,
};
use crate::clock::Clock;
use crate::thread::{JoinOnDrop, spawn_named};

/// Why the gamepad could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GamepadError {
    #[error("gamepad input is unavailable: {0}")]
    Unavailable(String),
    #[error("no gamepad is connected (plug one in, or use --teleop keyboard)")]
    NoGamepad,
    #[error("cannot start the gamepad thread")]
    Thread(#[source] std::io::Error),
}

/// The first connected gamepad, polled every 5 ms on `handful-gamepad`.
pub struct GamepadSource {
    slot: Arc<InputSlot>,
    stop: Arc<AtomicBool>,
    _thread: JoinOnDrop<()>,
}

impl GamepadSource {
    pub fn open(clock: Clock) -> Result<Self, GamepadError> {
        let slot = Arc::new(InputSlot::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = crossbeam::channel::bounded(1);
        let thread = {
            let slot = Arc::clone(&slot);
            let stop = Arc::clone(&stop);
            spawn_named("handful-gamepad", move || {
                let mut gilrs = match Gilrs::new() {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = ready_tx.send(Err(GamepadError::Unavailable(e.to_string())));
                        return;
                    }
                };
                if gilrs.gamepads().next().is_none() {
                    let _ = ready_tx.send(Err(GamepadError::NoGamepad));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while !stop.load(Ordering::Relaxed) {
                    while gilrs
                        .next_event_blocking(Some(Duration::from_millis(5)))
                        .is_some()
                    {}
                    if let Some((_, pad)) = gilrs.gamepads().find(|(_, p)| p.is_connected()) {
                        let mut input = TeleopInput {
                            host_time_us: clock.now_us(),
                            axis_count: 4,
                            ..TeleopInput::default()
                        };
                        for (slot, axis) in input.axes.iter_mut().zip([
                            Axis::LeftStickX,
                            Axis::LeftStickY,
                            Axis::RightStickX,
                            Axis::RightStickY,
                        ]) {
                            *slot = pad.value(axis);
                        }
                        for (bit, button) in [
                            (BUTTON_DEADMAN, Button::RightTrigger),
                            (BUTTON_START, Button::South),
                            (BUTTON_STOP_KEEP, Button::East),
                            (BUTTON_STOP_DISCARD, Button::West),
                            (BUTTON_ESTOP, Button::Mode),
                            (BUTTON_QUIT, Button::Select),
                        ] {
                            if pad.is_pressed(button) {
                                input.buttons |= bit;
                            }
                        }
                        slot.publish(input);
                    }
                }
            })
            .map_err(GamepadError::Thread)?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                slot,
                stop,
                _thread: thread,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(GamepadError::Unavailable(
                "the gamepad thread stopped".into(),
            )),
        }
    }
}

impl Drop for GamepadSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl TeleopSource for GamepadSource {
    fn latest(&self) -> Option<TeleopInput> {
        self.slot.latest()
    }

    fn name(&self) -> &'static str {
        "gamepad"
    }
}
