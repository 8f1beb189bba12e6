//! The terminal keyboard as a teleop source (`crossterm`, raw mode), read on its own
//! thread.
//!
//! A terminal reports key presses, not releases, so "held" means "pressed again within
//! [`HOLD_US`]" (auto-repeat keeps a held key alive). Keys: ←/→ or a/d drive axis 0
//! (full scale while held; shift+arrow for half), ↑/↓ or w/s axis 1; any drive key also
//! holds the dead-man. Enter = start, k = stop and keep, x = stop and discard, space =
//! e-stop, q or Ctrl-C = quit. Raw mode is left when the source is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal;

use super::{
    BUTTON_DEADMAN, BUTTON_ESTOP, BUTTON_QUIT, BUTTON_START, BUTTON_STOP_DISCARD, BUTTON_STOP_KEEP,
    InputSlot, TeleopInput, TeleopSource,
};
use crate::clock::Clock;
use crate::thread::{JoinOnDrop, spawn_named};

/// A drive key counts as held this long after its last press (covers auto-repeat).
pub const HOLD_US: u64 = 600_000;
/// Momentary buttons (start, stop, ...) stay pressed this long, so edges are seen.
const TAP_US: u64 = 100_000;

/// The keyboard of the controlling terminal.
pub struct KeyboardSource {
    slot: Arc<InputSlot>,
    stop: Arc<AtomicBool>,
    _thread: JoinOnDrop<()>,
}

impl KeyboardSource {
    /// Puts the terminal in raw mode; fails if there is no terminal.
    pub fn open(clock: Clock) -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        let slot = Arc::new(InputSlot::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let slot = Arc::clone(&slot);
            let stop = Arc::clone(&stop);
            spawn_named("handful-keyboard", move || {
                let mut state = Keys::default();
                while !stop.load(Ordering::Relaxed) {
                    let now = clock.now_us();
                    if event::poll(Duration::from_millis(10)).unwrap_or(false)
                        && let Ok(Event::Key(key)) = event::read()
                        && key.kind != KeyEventKind::Release
                    {
                        state.press(key.code, key.modifiers, now);
                    }
                    slot.publish(state.input(now));
                }
            })?
        };
        Ok(Self {
            slot,
            stop,
            _thread: thread,
        })
    }
}

impl Drop for KeyboardSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = terminal::disable_raw_mode();
    }
}

impl TeleopSource for KeyboardSource {
    fn latest(&self) -> Option<TeleopInput> {
        self.slot.latest()
    }

    fn name(&self) -> &'static str {
        "keyboard"
    }
}

/// The keyboard's held keys and recent taps. Pure, so it is tested without a terminal.
#[derive(Debug, Default)]
pub struct Keys {
    /// `(value, last press µs)` per axis.
    axes: [(f32, u64); 2],
    /// `(button bit, press µs)` of the last momentary press.
    tap: Option<(u32, u64)>,
}

impl Keys {
    pub fn press(&mut self, code: KeyCode, modifiers: KeyModifiers, now_us: u64) {
        let scale = if modifiers.contains(KeyModifiers::SHIFT) {
            0.5
        } else {
            1.0
        };
        let drive = |axes: &mut [(f32, u64); 2], axis: usize, sign: f32| {
            axes[axis] = (sign * scale, now_us);
        };
        match code {
            KeyCode::Left | KeyCode::Char('a') | KeyCode::Char('A') => {
                drive(&mut self.axes, 0, -1.0)
            }
            KeyCode::Right | KeyCode::Char('d') | KeyCode::Char('D') => {
                drive(&mut self.axes, 0, 1.0)
            }
            KeyCode::Up | KeyCode::Char('w') | KeyCode::Char('W') => drive(&mut self.axes, 1, 1.0),
            KeyCode::Down | KeyCode::Char('s') | KeyCode::Char('S') => {
                drive(&mut self.axes, 1, -1.0)
            }
            KeyCode::Enter => self.tap = Some((BUTTON_START, now_us)),
            KeyCode::Char('k') => self.tap = Some((BUTTON_STOP_KEEP, now_us)),
            KeyCode::Char('x') => self.tap = Some((BUTTON_STOP_DISCARD, now_us)),
            KeyCode::Char(' ') => self.tap = Some((BUTTON_ESTOP, now_us)),
            KeyCode::Char('q') => self.tap = Some((BUTTON_QUIT, now_us)),
            KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => {
                self.tap = Some((BUTTON_QUIT, now_us))
            }
            _ => {}
        }
    }

    pub fn input(&self, now_us: u64) -> TeleopInput {
        let mut input = TeleopInput {
            host_time_us: now_us,
            axis_count: 2,
            ..TeleopInput::default()
        };
        for (out, &(value, at)) in input.axes.iter_mut().zip(&self.axes) {
            if now_us.saturating_sub(at) <= HOLD_US {
                *out = value;
                input.buttons |= BUTTON_DEADMAN;
            }
        }
        if let Some((bit, at)) = self.tap
            && now_us.saturating_sub(at) <= TAP_US
        {
            input.buttons |= bit;
        }
        input
    }
}
