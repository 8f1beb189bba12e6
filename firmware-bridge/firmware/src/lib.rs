//! Firmware-side logic of a handful robot: arming, watchdog, host-link supervision,
//! command validation and clamping, state publishing and heartbeats.
//!
//! `no_std` and allocation-free: a microcontroller's main loop calls it, and the host's
//! robot simulator calls it exactly the same way, so simulated and real robots share one
//! implementation of the safety behaviour. It owns no I/O and no clock: the application
//! passes the firmware time `now_us` in, decodes received bytes with
//! [`handful_protocol::Decoder`], and encodes and transmits the frames [`Firmware`]
//! queues in an [`Outbox`].
//!
//! ```text
//! on every received byte:   if let Some(Ok(frame)) = decoder.push(byte) {
//!                               if let Some(event) = firmware.handle(&frame, now_us, &mut outbox) {
//!                                   act on event (Event::Reset → reset the plant,
//!                                   Event::ResetTo → set the plant's state)
//!                               }
//!                           }
//! every control period:     state = read sensors
//!                           action = firmware.tick(now_us, &state, sensor_faults, &mut outbox)
//!                           apply action to the actuators
//!                           while let Some(frame) = outbox.pop_front() { encode → UART }
//! ```
//!
//! # Semantics
//!
//! - **Frames out.** Every queued frame carries the firmware's own frame counter
//!   (starting at 0, +1 per frame, wrapping) and `timestamp_us = now_us`. A frame that
//!   does not fit in a full outbox is dropped (the newest, never a queued one), counted in
//!   [`Firmware::dropped_frames`], and still consumes its seq, so the host sees the gap.
//! - **Liveness.** Every frame from the host, of any kind, refreshes host liveness.
//! - **Hello** — if [`PROTOCOL_VERSION`](handful_protocol::PROTOCOL_VERSION) lies in
//!   `[protocol_min, protocol_max]`: `Capabilities`, then one `ChannelInfo` per state
//!   channel, then one per action channel; otherwise `Fault{VersionMismatch, detail:
//!   PROTOCOL_VERSION}`. Hello does not change the arming state.
//! - **Arm** — from `Disarmed` or `Faulted`: `Armed`, latched faults cleared, the watchdog
//!   starts from now, any previous command forgotten (the safe values apply until a
//!   command is accepted). From `Armed`: nothing changes. From `EStopped`: stays, and
//!   `Fault{EStop, detail: 0}`.
//! - **Disarm** — `Disarmed` from any state; clears every latched fault, the e-stop
//!   included; forgets the command.
//! - **EStop** — `EStopped` (latched, `FAULT_ESTOP` set) from any state, the command
//!   forgotten, and `Fault{EStop, detail: 0}` when entering it.
//! - **Command** — accepted only when `Armed`, its length equals the number of action
//!   channels, every value is finite, and `valid_until_us >= now_us` (the deadline is
//!   checked on arrival). An accepted command is clamped per channel to `[min, max]`,
//!   applied by every tick until the next accepted command, resets the watchdog, and its
//!   seq becomes `State::last_command_seq`. A refused command changes nothing; when
//!   `Armed` it also queues `Fault{BadCommand, detail: command seq}` and sets
//!   `FAULT_BAD_COMMAND` in the next tick's flags (once). Commands refused while not
//!   armed are ignored silently: the host sees the arming state in every `State`.
//! - **Reset** — with [`CAP_RESET`](handful_protocol::CAP_RESET): disarms (as `Disarm`)
//!   and returns [`Event::Reset`]; without it: `Fault{Unsupported, detail: 0x33}` (the
//!   kind byte of `Reset`), nothing else.
//! - **ResetTo** — without [`CAP_RESET_TO`](handful_protocol::CAP_RESET_TO):
//!   `Fault{Unsupported, detail: 0x34}`, nothing else. With it, refused with
//!   `Fault{BadResetState, detail}` ([`handful_protocol::reset_state_detail`]) and no other
//!   effect if it does not hold exactly one value per state channel, a value is not
//!   finite, or a value lies outside its state channel's `[min, max]` (checked in that
//!   order, first bad index), or if the plant refuses it ([`Firmware::handle_with`]);
//!   otherwise disarms (as `Disarm`) and returns [`Event::ResetTo`].
//! - **Heartbeat** and firmware-to-host kinds received by the firmware: liveness only.
//! - **Tick**, once per control period, in this order: while `Armed`, the watchdog
//!   (`now - last accepted command or arming > watchdog_timeout_us`) and the host timeout
//!   (`now - last host frame > host_timeout_us`) each trip to `Faulted`, latch
//!   `FAULT_WATCHDOG` / `FAULT_HOST_TIMEOUT`, forget the command and queue
//!   `Fault{Watchdog}` / `Fault{HostTimeout}` (detail: µs since the reference). Then the
//!   plant's fault bits (`FAULT_SENSOR`, `FAULT_LIMIT`, and any bit above them; the
//!   firmware-owned bits are ignored) are taken, plus `FAULT_SENSOR` when `state` does not
//!   have one value per state channel; each of `FAULT_SENSOR` / `FAULT_LIMIT` that rises
//!   queues `Fault{Sensor}` / `Fault{Limit}` (detail: the plant's bits). Then a `State`
//!   frame, then a `Heartbeat` when due (the first tick, then whenever
//!   `heartbeat_interval_us` has passed since the last one). The returned actuation is the
//!   accepted command when `Armed`, the channels' safe values otherwise.
//! - **Faults reported** in `State` and `Heartbeat` = latched (watchdog, host timeout,
//!   e-stop) | `FAULT_BAD_COMMAND` if a command was refused since the previous tick |
//!   this tick's plant bits.
#![no_std]
#![forbid(unsafe_code)]

mod config;
mod firmware;

pub use config::{ChannelSpec, FirmwareConfig};
pub use firmware::Firmware;

use handful_protocol::{Frame, StateVector};

/// Capacity of an [`Outbox`]: a full Hello answer (1 + 32 + 16 frames) fits with room.
pub const OUTBOX_CAPACITY: usize = 64;

/// Frames the application must encode and transmit, oldest first.
pub type Outbox = heapless::Deque<Frame, OUTBOX_CAPACITY>;

/// Something the application (the plant) must act on, returned by [`Firmware::handle`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// Reset the simulated plant, drawing its new start state from `seed`. The firmware
    /// is already disarmed.
    Reset { seed: u64 },
    /// Set the simulated plant to exactly `state` (one finite value per state channel,
    /// in channel order and units, each within its channel's `[min, max]`). The firmware
    /// is already disarmed.
    ResetTo { state: StateVector },
}
